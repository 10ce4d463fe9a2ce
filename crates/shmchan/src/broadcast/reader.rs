//! The subscribing half of the protocol: reads message `next` out of its
//! entry, checks that the publisher did not overwrite it meanwhile, and
//! moves its cursor on.
//!
//! The publisher may be hostile. Every value read from shared memory is
//! read once into a local and checked: `tail` (never backwards), the
//! stamp (the message the entry holds), the length (at most an entry's).
//! The bytes are copied out, then the stamp is loaded again after an
//! Acquire fence (the seqlock's reader, see `writer.rs`): a copy that may
//! be torn by an overwrite is dropped, and the message counted lost.
//!
//! # Lost messages
//!
//! With `tail` at `t`, the entries hold messages `t - ring .. t` (under
//! `Overwrite`, message `t` may be being written over message `t - ring`).
//! A subscriber whose `next` is older skips to the oldest one still there
//! and reports how many it skipped, [`Error::Lagged`]; so does one whose
//! copy turned out overwritten. The counts add up to exactly the messages it
//! never received; `next` only grows, so nothing is received twice. Under
//! `Block` an honest publisher never overruns a live subscriber, so a
//! `Lagged` there means that this subscriber was dropped (its cursor was
//! forged, or found impossible).

use super::area::Area;
use crate::error::Error;
use crate::sync::Ordering::{Acquire, Relaxed, Release};
use crate::sync::{Ordering, fence};
use crate::wait::notify;

/// The highest `tail` an honest publisher can reach (2^62 messages: more
/// than centuries of publishing); a higher one is corrupt, so that every
/// sum of positions below stays far from overflowing.
const MAX_TAIL: u64 = 1 << 62;

/// Tries at joining before the history is given up, and before joining is.
const JOIN_TRIES: u32 = 64;
const HISTORY_TRIES: u32 = 8;

/// Where a received message goes.
pub(crate) enum Sink<'a> {
    /// Resized to the message.
    Vec(&'a mut Vec<u8>),
    /// The caller's buffer; a longer message is `TooLarge` and stays queued.
    Slice(&'a mut [u8]),
    /// Lent where it lies: nothing copied.
    Lend,
}

/// What a receive took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Got {
    /// A message of this many bytes, copied into the sink.
    Copied(u64),
    /// Message `m` of `len` bytes, left in its entry until `give_back`.
    Lent { m: u64, len: u64 },
}

pub(crate) struct Reader {
    area: Area,
    slot: usize,
    /// Our slot's `active` value.
    active: u32,
    block: bool,
    /// The next message to read.
    next: u64,
    /// `tail` as last loaded.
    tail: u64,
    /// Set when the publisher broke the protocol.
    broken: Option<&'static str>,
    /// The last publisher sleep this side woke (see `wait::notify`).
    woken: u32,
    /// A message lent in place and not given back yet.
    lent: Option<u64>,
}

impl Reader {
    /// Takes slot `slot` (whose lock the caller holds) and starts up to
    /// `history` messages (less than the ring) before the newest.
    pub(crate) fn join(
        area: Area,
        slot: usize,
        history: u64,
        block: bool,
    ) -> Result<Reader, Error> {
        debug_assert!(history < area.ring);
        let (s, data, ctl) = (area.slot(slot), area.data(), area.control());
        // Relaxed: we hold the slot's lock; the old value only makes ours new.
        let active = (s.active.load(Relaxed) | 1).wrapping_add(2);
        // Acquire: pairs with the Release store of `tail` in `Writer::write`.
        let mut t = data.tail.0.load(Acquire);
        let mut history = history;
        let corrupt = Error::Corrupt("the publisher's position is past any count");
        // The first cursor this join stores: the oldest one a waiting
        // publisher may have seen in our slot.
        let mut first = None;
        for i in 0..JOIN_TRIES {
            if t > MAX_TAIL {
                // Release: pairs with the Acquire load in `Writer::scan`:
                // the slot is left again.
                s.active.store(active.wrapping_add(1), Release);
                return Err(corrupt);
            }
            if i == HISTORY_TRIES {
                history = 0; // a publisher this fast: join at the newest
            }
            let c = t - history.min(t);
            let first = *first.get_or_insert(c);
            // Relaxed: published by the Release increment of `joins`.
            s.cursor.store(c, Relaxed);
            // Release: pairs with the Acquire load of `active` in
            // `Writer::scan`: the cursor above is seen with it.
            s.active.store(active, Release);
            // Release: pairs with the Acquire load of `joins` in
            // `Writer::after_store`, which then loads the slots again.
            ctl.joins.0.fetch_add(1, Release);
            // SeqCst fence: pairs with the fence in `wake::ring` that
            // follows every `tail` store (see `writer.rs`): for every
            // `tail` the load below does not see, the publisher sees our
            // join before it writes that message.
            fence(Ordering::SeqCst);
            // Acquire: as above.
            t = data.tail.0.load(Acquire);
            let Some(ahead) = t.checked_sub(c) else {
                // Release: as below, the slot is left again.
                s.active.store(active.wrapping_add(1), Release);
                return Err(Error::Corrupt("the publisher's position went back"));
            };
            // Message `t` (perhaps written before the publisher saw us)
            // overwrites message `t - ring`: our cursor must be past it.
            if ahead < area.ring {
                let mut woken = 0;
                // A publisher that saw an earlier cursor of this join (one
                // a ring behind `t`: the reason we tried again) may wait
                // on it; the fence above orders our last cursor store
                // against its look, as in `advance`: either it sees that
                // store, or `t` is at least the `tail` it waits at and we
                // wake it here. Without this it would sleep until its
                // next look at dead subscribers (`PEER_CHECK`), as long
                // as we have nothing to read (a join at the newest).
                if block && first.saturating_add(area.ring) <= t {
                    notify(&ctl.publisher.0, &mut woken, None);
                }
                return Ok(Reader {
                    area,
                    slot,
                    active,
                    block,
                    next: c,
                    tail: t,
                    broken: None,
                    woken,
                    lent: None,
                });
            }
        }
        // Release: as above.
        s.active.store(active.wrapping_add(1), Release);
        Err(Error::Timeout)
    }

    pub(crate) fn area(&self) -> &Area {
        &self.area
    }

    /// The number of the next message this subscriber reads.
    pub(crate) fn next(&self) -> u64 {
        self.next
    }

    fn corrupt(&mut self, what: &'static str) -> Error {
        self.broken = Some(what);
        Error::Corrupt(what)
    }

    /// Loads `tail` and checks that it did not go back.
    fn refresh(&mut self) -> Result<u64, Error> {
        // Acquire: pairs with the Release store of `tail` in
        // `Writer::write`: the entries before it are complete.
        let t = self.area.data().tail.0.load(Acquire);
        if t < self.tail {
            return Err(self.corrupt("the publisher's position went back"));
        }
        if t > MAX_TAIL {
            return Err(self.corrupt("the publisher's position is past any count"));
        }
        self.tail = t;
        Ok(t)
    }

    /// Whether message `m`'s entry still holds it: the seqlock's re-check.
    pub(crate) fn intact(&self, m: u64) -> bool {
        // Acquire fence: SYNC POINT with the Release fence in
        // `Writer::write`: if a copy before this fence saw bytes of a
        // later message, the stamp load below sees that message's stamp.
        fence(Ordering::Acquire);
        // Relaxed: ordered by the fence above.
        self.area.head(m).stamp.load(Relaxed) == m + 1
    }

    /// Moves the cursor to `to` and tells a publisher waiting for room, if
    /// our cursor was what held it back.
    fn advance(&mut self, to: u64) {
        let slot = self.area.slot(self.slot);
        // Relaxed: our own word; a forged value counts as ours below, so
        // that undoing a forgery wakes whom it held back.
        let from = self.next.min(slot.cursor.load(Relaxed));
        self.next = to;
        // Release: pairs with the Acquire load of the cursor in
        // `Writer::scan` and `Writer::still_held`: our copies out of the
        // entries before `to` are done before the publisher may overwrite
        // them.
        slot.cursor.store(to, Release);
        if self.block {
            // SeqCst fence: pairs with the fence a waiting publisher runs
            // between marking itself asleep and its look at the cursors
            // (`wait::wait_until`, SYNC POINT with its `tail` store before
            // it): either that look sees our store above, or the load below
            // sees the `tail` it waits at, `T`. It waits while some cursor
            // is at `T - ring`; a cursor past that held nothing back, and
            // moving it cannot give room: no wake-up (one system call per
            // subscriber per publisher's sleep, and a needless look and
            // sleep again for the publisher).
            fence(Ordering::SeqCst);
            // Acquire: pairs with the Release store of `tail` in
            // `Writer::commit`.
            let t = self.area.data().tail.0.load(Acquire);
            if from.saturating_add(self.area.ring) <= t {
                notify(&self.area.control().publisher.0, &mut self.woken, None);
            }
        }
    }

    /// Stores our slot's words again if they changed, before a wait and at
    /// every look while waiting: a hostile subscriber that forged them (a
    /// cursor that holds the publisher back while we wait for it, a slot
    /// marked left) is undone, so that it cannot stall a `Block` publisher
    /// for longer than it keeps writing.
    pub(crate) fn republish(&mut self) {
        let slot = self.area.slot(self.slot);
        // Relaxed loads: our own words; a difference is a forgery.
        if slot.cursor.load(Relaxed) != self.next || slot.active.load(Relaxed) != self.active {
            // Release: as in `advance` and `join`.
            slot.cursor.store(self.next, Release);
            slot.active.store(self.active, Release);
            if self.block {
                notify(&self.area.control().publisher.0, &mut self.woken, None);
            }
        }
    }

    /// Skips to message `to` (past `next`): `Lagged` with the count.
    fn lag(&mut self, to: u64) -> Error {
        let lost = to - self.next;
        self.advance(to);
        Error::Lagged(lost)
    }

    /// Message `next` was overwritten: skip to the oldest one still there.
    fn overrun(&mut self) -> Error {
        let t = match self.refresh() {
            Ok(t) => t,
            Err(e) => return e,
        };
        let oldest = t.saturating_sub(self.area.ring).max(self.next + 1);
        self.lag(oldest)
    }

    /// Ends the loan of a message lent in place. Also done by the next
    /// receive, so that a forgotten guard costs a message, not the
    /// broadcast.
    pub(crate) fn give_back(&mut self) {
        if let Some(m) = self.lent.take() {
            self.advance(m + 1);
        }
    }

    /// Takes message `next` into `sink` if it has been published:
    /// `Ok(None)` if not (the caller looks at the close and the
    /// publisher's life).
    pub(crate) fn poll(&mut self, sink: &mut Sink<'_>) -> Result<Option<Got>, Error> {
        self.give_back();
        if let Some(what) = self.broken {
            return Err(Error::Corrupt(what));
        }
        if self.next >= self.tail && self.next >= self.refresh()? {
            return Ok(None);
        }
        let (m, ring) = (self.next, self.area.ring);
        if m + ring < self.tail {
            // Message `m + ring` is out: it overwrote ours.
            let oldest = self.tail - ring;
            return Err(self.lag(oldest));
        }
        let head = self.area.head(m);
        // Relaxed: ordered after our Acquire load of `tail`; `intact`
        // re-checks it after the copy.
        let stamp = head.stamp.load(Relaxed);
        if stamp != m + 1 {
            if stamp > m + 1 {
                return Err(self.overrun());
            }
            return Err(self.corrupt("an entry holds an older message than the publisher says"));
        }
        // Relaxed: as the stamp; loaded once.
        let len = head.len.load(Relaxed);
        if len > self.area.max_message {
            if !self.intact(m) {
                return Err(self.overrun());
            }
            return Err(self.corrupt("a message longer than the ring's entries"));
        }
        match sink {
            Sink::Vec(v) => {
                v.clear();
                v.resize(len as usize, 0);
                self.area.copy_out(m, v.as_mut_slice());
            }
            Sink::Slice(buf) => {
                if (buf.len() as u64) < len {
                    if !self.intact(m) {
                        return Err(self.overrun());
                    }
                    let limit = buf.len() as u64;
                    return Err(Error::TooLarge { len, limit });
                }
                self.area.copy_out(m, &mut buf[..len as usize]);
            }
            Sink::Lend => {
                if !self.intact(m) {
                    return Err(self.overrun());
                }
                self.lent = Some(m);
                return Ok(Some(Got::Lent { m, len }));
            }
        }
        if !self.intact(m) {
            return Err(self.overrun());
        }
        self.advance(m + 1);
        Ok(Some(Got::Copied(len)))
    }

    /// Whether a receive would not find "nothing": a message (or a lag)
    /// is there, or the publisher closed. One or two loads, no system call.
    pub(crate) fn ready(&self) -> bool {
        let data = self.area.data();
        // Acquire: pairs with the Release store of `tail` in `Writer::write`
        // (a hint: the receive loads it again).
        data.tail.0.load(Acquire) > self.next
            // Acquire: pairs with the Release store in `Writer::close`.
            || data.closed.load(Acquire) != 0
    }

    /// Whether the publisher closed. Every message it published before is
    /// visible to the next `poll`.
    pub(crate) fn closed(&self) -> bool {
        // Acquire: pairs with the Release store in `Writer::close`.
        self.area.data().closed.load(Acquire) != 0
    }

    /// Leaves the slot: the publisher stops waiting for us.
    pub(crate) fn leave(&mut self) {
        self.lent = None;
        // Release: pairs with the Acquire load of `active` in `Writer::scan`.
        self.area
            .slot(self.slot)
            .active
            .store(self.active.wrapping_add(1), Release);
        if self.block {
            notify(&self.area.control().publisher.0, &mut self.woken, None);
        }
    }
}
