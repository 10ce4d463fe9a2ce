//! Sockets on any IPv4 or IPv6 address, for the halves of a pair split
//! across hosts (`tcp_remote`, `udp_remote`): bind, accept only from the
//! client host, connect, and read an address back from what the server
//! reported.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;

use rustix::io::Errno;
use rustix::net::sockopt::set_tcp_nodelay;
use rustix::net::{
    AddressFamily, SocketFlags, SocketType, acceptfrom_with, bind, connect, getsockname, listen,
    socket_with,
};

fn family(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::INET,
        IpAddr::V6(_) => AddressFamily::INET6,
    }
}

/// A socket of `type_` bound to `ip` on a port the kernel picks, with
/// that address.
pub fn bound(ip: IpAddr, type_: SocketType) -> io::Result<(OwnedFd, SocketAddr)> {
    let sock = socket_with(family(ip), type_, SocketFlags::CLOEXEC, None)?;
    bind(&sock, &SocketAddr::new(ip, 0))?;
    let addr = local(&sock)?;
    Ok((sock, addr))
}

/// A socket of `type_` for talking to `to`, not yet bound.
pub fn unbound(to: SocketAddr, type_: SocketType) -> io::Result<OwnedFd> {
    Ok(socket_with(
        family(to.ip()),
        type_,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// The address `sock` is bound to.
pub fn local(sock: &OwnedFd) -> io::Result<SocketAddr> {
    SocketAddr::try_from(getsockname(sock)?)
        .map_err(|_| io::Error::other("a socket without an IP address"))
}

/// A TCP listener on `ip`, port picked by the kernel.
pub fn listener(ip: IpAddr) -> io::Result<(OwnedFd, SocketAddr)> {
    let (sock, addr) = bound(ip, SocketType::STREAM)?;
    listen(&sock, 1)?;
    Ok((sock, addr))
}

/// The first connection to `listener` from the host `peer` (anyone
/// else's is closed), `TCP_NODELAY` set.
pub fn accept_from(listener: &OwnedFd, peer: IpAddr) -> io::Result<OwnedFd> {
    let sock = loop {
        let (sock, from) = loop {
            match acceptfrom_with(listener, SocketFlags::CLOEXEC) {
                Err(Errno::INTR) => {}
                other => break other?,
            }
        };
        let from = from.and_then(|a| SocketAddr::try_from(a).ok());
        if from.map(|a| canonical(a.ip())) == Some(canonical(peer)) {
            break sock;
        }
        // A stranger: dropping the socket closes its connection.
    };
    set_tcp_nodelay(&sock, true)?;
    Ok(sock)
}

/// An IPv4 address mapped into IPv6 as the IPv4 one.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Connects `sock` to `to` (blocking; an interrupted connect goes on).
pub fn connect_to(sock: &OwnedFd, to: SocketAddr) -> io::Result<()> {
    loop {
        match connect(sock, &to) {
            Err(Errno::INTR | Errno::ALREADY) => {}
            Ok(()) | Err(Errno::ISCONN) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// A TCP connection to `to`, `TCP_NODELAY` set.
pub fn dial_tcp(to: SocketAddr) -> io::Result<OwnedFd> {
    let sock = unbound(to, SocketType::STREAM)?;
    connect_to(&sock, to)
        .map_err(|e| io::Error::new(e.kind(), format!("connecting to {to}: {e}")))?;
    set_tcp_nodelay(&sock, true)?;
    Ok(sock)
}

/// The address at `key` of what the server reported.
pub fn reach_addr(reach: &serde_json::Value, key: &str) -> io::Result<SocketAddr> {
    reach
        .get(key)
        .and_then(|v| v.as_str())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the server's answer has no address '{key}': {reach}"),
            )
        })
}
