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

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

/// `socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC)`: one channel's bell,
/// one end for each side.
pub(crate) fn pair() -> rustix::io::Result<(OwnedFd, OwnedFd)> {
    rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
}

/// One side's end of the channel's doorbell socket pair.
#[derive(Debug)]
pub(crate) struct Bell {
    /// Polled for readability (the peer rang, or hung up); sent on to
    /// ring the peer.
    pub(crate) fd: OwnedFd,
}

/// Reads of a drain before it gives up: an honest peer rings at most
/// once per arming, so a few bytes wait at most; a hostile one that rings
/// without pause must not keep us draining for ever (16 KiB).
const DRAIN_READS: usize = 64;

impl Bell {
    /// Rings the peer: one byte, never waiting. A full socket buffer
    /// (`EAGAIN`) means the peer has rings enough to read; a closed peer
    /// (`EPIPE`) learns nothing more from us: both are ignored.
    pub(crate) fn ring(&self) {
        let _ = rustix::net::send(&self.fd, &[1], SendFlags::DONTWAIT | SendFlags::NOSIGNAL);
    }

    /// Reads the rings that came, never waiting, until none is left;
    /// returns whether the peer has hung up (its end is closed: it closed
    /// the channel or died). A peer that closed with rings of ours unread
    /// shows as `ECONNRESET` once before the end of file: a hang-up too,
    /// as is any error but `EAGAIN` (an edge-triggered poller reports a
    /// hang-up once, so one missed here would never come again).
    pub(crate) fn drain(&self) -> bool {
        let mut buf = [0u8; 256];
        for _ in 0..DRAIN_READS {
            match rustix::net::recv(&self.fd, &mut buf, RecvFlags::DONTWAIT) {
                Ok((0, _)) => return true,
                Ok(_) | Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return false,
                Err(_) => return true,
            }
        }
        false
    }

    pub(crate) fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
