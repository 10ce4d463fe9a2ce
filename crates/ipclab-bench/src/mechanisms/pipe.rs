//! `pipe`: two anonymous pipes, one each way, inherited across `fork`.
//!
//! [`Pipes`] is shared with `pipe-sized` (the same pipes, grown with
//! [`Pipes::grow`]) and `vmsplice` (the same pipes, written with
//! `vmsplice`).

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::pipe::{PipeFlags, fcntl_getpipe_size, fcntl_setpipe_size, pipe_with};

use super::framed::FramedStream;
use crate::machine::read_proc;
use crate::transport::{
    ChannelConfig, Copies, Endpoint, Family, Info, Limit, Pair, Prepared, Transport,
};

pub struct Pipe;

const PIPE_MAX_SIZE: &str = "/proc/sys/fs/pipe-max-size";

/// Two pipes: `(read end, write end)` each.
pub struct Pipes {
    to_server: (OwnedFd, OwnedFd),
    to_client: (OwnedFd, OwnedFd),
}

impl Pipes {
    pub fn new() -> io::Result<Self> {
        Ok(Pipes {
            to_server: pipe_with(PipeFlags::CLOEXEC)?,
            to_client: pipe_with(PipeFlags::CLOEXEC)?,
        })
    }

    /// Grows both pipes to hold `bytes` (see [`grow`]); returns the
    /// capacity of each.
    pub fn grow(&self, bytes: usize) -> io::Result<usize> {
        let a = grow(&self.to_server.1, bytes)?;
        let b = grow(&self.to_client.1, bytes)?;
        Ok(a.min(b))
    }

    /// The server's `(rx, tx)`.
    pub fn server_ends(self) -> (OwnedFd, OwnedFd) {
        (self.to_server.0, self.to_client.1)
    }

    /// The client's `(rx, tx)`.
    pub fn client_ends(self) -> (OwnedFd, OwnedFd) {
        (self.to_client.0, self.to_server.1)
    }
}

impl Transport for Pipe {
    fn info(&self) -> Info {
        Info {
            name: "pipe",
            family: Family::MessagePassing,
            sync: "kernel (blocking read)",
            summary: "two anonymous pipes, one each way; length-prefixed frames",
            polls: false,
            copies: Copies::KERNEL,
        }
    }

    fn limits(&self) -> Vec<Limit> {
        limits()
    }

    fn prepare(&self, _: &ChannelConfig) -> io::Result<Prepared> {
        Ok(Prepared::new(Pipes::new()?))
    }
}

impl Pair for Pipes {
    fn server(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        let (rx, tx) = self.server_ends();
        Ok(Box::new(FramedStream::new(rx, tx)))
    }

    fn client(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        let (rx, tx) = self.client_ends();
        Ok(Box::new(FramedStream::new(rx, tx)))
    }
}

/// The limits every pipe mechanism shows.
pub fn limits() -> Vec<Limit> {
    vec![
        Limit::new(
            "pipe buffer (default)",
            format!("{} bytes", pipe_buffer_size()),
        ),
        Limit::new("fs.pipe-max-size", read_proc(PIPE_MAX_SIZE)),
    ]
}

/// The capacity of a new pipe on this machine (`F_GETPIPE_SZ`).
fn pipe_buffer_size() -> usize {
    pipe_with(PipeFlags::CLOEXEC)
        .and_then(|(r, _w)| fcntl_getpipe_size(&r))
        .unwrap_or(0)
}

/// `fs.pipe-max-size`: the largest pipe an unprivileged process may ask for.
pub fn pipe_max_size() -> io::Result<usize> {
    let text = std::fs::read_to_string(PIPE_MAX_SIZE)?;
    text.trim().parse().map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{PIPE_MAX_SIZE} holds {:?}: {e}", text.trim()),
        )
    })
}

/// `fcntl(fd, F_SETPIPE_SZ, …)`—Grows the pipe of `fd` to hold `bytes`, but
/// never past `fs.pipe-max-size` (a process with `CAP_SYS_RESOURCE` may go
/// beyond it; this one does not, so that root measures what a user gets)
/// and never shrinks it. Returns the capacity (`F_GETPIPE_SZ`), which the
/// kernel rounds up to a power of two pages.
///
/// # References
///  - [Linux](https://man7.org/linux/man-pages/man2/fcntl.2.html)
pub fn grow(fd: impl AsFd, bytes: usize) -> io::Result<usize> {
    let now = fcntl_getpipe_size(&fd)?;
    let want = bytes.min(pipe_max_size()?);
    if want <= now {
        return Ok(now);
    }
    fcntl_setpipe_size(&fd, want).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "growing a pipe to {want} bytes (F_SETPIPE_SZ): {e}; \
                 fs.pipe-user-pages-soft/-hard cap the pipe pages of a user"
            ),
        )
    })?;
    fcntl_getpipe_size(&fd).map_err(Into::into)
}
