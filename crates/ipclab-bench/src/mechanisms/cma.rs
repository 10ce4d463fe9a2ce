//! `cma`: cross-memory attach. The reader copies each message straight out
//! of the writer's memory with `process_vm_readv`: one kernel copy between
//! the two address spaces, no buffer in between.
//!
//! The two sides still need to tell each other where and when, so
//! `prepare` makes a `SOCK_SEQPACKET` socketpair (no name, nothing to leak;
//! its hang-up tells either side that the other died). Over it, fixed
//! 24-byte records:
//!
//! - `HELLO pid` once each way after the fork: whom to read from;
//! - `DATA acks addr len`: a message of `len` bytes waits at `addr` in the
//!   sender's memory. The sender fills one of its buffers in place and
//!   leaves it untouched until the reader says it has copied it;
//! - `ACK n`: the reader copied `n` more messages, their buffers are free.
//!   An ack is held back until the reader would otherwise block, or rides
//!   in the `acks` field of the reader's next `DATA` (a pingpong reply
//!   carries the ack of its request, so a round trip is two records);
//! - `END`: no more messages, sent by `finish` once every buffer of ours is
//!   acknowledged (the reader must copy before we may exit).
//!
//! The writer keeps `segments` buffers in flight (`--segments`; by default
//! [`ChannelConfig::segments_for`], and no more than
//! [`MAX_IN_FLIGHT_BYTES`] of them); they free in order, since records
//! arrive in order.
//!
//! Permission: `process_vm_readv` needs ptrace access to the peer
//! (`PTRACE_MODE_ATTACH_REALCREDS`): the same uid does, unless Yama says
//! otherwise. The sides are siblings, so Yama's `ptrace_scope` 1 would
//! refuse them; each side therefore names its peer with
//! `PR_SET_PTRACER` before it announces its first message. Scope 2 needs
//! `CAP_SYS_PTRACE`, scope 3 refuses everyone: [`Cma::available`] says so.

use std::collections::VecDeque;
use std::io::{self, IoSliceMut};
use std::os::fd::OwnedFd;

use nix::sys::uio::{RemoteIoVec, process_vm_readv};
use nix::unistd::Pid;
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags, SocketType};

use super::unix_stream::unix_pair;
use crate::transport::{
    ChannelConfig, Check, Copies, Endpoint, Family, Fill, Info, Limit, Pair, Prepared, Received,
    Transport, protocol_error,
};

/// The most memory a writer keeps in flight, whatever `--segments` says.
const MAX_IN_FLIGHT_BYTES: usize = 64 << 20;
const YAMA: &str = "/proc/sys/kernel/yama/ptrace_scope";
/// `CAP_SYS_PTRACE`'s bit in `CapEff`.
const CAP_SYS_PTRACE: u32 = 19;

const HELLO: u32 = 1;
const DATA: u32 = 2;
const ACK: u32 = 3;
const END: u32 = 4;
const RECORD: usize = 24;

/// One notification on the socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Record {
    kind: u32,
    acks: u32,
    addr: u64,
    len: u64,
}

impl Record {
    fn new(kind: u32, acks: u32, addr: u64, len: u64) -> Self {
        Record {
            kind,
            acks,
            addr,
            len,
        }
    }

    fn encode(&self) -> [u8; RECORD] {
        let mut b = [0; RECORD];
        b[0..4].copy_from_slice(&self.kind.to_le_bytes());
        b[4..8].copy_from_slice(&self.acks.to_le_bytes());
        b[8..16].copy_from_slice(&self.addr.to_le_bytes());
        b[16..24].copy_from_slice(&self.len.to_le_bytes());
        b
    }

    fn decode(b: &[u8; RECORD]) -> Self {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| u64::from(u32_at(i)) | u64::from(u32_at(i + 4)) << 32;
        Record {
            kind: u32_at(0),
            acks: u32_at(4),
            addr: u64_at(8),
            len: u64_at(16),
        }
    }
}

/// Sends one record; retries on EINTR.
fn put(sock: &OwnedFd, rec: Record) -> io::Result<()> {
    let bytes = rec.encode();
    loop {
        match rustix::net::send(sock, &bytes, SendFlags::NOSIGNAL) {
            Ok(RECORD) => return Ok(()),
            Ok(n) => {
                return Err(protocol_error(format!(
                    "a record went out short: {n} bytes"
                )));
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Takes the next record; a hang-up is the peer's death (it sends `END`
/// when it means to stop). Retries on EINTR.
fn take(sock: &OwnedFd) -> io::Result<Record> {
    let mut bytes = [0u8; RECORD];
    loop {
        match rustix::net::recv(sock, &mut bytes, RecvFlags::TRUNC) {
            Ok((_, RECORD)) => return Ok(Record::decode(&bytes)),
            Ok((_, 0)) => {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the peer closed the socket without finishing",
                ));
            }
            Ok((_, n)) => return Err(protocol_error(format!("a record of {n} bytes"))),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

fn yama_scope() -> Option<u32> {
    std::fs::read_to_string(YAMA).ok()?.trim().parse().ok()
}

fn has_cap_sys_ptrace() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps >> CAP_SYS_PTRACE & 1 == 1)
}

/// Reads a word of our own memory through `process_vm_readv`: tells
/// whether the call exists here (it needs `CONFIG_CROSS_MEMORY_ATTACH`, and
/// a seccomp filter may forbid it).
fn probe_self() -> Result<(), String> {
    let source = 0x1234_5678_9abc_def0_u64.to_ne_bytes();
    let mut dest = [0u8; 8];
    let remote = [RemoteIoVec {
        base: source.as_ptr() as usize,
        len: source.len(),
    }];
    match process_vm_readv(Pid::this(), &mut [IoSliceMut::new(&mut dest)], &remote) {
        Ok(8) if dest == source => Ok(()),
        Ok(n) => Err(format!("process_vm_readv on itself read {n} bytes, not 8")),
        Err(nix::errno::Errno::ENOSYS) => {
            Err("process_vm_readv is missing (kernel without CONFIG_CROSS_MEMORY_ATTACH)".into())
        }
        Err(e) => Err(format!("process_vm_readv on itself failed: {e}")),
    }
}

pub struct Cma;

struct Sockets {
    server: OwnedFd,
    client: OwnedFd,
    /// Buffers each writer keeps in flight.
    slots: usize,
}

impl Transport for Cma {
    fn info(&self) -> Info {
        Info {
            name: "cma",
            family: Family::SharedMemory,
            sync: "kernel copy (process_vm_readv) + socket notification",
            summary: "cross-memory attach: the reader pulls each message from the writer's buffer in one process_vm_readv",
            polls: false,
            copies: Copies {
                count: Some(1),
                why: "process_vm_readv copies from the writer's memory into the reader's",
            },
        }
    }

    fn limits(&self) -> Vec<Limit> {
        let scope = match yama_scope() {
            None => "no Yama (same-uid processes may read each other)".to_string(),
            Some(1) => "1 (siblings only via PR_SET_PTRACER, which cma sets)".to_string(),
            Some(n) => n.to_string(),
        };
        vec![
            Limit::new("kernel.yama.ptrace_scope", scope),
            Limit::new(
                "process_vm_readv",
                probe_self().map_or_else(|e| e, |()| "works".into()),
            ),
            Limit::new(
                "buffers in flight",
                format!("--segments, at most {} MiB", MAX_IN_FLIGHT_BYTES >> 20),
            ),
        ]
    }

    fn available(&self) -> Result<(), String> {
        probe_self()?;
        match yama_scope() {
            None | Some(0) | Some(1) => Ok(()),
            Some(2) if has_cap_sys_ptrace() => Ok(()),
            Some(2) => Err(
                "kernel.yama.ptrace_scope is 2: only CAP_SYS_PTRACE may read another process"
                    .into(),
            ),
            Some(3) => Err("kernel.yama.ptrace_scope is 3: no process may read another".into()),
            Some(n) => Err(format!("kernel.yama.ptrace_scope is {n} (unknown)")),
        }
    }

    fn prepare(&self, config: &ChannelConfig) -> io::Result<Prepared> {
        let (server, client) = unix_pair(SocketType::SEQPACKET)?;
        let slots = config
            .segments_for(config.size)
            .min(MAX_IN_FLIGHT_BYTES / config.size.max(1))
            .max(1);
        Ok(Prepared::new(Sockets {
            server,
            client,
            slots,
        }))
    }
}

impl Pair for Sockets {
    fn server(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        CmaEnd::open(self.server, self.slots)
    }

    fn client(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        CmaEnd::open(self.client, self.slots)
    }
}

/// One side: writes into its own buffers, reads from the peer's.
struct CmaEnd {
    sock: OwnedFd,
    peer: Pid,
    /// Our buffers; the peer reads them.
    slots: Vec<Vec<u8>>,
    /// The buffer the next message goes into.
    next: usize,
    /// Our messages announced but not yet acknowledged.
    in_flight: usize,
    /// Peer messages copied but not yet acknowledged.
    owed: u32,
    /// Peer messages announced while we waited for an ack: `(addr, len)`.
    pending: VecDeque<(u64, u64)>,
    rx: Vec<u8>,
    rounds: u64,
    finished: bool,
    peer_finished: bool,
}

impl CmaEnd {
    fn open(sock: OwnedFd, slots: usize) -> io::Result<Box<dyn Endpoint>> {
        let me = rustix::process::getpid().as_raw_nonzero().get();
        put(&sock, Record::new(HELLO, 0, me as u64, 0))?;
        let hello = take(&sock)?;
        let peer = match (hello.kind, i32::try_from(hello.addr)) {
            (HELLO, Ok(pid)) if pid > 0 => Pid::from_raw(pid),
            _ => return Err(protocol_error(format!("expected HELLO, got {hello:?}"))),
        };
        // Yama's scope 1 lets only ancestors attach: name the peer, before
        // the first DATA record can make it read us.
        if yama_scope() == Some(1) {
            let pid =
                rustix::process::Pid::from_raw(peer.as_raw()).expect("checked positive above");
            rustix::process::set_ptracer(rustix::process::PTracer::ProcessID(pid))
                .map_err(|e| io::Error::other(format!("PR_SET_PTRACER for the peer: {e}")))?;
        }
        Ok(Box::new(CmaEnd {
            sock,
            peer,
            slots: vec![Vec::new(); slots.max(1)],
            next: 0,
            in_flight: 0,
            owed: 0,
            pending: VecDeque::new(),
            rx: Vec::new(),
            rounds: 0,
            finished: false,
            peer_finished: false,
        }))
    }

    fn acked(&mut self, n: u32) -> io::Result<()> {
        let n = n as usize;
        if n > self.in_flight {
            return Err(protocol_error(format!(
                "{n} acks for {} messages in flight",
                self.in_flight
            )));
        }
        self.in_flight -= n;
        Ok(())
    }

    /// Sends the acks we owe, before we block.
    fn flush_acks(&mut self) -> io::Result<()> {
        if self.owed > 0 {
            put(&self.sock, Record::new(ACK, self.owed, 0, 0))?;
            self.owed = 0;
        }
        Ok(())
    }

    /// Waits for one record while a buffer of ours is still in flight.
    fn wait_ack(&mut self) -> io::Result<()> {
        self.flush_acks()?;
        let rec = take(&self.sock)?;
        match rec.kind {
            ACK => self.acked(rec.acks),
            DATA => {
                self.acked(rec.acks)?;
                self.pending.push_back((rec.addr, rec.len));
                Ok(())
            }
            END => {
                self.peer_finished = true;
                Err(protocol_error(format!(
                    "the peer finished with {} of our messages not copied",
                    self.in_flight
                )))
            }
            _ => Err(protocol_error(format!("unexpected record {rec:?}"))),
        }
    }

    /// Copies `len` bytes at `addr` in the peer into `self.rx`.
    fn pull(&mut self, addr: u64, len: usize) -> io::Result<()> {
        if self.rx.len() < len {
            self.rx.resize(len, 0);
        }
        if len == 0 {
            self.rounds += 1;
            return Ok(());
        }
        let mut done = 0;
        while done < len {
            let base = usize::try_from(addr)
                .ok()
                .and_then(|a| a.checked_add(done))
                .filter(|a| a.checked_add(len - done).is_some())
                .ok_or_else(|| protocol_error(format!("impossible address {addr:#x}+{len}")))?;
            let remote = [RemoteIoVec {
                base,
                len: len - done,
            }];
            let local = &mut [IoSliceMut::new(&mut self.rx[done..len])];
            match process_vm_readv(self.peer, local, &remote) {
                Ok(0) => {
                    return Err(protocol_error(format!(
                        "read nothing at offset {done} of {len}"
                    )));
                }
                Ok(n) => {
                    done += n;
                    self.rounds += 1;
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(pull_error(e, self.peer)),
            }
        }
        Ok(())
    }
}

fn pull_error(e: nix::errno::Errno, peer: Pid) -> io::Error {
    use nix::errno::Errno as E;
    match e {
        E::EPERM => io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "process_vm_readv from pid {peer}: {e}: ptrace access to the peer is refused \
                 (Yama ptrace_scope {}, or a security module); `ipclab list` shows the setting",
                yama_scope().map_or("absent".to_string(), |s| s.to_string())
            ),
        ),
        E::ESRCH => io::Error::new(
            io::ErrorKind::BrokenPipe,
            format!("process_vm_readv: the peer (pid {peer}) is gone"),
        ),
        E::EFAULT => protocol_error(format!(
            "process_vm_readv: the peer announced memory it does not have ({e})"
        )),
        e => io::Error::new(
            io::Error::from(e).kind(),
            format!("process_vm_readv from pid {peer}: {e}"),
        ),
    }
}

impl Endpoint for CmaEnd {
    fn send(&mut self, len: usize, fill: Fill<'_>) -> io::Result<()> {
        if self.finished {
            return Err(protocol_error("send after finish"));
        }
        while self.in_flight == self.slots.len() {
            self.wait_ack()?;
        }
        let slot = &mut self.slots[self.next];
        // The slot is free: the peer no longer reads it, so it may move.
        slot.resize(len, 0);
        fill(0, &mut slot[..len]);
        let addr = slot.as_ptr() as u64;
        put(&self.sock, Record::new(DATA, self.owed, addr, len as u64))?;
        self.owed = 0;
        self.in_flight += 1;
        self.next = (self.next + 1) % self.slots.len();
        Ok(())
    }

    fn recv(&mut self, len: usize, check: Check<'_>) -> io::Result<Received> {
        if self.peer_finished {
            return Ok(Received::Closed);
        }
        let (addr, announced) = loop {
            if let Some(data) = self.pending.pop_front() {
                break data;
            }
            self.flush_acks()?;
            let rec = take(&self.sock)?;
            match rec.kind {
                ACK => self.acked(rec.acks)?,
                DATA => {
                    self.acked(rec.acks)?;
                    break (rec.addr, rec.len);
                }
                END => {
                    self.peer_finished = true;
                    return Ok(Received::Closed);
                }
                _ => return Err(protocol_error(format!("unexpected record {rec:?}"))),
            }
        };
        if announced != len as u64 {
            return Err(protocol_error(format!(
                "the peer announced {announced} bytes, expected {len}"
            )));
        }
        self.pull(addr, len)?;
        // Copied: the peer may reuse its buffer (told before we next block).
        self.owed += 1;
        check(0, &self.rx[..len]);
        Ok(Received::Message)
    }

    fn finish(&mut self) -> io::Result<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        // The peer may still be copying from us: wait until it is done, or
        // our exit would take the memory away under it.
        while self.in_flight > 0 {
            self.wait_ack()?;
        }
        self.flush_acks()?;
        put(&self.sock, Record::new(END, 0, 0, 0))
    }

    fn rounds(&self) -> u64 {
        self.rounds
    }
}
