//! shmchan: a bounded single-producer single-consumer channel of byte
//! messages between two processes, in shared memory.

#![warn(unsafe_op_in_unsafe_fn)]

mod consumer;
mod error;
mod layout;
mod producer;
mod ring;
mod sync;
mod wait;

pub use error::{Error, SendTimeoutError, TrySendError};
pub use layout::{MAX_CAPACITY, MIN_CAPACITY};
pub use wait::Wait;

#[cfg(all(test, not(loom)))]
mod protocol_tests;

#[cfg(all(test, loom))]
mod loom_tests;
