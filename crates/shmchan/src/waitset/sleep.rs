//! The two ways a wait set sleeps: `futex_waitv` over the ends' futex
//! words (the blocking [`WaitSet::wait`](super::WaitSet::wait)), and epoll
//! over the ends' bells (the set's descriptor, and the fallback where the
//! kernel has no `futex_waitv`).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::time::Duration;

use rustix::event::epoll;
use rustix::io::Errno;
use rustix::thread::futex;
use rustix::time::{ClockId, Timespec};

use crate::error::Error;
use crate::sync::AtomicU32;

/// The most words one `futex_waitv` takes (`FUTEX_WAITV_MAX` in the
/// kernel's `include/uapi/linux/futex.h`): the most ends a wait set that
/// sleeps on futexes holds.
pub const FUTEX_WAITV_MAX: usize = 128;

/// How one sleep ended, to the caller: look again either way; `NoWaitv`:
/// the kernel has no `futex_waitv` (before Linux 5.16), use epoll.
pub(crate) enum Slept {
    Again,
    NoWaitv,
}

/// `timeout` from now as an absolute `CLOCK_MONOTONIC` time, which is
/// what `futex_waitv` takes.
fn deadline(timeout: Duration) -> Timespec {
    let now = rustix::time::clock_gettime(ClockId::Monotonic);
    let nanos = now.tv_nsec + i64::from(timeout.subsec_nanos());
    let secs = i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX / 2);
    Timespec {
        tv_sec: now
            .tv_sec
            .saturating_add(secs)
            .saturating_add(nanos / 1_000_000_000),
        tv_nsec: nanos % 1_000_000_000,
    }
}

/// The futex words of one sleep, kept from call to call so that a wait
/// allocates nothing.
#[derive(Default)]
pub(crate) struct Words {
    waits: Vec<futex::Wait>,
}

// SAFETY: the raw pointers in `waits` are only addresses handed to the
// kernel during a call of `sleep`, made by the set that owns the ends
// they point into; nothing dereferences them in this process.
unsafe impl Send for Words {}

impl Words {
    pub(crate) fn clear(&mut self) {
        self.waits.clear();
    }

    /// Adds `word` (in a shared mapping that outlives the next `sleep`),
    /// to sleep on while it holds `expected`.
    pub(crate) fn push(&mut self, word: NonNull<AtomicU32>, expected: u32) {
        let mut w = futex::Wait::new();
        w.val = u64::from(expected);
        w.uaddr = futex::WaitPtr::new(word.as_ptr().cast());
        // A 32-bit word, not `PRIVATE`: it lives in memory shared with
        // another process, whose `FUTEX_WAKE` must find us.
        w.flags = futex::WaitFlags::SIZE_U32;
        self.waits.push(w);
    }

    /// `futex_waitv` over the words for at most `slice`: returns when one
    /// of them is woken or no longer holds its value, or at the end of the
    /// slice. A single word sleeps with plain `futex_wait`, which every
    /// kernel has.
    pub(crate) fn sleep(&self, slice: Duration) -> Result<Slept, Error> {
        let result = match self.waits.as_slice() {
            [] => return Ok(Slept::Again),
            [one] => {
                let ts = Timespec {
                    tv_sec: slice.as_secs().try_into().unwrap_or(i64::MAX),
                    tv_nsec: slice.subsec_nanos().into(),
                };
                // SAFETY: `uaddr` was made in `push` from a `NonNull` to an
                // `AtomicU32` in a mapping that the set's ends keep alive
                // and in place for the whole call (they are borrowed by it).
                let word = unsafe { &*one.uaddr.ptr.cast::<AtomicU32>() };
                futex::wait(word, futex::Flags::empty(), one.val as u32, Some(&ts)).map(|_| 0)
            }
            many => futex::waitv(
                many,
                futex::WaitvFlags::empty(),
                Some(&deadline(slice)),
                ClockId::Monotonic,
            ),
        };
        match result {
            Ok(_) | Err(Errno::AGAIN | Errno::TIMEDOUT | Errno::INTR) => Ok(Slept::Again),
            Err(Errno::NOSYS) => Ok(Slept::NoWaitv),
            Err(e) => Err(e.into()),
        }
    }
}

/// The set's epoll instance, over the bells of its ends; each bell's
/// event carries the end's slot.
pub(crate) struct Poller {
    fd: OwnedFd,
    events: Vec<epoll::Event>,
}

impl Poller {
    pub(crate) fn new() -> Result<Poller, Error> {
        Ok(Poller {
            fd: epoll::create(epoll::CreateFlags::CLOEXEC)?,
            events: Vec::with_capacity(64),
        })
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Watches `bell` for readability (level-triggered: a ring stays
    /// reported until it is drained).
    pub(crate) fn add(&self, bell: BorrowedFd<'_>, slot: usize) -> Result<(), Error> {
        epoll::add(
            &self.fd,
            bell,
            epoll::EventData::new_u64(slot as u64),
            epoll::EventFlags::IN,
        )?;
        Ok(())
    }

    pub(crate) fn delete(&self, bell: BorrowedFd<'_>) {
        // Fails only if it was not registered; nothing to undo then.
        let _ = epoll::delete(&self.fd, bell);
    }

    /// Waits at most `timeout` (`Some(ZERO)`: not at all) for rung bells;
    /// calls `rung` with the slot of each.
    pub(crate) fn poll(
        &mut self,
        timeout: Duration,
        mut rung: impl FnMut(usize),
    ) -> Result<(), Error> {
        let ts = Timespec {
            tv_sec: timeout.as_secs().try_into().unwrap_or(i64::MAX),
            tv_nsec: timeout.subsec_nanos().into(),
        };
        self.events.clear();
        match epoll::wait(
            &self.fd,
            rustix::buffer::spare_capacity(&mut self.events),
            Some(&ts),
        ) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        for ev in &self.events {
            rung(ev.data.u64() as usize);
        }
        Ok(())
    }
}
