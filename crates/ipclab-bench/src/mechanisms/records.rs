//! Messages as records over a Unix socket that keeps boundaries
//! (`SOCK_SEQPACKET`, `SOCK_DGRAM`).
//!
//! # Framing
//!
//! Every record starts with a one-byte tag: [`FIRST`] on the first record of
//! a message, [`MORE`] on the records that continue it, [`END`] (a record of
//! the tag alone) for the end marker of a datagram socket. A message of
//! `len` bytes travels as `max(1, ceil(len / chunk))` records of `chunk`
//! payload bytes (the last one shorter), so a 0-byte message is one 1-byte
//! record.
//!
//! Why a tag on every record rather than a header on the first only: a
//! record is never empty, so a `recv` of 0 bytes on a `SOCK_SEQPACKET`
//! socket can only be the end of the stream (the peer shut down or died),
//! and a 0-byte message still exists as a real record that wakes the peer.
//! The tag also lets the receiver check that message boundaries line up.
//! `sendmsg`/`recvmsg` gather and scatter the tag and the payload, so the
//! tag costs no copy. Each record is received into exactly its expected
//! room; a longer one sets `MSG_TRUNC` and is an error, a shorter one too.
//!
//! # Record size
//!
//! Linux refuses (`EMSGSIZE`) a Unix record larger than the sender's
//! `SO_SNDBUF` minus 32 bytes, and `SO_SNDBUF` is 212 992 bytes by default
//! (`net.core.wmem_default`): see [`largest_record`]. The chunk is chosen in
//! `prepare` and handed to both sides, which must agree on it.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, OwnedFd};

use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvFlags, ReturnFlags, SendAncillaryBuffer, SendFlags,
    Shutdown, SocketFlags, SocketType, recvmsg, sendmsg, shutdown, socketpair,
};

use super::lifeline::Lifeline;
use crate::machine::read_proc;
use crate::transport::{Check, Endpoint, Fill, Limit, Received, protocol_error};

/// Tag of the first record of a message.
pub const FIRST: u8 = b'M';
/// Tag of every further record of a message.
pub const MORE: u8 = b'+';
/// Tag of the end marker (a record of the tag alone).
pub const END: u8 = b'E';

/// Bytes the kernel keeps out of `SO_SNDBUF` for one Unix record
/// (`unix_dgram_sendmsg`: `len > sk_sndbuf - 32` is `EMSGSIZE`).
const RECORD_OVERHEAD: usize = 32;

/// The largest record a Unix socket of this `type_` takes here, with the
/// default `SO_SNDBUF`; also returns that `SO_SNDBUF`.
pub fn largest_record(type_: SocketType) -> io::Result<(usize, usize)> {
    let (a, _b) = socketpair(AddressFamily::UNIX, type_, SocketFlags::CLOEXEC, None)?;
    let sndbuf = rustix::net::sockopt::socket_send_buffer_size(&a)?;
    Ok((sndbuf.saturating_sub(RECORD_OVERHEAD), sndbuf))
}

/// Payload bytes per record: the largest record minus the tag.
pub fn chunk_for(type_: SocketType) -> io::Result<usize> {
    let (record, _) = largest_record(type_)?;
    record
        .checked_sub(1)
        .filter(|&c| c > 0)
        .ok_or_else(|| io::Error::other(format!("SO_SNDBUF allows records of {record} bytes")))
}

/// The limits `ipclab list` shows for a record socket of this `type_`.
pub fn limits(type_: SocketType) -> Vec<Limit> {
    let mut out = match largest_record(type_) {
        Ok((record, sndbuf)) => vec![
            Limit::new("SO_SNDBUF (default)", format!("{sndbuf} bytes")),
            Limit::new(
                "largest record (SO_SNDBUF - 32)",
                format!(
                    "{record} bytes; messages go in records of {} payload bytes",
                    record.saturating_sub(1)
                ),
            ),
        ],
        Err(e) => vec![Limit::new("SO_SNDBUF", format!("unknown ({e})"))],
    };
    out.push(Limit::new(
        "net.core.wmem_max",
        read_proc("/proc/sys/net/core/wmem_max"),
    ));
    out.push(Limit::new(
        "net.unix.max_dgram_qlen",
        format!(
            "{} (not applied between the two ends of a socketpair; SO_SNDBUF bounds the queue)",
            read_proc("/proc/sys/net/unix/max_dgram_qlen")
        ),
    ));
    out
}

/// How a peer says that no more messages follow.
pub enum Ending {
    /// `shutdown(SHUT_WR)`: the receiver reads 0 bytes (`SOCK_SEQPACKET`).
    Shutdown,
    /// An [`END`] record; the lifeline tells a dead peer (`SOCK_DGRAM`).
    Marker(Lifeline),
}

/// One side of a record channel.
pub struct Records {
    sock: OwnedFd,
    chunk: usize,
    ending: Ending,
    buf: Vec<u8>,
    rounds: u64,
    finished: bool,
}

/// `(offset, length)` of every record of a `len`-byte message.
pub fn pieces(len: usize, chunk: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..len.div_ceil(chunk).max(1)).map(move |i| {
        let offset = i * chunk;
        (offset, (len - offset).min(chunk))
    })
}

fn send_record(sock: impl AsFd, tag: u8, data: &[u8]) -> io::Result<()> {
    let iov = [IoSlice::new(std::slice::from_ref(&tag)), IoSlice::new(data)];
    loop {
        match sendmsg(
            &sock,
            &iov,
            &mut SendAncillaryBuffer::default(),
            SendFlags::NOSIGNAL,
        ) {
            Ok(n) if n == 1 + data.len() => return Ok(()),
            Ok(n) => {
                return Err(protocol_error(format!(
                    "the kernel took {n} of a {}-byte record",
                    1 + data.len()
                )));
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

impl Records {
    /// `chunk` must be the same on both sides.
    pub fn new(sock: OwnedFd, chunk: usize, ending: Ending) -> io::Result<Self> {
        if let Ending::Marker(_) = ending {
            Lifeline::arm(&sock)?;
        }
        Ok(Records {
            sock,
            chunk: chunk.max(1),
            ending,
            buf: Vec::new(),
            rounds: 0,
            finished: false,
        })
    }

    /// Receives one record into `buf[offset..offset + n]`; returns its tag
    /// and length (tag included), 0 for the end of the stream.
    fn recv_record(&mut self, offset: usize, n: usize) -> io::Result<(u8, usize)> {
        let mut tag = 0u8;
        loop {
            let mut iov = [
                IoSliceMut::new(std::slice::from_mut(&mut tag)),
                IoSliceMut::new(&mut self.buf[offset..offset + n]),
            ];
            let got = recvmsg(
                &self.sock,
                &mut iov,
                &mut RecvAncillaryBuffer::default(),
                RecvFlags::CMSG_CLOEXEC,
            );
            match got {
                Ok(msg) if msg.flags.contains(ReturnFlags::TRUNC) => {
                    return Err(protocol_error(format!(
                        "a record longer than the {} bytes expected",
                        1 + n
                    )));
                }
                Ok(msg) => return Ok((tag, msg.bytes)),
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => match &self.ending {
                    Ending::Marker(lifeline) => lifeline.check("a record")?,
                    Ending::Shutdown => return Err(Errno::AGAIN.into()),
                },
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Endpoint for Records {
    fn send(&mut self, len: usize, fill: Fill<'_>) -> io::Result<()> {
        if self.finished {
            return Err(protocol_error("send after finish"));
        }
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        fill(0, &mut self.buf[..len]);
        for (i, (offset, n)) in pieces(len, self.chunk).enumerate() {
            let tag = if i == 0 { FIRST } else { MORE };
            send_record(&self.sock, tag, &self.buf[offset..offset + n])?;
        }
        Ok(())
    }

    fn recv(&mut self, len: usize, check: Check<'_>) -> io::Result<Received> {
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        for (i, (offset, n)) in pieces(len, self.chunk).enumerate() {
            let (tag, got) = self.recv_record(offset, n)?;
            let marker = matches!(self.ending, Ending::Marker(_));
            match (tag, got) {
                (_, 0) if i == 0 && !marker => return Ok(Received::Closed),
                (_, 0) if !marker => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the peer closed the channel after {offset} of {len} bytes"),
                    ));
                }
                (END, 1) if i == 0 && marker => return Ok(Received::Closed),
                (END, 1) if marker => {
                    return Err(protocol_error(format!(
                        "end marker after {offset} of {len} bytes"
                    )));
                }
                (FIRST, got) if i == 0 && got == 1 + n => {}
                (MORE, got) if i > 0 && got == 1 + n => {}
                (tag, got) => {
                    return Err(protocol_error(format!(
                        "record {i} of a {len}-byte message: tag {tag:#04x}, {got} bytes; \
                         expected tag {:#04x}, {} bytes",
                        if i == 0 { FIRST } else { MORE },
                        1 + n
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
        match self.ending {
            Ending::Shutdown => Ok(shutdown(&self.sock, Shutdown::Write)?),
            Ending::Marker(_) => send_record(&self.sock, END, &[]),
        }
    }

    fn rounds(&self) -> u64 {
        self.rounds
    }
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;

    use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};

    use super::{Ending, FIRST, Records, pieces, send_record};
    use crate::mechanisms::lifeline::lifelines;
    use crate::transport::{Endpoint, Received};

    /// Framing only: both ends in this one process, small messages.
    fn pair(type_: SocketType) -> (Records, Records) {
        let (a, b) = socketpair(AddressFamily::UNIX, type_, SocketFlags::CLOEXEC, None).unwrap();
        let ending = |l| match type_ {
            SocketType::SEQPACKET => Ending::Shutdown,
            _ => Ending::Marker(l),
        };
        let (la, lb) = lifelines().unwrap();
        (
            Records::new(a, 5, ending(la)).unwrap(),
            Records::new(b, 5, ending(lb)).unwrap(),
        )
    }

    fn received(ep: &mut Records, len: usize) -> std::io::Result<(Received, Vec<u8>)> {
        let mut got = Vec::new();
        let r = ep.recv(len, &mut |offset, chunk| {
            assert_eq!(offset, got.len());
            got.extend_from_slice(chunk);
        })?;
        Ok((r, got))
    }

    #[test]
    fn pieces_cover_every_size_once() {
        assert_eq!(pieces(0, 10).collect::<Vec<_>>(), [(0, 0)]);
        assert_eq!(pieces(10, 10).collect::<Vec<_>>(), [(0, 10)]);
        assert_eq!(pieces(11, 10).collect::<Vec<_>>(), [(0, 10), (10, 1)]);
    }

    #[test]
    fn messages_of_every_size_then_the_end() {
        for type_ in [SocketType::SEQPACKET, SocketType::DGRAM] {
            let (mut a, mut b) = pair(type_);
            for len in [0, 1, 5, 6, 11] {
                let msg: Vec<u8> = (0..len as u8).collect();
                a.send(len, &mut |o, buf| {
                    buf.copy_from_slice(&msg[o..o + buf.len()])
                })
                .unwrap();
                assert_eq!(received(&mut b, len).unwrap(), (Received::Message, msg));
            }
            a.finish().unwrap();
            assert_eq!(received(&mut b, 3).unwrap().0, Received::Closed);
        }
    }

    #[test]
    fn wrong_records_are_errors_not_data() {
        for type_ in [SocketType::SEQPACKET, SocketType::DGRAM] {
            let (a, mut b) = pair(type_);
            send_record(&a.sock, FIRST, b"abc").unwrap(); // 3 of 5 bytes
            send_record(&a.sock, FIRST, b"abcdef").unwrap(); // 6 of 5 bytes
            for _ in 0..2 {
                let e = received(&mut b, 5).unwrap_err();
                assert_eq!(e.kind(), ErrorKind::InvalidData, "{e}");
            }
        }
        // The end marker in the middle of a message.
        let (mut a, mut b) = pair(SocketType::DGRAM);
        send_record(&a.sock, FIRST, b"abcde").unwrap();
        a.finish().unwrap();
        let e = received(&mut b, 8).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidData, "{e}");
    }

    #[test]
    fn a_vanished_datagram_peer_is_an_error() {
        let (a, mut b) = pair(SocketType::DGRAM);
        drop(a); // closes its socket and its end of the lifeline
        let e = received(&mut b, 1).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
    }
}
