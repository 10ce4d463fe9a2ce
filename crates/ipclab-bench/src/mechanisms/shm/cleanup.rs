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
//! A name is removed only while it still leads to the object made (device,
//! inode and owner, [`crate::objects::owned`]): one a side removed and
//! someone else planted again is left alone.

use std::io;
use std::path::{Path, PathBuf};

use super::names::{sem_path, shm_path};
use super::{sysv_msg, sysv_sem, sysv_shm};
use crate::objects::owned::{self, Identity};
use crate::objects::registry::Record;

/// One object that outlives the processes using it.
#[derive(Debug, Clone)]
pub enum Object {
    /// `shm_open` name, `/dev/shm/NAME`, and the object made.
    PosixShm(String, Identity),
    /// `sem_open` name, `/dev/shm/sem.NAME`, and the file made.
    PosixSem(String, Identity),
    /// A System V segment and the process that created it (its id may be
    /// reused by someone else after the sides removed it).
    SysvShm {
        id: i32,
        creator: i32,
        record: Record,
    },
    SysvSem(i32, Record),
    SysvMsg(i32, Record),
    /// A file, then the private directory holding it (and which ones).
    File(PathBuf, Identity),
    Dir(PathBuf, Identity),
}

impl Object {
    /// Removes the object; one already gone is no error.
    pub fn remove(&self) -> io::Result<()> {
        match self {
            Object::PosixShm(name, id) => owned::remove_if(Path::new(&shm_path(name)), *id, false),
            Object::PosixSem(name, id) => owned::remove_if(Path::new(&sem_path(name)), *id, false),
            Object::SysvShm {
                id,
                creator,
                record,
            } => sysv_shm::remove_if_created_by(*id, *creator).and_then(|()| record.remove()),
            Object::SysvSem(id, record) => sysv_sem::remove(*id).and_then(|()| record.remove()),
            Object::SysvMsg(id, record) => sysv_msg::remove(*id).and_then(|()| record.remove()),
            Object::File(path, id) => owned::remove_if(path, *id, false),
            Object::Dir(path, id) => owned::remove_if(path, *id, true),
        }
    }

    /// The object's permission bits while it exists; an error (`NotFound`,
    /// or `EINVAL` for a System V id) once it is gone.
    pub fn mode(&self) -> io::Result<u32> {
        use std::os::unix::fs::PermissionsExt;
        let mode = match self {
            Object::PosixShm(name, _) => std::fs::symlink_metadata(shm_path(name))?
                .permissions()
                .mode(),
            Object::PosixSem(name, _) => std::fs::symlink_metadata(sem_path(name))?
                .permissions()
                .mode(),
            Object::SysvShm { id, .. } => sysv_shm::stat(*id)?.shm_perm.mode.into(),
            Object::SysvSem(id, _) => sysv_sem::stat(*id)?.sem_perm.mode.into(),
            Object::SysvMsg(id, _) => sysv_msg::stat(*id)?.msg_perm.mode.into(),
            Object::File(path, _) | Object::Dir(path, _) => {
                std::fs::symlink_metadata(path)?.permissions().mode()
            }
        };
        Ok(mode & 0o7777)
    }
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
