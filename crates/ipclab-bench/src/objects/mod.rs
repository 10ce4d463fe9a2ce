//! ipclab's IPC objects, made recognisable, listed and cleaned
//! (`ipclab ls`, `ipclab clean`).
//!
//! Two marks make "ipclab's" exact:
//! - a *name* `ipclab-<creator pid>-<32 hex>` ([`marks`]) for everything
//!   that has a listable name: POSIX shared memory and named semaphores
//!   (`/dev/shm`), private directories in the temporary directory (mmap-file,
//!   fifo); shmchan names its segments `shmchan-<pid>-<32 hex>`;
//! - a *record* in a private registry ([`registry`]) for the rest: System V
//!   segments, semaphore sets and queues (keys in `0x1cab0000..=0x1cabffff`),
//!   POSIX message queues, iceoryx2's files, and for zenoh's segments
//!   (named by zenoh when it makes them) the time a cell began and its
//!   sides' pids. Written before the object is made, removed after it is
//!   gone.
//!
//! | file | concern |
//! |---|---|
//! | `marks.rs` | marked names: make, recognise |
//! | `registry.rs` | the records; System V keys |
//! | `sysv.rs` | `/proc/sysvipc` and checked `IPC_RMID` |
//! | `owned.rs` | removing a name only while it names our object |
//! | `listing.rs` | `ls`: find everything of ours |
//! | `cleaning.rs` | `clean`: remove what a dead creator left |
//! | `show.rs` | `ls` output |
//! | `zenoh_shm.rs` | zenoh's segments: find, tell held from dangling, remove |

pub mod cleaning;
pub mod listing;
pub mod marks;
pub mod owned;
pub mod registry;
pub mod show;
pub mod sysv;
pub mod zenoh_shm;
