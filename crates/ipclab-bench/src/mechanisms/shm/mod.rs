//! Memory-based IPC: both sides map the same memory, and something else
//! tells them when data is ready.
//!
//! Every mechanism here is one [`Region`] kind (where the memory comes
//! from) and one [`Semaphores`] kind (how the sides wait), put together by
//! [`Shm`] around one engine, the [`ring`]: per direction `segments`
//! buffers of `segment_size` bytes, filled and checked in place, a message
//! larger than a buffer going in rounds.
//!
//! | file | concern |
//! |---|---|
//! | `layout.rs` | where header, semaphores, buffer headers and data sit |
//! | `ring.rs` | the hand-over protocol (the `Endpoint`) |
//! | `ring_fuzz.rs` | tests: fuzzing of the reader over hostile memory (proptest) |
//! | `channel.rs` | region + semaphores = a `Transport` |
//! | `cleanup.rs`, `names.rs` | the guard; random names, 0600 modes |
//! | `sysv_shm.rs`, `posix_shm.rs`, `file.rs`, `memfd.rs`, `anon.rs` | regions |
//! | `sysv_sem.rs`, `posix_sem.rs`, `pthread.rs`, `futex.rs`, `spin.rs`, `sysv_msg.rs`, `eventfd.rs` | semaphores |

mod anon;
mod channel;
pub mod cleanup;
mod eventfd;
pub(crate) mod file;
mod futex;
pub mod layout;
pub(crate) mod memfd;
pub mod names;
pub(crate) mod posix_sem;
pub(crate) mod posix_shm;
mod pthread;
pub mod region;
pub mod ring;
#[cfg(test)]
mod ring_fuzz;
pub mod semaphores;
mod spin;
mod sysv_msg;
mod sysv_sem;
mod sysv_shm;

pub use channel::Shm;
pub use region::Region;
pub use semaphores::Semaphores;

use crate::transport::{Copies, Family, Info};

const fn info(name: &'static str, sync: &'static str, summary: &'static str, polls: bool) -> Info {
    Info {
        name,
        family: Family::SharedMemory,
        sync,
        summary,
        polls,
        copies: Copies::IN_PLACE,
    }
}

pub static SYSV_SHM: Shm<sysv_shm::SysvShm, sysv_sem::SysvSem> = Shm::new(info(
    "sysv-shm",
    "System V semaphores (semtimedop)",
    "System V segment (shmget, shmat), System V semaphore set",
    false,
));

pub static POSIX_SHM_SEM: Shm<posix_shm::PosixShm, posix_sem::PosixSem> = Shm::new(info(
    "posix-shm-sem",
    "named POSIX semaphores (sem_timedwait)",
    "POSIX shared memory (shm_open, mmap), named POSIX semaphores (sem_open)",
    false,
));

pub static SHM_PTHREAD: Shm<posix_shm::PosixShm, pthread::PthreadCond> = Shm::new(info(
    "shm-pthread",
    "robust pthread mutex + condvar",
    "POSIX shared memory with process-shared robust pthread mutexes and condition variables in it",
    false,
));

pub static SHM_FUTEX: Shm<posix_shm::PosixShm, futex::Futex> = Shm::new(info(
    "shm-futex",
    "futex",
    "POSIX shared memory, futex wait/wake on counters in the segment",
    false,
));

pub static SHM_SPIN: Shm<posix_shm::PosixShm, spin::Spin> = Shm::new(info(
    "shm-spin",
    "busy-poll",
    "POSIX shared memory, counters in the segment polled without system calls",
    true,
));

pub static SHM_MQ: Shm<sysv_shm::SysvShm, sysv_msg::SysvMsg> = Shm::new(info(
    "shm-mq",
    "System V message queue (buffer ids)",
    "System V segment for the data; buffer ids (ready, free) through a System V message queue",
    false,
));

pub static SHM_EVENTFD: Shm<posix_shm::PosixShm, eventfd::EventFd> = Shm::new(info(
    "shm-eventfd",
    "eventfd (semaphore mode)",
    "POSIX shared memory, four inherited eventfds as counting semaphores",
    false,
));

pub static MMAP_FILE: Shm<file::MmapFile, futex::Futex> = Shm::new(info(
    "mmap-file",
    "futex",
    "a 0600 file in a private temporary directory, mapped MAP_SHARED; futex",
    false,
));

pub static MEMFD: Shm<memfd::Memfd, futex::Futex> = Shm::new(info(
    "memfd",
    "futex",
    "a sealed memfd passed over a Unix socket (SCM_RIGHTS); futex",
    false,
));

pub static FORK_SHARED: Shm<anon::ForkShared, futex::Futex> = Shm::new(info(
    "fork-shared",
    "futex",
    "an anonymous MAP_SHARED mapping inherited across fork; futex",
    false,
));
