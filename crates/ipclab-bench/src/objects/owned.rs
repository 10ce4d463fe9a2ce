//! Removing a name only while it still names the object we made.
//!
//! Between our creation of a name and our removal of it, the name may have
//! been removed (by a side, by `ipclab clean`) and planted again by someone
//! else: `unlink(path)` would then remove their object. So every remover
//! keeps the [`Identity`] (device and inode) of the object it made, taken
//! when it made it, and removes the name only if `fstatat` (not following a
//! symlink) finds that very object there, owned by us. Between that check
//! and the `unlinkat` the name cannot change hands: it is ours, in a sticky
//! directory (`/dev/shm`, `/tmp`) or in a private directory of ours, where
//! nobody but us (and root) may remove or rename it.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, Stat, fstat, openat, statat, unlinkat};
use rustix::io::Errno;

/// Which object a name led to: its device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Identity {
    dev: u64,
    ino: u64,
}

impl Identity {
    pub fn from_stat(st: &Stat) -> Identity {
        Identity {
            dev: st.st_dev,
            ino: st.st_ino,
        }
    }

    /// The object `meta` (from `symlink_metadata`) describes.
    pub fn from_metadata(meta: &std::fs::Metadata) -> Identity {
        use std::os::unix::fs::MetadataExt;
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    /// The object open as `fd`.
    pub fn of(fd: impl AsFd) -> io::Result<Identity> {
        Ok(Identity::from_stat(&fstat(fd)?))
    }

    /// The object named `path` (not following a symlink), which must be
    /// ours: for an object just made by name (`mkdir`, `sem_open`), whose
    /// name nobody else can have replaced yet.
    pub fn of_ours(path: &Path) -> io::Result<Identity> {
        let st = statat(CWD, path, AtFlags::SYMLINK_NOFOLLOW)?;
        if !ours(&st) {
            return Err(io::Error::other(format!(
                "{} belongs to uid {}",
                path.display(),
                st.st_uid
            )));
        }
        Ok(Identity::from_stat(&st))
    }
}

/// Whether the object described by `st` belongs to our effective uid.
pub fn ours(st: &Stat) -> bool {
    st.st_uid == rustix::process::geteuid().as_raw()
}

/// Opens the directory that holds `path`, and gives the last component.
fn parent_of(path: &Path) -> io::Result<(OwnedFd, &Path)> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other(format!("{}: no file name", path.display())))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let fd = rustix::fs::open(
        parent,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok((fd, Path::new(name)))
}

/// Removes `name` in `dir` (an empty directory with `is_dir`) if it is the
/// object `id`, owned by us. A name that is gone, or that now names
/// something else, is left alone: not an error.
pub fn remove_at_if(dir: impl AsFd, name: &Path, id: Identity, is_dir: bool) -> io::Result<()> {
    let st = match statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if Identity::from_stat(&st) != id || !ours(&st) {
        return Ok(());
    }
    let flags = if is_dir {
        AtFlags::REMOVEDIR
    } else {
        AtFlags::empty()
    };
    match unlinkat(&dir, name, flags) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// [`remove_at_if`] for a path: a file, or an empty directory with
/// `is_dir`.
pub fn remove_if(path: &Path, id: Identity, is_dir: bool) -> io::Result<()> {
    let (parent, name) = match parent_of(path) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    remove_at_if(&parent, name, id, is_dir)
}

/// Removes the private directory `path` if it is still `id` (ours): first
/// the `files` in it, looked up through the directory's own descriptor
/// (only those we made, each still ours), then the directory if empty.
pub fn remove_dir_if(path: &Path, id: Identity, files: &[&str]) -> io::Result<()> {
    let (parent, name) = match parent_of(path) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let dir = match openat(&parent, name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::LOOP | Errno::NOTDIR) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let st = fstat(&dir)?;
    if Identity::from_stat(&st) != id || !ours(&st) {
        return Ok(());
    }
    for file in files {
        match statat(&dir, *file, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(f) if ours(&f) => match unlinkat(&dir, *file, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            },
            Ok(_) | Err(Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
    }
    remove_at_if(&parent, name, id, true)
}

/// Removes the whole tree `path` if it is still the directory `id`, ours
/// and closed to group and others (so that all in it is ours too);
/// `remove_dir_all` does not follow symlinks.
pub fn remove_tree_if(path: &Path, id: Identity) -> io::Result<()> {
    let st = match statat(CWD, path, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
    if Identity::from_stat(&st) != id || !ours(&st) || !is_dir || st.st_mode & 0o077 != 0 {
        return Ok(());
    }
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// Removes every regular file of ours in `dir` whose name starts with
/// `prefix` (iceoryx2's files in `/dev/shm`); anyone else's file, symlink,
/// directory or FIFO of that name is left alone.
pub fn remove_files_starting_with(dir: &Path, prefix: &str) -> io::Result<()> {
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(&fd)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with(prefix) {
            names.push(name);
        }
    }
    for name in names {
        let st = match statat(&fd, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(e.into()),
        };
        if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile && ours(&st) {
            remove_at_if(&fd, Path::new(&name), Identity::from_stat(&st), false)?;
        }
    }
    Ok(())
}
