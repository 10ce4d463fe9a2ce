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

/// Bytes of the length before every frame.
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

    fn frame(&mut self, len: usize) -> &mut [u8] {
        if self.buf.len() < PREFIX + len {
            self.buf.resize(PREFIX + len, 0);
        }
        &mut self.buf[..PREFIX + len]
    }
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
        let frame = self.frame(len);
        frame[..PREFIX].copy_from_slice(&(len as u64).to_le_bytes());
        fill(0, &mut frame[PREFIX..]);
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| protocol_error("send after finish"))?;
        write_all(tx, &self.buf[..PREFIX + len])
    }

    fn recv(&mut self, len: usize, check: Check<'_>) -> io::Result<Received> {
        self.frame(len);
        let frame = &mut self.buf[..PREFIX + len];
        let Some(calls) = read_exact(&self.rx, frame)? else {
            return Ok(Received::Closed);
        };
        self.rounds += calls;
        let announced = u64::from_le_bytes(frame[..PREFIX].try_into().unwrap());
        if announced != len as u64 {
            return Err(protocol_error(format!(
                "frame announces {announced} bytes, expected {len}"
            )));
        }
        check(0, &frame[PREFIX..]);
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
