//! `unix-stream`: a `socketpair(AF_UNIX, SOCK_STREAM)`, length-prefixed
//! frames ([`FramedStream`]); `finish` is `shutdown(SHUT_WR)`.

use std::io;
use std::os::fd::OwnedFd;

use rustix::io::fcntl_dupfd_cloexec;
use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};

use super::framed::FramedStream;
use crate::machine::read_proc;
use crate::transport::{
    ChannelConfig, Copies, Endpoint, Family, Info, Limit, Pair, Prepared, Transport,
};

pub struct UnixStream;

struct Ends {
    server: OwnedFd,
    client: OwnedFd,
}

impl Transport for UnixStream {
    fn info(&self) -> Info {
        Info {
            name: "unix-stream",
            family: Family::MessagePassing,
            sync: "kernel (blocking read)",
            summary: "AF_UNIX SOCK_STREAM socketpair; length-prefixed frames",
            polls: false,
            copies: Copies::KERNEL,
        }
    }

    fn limits(&self) -> Vec<Limit> {
        let sndbuf = unix_pair(SocketType::STREAM)
            .and_then(|(a, _b)| Ok(rustix::net::sockopt::socket_send_buffer_size(&a)?));
        vec![
            Limit::new(
                "SO_SNDBUF (default)",
                sndbuf.map_or_else(|e| format!("unknown ({e})"), |b| format!("{b} bytes")),
            ),
            Limit::new(
                "net.core.wmem_max",
                read_proc("/proc/sys/net/core/wmem_max"),
            ),
        ]
    }

    fn prepare(&self, _: &ChannelConfig) -> io::Result<Prepared> {
        let (server, client) = unix_pair(SocketType::STREAM)?;
        Ok(Prepared::new(Ends { server, client }))
    }
}

/// `socketpair(AF_UNIX, kind, SOCK_CLOEXEC)`—Two connected ends, no
/// name: what every Unix-socket mechanism starts from.
pub fn unix_pair(kind: SocketType) -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(socketpair(
        AddressFamily::UNIX,
        kind,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// A [`FramedStream`] over one socket: `tx` is a close-on-exec `dup` of it.
pub fn framed_socket(sock: OwnedFd) -> io::Result<FramedStream> {
    let tx = fcntl_dupfd_cloexec(&sock, 0)?;
    Ok(FramedStream::new(sock, tx))
}

impl Pair for Ends {
    fn server(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        Ok(Box::new(framed_socket(self.server)?))
    }

    fn client(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        Ok(Box::new(framed_socket(self.client)?))
    }
}
