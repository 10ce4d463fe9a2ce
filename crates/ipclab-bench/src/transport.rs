//! The one abstraction every mechanism implements.
//!
//! A [`Transport`] makes a channel in three steps, matched to the process
//! model of the harness (see `harness::supervisor`):
//!
//! 1. [`Transport::prepare`] runs in the supervisor, before it forks. It
//!    creates whatever the two sides need to find each other (a pipe pair, a
//!    listening socket, a segment) and returns a [`Prepared`]: a [`Pair`] for
//!    the two sides, and a guard that the supervisor keeps until both sides
//!    are reaped (it removes names and System V objects, also when a side
//!    crashed).
//! 2. After `fork`, the server process calls [`Pair::server`] and the client
//!    process [`Pair::client`]; each keeps its own end and drops the other's.
//!    The supervisor drops its copy of the pair, so that a side that dies is
//!    seen by its peer as a closed channel.
//! 3. The two [`Endpoint`]s move messages of a size both sides know.
//!
//! Payloads are never built by the transport: [`Endpoint::send`] hands the
//! caller a buffer to fill (in place, for shared memory) and
//! [`Endpoint::recv`] hands it the bytes to check, chunk by chunk when the
//! message travels in several rounds.

use std::any::Any;
use std::io;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// How a mechanism moves data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// The kernel copies each message: pipes, sockets, message queues.
    MessagePassing,
    /// Both sides map the same memory; something else says when data is ready.
    SharedMemory,
    /// A floor measured on this machine (issue "limits and peers").
    Limit,
    /// An existing library, measured for comparison.
    Peer,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::MessagePassing => "message-passing",
            Family::SharedMemory => "shared-memory",
            Family::Limit => "limit",
            Family::Peer => "peer",
        }
    }
}

/// What `ipclab list` and the tables say about a mechanism.
#[derive(Clone, Debug)]
pub struct Info {
    /// The name on the command line, e.g. `unix-stream`.
    pub name: &'static str,
    pub family: Family,
    /// How the two sides wait for each other, e.g. `kernel (blocking read)`,
    /// `futex`, `busy-poll`.
    pub sync: &'static str,
    /// One line for `ipclab list`.
    pub summary: &'static str,
    /// Whether a waiting side burns CPU (compared with the spin limit) or
    /// sleeps in the kernel (compared with the futex limit).
    pub polls: bool,
    /// How many times the payload is copied on its way.
    pub copies: Copies,
}

/// How many times a message's payload is copied between the buffer the
/// sender fills and the bytes the receiver checks, as this mechanism does
/// it (the slides' "four copies per round trip" is two each way), with
/// where. JSON `copies_per_message`.
#[derive(Clone, Copy, Debug)]
pub struct Copies {
    /// `None` where the kernel decides and it cannot be said for sure.
    pub count: Option<u8>,
    /// One line: where the copies happen.
    pub why: &'static str,
}

impl Copies {
    /// Two copies, into the kernel and out of it.
    pub const KERNEL: Copies = Copies {
        count: Some(2),
        why: "into the kernel on send, out of it on receive",
    };
    /// Written and checked in place in shared memory.
    pub const IN_PLACE: Copies = Copies {
        count: Some(0),
        why: "written and checked in place in shared memory",
    };
}

/// What a receiver of a mechanism promises against a sender that writes
/// the shared memory at any time, for `ipclab list`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostileSender {
    /// Every receive is a message that passed the checks or an error, and
    /// what the receiver looks at cannot change under it; why.
    Safe(&'static str),
    /// The receiver trusts the sender; what a hostile one can do.
    Trusted(&'static str),
}

/// A limit read from this machine, shown by `ipclab list`.
#[derive(Clone, Debug)]
pub struct Limit {
    pub name: String,
    pub value: String,
}

impl Limit {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Limit {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// What a channel is asked to carry.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChannelConfig {
    /// Bytes in every message, both ways.
    pub size: usize,
    /// The size of each shared segment; `None` picks one that holds a message.
    pub segment_size: Option<usize>,
    /// Buffers in flight for shared-memory mechanisms that keep a pool;
    /// 0 picks [`ChannelConfig::segments_for`].
    pub segments: usize,
}

impl ChannelConfig {
    /// Bytes in flight per direction when `segments` is left automatic.
    pub const AUTO_IN_FLIGHT: usize = 4 << 20;

    /// The buffers in flight for segments of `segment_size` bytes: as given,
    /// or when automatic about [`Self::AUTO_IN_FLIGHT`] bytes' worth, at
    /// least 2 (so the writer can fill one while the reader checks the
    /// other) and at most 64. A pipe or socket buffers that much and more
    /// in the kernel; one segment would make every streamed message wait
    /// for the reader.
    pub fn segments_for(&self, segment_size: usize) -> usize {
        match self.segments {
            0 => (Self::AUTO_IN_FLIGHT / segment_size.max(1)).clamp(2, 64),
            n => n,
        }
    }
}

/// The result of [`Transport::prepare`].
pub struct Prepared {
    /// Taken by each side after the fork.
    pub pair: Box<dyn Pair>,
    /// Kept by the supervisor until both sides are reaped, then dropped: its
    /// `Drop` removes names and kernel objects that outlive processes.
    pub guard: Box<dyn Any>,
}

impl Prepared {
    /// A channel whose objects all die with the processes (pipes, sockets).
    pub fn new(pair: impl Pair + 'static) -> Self {
        Prepared {
            pair: Box::new(pair),
            guard: Box::new(()),
        }
    }

    /// A channel with objects the supervisor must remove.
    pub fn with_guard(pair: impl Pair + 'static, guard: impl Any) -> Self {
        Prepared {
            pair: Box::new(pair),
            guard: Box::new(guard),
        }
    }
}

/// One IPC mechanism. Adding a mechanism is one module that implements this
/// and one line in `mechanisms::REGISTRY`.
pub trait Transport: Sync {
    fn info(&self) -> Info;

    /// Limits of this machine that shape the mechanism (queue sizes, buffer
    /// sizes), for `ipclab list`.
    fn limits(&self) -> Vec<Limit> {
        Vec::new()
    }

    /// `Err(reason)` when this machine refuses the mechanism (a kernel
    /// setting, a missing feature); the run then skips it and says why.
    fn available(&self) -> Result<(), String> {
        Ok(())
    }

    /// What the receiver promises against a hostile sender, where the
    /// mechanism says (`ipclab list`); `None`: not stated.
    fn hostile_sender(&self) -> Option<HostileSender> {
        None
    }

    /// Creates the channel's kernel objects, before the fork.
    fn prepare(&self, config: &ChannelConfig) -> io::Result<Prepared>;

    /// Whether its channels keep state in shared memory, which
    /// [`Pair::shared_memory`] then maps (a mechanism that overrides one
    /// overrides both). `torture hostile` needs it: without shared memory
    /// its scribbler has nothing to write on.
    fn shares_memory(&self) -> bool {
        false
    }

    /// The mechanism's two halves for a pair split across hosts (`ipclab
    /// serve` and `ipclab run --remote`, see `harness::remote`); `None`
    /// (the default) for one that cannot leave its host: a pipe, shared
    /// memory, a Unix socket.
    fn cross_host(&self) -> Option<&dyn CrossHost> {
        None
    }
}

/// A mechanism whose server and client can run on different hosts.
///
/// Both steps run before the fork, as [`Transport::prepare`] does; each
/// returns the one [`Half`] its host's side opens after the fork.
pub trait CrossHost: Sync {
    /// Server host: binds what the client must reach on `local` (the
    /// address the control connection came in on), ports picked by the
    /// kernel, accepting only connections from `peer` (the client host, as
    /// the control connection shows it). Returns the server's half and how
    /// to reach it, which the client's [`CrossHost::dial`] reads.
    fn listen(
        &self,
        local: IpAddr,
        peer: IpAddr,
        config: &ChannelConfig,
    ) -> io::Result<(Box<dyn Half>, serde_json::Value)>;

    /// Client host: the client's half for what the server's `listen`
    /// reported (`reach`), an error naming what is wrong with it.
    fn dial(&self, reach: &serde_json::Value, config: &ChannelConfig) -> io::Result<Box<dyn Half>>;
}

/// One host's half of a pair split across hosts.
pub trait Half {
    /// Runs in the side's process after the fork: accepts or connects.
    fn open(self: Box<Self>) -> io::Result<Box<dyn Endpoint>>;
}

/// The two ends of a prepared channel, before each side takes its own.
pub trait Pair {
    /// Runs in the server process after the fork.
    fn server(self: Box<Self>) -> io::Result<Box<dyn Endpoint>>;
    /// Runs in the client process after the fork.
    fn client(self: Box<Self>) -> io::Result<Box<dyn Endpoint>>;

    /// Fault injection only (`IPCLAB_FAULT_SCRIBBLE`, see
    /// `harness::scribbler`): maps the channel's shared memory in the
    /// supervisor, before the fork, as a side would, for a third process
    /// to overwrite while the sides run. Empty (the default) for a
    /// mechanism that keeps no state in shared memory.
    fn shared_memory(&mut self) -> io::Result<Vec<SharedMemory>> {
        Ok(Vec::new())
    }

    /// Fault injection only, for shared memory that the sides make after
    /// the fork (a rendezvous's rings), where [`Pair::shared_memory`] has
    /// nothing to map: a socket on which a side passes each segment once
    /// it is made, for the scribbler to map as they come. `None` (the
    /// default): all of it is in `shared_memory`.
    fn shared_memory_later(&mut self) -> io::Result<Option<LaterMemory>> {
        Ok(None)
    }
}

/// Shared memory a side passes to the scribbler after the fork
/// ([`Pair::shared_memory_later`]).
pub struct LaterMemory {
    /// The scribbler's end of a Unix socket pair; the side sends each
    /// segment on the other (`shmchan::send_fd`: a descriptor of an open
    /// file description of its own, holding none of the side's locks).
    pub line: std::os::fd::OwnedFd,
    /// How many segments come.
    pub count: usize,
    /// Bytes at the start of each that hold headers, indices and sync
    /// words ([`SharedMemory::control`]).
    pub control: usize,
}

/// A mapping of a channel's shared memory, for fault injection.
pub struct SharedMemory {
    pub map: crate::mechanisms::shm::region::Mapping,
    /// Bytes at the start of `map` that hold headers, indices and sync
    /// words; the rest is payload.
    pub control: usize,
}

/// What [`Endpoint::recv`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// A whole message of the expected length arrived.
    Message,
    /// The peer called [`Endpoint::finish`] (or closed the channel) at a
    /// message boundary: no more messages follow.
    Closed,
}

/// Fills `buf` with the message bytes starting at `offset`.
pub type Fill<'a> = &'a mut dyn FnMut(usize, &mut [u8]);
/// Looks at the message bytes starting at `offset`.
pub type Check<'a> = &'a mut dyn FnMut(usize, &[u8]);

/// One side of a channel. Messages are `len` bytes; both sides know `len`.
pub trait Endpoint {
    /// Sends one message of `len` bytes. `fill` is called once per chunk
    /// that the endpoint wants written, with the chunk's offset in the
    /// message; together the chunks cover the message exactly once.
    fn send(&mut self, len: usize, fill: Fill<'_>) -> io::Result<()>;

    /// Receives one message of `len` bytes. `check` is called once per
    /// received chunk, in order, covering the message exactly once. A peer
    /// that closes mid-message is an error, not `Closed`.
    fn recv(&mut self, len: usize, check: Check<'_>) -> io::Result<Received>;

    /// Tells the peer that no more messages follow; its next `recv` returns
    /// [`Received::Closed`] once it has taken every message sent before.
    fn finish(&mut self) -> io::Result<()>;

    /// How many transfers (reads, datagrams, segment hand-overs) `recv` has
    /// needed so far, over all messages.
    fn rounds(&self) -> u64;
}

/// An error for a peer that broke the framing of a mechanism.
pub fn protocol_error(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}
