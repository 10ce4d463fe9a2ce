//! The registry: a record for each object that has no marked name to find
//! it by (System V objects, which have keys; POSIX message queues, which
//! cannot be listed where `/dev/mqueue` is not mounted; iceoryx2's files,
//! whose names iceoryx2 shapes; zenoh's segments, whose names zenoh picks
//! when it makes them: see [`super::zenoh_shm`]).
//!
//! The records live in `$XDG_RUNTIME_DIR/ipclab-registry` when
//! `XDG_RUNTIME_DIR` is a private directory of ours (absolute, owned by us,
//! not writable by group or others), else in `/dev/shm/ipclab-registry-<uid>`
//! (a predictable name in a world-writable directory: another user can take
//! it first, and then every recorded mechanism fails with one line saying
//! to set `XDG_RUNTIME_DIR`). Either way a directory of mode 0700 that must
//! belong to us (a symlink or someone else's directory is an error, and is
//! never removed), opened once per process and removed again with its last
//! record, by a supervisor's exit or by `ipclab clean` when empty
//! ([`tidy`]): only while the name still leads to the directory we opened,
//! ours and 0700 (device and inode compared through the descriptor). A
//! record file is likewise removed only while its name leads to the file
//! written or read ([`super::owned`]). In memory
//! (tmpfs), like the objects, and gone with them at a reboot; a record
//! costs a few file operations there (on a disk file system it cost
//! hundreds of microseconds, a visible part of a cell's set-up). A record
//! is written *before* its object is made and removed *after* it is gone,
//! so a `kill -9` at any instant leaves at worst a record without an object
//! (which `ipclab clean` prunes), never an object without a record.
//!
//! System V objects get a key in ipclab's range `0x1cab0000..=0x1cabffff`
//! instead of `IPC_PRIVATE`. The record's file is named after the key and
//! created with `O_EXCL`, so it also claims the key among ipclab processes;
//! the object is then made with `IPC_CREAT|IPC_EXCL|0600`, and a key taken
//! by someone else (`EEXIST`) is given up for another. A key hides nothing
//! an `IPC_PRIVATE` id did not: both are listed in `/proc/sysvipc`, and
//! mode 0600 keeps others out either way.

use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, linkat, openat};
use rustix::io::Errno;

use super::marks::random_hex;
use super::owned::{self, Identity};

/// What a record stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    SysvShm,
    SysvSem,
    SysvMsg,
    PosixMq,
    Iceoryx2,
    /// A cell's zenoh segments: when it began, and its sides' pids.
    Zenoh,
}

impl Kind {
    const ALL: [Kind; 6] = [
        Kind::SysvShm,
        Kind::SysvSem,
        Kind::SysvMsg,
        Kind::PosixMq,
        Kind::Iceoryx2,
        Kind::Zenoh,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SysvShm => "sysv-shm",
            Kind::SysvSem => "sysv-sem",
            Kind::SysvMsg => "sysv-msg",
            Kind::PosixMq => "posix-mq",
            Kind::Iceoryx2 => "iceoryx2",
            Kind::Zenoh => "zenoh",
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

/// Where the records live: `$XDG_RUNTIME_DIR/ipclab-registry` if
/// [`private_runtime_dir`] allows, else `/dev/shm/ipclab-registry-<uid>`.
pub fn dir() -> PathBuf {
    private_runtime_dir().map_or_else(fallback_dir, |d| d.join("ipclab-registry"))
}

/// `$XDG_RUNTIME_DIR`, if it is set, absolute, and a directory owned by us
/// that group and others cannot write.
fn private_runtime_dir() -> Option<PathBuf> {
    let xdg = PathBuf::from(std::env::var_os("XDG_RUNTIME_DIR")?);
    let st = rustix::fs::stat(&xdg).ok()?;
    let is_dir = rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir();
    let ours = st.st_uid == rustix::process::geteuid().as_raw();
    (xdg.is_absolute() && is_dir && ours && st.st_mode & 0o022 == 0).then_some(xdg)
}

/// The registry without a private `$XDG_RUNTIME_DIR`.
fn fallback_dir() -> PathBuf {
    PathBuf::from(format!(
        "/dev/shm/ipclab-registry-{}",
        rustix::process::geteuid().as_raw()
    ))
}

/// The registry directory, open: every file operation is relative to this
/// descriptor, so the directory checked is the one used.
struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

impl Dir {
    /// Opens the directory, made (0700) if missing and `create`; `None` if
    /// it is missing and not `create`. An error if it is a symlink, or not
    /// a directory of ours.
    fn open(create: bool) -> io::Result<Option<Dir>> {
        Dir::open_at(dir(), create)
    }

    fn open_at(path: PathBuf, create: bool) -> io::Result<Option<Dir>> {
        if create {
            match rustix::fs::mkdir(&path, Mode::RWXU) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(in_registry(&path, e.into())),
            }
        }
        let fd = match rustix::fs::open(
            &path,
            OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) if !create => return Ok(None),
            // Someone else's directory (EACCES), a symlink (ELOOP) or a
            // file (ENOTDIR) in the way.
            Err(e @ (Errno::ACCESS | Errno::LOOP | Errno::NOTDIR)) => {
                return Err(taken(&path, e.into()));
            }
            Err(e) => return Err(in_registry(&path, e.into())),
        };
        let st = rustix::fs::fstat(&fd)?;
        if st.st_uid != rustix::process::geteuid().as_raw() {
            return Err(taken(&path, io::Error::other("not owned by us")));
        }
        if st.st_mode & 0o777 != 0o700 {
            // Ours but open to others, or short of our own bits (mkdir's
            // 0700 minus a umask such as 0277 is 0500): exactly 0700.
            rustix::fs::fchmod(&fd, Mode::RWXU).map_err(|e| in_registry(&path, e.into()))?;
        }
        Ok(Some(Dir { fd, path }))
    }

    fn error(&self, name: &str, e: impl Into<io::Error>) -> io::Error {
        in_registry(&self.path.join(name), e.into())
    }

    /// Removes file `name` if it is still `id`; one already gone (or
    /// replaced) is no error.
    fn unlink(&self, name: &str, id: Identity) -> io::Result<()> {
        owned::remove_at_if(&self.fd, Path::new(name), id, false).map_err(|e| self.error(name, e))
    }

    /// Removes the directory if it is empty, still ours and 0700, and its
    /// path still leads to the directory open here.
    fn remove_if_empty(&self) -> io::Result<()> {
        let st = rustix::fs::fstat(&self.fd)?;
        if !owned::ours(&st) || st.st_mode & 0o7777 != 0o700 {
            return Ok(());
        }
        // ENOTEMPTY (records left): nothing to do.
        match owned::remove_if(&self.path, Identity::from_stat(&st), true) {
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => Ok(()),
            r => r,
        }
    }
}

/// The directory as this process opened it last (a supervisor makes many
/// records: one `mkdir`, `open` and check is enough).
static OPENED: Mutex<Option<Arc<Dir>>> = Mutex::new(None);

/// The registry directory, made if missing, from [`OPENED`] when open.
fn opened() -> io::Result<Arc<Dir>> {
    let mut cached = OPENED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(dir) = cached.as_ref() {
        return Ok(Arc::clone(dir));
    }
    let dir = Arc::new(Dir::open(true)?.expect("made if missing"));
    *cached = Some(Arc::clone(&dir));
    Ok(dir)
}

/// Forgets [`OPENED`]: the directory was removed under us.
fn forget() {
    *OPENED.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// Removes the registry directory if it is empty, so that nothing is left
/// in `/dev/shm` once every object is gone (a supervisor does this as it
/// exits, `ipclab clean` at its end). A writer that finds the directory
/// gone makes it again.
///
/// Never a directory that is not ours: someone else's (or a symlink, a
/// file) at the registry's name makes [`Dir::open`] fail, and that name
/// is left exactly as it was.
pub fn tidy() {
    forget();
    if let Ok(Some(dir)) = Dir::open(false) {
        let _ = dir.remove_if_empty();
    }
}

/// The registry directory is someone else's (or not a directory): one
/// line that says what to do, since nothing can be recorded (and so
/// nothing made) until it is fixed.
fn taken(path: &Path, e: io::Error) -> io::Error {
    let hint = if private_runtime_dir().is_some() {
        ""
    } else {
        "; set XDG_RUNTIME_DIR to a private directory of yours to keep the registry there"
    };
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("registry {}: {e}{hint}", path.display()),
    )
}

fn in_registry(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("registry {}: {e}", path.display()))
}

/// A file in the registry (a record, or a writer's leftover). Cloning
/// copies the handle, not the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    name: String,
    /// The file written (or read): only it is ever removed.
    id: Identity,
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
        // Another process may have removed the (empty) directory since we
        // opened it: then make it again.
        for _ in 0..TRIES {
            match Self::create_in(file, kind, fields) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => forget(),
                other => return other,
            }
        }
        Err(in_registry(&dir(), io::Error::other("keeps disappearing")))
    }

    fn create_in(file: &str, kind: Kind, fields: &[(&str, String)]) -> io::Result<Option<Record>> {
        let dir = opened()?;
        let pid = std::process::id();
        let tmp = format!("tmp-{pid}-{}", random_hex(16)?);
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut text = format!("kind={}\npid={pid}\ntime={time}\n", kind.as_str());
        for (k, v) in fields {
            text.push_str(&format!("{k}={v}\n"));
        }
        // In a directory removed meanwhile this fails with ENOENT.
        let fd = openat(
            &dir.fd,
            tmp.as_str(),
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::RUSR | Mode::WUSR,
        )
        .map_err(|e| dir.error(&tmp, e))?;
        let id = match Identity::of(&fd) {
            Ok(id) => id,
            Err(e) => {
                // Just made, exclusively, in our 0700 directory: ours to
                // remove by name.
                let _ = rustix::fs::unlinkat(&dir.fd, tmp.as_str(), AtFlags::empty());
                return Err(e);
            }
        };
        let linked = rustix::fs::fchmod(&fd, Mode::RUSR | Mode::WUSR)
            .map_err(io::Error::from)
            .and_then(|()| std::fs::File::from(fd).write_all(text.as_bytes()))
            .and_then(|()| {
                linkat(&dir.fd, tmp.as_str(), &dir.fd, file, AtFlags::empty()).map_err(Into::into)
            });
        dir.unlink(&tmp, id)?;
        match linked {
            Ok(()) => Ok(Some(Record {
                name: file.to_string(),
                id,
            })),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(dir.error(file, e)),
        }
    }

    /// Adds `field=value` to the record (one append); an error of kind
    /// `NotFound` if the record is gone.
    pub fn add(&self, field: &str, value: &str) -> io::Result<()> {
        let Some(dir) = Dir::open(false)? else {
            return Err(io::ErrorKind::NotFound.into());
        };
        let fd = openat(
            &dir.fd,
            self.name.as_str(),
            OFlags::WRONLY | OFlags::APPEND | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        if Identity::of(&fd)? != self.id {
            // Not the file we wrote: ours is gone.
            return Err(io::ErrorKind::NotFound.into());
        }
        std::fs::File::from(fd).write_all(format!("{field}={value}\n").as_bytes())
    }

    /// Removes the record (one already gone is no error), then the
    /// registry directory if that was its last record: the directory is
    /// there only while it holds records. (A writer that finds it gone
    /// makes it again.)
    pub fn remove(&self) -> io::Result<()> {
        // Never made just to unlink a file in it.
        let Some(dir) = Dir::open(false)? else {
            return Ok(());
        };
        match dir.unlink(&self.name, self.id) {
            // Removed with its directory: gone too.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => other?,
        }
        tidy();
        Ok(())
    }

    /// Where the file is (to show it).
    pub fn path(&self) -> PathBuf {
        dir().join(&self.name)
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

    /// Every value of `field` (a field added more than once).
    pub fn all<'a>(&'a self, field: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(k, _)| k == field)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `field` as a number.
    pub fn number(&self, field: &str) -> Option<i32> {
        self.get(field)?.parse().ok()
    }

    fn parse(record: Record, text: &str) -> Option<Entry> {
        let fields: Vec<(String, String)> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let get = |f: &str| fields.iter().find(|(k, _)| k == f).map(|(_, v)| v.clone());
        let kind = get("kind")?;
        let kind = Kind::ALL.into_iter().find(|k| k.as_str() == kind)?;
        Some(Entry {
            record,
            kind,
            pid: get("pid")?.parse().ok()?,
            time: get("time")?.parse().ok()?,
            fields,
        })
    }
}

/// A writer's leftover `tmp-<pid>-…` file (killed before it linked its
/// record) and that pid.
pub type Partial = (Record, i32);

/// Every record in the registry, and the [`Partial`] leftovers.
pub fn read_all() -> io::Result<(Vec<Entry>, Vec<Partial>)> {
    let Some(dir) = Dir::open(false)? else {
        return Ok(Default::default());
    };
    let (mut entries, mut partial) = (Vec::new(), Vec::new());
    for e in rustix::fs::Dir::read_from(&dir.fd)? {
        let name = e?.file_name().to_string_lossy().into_owned();
        if name == "." || name == ".." {
            continue;
        }
        if let Some(rest) = name.strip_prefix("tmp-") {
            let st = match rustix::fs::statat(&dir.fd, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(dir.error(&name, e)),
            };
            let pid = rest.split('-').next().and_then(|p| p.parse().ok());
            if let (Some(pid), true) = (pid, is_our_file(&st)) {
                let id = Identity::from_stat(&st);
                partial.push((Record { name, id }, pid));
            }
            continue;
        }
        // Non-blocking: a FIFO in the way must not hang the listing.
        let fd = match openat(
            &dir.fd,
            name.as_str(),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::LOOP) => continue,
            Err(e) => return Err(dir.error(&name, e)),
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| dir.error(&name, e))?;
        if !is_our_file(&st) {
            continue;
        }
        let record = Record {
            name: name.clone(),
            id: Identity::from_stat(&st),
        };
        let mut text = String::new();
        std::fs::File::from(fd)
            .read_to_string(&mut text)
            .map_err(|e| dir.error(&name, e))?;
        // A record that does not parse was not written by ipclab: left alone.
        if let Some(entry) = Entry::parse(record, &text) {
            entries.push(entry);
        }
    }
    entries.sort_by_key(|e| (e.time, e.record.name.clone()));
    Ok((entries, partial))
}

/// Only a regular file of ours can be a record (or a writer's leftover).
fn is_our_file(st: &rustix::fs::Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::RegularFile && owned::ours(st)
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
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(rec.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (entries, _) = read_all().unwrap();
        let e = entries.iter().find(|e| e.record == rec).unwrap();
        assert_eq!(e.pid, std::process::id() as i32);
        assert_eq!((e.get("root"), e.number("id")), (Some("/nowhere"), Some(7)));
        rec.remove().unwrap();
        rec.remove().unwrap();
        assert!(!rec.path().exists());
        tidy();
    }

    /// A scratch directory path under the temporary directory.
    fn scratch() -> PathBuf {
        std::env::temp_dir().join(format!("registry-test-{}", random_hex(8).unwrap()))
    }

    #[test]
    fn a_directory_short_of_our_bits_is_made_0700() {
        use std::os::unix::fs::PermissionsExt;
        let path = scratch();
        std::fs::create_dir(&path).unwrap();
        // What mkdir(0700) gives under umask 0277.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o500)).unwrap();
        let opened = Dir::open_at(path.clone(), false);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        std::fs::remove_dir(&path).unwrap();
        assert!(opened.unwrap().is_some());
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn someone_elses_directory_is_one_clear_line() {
        let path = scratch();
        std::os::unix::fs::symlink("/", &path).unwrap();
        let e = Dir::open_at(path.clone(), true).err();
        std::fs::remove_file(&path).unwrap();
        let text = e.expect("a symlink is refused").to_string();
        assert!(
            !text.contains('\n') && text.contains(&*path.to_string_lossy()),
            "{text}"
        );
        if rustix::process::geteuid().is_root() {
            // Root can hand a directory to another user.
            std::fs::create_dir(&path).unwrap();
            let nobody = rustix::process::Uid::from_raw(65534);
            rustix::fs::chown(&path, Some(nobody), None).unwrap();
            let e = Dir::open_at(path.clone(), true).err();
            std::fs::remove_dir(&path).unwrap();
            let e = e.expect("someone else's directory is refused");
            assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
            assert!(e.to_string().contains("not owned by us"), "{e}");
        }
    }
}
