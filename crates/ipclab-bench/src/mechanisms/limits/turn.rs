//! `limit-spin` and `limit-futex`: one cache line holding a message counter
//! per direction and a closed flag per side. Sending bumps the counter of
//! its direction; receiving waits until the other direction's counter
//! moves past what this side has taken, either spinning on it
//! (`limit-spin`) or sleeping in `FUTEX_WAIT` on it with a `FUTEX_WAKE`
//! after every post (`limit-futex`: bare, without a spin first or a
//! waiter flag to save the wake). No payload moves, so only size 0 is
//! accepted: this is the hand-over alone, the floor under every
//! mechanism's round trip.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};

use rustix::io::Errno;
use rustix::thread::futex;

use super::shared::{Shared, SharedPair, no_payload, peer_gone};
use crate::mechanisms::shm::region::Side;
use crate::mechanisms::shm::semaphores::WAIT_SLICE;
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
    fn take(self, side: Side) -> Box<dyn Endpoint> {
        Box::new(TurnEnd {
            shared: self.shared.take(side),
            name: self.name,
            futex: self.futex,
            sent: 0,
            taken: 0,
            received: 0,
            finished: false,
        })
    }
}

impl Pair for TurnPair {
    fn server(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        Ok(self.take(Side::Server))
    }

    fn client(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        Ok(self.take(Side::Client))
    }

    fn shared_memory(&mut self) -> io::Result<Vec<SharedMemory>> {
        self.shared.shared_memory(size_of::<Line>())
    }
}

struct TurnEnd {
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
        let slice = futex::Timespec {
            tv_sec: WAIT_SLICE.as_secs() as _,
            tv_nsec: WAIT_SLICE.subsec_nanos() as _,
        };
        // Sleeps only while the counter still equals what we have taken;
        // shared (not private) futex: the kernel finds the waiter by page.
        match futex::wait(
            self.incoming(),
            futex::Flags::empty(),
            self.taken,
            Some(&slice),
        ) {
            Ok(()) | Err(Errno::AGAIN | Errno::INTR) => Ok(None),
            Err(Errno::TIMEDOUT) => {
                self.shared.check_peer("a message")?;
                Ok(None)
            }
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
