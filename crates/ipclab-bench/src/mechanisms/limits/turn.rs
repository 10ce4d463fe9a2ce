//! `limit-spin` and `limit-futex`: one cache line holding a message counter
//! per direction and a closed flag per side. Sending bumps the counter of
//! its direction; receiving waits until the other direction's counter
//! moves past what this side has taken, either spinning on it
//! (`limit-spin`) or sleeping in `FUTEX_WAIT` on it with a `FUTEX_WAKE`
//! after every post (`limit-futex`: bare, without a spin first or a
//! waiter flag to save the wake). No payload moves, so only size 0 is
//! accepted: this is the hand-over alone, the floor under every
//! mechanism's round trip.
//!
//! `limit-futex` sleeps without a timeout: a `FUTEX_WAIT` with one arms a
//! high-resolution timer on every sleep and cancels it on every wake, two
//! timer reprogrammings (in a VM, exits to the host) per hand-over that
//! made the futex slower than a Unix socket here (README, "A sleeping
//! floor"). A dead peer is noticed by a [`Watchdog`] thread instead,
//! asleep in `poll` on the lifeline: when the kernel hangs it up, the
//! watchdog marks the peer dead and wakes the waiter.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::JoinHandle;

use rustix::io::Errno;
use rustix::thread::futex;

use super::shared::{Shared, SharedPair, no_payload, peer_gone};
use crate::mechanisms::shm::region::Side;
use crate::transport::{
    ChannelConfig, Check, Endpoint, Fill, Info, Pair, Prepared, Received, SharedMemory, Transport,
};

/// `limit-spin` (`futex: false`) or `limit-futex`.
pub struct Turn {
    pub info: Info,
    pub futex: bool,
}

/// The one cache line both sides write.
#[repr(C, align(64))]
struct Line {
    /// Messages posted in each direction (0: client to server), wrapping.
    posted: [AtomicU32; 2],
    /// Set by each side (`Side::index`) when its endpoint finishes or drops.
    closed: [AtomicU32; 2],
}

const _: () = assert!(size_of::<Line>() == 64);

impl Transport for Turn {
    fn shares_memory(&self) -> bool {
        true
    }

    fn info(&self) -> Info {
        self.info.clone()
    }

    fn prepare(&self, config: &ChannelConfig) -> io::Result<Prepared> {
        if config.size != 0 {
            return Err(no_payload(self.info.name, config.size));
        }
        // A fresh anonymous mapping is zero-filled: counters 0, both open.
        Ok(Prepared::new(TurnPair {
            shared: SharedPair::new(size_of::<Line>())?,
            name: self.info.name,
            futex: self.futex,
        }))
    }
}

struct TurnPair {
    shared: SharedPair,
    name: &'static str,
    futex: bool,
}

impl TurnPair {
    fn take(self, side: Side) -> io::Result<Box<dyn Endpoint>> {
        let shared = self.shared.take(side);
        let watchdog = if self.futex {
            // SAFETY: the mapping holds a `Line` and outlives the watchdog
            // (`TurnEnd` drops its watchdog, joining it, before `shared`).
            let line = unsafe { &*shared.map.as_ptr().cast::<Line>() };
            let word = &line.posted[side.rx_dir()] as *const AtomicU32 as usize;
            Some(Watchdog::start(&shared, word)?)
        } else {
            None
        };
        Ok(Box::new(TurnEnd {
            watchdog,
            shared,
            name: self.name,
            futex: self.futex,
            sent: 0,
            taken: 0,
            received: 0,
            finished: false,
        }))
    }
}

/// `limit-futex`'s watch on the peer: a thread asleep in `poll` on this
/// side's lifeline (and on an eventfd that stops it). When the peer dies,
/// it sets `dead` and wakes the futex word this side sleeps on, again
/// every [`Watchdog::REWAKE`] (a side about to sleep may have looked at
/// `dead` just before it was set), until stopped.
struct Watchdog {
    dead: Arc<AtomicBool>,
    stop: OwnedFd,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    const REWAKE: rustix::time::Timespec = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 10_000_000,
    };

    /// Watches `shared`'s lifeline; `word` is the address of the futex
    /// word this side sleeps on, valid until the watchdog is dropped.
    fn start(shared: &Shared, word: usize) -> io::Result<Watchdog> {
        use rustix::event::{EventfdFlags, PollFd, PollFlags, eventfd, poll};
        let lifeline = rustix::io::fcntl_dupfd_cloexec(shared.lifeline_fd(), 0)?;
        let stop = eventfd(0, EventfdFlags::CLOEXEC)?;
        let stop_here = rustix::io::fcntl_dupfd_cloexec(&stop, 0)?;
        let dead = Arc::new(AtomicBool::new(false));
        let flag = dead.clone();
        let thread = std::thread::Builder::new()
            .name("limit-futex-watchdog".into())
            .spawn(move || {
                // SAFETY: `start`'s contract: the word outlives this thread,
                // which `Drop` joins first.
                let word = unsafe { &*(word as *const AtomicU32) };
                let mut timeout = None;
                loop {
                    let mut fds = [
                        PollFd::new(&lifeline, PollFlags::IN),
                        PollFd::new(&stop_here, PollFlags::IN),
                    ];
                    match poll(&mut fds, timeout.as_ref()) {
                        Ok(_) | Err(Errno::INTR) => {}
                        Err(_) => return,
                    }
                    if !fds[1].revents().is_empty() {
                        return;
                    }
                    if timeout.is_some() || !fds[0].revents().is_empty() {
                        // Release: pairs with the Acquire load in `sleep`.
                        flag.store(true, Ordering::Release);
                        let _ = futex::wake(word, futex::Flags::empty(), u32::MAX);
                        timeout = Some(Self::REWAKE);
                    }
                }
            })?;
        Ok(Watchdog {
            dead,
            stop,
            thread: Some(thread),
        })
    }

    fn peer_dead(&self) -> bool {
        // Acquire: pairs with the Release store in the thread.
        self.dead.load(Ordering::Acquire)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let _ = rustix::io::write(&self.stop, &1u64.to_ne_bytes());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Pair for TurnPair {
    fn server(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        self.take(Side::Server)
    }

    fn client(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        self.take(Side::Client)
    }

    fn shared_memory(&mut self) -> io::Result<Vec<SharedMemory>> {
        self.shared.shared_memory(size_of::<Line>())
    }
}

struct TurnEnd {
    /// `limit-futex` only; dropped (and joined) before the mapping.
    watchdog: Option<Watchdog>,
    shared: Shared,
    name: &'static str,
    futex: bool,
    /// What this side last stored in its direction's counter.
    sent: u32,
    /// Messages taken from the peer's direction.
    taken: u32,
    /// Messages received, for `rounds`.
    received: u64,
    finished: bool,
}

impl TurnEnd {
    fn line(&self) -> &Line {
        // SAFETY: the mapping is at least one `Line` long, page-aligned,
        // and lives as long as `self`; atomics are valid for any bytes.
        unsafe { &*self.shared.map.as_ptr().cast::<Line>() }
    }

    fn peer_closed(&self) -> bool {
        // Acquire: pairs with the Release store in `close`; every post the
        // peer made before closing is visible after this.
        self.line().closed[self.shared.side.peer().index()].load(Ordering::Acquire) != 0
    }

    /// The peer's counter: a new message when it differs from `taken`.
    fn incoming(&self) -> &AtomicU32 {
        &self.line().posted[self.shared.side.rx_dir()]
    }

    fn outgoing(&self) -> &AtomicU32 {
        &self.line().posted[self.shared.side.tx_dir()]
    }

    /// `Some(true)` for a message, `Some(false)` when the peer closed with
    /// nothing more sent, `None` for nothing yet.
    fn look(&self) -> Option<bool> {
        // Acquire: pairs with the Release store in `send`.
        if self.incoming().load(Ordering::Acquire) != self.taken {
            return Some(true);
        }
        if self.peer_closed() {
            // A post made just before the close is visible now.
            return Some(self.incoming().load(Ordering::Acquire) != self.taken);
        }
        None
    }

    fn sleep(&self) -> io::Result<Option<bool>> {
        if let Some(found) = self.look() {
            return Ok(Some(found));
        }
        if self.watchdog.as_ref().is_some_and(Watchdog::peer_dead) {
            self.shared.check_peer("a message")?;
        }
        // Sleeps only while the counter still equals what we have taken;
        // shared (not private) futex: the kernel finds the waiter by page.
        // No timeout (see the module's notes): the watchdog wakes us if
        // the peer dies.
        match futex::wait(self.incoming(), futex::Flags::empty(), self.taken, None) {
            Ok(()) | Err(Errno::AGAIN | Errno::INTR) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn close(&mut self) {
        if !self.finished {
            self.finished = true;
            let me = self.shared.side.index();
            // Release: pairs with the Acquire load in the peer's `peer_closed`.
            self.line().closed[me].store(1, Ordering::Release);
            // A sleeping peer waits on our counter.
            let _ = futex::wake(self.outgoing(), futex::Flags::empty(), u32::MAX);
        }
    }
}

impl Endpoint for TurnEnd {
    fn send(&mut self, len: usize, _: Fill<'_>) -> io::Result<()> {
        if len != 0 {
            return Err(no_payload(self.name, len));
        }
        if self.peer_closed() {
            return Err(peer_gone());
        }
        self.sent = self.sent.wrapping_add(1);
        // Release: pairs with the Acquire load in the peer's `look`.
        self.outgoing().store(self.sent, Ordering::Release);
        if self.futex {
            futex::wake(self.outgoing(), futex::Flags::empty(), 1)?;
        }
        Ok(())
    }

    fn recv(&mut self, len: usize, _: Check<'_>) -> io::Result<Received> {
        if len != 0 {
            return Err(no_payload(self.name, len));
        }
        let found = if self.futex {
            loop {
                if let Some(found) = self.sleep()? {
                    break found;
                }
            }
        } else {
            self.shared.spin("a message", || self.look())?
        };
        if !found {
            return Ok(Received::Closed);
        }
        self.taken = self.taken.wrapping_add(1);
        self.received += 1;
        Ok(Received::Message)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.close();
        Ok(())
    }

    fn rounds(&self) -> u64 {
        self.received
    }
}

impl Drop for TurnEnd {
    fn drop(&mut self) {
        self.close();
    }
}
