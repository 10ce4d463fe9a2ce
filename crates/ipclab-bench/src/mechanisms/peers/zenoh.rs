//! `zenoh` and `zenoh-tcp`: the zenoh crate (Eclipse zenoh's pub/sub), two
//! peer sessions talking over one link, a topic each way (see
//! [`super::zenoh_end`]).
//!
//! - `zenoh`: zenoh's defaults for two processes on one host, built with
//!   its `shared-memory` feature: the sessions meet over TCP on
//!   127.0.0.1, find that they share a host, and a payload of 3 KiB or
//!   more (`transport_optimization`, default threshold 3072) is copied by
//!   the publisher into zenoh's shared-memory pool (16 MiB) and read by
//!   the subscriber in place; smaller ones go over the TCP link.
//! - `zenoh-tcp`: the same with shared memory off, every payload over TCP;
//!   it can cross hosts (`ipclab serve`, [`CrossHost`]).
//!
//! The server's session listens on a port picked by binding port 0 and
//! letting it go just before zenoh binds it (zenoh is started in the side,
//! after the fork, and reports its port only to itself): another program
//! taking the port in between fails the cell, it cannot join the channel.
//! zenoh's shared-memory segments (`/dev/shm/<u64>.zenoh`, 0600) are
//! removed by zenoh at exit, which a side that ends with `_exit` (or a
//! kill) never reaches. zenoh names them when it makes them, so `prepare`
//! records the cell's start in the registry instead, before either side
//! exists, and each side adds its pid before it opens its session (see
//! [`crate::objects::zenoh_shm`]): the cell's guard removes the segments
//! changed since that no live process holds (zenoh's own test: an
//! exclusive `flock` succeeds), and after a `kill -9` of the supervisor
//! `ipclab ls` and `ipclab clean` find them by the record.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::OwnedFd;

use rustix::net::SocketType;

use super::zenoh_end::{Link, ZenohEnd};
use crate::harness::remote::control::random_hex;
use crate::mechanisms::framed::{read_exact, write_all};
use crate::mechanisms::inet::{accept_from, bound, dial_tcp, listener, reach_addr};
use crate::mechanisms::lifeline::{Lifeline, lifelines};
use crate::objects::registry::{self, Kind, Record};
use crate::objects::zenoh_shm;
use crate::transport::{
    ChannelConfig, Copies, CrossHost, Endpoint, Family, Half, Info, Pair, Prepared, Transport,
    protocol_error,
};

pub struct Zenoh {
    /// Shared memory on (zenoh's default) or off (`zenoh-tcp`).
    pub shm: bool,
}

/// A port on `ip` that nothing listens on right now.
fn free_port(ip: IpAddr) -> io::Result<u16> {
    let (_sock, addr) = bound(ip, SocketType::STREAM)?;
    Ok(addr.port())
}

fn endpoint(ip: IpAddr, port: u16) -> String {
    format!("tcp/{}", SocketAddr::new(ip, port))
}

/// A channel's keys: `ipclab/<32 hex>`.
fn new_key() -> String {
    format!("ipclab/{}", random_hex())
}

impl Transport for Zenoh {
    fn info(&self) -> Info {
        if self.shm {
            Info {
                name: "zenoh",
                family: Family::Peer,
                sync: "zenoh (its runtime's threads; a blocking channel to the subscriber)",
                summary: "the zenoh crate, its defaults: two peer sessions over TCP on 127.0.0.1, payloads of 3 KiB and more through its shared-memory pool",
                polls: false,
                copies: Copies {
                    count: None,
                    why: "from 3 KiB: one, into zenoh's shared-memory pool, read in place; below: over its TCP link (2 and its batching's)",
                },
            }
        } else {
            Info {
                name: "zenoh-tcp",
                family: Family::Peer,
                sync: "zenoh (its runtime's threads; a blocking channel to the subscriber)",
                summary: "the zenoh crate, shared memory off: two peer sessions over TCP (127.0.0.1, or across hosts with --remote)",
                polls: false,
                copies: Copies {
                    count: None,
                    why: "at least 2, into the kernel and out; zenoh's batching may copy again",
                },
            }
        }
    }

    fn prepare(&self, _: &ChannelConfig) -> io::Result<Prepared> {
        let leftovers = self.shm.then(ShmLeftovers::new).transpose()?;
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let (server_life, client_life) = lifelines()?;
        let pair = ZenohPair {
            endpoint: endpoint(ip, free_port(ip)?),
            key: new_key(),
            shm: self.shm,
            server_life,
            client_life,
            record: leftovers.as_ref().map(|l| l.record.clone()),
        };
        Ok(Prepared::with_guard(pair, leftovers))
    }

    fn cross_host(&self) -> Option<&dyn CrossHost> {
        (!self.shm).then_some(self)
    }
}

struct ZenohPair {
    endpoint: String,
    key: String,
    shm: bool,
    server_life: Lifeline,
    client_life: Lifeline,
    /// The cell's record of its segments, which each side joins.
    record: Option<Record>,
}

impl ZenohPair {
    /// Adds this side's pid to the cell's record, before its session can
    /// make a segment: while it lives, `ipclab clean` leaves them.
    fn join_record(&self) -> io::Result<()> {
        match &self.record {
            Some(r) => r
                .add("side", &std::process::id().to_string())
                .map_err(|e| io::Error::new(e.kind(), format!("recording this side: {e}"))),
            None => Ok(()),
        }
    }
}

impl Pair for ZenohPair {
    fn server(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        self.join_record()?;
        let link = Link::Listen(self.endpoint);
        Ok(Box::new(ZenohEnd::open(
            link,
            &self.key,
            self.shm,
            self.server_life,
        )?))
    }

    fn client(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        self.join_record()?;
        let link = Link::Connect(self.endpoint);
        Ok(Box::new(ZenohEnd::open(
            link,
            &self.key,
            self.shm,
            self.client_life,
        )?))
    }
}

/// The bytes of a lifeline's hello across hosts: the client has connected
/// it and will now connect its session.
const LIFELINE_HELLO: &[u8; 8] = b"ipclabZT";

impl CrossHost for Zenoh {
    fn listen(
        &self,
        local: IpAddr,
        peer: IpAddr,
        _: &ChannelConfig,
    ) -> io::Result<(Box<dyn Half>, serde_json::Value)> {
        let (life, life_addr) = listener(local)?;
        let endpoint = endpoint(local, free_port(local)?);
        let key = new_key();
        let reach = serde_json::json!({
            "endpoint": endpoint,
            "key": key,
            "lifeline": life_addr.to_string(),
        });
        Ok((
            Box::new(Listening {
                life,
                peer,
                endpoint,
                key,
            }),
            reach,
        ))
    }

    fn dial(&self, reach: &serde_json::Value, _: &ChannelConfig) -> io::Result<Box<dyn Half>> {
        let text = |k: &str| {
            reach
                .get(k)
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .ok_or_else(|| protocol_error(format!("the server's answer has no {k}: {reach}")))
        };
        let endpoint = text("endpoint")?;
        let key = text("key")?;
        if !endpoint.starts_with("tcp/") || !key.starts_with("ipclab/") {
            return Err(protocol_error(format!("not a zenoh-tcp channel: {reach}")));
        }
        Ok(Box::new(Dialing {
            life: reach_addr(reach, "lifeline")?,
            endpoint,
            key,
        }))
    }
}

struct Listening {
    life: OwnedFd,
    peer: IpAddr,
    endpoint: String,
    key: String,
}

impl Half for Listening {
    fn open(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        let life = accept_from(&self.life, self.peer)?;
        let mut hello = [0u8; 8];
        if read_exact(&life, &mut hello)?.is_none() || &hello != LIFELINE_HELLO {
            return Err(protocol_error("the client's lifeline did not say hello"));
        }
        let life = Lifeline::from_socket(life);
        let end = ZenohEnd::open(Link::Listen(self.endpoint), &self.key, false, life)?;
        Ok(Box::new(end))
    }
}

struct Dialing {
    life: SocketAddr,
    endpoint: String,
    key: String,
}

impl Half for Dialing {
    fn open(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        let life = dial_tcp(self.life)?;
        write_all(&life, LIFELINE_HELLO)?;
        let life = Lifeline::from_socket(life);
        let end = ZenohEnd::open(Link::Connect(self.endpoint), &self.key, false, life)?;
        Ok(Box::new(end))
    }
}

/// The record of a cell's zenoh segments (see
/// [`crate::objects::zenoh_shm`]), kept by the supervisor. On drop (both
/// sides reaped), every segment of ours changed since the cell began that
/// no process holds is unlinked, then the record.
pub struct ShmLeftovers {
    since_ns: u64,
    record: Record,
}

impl ShmLeftovers {
    fn new() -> io::Result<ShmLeftovers> {
        let since_ns = zenoh_shm::now_ns();
        let record = registry::record(
            Kind::Zenoh,
            &crate::objects::marks::random_hex(8)?,
            &[("since_ns", since_ns.to_string())],
        )?;
        Ok(ShmLeftovers { since_ns, record })
    }
}

impl Drop for ShmLeftovers {
    fn drop(&mut self) {
        zenoh_shm::remove_dangling_since(self.since_ns);
        let _ = self.record.remove();
    }
}
