//! One side of the `udp` channel: numbered datagrams with credit-based flow
//! control, so that a run never loses a message (see [`super::udp`]).
//!
//! Each direction has its own connected socket pair. The sender's socket
//! (`tx`) sends data and receives credits; the receiver's socket (`rx`)
//! receives data and sends credits back. Data and credits never share a
//! queue, and replies never queue behind credits.
//!
//! * Every data datagram starts with a 16-byte header: a sequence number
//!   (`u64`, continuous over the whole run in one direction), a kind
//!   ([`FIRST`], [`MORE`], [`END`]) and the payload length (`u32`), all
//!   little-endian. The receiver checks all three against what it expects
//!   next: a gap, a repeat or a reordering is an error, never wrong data.
//! * A credit is 16 bytes: [`CREDIT_MAGIC`] and the number of datagrams the
//!   receiver has taken so far. Credits are cumulative, so a newer one
//!   covers all older ones.
//! * The sender never has more than `window` datagrams sent but not yet
//!   credited; the receiver sends a credit once it has taken `credit_every`
//!   datagrams since its last one (half the window, so the sender always
//!   learns of progress before it runs dry).

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::OwnedFd;

use rustix::io::Errno;
use rustix::net::{
    RecvAncillaryBuffer, RecvFlags, ReturnFlags, SendAncillaryBuffer, SendFlags, recv, recvmsg,
    send, sendmsg,
};

use super::lifeline::Lifeline;
use super::records::pieces;
use crate::transport::{Check, Endpoint, Fill, Received, protocol_error};

/// Kind of the first datagram of a message.
pub const FIRST: u32 = 1;
/// Kind of every further datagram of a message.
pub const MORE: u32 = 2;
/// Kind of the end marker (no payload).
pub const END: u32 = 3;
/// Bytes of the header of every data datagram.
pub const HEADER: usize = 16;
/// The first 8 bytes of every credit.
pub const CREDIT_MAGIC: [u8; 8] = *b"ipclabCR";

/// What both sides agreed on in `prepare`.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Payload bytes per datagram (the header excluded).
    pub payload: usize,
    /// Datagrams a sender may have in flight without credit.
    pub window: u64,
    /// Datagrams a receiver takes between two credits.
    pub credit_every: u64,
}

pub struct UdpEndpoint {
    /// Sends data, receives credits.
    tx: OwnedFd,
    /// Receives data, sends credits.
    rx: OwnedFd,
    life: Lifeline,
    plan: Plan,
    /// Datagrams sent on `tx`: the next sequence number.
    sent: u64,
    /// Datagrams the peer has taken, by its latest credit.
    acked: u64,
    /// Datagrams taken from `rx`: the next sequence number expected.
    taken: u64,
    /// `taken` as of the last credit sent.
    credited: u64,
    buf: Vec<u8>,
    rounds: u64,
    finished: bool,
}

fn peer_gone(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionRefused,
        format!("the peer's socket is closed ({what}): the peer process went away"),
    )
}

impl UdpEndpoint {
    pub fn new(tx: OwnedFd, rx: OwnedFd, life: Lifeline, plan: Plan) -> io::Result<Self> {
        Lifeline::arm(&tx)?;
        Lifeline::arm(&rx)?;
        Ok(UdpEndpoint {
            tx,
            rx,
            life,
            plan,
            sent: 0,
            acked: 0,
            taken: 0,
            credited: 0,
            buf: Vec::new(),
            rounds: 0,
            finished: false,
        })
    }

    /// Blocks until one credit arrives on `tx`.
    fn wait_credit(&mut self) -> io::Result<()> {
        let mut credit = [0u8; 16];
        let got = loop {
            match recv(&self.tx, &mut credit, RecvFlags::TRUNC) {
                Ok((_, got)) => break got,
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => self.life.check("credit")?,
                Err(Errno::CONNREFUSED) => return Err(peer_gone("waiting for credit")),
                Err(e) => return Err(e.into()),
            }
        };
        let (magic, count) = credit.split_at(8);
        let count = u64::from_le_bytes(count.try_into().expect("8 bytes"));
        if got != credit.len() || magic != CREDIT_MAGIC {
            return Err(protocol_error(format!(
                "a {got}-byte datagram where a credit was expected"
            )));
        }
        if count < self.acked || count > self.sent {
            return Err(protocol_error(format!(
                "credit for {count} datagrams, after {} credited and {} sent",
                self.acked, self.sent
            )));
        }
        self.acked = count;
        Ok(())
    }

    /// Sends `buf[offset..offset + n]` as one datagram of `kind`, once the
    /// window has room.
    fn send_datagram(&mut self, kind: u32, offset: usize, n: usize) -> io::Result<()> {
        while self.sent - self.acked >= self.plan.window {
            self.wait_credit()?;
        }
        let mut header = [0u8; HEADER];
        header[..8].copy_from_slice(&self.sent.to_le_bytes());
        header[8..12].copy_from_slice(&kind.to_le_bytes());
        header[12..].copy_from_slice(&(n as u32).to_le_bytes());
        let iov = [
            IoSlice::new(&header),
            IoSlice::new(&self.buf[offset..offset + n]),
        ];
        loop {
            match sendmsg(
                &self.tx,
                &iov,
                &mut SendAncillaryBuffer::default(),
                SendFlags::NOSIGNAL,
            ) {
                Ok(m) if m == HEADER + n => break,
                Ok(m) => {
                    return Err(protocol_error(format!(
                        "the kernel took {m} of a {}-byte datagram",
                        HEADER + n
                    )));
                }
                Err(Errno::INTR) => {}
                Err(Errno::CONNREFUSED) => return Err(peer_gone("sending")),
                Err(e) => return Err(e.into()),
            }
        }
        self.sent += 1;
        Ok(())
    }

    /// Tells the sender how many datagrams this side has taken.
    fn send_credit(&mut self) -> io::Result<()> {
        let mut credit = [0u8; 16];
        credit[..8].copy_from_slice(&CREDIT_MAGIC);
        credit[8..].copy_from_slice(&self.taken.to_le_bytes());
        loop {
            match send(&self.rx, &credit, SendFlags::NOSIGNAL) {
                Ok(_) => break,
                Err(Errno::INTR) => {}
                // The sender's socket is closed: it finished (or died) and
                // needs no credit; a dead peer is reported by the data path.
                Err(Errno::CONNREFUSED) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        self.credited = self.taken;
        Ok(())
    }

    /// Receives the next datagram into `buf[offset..offset + n]`; returns
    /// its kind and payload length, after checking its sequence number.
    fn recv_datagram(&mut self, offset: usize, n: usize) -> io::Result<(u32, usize)> {
        let mut header = [0u8; HEADER];
        let got = loop {
            let mut iov = [
                IoSliceMut::new(&mut header),
                IoSliceMut::new(&mut self.buf[offset..offset + n]),
            ];
            match recvmsg(
                &self.rx,
                &mut iov,
                &mut RecvAncillaryBuffer::default(),
                RecvFlags::CMSG_CLOEXEC,
            ) {
                Ok(msg) if msg.flags.contains(ReturnFlags::TRUNC) => {
                    return Err(protocol_error(format!(
                        "a datagram longer than the {} bytes expected",
                        HEADER + n
                    )));
                }
                Ok(msg) => break msg.bytes,
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => self.life.check("a datagram")?,
                // A credit of ours bounced off the sender's closed socket
                // (ICMP port unreachable): the error is reported once, here,
                // ahead of the datagrams still queued. Read on.
                Err(Errno::CONNREFUSED) => {}
                Err(e) => return Err(e.into()),
            }
        };
        if got < HEADER {
            return Err(protocol_error(format!("a {got}-byte datagram")));
        }
        let seq = u64::from_le_bytes(header[..8].try_into().expect("8 bytes"));
        let kind = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
        let len = u32::from_le_bytes(header[12..].try_into().expect("4 bytes")) as usize;
        if seq != self.taken {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "datagram {} lost or out of order: datagram {seq} came instead",
                    self.taken
                ),
            ));
        }
        if len != got - HEADER {
            return Err(protocol_error(format!(
                "datagram {seq} announces {len} bytes and carries {}",
                got - HEADER
            )));
        }
        self.taken += 1;
        if self.taken - self.credited >= self.plan.credit_every {
            self.send_credit()?;
        }
        Ok((kind, len))
    }
}

impl Endpoint for UdpEndpoint {
    fn send(&mut self, len: usize, fill: Fill<'_>) -> io::Result<()> {
        if self.finished {
            return Err(protocol_error("send after finish"));
        }
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        fill(0, &mut self.buf[..len]);
        for (i, (offset, n)) in pieces(len, self.plan.payload).enumerate() {
            self.send_datagram(if i == 0 { FIRST } else { MORE }, offset, n)?;
        }
        Ok(())
    }

    fn recv(&mut self, len: usize, check: Check<'_>) -> io::Result<Received> {
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        for (i, (offset, n)) in pieces(len, self.plan.payload).enumerate() {
            let want = if i == 0 { FIRST } else { MORE };
            match self.recv_datagram(offset, n)? {
                (END, 0) if i == 0 => return Ok(Received::Closed),
                (kind, got) if kind == want && got == n => {}
                (kind, got) => {
                    return Err(protocol_error(format!(
                        "datagram {i} of a {len}-byte message: kind {kind}, {got} bytes; \
                         expected kind {want}, {n} bytes"
                    )));
                }
            }
            self.rounds += 1;
            check(offset, &self.buf[offset..offset + n]);
        }
        Ok(Received::Message)
    }

    fn finish(&mut self) -> io::Result<()> {
        if std::mem::replace(&mut self.finished, true) {
            return Ok(());
        }
        self.send_datagram(END, 0, 0)
    }

    fn rounds(&self) -> u64 {
        self.rounds
    }
}
