//! `tcp`: a TCP connection over loopback (`127.0.0.1`), `TCP_NODELAY` on
//! both ends, length-prefixed frames ([`FramedStream`]).
//!
//! `prepare` makes the listener on a port the kernel picks and also binds
//! the client's socket, so the server knows the one address its client
//! connects from: a connection from anyone else (any local process may
//! connect to a loopback port) is closed and not served.
//!
//! [`FramedStream`]: super::framed::FramedStream

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::OwnedFd;

use rustix::io::Errno;
use rustix::net::sockopt::set_tcp_nodelay;
use rustix::net::{
    AddressFamily, SocketFlags, SocketType, acceptfrom_with, bind, connect, getsockname, listen,
    socket_with,
};

use super::unix_stream::framed_socket;
use crate::machine::read_proc;
use crate::transport::{
    ChannelConfig, Copies, Endpoint, Family, Info, Limit, Pair, Prepared, Transport,
};

pub struct Tcp;

/// A loopback TCP connection before the fork: the listener, and the
/// client's socket bound (not yet connected) so that the server knows its
/// address. Shared by `tcp` and `tcp-zerocopy`.
pub struct Loopback {
    listener: OwnedFd,
    server_addr: SocketAddrV4,
    /// Bound, not yet connected.
    client: OwnedFd,
    client_addr: SocketAddrV4,
}

fn loopback_socket(type_: SocketType) -> io::Result<(OwnedFd, SocketAddrV4)> {
    let sock = socket_with(AddressFamily::INET, type_, SocketFlags::CLOEXEC, None)?;
    bind(&sock, &SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?;
    let addr = local_v4(&sock)?;
    Ok((sock, addr))
}

/// The IPv4 address `sock` is bound to.
pub fn local_v4(sock: &OwnedFd) -> io::Result<SocketAddrV4> {
    SocketAddrV4::try_from(getsockname(sock)?)
        .map_err(|_| io::Error::other("a loopback socket without an IPv4 address"))
}

/// The limits of the machine that shape a loopback TCP connection.
pub fn tcp_limits() -> Vec<Limit> {
    vec![
        Limit::new(
            "net.ipv4.tcp_wmem (min default max)",
            read_proc("/proc/sys/net/ipv4/tcp_wmem"),
        ),
        Limit::new(
            "net.ipv4.tcp_rmem (min default max)",
            read_proc("/proc/sys/net/ipv4/tcp_rmem"),
        ),
        Limit::new("lo MTU", read_proc("/sys/class/net/lo/mtu")),
    ]
}

impl Loopback {
    /// The listener on a port the kernel picks, and the client's socket.
    pub fn new() -> io::Result<Self> {
        let (listener, server_addr) = loopback_socket(SocketType::STREAM)?;
        listen(&listener, 1)?;
        let (client, client_addr) = loopback_socket(SocketType::STREAM)?;
        Ok(Loopback {
            listener,
            server_addr,
            client,
            client_addr,
        })
    }

    /// The server's side: the connection from the client's address (a
    /// stranger's is closed), `TCP_NODELAY` set.
    pub fn accept(self) -> io::Result<OwnedFd> {
        accept_from(&self.listener, self.client_addr)
    }

    /// The client's side: its socket connected to the listener,
    /// `TCP_NODELAY` set.
    pub fn connect(self) -> io::Result<OwnedFd> {
        drop(self.listener);
        connect_to(&self.client, self.server_addr)?;
        Ok(self.client)
    }

    /// Both sides in one process, `(server, client)`: the listener's
    /// backlog holds the connection until it is accepted.
    pub fn connected(self) -> io::Result<(OwnedFd, OwnedFd)> {
        connect_to(&self.client, self.server_addr)?;
        Ok((accept_from(&self.listener, self.client_addr)?, self.client))
    }
}

fn accept_from(listener: &OwnedFd, client_addr: SocketAddrV4) -> io::Result<OwnedFd> {
    let sock = loop {
        let (sock, from) = loop {
            match acceptfrom_with(listener, SocketFlags::CLOEXEC) {
                Err(Errno::INTR) => {}
                other => break other?,
            }
        };
        let from = from.and_then(|a| SocketAddrV4::try_from(a).ok());
        if from == Some(client_addr) {
            break sock;
        }
        // A stranger: dropping the socket closes its connection.
    };
    set_tcp_nodelay(&sock, true)?;
    Ok(sock)
}

fn connect_to(client: &OwnedFd, server_addr: SocketAddrV4) -> io::Result<()> {
    loop {
        match connect(client, &server_addr) {
            // An interrupted connect goes on in the background.
            Err(Errno::INTR | Errno::ALREADY) => {}
            Ok(()) | Err(Errno::ISCONN) => break,
            Err(e) => return Err(e.into()),
        }
    }
    set_tcp_nodelay(client, true)?;
    Ok(())
}

impl Transport for Tcp {
    fn info(&self) -> Info {
        Info {
            name: "tcp",
            family: Family::MessagePassing,
            sync: "kernel (blocking read)",
            summary: "TCP over 127.0.0.1, TCP_NODELAY; length-prefixed frames",
            polls: false,
            copies: Copies::KERNEL,
        }
    }

    fn limits(&self) -> Vec<Limit> {
        tcp_limits()
    }

    fn prepare(&self, _: &ChannelConfig) -> io::Result<Prepared> {
        Ok(Prepared::new(Loopback::new()?))
    }

    fn cross_host(&self) -> Option<&dyn crate::transport::CrossHost> {
        Some(self)
    }
}

impl Pair for Loopback {
    fn server(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        Ok(Box::new(framed_socket(self.accept()?)?))
    }

    fn client(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        Ok(Box::new(framed_socket(self.connect()?)?))
    }
}
