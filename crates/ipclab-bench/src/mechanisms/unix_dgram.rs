//! `unix-dgram`: a `socketpair(AF_UNIX, SOCK_DGRAM)`.
//!
//! Between the two ends of a socketpair, Unix datagrams are never lost: a
//! sender whose peer's queue is full (bounded by `SO_SNDBUF`) blocks. A
//! datagram may not exceed `SO_SNDBUF - 32` bytes, so larger messages go in
//! several datagrams (rounds); an empty datagram would be valid, but every
//! datagram carries a one-byte tag anyway (see [`super::records`]).
//!
//! End of stream: a datagram socket has none, so `finish` sends an end
//! marker, a datagram of the tag [`END`](super::records::END) alone. It
//! cannot be taken for data: a data datagram carries another tag, and the
//! receiver checks the tag and the length of every datagram against the
//! message in progress. A peer that dies without its marker is seen through
//! a [`Lifeline`]: receives time out every
//! [`WAIT_SLICE`](super::lifeline::WAIT_SLICE) and then check it.

use std::io;
use std::os::fd::OwnedFd;

use rustix::net::SocketType;

use super::lifeline::{Lifeline, lifelines};
use super::records::{Ending, Records, chunk_for, limits};
use super::unix_stream::unix_pair;
use crate::transport::{
    ChannelConfig, Copies, Endpoint, Family, Info, Limit, Pair, Prepared, Transport,
};

pub struct UnixDgram;

struct Ends {
    server: (OwnedFd, Lifeline),
    client: (OwnedFd, Lifeline),
    chunk: usize,
}

impl Transport for UnixDgram {
    fn info(&self) -> Info {
        Info {
            name: "unix-dgram",
            family: Family::MessagePassing,
            sync: "kernel (blocking recvmsg; sender blocks on a full queue)",
            summary: "AF_UNIX SOCK_DGRAM socketpair; tagged datagrams of up to SO_SNDBUF-32 bytes, end marker",
            polls: false,
            copies: Copies::KERNEL,
        }
    }

    fn limits(&self) -> Vec<Limit> {
        limits(SocketType::DGRAM)
    }

    fn prepare(&self, _: &ChannelConfig) -> io::Result<Prepared> {
        let (server, client) = unix_pair(SocketType::DGRAM)?;
        let (server_life, client_life) = lifelines()?;
        Ok(Prepared::new(Ends {
            server: (server, server_life),
            client: (client, client_life),
            chunk: chunk_for(SocketType::DGRAM)?,
        }))
    }
}

impl Pair for Ends {
    fn server(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        let (sock, life) = self.server;
        Ok(Box::new(Records::new(
            sock,
            self.chunk,
            Ending::Marker(life),
        )?))
    }

    fn client(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        let (sock, life) = self.client;
        Ok(Box::new(Records::new(
            sock,
            self.chunk,
            Ending::Marker(life),
        )?))
    }
}
