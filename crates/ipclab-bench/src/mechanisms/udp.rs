//! `udp`: UDP over loopback (`127.0.0.1`), one connected socket pair per
//! direction, with credit-based flow control.
//!
//! UDP drops a datagram when the receiver's buffer is full, even on
//! loopback, and a run must never lose a message. So the receiver hands out
//! credits and the sender never has more datagrams in flight than the
//! receiver's `SO_RCVBUF` holds ([`plan`]); every datagram carries a
//! sequence number, so a loss or reordering would still be reported as an
//! error, never as wrong data. The protocol is in [`super::udp_flow`].
//!
//! A datagram carries at most 65 507 bytes (IPv4: 65 535 minus the IP and
//! UDP headers), 16 of them the header; on loopback (MTU 65 536) such a
//! datagram is not fragmented. Every socket is connected, so the kernel
//! drops datagrams from any other address. A dead peer is seen through a
//! [`Lifeline`] (UDP has no end of stream); `finish` sends an end marker.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::OwnedFd;

use rustix::net::sockopt::{
    set_socket_recv_buffer_size, set_socket_send_buffer_size, socket_recv_buffer_size,
};
use rustix::net::{AddressFamily, SocketFlags, SocketType, bind, connect, socket_with};

use super::lifeline::{Lifeline, lifelines};
use super::tcp::local_v4;
use super::udp_flow::{HEADER, Plan, UdpEndpoint};
use crate::machine::read_proc;
use crate::transport::{
    ChannelConfig, Copies, Endpoint, Family, Info, Limit, Pair, Prepared, Transport,
};

pub struct Udp;

/// The largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65_507;
/// `SO_RCVBUF` asked for on receiving sockets (the kernel caps it at
/// `net.core.rmem_max`, then doubles it).
pub const RCVBUF_WANTED: usize = 4 << 20;
/// `SO_SNDBUF` asked for on sending sockets: several whole datagrams.
pub const SNDBUF_WANTED: usize = 1 << 20;
/// What a queued datagram costs the receive buffer beyond its payload
/// (`skb` truesize): measured here at about 1.1 KiB for 64 KiB datagrams
/// and 0.8 KiB for tiny ones; rounded up.
const QUEUE_COST: usize = 2048;
/// The smallest window worth running: the datagram shrinks to allow it.
const MIN_WINDOW: usize = 4;

/// Datagram size and window for receive buffers of `rcvbuf` bytes: the
/// window's worth of datagrams fills at most half the buffer.
pub fn plan(rcvbuf: usize) -> io::Result<Plan> {
    let datagram = MAX_DATAGRAM.min((rcvbuf / (2 * MIN_WINDOW)).saturating_sub(QUEUE_COST));
    if datagram <= HEADER {
        return Err(io::Error::other(format!(
            "SO_RCVBUF of {rcvbuf} bytes is too small for flow control"
        )));
    }
    let window = (rcvbuf / (2 * (datagram + QUEUE_COST))) as u64;
    Ok(Plan {
        payload: datagram - HEADER,
        window,
        credit_every: (window / 2).max(1),
    })
}

struct Direction {
    tx: OwnedFd,
    rx: OwnedFd,
}

struct Ends {
    to_server: Direction,
    to_client: Direction,
    server_life: Lifeline,
    client_life: Lifeline,
    plan: Plan,
}

fn loopback_udp() -> io::Result<(OwnedFd, SocketAddrV4)> {
    let sock = socket_with(
        AddressFamily::INET,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    bind(&sock, &SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?;
    let addr = local_v4(&sock)?;
    Ok((sock, addr))
}

/// A connected pair of sockets; returns it with the receiver's
/// `SO_RCVBUF` as the kernel set it.
fn direction() -> io::Result<(Direction, usize)> {
    let (tx, tx_addr) = loopback_udp()?;
    let (rx, rx_addr) = loopback_udp()?;
    set_socket_send_buffer_size(&tx, SNDBUF_WANTED)?;
    set_socket_recv_buffer_size(&rx, RCVBUF_WANTED)?;
    connect(&tx, &rx_addr)?;
    connect(&rx, &tx_addr)?;
    let rcvbuf = socket_recv_buffer_size(&rx)?;
    Ok((Direction { tx, rx }, rcvbuf))
}

impl Transport for Udp {
    fn info(&self) -> Info {
        Info {
            name: "udp",
            family: Family::MessagePassing,
            sync: "kernel (blocking recvmsg; sender blocks on credits)",
            summary: "UDP over 127.0.0.1, a socket pair each way; numbered datagrams, credit flow control",
            polls: false,
            copies: Copies::KERNEL,
        }
    }

    fn limits(&self) -> Vec<Limit> {
        let planned = direction().and_then(|(_, rcvbuf)| Ok((rcvbuf, plan(rcvbuf)?)));
        let mut out = vec![
            Limit::new(
                "net.core.rmem_max",
                read_proc("/proc/sys/net/core/rmem_max"),
            ),
            Limit::new(
                "net.core.wmem_max",
                read_proc("/proc/sys/net/core/wmem_max"),
            ),
            Limit::new("lo MTU", read_proc("/sys/class/net/lo/mtu")),
        ];
        out.push(match planned {
            Ok((rcvbuf, p)) => Limit::new(
                "flow control",
                format!(
                    "SO_RCVBUF {rcvbuf} bytes: datagrams of {} payload bytes, window {}, a credit every {}",
                    p.payload, p.window, p.credit_every
                ),
            ),
            Err(e) => Limit::new("flow control", format!("impossible here: {e}")),
        });
        out
    }

    fn available(&self) -> Result<(), String> {
        direction()
            .and_then(|(_, rcvbuf)| plan(rcvbuf))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn cross_host(&self) -> Option<&dyn crate::transport::CrossHost> {
        Some(self)
    }

    fn prepare(&self, _: &ChannelConfig) -> io::Result<Prepared> {
        let (to_server, a) = direction()?;
        let (to_client, b) = direction()?;
        let (server_life, client_life) = lifelines()?;
        Ok(Prepared::new(Ends {
            to_server,
            to_client,
            server_life,
            client_life,
            plan: plan(a.min(b))?,
        }))
    }
}

impl Pair for Ends {
    fn server(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        let (tx, rx) = (self.to_client.tx, self.to_server.rx);
        Ok(Box::new(UdpEndpoint::new(
            tx,
            rx,
            self.server_life,
            self.plan,
        )?))
    }

    fn client(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        let (tx, rx) = (self.to_server.tx, self.to_client.rx);
        Ok(Box::new(UdpEndpoint::new(
            tx,
            rx,
            self.client_life,
            self.plan,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;

    use rustix::net::{SendFlags, send};

    use super::{direction, plan};
    use crate::mechanisms::lifeline::lifelines;
    use crate::mechanisms::udp_flow::{FIRST, HEADER, UdpEndpoint};
    use crate::transport::{Endpoint, Received};

    #[test]
    fn window_fits_half_the_receive_buffer() {
        for rcvbuf in [212_992, 425_984, 8 << 20] {
            let p = plan(rcvbuf).unwrap();
            assert!(p.window >= 2 && p.credit_every >= 1 && p.credit_every < p.window);
            assert!(p.window as usize * (p.payload + HEADER + 2048) <= rcvbuf / 2);
        }
        assert!(plan(1000).is_err());
    }

    /// The protocol only: both ends in this one process, fewer datagrams
    /// than the window, so nobody waits for credit.
    #[test]
    fn messages_arrive_and_a_gap_is_an_error() {
        let (one, rcvbuf) = direction().unwrap();
        let (two, _) = direction().unwrap();
        let (la, lb) = lifelines().unwrap();
        let forger = rustix::io::fcntl_dupfd_cloexec(&two.tx, 0).unwrap();
        let mut p = plan(rcvbuf).unwrap();
        p.payload = 7;
        let mut a = UdpEndpoint::new(one.tx, two.rx, la, p).unwrap();
        let mut b = UdpEndpoint::new(two.tx, one.rx, lb, p).unwrap();
        let mut got = Vec::new();
        for len in [0, 7, 15] {
            a.send(len, &mut |o, buf| buf.fill(o as u8)).unwrap();
            got.clear();
            let r = b.recv(len, &mut |_, chunk| got.extend_from_slice(chunk));
            assert_eq!(r.unwrap(), Received::Message);
            assert_eq!(got.len(), len);
        }
        assert_eq!(b.rounds(), 1 + 1 + 3);
        a.finish().unwrap();
        assert_eq!(b.recv(1, &mut |_, _| {}).unwrap(), Received::Closed);

        // A datagram that skips a sequence number (as if one were lost).
        let mut forged = [0u8; HEADER];
        forged[..8].copy_from_slice(&99u64.to_le_bytes());
        forged[8..12].copy_from_slice(&FIRST.to_le_bytes());
        send(&forger, &forged, SendFlags::empty()).unwrap();
        let e = a
            .recv(0, &mut |_, _| panic!("no data from a bad datagram"))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidData, "{e}");
    }
}
