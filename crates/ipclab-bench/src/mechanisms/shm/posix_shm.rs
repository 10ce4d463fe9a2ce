//! POSIX shared memory: `shm_open`, `ftruncate`, `mmap`, `shm_unlink`.
//!
//! `prepare` creates `/dev/shm/ipclab-<pid>-<32 hex>` with `O_CREAT|O_EXCL`
//! (never adopting a planted object), sets 0600 with `fchmod` (the mode
//! given to `shm_open` is reduced by the umask) and allocates the pages with
//! `fallocate` (so a full `/dev/shm` is an error here, not a `SIGBUS` in a
//! side). Each side opens the name and maps it; once both have, the name
//! is unlinked.

use std::io;
use std::os::fd::OwnedFd;

use rustix::fs::{Mode, fchmod};
use rustix::shm;

use super::cleanup::{Cleanup, Object};
use super::names::{OWNER_ONLY, random_posix_name, shm_path};
use super::region::{
    Init, Mapping, Region, Side, check_file, fault_truncate_later, size_and_allocate,
};
use crate::mechanisms::exclusive::named_error;
use crate::objects::owned::{self, Identity};
use crate::transport::Limit;

/// A POSIX shared memory object, opened by name.
pub struct PosixShm;

pub struct PosixShmHandle {
    name: String,
    /// The object made: only it is ever unlinked.
    id: Identity,
}

/// glibc's `shm_open` adds `O_NOFOLLOW` (a planted symlink fails with
/// `ELOOP`); rustix's does not, so we ask for it.
fn nofollow() -> shm::OFlags {
    shm::OFlags::from_bits_retain(rustix::fs::OFlags::NOFOLLOW.bits())
}

/// Opens the object by name (never through a symlink) and checks it.
fn open_checked(handle: &PosixShmHandle, len: usize) -> io::Result<OwnedFd> {
    let fd = shm::open(
        handle.name.as_str(),
        shm::OFlags::RDWR | nofollow(),
        Mode::empty(),
    )
    .map_err(|e| named_error(&format!("opening {}", shm_path(&handle.name)), e))?;
    check_file("the shared memory object", &fd, len)?;
    Ok(fd)
}

impl PosixShm {
    /// [`Region::create`] under a given name (`/NAME`); fails if the name
    /// exists, whatever it is (`O_EXCL` does not follow a symlink either).
    pub(crate) fn create_named(
        name: String,
        len: usize,
        cleanup: &mut Cleanup,
        init: Init<'_>,
    ) -> io::Result<PosixShmHandle> {
        let fd = shm::open(
            name.as_str(),
            shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR | nofollow(),
            Mode::from_raw_mode(OWNER_ONLY),
        )
        .map_err(|e| named_error(&format!("creating {}", shm_path(&name)), e))?;
        let id = Identity::of(&fd)?;
        cleanup.push(Object::PosixShm(name.clone(), id));
        fchmod(&fd, Mode::from_raw_mode(OWNER_ONLY))?;
        size_and_allocate(&fd, len)?;
        init(&Mapping::shared_fd(&fd, len)?, cleanup)?;
        Ok(PosixShmHandle { name, id })
    }
}

impl Region for PosixShm {
    type Handle = PosixShmHandle;

    fn create(len: usize, cleanup: &mut Cleanup, init: Init<'_>) -> io::Result<PosixShmHandle> {
        PosixShm::create_named(random_posix_name()?, len, cleanup, init)
    }

    fn attach(handle: &mut PosixShmHandle, side: Side, len: usize) -> io::Result<Mapping> {
        let fd = open_checked(handle, len)?;
        fault_truncate_later(&fd, side)?;
        Mapping::shared_fd(&fd, len)
    }

    fn map_again(handle: &PosixShmHandle, len: usize) -> io::Result<Mapping> {
        Mapping::shared_fd(&open_checked(handle, len)?, len)
    }

    fn unlink(handle: &PosixShmHandle) -> io::Result<()> {
        owned::remove_if(
            std::path::Path::new(&shm_path(&handle.name)),
            handle.id,
            false,
        )
    }

    fn limits() -> Vec<Limit> {
        let free = rustix::fs::statvfs("/dev/shm")
            .map(|s| format!("{} MiB", s.f_bavail * s.f_frsize / (1 << 20)))
            .unwrap_or_else(|e| format!("unknown ({e})"));
        vec![Limit::new("/dev/shm free", free)]
    }
}
