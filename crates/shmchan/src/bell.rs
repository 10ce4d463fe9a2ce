//! A side's doorbell, for channels made through a connection (see
//! `listener.rs`): one end of a Unix socket pair per channel, the sender
//! holding one end and the receiver the other.
//!
//! A side rings its peer by sending a byte on its end, and polls its own
//! end for readability. A socket pair rather than an eventfd or a pipe:
//! each end reads only what the other end sent, so a peer can ring but
//! never drain (steal) our wake-ups; `send` with `MSG_NOSIGNAL` never
//! raises `SIGPIPE`; and once the peer's end is closed (the peer closed
//! its end of the channel, or its process is gone however it died) ours
//! reports hang-up, which makes the same descriptor the kernel's death
//! notice.

use std::os::fd::OwnedFd;

/// One side's end of the channel's doorbell socket pair.
#[derive(Debug)]
pub(crate) struct Bell {
    /// Polled for readability (the peer rang, or hung up); sent on to
    /// ring the peer.
    #[allow(dead_code)] // rung and polled by the readiness work
    pub(crate) fd: OwnedFd,
}
