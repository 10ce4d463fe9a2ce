//! Finding ipclab's objects: marked names in `/dev/shm`, the temporary
//! directories and `/dev/mqueue`, and the registry's records matched to
//! what the kernel lists.

use std::collections::BTreeSet;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::marks::{self, Maker};
use super::owned::Identity;
use super::registry::{self, Entry, Kind, Record};
use super::sysv;
use super::zenoh_shm::{self, Segment};

/// How an object is removed.
#[derive(Debug, Clone)]
pub(crate) enum Removal {
    /// A file, removed only while the name still leads to the one listed.
    File(PathBuf, Identity),
    /// A private directory, removed (all in it) only while the name still
    /// leads to the one listed, ours and closed to group and others.
    Tree(PathBuf, Identity),
    PosixMq(String),
    Sysv {
        kind: Kind,
        id: i32,
        key: i32,
        cuid: u32,
        cpid: Option<i32>,
    },
    Iceoryx2 {
        root: PathBuf,
        prefix: String,
    },
    /// zenoh segments in `/dev/shm`, each removed only while it is the one
    /// listed and nobody holds it ([`zenoh_shm::remove_if_dangling`]).
    Zenoh(Vec<(String, Identity)>),
}

/// One object of ipclab's (or shmchan's).
#[derive(Debug, Clone)]
pub struct Found {
    /// `posix-shm`, `posix-sem`, `shmchan`, `dir`, `posix-mq`,
    /// `sysv-shm`, `sysv-sem`, `sysv-msg`, `iceoryx2` or `zenoh`.
    pub kind: &'static str,
    /// Path, name or key.
    pub name: String,
    /// The System V id.
    pub id: Option<i32>,
    /// The process that created it.
    pub pid: i32,
    /// Whether `/proc/<pid>` exists.
    pub alive: bool,
    /// Bytes, or for a semaphore set `N sems`.
    pub size: String,
    /// Seconds since it was made, when known.
    pub age_s: Option<u64>,
    pub(crate) removal: Removal,
    /// The registry record to remove after the object.
    pub(crate) record: Option<Record>,
}

/// A registry file without its object: a record whose object is gone, or
/// a writer's leftover `tmp-<pid>-…` file.
#[derive(Debug, Clone)]
pub struct Stale {
    pub record: Record,
    pub pid: i32,
    pub alive: bool,
}

/// Everything of ipclab's on this machine that belongs to our user.
#[derive(Debug, Default)]
pub struct Listing {
    pub objects: Vec<Found>,
    pub stale: Vec<Stale>,
}

/// Whether process `pid` exists. A reused pid counts as alive: the safe
/// direction, an object is kept rather than removed under a live creator.
pub fn alive(pid: i32) -> bool {
    pid > 0 && Path::new(&format!("/proc/{pid}")).exists()
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn age_of(meta: &std::fs::Metadata) -> Option<u64> {
    let made = meta.created().or_else(|_| meta.modified()).ok()?;
    Some(
        SystemTime::now()
            .duration_since(made)
            .map_or(0, |d| d.as_secs()),
    )
}

fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The directories where ipclab makes its private directories.
pub fn temp_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![std::env::temp_dir()];
    if let Some(xdg) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from)
        && xdg.is_absolute()
        && !dirs.contains(&xdg)
    {
        dirs.push(xdg);
    }
    dirs
}

/// Bytes in the files under `dir` (not following symlinks).
fn tree_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| Some((e.path(), std::fs::symlink_metadata(e.path()).ok()?)))
        .map(|(p, m)| if m.is_dir() { tree_size(&p) } else { m.len() })
        .sum()
}

/// Lists every object of ours; an error only if the registry cannot be
/// read.
pub fn list() -> io::Result<Listing> {
    let mut out = Listing::default();
    let uid = euid();
    // POSIX shared memory, named semaphores, shmchan segments.
    for entry in std::fs::read_dir("/dev/shm")
        .into_iter()
        .flatten()
        .flatten()
    {
        let file = entry.file_name().to_string_lossy().into_owned();
        let (sem, bare) = match file.strip_prefix("sem.") {
            Some(bare) => (true, bare),
            None => (false, file.as_str()),
        };
        let Some((maker, pid)) = marks::parse(bare) else {
            continue;
        };
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if !meta.is_file() || meta.uid() != uid || (sem && maker == Maker::Shmchan) {
            continue;
        }
        let kind = match (maker, sem) {
            (Maker::Shmchan, _) => "shmchan",
            (_, true) => "posix-sem",
            _ => "posix-shm",
        };
        out.objects.push(named(
            kind,
            entry.path(),
            pid,
            &meta,
            Removal::File(entry.path(), Identity::from_metadata(&meta)),
        ));
    }
    // Private directories (mmap-file, fifo).
    for dir in temp_dirs() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            let Some((Maker::Ipclab, pid)) = marks::parse(&file) else {
                continue;
            };
            let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
                continue;
            };
            if meta.is_dir() && meta.uid() == uid {
                let removal = Removal::Tree(entry.path(), Identity::from_metadata(&meta));
                let mut found = named("dir", entry.path(), pid, &meta, removal);
                found.size = tree_size(&entry.path()).to_string();
                out.objects.push(found);
            }
        }
    }
    // POSIX message queues, where they can be listed.
    let mut queues_seen = BTreeSet::new();
    for entry in std::fs::read_dir("/dev/mqueue")
        .into_iter()
        .flatten()
        .flatten()
    {
        let file = entry.file_name().to_string_lossy().into_owned();
        let (Some((Maker::Ipclab, pid)), Ok(meta)) =
            (marks::parse(&file), std::fs::symlink_metadata(entry.path()))
        else {
            continue;
        };
        if meta.uid() == uid {
            let name = format!("/{file}");
            queues_seen.insert(name.clone());
            out.objects.push(named(
                "posix-mq",
                name.clone().into(),
                pid,
                &meta,
                Removal::PosixMq(name),
            ));
        }
    }
    // The registry.
    let (entries, partial) = registry::read_all()?;
    let (zenoh, entries): (Vec<Entry>, Vec<Entry>) =
        entries.into_iter().partition(|e| e.kind == Kind::Zenoh);
    zenoh_records(zenoh, &mut out);
    let tables: Vec<(Kind, Vec<sysv::Row>)> = [Kind::SysvShm, Kind::SysvSem, Kind::SysvMsg]
        .into_iter()
        .map(|k| (k, sysv::rows(k)))
        .collect();
    for e in entries {
        let found = match e.kind {
            Kind::SysvShm | Kind::SysvSem | Kind::SysvMsg => {
                let rows = &tables.iter().find(|(k, _)| *k == e.kind).expect("three").1;
                sysv_object(&e, rows, uid)
            }
            Kind::PosixMq => match e.get("name") {
                Some(name) if queues_seen.contains(name) => {
                    // Listed from /dev/mqueue already: attach the record.
                    if let Some(f) = out.objects.iter_mut().find(|f| f.name == name) {
                        f.record = Some(e.record.clone());
                    }
                    continue;
                }
                Some(name) => posix_mq(&e, name),
                None => None,
            },
            Kind::Iceoryx2 => match iceoryx2(&e) {
                Iox2::Left(f) => Some(f),
                Iox2::Gone => None,
                // Neither listed nor pruned.
                Iox2::Unsure => continue,
            },
            Kind::Zenoh => unreachable!("listed by zenoh_records"),
        };
        match found {
            Some(f) => out.objects.push(f),
            None => out.stale.push(Stale {
                alive: alive(e.pid),
                pid: e.pid,
                record: e.record,
            }),
        }
    }
    out.stale
        .extend(partial.into_iter().map(|(record, pid)| Stale {
            record,
            pid,
            alive: alive(pid),
        }));
    Ok(out)
}

fn named(
    kind: &'static str,
    path: PathBuf,
    pid: i32,
    meta: &std::fs::Metadata,
    removal: Removal,
) -> Found {
    Found {
        kind,
        name: path.display().to_string(),
        id: None,
        pid,
        alive: alive(pid),
        size: meta.len().to_string(),
        age_s: age_of(meta),
        removal,
        record: None,
    }
}

fn recorded(e: &Entry, kind: &'static str, name: String, size: String, removal: Removal) -> Found {
    Found {
        kind,
        name,
        id: None,
        pid: e.pid,
        alive: alive(e.pid),
        size,
        age_s: Some(now_s().saturating_sub(e.time)),
        removal,
        record: Some(e.record.clone()),
    }
}

/// The System V object `e` records, if the kernel lists it: same key, made
/// by our uid, with the recorded id (or, if the creator died before
/// recording it, made after the record), and for a segment made by the
/// recorded pid. A removed segment still attached has key 0: not listed.
fn sysv_object(e: &Entry, rows: &[sysv::Row], uid: u32) -> Option<Found> {
    let key = e.number("key").filter(|&k| registry::is_ipclab_key(k))?;
    let id = e.number("id");
    let row = rows.iter().find(|r| {
        r.key == key
            && r.cuid == uid
            && id.is_none_or(|id| r.id == id)
            && (id.is_some() || r.ctime >= e.time)
            && (e.kind != Kind::SysvShm || r.cpid == Some(e.pid))
    })?;
    let size = match e.kind {
        Kind::SysvSem => format!("{} sems", row.size),
        _ => row.size.to_string(),
    };
    let removal = Removal::Sysv {
        kind: e.kind,
        id: row.id,
        key,
        cuid: uid,
        cpid: row.cpid.filter(|_| e.kind == Kind::SysvShm),
    };
    let mut f = recorded(
        e,
        e.kind.as_str(),
        format!("key {key:#010x}"),
        size,
        removal,
    );
    f.id = Some(row.id);
    Some(f)
}

/// The queue `e` records, if it still has its name (and is ours).
fn posix_mq(e: &Entry, name: &str) -> Option<Found> {
    let size = match open_our_queue(name) {
        Ok(None) => return None,
        Err(_) => "?".to_string(),
        Ok(Some(q)) => {
            let size = nix::mqueue::mq_getattr(&q)
                .map_or("?".to_string(), |a| (a.maxmsg() * a.msgsize()).to_string());
            let _ = nix::mqueue::mq_close(q);
            size
        }
    };
    let removal = Removal::PosixMq(name.to_string());
    Some(recorded(e, "posix-mq", name.to_string(), size, removal))
}

/// Opens queue `name` to look at it; `None` if it is gone, or is not ours
/// (someone else's queue made under the name after ours went).
pub(crate) fn open_our_queue(name: &str) -> io::Result<Option<nix::mqueue::MqdT>> {
    use nix::mqueue::{MQ_OFlag, mq_close, mq_open};
    let flags = MQ_OFlag::O_RDONLY | MQ_OFlag::O_NONBLOCK | MQ_OFlag::O_CLOEXEC;
    match mq_open(name, flags, nix::sys::stat::Mode::empty(), None) {
        // EACCES: ours would open.
        Err(nix::errno::Errno::ENOENT | nix::errno::Errno::EACCES) => Ok(None),
        Err(e) => Err(e.into()),
        Ok(q) => {
            let st = rustix::fs::fstat(&q)?;
            if super::owned::ours(&st) {
                return Ok(Some(q));
            }
            let _ = mq_close(q);
            Ok(None)
        }
    }
}

/// The zenoh segments each zenoh record covers (see [`zenoh_shm`]), as
/// one object per record; a record that covers none is stale.
///
/// A segment goes to the latest record written before it last changed:
/// a dangling one to the latest of all (a live cell's guard, or `clean`
/// once that cell is dead, removes it), a held one to the latest live
/// record (supervisor or a side alive), and if no live record covers it,
/// to nobody: it is a live process's that is no cell of ours.
/// A record not of the shape ipclab writes is left alone, as are all of
/// them when `/dev/shm` cannot be read.
fn zenoh_records(entries: Vec<Entry>, out: &mut Listing) {
    let records: Vec<(Entry, u64, bool)> = entries
        .into_iter()
        .filter_map(|e| {
            let since = e.get("since_ns")?.parse::<u64>().ok()?;
            let sides_alive = e.all("side").any(|p| p.parse().is_ok_and(alive));
            let live = alive(e.pid) || sides_alive;
            Some((e, since, live))
        })
        .collect();
    if records.is_empty() {
        return;
    }
    let Ok(segments) = zenoh_shm::segments() else {
        return;
    };
    let mut covered: Vec<Vec<Segment>> = vec![Vec::new(); records.len()];
    for s in segments {
        let owner = records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.1 <= s.changed_ns && (r.2 || !s.held))
            .max_by_key(|(_, r)| r.1)
            .map(|(i, _)| i);
        if let Some(i) = owner {
            covered[i].push(s);
        }
    }
    for ((e, _, live), segs) in records.into_iter().zip(covered) {
        if segs.is_empty() {
            out.stale.push(Stale {
                alive: live,
                pid: e.pid,
                record: e.record,
            });
            continue;
        }
        let ids: Vec<&str> = segs
            .iter()
            .map(|s| s.name.strip_suffix(".zenoh").unwrap_or(&s.name))
            .collect();
        let name = match ids.as_slice() {
            [one] => format!("{}/{one}.zenoh", zenoh_shm::SHM_DIR),
            many => format!("{}/{{{}}}.zenoh", zenoh_shm::SHM_DIR, many.join(",")),
        };
        let size = segs.iter().map(|s| s.size).sum::<u64>().to_string();
        let removal = Removal::Zenoh(segs.iter().map(|s| (s.name.clone(), s.id)).collect());
        let mut f = recorded(&e, "zenoh", name, size, removal);
        f.alive = live;
        out.objects.push(f);
    }
}

/// What is left of an iceoryx2 record's objects.
enum Iox2 {
    Left(Found),
    Gone,
    /// The record is not of the shape ipclab writes, or the recorded paths
    /// cannot be looked at: its objects might exist, so the record stays.
    Unsure,
}

/// iceoryx2's root directory and `/dev/shm/<prefix>*` files that `e`
/// records, looked for where the record says (wherever the temporary
/// directory of the process listing is).
fn iceoryx2(e: &Entry) -> Iox2 {
    let (Some(root), Some(prefix)) = (e.get("root"), e.get("prefix")) else {
        return Iox2::Unsure;
    };
    let (root, prefix) = (PathBuf::from(root), prefix.to_string());
    // Only the shapes ipclab makes: an absolute `…/ipclab-<32 hex>` and
    // `iox2_<16 hex>_`.
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let root_ok = root.is_absolute()
        && root
            .file_name()
            .and_then(|n| n.to_str()?.strip_prefix(marks::PREFIX))
            .is_some_and(|h| hex(h, 32));
    let prefix_ok = prefix
        .strip_prefix("iox2_")
        .and_then(|p| p.strip_suffix('_'))
        .is_some_and(|h| hex(h, 16));
    if !root_ok || !prefix_ok {
        return Iox2::Unsure;
    }
    let Ok(shm) = std::fs::read_dir("/dev/shm") else {
        return Iox2::Unsure;
    };
    let files: Vec<u64> = shm
        .flatten()
        .filter(|f| f.file_name().to_string_lossy().starts_with(&prefix))
        .filter_map(|f| f.metadata().ok().map(|m| m.len()))
        .collect();
    let root_exists = match std::fs::symlink_metadata(&root) {
        Ok(_) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        // EACCES on a parent, say: it may well be there.
        Err(_) => return Iox2::Unsure,
    };
    if files.is_empty() && !root_exists {
        return Iox2::Gone;
    }
    let size = (tree_size(&root) + files.iter().sum::<u64>()).to_string();
    let name = format!("{} + /dev/shm/{prefix}*", root.display());
    Iox2::Left(recorded(
        e,
        "iceoryx2",
        name,
        size,
        Removal::Iceoryx2 { root, prefix },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::marks::random_hex;

    /// An iceoryx2 record is matched where it says its root is, not under
    /// the temporary directory of whoever lists; one of a shape ipclab
    /// does not write is never taken for object-less.
    #[test]
    fn iceoryx2_roots_are_found_where_recorded() {
        let elsewhere = std::env::temp_dir().join(format!("other-tmp-{}", random_hex(8).unwrap()));
        let root = elsewhere.join(format!("{}{}", marks::PREFIX, random_hex(16).unwrap()));
        std::fs::create_dir_all(&root).unwrap();
        let prefix = format!("iox2_{}_", random_hex(8).unwrap());
        let fields = [("root", root.display().to_string()), ("prefix", prefix)];
        let rec = registry::record(Kind::Iceoryx2, &random_hex(8).unwrap(), &fields).unwrap();
        let odd = registry::record(
            Kind::Iceoryx2,
            &random_hex(8).unwrap(),
            &[("root", "relative".into()), ("prefix", "iox2_".into())],
        )
        .unwrap();
        let listing = list();
        let _ = std::fs::remove_dir_all(&elsewhere);
        rec.remove().unwrap();
        odd.remove().unwrap();
        let listing = listing.unwrap();
        let found = |r: &Record| listing.objects.iter().any(|f| f.record.as_ref() == Some(r));
        let stale = |r: &Record| listing.stale.iter().any(|s| &s.record == r);
        assert!(found(&rec) && !stale(&rec));
        assert!(!found(&odd) && !stale(&odd));
    }
}
