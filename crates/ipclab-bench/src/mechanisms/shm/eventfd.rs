//! Semaphores as eventfds: `eventfd(initial, EFD_SEMAPHORE)`, `write`
//! adds a unit, a blocking `read` takes one.
//!
//! The four eventfds are made in `prepare`, before the fork, so both sides
//! inherit them: no names, nothing to remove, and they die with the last
//! process holding them. A closing side adds a spare unit to wake its peer,
//! which then sees that it closed.
//!
//! A `read` has no timeout, and a peer that is killed wakes nobody: the
//! eventfds are non-blocking, and a `read` that finds no unit is followed
//! by a `poll` of [`WAIT_SLICE`], so that the ring gets to look at its
//! lifeline now and then. A unit that is there is still one `read`.

use std::io;
use std::os::fd::OwnedFd;

use rustix::event::{EventfdFlags, PollFd, PollFlags, eventfd, poll};
use rustix::io::{Errno, read, write};

use super::cleanup::Cleanup;
use super::region::Side;
use super::semaphores::{Sem, Semaphores, SyncArea, WAIT_SLICE, Waited};

/// Four eventfds in semaphore mode.
pub struct EventFd {
    fds: Vec<OwnedFd>,
}

impl Semaphores for EventFd {
    type Handle = Vec<OwnedFd>;

    fn create(
        initial: [u32; Sem::COUNT],
        _: SyncArea,
        _: &mut Cleanup,
    ) -> io::Result<Vec<OwnedFd>> {
        initial
            .iter()
            .map(|&v| {
                let flags =
                    EventfdFlags::SEMAPHORE | EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK;
                Ok(eventfd(v, flags)?)
            })
            .collect()
    }

    unsafe fn open(
        handle: &mut Vec<OwnedFd>,
        _: SyncArea,
        _: Side,
        _: [u32; Sem::COUNT],
    ) -> io::Result<Self> {
        Ok(EventFd {
            fds: std::mem::take(handle),
        })
    }

    fn post(&mut self, sem: Sem, _: u32) -> io::Result<()> {
        match write(&self.fds[sem.index()], &1u64.to_ne_bytes()) {
            Ok(8) => Ok(()),
            Ok(n) => Err(io::Error::other(format!("eventfd write of {n} bytes"))),
            Err(e) => Err(e.into()),
        }
    }

    fn wait(&mut self, sem: Sem) -> io::Result<Waited> {
        let fd = &self.fds[sem.index()];
        match take(fd)? {
            Waited::Nothing => {
                let slice = rustix::time::Timespec {
                    tv_sec: WAIT_SLICE.as_secs() as _,
                    tv_nsec: WAIT_SLICE.subsec_nanos() as _,
                };
                match poll(&mut [PollFd::new(fd, PollFlags::IN)], Some(&slice)) {
                    Ok(0) | Err(Errno::INTR) => Ok(Waited::Nothing),
                    Ok(_) => take(fd),
                    Err(e) => Err(e.into()),
                }
            }
            unit => Ok(unit),
        }
    }

    fn interrupt(&mut self, sem: Sem) {
        let _ = self.post(sem, 0);
    }
}

/// One non-blocking `read`: a unit, or nothing there.
fn take(fd: &OwnedFd) -> io::Result<Waited> {
    let mut buf = [0u8; 8];
    match read(fd, &mut buf) {
        // EFD_SEMAPHORE: each read takes exactly 1.
        Ok(8) if u64::from_ne_bytes(buf) == 1 => Ok(Waited::Unit),
        Ok(n) => Err(io::Error::other(format!(
            "eventfd read of {n} bytes, value {}",
            u64::from_ne_bytes(buf)
        ))),
        Err(Errno::AGAIN | Errno::INTR) => Ok(Waited::Nothing),
        Err(e) => Err(e.into()),
    }
}
