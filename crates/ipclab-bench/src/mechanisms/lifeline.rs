//! Dead-peer detection for sockets that have no end of stream.
//!
//! A datagram socket (Unix or UDP) never reports that its peer went away: a
//! `recv` waiting for a peer that died waits forever. A [`Lifeline`] is one
//! end of a Unix stream socket pair that nobody ever writes to; the other
//! end belongs to the peer process, so when the peer dies (or drops its
//! endpoint) the kernel hangs it up. Receives on the datagram socket carry a
//! timeout ([`WAIT_SLICE`]); only when one expires does the endpoint look at
//! its lifeline, so the common path costs no extra system call.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, poll};
use rustix::io::Errno;
use rustix::net::SocketType;
use rustix::net::sockopt::{Timeout, set_socket_timeout};

use super::unix_stream::unix_pair;

/// How long a receive blocks before the endpoint checks that its peer lives.
pub const WAIT_SLICE: Duration = Duration::from_millis(200);

/// Makes the two ends of a lifeline: one for the server, one for the client.
pub fn lifelines() -> io::Result<(Lifeline, Lifeline)> {
    let (a, b) = unix_pair(SocketType::STREAM)?;
    Ok((Lifeline(a), Lifeline(b)))
}

/// This side's end of the lifeline; the peer holds the other end.
pub struct Lifeline(OwnedFd);

impl AsFd for Lifeline {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl Lifeline {
    /// A lifeline over another stream socket that neither end writes to
    /// (a TCP connection, across hosts).
    pub fn from_socket(sock: OwnedFd) -> Lifeline {
        Lifeline(sock)
    }

    /// Whether the peer's end is closed (the peer died or dropped it).
    pub fn peer_gone(&self) -> io::Result<bool> {
        let mut fds = [PollFd::new(&self.0, PollFlags::IN)];
        match poll(&mut fds, Some(&rustix::time::Timespec::default())) {
            // Nobody writes to a lifeline: readable means end of stream.
            Ok(_) => Ok(!fds[0].revents().is_empty()),
            Err(Errno::INTR) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Makes `recv` on `sock` return `EAGAIN` after [`WAIT_SLICE`], so that
    /// a waiting side gets to call [`Lifeline::check`].
    pub fn arm(sock: impl AsFd) -> io::Result<()> {
        set_socket_timeout(sock, Timeout::Recv, Some(WAIT_SLICE))?;
        Ok(())
    }

    /// Called after a receive timed out: an error if the peer is gone.
    pub fn check(&self, waiting_for: &str) -> io::Result<()> {
        if self.peer_gone()? {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                format!("the peer process went away while this side waited for {waiting_for}"),
            ));
        }
        Ok(())
    }
}
