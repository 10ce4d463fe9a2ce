//! `limit-bare`: the minimal ping-pong of `scripts/floor/bare_pingpong.c`
//! in Rust, measured by the harness like any mechanism: per direction one
//! slot of SIZE bytes and one line with a sequence word, the payload
//! copied in from the sender's private buffer (`fill` writes that buffer)
//! before the word is bumped, and copied out into the receiver's private
//! buffer (where `check` reads it) once the word moved; busy waiting.
//!
//! So its row is the bare hand-off plus what ipclab itself costs per round
//! trip (filling and checking the payload, the clock read, the histogram,
//! the loop), and `vs_bare` (`crate::vs_limit`) is every pingpong row over
//! it; `scripts/floor.sh` runs the C loop beside it to show the harness's
//! share.
//!
//! One slot per direction: the sender may overwrite it only once the
//! receiver has copied the last message out. The receiver says so in the
//! line it next publishes on (`ack`, beside its own sequence word), which in
//! a pingpong the sender has just read anyway; only a sender that has had
//! no reply since (a stream) loads the receiver's `taken` word, which the
//! receiver stores after every copy (its own line: in a pingpong nobody
//! reads it, so the store stays in the receiver's cache).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use super::shared::{Shared, SharedPair, peer_gone};
use crate::mechanisms::shm::region::Side;
use crate::transport::{
    ChannelConfig, Check, Copies, Endpoint, Family, Fill, Info, Pair, Prepared, Received,
    SharedMemory, Transport, protocol_error,
};

pub struct Bare;

/// The words one side publishes a message with: alone on their lines
/// (128 bytes: the adjacent-line prefetcher pulls pairs of lines).
#[repr(C, align(128))]
struct Post {
    /// Messages published in this direction.
    seq: AtomicU64,
    /// Messages of the other direction the publisher had copied out when it
    /// published its latest.
    ack: AtomicU64,
}

/// A counter alone on its lines.
#[repr(C, align(128))]
struct Word(AtomicU64);

#[repr(C)]
struct Header {
    /// Per direction (0: client to server).
    post: [Post; 2],
    /// Messages of each direction its receiver has copied out.
    taken: [Word; 2],
    /// Set by each side (`Side::index`) when it finishes or drops.
    closed: [Word; 2],
}

/// Where the slots start: a page after the header.
const DATA: usize = 4096;
const _: () = assert!(size_of::<Header>() <= DATA);

/// Polls of the sequence word between looks at the peer's `closed` flag.
const CLOSED_EVERY: u32 = 64;

fn stride(size: usize) -> io::Result<usize> {
    size.checked_next_multiple_of(128)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "size too large"))
}

impl Transport for Bare {
    fn shares_memory(&self) -> bool {
        true
    }

    fn info(&self) -> Info {
        Info {
            name: super::BARE,
            family: Family::Limit,
            sync: "busy-poll, a sequence word per direction",
            summary: "the bare hand-off: the minimal C ping-pong in Rust (payload copied in and out of one slot per direction); how far every spinning row is from it",
            polls: true,
            copies: Copies {
                count: Some(2),
                why: "from the sender's buffer into the slot, from the slot into the receiver's buffer",
            },
        }
    }

    fn prepare(&self, config: &ChannelConfig) -> io::Result<Prepared> {
        let stride = stride(config.size)?;
        let len = stride
            .checked_mul(2)
            .and_then(|d| d.checked_add(DATA))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "size too large"))?;
        // A fresh anonymous mapping is zero-filled: counters 0, both open.
        Ok(Prepared::new(BarePair {
            shared: SharedPair::new(len)?,
            size: config.size,
            stride,
        }))
    }
}

struct BarePair {
    shared: SharedPair,
    size: usize,
    stride: usize,
}

impl BarePair {
    fn take(self, side: Side) -> Box<dyn Endpoint> {
        let shared = self.shared.take(side);
        // Touched now, not on the first message.
        shared.map.prefault();
        Box::new(BareEnd {
            shared,
            size: self.size,
            stride: self.stride,
            out: vec![0; self.size],
            inbox: vec![0; self.size],
            sent: 0,
            acked: 0,
            taken: 0,
            finished: false,
        })
    }
}

impl Pair for BarePair {
    fn server(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        Ok(self.take(Side::Server))
    }

    fn client(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        Ok(self.take(Side::Client))
    }

    fn shared_memory(&mut self) -> io::Result<Vec<SharedMemory>> {
        self.shared.shared_memory(DATA)
    }
}

struct BareEnd {
    shared: Shared,
    size: usize,
    stride: usize,
    /// The sender's private buffer, copied into the slot.
    out: Vec<u8>,
    /// The receiver's private buffer, copied out of the slot.
    inbox: Vec<u8>,
    /// Messages this side has published.
    sent: u64,
    /// Of those, the ones the peer is known to have copied out.
    acked: u64,
    /// Messages this side has copied out.
    taken: u64,
    finished: bool,
}

impl BareEnd {
    fn header(&self) -> &Header {
        // SAFETY: the mapping starts with a `Header` (it is longer than
        // `DATA`), is page-aligned and lives as long as `self`; atomics are
        // valid for any bytes.
        unsafe { &*self.shared.map.as_ptr().cast::<Header>() }
    }

    fn slot(&self, dir: usize) -> *mut u8 {
        // SAFETY: `DATA + 2 * stride` is the mapping's length (`prepare`).
        unsafe { self.shared.map.as_ptr().add(DATA + dir * self.stride) }
    }

    fn peer_closed(&self) -> bool {
        // Acquire: pairs with the Release store in `close`; every message
        // the peer published before closing is visible after this.
        self.header().closed[self.shared.side.peer().index()]
            .0
            .load(Ordering::Acquire)
            != 0
    }

    fn check_len(&self, len: usize) -> io::Result<()> {
        if len != self.size {
            return Err(protocol_error(format!(
                "limit-bare carries messages of {} bytes, asked for {len}",
                self.size
            )));
        }
        Ok(())
    }

    /// Notes the peer's `ack` (or `taken`) of our messages.
    fn note_acked(&mut self, ack: u64) -> io::Result<()> {
        if ack > self.sent {
            return Err(protocol_error(format!(
                "the peer took {ack} messages of the {} sent",
                self.sent
            )));
        }
        self.acked = self.acked.max(ack);
        Ok(())
    }

    fn close(&mut self) {
        if !self.finished {
            self.finished = true;
            let me = self.shared.side.index();
            // Release: pairs with the Acquire load in the peer's `peer_closed`.
            self.header().closed[me].0.store(1, Ordering::Release);
        }
    }
}

impl Endpoint for BareEnd {
    fn send(&mut self, len: usize, fill: Fill<'_>) -> io::Result<()> {
        self.check_len(len)?;
        let dir = self.shared.side.tx_dir();
        if self.peer_closed() {
            return Err(peer_gone());
        }
        if self.acked != self.sent {
            // No reply since our last message: wait until the receiver
            // has copied it out.
            let want = self.sent;
            let taken = &self.header().taken[dir].0;
            let seen = self.shared.spin("the slot", || {
                // Acquire: pairs with the Release store of `taken` in the
                // peer's `recv`: its copy out of the slot is done.
                let t = taken.load(Ordering::Acquire);
                (t >= want).then_some(t)
            })?;
            self.note_acked(seen)?;
        }
        fill(0, &mut self.out);
        // SAFETY: the slot holds `stride >= size` bytes inside the mapping,
        // and it is ours: the receiver has copied the last message out
        // (acked above) and reads it again only after we publish below; the
        // private buffer is not in the mapping.
        unsafe { std::ptr::copy_nonoverlapping(self.out.as_ptr(), self.slot(dir), self.size) };
        self.sent += 1;
        let post = &self.header().post[dir];
        // Relaxed: published by the Release store of `seq` just below.
        post.ack.store(self.taken, Ordering::Relaxed);
        // Release: pairs with the Acquire load of `seq` in the peer's
        // `recv`; the bytes copied above are visible to it.
        post.seq.store(self.sent, Ordering::Release);
        Ok(())
    }

    fn recv(&mut self, len: usize, check: Check<'_>) -> io::Result<Received> {
        self.check_len(len)?;
        let dir = self.shared.side.rx_dir();
        let want = self.taken + 1;
        let post = &self.header().post[dir];
        let mut polls = 0u32;
        let seq = self.shared.spin("a message", || {
            // Acquire: pairs with the Release store of `seq` in `send`.
            let seq = post.seq.load(Ordering::Acquire);
            if seq != self.taken {
                return Some(Some(seq));
            }
            polls = polls.wrapping_add(1);
            if polls.is_multiple_of(CLOSED_EVERY) && self.peer_closed() {
                // A message published just before the close shows now.
                let seq = post.seq.load(Ordering::Acquire);
                return Some((seq != self.taken).then_some(seq));
            }
            None
        })?;
        let Some(seq) = seq else {
            return Ok(Received::Closed);
        };
        if seq != want {
            return Err(protocol_error(format!(
                "the peer published message {seq}, expected {want}"
            )));
        }
        // Relaxed: the Acquire load of `seq` above ordered it.
        let ack = post.ack.load(Ordering::Relaxed);
        self.note_acked(ack)?;
        // SAFETY: the slot holds `size` bytes inside the mapping; the sender
        // published them (`seq` checked) and writes the slot again only
        // after our `ack` or `taken` says we copied them out.
        unsafe {
            std::ptr::copy_nonoverlapping(self.slot(dir), self.inbox.as_mut_ptr(), self.size)
        };
        self.taken = want;
        // Release: pairs with the Acquire load in the peer's `send`; our
        // copy out of the slot is done before it may overwrite it.
        self.header().taken[dir].0.store(want, Ordering::Release);
        check(0, &self.inbox);
        Ok(Received::Message)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.close();
        Ok(())
    }

    fn rounds(&self) -> u64 {
        self.taken
    }
}

impl Drop for BareEnd {
    fn drop(&mut self) {
        self.close();
    }
}
