//! The subscribing end of a broadcast.

use std::ops::Deref;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::time::Duration;

use super::Policy;
use super::reader::{Got, Reader, Sink};
use super::shm::{self, Mapped};
use super::wake;
use super::watch::{Every, Watcher};
use crate::error::Error;
use crate::producer::How;
use crate::sync::AtomicU32;
use crate::wait::Wait;

/// A subscriber of a broadcast: receives every message published after it
/// joined (and up to [`history`](super::Options::history) older ones), in
/// order, with its own cursor.
///
/// # Receives
///
/// The same shapes as a channel's [`Receiver`](crate::Receiver): `recv`,
/// `try_recv`, `recv_timeout`; `recv_into` and its forms copy into the
/// caller's buffer; `recv_in_place` and its forms lend the message where
/// it lies. Under [`Policy::Overwrite`], a receive that finds the
/// subscriber overrun fails once with [`Error::Lagged`]`(n)`, `n` the
/// messages it lost, and the next one returns the oldest message still
/// in the ring. After the publisher closed, every message it published is
/// received, then [`Error::Closed`]; after it died, [`Error::PeerGone`].
///
/// # Trust
///
/// The copying receives trust nothing: the length and the stamp of an
/// entry are read once and checked, the bytes copied out, and the stamp
/// checked again (a seqlock): a copy that an overwrite may have torn is
/// never returned. A publisher that breaks the protocol makes the receive
/// fail with [`Error::Corrupt`]. The data area is mapped read-only here:
/// a subscriber cannot change what the others read.
///
/// The in-place receives trust the publisher not to write a message it
/// published, as the channel's do (see [`Receiver`](crate::Receiver)).
/// Under `Overwrite` a publisher that laps this subscriber does write it:
/// check [`InPlace::intact`] after using the bytes.
pub struct Subscriber {
    r: Reader,
    wait: Wait,
    policy: Policy,
    /// When a poll that found nothing last asked whether the publisher
    /// lives.
    look: Every,
    /// The publisher's death was seen; what it published is still read.
    publisher_gone: bool,
    /// Our own open file description of the control object: it holds our
    /// slot's lock.
    own: OwnedFd,
    // Declared last: dropped after `r`, whose area points into it.
    _mapped: Mapped,
}

impl Subscriber {
    /// Joins the broadcast behind `opened`: takes a slot, starts up to
    /// `history` messages back.
    pub(crate) fn join(opened: shm::Opened, wait: Wait, history: u64) -> Result<Subscriber, Error> {
        let area = opened.mapped.area();
        let kept = area.ring - 1;
        if history > kept {
            return Err(Error::HistoryTooLong {
                asked: history,
                kept,
            });
        }
        let slot = shm::take_slot(opened.own.as_fd(), area.slots_len)?;
        let policy = opened.mapped.policy;
        let r = Reader::join(area, slot, history, policy == Policy::Block)?;
        Ok(Subscriber {
            r,
            wait,
            policy,
            look: Every::default(),
            publisher_gone: false,
            own: opened.own,
            _mapped: opened.mapped,
        })
    }

    fn take(
        &mut self,
        sink: &mut Sink<'_>,
        how: How,
        timeout: Option<Duration>,
    ) -> Result<Got, Error> {
        let mut watch = Watcher::new(timeout, Some(self.own.as_fd()));
        loop {
            if let Some(got) = self.r.poll(sink)? {
                return Ok(got);
            }
            if self.r.closed() {
                // Every message published before the flag is visible now.
                return self.r.poll(sink)?.ok_or(Error::Closed);
            }
            if self.publisher_gone {
                return Err(Error::PeerGone);
            }
            // Nothing to read: undo any forgery of our slot before we wait.
            self.r.republish();
            let policy = match how {
                How::Try => {
                    if self.look.due(false) && !shm::publisher_alive(self.own.as_fd())? {
                        self.publisher_gone = true;
                        continue;
                    }
                    return Err(Error::Empty);
                }
                How::Wait(policy) => policy,
            };
            let area = *self.r.area();
            let bell = &area.control().bell.0;
            let r = &mut self.r;
            // Each look also undoes a forgery of our slot made while we
            // wait (two loads of our own line; see `Reader::republish`).
            let ready = &mut || {
                r.republish();
                Ok(r.ready())
            };
            match wake::wait_until(policy, bell, ready, &mut watch) {
                // Look once more for what it published before it died.
                Err(Error::PeerGone) => self.publisher_gone = true,
                // Waits shorter than `PEER_CHECK` never reach the watch's
                // look: a timed-out one looks as a poll does.
                Err(Error::Timeout) => {
                    if self.look.due(false) && !shm::publisher_alive(self.own.as_fd())? {
                        self.publisher_gone = true;
                        continue;
                    }
                    return Err(Error::Timeout);
                }
                Err(e) => return Err(e),
                Ok(()) => {}
            }
        }
    }

    fn take_vec(&mut self, how: How, timeout: Option<Duration>) -> Result<Vec<u8>, Error> {
        let mut v = Vec::new();
        self.take(&mut Sink::Vec(&mut v), how, timeout)?;
        Ok(v)
    }

    fn take_into(
        &mut self,
        buf: &mut [u8],
        how: How,
        timeout: Option<Duration>,
    ) -> Result<usize, Error> {
        match self.take(&mut Sink::Slice(buf), how, timeout)? {
            Got::Copied(n) | Got::Lent { len: n, .. } => Ok(n as usize),
        }
    }

    /// Receives the next message, waiting as long as it takes (but for the
    /// publisher's close or death).
    pub fn recv(&mut self) -> Result<Vec<u8>, Error> {
        self.take_vec(How::Wait(self.wait), None)
    }

    /// Receives the next message if one is there; [`Error::Empty`]
    /// otherwise. A poll that finds nothing also looks whether the
    /// publisher died (a system call, at most once per
    /// [`PEER_CHECK`](crate::PEER_CHECK)).
    pub fn try_recv(&mut self) -> Result<Vec<u8>, Error> {
        self.take_vec(How::Try, None)
    }

    /// [`recv`](Self::recv) that gives up with [`Error::Timeout`] after
    /// `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>, Error> {
        self.take_vec(How::Wait(self.wait), Some(timeout))
    }

    /// Receives the next message into `buf`, allocating nothing; returns
    /// its length. A message longer than `buf` stays queued and the call
    /// fails with [`Error::TooLarge`]. After an error, `buf` holds
    /// anything.
    pub fn recv_into(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        self.take_into(buf, How::Wait(self.wait), None)
    }

    /// [`recv_into`](Self::recv_into) that never waits: [`Error::Empty`].
    pub fn try_recv_into(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        self.take_into(buf, How::Try, None)
    }

    /// [`recv_into`](Self::recv_into) that gives up after `timeout`.
    pub fn recv_into_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, Error> {
        self.take_into(buf, How::Wait(self.wait), Some(timeout))
    }

    fn lend(&mut self, how: How, timeout: Option<Duration>) -> Result<InPlace<'_>, Error> {
        match self.take(&mut Sink::Lend, how, timeout)? {
            Got::Lent { m, len } => {
                let bytes = self.r.area().bytes(m, len);
                Ok(InPlace {
                    sub: self,
                    m,
                    bytes,
                })
            }
            Got::Copied(_) => unreachable!("a lending receive copies nothing"),
        }
    }

    /// Receives the next message in place: the [`InPlace`] guard derefs to
    /// its bytes in the ring (mapped read-only here); nothing is copied.
    /// Under [`Policy::Block`] the publisher does not reuse the entry
    /// until the guard is dropped; under [`Policy::Overwrite`] it may: see
    /// [`InPlace::intact`].
    pub fn recv_in_place(&mut self) -> Result<InPlace<'_>, Error> {
        self.lend(How::Wait(self.wait), None)
    }

    /// [`recv_in_place`](Self::recv_in_place) that never waits:
    /// [`Error::Empty`].
    pub fn try_recv_in_place(&mut self) -> Result<InPlace<'_>, Error> {
        self.lend(How::Try, None)
    }

    /// [`recv_in_place`](Self::recv_in_place) that gives up with
    /// [`Error::Timeout`] after `timeout`.
    pub fn recv_in_place_timeout(&mut self, timeout: Duration) -> Result<InPlace<'_>, Error> {
        self.lend(How::Wait(self.wait), Some(timeout))
    }

    /// The number of the next message this subscriber receives (messages
    /// are numbered from 0 in the order published).
    pub fn position(&self) -> u64 {
        self.r.next()
    }

    /// The policy the publisher chose.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Messages in the ring.
    pub fn capacity(&self) -> usize {
        self.r.area().ring as usize
    }

    /// The longest message the ring holds.
    pub fn max_message(&self) -> usize {
        self.r.area().max_message as usize
    }

    /// Whether a receive would find something now (a message, a lag, the
    /// close): one or two loads, no system call. For wait sets.
    #[allow(dead_code)] // the wait set's (issue 25, item 2)
    pub(crate) fn ready(&self) -> bool {
        self.r.ready()
    }

    /// The futex word every sleeping subscriber of this broadcast waits on.
    #[allow(dead_code)] // the wait set's (issue 25, item 2)
    pub(crate) fn bell_word(&self) -> &AtomicU32 {
        &self.r.area().control().bell.0
    }

    /// Says that this subscriber is about to sleep (see `wake::arm`):
    /// `Ok(None)`: something is there, do not sleep; `Ok(Some(word))`:
    /// sleep on [`bell_word`](Self::bell_word) while it holds `word`.
    #[allow(dead_code)] // the wait set's (issue 25, item 2)
    pub(crate) fn arm(&mut self) -> Result<Option<u32>, Error> {
        self.r.give_back();
        if self.publisher_gone {
            return Ok(None);
        }
        let r = &self.r;
        wake::arm(&r.area().control().bell.0, &mut || Ok(r.ready()))
    }

    /// Goes as a killed process goes: the slot is left active, and the
    /// slot's lock is released (with the descriptor and the mappings: a
    /// mapping holds the open file description, and with it the lock).
    #[cfg(test)]
    pub(super) fn vanish(self) {
        let me = std::mem::ManuallyDrop::new(self);
        // SAFETY: `me` is never used or dropped again, so the descriptor
        // and the mappings are read out once and dropped once; nothing
        // uses the reader's pointers after.
        unsafe {
            drop(std::ptr::read(&me.own));
            drop(std::ptr::read(&me._mapped));
        }
    }

    /// Whether the publisher died: one look at its lock (a wait set's look
    /// while it sleeps); if so, the next receives return what it published,
    /// then [`Error::PeerGone`].
    #[allow(dead_code)] // the wait set's (issue 25, item 2)
    pub(crate) fn publisher_dead(&mut self) -> Result<bool, Error> {
        if !self.publisher_gone && !shm::publisher_alive(self.own.as_fd())? {
            self.publisher_gone = true;
        }
        Ok(self.publisher_gone)
    }

    /// Leaves the broadcast (the same as dropping the subscriber): its slot
    /// is free for another, and the publisher stops waiting for it.
    pub fn close(self) {}
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.r.leave();
    }
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("policy", &self.policy)
            .field("position", &self.position())
            .finish_non_exhaustive()
    }
}

/// A message received in place by [`Subscriber::recv_in_place`]: derefs
/// to its bytes in the ring; the subscriber's cursor moves past it when
/// the guard is dropped (under [`Policy::Block`] the publisher waits for
/// that before it reuses the entry). Forgetting the guard is safe: the
/// next receive moves on.
///
/// [`Deref`] is the trusted mode: Rust promises that the bytes behind a
/// `&[u8]` do not change while it lives, which only a publisher that does
/// not write its published entries keeps (under `Overwrite`, one that laps
/// this subscriber does not). [`copy_to`](Self::copy_to) and
/// [`to_vec`](Self::to_vec) copy with raw pointers, and [`intact`](Self::intact)
/// says whether the entry still holds this message: a copy followed by
/// `intact() == true` is the message as published.
pub struct InPlace<'a> {
    sub: &'a mut Subscriber,
    m: u64,
    bytes: NonNull<[u8]>,
}

impl InPlace<'_> {
    /// Bytes in the message.
    #[allow(clippy::len_without_is_empty)] // `is_empty` comes with `Deref`
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the entry still holds this message (the seqlock's re-check:
    /// an Acquire fence and a load). Under [`Policy::Block`], always true
    /// with an honest publisher.
    pub fn intact(&self) -> bool {
        self.sub.r.intact(self.m)
    }

    /// The message's number (see [`Subscriber::position`]).
    pub fn number(&self) -> u64 {
        self.m
    }

    /// Copies the message to the start of `dst` with a raw copy that forms
    /// no reference to the shared bytes, and returns its length;
    /// [`Error::TooLarge`] if `dst` is shorter, [`Error::Lagged`]`(1)` if
    /// the publisher overwrote the entry (the copy is then not the
    /// message).
    pub fn copy_to(&self, dst: &mut [u8]) -> Result<usize, Error> {
        let len = self.len();
        if dst.len() < len {
            return Err(Error::TooLarge {
                len: len as u64,
                limit: dst.len() as u64,
            });
        }
        self.sub.r.area().copy_out(self.m, &mut dst[..len]);
        if !self.intact() {
            return Err(Error::Lagged(1));
        }
        Ok(len)
    }

    /// The message copied into a new `Vec`, as [`copy_to`](Self::copy_to).
    pub fn to_vec(&self) -> Result<Vec<u8>, Error> {
        let mut v = vec![0; self.len()];
        self.copy_to(&mut v)?;
        Ok(v)
    }
}

impl Deref for InPlace<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: the bytes lie in our read-only mapping of the data
        // object, which lives as long as the subscriber this guard
        // borrows; their length was checked against the entry's. That
        // they do not change while borrowed is the trust the in-place
        // receive places in the publisher (see the type's docs).
        unsafe { self.bytes.as_ref() }
    }
}

impl Drop for InPlace<'_> {
    fn drop(&mut self) {
        self.sub.r.give_back();
    }
}
