//! The measured window, agreed by both sides of every pair.
//!
//! The client decides when its warm-up ends. The server cannot see that
//! moment, and it must count exactly the messages the client counts
//! (`--iterations N` means N on both sides, and a stream's throughput is the
//! server's). So the client publishes the first measured sequence number in
//! a page of memory the supervisor shares with every side before it forks
//! them (outside the channels, so no mechanism and no scribbler touches it);
//! the server opens its window at the first message numbered that or later.
//!
//! With several pairs the page also holds a start gate: every side arrives
//! once it has its endpoint, and the last to arrive opens the gate with the
//! time. Each client warms up until the warm-up has passed since the gate
//! opened, so that all pairs start measuring together, every one of them
//! already running; timed by duration they also stop together
//! (`CellSpec::enough`). A single pair needs no gate: its client warms up
//! from its own attachment, as it always did.
//!
//! The page is the harness's, not the mechanisms': written a few times per
//! cell, read on the measured path only by a client in its warm-up.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use super::clock::mono_ns;
use crate::mechanisms::shm::region::Mapping;

/// Not yet published.
const UNSET: u64 = u64::MAX;

/// The shared page of a cell: the gate, then one slot per pair.
pub struct Window {
    map: Mapping,
    pairs: usize,
}

#[repr(C)]
struct Gate {
    /// Sides that have their endpoint.
    arrived: AtomicU64,
    /// Sides that must arrive before the gate opens.
    expected: AtomicU64,
    /// `CLOCK_MONOTONIC` when the last side arrived; [`UNSET`] until then.
    opened_ns: AtomicU64,
}

#[repr(C)]
struct Slot {
    first_seq: AtomicU64,
    begin_ns: AtomicU64,
}

impl Window {
    /// Maps the page for `pairs` pairs, shared with every process forked
    /// afterwards.
    pub fn new(pairs: usize) -> io::Result<Window> {
        let pairs = pairs.max(1);
        let bytes = size_of::<Gate>() + pairs * size_of::<Slot>();
        let map = Mapping::shared_anonymous(bytes)?;
        let window = Window { map, pairs };
        // Relaxed: nothing else maps the page until the fork, which orders
        // these stores before every side's loads.
        let gate = window.gate();
        gate.arrived.store(0, Ordering::Relaxed);
        gate.expected.store(2 * pairs as u64, Ordering::Relaxed);
        // One pair: open from the start (0 is before any attachment).
        let opened = if pairs == 1 { 0 } else { UNSET };
        gate.opened_ns.store(opened, Ordering::Relaxed);
        for i in 0..pairs {
            window.slot(i).first_seq.store(UNSET, Ordering::Relaxed);
        }
        Ok(window)
    }

    fn gate(&self) -> &Gate {
        // SAFETY: the mapping holds a `Gate` at its start (`new` sized it),
        // is page-aligned and lives as long as `self`; its fields are
        // atomics, so shared access from several processes is sound.
        unsafe { &*self.map.as_ptr().cast::<Gate>() }
    }

    fn slot(&self, pair: usize) -> &Slot {
        assert!(pair < self.pairs, "pair {pair} of {}", self.pairs);
        // SAFETY: `new` sized the mapping for `pairs` slots after the gate;
        // `Gate` is 24 bytes, a multiple of `Slot`'s alignment (8), so the
        // slot is aligned; its fields are atomics, as above.
        unsafe {
            &*self
                .map
                .as_ptr()
                .add(size_of::<Gate>() + pair * size_of::<Slot>())
                .cast::<Slot>()
        }
    }

    /// The view of pair `pair` (0-based).
    pub fn pair(&self, pair: usize) -> PairWindow<'_> {
        PairWindow {
            gate: self.gate(),
            slot: self.slot(pair),
        }
    }
}

/// One side's view of the measured window, wherever its peer runs: the
/// shared page ([`PairWindow`]) when both sides are on this host, the
/// control connection when the pair is split across hosts
/// (`harness::remote::window`). The sides' loops (`harness::sides`) call
/// it only outside the measured messages: in the warm-up, and once to open
/// the window.
pub trait MeasuredWindow {
    /// Either side: it has its endpoint.
    fn arrive(&self);
    /// Client: whether the warm-up still runs at `now_ns`.
    fn warming(&self, attached_ns: u64, warmup_ns: u64, now_ns: u64) -> bool;
    /// Client: messages from `seq` on are measured, from `now_ns`. Called
    /// before message `seq` is sent.
    fn open(&self, seq: u64, now_ns: u64) -> io::Result<()>;
    /// Server: the first measured sequence number and the time the window
    /// began on this host's clock, once known. Across hosts it may become
    /// known a few messages after that one arrived (`harness::sides::server`
    /// allows for it).
    fn first(&self) -> Option<(u64, u64)>;
}

impl MeasuredWindow for PairWindow<'_> {
    fn arrive(&self) {
        PairWindow::arrive(self)
    }

    fn warming(&self, attached_ns: u64, warmup_ns: u64, now_ns: u64) -> bool {
        PairWindow::warming(self, attached_ns, warmup_ns, now_ns)
    }

    fn open(&self, seq: u64, now_ns: u64) -> io::Result<()> {
        PairWindow::open(self, seq, now_ns);
        Ok(())
    }

    fn first(&self) -> Option<(u64, u64)> {
        PairWindow::first(self)
    }
}

/// One pair's view of the window.
pub struct PairWindow<'a> {
    gate: &'a Gate,
    slot: &'a Slot,
}

impl PairWindow<'_> {
    /// Either side: it has its endpoint. The last side to arrive opens the
    /// gate.
    pub fn arrive(&self) {
        // Relaxed: the read-modify-write's atomicity alone makes exactly
        // one side the last; what the others need to see is the time,
        // published below.
        let arrived = self.gate.arrived.fetch_add(1, Ordering::Relaxed) + 1;
        if arrived == self.gate.expected.load(Ordering::Relaxed) {
            // Only a gate still shut opens: one pair's is open from the
            // start, and its warm-up must not move when the later side
            // arrives. Release on success: pairs with the Acquire in
            // `warming`; Relaxed on failure: nothing is published.
            let _ = self.gate.opened_ns.compare_exchange(
                UNSET,
                mono_ns(),
                Ordering::Release,
                Ordering::Relaxed,
            );
        }
    }

    /// Client: whether the warm-up still runs at `now_ns`, for a side that
    /// attached at `attached_ns`: until `warmup_ns` after both it attached
    /// and the gate opened.
    pub fn warming(&self, attached_ns: u64, warmup_ns: u64, now_ns: u64) -> bool {
        // Acquire: pairs with the Release in `arrive`.
        match self.gate.opened_ns.load(Ordering::Acquire) {
            UNSET => true,
            opened => now_ns < opened.max(attached_ns).saturating_add(warmup_ns),
        }
    }

    /// Client: messages from `seq` on are measured, from `now_ns`
    /// (`CLOCK_MONOTONIC`). Called before message `seq` is sent.
    pub fn open(&self, seq: u64, now_ns: u64) {
        self.slot.begin_ns.store(now_ns, Ordering::Relaxed);
        // Release: pairs with the Acquire in `first`, so that a server that
        // sees `seq` sees `begin_ns` too. The channel's own hand-over of
        // message `seq` comes after this store, so the server sees it by the
        // time that message arrives (if it ever saw it late, it would count
        // fewer messages, and the cell fails its count check).
        self.slot.first_seq.store(seq, Ordering::Release);
    }

    /// Server: the first measured sequence number and the client's start
    /// time, once the client has published them.
    pub fn first(&self) -> Option<(u64, u64)> {
        // Acquire: pairs with the Release in `open`.
        match self.slot.first_seq.load(Ordering::Acquire) {
            UNSET => None,
            seq => Some((seq, self.slot.begin_ns.load(Ordering::Relaxed))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pair_warms_up_from_its_own_attachment() {
        let w = Window::new(1).unwrap();
        let p = w.pair(0);
        // The sides' arrivals leave a single pair's gate where it was.
        p.arrive();
        p.arrive();
        assert!(p.warming(1_000, 500, 1_499));
        assert!(!p.warming(1_000, 500, 1_500));
        assert!(!p.warming(1_000, 0, 1_000));
    }

    #[test]
    fn many_pairs_warm_up_until_every_side_arrived_and_then_some() {
        let w = Window::new(2).unwrap();
        for i in [0, 0, 1] {
            w.pair(i).arrive();
            assert!(w.pair(0).warming(0, 0, u64::MAX - 1), "gate open too early");
        }
        w.pair(1).arrive();
        let opened = w.gate().opened_ns.load(Ordering::Relaxed);
        assert_ne!(opened, UNSET);
        assert!(w.pair(1).warming(0, 10, opened + 9));
        assert!(!w.pair(1).warming(0, 10, opened + 10));
    }

    #[test]
    fn each_pair_has_its_own_slot() {
        let w = Window::new(3).unwrap();
        w.pair(2).open(7, 99);
        assert_eq!(w.pair(2).first(), Some((7, 99)));
        assert_eq!(w.pair(0).first(), None);
        assert_eq!(w.pair(1).first(), None);
    }
}
