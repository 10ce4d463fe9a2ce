//! Named POSIX semaphores: `sem_open`, `sem_timedwait`, `sem_post`,
//! `sem_unlink`.
//!
//! `sem_open(name, O_CREAT|O_EXCL, 0600, value)` creates
//! `/dev/shm/sem.ipclab-<pid>-<32 hex>` with the mode reduced by the umask, so
//! `prepare` sets 0600 on that file with `chmod` afterwards (it can only
//! have been stricter, never looser). Each side opens the four names; once
//! both have, they are unlinked.

use std::ffi::CString;
use std::io;
use std::ptr::NonNull;

use rustix::fs::Mode;
use rustix::io::Errno;
use rustix::time::{ClockId, clock_gettime};

use super::cleanup::{Cleanup, Object};
use super::names::{OWNER_ONLY, check_mode, random_posix_name, sem_path};
use super::region::Side;
use super::semaphores::{Sem, Semaphores, SyncArea, WAIT_SLICE, Waited};
use crate::mechanisms::exclusive::named_error;
use crate::objects::owned::{self, Identity};

/// An open named semaphore, closed on drop.
struct NamedSem(NonNull<libc::sem_t>);

impl NamedSem {
    /// `sem_open(name, oflag[, mode, value])`.
    fn open(name: &str, create: Option<u32>) -> io::Result<NamedSem> {
        let c = CString::new(name).map_err(|_| Errno::INVAL)?;
        // SAFETY: `c` is NUL-terminated and outlives the call; with
        // O_CREAT the variadic arguments are the mode and the value, passed
        // as C's default promotions expect.
        let sem = unsafe {
            match create {
                Some(value) => libc::sem_open(
                    c.as_ptr(),
                    libc::O_CREAT | libc::O_EXCL,
                    OWNER_ONLY as libc::c_uint,
                    value as libc::c_uint,
                ),
                None => libc::sem_open(c.as_ptr(), 0),
            }
        };
        if sem == libc::SEM_FAILED {
            let verb = if create.is_some() {
                "creating"
            } else {
                "opening"
            };
            return Err(named_error(
                &format!("{verb} the semaphore {} (sem_open)", sem_path(name)),
                io::Error::last_os_error(),
            ));
        }
        NonNull::new(sem)
            .map(NamedSem)
            .ok_or_else(|| io::Error::other("sem_open returned NULL"))
    }

    fn ptr(&self) -> *mut libc::sem_t {
        self.0.as_ptr()
    }
}

impl Drop for NamedSem {
    fn drop(&mut self) {
        // SAFETY: the semaphore came from `sem_open` and is closed once.
        unsafe { libc::sem_close(self.ptr()) };
    }
}

/// Creates the semaphore `name` (`/NAME`) holding `value`, mode 0600, and
/// closes it; fails if the name exists (glibc links its new file to the
/// name, and `link` never replaces nor follows what is there). Gives the
/// file made: only it is ever unlinked.
pub(crate) fn create_named(name: &str, value: u32, cleanup: &mut Cleanup) -> io::Result<Identity> {
    // Closed at once: `prepare` only makes them.
    drop(NamedSem::open(name, Some(value))?);
    let path = sem_path(name);
    // Ours, just made, in sticky /dev/shm: nobody else can have replaced it.
    let id = Identity::of_ours(std::path::Path::new(&path))?;
    cleanup.push(Object::PosixSem(name.to_string(), id));
    // The file is ours (just created, in sticky /dev/shm): chmod by path.
    rustix::fs::chmod(path.as_str(), Mode::from_raw_mode(OWNER_ONLY))?;
    check_mode(&path, rustix::fs::stat(path.as_str())?.st_mode, OWNER_ONLY)?;
    Ok(id)
}

/// Four named POSIX semaphores.
pub struct PosixSem {
    sems: Vec<NamedSem>,
}

pub struct PosixSemHandle {
    /// Each name and the file made under it.
    names: Vec<(String, Identity)>,
}

impl Semaphores for PosixSem {
    type Handle = PosixSemHandle;

    fn create(
        initial: [u32; Sem::COUNT],
        _: SyncArea,
        cleanup: &mut Cleanup,
    ) -> io::Result<PosixSemHandle> {
        let mut names = Vec::new();
        for value in initial {
            let name = random_posix_name()?;
            let id = create_named(&name, value, cleanup)?;
            names.push((name, id));
        }
        Ok(PosixSemHandle { names })
    }

    unsafe fn open(
        handle: &mut PosixSemHandle,
        _: SyncArea,
        _: Side,
        _: [u32; Sem::COUNT],
    ) -> io::Result<Self> {
        let sems = handle
            .names
            .iter()
            .map(|(n, _)| NamedSem::open(n, None))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(PosixSem { sems })
    }

    fn unlink(handle: &PosixSemHandle) -> io::Result<()> {
        handle.names.iter().try_for_each(|(n, id)| {
            owned::remove_if(std::path::Path::new(&sem_path(n)), *id, false)
        })
    }

    fn post(&mut self, sem: Sem, _: u32) -> io::Result<()> {
        // SAFETY: an open semaphore.
        if unsafe { libc::sem_post(self.sems[sem.index()].ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn wait(&mut self, sem: Sem) -> io::Result<Waited> {
        // `sem_timedwait` takes an absolute CLOCK_REALTIME deadline.
        let now = clock_gettime(ClockId::Realtime);
        let ns = now.tv_nsec as i64 + WAIT_SLICE.subsec_nanos() as i64;
        let deadline = libc::timespec {
            tv_sec: (now.tv_sec + WAIT_SLICE.as_secs() as i64 + ns / 1_000_000_000) as _,
            tv_nsec: (ns % 1_000_000_000) as _,
        };
        // SAFETY: an open semaphore and a valid timespec.
        if unsafe { libc::sem_timedwait(self.sems[sem.index()].ptr(), &deadline) } == 0 {
            return Ok(Waited::Unit);
        }
        let e = io::Error::last_os_error();
        match Errno::from_io_error(&e) {
            Some(Errno::TIMEDOUT | Errno::INTR) => Ok(Waited::Nothing),
            _ => Err(e),
        }
    }

    fn interrupt(&mut self, sem: Sem) {
        // A spare unit wakes the peer; the ring then sees that we closed.
        let _ = self.post(sem, 0);
    }
}
