//! `unix-seqpacket`: a `socketpair(AF_UNIX, SOCK_SEQPACKET)`.
//!
//! The socket keeps record boundaries and delivers in order without loss;
//! a record may not exceed `SO_SNDBUF - 32` bytes, so larger messages go in
//! several records (rounds). Every record carries a one-byte tag, so that
//! no record is empty and a 0-byte read is always the end of the stream;
//! `finish` is `shutdown(SHUT_WR)`. The framing is in [`super::records`].

use std::io;
use std::os::fd::OwnedFd;

use rustix::net::SocketType;

use super::records::{Ending, Records, chunk_for, limits};
use super::unix_stream::unix_pair;
use crate::transport::{
    ChannelConfig, Copies, Endpoint, Family, Info, Limit, Pair, Prepared, Transport,
};

pub struct UnixSeqpacket;

struct Ends {
    server: OwnedFd,
    client: OwnedFd,
    chunk: usize,
}

impl Transport for UnixSeqpacket {
    fn info(&self) -> Info {
        Info {
            name: "unix-seqpacket",
            family: Family::MessagePassing,
            sync: "kernel (blocking recvmsg)",
            summary: "AF_UNIX SOCK_SEQPACKET socketpair; tagged records of up to SO_SNDBUF-32 bytes",
            polls: false,
            copies: Copies::KERNEL,
        }
    }

    fn limits(&self) -> Vec<Limit> {
        limits(SocketType::SEQPACKET)
    }

    fn prepare(&self, _: &ChannelConfig) -> io::Result<Prepared> {
        let (server, client) = unix_pair(SocketType::SEQPACKET)?;
        Ok(Prepared::new(Ends {
            server,
            client,
            chunk: chunk_for(SocketType::SEQPACKET)?,
        }))
    }
}

impl Pair for Ends {
    fn server(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        Ok(Box::new(Records::new(
            self.server,
            self.chunk,
            Ending::Shutdown,
        )?))
    }

    fn client(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        Ok(Box::new(Records::new(
            self.client,
            self.chunk,
            Ending::Shutdown,
        )?))
    }
}
