//! The guard the supervisor keeps: it removes every named or System V
//! object a channel created, once both sides are reaped.
//!
//! The sides remove names (and `IPC_RMID` the segment) as soon as both have
//! attached; the guard catches what a crashed or never-started side left,
//! and the objects that cannot go earlier (a System V semaphore set or
//! message queue is destroyed at once by `IPC_RMID`). `prepare` registers
//! each object right after creating it, so a failure half-way through
//! `prepare` also leaves nothing behind. A System V object's registry
//! record ([`crate::objects::registry`]) goes once the object is gone.

use std::ffi::CString;
use std::io;
use std::path::PathBuf;

use rustix::io::Errno;

use super::names::{sem_path, shm_path};
use super::{sysv_msg, sysv_sem, sysv_shm};
use crate::objects::registry::Record;

/// One object that outlives the processes using it.
#[derive(Debug, Clone)]
pub enum Object {
    /// `shm_open` name, `/dev/shm/NAME`.
    PosixShm(String),
    /// `sem_open` name, `/dev/shm/sem.NAME`.
    PosixSem(String),
    /// A System V segment and the process that created it (its id may be
    /// reused by someone else after the sides removed it).
    SysvShm {
        id: i32,
        creator: i32,
        record: Record,
    },
    SysvSem(i32, Record),
    SysvMsg(i32, Record),
    /// A file, then the private directory holding it.
    File(PathBuf),
    Dir(PathBuf),
}

impl Object {
    /// Removes the object; one already gone is no error.
    pub fn remove(&self) -> io::Result<()> {
        let gone = |r: io::Result<()>| match r {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            r => r,
        };
        match self {
            Object::PosixShm(name) => gone(rustix::shm::unlink(name.as_str()).map_err(Into::into)),
            Object::PosixSem(name) => gone(sem_unlink(name)),
            Object::SysvShm {
                id,
                creator,
                record,
            } => sysv_shm::remove_if_created_by(*id, *creator).and_then(|()| record.remove()),
            Object::SysvSem(id, record) => sysv_sem::remove(*id).and_then(|()| record.remove()),
            Object::SysvMsg(id, record) => sysv_msg::remove(*id).and_then(|()| record.remove()),
            Object::File(path) => gone(std::fs::remove_file(path)),
            Object::Dir(path) => gone(std::fs::remove_dir(path)),
        }
    }

    /// The object's permission bits while it exists; an error (`NotFound`,
    /// or `EINVAL` for a System V id) once it is gone.
    pub fn mode(&self) -> io::Result<u32> {
        use std::os::unix::fs::PermissionsExt;
        let mode = match self {
            Object::PosixShm(name) => std::fs::symlink_metadata(shm_path(name))?
                .permissions()
                .mode(),
            Object::PosixSem(name) => std::fs::symlink_metadata(sem_path(name))?
                .permissions()
                .mode(),
            Object::SysvShm { id, .. } => sysv_shm::stat(*id)?.shm_perm.mode.into(),
            Object::SysvSem(id, _) => sysv_sem::stat(*id)?.sem_perm.mode.into(),
            Object::SysvMsg(id, _) => sysv_msg::stat(*id)?.msg_perm.mode.into(),
            Object::File(path) | Object::Dir(path) => {
                std::fs::symlink_metadata(path)?.permissions().mode()
            }
        };
        Ok(mode & 0o7777)
    }
}

/// `sem_unlink(name)`—Removes a named POSIX semaphore.
pub fn sem_unlink(name: &str) -> io::Result<()> {
    let c = CString::new(name).map_err(|_| Errno::INVAL)?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call.
    if unsafe { libc::sem_unlink(c.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Everything a channel created that outlives processes, removed on drop.
#[derive(Debug, Default)]
pub struct Cleanup {
    objects: Vec<Object>,
}

impl Cleanup {
    pub fn push(&mut self, object: Object) {
        self.objects.push(object);
    }

    /// What this guard will remove (the tests inspect their modes).
    pub fn objects(&self) -> &[Object] {
        &self.objects
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // Newest first: a file before its directory.
        for object in self.objects.iter().rev() {
            if let Err(e) = object.remove() {
                eprintln!("ipclab: could not remove {object:?}: {e}");
            }
        }
    }
}
