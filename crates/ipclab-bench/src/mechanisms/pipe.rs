//! `pipe`: two anonymous pipes, one each way, inherited across `fork`.

use std::io;
use std::os::fd::OwnedFd;

use rustix::pipe::{PipeFlags, pipe_with};

use super::framed::FramedStream;
use crate::machine::read_proc;
use crate::transport::{
    ChannelConfig, Copies, Endpoint, Family, Info, Limit, Pair, Prepared, Transport,
};

pub struct Pipe;

struct Pipes {
    to_server: (OwnedFd, OwnedFd),
    to_client: (OwnedFd, OwnedFd),
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
        vec![
            Limit::new(
                "pipe buffer (default)",
                format!("{} bytes", pipe_buffer_size()),
            ),
            Limit::new("fs.pipe-max-size", read_proc("/proc/sys/fs/pipe-max-size")),
        ]
    }

    fn prepare(&self, _: &ChannelConfig) -> io::Result<Prepared> {
        Ok(Prepared::new(Pipes {
            to_server: pipe_with(PipeFlags::CLOEXEC)?,
            to_client: pipe_with(PipeFlags::CLOEXEC)?,
        }))
    }
}

impl Pair for Pipes {
    fn server(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        Ok(Box::new(FramedStream::new(
            self.to_server.0,
            self.to_client.1,
        )))
    }

    fn client(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        Ok(Box::new(FramedStream::new(
            self.to_client.0,
            self.to_server.1,
        )))
    }
}

/// The capacity of a new pipe on this machine (`F_GETPIPE_SZ`).
fn pipe_buffer_size() -> usize {
    pipe_with(PipeFlags::CLOEXEC)
        .and_then(|(r, _w)| rustix::pipe::fcntl_getpipe_size(&r))
        .unwrap_or(0)
}
