//! Messages over a byte stream (pipe, FIFO, stream socket).
//!
//! A byte stream has no message boundaries, so every message goes out as an
//! 8-byte little-endian length followed by the payload, written with one
//! `write` loop from one buffer: the framing any real protocol over a stream
//! needs, and what lets a 0-byte message exist at all. The receiver reads
//! until it has the whole frame, however many `read` calls that takes (each
//! counted as a round): a short read is normal, never an error.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::io::{Errno, read, write};

use crate::transport::{Check, Endpoint, Fill, Received, protocol_error};

/// Bytes of the length prefix in front of every payload.
pub const PREFIX: usize = 8;

/// One side of a framed byte stream.
pub struct FramedStream {
    rx: OwnedFd,
    /// `None` after [`Endpoint::finish`].
    tx: Option<OwnedFd>,
    buf: Vec<u8>,
    rounds: u64,
}

impl FramedStream {
    /// `rx` and `tx` may be the same socket (a `dup` of it).
    pub fn new(rx: OwnedFd, tx: OwnedFd) -> Self {
        FramedStream {
            rx,
            tx: Some(tx),
            buf: Vec::new(),
            rounds: 0,
        }
    }

    /// The sending end; an error after [`Endpoint::finish`].
    pub fn tx(&self) -> io::Result<&OwnedFd> {
        self.tx
            .as_ref()
            .ok_or_else(|| protocol_error("send after finish"))
    }
}

/// The first `PREFIX + len` bytes of `buf` (grown if need be), the prefix
/// announcing `len` and the rest for the payload.
pub fn frame(buf: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if buf.len() < PREFIX + len {
        buf.resize(PREFIX + len, 0);
    }
    let frame = &mut buf[..PREFIX + len];
    put_prefix(frame, len);
    frame
}

/// Writes the length prefix announcing `len` at the start of `frame`.
pub fn put_prefix(frame: &mut [u8], len: usize) {
    frame[..PREFIX].copy_from_slice(&(len as u64).to_le_bytes());
}

/// Checks that the prefix at the start of `frame` announces `len`.
pub fn check_prefix(frame: &[u8], len: usize) -> io::Result<()> {
    let announced = u64::from_le_bytes(frame[..PREFIX].try_into().expect("PREFIX bytes"));
    if announced != len as u64 {
        return Err(protocol_error(format!(
            "frame announces {announced} bytes, expected {len}"
        )));
    }
    Ok(())
}

/// The payload part of a [`frame`].
pub fn payload(frame: &mut [u8]) -> &mut [u8] {
    &mut frame[PREFIX..]
}

/// Reads one frame of a `len`-byte message from `fd` into `buf` and hands
/// its payload to `check`; returns the number of `read` calls, or `None`
/// when the stream ended at a frame boundary.
pub fn recv_frame(
    fd: impl AsFd,
    buf: &mut Vec<u8>,
    len: usize,
    check: Check<'_>,
) -> io::Result<Option<u64>> {
    let frame = self::frame(buf, len);
    let Some(calls) = read_exact(fd, frame)? else {
        return Ok(None);
    };
    check_prefix(frame, len)?;
    check(0, &frame[PREFIX..]);
    Ok(Some(calls))
}

/// `write` until all of `buf` is written.
pub fn write_all(fd: impl AsFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match write(&fd, buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// `read` until `buf` is full; returns the number of `read` calls, or
/// `None` when the stream ended before the first byte.
pub fn read_exact(fd: impl AsFd, buf: &mut [u8]) -> io::Result<Option<u64>> {
    let (mut done, mut calls) = (0, 0);
    while done < buf.len() {
        match read(&fd, &mut buf[done..]) {
            Ok(0) if done == 0 => return Ok(None),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("peer closed the stream after {done} of {} bytes", buf.len()),
                ));
            }
            Ok(n) => {
                done += n;
                calls += 1;
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Some(calls))
}

impl Endpoint for FramedStream {
    fn send(&mut self, len: usize, fill: Fill<'_>) -> io::Result<()> {
        fill(0, payload(frame(&mut self.buf, len)));
        write_all(self.tx()?, &self.buf[..PREFIX + len])
    }

    fn recv(&mut self, len: usize, check: Check<'_>) -> io::Result<Received> {
        let Some(calls) = recv_frame(&self.rx, &mut self.buf, len, check)? else {
            return Ok(Received::Closed);
        };
        self.rounds += calls;
        Ok(Received::Message)
    }

    fn finish(&mut self) -> io::Result<()> {
        if let Some(tx) = self.tx.take() {
            // On a socket `rx` and `tx` share one file: closing `tx` alone
            // would not end the stream, shutting it down does.
            match rustix::net::shutdown(&tx, rustix::net::Shutdown::Write) {
                Ok(()) | Err(Errno::NOTSOCK) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn rounds(&self) -> u64 {
        self.rounds
    }
}
