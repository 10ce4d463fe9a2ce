//! The receiving half of the protocol: reads records after `head` up to the
//! producer's `tail`, copies their payload out, and gives the space back.
//!
//! The peer may be hostile. Every value read from shared memory is read
//! once into a local, checked with checked arithmetic, and never read
//! again: `tail` on each refresh, a record header once per record. Our own
//! `head` lives in a local; the shared copy is only for the producer. The
//! payload is copied out before anything looks at it, but for the in-place
//! receive ([`Sink::Lend`]), which lends a message where it lies and keeps
//! its space until it is given back: its length and position are checked
//! as for a copy, its bytes are the sender's to keep still. A value that breaks
//! the protocol makes the call return [`Error::Corrupt`], and the channel
//! stays broken; nothing can make it read outside the data area or panic.

use crate::bell::Bell;
use crate::error::Error;
use crate::layout::{Kind, RECORD_HEADER, RecordHeader, Role, record_size};
use crate::producer::How;
use crate::ring::Ring;
use crate::sync::Ordering::{Acquire, Relaxed, Release};
use crate::wait::{Watch, notify, wait_until};

/// Records between two looks at the deadline while records keep coming.
const DEADLINE_EVERY: u32 = 64;

/// Where a received message goes.
pub(crate) enum Sink<'a> {
    /// Grown to the message as its bytes arrive (its allocation is
    /// reused).
    Vec(&'a mut Vec<u8>),
    /// The caller's buffer; a longer message is `TooLarge` and stays queued.
    Slice(&'a mut [u8]),
    /// In place if the message is one record that does not wrap (it is
    /// then [`Taken::Lent`] and nothing is copied); otherwise as `Vec`.
    Lend(&'a mut Vec<u8>),
}

/// What a receive took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Taken {
    /// A message of this many bytes, copied into the sink.
    Copied(u64),
    /// A message left where it lies: its payload's ring position and
    /// length. Its space stays ours until [`Consumer::give_back`].
    Lent { pos: u64, len: u64 },
}

impl Sink<'_> {
    /// A message of `total` bytes begins. Nothing is allocated here: a
    /// `Vec` grows in [`put`](Self::put) as the bytes arrive, never to a
    /// length the sender only announced.
    fn begin(&mut self, total: u64) -> Result<(), Error> {
        match self {
            Sink::Vec(v) | Sink::Lend(v) => {
                v.clear();
                Ok(())
            }
            Sink::Slice(s) if total > s.len() as u64 => Err(Error::TooLarge {
                len: total,
                limit: s.len() as u64,
            }),
            Sink::Slice(_) => Ok(()),
        }
    }

    /// Copies `len` bytes of a chunk at ring position `pos` to offset `at`
    /// of the message; `at + len` is within the `total` given to `begin`.
    /// False (nothing copied) when no memory could be had for the bytes.
    #[must_use]
    fn put(&mut self, ring: &Ring, pos: u64, at: u64, len: u64, total: u64) -> bool {
        match self {
            Sink::Vec(v) | Sink::Lend(v) => {
                debug_assert_eq!(v.len() as u64, at);
                if !grow(v, len, total) {
                    return false;
                }
                let spare = v.spare_capacity_mut();
                assert!(spare.len() as u64 >= len, "grow made room for the chunk");
                // SAFETY: `spare` has room for `len` bytes and is private
                // memory; `set_len` covers exactly the bytes just written.
                unsafe {
                    ring.read(pos, spare.as_mut_ptr().cast(), len);
                    v.set_len(v.len() + len as usize);
                }
            }
            Sink::Slice(s) => {
                let dst = &mut s[at as usize..(at + len) as usize];
                // SAFETY: `dst` has `len` bytes and is the caller's memory.
                unsafe { ring.read(pos, dst.as_mut_ptr(), len) }
            }
        }
        true
    }

    /// The first `got` bytes of an interrupted message, kept for later.
    fn suspend(&mut self, got: u64) -> Vec<u8> {
        match self {
            Sink::Vec(v) | Sink::Lend(v) => std::mem::take(*v),
            Sink::Slice(s) => s[..got as usize].to_vec(),
        }
    }

    /// Puts back what [`suspend`](Self::suspend) kept.
    fn resume(&mut self, total: u64, stash: Vec<u8>) -> Result<(), (Error, Vec<u8>)> {
        match self {
            // The rest grows it as it arrives (`put`).
            Sink::Vec(v) | Sink::Lend(v) => **v = stash,
            Sink::Slice(_) => {
                if let Err(e) = self.begin(total) {
                    return Err((e, stash));
                }
                if let Sink::Slice(s) = self {
                    s[..stash.len()].copy_from_slice(&stash);
                }
            }
        }
        Ok(())
    }
}

/// Makes room in `v` for `len` more bytes of a message of `total`. The
/// allocation follows the bytes that have arrived (it doubles, up to
/// `total`), never a length a sender only announced, and nothing is
/// zero-filled: a hostile sender that announces gigabytes and sends a few
/// bytes costs a few bytes. False when the allocator refuses.
fn grow(v: &mut Vec<u8>, len: u64, total: u64) -> bool {
    if (v.capacity() - v.len()) as u64 >= len {
        return true;
    }
    // `need <= total <= isize::MAX`: checked when the message began.
    let need = v.len() as u64 + len;
    let want = need.max((v.capacity() as u64).saturating_mul(2)).min(total);
    v.try_reserve_exact((want - v.len() as u64) as usize)
        .is_ok()
}

/// A message that a timeout or a `try_recv` interrupted.
struct Partial {
    total: u64,
    got: u64,
    stash: Vec<u8>,
    /// Refused (see [`InFlight::discard`]): its stash is empty.
    discard: bool,
}

/// The message under way.
#[derive(Clone, Copy)]
struct InFlight {
    total: u64,
    got: u64,
    /// Refused with `TooLarge` (over the receiver's limit, or no memory
    /// for it): its remaining chunks are dropped as they arrive, and the
    /// receive goes on with the next message.
    discard: bool,
}

/// A record as read from shared memory and checked.
struct Record {
    kind: Kind,
    chunk: u64,
    total: u64,
    pos: u64,
    size: u64,
}

pub(crate) struct Consumer {
    ring: Ring,
    /// Where the next record starts.
    head: u64,
    /// The last `head` stored in shared memory.
    released: u64,
    /// The producer's `tail` as last loaded and checked.
    tail: u64,
    partial: Option<Partial>,
    /// The peer died; what it published can still be read.
    peer_gone: bool,
    broken: Option<&'static str>,
    /// The last sleep of the peer that this side woke (see `notify`).
    woken: u32,
    /// The channel's doorbell, if it was made through a connection.
    bell: Option<Bell>,
    /// Data records consumed, over all messages.
    records: u64,
    /// Bytes of the record lent in place, not yet given back.
    lent: Option<u64>,
    /// Longer messages are refused (`TooLarge`) and skipped.
    max_message: u64,
}

impl Consumer {
    #[cfg(any(test, loom))]
    pub(crate) fn new(ring: Ring) -> Consumer {
        Self::with_bell(ring, None)
    }

    /// A consumer that rings `bell` when the peer waits on it.
    pub(crate) fn with_bell(ring: Ring, bell: Option<Bell>) -> Consumer {
        Consumer {
            ring,
            head: 0,
            released: 0,
            tail: 0,
            partial: None,
            peer_gone: false,
            broken: None,
            woken: 0,
            bell,
            records: 0,
            lent: None,
            max_message: isize::MAX as u64,
        }
    }

    /// Messages longer than `bytes` are refused with `TooLarge` and
    /// skipped, before anything is allocated for them.
    pub(crate) fn set_max_message(&mut self, bytes: u64) {
        self.max_message = bytes;
    }

    pub(crate) fn max_message(&self) -> u64 {
        self.max_message
    }

    /// The owner found the peer dead (a poll's look at its lock): what it
    /// published is still received, then `PeerGone`.
    pub(crate) fn peer_died(&mut self) {
        self.peer_gone = true;
    }

    /// The ring this side reads (for the bytes of a [`Taken::Lent`]).
    pub(crate) fn ring(&self) -> &Ring {
        &self.ring
    }

    /// Data records consumed so far (one per message, more for long ones).
    pub(crate) fn records(&self) -> u64 {
        self.records
    }

    fn corrupt(&mut self, what: &'static str) -> Error {
        self.broken = Some(what);
        Error::Corrupt(what)
    }

    /// Loads and checks the producer's `tail`; returns the bytes available.
    fn refresh(&mut self) -> Result<u64, Error> {
        // Acquire: pairs with the Release store of `tail` in
        // `Producer::publish`: the records before `tail` are complete.
        let tail = self.ring.header().tail.0.load(Acquire);
        match tail.checked_sub(self.head) {
            Some(avail) if avail <= self.ring.capacity() && tail % RECORD_HEADER == 0 => {
                if tail != self.tail {
                    // New records: fetch their first lines at once, rather
                    // than a miss for the header and then one per line.
                    self.ring.prefetch(self.head, avail);
                }
                self.tail = tail;
                Ok(avail)
            }
            _ => Err(self.corrupt("the sender's position is outside the ring")),
        }
    }

    /// The record at `head`, if one has been published.
    fn peek(&mut self) -> Result<Option<Record>, Error> {
        let mut avail = self.tail - self.head;
        if avail < RECORD_HEADER {
            avail = self.refresh()?;
            if avail < RECORD_HEADER {
                return Ok(None);
            }
        }
        let Ok(h) = RecordHeader::decode(self.ring.read_header(self.head)) else {
            return Err(self.corrupt("unknown record kind"));
        };
        let chunk = u64::from(h.chunk);
        let size = record_size(chunk);
        if size > avail {
            return Err(self.corrupt("a record runs past the sender's position"));
        }
        Ok(Some(Record {
            kind: h.kind,
            chunk,
            total: h.total,
            pos: self.head,
            size,
        }))
    }

    /// Gives the consumed space back to the producer, and wakes it if it
    /// sleeps.
    fn release(&mut self) {
        if self.released == self.head {
            return;
        }
        let hdr = self.ring.header();
        // Release: pairs with the Acquire load of `head` in
        // `Producer::has_room`: our copies out of the records before `head`
        // are done before the producer may overwrite them.
        hdr.head.0.store(self.head, Release);
        self.released = self.head;
        notify(
            &hdr.waiting[Role::Sender.index()].0,
            &mut self.woken,
            self.bell.as_ref(),
        );
    }

    /// Receives one message into `sink`; returns its length.
    pub(crate) fn recv(
        &mut self,
        sink: &mut Sink<'_>,
        how: How,
        watch: &mut dyn Watch,
    ) -> Result<u64, Error> {
        self.take(sink, how, watch).map(|taken| match taken {
            Taken::Copied(n) | Taken::Lent { len: n, .. } => n,
        })
    }

    /// Ends the loan of the message lent in place: its space goes back to
    /// the producer. Also done by the next receive, so that a guard that
    /// was forgotten (`mem::forget`) costs a message, not the channel.
    pub(crate) fn give_back(&mut self) {
        if let Some(size) = self.lent.take() {
            self.head += size;
            self.release();
        }
    }

    /// Receives one message, in place where `sink` is [`Sink::Lend`] and
    /// the message lies in one piece.
    pub(crate) fn take(
        &mut self,
        sink: &mut Sink<'_>,
        how: How,
        watch: &mut dyn Watch,
    ) -> Result<Taken, Error> {
        self.give_back();
        if let Some(what) = self.broken {
            return Err(Error::Corrupt(what));
        }
        let mut msg = None;
        if let Some(p) = self.partial.take() {
            let (total, got, discard) = (p.total, p.got, p.discard);
            if !discard {
                if let Sink::Slice(buf) = sink {
                    // A receive into the caller's buffer that was stopped
                    // half-way goes on in the stash, copied into the buffer
                    // once, when whole: a poll costs only the new bytes,
                    // not a copy out and back of all that came before.
                    if total > buf.len() as u64 {
                        let limit = buf.len() as u64;
                        self.partial = Some(p);
                        return Err(Error::TooLarge { len: total, limit });
                    }
                    let mut stash = p.stash;
                    let mut msg = Some(InFlight {
                        total,
                        got,
                        discard,
                    });
                    let mut into_stash = Sink::Vec(&mut stash);
                    let result = self.take_message(&mut into_stash, &mut msg, how, watch);
                    self.keep(&result, msg, &mut into_stash);
                    if let Ok(Taken::Copied(n)) = result {
                        buf[..n as usize].copy_from_slice(&stash[..n as usize]);
                    }
                    return result;
                }
                if let Err((e, stash)) = sink.resume(total, p.stash) {
                    self.partial = Some(Partial { stash, ..p });
                    return Err(e);
                }
            }
            msg = Some(InFlight {
                total,
                got,
                discard,
            });
        }
        let result = self.take_message(sink, &mut msg, how, watch);
        self.keep(&result, msg, sink);
        result
    }

    /// Keeps a message that `result` interrupted for the next call (see
    /// [`take`](Self::take)).
    fn keep(&mut self, result: &Result<Taken, Error>, msg: Option<InFlight>, sink: &mut Sink<'_>) {
        if let Some(InFlight {
            total,
            got,
            discard,
        }) = msg
        {
            // A refused message is dropped whatever stopped this call; one
            // being received is kept for the next call if time ran out.
            let stash = match (result, discard) {
                (_, true) => Some(Vec::new()),
                (Err(Error::Empty | Error::Timeout), false) => Some(sink.suspend(got)),
                _ => None,
            };
            self.partial = stash.map(|stash| Partial {
                total,
                got,
                stash,
                discard,
            });
        }
    }

    fn take_message(
        &mut self,
        sink: &mut Sink<'_>,
        msg: &mut Option<InFlight>,
        how: How,
        watch: &mut dyn Watch,
    ) -> Result<Taken, Error> {
        let mut n = 0u32;
        loop {
            n = n.wrapping_add(1);
            // A peer that keeps publishing must not hold a timed call past
            // its deadline.
            if n % DEADLINE_EVERY == 0 && watch.expired() {
                return Err(Error::Timeout);
            }
            let Some(rec) = self.peek()? else {
                self.idle(how, watch)?;
                continue;
            };
            // Returned once the record is consumed.
            let mut refused = None;
            match rec.kind {
                Kind::Pad => {}
                Kind::Abort => *msg = None,
                Kind::Msg => {
                    if msg.is_some() {
                        return Err(self.corrupt("a message began inside another"));
                    }
                    if rec.chunk > rec.total {
                        return Err(self.corrupt("a chunk is longer than its message"));
                    }
                    if rec.total > isize::MAX as u64 {
                        return Err(self.corrupt("a message longer than any buffer"));
                    }
                    let pos = rec.pos + RECORD_HEADER;
                    let allowed = rec.total <= self.max_message;
                    if let (Sink::Lend(_), true) = (&sink, allowed) {
                        // Checked as for a copy: the whole message is this
                        // record, within what the producer published.
                        let whole = rec.chunk == rec.total;
                        if whole && self.ring.contiguous(pos, rec.chunk).is_some() {
                            self.lent = Some(rec.size);
                            self.records += 1;
                            return Ok(Taken::Lent {
                                pos,
                                len: rec.chunk,
                            });
                        }
                    }
                    if allowed {
                        // A buffer too short: `TooLarge`, and the record
                        // stays where it is for a longer one.
                        sink.begin(rec.total)?;
                    }
                    let (total, got) = (rec.total, rec.chunk);
                    let kept = allowed && sink.put(&self.ring, pos, 0, got, total);
                    if !kept {
                        let limit = if allowed { 0 } else { self.max_message };
                        refused = Some(Error::TooLarge { len: total, limit });
                    }
                    let discard = !kept;
                    *msg = Some(InFlight {
                        total,
                        got,
                        discard,
                    });
                    self.records += 1;
                }
                Kind::Cont => {
                    let Some(m) = msg.as_mut() else {
                        return Err(self.corrupt("a continuation outside a message"));
                    };
                    if rec.chunk > m.total - m.got {
                        return Err(self.corrupt("a message is longer than announced"));
                    }
                    let pos = rec.pos + RECORD_HEADER;
                    if !m.discard && !sink.put(&self.ring, pos, m.got, rec.chunk, m.total) {
                        m.discard = true;
                        refused = Some(Error::TooLarge {
                            len: m.total,
                            limit: m.got,
                        });
                    }
                    m.got += rec.chunk;
                    self.records += 1;
                }
            }
            self.head += rec.size;
            // Space goes back after every chunk: a producer waiting for room
            // must never depend on our next call.
            if matches!(rec.kind, Kind::Msg | Kind::Cont) {
                self.release();
            }
            if let Some(m) = *msg {
                if m.got == m.total {
                    *msg = None;
                    if !m.discard && refused.is_none() {
                        return Ok(Taken::Copied(m.total));
                    }
                }
            }
            if let Some(e) = refused {
                return Err(e);
            }
        }
    }

    /// Nothing to read: returns when there may be, or why there will not.
    fn idle(&mut self, how: How, watch: &mut dyn Watch) -> Result<(), Error> {
        self.release();
        let ring = self.ring;
        let hdr = ring.header();
        // Acquire: pairs with the Release store in `Producer::close`: every
        // record published before the flag is visible to the next refresh.
        let closed = || hdr.closed[Role::Sender.index()].load(Acquire) != 0;
        if closed() {
            return match self.refresh()? {
                RECORD_HEADER.. => Ok(()),
                _ => Err(Error::Closed),
            };
        }
        if self.peer_gone {
            return Err(Error::PeerGone);
        }
        let policy = match how {
            How::Try => return Err(Error::Empty),
            How::Wait(policy) => policy,
        };
        let me = &hdr.waiting[Role::Receiver.index()].0;
        let ready = &mut || Ok(self.refresh()? >= RECORD_HEADER || closed());
        match wait_until(policy, me, ready, watch) {
            // What the dead peer published before it died is still there:
            // look once more, then report.
            Err(Error::PeerGone) => {
                self.peer_gone = true;
                Ok(())
            }
            other => other,
        }
    }

    /// Whether the producer published or closed since we last looked:
    /// one load, for a spin that must not retry a whole call each time.
    #[cfg(feature = "tokio")]
    pub(crate) fn news(&self) -> bool {
        let hdr = self.ring.header();
        // Acquire: pairs with the Release store of `tail` in
        // `Producer::publish` (a hint only: the retry loads it again).
        hdr.tail.0.load(Acquire) != self.tail
            // Acquire: pairs with the Release store in `Producer::close`.
            || hdr.closed[Role::Sender.index()].load(Acquire) != 0
    }

    /// The channel's doorbell, if it has one.
    pub(crate) fn bell(&self) -> Option<&Bell> {
        self.bell.as_ref()
    }

    /// Arms this side's bell (see `wait::arm`): `Ok(true)` when there is
    /// nothing to take and the caller should wait for the bell; `Ok(false)`
    /// when a record, the close or the peer's death is there to be taken.
    pub(crate) fn arm(&mut self) -> Result<bool, Error> {
        self.give_back();
        if let Some(what) = self.broken {
            return Err(Error::Corrupt(what));
        }
        // Space we consumed goes back first, and wakes a waiting sender.
        self.release();
        if self.peer_gone {
            return Ok(false);
        }
        let ring = self.ring;
        let hdr = ring.header();
        let me = &hdr.waiting[Role::Receiver.index()].0;
        crate::wait::arm(me, &mut || {
            // Acquire: as in `idle`, pairs with the Release store in
            // `Producer::close`.
            let closed = hdr.closed[Role::Sender.index()].load(Acquire) != 0;
            Ok(closed || self.refresh()? >= RECORD_HEADER)
        })
    }

    /// Whether a receive would not find `Empty` (a wait set's look, no
    /// system call): a record, the close, the peer's death or a broken
    /// ring is there to report. Gives back consumed space first, as
    /// [`arm`](Self::arm) does, so that a sender never waits on us.
    pub(crate) fn ready(&mut self) -> bool {
        self.give_back();
        self.release();
        if self.broken.is_some() || self.peer_gone {
            return true;
        }
        // Acquire: as in `idle`, pairs with the Release store in
        // `Producer::close`.
        let closed = self.ring.header().closed[Role::Sender.index()].load(Acquire) != 0;
        closed || !matches!(self.refresh(), Ok(avail) if avail < RECORD_HEADER)
    }

    /// This side's sleep words (a wait set announces and ends its sleeps,
    /// see `wait::announce`).
    pub(crate) fn waiter(&self) -> &crate::layout::Waiter {
        &self.ring.header().waiting[Role::Receiver.index()].0
    }

    /// Tells the producer that nobody will read any more.
    pub(crate) fn close(&mut self) {
        self.give_back();
        self.release();
        let hdr = self.ring.header();
        // Relaxed: no data travels with the flag; the producer only stops
        // on it (the Relaxed load in `Producer::check`).
        hdr.closed[Role::Receiver.index()].store(1, Relaxed);
        notify(
            &hdr.waiting[Role::Sender.index()].0,
            &mut self.woken,
            self.bell.as_ref(),
        );
    }
}
