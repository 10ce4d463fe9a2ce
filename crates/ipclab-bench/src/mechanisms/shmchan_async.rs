//! `shmchan-async`: the shmchan library's tokio ends over its rendezvous,
//! against `shmchan-block`, the same rings waited on by blocking calls.
//!
//! The supervisor binds a `shmchan::Listener` at a random abstract name
//! (no file, nothing to clean up) before the fork; the server accepts and
//! the client connects, which gives each side a duplex connection: two
//! sealed memfd rings, each with its bell (a socket pair). Each side runs
//! a current-thread tokio runtime and drives one call at a time: polled
//! once in place, as a task in a running loop would find it, and handed to
//! `block_on` only when it must wait (entering and leaving the runtime for
//! every message would cost more than the message). A side that finds
//! nothing arms its bell and awaits it with tokio's `AsyncFd` (epoll),
//! where `shmchan-block` sleeps on the futex.
//! Sending writes in place (an async loan, or `send_with` in rounds for a
//! message longer than a loan); receiving copies each message out once.
//!
//! Under `torture hostile` the rings exist only once the server has
//! accepted, after the fork: the server then passes both to the scribbler
//! over a socket pair made for it ([`Pair::shared_memory_later`]), each
//! as a fresh open file description (no lock of the server's goes with
//! it, so the server's death still shows).

use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use ::shmchan::tokio::{AsyncReceiver, AsyncSender};
use ::shmchan::{Error, Listener, Options, Wait};
use tokio::runtime::Runtime;

use crate::transport::{
    ChannelConfig, Check, Copies, Endpoint, Family, Fill, HostileSender, Info, LaterMemory, Limit,
    Pair, Prepared, Received, Transport, protocol_error,
};

pub struct ShmChanAsync;

pub static ASYNC: ShmChanAsync = ShmChanAsync;

impl Transport for ShmChanAsync {
    fn shares_memory(&self) -> bool {
        true
    }

    fn info(&self) -> Info {
        Info {
            name: "shmchan-async",
            family: Family::SharedMemory,
            sync: "tokio AsyncFd on a bell (epoll)",
            summary: "the shmchan library's tokio ends over its rendezvous: a side that finds nothing awaits its bell with epoll",
            polls: false,
            copies: Copies {
                count: Some(1),
                why: "written in place (an async loan); the receiver copies out before checking (safe with a hostile sender)",
            },
        }
    }

    fn hostile_sender(&self) -> Option<HostileSender> {
        Some(HostileSender::Safe(
            "every message is copied out of the ring before it is looked at",
        ))
    }

    fn limits(&self) -> Vec<Limit> {
        vec![Limit::new(
            "ring each way (--segment-size sets it)",
            "as shmchan-block",
        )]
    }

    fn prepare(&self, config: &ChannelConfig) -> io::Result<Prepared> {
        let mut b = [0u8; 16];
        getrandom::fill(&mut b).map_err(|e| io::Error::other(format!("getrandom: {e}")))?;
        let name = format!("ipclab-shmchan-async-{:032x}", u128::from_le_bytes(b));
        let capacity = config
            .segment_size
            .unwrap_or_else(|| super::shmchan::ring_for(config));
        let listener = options().capacity(capacity).bind_abstract(&name)?;
        Ok(Prepared::new(Rendezvous {
            listener,
            name,
            scribbler: None,
        }))
    }
}

/// Both sides sleep at once when they find nothing (the async ends look
/// as often as their policy spins before arming the bell).
fn options() -> Options {
    Options::new().wait(Wait::Block)
}

struct Rendezvous {
    listener: Listener,
    name: String,
    /// Fault injection only: the server's end of the line to the
    /// scribbler.
    scribbler: Option<OwnedFd>,
}

impl Pair for Rendezvous {
    fn server(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        let conn = self.listener.accept()?;
        // One connection: nobody else may come in.
        drop(self.listener);
        let (tx, rx) = conn.into_split();
        if let Some(line) = self.scribbler {
            for ring in [tx.as_fd(), rx.as_fd()] {
                // A description of its own: the scribbler holds none of
                // our locks.
                let path = format!("/proc/self/fd/{}", ring.as_raw_fd());
                let fresh = rustix::fs::open(
                    path.as_str(),
                    rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )?;
                ::shmchan::send_fd(&line, &fresh)?;
            }
        }
        AsyncSide::endpoint((tx, rx))
    }

    fn client(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        let Rendezvous { listener, name, .. } = *self;
        drop(listener);
        AsyncSide::endpoint(options().connect_abstract(&name)?.into_split())
    }

    fn shared_memory_later(&mut self) -> io::Result<Option<LaterMemory>> {
        let (ours, theirs) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )?;
        self.scribbler = Some(ours);
        Ok(Some(LaterMemory {
            line: theirs,
            count: 2,
            control: ::shmchan::HEADER_SIZE,
        }))
    }
}

/// Runs `f` to completion: one poll in place, then `block_on` if it must
/// wait.
fn run<F: Future>(rt: &Runtime, f: F) -> F::Output {
    // No runtime context for the first poll: the bell's `AsyncFd` knows
    // its reactor, and a ready call never reaches it.
    let mut f = pin!(f);
    if let Poll::Ready(out) = f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        return out;
    }
    rt.block_on(f)
}

/// One side: a runtime, its sending end (gone after `finish`) and its
/// receiving end.
struct AsyncSide {
    rt: Runtime,
    tx: Option<AsyncSender>,
    rx: AsyncReceiver,
    buf: Vec<u8>,
}

impl AsyncSide {
    fn endpoint(
        (tx, rx): (::shmchan::Sender, ::shmchan::Receiver),
    ) -> io::Result<Box<dyn Endpoint>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        // `AsyncFd` registers with the runtime it is made in.
        let (tx, rx) = rt
            .block_on(async { Ok::<_, Error>((AsyncSender::new(tx)?, AsyncReceiver::new(rx)?)) })?;
        Ok(Box::new(AsyncSide {
            rt,
            tx: Some(tx),
            rx,
            buf: Vec::new(),
        }))
    }
}

impl Endpoint for AsyncSide {
    fn send(&mut self, len: usize, fill: Fill<'_>) -> io::Result<()> {
        let tx = self
            .tx
            .as_mut()
            .ok_or_else(|| protocol_error("send after finish"))?;
        run(&self.rt, async {
            if len <= tx.get_ref().max_loan() {
                let mut loan = tx.loan(len).await?;
                fill(0, &mut loan);
                loan.commit();
                Ok(())
            } else {
                tx.send_with(len, |offset, piece| fill(offset, piece)).await
            }
        })?;
        Ok(())
    }

    fn recv(&mut self, len: usize, check: Check<'_>) -> io::Result<Received> {
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        let (rt, rx, buf) = (&self.rt, &mut self.rx, &mut self.buf[..len]);
        match run(rt, rx.recv_into(buf)) {
            Ok(n) if n == len => {
                check(0, &self.buf[..len]);
                Ok(Received::Message)
            }
            Ok(n) => Err(super::shmchan::wrong_length(n, len)),
            Err(Error::Closed) => Ok(Received::Closed),
            Err(e) => Err(e.into()),
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        // Dropping the sender closes the channel (and hangs up its bell).
        self.tx = None;
        Ok(())
    }

    fn rounds(&self) -> u64 {
        self.rx.get_ref().chunks()
    }
}
