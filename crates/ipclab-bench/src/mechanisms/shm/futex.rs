//! Semaphores as futex words in the segment: `futex(FUTEX_WAIT)` and
//! `futex(FUTEX_WAKE)` directly, without a library in between.
//!
//! Each semaphore is a monotonic `posted` counter with one poster and one
//! waiter; the waiter counts what it has taken in private memory, so a unit
//! is available while `posted != taken`. The poster makes one system call
//! only when the waiter has said it sleeps (`waiting`): the waiter stores
//! `waiting` then loads `posted`, the poster stores `posted` then loads
//! `waiting`, both SeqCst, so at least one of them sees the other (and
//! `FUTEX_WAIT` itself refuses to sleep once `posted` has moved).
//! The futexes are shared, not `FUTEX_PRIVATE_FLAG`: the kernel finds the
//! waiter by the page, whatever address each process mapped it at.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};

use rustix::io::Errno;
use rustix::thread::futex;

use super::cleanup::Cleanup;
use super::region::Side;
use super::semaphores::{BLOCK, Sem, Semaphores, SyncArea, WAIT_SLICE, Waited};

/// One semaphore's futex word and its sleeping flag, alone in a block.
#[repr(C)]
pub struct Counter {
    /// Units posted since the start (wrapping).
    pub posted: AtomicU32,
    /// 1 while the waiter is (about to be) asleep in `FUTEX_WAIT`.
    pub waiting: AtomicU32,
}

const _: () = assert!(size_of::<Counter>() <= BLOCK);

/// Writes each counter's initial value into the area.
pub fn init_counters(initial: [u32; Sem::COUNT], area: SyncArea) {
    for sem in Sem::all() {
        // SAFETY: the area is live during `create` (the `Semaphores`
        // contract) and each block is aligned for a `Counter`.
        let c = unsafe { counter(area, sem) };
        c.posted.store(initial[sem.index()], Ordering::Relaxed);
        c.waiting.store(0, Ordering::Relaxed);
    }
}

/// # Safety
/// `area` must be live for the returned lifetime.
pub unsafe fn counter<'a>(area: SyncArea, sem: Sem) -> &'a Counter {
    // SAFETY: blocks are 128-byte aligned, `BLOCK` bytes long, inside the
    // live area; atomics are valid for any bytes.
    unsafe { &*area.block(sem).cast::<Counter>() }
}

/// What a side knows of the four counters.
pub struct Local {
    area: SyncArea,
    /// The value this side last stored in each counter it posts to.
    posted: [u32; Sem::COUNT],
    /// Units this side has taken from each counter it waits on.
    taken: [u32; Sem::COUNT],
}

impl Local {
    pub fn new(area: SyncArea, initial: [u32; Sem::COUNT]) -> Self {
        Local {
            area,
            posted: initial,
            taken: [0; Sem::COUNT],
        }
    }

    /// The counter of `sem`, for use within one call on `self` (the
    /// reference is not tied to `self`, so that `take_if` may follow).
    pub fn counter<'a>(&self, sem: Sem) -> &'a Counter {
        // SAFETY: `Semaphores::open`'s caller keeps the area mapped while
        // `self` lives, and callers drop the reference before returning.
        unsafe { counter(self.area, sem) }
    }

    /// Takes a unit if `posted` (already loaded) shows one.
    pub fn take_if(&mut self, sem: Sem, posted: u32) -> bool {
        let taken = &mut self.taken[sem.index()];
        if posted != *taken {
            *taken = taken.wrapping_add(1);
            true
        } else {
            false
        }
    }

    pub fn taken(&self, sem: Sem) -> u32 {
        self.taken[sem.index()]
    }

    /// The next value to store in `sem`'s counter.
    pub fn next_post(&mut self, sem: Sem) -> u32 {
        let p = &mut self.posted[sem.index()];
        *p = p.wrapping_add(1);
        *p
    }
}

/// Futex wait and wake on words in the segment.
pub struct Futex(Local);

fn slice() -> futex::Timespec {
    futex::Timespec {
        tv_sec: WAIT_SLICE.as_secs() as _,
        tv_nsec: WAIT_SLICE.subsec_nanos() as _,
    }
}

impl Semaphores for Futex {
    type Handle = ();

    fn create(initial: [u32; Sem::COUNT], area: SyncArea, _: &mut Cleanup) -> io::Result<()> {
        init_counters(initial, area);
        Ok(())
    }

    unsafe fn open(
        _: &mut (),
        area: SyncArea,
        _: Side,
        initial: [u32; Sem::COUNT],
    ) -> io::Result<Self> {
        Ok(Futex(Local::new(area, initial)))
    }

    fn post(&mut self, sem: Sem, _: u32) -> io::Result<()> {
        let value = self.0.next_post(sem);
        let c = self.0.counter(sem);
        // SeqCst: with the waiter's SeqCst store of `waiting` and load of
        // `posted` in `wait`, one of us sees the other. Its Release part
        // pairs with the Acquire loads of `posted` in `wait`.
        c.posted.store(value, Ordering::SeqCst);
        if c.waiting.load(Ordering::SeqCst) != 0 {
            futex::wake(&c.posted, futex::Flags::empty(), 1)?;
        }
        Ok(())
    }

    fn wait(&mut self, sem: Sem) -> io::Result<Waited> {
        let c = self.0.counter(sem);
        // Acquire: pairs with the SeqCst store in `post`.
        let seen = c.posted.load(Ordering::Acquire);
        if self.0.take_if(sem, seen) {
            return Ok(Waited::Unit);
        }
        // SeqCst: pairs with the SeqCst store and load in `post` (see the
        // module comment).
        c.waiting.store(1, Ordering::SeqCst);
        let seen = c.posted.load(Ordering::SeqCst);
        let slept = if seen == self.0.taken(sem) {
            // Sleeps only while `posted` still equals what we have taken.
            match futex::wait(&c.posted, futex::Flags::empty(), seen, Some(&slice())) {
                Ok(()) | Err(Errno::AGAIN | Errno::TIMEDOUT | Errno::INTR) => Ok(()),
                Err(e) => Err(e),
            }
        } else {
            Ok(())
        };
        // Relaxed: only saves the poster a wake-up; a stale 1 costs one
        // spare FUTEX_WAKE.
        c.waiting.store(0, Ordering::Relaxed);
        slept?;
        // Acquire: pairs with the SeqCst store in `post`.
        let seen = c.posted.load(Ordering::Acquire);
        Ok(if self.0.take_if(sem, seen) {
            Waited::Unit
        } else {
            Waited::Nothing
        })
    }

    fn interrupt(&mut self, sem: Sem) {
        let _ = futex::wake(&self.0.counter(sem).posted, futex::Flags::empty(), u32::MAX);
    }
}
