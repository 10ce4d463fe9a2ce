//! The measured window of a pair split across hosts: the client's first
//! measured sequence number travels over the control connection instead
//! of the shared page (`harness::window`).
//!
//! The client writes `window {first_seq}` before it sends that message on
//! the channel. The server looks for it without blocking after each
//! warm-up message; it usually arrives first, and when the channel
//! overtakes it, the server counts from the announced message all the
//! same (`harness::sides::server`). Each side's times are its own host's
//! clock: a window that begins with no warm-up begins at the server's
//! attachment.

use std::cell::{Cell, RefCell};
use std::io::{self, Write};
use std::net::TcpStream;

use rustix::io::Errno;
use rustix::net::{RecvFlags, recv};

use super::control::Msg;
use crate::harness::clock::mono_ns;
use crate::harness::window::MeasuredWindow;

/// The client's end: announces the window on the control connection.
pub struct ClientWindow<'a> {
    pub control: &'a TcpStream,
}

impl MeasuredWindow for ClientWindow<'_> {
    fn arrive(&self) {}

    fn warming(&self, attached_ns: u64, warmup_ns: u64, now_ns: u64) -> bool {
        now_ns < attached_ns.saturating_add(warmup_ns)
    }

    fn open(&self, seq: u64, _now_ns: u64) -> io::Result<()> {
        let mut control = self.control;
        control.write_all(&Msg::Window { first_seq: seq }.line())
    }

    fn first(&self) -> Option<(u64, u64)> {
        None
    }
}

/// The server's end: picks the announcement up from the control
/// connection without waiting for it.
pub struct ServerWindow<'a> {
    control: &'a TcpStream,
    buf: RefCell<Vec<u8>>,
    first: Cell<Option<u64>>,
    attached: Cell<u64>,
}

impl<'a> ServerWindow<'a> {
    pub fn new(control: &'a TcpStream) -> Self {
        ServerWindow {
            control,
            buf: RefCell::new(Vec::new()),
            first: Cell::new(None),
            attached: Cell::new(0),
        }
    }

    /// Reads what the control connection has, without blocking; takes a
    /// `window` line if a whole one is there.
    fn poll(&self) {
        let mut buf = self.buf.borrow_mut();
        let mut chunk = [0u8; 512];
        loop {
            match recv(self.control, &mut chunk, RecvFlags::DONTWAIT) {
                Ok((0, _)) => break,
                Ok((n, _)) => buf.extend_from_slice(&chunk[..n]),
                Err(Errno::INTR) => {}
                // Nothing more now (AGAIN), or the client is gone: the
                // channel tells the side soon enough.
                Err(_) => break,
            }
            if buf.len() > super::control::MAX_LINE {
                buf.clear();
            }
        }
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            if let Ok(Msg::Window { first_seq }) = serde_json::from_slice(&line) {
                self.first.set(Some(first_seq));
            }
        }
    }
}

impl MeasuredWindow for ServerWindow<'_> {
    fn arrive(&self) {
        self.attached.set(mono_ns());
    }

    fn warming(&self, _: u64, _: u64, _: u64) -> bool {
        false
    }

    fn open(&self, _: u64, _: u64) -> io::Result<()> {
        Ok(())
    }

    fn first(&self) -> Option<(u64, u64)> {
        if self.first.get().is_none() {
            self.poll();
        }
        self.first.get().map(|seq| (seq, self.attached.get()))
    }
}
