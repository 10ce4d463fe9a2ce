//! The publishing half of the protocol: writes message `m` into entry
//! `m % ring` and publishes it with one Release store of `tail`, whatever
//! the number of subscribers; under `Block`, first waits until every live
//! subscriber has read the message the entry holds.
//!
//! # Writing an entry (the seqlock's writer)
//!
//! The stamp (`m + 1`) is stored first, then a Release fence, then the
//! length and the bytes, then `tail` (Release). A subscriber that copies
//! message `m - ring` out of the entry meanwhile re-reads the stamp after
//! an Acquire fence: if its copy saw any byte written after our fence,
//! the fences synchronise and it sees the new stamp, and drops the copy.
//!
//! # Back-pressure (`Block`)
//!
//! Message `m` overwrites message `m - ring`, so it may be written once
//! every active subscriber's cursor is past `m - ring`. The publisher keeps
//! the smallest cursor it last saw (`min`), and loads the slots again only
//! when `m` reaches `min + ring`, or when a subscriber joined: a joiner
//! stores its cursor, marks its slot active, bumps `joins` and runs a
//! SeqCst fence before it loads `tail`; the publisher loads `joins` after
//! the SeqCst fence that follows each `tail` store. Dekker's pattern again:
//! for every `tail` value `t` the joiner did not see, the publisher saw the
//! join before it wrote message `t`; the joiner keeps its cursor within the
//! `ring - 1` messages before the `tail` it saw (see `Reader::join`), which
//! the messages written before the publisher saw it cannot reach.
//!
//! A publisher waiting for room looks at the one slot that held it back
//! at the last scan (`Writer::still_held`), and scans all again only once
//! that slot changed: a look costs the same at 1 or 4096 subscribers. Only
//! a subscriber whose cursor was a ring behind wakes it (`Reader::advance`),
//! or one that leaves, undoes a forgery, or joined on a second try.
//!
//! Every cursor is checked: one outside `[tail - ring, tail]` is one that
//! no live, honest subscriber can hold under `Block`, and does not hold the
//! publisher back (that subscriber finds itself overrun). Slots whose owner
//! died are found by their lock (`Publisher`) and then ignored until a new
//! subscriber takes them.

use super::area::Area;
use super::wake;
use crate::sync::Ordering;
use crate::sync::Ordering::{Acquire, Relaxed, Release};
use crate::sync::fence;

pub(crate) struct Writer {
    area: Area,
    /// `Block`: wait for the slowest live subscriber.
    block: bool,
    /// The next message's number (= messages published).
    tail: u64,
    /// The smallest cursor of the live subscribers as last loaded (or
    /// `tail` if none): message `m` may be written while `m < min + ring`.
    min: u64,
    /// The `joins` word as last loaded.
    joins: u32,
    /// A subscriber joined since the slots were last loaded.
    rescan: bool,
    /// When the last scan found no room: the slot that held `min` then,
    /// with its `active` and cursor. While both stay as they were there is
    /// still no room, so a publisher waiting for room looks at that one
    /// line, not at every slot (see `room`).
    held: Option<Blocker>,
    held_cursor: u64,
    /// Full scans of the slot table so far (for the tests).
    #[cfg(test)]
    pub(crate) scans: u64,
    /// Per slot: the `active` value of a subscriber found dead, ignored
    /// until another one takes the slot.
    dead: Vec<u32>,
}

/// A slot that holds the publisher back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Blocker {
    pub(crate) slot: usize,
    pub(crate) active: u32,
}

impl Writer {
    /// A writer over a fresh area (nothing published yet).
    pub(crate) fn new(area: Area, block: bool) -> Writer {
        // Acquire: pairs with the Release increment in `Reader::join` (a
        // start value only: the first `room` scans the slots anyway).
        let joins = area.control().joins.0.load(Acquire);
        Writer {
            area,
            block,
            tail: 0,
            min: 0,
            joins,
            rescan: true,
            held: None,
            held_cursor: 0,
            #[cfg(test)]
            scans: 0,
            dead: vec![0; area.slots_len as usize],
        }
    }

    pub(crate) fn area(&self) -> &Area {
        &self.area
    }

    /// Messages published so far.
    pub(crate) fn published(&self) -> u64 {
        self.tail
    }

    /// Whether message `tail` may be written now: always under
    /// `Overwrite`; under `Block` when no live subscriber still needs the
    /// entry's message. Loads the slots only when the cached answer is no,
    /// or a subscriber joined.
    pub(crate) fn room(&mut self) -> bool {
        if !self.block {
            return true;
        }
        if !self.rescan && self.tail < self.min + self.area.ring {
            return true;
        }
        if !self.rescan && self.still_held() {
            return false;
        }
        self.rescan = false;
        self.scan(|_, _| ());
        self.tail < self.min + self.area.ring
    }

    /// Whether the slot that held message `tail` back at the last scan
    /// still does: same subscriber, same cursor (two loads of one line).
    /// If so, the answer of a full scan would be "no room" again: that
    /// cursor is still within `[tail - ring, tail - ring]` (`tail` has not
    /// moved), so the waiting publisher's cost per look does not grow with
    /// the number of subscribers. Any change (it read, left, was forged, or
    /// another took the slot) makes the caller scan every slot again; a
    /// burial sets `rescan`.
    fn still_held(&self) -> bool {
        let Some(b) = self.held else {
            return false;
        };
        let slot = self.area.slot(b.slot);
        // Acquire: as in `scan` (pairs with the Release stores of `active`
        // in `Reader::join` and of the cursor in `Reader::advance`).
        slot.active.load(Acquire) == b.active && slot.cursor.load(Acquire) == self.held_cursor
    }

    /// Loads every active slot's cursor: sets `min`, and calls
    /// `blocker` for each live one that holds message `tail` back.
    fn scan(&mut self, mut blocker: impl FnMut(usize, u32)) {
        let (tail, ring) = (self.tail, self.area.ring);
        let mut min = tail;
        self.held = None;
        #[cfg(test)]
        {
            self.scans += 1;
        }
        for i in 0..self.area.slots_len as usize {
            let slot = self.area.slot(i);
            // Acquire: pairs with the Release store of `active` in
            // `Reader::join`: the cursor stored before it is visible.
            let active = slot.active.load(Acquire);
            if active & 1 == 0 || self.dead[i] == active {
                continue;
            }
            // Acquire: pairs with the Release store of the cursor in
            // `Reader::advance`: the subscriber's copies out of the entries
            // before it are done, so we may overwrite them.
            let cursor = slot.cursor.load(Acquire);
            // Checked: a cursor outside `[tail - ring, tail]` is not one a
            // live subscriber can hold under `Block`; it holds nothing back.
            if cursor > tail || cursor.saturating_add(ring) < tail {
                continue;
            }
            min = min.min(cursor);
            if cursor + ring <= tail {
                blocker(i, active);
                self.held = Some(Blocker { slot: i, active });
                self.held_cursor = cursor;
            }
        }
        self.min = min;
    }

    /// The slots that hold message `tail` back now.
    pub(crate) fn blockers(&mut self) -> Vec<Blocker> {
        let mut out = Vec::new();
        self.scan(|slot, active| out.push(Blocker { slot, active }));
        out
    }

    /// The subscriber in `b` is dead: ignore its slot until another
    /// subscriber takes it.
    pub(crate) fn bury(&mut self, b: Blocker) {
        self.dead[b.slot] = b.active;
        self.rescan = true;
    }

    /// Slots with an active subscriber (not known dead): loads only.
    pub(crate) fn active(&self) -> usize {
        (0..self.area.slots_len as usize)
            .filter(|&i| {
                // Relaxed: a count for the caller, nothing read with it.
                let a = self.area.slot(i).active.load(Relaxed);
                a & 1 == 1 && self.dead[i] != a
            })
            .count()
    }

    /// Writes message `tail` (room was checked) and publishes it. `fill`
    /// gets the entry's first `len` bytes (`len` at most `max_message`).
    pub(crate) fn write(&mut self, len: u64, fill: &mut dyn FnMut(&Area, u64)) {
        let m = self.begin();
        fill(&self.area, m);
        self.commit(len);
    }

    /// Takes the entry of message `tail` (room was checked): stamps it,
    /// so that a subscriber still copying the message it held drops its
    /// copy. Returns the message's number; `commit` publishes it. A
    /// message begun and never committed costs nothing: the next `begin`
    /// takes the same entry again.
    pub(crate) fn begin(&mut self) -> u64 {
        let m = self.tail;
        // Relaxed, then the Release fence: the seqlock's writer (see the
        // module docs). SYNC POINT with the Acquire fence in
        // `Reader::intact`.
        self.area.head(m).stamp.store(m + 1, Relaxed);
        fence(Ordering::Release);
        m
    }

    /// Publishes the message `begin` took, of `len` bytes (at most
    /// `max_message`), written into its entry meanwhile.
    pub(crate) fn commit(&mut self, len: u64) {
        debug_assert!(len <= self.area.max_message);
        let m = self.tail;
        // Relaxed: published by the Release store of `tail` below.
        self.area.head(m).len.store(len, Relaxed);
        self.tail = m + 1;
        // Release: pairs with the Acquire load of `tail` in
        // `Reader::poll`: the entry is complete before `tail` says so.
        self.area.data().tail.0.store(self.tail, Release);
        self.after_store(false);
    }

    /// After a store that subscribers wait for: wakes the sleepers (one
    /// system call at most), and notes joins.
    fn after_store(&mut self, force: bool) {
        // The SeqCst fence in `ring` is also the one the joiners pair with.
        wake::ring(&self.area.control().bell.0, force);
        if self.block {
            // Acquire: pairs with the Release increment in `Reader::join`:
            // the joiner's slot is visible to the scan that follows.
            let joins = self.area.control().joins.0.load(Acquire);
            if joins != self.joins {
                self.joins = joins;
                self.rescan = true;
            }
        }
    }

    /// Closes the broadcast: subscribers get every message published, then
    /// `Closed`.
    pub(crate) fn close(&mut self) {
        // Release: pairs with the Acquire load in `Reader::poll`: every
        // message before the flag is seen with it.
        self.area.data().closed.store(1, Release);
        self.after_store(true);
    }
}
