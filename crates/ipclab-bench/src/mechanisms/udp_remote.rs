//! `udp` across hosts: the same numbered datagrams and credits as on
//! loopback (`udp_flow`), each socket connected to its one peer, and a TCP
//! connection as the lifeline (UDP never says that its peer died; a TCP
//! connection closes when its process does).
//!
//! The server's half binds its receiving and replying sockets and a
//! listener for the lifeline, and reports the three addresses and its
//! `SO_RCVBUF`. The client's half connects its sockets to them, plans the
//! datagrams for the smaller receive buffer of the two hosts, and sends
//! on the lifeline, once, its two ports and that plan (32 bytes); the
//! server connects its sockets back to those ports. A datagram lost on
//! the way (a real network, unlike loopback or a veth pair, may drop one)
//! is reported as a gap, never retransmitted.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;

use rustix::net::SocketType;
use rustix::net::sockopt::{
    set_socket_recv_buffer_size, set_socket_send_buffer_size, socket_recv_buffer_size,
};

use super::framed::{read_exact, write_all};
use super::inet::{accept_from, bound, connect_to, dial_tcp, listener, local, reach_addr, unbound};
use super::lifeline::Lifeline;
use super::udp::{RCVBUF_WANTED, SNDBUF_WANTED, Udp, plan};
use super::udp_flow::{Plan, UdpEndpoint};
use crate::transport::{ChannelConfig, CrossHost, Endpoint, Half, protocol_error};

/// Bytes the client sends on the lifeline: its sending and receiving
/// ports, 4 bytes of padding, then the plan's payload, window and credit
/// interval (little-endian).
const HELLO: usize = 32;

impl CrossHost for Udp {
    fn listen(
        &self,
        local_ip: IpAddr,
        peer: IpAddr,
        _: &ChannelConfig,
    ) -> io::Result<(Box<dyn Half>, serde_json::Value)> {
        let (life, life_addr) = listener(local_ip)?;
        let (rx, rx_addr) = bound(local_ip, SocketType::DGRAM)?;
        set_socket_recv_buffer_size(&rx, RCVBUF_WANTED)?;
        let (tx, tx_addr) = bound(local_ip, SocketType::DGRAM)?;
        set_socket_send_buffer_size(&tx, SNDBUF_WANTED)?;
        let rcvbuf = socket_recv_buffer_size(&rx)?;
        let reach = serde_json::json!({
            "lifeline": life_addr.to_string(),
            "data": rx_addr.to_string(),
            "replies": tx_addr.to_string(),
            "rcvbuf": rcvbuf,
        });
        Ok((Box::new(Listening { life, peer, rx, tx }), reach))
    }

    fn dial(&self, reach: &serde_json::Value, _: &ChannelConfig) -> io::Result<Box<dyn Half>> {
        let life = reach_addr(reach, "lifeline")?;
        let data = reach_addr(reach, "data")?;
        let replies = reach_addr(reach, "replies")?;
        let theirs = reach
            .get("rcvbuf")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| protocol_error(format!("the server's answer has no rcvbuf: {reach}")))?;
        let tx = unbound(data, SocketType::DGRAM)?;
        set_socket_send_buffer_size(&tx, SNDBUF_WANTED)?;
        connect_to(&tx, data)?;
        let rx = unbound(replies, SocketType::DGRAM)?;
        set_socket_recv_buffer_size(&rx, RCVBUF_WANTED)?;
        connect_to(&rx, replies)?;
        let ours = socket_recv_buffer_size(&rx)?;
        let plan = plan(ours.min(theirs as usize))?;
        Ok(Box::new(Dialing { life, tx, rx, plan }))
    }
}

struct Listening {
    life: OwnedFd,
    peer: IpAddr,
    rx: OwnedFd,
    tx: OwnedFd,
}

impl Half for Listening {
    fn open(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        let life = accept_from(&self.life, self.peer)?;
        let mut hello = [0u8; HELLO];
        if read_exact(&life, &mut hello)?.is_none() {
            return Err(protocol_error(
                "the client closed its lifeline before its hello",
            ));
        }
        let port = |at: usize| u16::from_le_bytes([hello[at], hello[at + 1]]);
        let word = |at: usize| u64::from_le_bytes(hello[at..at + 8].try_into().expect("8 bytes"));
        let plan = Plan {
            payload: usize::try_from(word(8)).unwrap_or(usize::MAX),
            window: word(16),
            credit_every: word(24),
        };
        if plan.payload == 0 || plan.window == 0 || plan.credit_every == 0 {
            return Err(protocol_error(format!(
                "the client's plan is impossible: {plan:?}"
            )));
        }
        connect_to(&self.rx, SocketAddr::new(self.peer, port(0)))?;
        connect_to(&self.tx, SocketAddr::new(self.peer, port(2)))?;
        Ok(Box::new(UdpEndpoint::new(
            self.tx,
            self.rx,
            Lifeline::from_socket(life),
            plan,
        )?))
    }
}

struct Dialing {
    life: SocketAddr,
    tx: OwnedFd,
    rx: OwnedFd,
    plan: Plan,
}

impl Half for Dialing {
    fn open(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        let life = dial_tcp(self.life)?;
        let mut hello = [0u8; HELLO];
        hello[0..2].copy_from_slice(&local(&self.tx)?.port().to_le_bytes());
        hello[2..4].copy_from_slice(&local(&self.rx)?.port().to_le_bytes());
        hello[8..16].copy_from_slice(&(self.plan.payload as u64).to_le_bytes());
        hello[16..24].copy_from_slice(&self.plan.window.to_le_bytes());
        hello[24..32].copy_from_slice(&self.plan.credit_every.to_le_bytes());
        write_all(&life, &hello)?;
        Ok(Box::new(UdpEndpoint::new(
            self.tx,
            self.rx,
            Lifeline::from_socket(life),
            self.plan,
        )?))
    }
}
