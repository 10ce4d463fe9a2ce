//! The registry: a record for each object that has no marked name to find
//! it by (System V objects, which have keys; POSIX message queues, which
//! cannot be listed where `/dev/mqueue` is not mounted; iceoryx2's files,
//! whose names iceoryx2 shapes).
//!
//! The records live in `<temp dir>/ipclab-registry-<uid>`, a directory of
//! mode 0700 that must belong to us (a symlink or someone else's directory
//! is an error). A record is written *before* its object is made and
//! removed *after* it is gone, so a `kill -9` at any instant leaves at
//! worst a record without an object (which `ipclab clean` prunes), never
//! an object without a record.
//!
//! System V objects get a key in ipclab's range `0x1cab0000..=0x1cabffff`
//! instead of `IPC_PRIVATE`. The record's file is named after the key and
//! created with `O_EXCL`, so it also claims the key among ipclab processes;
//! the object is then made with `IPC_CREAT|IPC_EXCL|0600`, and a key taken
//! by someone else (`EEXIST`) is given up for another. A key hides nothing
//! an `IPC_PRIVATE` id did not: both are listed in `/proc/sysvipc`, and
//! mode 0600 keeps others out either way.

use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use super::marks::random_hex;

/// What a record stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    SysvShm,
    SysvSem,
    SysvMsg,
    PosixMq,
    Iceoryx2,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::SysvShm,
        Kind::SysvSem,
        Kind::SysvMsg,
        Kind::PosixMq,
        Kind::Iceoryx2,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SysvShm => "sysv-shm",
            Kind::SysvSem => "sysv-sem",
            Kind::SysvMsg => "sysv-msg",
            Kind::PosixMq => "posix-mq",
            Kind::Iceoryx2 => "iceoryx2",
        }
    }
}

/// The first key of ipclab's System V range (`0x1cab0000..=0x1cabffff`).
pub const KEY_BASE: i32 = 0x1cab_0000;

/// Whether `key` is in ipclab's System V key range.
pub fn is_ipclab_key(key: i32) -> bool {
    key & !0xffff == KEY_BASE
}

/// How often a taken key is given up for another before failing.
const TRIES: usize = 64;

/// Where the records live.
pub fn dir() -> PathBuf {
    std::env::temp_dir().join(format!(
        "ipclab-registry-{}",
        rustix::process::geteuid().as_raw()
    ))
}

/// The registry directory, made (0700) if missing and `create`; `None`
/// if it is missing and not `create`. An error if it is not a directory of
/// ours that only we can enter.
pub fn checked_dir(create: bool) -> io::Result<Option<PathBuf>> {
    let path = dir();
    if create {
        match rustix::fs::mkdir(&path, Mode::RWXU) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(in_registry(&path, e.into())),
        }
    }
    let fd = match rustix::fs::open(
        &path,
        OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) if !create => return Ok(None),
        Err(e) => return Err(in_registry(&path, e.into())),
    };
    let st = rustix::fs::fstat(&fd)?;
    if st.st_uid != rustix::process::geteuid().as_raw() {
        return Err(in_registry(&path, io::Error::other("not owned by us")));
    }
    if st.st_mode & 0o077 != 0 {
        // Ours but open to others (the umask cannot do that to mkdir's
        // 0700, so someone chmod-ed it): close it again.
        rustix::fs::fchmod(&fd, Mode::RWXU)?;
    }
    Ok(Some(path))
}

fn in_registry(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("registry {}: {e}", path.display()))
}

/// A record in the registry. Cloning copies the handle, not the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    path: PathBuf,
}

impl Record {
    /// Writes the record `file` (kind, our pid, the time, then `fields`);
    /// `None` if a record of that name exists already.
    ///
    /// The text goes to a temporary file `tmp-<pid>-<hex>` first, which is
    /// then hard-linked to `file` (`link` fails if `file` exists): a record
    /// is always whole. A kill in between leaves only the temporary file,
    /// whose name says whose it was.
    fn create(file: &str, kind: Kind, fields: &[(&str, String)]) -> io::Result<Option<Record>> {
        let dir = checked_dir(true)?.expect("created");
        let pid = std::process::id();
        let tmp = dir.join(format!("tmp-{pid}-{}", random_hex(16)?));
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut text = format!("kind={}\npid={pid}\ntime={time}\n", kind.as_str());
        for (k, v) in fields {
            text.push_str(&format!("{k}={v}\n"));
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        let linked = f
            .write_all(text.as_bytes())
            .and_then(|()| std::fs::hard_link(&tmp, dir.join(file)));
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(Some(Record {
                path: dir.join(file),
            })),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(in_registry(&dir, e)),
        }
    }

    /// Adds `field=value` to the record (one append).
    pub fn add(&self, field: &str, value: &str) -> io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&self.path)?;
        f.write_all(format!("{field}={value}\n").as_bytes())
    }

    /// Removes the record; one already gone is no error.
    pub fn remove(&self) -> io::Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(in_registry(&self.path, e)),
            _ => Ok(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Makes a System V object with a fresh key of ipclab's range, recorded
/// first: `make(key)` must create with `IPC_CREAT|IPC_EXCL` and return the
/// id, or an error of kind `AlreadyExists` when the key is taken.
pub fn create_sysv(
    kind: Kind,
    mut make: impl FnMut(libc::key_t) -> io::Result<i32>,
) -> io::Result<(i32, Record)> {
    for _ in 0..TRIES {
        let low = u16::from_str_radix(&random_hex(2)?, 16).expect("four hex digits");
        let key = KEY_BASE | i32::from(low);
        let file = format!("{}-{key:08x}", kind.as_str());
        let Some(record) = Record::create(&file, kind, &[("key", key.to_string())])? else {
            continue;
        };
        match make(key) {
            Ok(id) => {
                // Best effort: without the id, `ls` still matches the key,
                // the owner and the creation time.
                let _ = record.add("id", &id.to_string());
                return Ok((id, record));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => record.remove()?,
            Err(e) => {
                let _ = record.remove();
                return Err(e);
            }
        }
    }
    Err(io::Error::other(format!(
        "no free key in ipclab's System V range after {TRIES} tries"
    )))
}

/// Records an object named `tag` (unique: made of random bits) before it
/// is made; the fields say how to find it.
pub fn record(kind: Kind, tag: &str, fields: &[(&str, String)]) -> io::Result<Record> {
    Record::create(&format!("{}-{tag}", kind.as_str()), kind, fields)?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("registry record {tag} exists"),
        )
    })
}

/// What one record says.
#[derive(Debug, Clone)]
pub struct Entry {
    pub record: Record,
    pub kind: Kind,
    pub pid: i32,
    /// Seconds since the epoch when the record was written.
    pub time: u64,
    fields: Vec<(String, String)>,
}

impl Entry {
    /// The value of `field`, if the record has it.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == field)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `field` as a number.
    pub fn number(&self, field: &str) -> Option<i32> {
        self.get(field)?.parse().ok()
    }

    fn parse(path: PathBuf, text: &str) -> Option<Entry> {
        let fields: Vec<(String, String)> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let get = |f: &str| fields.iter().find(|(k, _)| k == f).map(|(_, v)| v.clone());
        let kind = get("kind")?;
        let kind = Kind::ALL.into_iter().find(|k| k.as_str() == kind)?;
        Some(Entry {
            record: Record { path },
            kind,
            pid: get("pid")?.parse().ok()?,
            time: get("time")?.parse().ok()?,
            fields,
        })
    }
}

/// A writer's leftover `tmp-<pid>-…` file (killed before it linked its
/// record): path and pid.
pub type Partial = (PathBuf, i32);

/// Every record in the registry, and the [`Partial`] leftovers.
pub fn read_all() -> io::Result<(Vec<Entry>, Vec<Partial>)> {
    let Some(dir) = checked_dir(false)? else {
        return Ok(Default::default());
    };
    let (mut entries, mut partial) = (Vec::new(), Vec::new());
    for e in std::fs::read_dir(&dir)? {
        let path = e?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if let Some(rest) = name.strip_prefix("tmp-") {
            if let Some(pid) = rest.split('-').next().and_then(|p| p.parse().ok()) {
                partial.push((path.clone(), pid));
            }
            continue;
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(in_registry(&path, e)),
        };
        // A record that does not parse was not written by ipclab: left alone.
        if let Some(entry) = Entry::parse(path, &text) {
            entries.push(entry);
        }
    }
    entries.sort_by_key(|e| (e.time, e.record.path.clone()));
    Ok((entries, partial))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_in_range_and_records_round_trip() {
        assert!(is_ipclab_key(0x1cab_0000) && is_ipclab_key(0x1cab_ffff));
        assert!(!is_ipclab_key(0) && !is_ipclab_key(0x1cac_0000));
        let tag = random_hex(16).unwrap();
        let rec = record(Kind::Iceoryx2, &tag, &[("root", "/nowhere".into())]).unwrap();
        assert!(record(Kind::Iceoryx2, &tag, &[]).is_err());
        rec.add("id", "7").unwrap();
        let mode = std::fs::metadata(rec.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (entries, _) = read_all().unwrap();
        let e = entries.iter().find(|e| e.record == rec).unwrap();
        assert_eq!(e.pid, std::process::id() as i32);
        assert_eq!((e.get("root"), e.number("id")), (Some("/nowhere"), Some(7)));
        rec.remove().unwrap();
        rec.remove().unwrap();
        assert!(!rec.path().exists());
    }
}
