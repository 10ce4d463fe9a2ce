//! System V shared memory: `shmget`, `shmat`, `shmdt`, `shmctl(IPC_RMID)`.
//!
//! The key is a fresh one of ipclab's range, recorded in the registry
//! first ([`crate::objects::registry`]), so that `ipclab ls` can find the
//! segment; the sides never use it: the id travels to them across `fork`. System V modes are not reduced by the umask, so the 0600
//! given to `shmget` is the mode. The segment is marked for removal
//! (`IPC_RMID`) as soon as both sides are attached; the kernel frees it at
//! the last detach, so even a `kill -9` of both sides leaves nothing.

use std::io;
use std::mem::MaybeUninit;
use std::ptr::NonNull;

use super::cleanup::{Cleanup, Object};
use super::names::{OWNER_ONLY, check_mode};
use super::region::{Init, Mapping, Region, Side};
use crate::machine::read_proc;
use crate::objects::registry::{self, Kind, Record};
use crate::transport::{Limit, protocol_error};

/// A System V segment, attached by id.
pub struct SysvShm;

pub struct SysvShmHandle {
    id: i32,
}

fn last_error(call: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{call}: {e}"))
}

/// `shmget(key, len, IPC_CREAT|IPC_EXCL|0600)` with a recorded key of
/// ipclab's range.
fn create(len: usize) -> io::Result<(i32, Record)> {
    registry::create_sysv(Kind::SysvShm, |key| {
        // SAFETY: plain system call with integer arguments.
        let id = unsafe {
            libc::shmget(
                key,
                len,
                libc::IPC_CREAT | libc::IPC_EXCL | OWNER_ONLY as i32,
            )
        };
        if id < 0 {
            return Err(last_error("shmget"));
        }
        Ok(id)
    })
}

/// `shmctl(id, IPC_STAT)`—The segment's size, mode, creator and attaches.
/// The error keeps its errno (`EINVAL`/`EIDRM`: no such segment).
pub fn stat(id: i32) -> io::Result<libc::shmid_ds> {
    let mut ds = MaybeUninit::<libc::shmid_ds>::uninit();
    // SAFETY: `ds` is a writable `shmid_ds` that IPC_STAT fills.
    if unsafe { libc::shmctl(id, libc::IPC_STAT, ds.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: IPC_STAT succeeded, so the kernel filled every field.
    Ok(unsafe { ds.assume_init() })
}

/// `shmctl(id, IPC_RMID)`—Frees the segment at its last detach.
fn remove(id: i32) -> io::Result<()> {
    // SAFETY: IPC_RMID reads no buffer.
    if unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) } != 0 {
        return Err(last_error("shmctl(IPC_RMID)"));
    }
    Ok(())
}

/// The guard's removal: only a segment this process created (a removed
/// segment's id may since belong to someone else), and one already gone is
/// no error.
pub fn remove_if_created_by(id: i32, creator: i32) -> io::Result<()> {
    match stat(id) {
        Ok(ds) if ds.shm_cpid == creator => remove(id),
        Ok(_) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EIDRM)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// `shmat(id, NULL, 0)`—Attaches the segment read-write, checking that it
/// holds at least `len` bytes.
fn attach(id: i32, len: usize) -> io::Result<Mapping> {
    let size = stat(id)
        .map_err(|e| io::Error::new(e.kind(), format!("shmctl(IPC_STAT): {e}")))?
        .shm_segsz;
    if size < len {
        return Err(protocol_error(format!(
            "System V segment {id} has {size} bytes, expected {len}"
        )));
    }
    // SAFETY: a new attachment at an address the kernel picks overlaps no
    // Rust object.
    let ptr = unsafe { libc::shmat(id, std::ptr::null(), 0) };
    if ptr as isize == -1 {
        return Err(last_error("shmat"));
    }
    let ptr = NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("shmat returned NULL"))?;
    // SAFETY: `ptr` was just returned by `shmat` for a segment of `size >=
    // len` bytes, and only this mapping owns it.
    Ok(unsafe { Mapping::from_shmat(ptr, len) })
}

impl Region for SysvShm {
    type Handle = SysvShmHandle;

    fn create(len: usize, cleanup: &mut Cleanup, init: Init<'_>) -> io::Result<SysvShmHandle> {
        let (id, record) = create(len)?;
        cleanup.push(Object::SysvShm {
            id,
            creator: rustix::process::getpid().as_raw_nonzero().get(),
            record,
        });
        check_mode(
            "System V segment",
            u32::from(stat(id)?.shm_perm.mode),
            OWNER_ONLY,
        )?;
        // The supervisor attaches only to write the header, then detaches:
        // the sides attach by id themselves, as separate programs would.
        let map = attach(id, len)?;
        init(&map, cleanup)?;
        Ok(SysvShmHandle { id })
    }

    fn attach(handle: &mut SysvShmHandle, _: Side, len: usize) -> io::Result<Mapping> {
        attach(handle.id, len)
    }

    fn unlink(handle: &SysvShmHandle) -> io::Result<()> {
        remove(handle.id)
    }

    fn map_again(handle: &SysvShmHandle, len: usize) -> io::Result<Mapping> {
        attach(handle.id, len)
    }

    fn limits() -> Vec<Limit> {
        ["shmmax", "shmall", "shmmni", "shm_rmid_forced"]
            .iter()
            .map(|k| {
                Limit::new(
                    format!("kernel.{k}"),
                    read_proc(&format!("/proc/sys/kernel/{k}")),
                )
            })
            .collect()
    }
}
