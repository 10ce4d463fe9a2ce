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

#[cfg(not(loom))]
mod fdpass;
#[cfg(not(loom))]
mod liveness;
#[cfg(not(loom))]
mod options;
#[cfg(not(loom))]
mod receiver;
#[cfg(not(loom))]
mod segment;
#[cfg(not(loom))]
mod sender;

pub use error::{Error, SendTimeoutError, TrySendError};
pub use layout::{MAX_CAPACITY, MIN_CAPACITY};
pub use wait::Wait;

#[cfg(not(loom))]
pub use fdpass::{recv_fd, send_fd};
#[cfg(not(loom))]
pub use liveness::PEER_CHECK;
#[cfg(not(loom))]
pub use options::{DEFAULT_CAPACITY, Options};
#[cfg(not(loom))]
pub use receiver::Receiver;
#[cfg(not(loom))]
pub use segment::NAME_PREFIX;
#[cfg(not(loom))]
pub use sender::{Loan, Sender};

#[cfg(all(test, not(loom)))]
mod protocol_tests;

#[cfg(all(test, loom))]
mod loom_tests;
