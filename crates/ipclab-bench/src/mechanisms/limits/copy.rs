//! `limit-copy`: the simplest channel that moves the payload through shared
//! memory. Per direction a ring of slots, each one message long, and two
//! counters on their own cache lines: `head` (messages published, written
//! by the sender) and `tail` (messages taken, written by the receiver).
//! The sender fills a free slot in place and publishes it; the receiver
//! spins until it sees it, checks it in place and hands it back. Each side
//! keeps the last value it saw of the other's counter and reads the shared
//! one only when that runs out, and the receiver hands slots back a quarter
//! of the ring at a time (and always before it waits), so a streamed
//! message costs little more than its own bytes' cache lines.
//!
//! No frame, no length, no rounds: both sides know the size, and a slot
//! holds a whole message. So its pingpong is the spin hand-over plus the
//! payload written and read once each way, and its stream the rate at which
//! two processes can write and read that many bytes with as many slots in
//! flight as the shared-memory rings get: `--segments` when given, else
//! about 4 MiB worth, 2 to 64 slots (`ChannelConfig::segments_for`). The
//! slots go round in order, so at multi-MiB sizes two of them do not stay
//! in the cache; a library that hands the same buffer back every time can
//! come in under this floor there.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use super::shared::{Shared, SharedPair, peer_gone};
use crate::mechanisms::shm::region::Side;
use crate::transport::{
    ChannelConfig, Check, Copies, Endpoint, Family, Fill, Info, Pair, Prepared, Received,
    SharedMemory, Transport, protocol_error,
};

pub struct Copy;

/// A counter alone on its cache lines (128 bytes: the adjacent-line
/// prefetcher pulls pairs of lines).
#[repr(C, align(128))]
struct Word(AtomicU64);

#[repr(C)]
struct Header {
    /// Messages published in each direction (0: client to server).
    head: [Word; 2],
    /// Messages taken in each direction.
    tail: [Word; 2],
    /// Set by each side (`Side::index`) when it finishes or drops.
    closed: [Word; 2],
}

/// Where the slots start: a page after the header.
const DATA: usize = 4096;
const _: () = assert!(size_of::<Header>() <= DATA);

/// Slot size and count for messages of `size` bytes.
#[derive(Clone, Copy)]
struct Geometry {
    size: usize,
    /// Bytes from one slot to the next (a multiple of 128).
    stride: usize,
    slots: u64,
}

impl Geometry {
    fn of(size: usize, segments: usize) -> io::Result<Geometry> {
        let stride = size
            .checked_next_multiple_of(128)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "size too large"))?;
        let config = ChannelConfig {
            size,
            segment_size: None,
            segments,
        };
        let slots = config.segments_for(size.max(1));
        Ok(Geometry {
            size,
            stride,
            slots: slots as u64,
        })
    }

    fn len(&self) -> io::Result<usize> {
        self.stride
            .checked_mul(2 * self.slots as usize)
            .and_then(|d| d.checked_add(DATA))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "size too large"))
    }

    fn offset(&self, dir: usize, seq: u64) -> usize {
        DATA + (dir * self.slots as usize + (seq % self.slots) as usize) * self.stride
    }
}

impl Transport for Copy {
    fn shares_memory(&self) -> bool {
        true
    }

    fn info(&self) -> Info {
        Info {
            name: super::COPY,
            family: Family::Limit,
            sync: "busy-poll ring, payload in place",
            summary: "floor of any transfer that moves the data: SIZE bytes written in shared memory by one process, read by the other",
            polls: true,
            copies: Copies::IN_PLACE,
        }
    }

    fn prepare(&self, config: &ChannelConfig) -> io::Result<Prepared> {
        let geometry = Geometry::of(config.size, config.segments)?;
        // A fresh anonymous mapping is zero-filled: counters 0, both open.
        Ok(Prepared::new(CopyPair {
            shared: SharedPair::new(geometry.len()?)?,
            geometry,
        }))
    }
}

struct CopyPair {
    shared: SharedPair,
    geometry: Geometry,
}

impl CopyPair {
    fn take(self, side: Side) -> Box<dyn Endpoint> {
        Box::new(CopyEnd {
            shared: self.shared.take(side),
            g: self.geometry,
            sent: 0,
            tail_seen: 0,
            taken: 0,
            head_seen: 0,
            tail_stored: 0,
            finished: false,
        })
    }
}

impl Pair for CopyPair {
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

struct CopyEnd {
    shared: Shared,
    g: Geometry,
    /// Messages this side has published.
    sent: u64,
    /// The peer's `tail` of our direction, as last read.
    tail_seen: u64,
    /// Messages this side has taken.
    taken: u64,
    /// The peer's `head` of its direction, as last read.
    head_seen: u64,
    /// What this side last stored in its `tail`.
    tail_stored: u64,
    finished: bool,
}

impl CopyEnd {
    fn header(&self) -> &Header {
        // SAFETY: the mapping starts with a `Header` (it is longer than
        // `DATA`), is page-aligned and lives as long as `self`; atomics are
        // valid for any bytes.
        unsafe { &*self.shared.map.as_ptr().cast::<Header>() }
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
        if len != self.g.size {
            return Err(protocol_error(format!(
                "limit-copy carries messages of {} bytes, asked for {len}",
                self.g.size
            )));
        }
        Ok(())
    }

    /// Hands the slots taken so far back to the sender.
    fn store_tail(&mut self, dir: usize) {
        if self.tail_stored != self.taken {
            self.tail_stored = self.taken;
            // Release: pairs with the Acquire load of `tail` in the peer's
            // `send`; our reads of the slots are done before it reuses them.
            self.header().tail[dir]
                .0
                .store(self.taken, Ordering::Release);
        }
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

impl Endpoint for CopyEnd {
    fn send(&mut self, len: usize, fill: Fill<'_>) -> io::Result<()> {
        self.check_len(len)?;
        let dir = self.shared.side.tx_dir();
        if self.peer_closed() {
            return Err(peer_gone());
        }
        if self.sent.wrapping_sub(self.tail_seen) >= self.g.slots {
            let (sent, slots) = (self.sent, self.g.slots);
            let tail = &self.header().tail[dir].0;
            let seen = self.shared.spin("a free slot", || {
                // Acquire: pairs with the Release store in the peer's
                // `recv`: it has finished reading the slot we reuse.
                let t = tail.load(Ordering::Acquire);
                if sent.wrapping_sub(t) < slots {
                    Some(Some(t))
                } else if self.peer_closed() {
                    Some(None)
                } else {
                    None
                }
            })?;
            self.tail_seen = seen.ok_or_else(peer_gone)?;
        }
        let at = self.g.offset(dir, self.sent);
        // SAFETY: `at + size` lies inside the mapping (`Geometry::len`).
        // The slot is ours alone: the receiver has handed it back (its
        // `tail` is past it) and reads it only after we publish it below.
        let slot = unsafe {
            std::slice::from_raw_parts_mut(self.shared.map.as_ptr().add(at), self.g.size)
        };
        fill(0, slot);
        self.sent += 1;
        // Release: pairs with the Acquire load of `head` in the peer's
        // `recv`; the bytes written above are visible to it.
        self.header().head[dir]
            .0
            .store(self.sent, Ordering::Release);
        Ok(())
    }

    fn recv(&mut self, len: usize, check: Check<'_>) -> io::Result<Received> {
        self.check_len(len)?;
        let dir = self.shared.side.rx_dir();
        if self.taken == self.head_seen {
            // Nothing known to be ready: hand back every slot taken so far
            // before waiting, so that a sender waiting for room goes on.
            self.store_tail(dir);
            let taken = self.taken;
            let head = &self.header().head[dir].0;
            let seen = self.shared.spin("a message", || {
                // Acquire: pairs with the Release store in the peer's `send`.
                let h = head.load(Ordering::Acquire);
                if h != taken {
                    Some(Some(h))
                } else if self.peer_closed() {
                    // A message published just before the close shows now.
                    let h = head.load(Ordering::Acquire);
                    Some((h != taken).then_some(h))
                } else {
                    None
                }
            })?;
            match seen {
                Some(h) if h.wrapping_sub(taken) <= self.g.slots => self.head_seen = h,
                Some(h) => {
                    return Err(protocol_error(format!(
                        "the peer published {h} messages; {taken} were taken of {} slots",
                        self.g.slots
                    )));
                }
                None => return Ok(Received::Closed),
            }
        }
        let at = self.g.offset(dir, self.taken);
        // SAFETY: inside the mapping (`Geometry::len`); the sender published
        // this slot (`head` is past it) and leaves it alone until our
        // `tail` store below hands it back.
        let slot =
            unsafe { std::slice::from_raw_parts(self.shared.map.as_ptr().add(at), self.g.size) };
        check(0, slot);
        self.taken += 1;
        if self.taken - self.tail_stored >= (self.g.slots / 4).max(1) {
            self.store_tail(dir);
        }
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

impl Drop for CopyEnd {
    fn drop(&mut self) {
        self.close();
    }
}
