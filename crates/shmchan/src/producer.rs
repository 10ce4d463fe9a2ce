//! The sending half of the protocol: writes records after `tail`, publishes
//! `tail`, and waits for the consumer's `head` when the ring is full.
//!
//! The producer's own position lives in a local variable: the copy in
//! shared memory is for the consumer and is never read back. The consumer's
//! position is loaded once per look, checked, and cached.

use std::ptr::NonNull;

use crate::bell::Bell;
use crate::error::Error;
use crate::layout::{Kind, RECORD_HEADER, RecordHeader, Role, record_size};
use crate::ring::Ring;
use crate::sync::Ordering::{Acquire, Relaxed, Release};
use crate::wait::{Wait, Watch, notify, wait_until};

/// Records of at least this many bytes go back to the start of an empty
/// ring (see `Producer::place`).
const HOT_REUSE: u64 = 64 << 10;

/// Whether a call may wait for room.
#[derive(Clone, Copy, Debug)]
pub(crate) enum How {
    /// Never wait: `Full` (sending) or `Empty` (receiving) instead.
    Try,
    /// Wait with this policy (until the [`Watch`] says stop).
    Wait(Wait),
}

/// Fills a piece of a message: `(offset in the message, bytes)`.
pub(crate) type Fill<'a> = &'a mut dyn FnMut(usize, &mut [u8]);

pub(crate) struct Producer {
    ring: Ring,
    /// Where the next record goes.
    tail: u64,
    /// The last `tail` stored in shared memory.
    published: u64,
    /// The consumer's `head` as last loaded.
    head: u64,
    /// A message went out in part before its sender gave up: an `Abort`
    /// record must precede the next message.
    abort_pending: bool,
    /// Set when the consumer's index broke the protocol; every later call
    /// fails with it.
    broken: Option<&'static str>,
    /// The last sleep of the peer that this side woke (see `notify`).
    woken: u32,
    /// The channel's doorbell, if it was made through a connection.
    bell: Option<Bell>,
    /// The peer's end of the bell hung up (see `peer_hung_up`).
    hung_up: bool,
}

impl Producer {
    #[cfg(any(test, loom))]
    pub(crate) fn new(ring: Ring) -> Producer {
        Self::with_bell(ring, None)
    }

    /// A producer that rings `bell` when the peer waits on it.
    pub(crate) fn with_bell(ring: Ring, bell: Option<Bell>) -> Producer {
        Producer {
            ring,
            tail: 0,
            published: 0,
            head: 0,
            abort_pending: false,
            broken: None,
            woken: 0,
            bell,
            hung_up: false,
        }
    }

    /// Payload bytes per record of a long message: a quarter of the ring,
    /// so that the consumer copies one chunk while the producer writes the
    /// next.
    pub(crate) fn max_chunk(&self) -> u64 {
        self.ring.capacity() / 4
    }

    /// The largest loan: one record that fills the whole ring.
    pub(crate) fn max_loan(&self) -> u64 {
        self.ring.capacity() - RECORD_HEADER
    }

    /// The longest message a `Try` send can ever send: its records (a
    /// quarter of the ring of payload each, plus a header) fill an empty
    /// ring exactly. Longer messages are `TooLarge` for `Try`; blocking
    /// sends take any length, in rounds.
    pub(crate) fn max_try_send(&self) -> u64 {
        let (max, cap) = (self.max_chunk(), self.ring.capacity());
        // Whole chunks while they fit, then the rest of the ring less a
        // header (`cap` and record sizes are multiples of 16): for a ring
        // of 4 KiB or more, the capacity less four headers.
        let full = cap / record_size(max);
        let rest = cap - full * record_size(max);
        full * max + rest.saturating_sub(RECORD_HEADER)
    }

    /// Bytes in the ring for the records of a message of `len` bytes sent
    /// in chunks of [`max_chunk`](Self::max_chunk).
    pub(crate) fn records_size(&self, len: u64) -> u64 {
        let max = self.max_chunk();
        let chunks = len.div_ceil(max).max(1);
        let last = len - (chunks - 1) * max;
        (chunks - 1)
            .saturating_mul(record_size(max))
            .saturating_add(record_size(last))
    }

    fn check(&self) -> Result<(), Error> {
        if let Some(what) = self.broken {
            return Err(Error::Corrupt(what));
        }
        // Relaxed: the flag only says "stop"; no data travels with it.
        if self.ring.header().closed[Role::Receiver.index()].load(Relaxed) != 0 {
            return Err(Error::Closed);
        }
        if self.hung_up {
            return Err(Error::PeerGone);
        }
        Ok(())
    }

    /// Whether `need` bytes are free after `tail`. Loads the consumer's
    /// `head` only when the cached one says no.
    pub(crate) fn has_room(&mut self, need: u64) -> Result<bool, Error> {
        let cap = self.ring.capacity();
        if cap - (self.tail - self.head) >= need {
            return Ok(true);
        }
        // Acquire: pairs with the Release store of `head` in
        // `Consumer::release`: the consumer has copied out every record
        // before `head`, so we may overwrite them.
        let head = self.ring.header().head.0.load(Acquire);
        match self.tail.checked_sub(head) {
            Some(used) if used <= cap => {
                self.head = head;
                Ok(cap - used >= need)
            }
            _ => {
                let what = "the receiver's position is outside the ring";
                self.broken = Some(what);
                Err(Error::Corrupt(what))
            }
        }
    }

    /// Waits until `need` bytes are free (or fails with `Full` for `Try`).
    fn wait_room(&mut self, need: u64, how: How, watch: &mut dyn Watch) -> Result<(), Error> {
        if self.has_room(need)? {
            return Ok(());
        }
        // The consumer must see what we wrote before it can make room.
        self.publish();
        let policy = match how {
            How::Try => return Err(Error::Full),
            How::Wait(policy) => policy,
        };
        let ring = self.ring;
        let me = &ring.header().waiting[Role::Sender.index()].0;
        wait_until(
            policy,
            me,
            &mut || {
                self.check()?;
                self.has_room(need)
            },
            watch,
        )
    }

    /// Writes one record at `tail` (room was checked) without publishing it.
    fn put(&mut self, kind: Kind, chunk: u64, total: u64, fill: Option<Fill<'_>>) {
        debug_assert!(
            self.tail + record_size(chunk) - self.head <= self.ring.capacity(),
            "a record beyond the room that was checked"
        );
        let header = RecordHeader {
            kind,
            chunk: u32::try_from(chunk).expect("chunks are at most a quarter of the ring"),
            total,
        };
        self.ring.write_header(self.tail, header.encode());
        if let Some(fill) = fill {
            // SAFETY: the record's bytes lie after our tail, unpublished,
            // in room the consumer gave back (`wait_room`); no reference
            // into them is alive: a `Loan` borrows the `Sender` mutably, so
            // none exists while this runs, and `commit` passes no `fill`.
            unsafe { self.ring.fill(self.tail + RECORD_HEADER, chunk, fill) };
        }
        self.tail += record_size(chunk);
    }

    /// Makes every record written so far visible to the consumer, and wakes
    /// it if it sleeps.
    pub(crate) fn publish(&mut self) {
        if self.published == self.tail {
            return;
        }
        let hdr = self.ring.header();
        // Release: pairs with the Acquire load of `tail` in
        // `Consumer::refresh`: the records before `tail` are written before
        // the consumer can see the new `tail`.
        hdr.tail.0.store(self.tail, Release);
        self.published = self.tail;
        notify(
            &hdr.waiting[Role::Receiver.index()].0,
            &mut self.woken,
            self.bell.as_ref(),
        );
        // The next record's lines, within the room known to be free.
        let free = self.ring.capacity().saturating_sub(self.tail - self.head);
        self.ring.prefetch_for_write(self.tail, free);
    }

    fn write_pending_abort(&mut self, how: How, watch: &mut dyn Watch) -> Result<(), Error> {
        if self.abort_pending {
            self.wait_room(RECORD_HEADER, how, watch)?;
            self.put(Kind::Abort, 0, 0, None);
            self.abort_pending = false;
        }
        Ok(())
    }

    /// Sends one message of `len` bytes, in records of at most
    /// [`max_chunk`](Self::max_chunk) bytes; `fill` writes the payload in
    /// place. `Try` sends all of it or nothing.
    pub(crate) fn send(
        &mut self,
        len: u64,
        fill: Fill<'_>,
        how: How,
        watch: &mut dyn Watch,
    ) -> Result<(), Error> {
        self.check()?;
        let max = self.max_chunk();
        if let How::Try = how {
            let limit = self.max_try_send();
            if len > limit {
                // It would never fit: `Full` would be a lie for ever.
                return Err(Error::TooLarge { len, limit });
            }
            // The `Abort` of an earlier message goes first, on its own, so
            // that it never makes a message that fits the ring not fit.
            self.write_pending_abort(how, watch)?;
            let records = self.records_size(len);
            // A message of one record that would wrap gets a `Pad` first.
            let wraps = len <= max && records > self.to_end();
            let pad = if wraps { self.to_end() } else { 0 };
            if !self.has_room(records + pad)? {
                return Err(Error::Full);
            }
        }
        self.write_pending_abort(how, watch)?;
        if len <= max {
            // One record: never wrapped, so that the receiver can lend it
            // in place (`Receiver::recv_in_place`).
            self.place(record_size(len), how, watch)?;
        }
        let (mut off, mut started) = (0, false);
        loop {
            let chunk = (len - off).min(max);
            if let Err(e) = self.wait_room(record_size(chunk), how, watch) {
                // Part of the message may be out: the consumer must drop it.
                self.abort_pending = started;
                return Err(e);
            }
            let kind = if started { Kind::Cont } else { Kind::Msg };
            let at = off as usize;
            self.put(kind, chunk, len, Some(&mut |o, piece| fill(at + o, piece)));
            started = true;
            off += chunk;
            // Published chunk by chunk: the consumer copies one out while
            // we write the next.
            self.publish();
            if off == len {
                return Ok(());
            }
        }
    }

    /// The free bytes the next step of a send that does not wait needs
    /// ([`Sender::arm`](crate::Sender::arm)): an owed `Abort` goes first,
    /// on its own (a `Try` send writes it alone, see `send`); then all the
    /// message's records, with a `Pad` first for a one-record message that
    /// would wrap. Never more than the capacity for a message of at most
    /// [`max_try_send`](Self::max_try_send) bytes.
    pub(crate) fn try_need(&self, len: u64) -> u64 {
        if self.abort_pending {
            return RECORD_HEADER;
        }
        let records = self.records_size(len);
        // A message of one record that would wrap gets a `Pad` first.
        let wraps = len <= self.max_chunk() && records > self.to_end();
        let pad = if wraps { self.to_end() } else { 0 };
        records.saturating_add(pad)
    }

    /// Bytes from `tail` to the end of the data area.
    fn to_end(&self) -> u64 {
        let cap = self.ring.capacity();
        cap - (self.tail & (cap - 1))
    }

    /// Where a record of `need` bytes that must lie in one piece goes. If
    /// it would wrap, the rest of the data area is filled with a `Pad`
    /// record first. A large record (at least [`HOT_REUSE`] bytes) also
    /// goes back to the start of the data area when the ring is empty and
    /// the start is free: a ping-pong of large messages then reuses the
    /// same, cache-warm bytes every time instead of walking the ring
    /// through memory (measured in the crate's README).
    fn place(&mut self, need: u64, how: How, watch: &mut dyn Watch) -> Result<(), Error> {
        let to_end = self.to_end();
        let cap = self.ring.capacity();
        let restart = need >= HOT_REUSE
            && to_end < cap
            && need <= cap - to_end
            // Empty: the consumer has given back everything.
            && self.has_room(cap)?;
        if need > to_end || restart {
            self.wait_room(to_end, how, watch)?;
            self.put(Kind::Pad, to_end - RECORD_HEADER, 0, None);
        }
        Ok(())
    }

    /// Reserves `len` contiguous bytes for a loan and returns the position
    /// of its payload; [`commit`](Self::commit) publishes it.
    pub(crate) fn loan(&mut self, len: u64, how: How, watch: &mut dyn Watch) -> Result<u64, Error> {
        self.check()?;
        let limit = self.max_loan();
        if len > limit {
            return Err(Error::TooLarge { len, limit });
        }
        self.write_pending_abort(how, watch)?;
        let need = record_size(len);
        self.place(need, how, watch)?;
        self.wait_room(need, how, watch)?;
        Ok(self.tail + RECORD_HEADER)
    }

    /// The bytes of a loan made by [`loan`](Self::loan), as a raw
    /// pointer: the caller (the `Loan` guard, which borrows the producer
    /// mutably) decides when a reference to them may be formed.
    pub(crate) fn loaned(&self, len: u64) -> NonNull<[u8]> {
        self.ring.contiguous_mut(self.tail + RECORD_HEADER, len)
    }

    /// Publishes a loan of `len` bytes as one message.
    pub(crate) fn commit(&mut self, len: u64) {
        self.put(Kind::Msg, len, len, None);
        self.publish();
    }

    /// Writes and publishes one chunk of a message by hand (tests that
    /// play both sides in one thread).
    #[cfg(test)]
    pub(crate) fn test_chunk(&mut self, piece: &[u8], first: bool, total: u64) {
        let kind = if first { Kind::Msg } else { Kind::Cont };
        let fill = &mut |o: usize, p: &mut [u8]| p.copy_from_slice(&piece[o..o + p.len()]);
        // The tests make the room; this refreshes the cached `head`.
        assert!(self.has_room(record_size(piece.len() as u64)).unwrap());
        self.put(kind, piece.len() as u64, total, Some(fill));
        self.publish();
    }

    /// The ring, for tests that swap a producer's bell.
    #[cfg(test)]
    pub(crate) fn ring_for_tests(&self) -> Ring {
        self.ring
    }

    /// Whether the consumer moved or closed since we last looked: one
    /// load, for a spin that must not retry a whole call each time.
    #[cfg(feature = "tokio")]
    pub(crate) fn news(&self) -> bool {
        let hdr = self.ring.header();
        // Acquire: pairs with the Release store of `head` in
        // `Consumer::release` (a hint only: the retry loads it again).
        hdr.head.0.load(Acquire) != self.head
            // Relaxed: as in `check`.
            || hdr.closed[Role::Receiver.index()].load(Relaxed) != 0
    }

    /// The channel's doorbell, if it has one.
    pub(crate) fn bell(&self) -> Option<&Bell> {
        self.bell.as_ref()
    }

    /// The peer's end of the bell hung up: it closed its end or died.
    /// Every later call fails with `Closed` or `PeerGone`.
    pub(crate) fn peer_hung_up(&mut self) {
        self.hung_up = true;
    }

    /// Arms this side's bell (see `wait::arm`) to wait for `need` free
    /// bytes: `Ok(true)` when they are not free and the caller should wait
    /// for the bell; `Ok(false)` when they are.
    pub(crate) fn arm(&mut self, need: u64) -> Result<bool, Error> {
        self.check()?;
        // The consumer must see what we wrote before it can make room.
        self.publish();
        let ring = self.ring;
        let me = &ring.header().waiting[Role::Sender.index()].0;
        crate::wait::arm(me, &mut || {
            self.check()?;
            self.has_room(need)
        })
    }

    /// Whether `need` bytes are free, or a call would fail at once (closed,
    /// peer gone, broken): a wait set's look, no system call. Publishes
    /// what was written first, as [`arm`](Self::arm) does.
    pub(crate) fn ready(&mut self, need: u64) -> bool {
        if self.check().is_err() {
            return true;
        }
        self.publish();
        !matches!(self.has_room(need), Ok(false))
    }

    /// This side's sleep words (see `Consumer::waiter`).
    pub(crate) fn waiter(&self) -> &crate::layout::Waiter {
        &self.ring.header().waiting[Role::Sender.index()].0
    }

    /// The free bytes the next step of a loan of `len` bytes that does not
    /// wait needs: an owed `Abort`, else the `Pad` to the end of the data
    /// area if the record would wrap, else the record. Each step of
    /// [`loan`](Self::loan) with `How::Try` writes what it has room for and
    /// fails `Full` at the first it has not, so arming for this and trying
    /// again always makes progress. Never more than the capacity.
    #[cfg(feature = "tokio")]
    pub(crate) fn loan_need(&self, len: u64) -> u64 {
        let need = record_size(len);
        if self.abort_pending {
            RECORD_HEADER
        } else if need > self.to_end() {
            self.to_end()
        } else {
            need
        }
    }

    /// One step of a send that never waits (the async sender): writes as
    /// much of the message as there is room for now. `sent` counts the
    /// bytes that went out in earlier steps (0 for a new message).
    /// Returns `Ok(None)` once the whole message is in the ring, or
    /// `Ok(Some(need))`: the free bytes the next step needs. A caller that
    /// gives up between steps calls [`abandon`](Self::abandon).
    #[cfg(feature = "tokio")]
    pub(crate) fn send_step(
        &mut self,
        len: u64,
        sent: &mut u64,
        fill: Fill<'_>,
    ) -> Result<Option<u64>, Error> {
        self.check()?;
        let max = self.max_chunk();
        if *sent == 0 && self.abort_pending {
            // An owed `Abort` goes first, on its own: the room of what
            // follows is reckoned from where it ends.
            if !self.has_room(RECORD_HEADER)? {
                self.publish();
                return Ok(Some(RECORD_HEADER));
            }
            self.put(Kind::Abort, 0, 0, None);
            self.abort_pending = false;
        }
        if *sent == 0 && len <= max {
            // One record, which must not wrap (see `send`): with its `Pad`,
            // all at once or nothing. At most half the ring and a header.
            let (record, to_end) = (record_size(len), self.to_end());
            let pad = if record > to_end { to_end } else { 0 };
            if !self.has_room(pad + record)? {
                self.publish();
                return Ok(Some(pad + record));
            }
            if pad > 0 {
                self.put(Kind::Pad, to_end - RECORD_HEADER, 0, None);
            }
            self.put(Kind::Msg, len, len, Some(fill));
            self.publish();
            *sent = len;
            return Ok(None);
        }
        while *sent < len {
            let chunk = (len - *sent).min(max);
            if !self.has_room(record_size(chunk))? {
                self.publish();
                return Ok(Some(record_size(chunk)));
            }
            let kind = if *sent == 0 { Kind::Msg } else { Kind::Cont };
            let at = *sent as usize;
            self.put(kind, chunk, len, Some(&mut |o, piece| fill(at + o, piece)));
            *sent += chunk;
            // Chunk by chunk, as in `send`.
            self.publish();
        }
        Ok(None)
    }

    /// A message that [`send_step`](Self::send_step) began is given up:
    /// the consumer drops the part that went out.
    #[cfg(feature = "tokio")]
    pub(crate) fn abandon(&mut self) {
        self.abort_pending = true;
    }

    /// Tells the consumer that no more messages follow.
    pub(crate) fn close(&mut self) {
        self.publish();
        let hdr = self.ring.header();
        // Release: pairs with the Acquire load of `closed` in
        // `Consumer::idle`: a consumer that sees the flag sees every record
        // published before it.
        hdr.closed[Role::Sender.index()].store(1, Release);
        notify(
            &hdr.waiting[Role::Receiver.index()].0,
            &mut self.woken,
            self.bell.as_ref(),
        );
    }
}
