//! Semaphores as eventfds: `eventfd(initial, EFD_SEMAPHORE)`, `write`
//! adds a unit, a blocking `read` takes one.
//!
//! The four eventfds are made in `prepare`, before the fork, so both sides
//! inherit them: no names, nothing to remove, and they die with the last
//! process holding them. A closing side adds a spare unit to wake its peer,
//! which then sees that it closed.
//!
//! A `read` has no timeout, and a peer that is killed wakes nobody: each
//! side's [`WakeTimer`] interrupts a blocked `read` every 100 ms (`EINTR`),
//! so that the ring gets to look at its lifeline now and then. The wait
//! itself stays one blocking `read`, as an eventfd user would write it.

use std::io;
use std::os::fd::OwnedFd;

use rustix::event::{EventfdFlags, eventfd};
use rustix::io::{Errno, read, write};

use super::cleanup::Cleanup;
use super::region::Side;
use super::semaphores::{Sem, Semaphores, SyncArea, Waited};
use crate::mechanisms::wake_timer::WakeTimer;

/// Four eventfds in semaphore mode.
pub struct EventFd {
    fds: Vec<OwnedFd>,
    /// Breaks a blocked `read` now and then (see the module's notes).
    _wake: WakeTimer,
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
            .map(|&v| Ok(eventfd(v, EventfdFlags::SEMAPHORE | EventfdFlags::CLOEXEC)?))
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
            _wake: WakeTimer::start()?,
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
        let mut buf = [0u8; 8];
        match read(&self.fds[sem.index()], &mut buf) {
            // EFD_SEMAPHORE: each read takes exactly 1.
            Ok(8) if u64::from_ne_bytes(buf) == 1 => Ok(Waited::Unit),
            Ok(n) => Err(io::Error::other(format!(
                "eventfd read of {n} bytes, value {}",
                u64::from_ne_bytes(buf)
            ))),
            // The wake timer's tick (or any signal): the ring looks at its
            // lifeline, then waits again.
            Err(Errno::INTR) => Ok(Waited::Nothing),
            Err(e) => Err(e.into()),
        }
    }

    fn interrupt(&mut self, sem: Sem) {
        let _ = self.post(sem, 0);
    }
}
