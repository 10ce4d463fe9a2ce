//! How the two sides wait for each other: four counting semaphores, behind
//! one trait with an implementation per kind of synchronisation.
//!
//! Each direction of the ring has a `filled` semaphore (chunks ready for the
//! receiver, initially 0) and a `free` semaphore (buffers the sender may
//! write, initially the number of buffers). The sender waits on `free` and
//! posts `filled`; the receiver waits on `filled` and posts `free`. So each
//! semaphore has exactly one posting and one waiting process.

use std::io;
use std::time::Duration;

use super::cleanup::Cleanup;
use super::region::Side;
use crate::transport::Limit;

/// How long one wait may block before the ring looks whether the peer has
/// gone; a finished peer also wakes the waiter at once (`interrupt`).
pub const WAIT_SLICE: Duration = Duration::from_millis(100);

/// One of the four semaphores: `dir * 2 + (0 filled | 1 free)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sem(usize);

impl Sem {
    pub const COUNT: usize = 4;

    /// Chunks written in direction `dir` and not yet taken.
    pub fn filled(dir: usize) -> Sem {
        Sem(dir * 2)
    }

    /// Buffers of direction `dir` that the sender may write.
    pub fn free(dir: usize) -> Sem {
        Sem(dir * 2 + 1)
    }

    pub fn index(self) -> usize {
        self.0
    }

    pub fn all() -> impl Iterator<Item = Sem> {
        (0..Self::COUNT).map(Sem)
    }
}

/// What one bounded wait found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waited {
    /// One unit taken.
    Unit,
    /// One unit taken, carrying the buffer id the poster named (message
    /// queues); `CLOSED` when a closing peer woke us.
    Slot(u32),
    /// Nothing yet (a timeout or a wake-up without a unit).
    Nothing,
}

/// The buffer id a closing peer sends to wake a waiter on a queue.
pub const CLOSED: u32 = u32::MAX;

/// Where in the segment a kind keeps its per-semaphore state (futex words,
/// pthread mutexes): `Sem::COUNT` blocks of `BLOCK` bytes, each aligned to
/// 128 bytes so that no two semaphores share a cache line.
#[derive(Clone, Copy, Debug)]
pub struct SyncArea(*mut u8);

/// Bytes per semaphore in the sync area.
pub const BLOCK: usize = 256;

impl SyncArea {
    /// # Safety
    /// `base` must point at `Sem::COUNT * BLOCK` bytes of a live mapping,
    /// aligned to 128 bytes.
    pub unsafe fn new(base: *mut u8) -> SyncArea {
        SyncArea(base)
    }

    /// The block of `sem`: `BLOCK` bytes, aligned to 128.
    pub fn block(self, sem: Sem) -> *mut u8 {
        self.0.wrapping_add(sem.index() * BLOCK)
    }
}

/// One kind of synchronisation between the two sides.
pub trait Semaphores: Sized + 'static {
    /// What a side needs to open the semaphores (ids, names, descriptors),
    /// carried from `prepare` across the fork.
    type Handle;

    /// Creates the four semaphores with the `initial` values, in `prepare`;
    /// state kept in the segment goes into `area`, which is only valid
    /// during the call.
    fn create(
        initial: [u32; Sem::COUNT],
        area: SyncArea,
        cleanup: &mut Cleanup,
    ) -> io::Result<Self::Handle>;

    /// Opens the semaphores in a side's process.
    ///
    /// # Safety
    /// `area` must stay mapped for as long as the returned value lives.
    unsafe fn open(
        handle: &mut Self::Handle,
        area: SyncArea,
        side: Side,
        initial: [u32; Sem::COUNT],
    ) -> io::Result<Self>;

    /// Removes names once both sides have opened the semaphores.
    fn unlink(_handle: &Self::Handle) -> io::Result<()> {
        Ok(())
    }

    /// Adds one unit to `sem`; `slot` is the buffer it concerns.
    fn post(&mut self, sem: Sem, slot: u32) -> io::Result<()>;

    /// Takes one unit of `sem`, blocking for about [`WAIT_SLICE`] at most
    /// (System V queues and eventfds block until a unit, an interrupt or
    /// the wake timer's tick arrives).
    fn wait(&mut self, sem: Sem) -> io::Result<Waited>;

    /// Wakes the peer if it waits on `sem`, when this side closes. Kinds
    /// whose waits time out may do nothing.
    fn interrupt(&mut self, _sem: Sem) {}

    /// Limits of this machine that bound the semaphores.
    fn limits() -> Vec<Limit> {
        Vec::new()
    }
}
