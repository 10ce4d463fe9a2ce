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
//! kill) never reaches; the cell's guard removes those that appeared
//! during the cell and that no live process holds (zenoh's own test: an
//! exclusive `flock` succeeds).

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{FlockOperation, Mode, OFlags, flock, fstat, lstat, open, unlink};
use rustix::net::SocketType;

use super::zenoh_end::{Link, ZenohEnd};
use crate::harness::remote::control::random_hex;
use crate::mechanisms::framed::{read_exact, write_all};
use crate::mechanisms::inet::{accept_from, bound, dial_tcp, listener, reach_addr};
use crate::mechanisms::lifeline::{Lifeline, lifelines};
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
        let leftovers = self.shm.then(ShmLeftovers::snapshot);
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let (server_life, client_life) = lifelines()?;
        let pair = ZenohPair {
            endpoint: endpoint(ip, free_port(ip)?),
            key: new_key(),
            shm: self.shm,
            server_life,
            client_life,
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
}

impl Pair for ZenohPair {
    fn server(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        let link = Link::Listen(self.endpoint);
        Ok(Box::new(ZenohEnd::open(
            link,
            &self.key,
            self.shm,
            self.server_life,
        )?))
    }

    fn client(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
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

/// zenoh's shared-memory segments that a cell's sides left: the names in
/// `/dev/shm` ending in `.zenoh` that were not there before the cell. On
/// drop (both sides reaped), each one that is ours and that no process
/// holds (an exclusive `flock` succeeds, as zenoh's own clean-up tests
/// it) is unlinked, if the name still leads to the file examined.
pub struct ShmLeftovers(BTreeSet<String>);

const SHM_DIR: &str = "/dev/shm";

fn zenoh_segments() -> BTreeSet<String> {
    std::fs::read_dir(SHM_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.strip_suffix(".zenoh")
                .is_some_and(|id| id.parse::<u64>().is_ok())
        })
        .collect()
}

impl ShmLeftovers {
    fn snapshot() -> ShmLeftovers {
        ShmLeftovers(zenoh_segments())
    }

    fn remove_if_orphan(name: &str) -> io::Result<()> {
        let path = format!("{SHM_DIR}/{name}");
        let fd = open(
            &path,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        )?;
        let st = fstat(&fd)?;
        if st.st_uid != rustix::process::getuid().as_raw() {
            return Ok(());
        }
        if flock(fd.as_fd(), FlockOperation::NonBlockingLockExclusive).is_err() {
            // Held by a live process: not a leftover.
            return Ok(());
        }
        let now = lstat(&path)?;
        if (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino) {
            unlink(&path)?;
        }
        Ok(())
    }
}

impl Drop for ShmLeftovers {
    fn drop(&mut self) {
        for name in zenoh_segments().difference(&self.0) {
            let _ = Self::remove_if_orphan(name);
        }
    }
}
