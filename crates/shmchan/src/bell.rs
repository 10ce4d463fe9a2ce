//! A side's doorbell, for channels made through a connection (see
//! `listener.rs`): a pipe whose read end this side polls and whose write
//! end only the peer holds.
//!
//! A pipe rather than an eventfd: the peer holds only the write end, so it
//! can ring but never drain (steal) our wake-ups; and when every write end
//! is closed (the peer closed its end, or its process is gone however it
//! died) the read end reports hang-up, which makes the same descriptor the
//! kernel's death notice.

use std::os::fd::OwnedFd;

/// One side's doorbell, and the bell of its peer.
#[derive(Debug)]
pub(crate) struct Bell {
    /// The read end of this side's pipe: readable when the peer rang, and
    /// hung up once every write end is closed.
    #[allow(dead_code)] // rung and polled by the readiness work
    pub(crate) listen: OwnedFd,
    /// The write end of the peer's pipe.
    #[allow(dead_code)]
    pub(crate) ring: OwnedFd,
}
