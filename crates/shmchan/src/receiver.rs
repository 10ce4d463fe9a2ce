//! The receiving end of a channel.

use std::ops::Deref;
use std::os::fd::{AsFd, BorrowedFd};
use std::ptr::NonNull;
use std::time::Duration;

use crate::bell::Bell;
use crate::consumer::{Consumer, Sink, Taken};
use crate::error::Error;
use crate::liveness::{PeerLook, Watcher};
use crate::options::DEFAULT_MAX_MESSAGE;
use crate::producer::How;
use crate::segment::Segment;
use crate::wait::Wait;

/// The receiving end of a channel: one per channel, in one process.
///
/// Messages arrive whole, in the order sent, each once. After the sender
/// closed its end, every message it sent is still received, then
/// [`Error::Closed`]. If the sender process dies, every message it had
/// fully sent is still received, then [`Error::PeerGone`]; a message it was
/// writing when it died is never delivered.
///
/// # Two ways to receive: a copy, or in place
///
/// The copying receives (`recv`, `recv_into`, ...) copy the message out
/// of the ring, once, into memory the caller owns ([`Receiver::recv_into`]
/// copies into the caller's buffer and allocates nothing). What the caller
/// then looks at is its own: a sender that changes the ring afterwards
/// changes nothing the caller sees. Use them when the sender is not
/// trusted.
///
/// The in-place receives ([`recv_in_place`](Receiver::recv_in_place) and
/// its `try_`/`_timeout` forms) copy nothing: they return an [`InPlace`]
/// guard that derefs to the message's bytes where they lie in the ring,
/// and the space is not reused until the guard is dropped. The length and
/// position are checked exactly as for a copy, so even a hostile sender
/// cannot make the guard reach outside the message or the mapping, and
/// this side maps the data area read-only, so it cannot write the
/// sender's memory. But the bytes themselves stay in memory the sender
/// can write: a sender that keeps writing a message after publishing it
/// (a bug, or hostility) breaks the guard's promise that the `&[u8]` does
/// not change while it is borrowed, so what the caller checked may differ
/// from what it then uses (a double fetch, the bug class of Xen XSA-155).
/// That is the trust iceoryx2's subscribers place in their publishers.
/// Use the in-place receives only with a sender you trust, or copy what
/// you check before you use it.
///
/// # Long messages
///
/// A message longer than [`max_message`](Receiver::max_message) (set
/// with [`Options::max_message`](crate::Options::max_message)) is refused
/// by every receive, before anything is allocated for it: the call fails
/// with [`Error::TooLarge`] once, the message's chunks are dropped as they
/// arrive, and the next receive returns the next message. Within the
/// limit, memory grows with the bytes that have arrived, never with the
/// length a sender announced, so a sender that announces a huge message
/// and sends nothing costs nothing, and a `*_timeout` receive still
/// returns at its timeout.
pub struct Receiver {
    pub(crate) core: Consumer,
    wait: Wait,
    /// Messages an in-place receive could not lend (see [`InPlace`]).
    stash: Vec<u8>,
    /// When a poll that found nothing last asked whether the sender lives.
    look: PeerLook,
    // Declared last: dropped after `core`, whose ring points into it.
    seg: Segment,
}

// SAFETY: as for `Sender`: the Receiver owns its mapping and descriptor,
// and `&mut self` keeps it single-consumer.
unsafe impl Send for Receiver {}

impl Receiver {
    pub(crate) fn new(seg: Segment, wait: Wait, bell: Option<Bell>) -> Receiver {
        let mut core = Consumer::with_bell(seg.ring(), bell);
        core.set_max_message(default_max_message(seg.capacity()));
        Receiver {
            core,
            wait,
            stash: Vec::new(),
            look: PeerLook::default(),
            seg,
        }
    }

    fn take(
        &mut self,
        sink: &mut Sink<'_>,
        how: How,
        timeout: Option<Duration>,
    ) -> Result<u64, Error> {
        let mut watch = Watcher::new(&self.seg, timeout);
        match self.core.recv(sink, how, &mut watch) {
            // A poll found nothing: is the sender dead? Then once more, to
            // deliver what it published before it died, then `PeerGone`.
            Err(Error::Empty) if self.look.gone(&self.seg)? => {
                self.core.peer_died();
                self.core.recv(sink, how, &mut watch)
            }
            other => other,
        }
    }

    /// The segment, for a wait set's look at the peer's lock.
    pub(crate) fn segment(&self) -> &Segment {
        &self.seg
    }

    /// The wait policy of this end (the typed and async ends').
    #[cfg(any(feature = "typed", feature = "tokio"))]
    pub(crate) fn wait(&self) -> Wait {
        self.wait
    }

    /// Receives the next message into `v` (the typed ends' buffer).
    #[cfg(feature = "typed")]
    pub(crate) fn take_into(
        &mut self,
        v: &mut Vec<u8>,
        how: How,
        timeout: Option<Duration>,
    ) -> Result<usize, Error> {
        self.take(&mut Sink::Vec(v), how, timeout)
            .map(|n| n as usize)
    }

    /// The longest message this end accepts: longer ones are refused with
    /// [`Error::TooLarge`] and skipped (see
    /// [the type's docs](Receiver#long-messages)).
    pub fn max_message(&self) -> usize {
        self.core.max_message() as usize
    }

    /// Sets [`max_message`](Self::max_message) (as
    /// [`Options::max_message`](crate::Options::max_message) does; at most
    /// `isize::MAX`).
    pub fn set_max_message(&mut self, bytes: usize) {
        self.core
            .set_max_message(bytes.min(isize::MAX as usize) as u64);
    }

    fn take_vec(&mut self, how: How, timeout: Option<Duration>) -> Result<Vec<u8>, Error> {
        let mut v = Vec::new();
        self.take(&mut Sink::Vec(&mut v), how, timeout)?;
        Ok(v)
    }

    /// Receives the next message, waiting as long as it takes (but for the
    /// sender's death or close).
    pub fn recv(&mut self) -> Result<Vec<u8>, Error> {
        self.take_vec(How::Wait(self.wait), None)
    }

    /// Receives the next message if it has arrived whole; [`Error::Empty`]
    /// otherwise. Part of a long message taken in the meantime is kept for
    /// the next call. A poll that finds nothing also looks whether the
    /// sender died (a system call, at most once per
    /// [`PEER_CHECK`](crate::PEER_CHECK)): then, once every message it
    /// sent has been received, [`Error::PeerGone`].
    pub fn try_recv(&mut self) -> Result<Vec<u8>, Error> {
        self.take_vec(How::Try, None)
    }

    /// Like [`recv`](Self::recv), but gives up with [`Error::Timeout`] after
    /// `timeout`. Part of a long message taken in the meantime is kept for
    /// the next call.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>, Error> {
        self.take_vec(How::Wait(self.wait), Some(timeout))
    }

    /// Receives the next message into `v` (cleared first), reusing its
    /// allocation; returns the message's length.
    pub fn recv_vec(&mut self, v: &mut Vec<u8>, timeout: Option<Duration>) -> Result<usize, Error> {
        // Cleared whatever follows (a refused message puts nothing in it).
        v.clear();
        let how = How::Wait(self.wait);
        self.take(&mut Sink::Vec(v), how, timeout)
            .map(|n| n as usize)
    }

    /// Receives the next message into `buf`, allocating nothing; returns
    /// its length. A message longer than `buf` stays queued and the call
    /// fails with [`Error::TooLarge`] (whose `len` says how much room it
    /// needs).
    #[inline]
    pub fn recv_into(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let how = How::Wait(self.wait);
        self.take(&mut Sink::Slice(buf), how, None)
            .map(|n| n as usize)
    }

    /// [`recv_into`](Self::recv_into) that gives up after `timeout`.
    pub fn recv_into_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, Error> {
        let how = How::Wait(self.wait);
        self.take(&mut Sink::Slice(buf), how, Some(timeout))
            .map(|n| n as usize)
    }

    /// [`recv_into`](Self::recv_into) that never waits: [`Error::Empty`].
    pub fn try_recv_into(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        self.take(&mut Sink::Slice(buf), How::Try, None)
            .map(|n| n as usize)
    }

    fn lend(&mut self, how: How, timeout: Option<Duration>) -> Result<InPlace<'_>, Error> {
        let bytes = self.lend_raw(how, timeout)?;
        Ok(InPlace { rx: self, bytes })
    }

    /// Takes the next message for an [`InPlace`] guard, which the caller
    /// makes with [`InPlace::new`]: the message in the ring, or `None`
    /// when it was copied into `stash`. Borrows nothing, so that an async
    /// caller can try again in a loop.
    pub(crate) fn lend_raw(
        &mut self,
        how: How,
        timeout: Option<Duration>,
    ) -> Result<Option<NonNull<[u8]>>, Error> {
        let mut watch = Watcher::new(&self.seg, timeout);
        let sink = &mut Sink::Lend(&mut self.stash);
        let taken = match self.core.take(sink, how, &mut watch) {
            // As in `take`: a poll that found nothing looks at the sender.
            Err(Error::Empty) if self.look.gone(&self.seg)? => {
                self.core.peer_died();
                self.core.take(sink, how, &mut watch)?
            }
            other => other?,
        };
        Ok(match taken {
            Taken::Lent { pos, len } => {
                let bytes = self.core.ring().contiguous(pos, len);
                Some(bytes.expect("a message is lent only where it lies in one piece"))
            }
            Taken::Copied(_) => None,
        })
    }

    /// Receives the next message in place, waiting as long as it takes (but
    /// for the sender's death or close): the [`InPlace`] guard derefs to
    /// the message's bytes in the ring, and its space is given back when
    /// the guard is dropped. Nothing is copied for a message that lies in
    /// one piece (any message sent with [`Sender::loan`](crate::Sender::loan),
    /// and any shorter than a quarter of the ring); a longer one arrives
    /// in rounds and is copied into a buffer of the receiver's
    /// ([`InPlace::in_place`] says which). Trusts the sender: see
    /// [the type's docs](Receiver#two-ways-to-receive-a-copy-or-in-place).
    #[inline]
    pub fn recv_in_place(&mut self) -> Result<InPlace<'_>, Error> {
        self.lend(How::Wait(self.wait), None)
    }

    /// [`recv_in_place`](Self::recv_in_place) that never waits:
    /// [`Error::Empty`]. Part of a long message taken in the meantime is
    /// kept for the next call.
    pub fn try_recv_in_place(&mut self) -> Result<InPlace<'_>, Error> {
        self.lend(How::Try, None)
    }

    /// [`recv_in_place`](Self::recv_in_place) that gives up with
    /// [`Error::Timeout`] after `timeout`.
    pub fn recv_in_place_timeout(&mut self, timeout: Duration) -> Result<InPlace<'_>, Error> {
        self.lend(How::Wait(self.wait), Some(timeout))
    }

    /// Chunks received so far: one per message, more for messages longer
    /// than a quarter of the ring.
    pub fn chunks(&self) -> u64 {
        self.core.records()
    }

    /// Bytes in the ring.
    pub fn capacity(&self) -> usize {
        self.seg.capacity() as usize
    }

    /// The segment's name, if it was made or opened by name (it is removed
    /// from `/dev/shm` once both sides are attached).
    pub fn name(&self) -> Option<&str> {
        self.seg.name()
    }

    /// Closes the channel (the same as dropping the receiver): the sender's
    /// next call fails with [`Error::Closed`].
    pub fn close(self) {}
}

/// The limit a receiver gets unless told otherwise:
/// [`DEFAULT_MAX_MESSAGE`], or the ring's capacity if that is larger (a
/// loan can fill the ring; an end that maps that much expects as much).
fn default_max_message(capacity: u64) -> u64 {
    capacity.max(DEFAULT_MAX_MESSAGE as u64)
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.core.close();
    }
}

/// The segment's descriptor, to pass to the peer with
/// [`send_fd`](crate::send_fd) (anonymous segments only).
impl AsFd for Receiver {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.seg.fd()
    }
}

/// A message received in place by [`Receiver::recv_in_place`]: derefs to
/// its bytes, which stay in the ring, and hands their space back to the
/// sender when dropped. While it lives the receiver cannot receive (it is
/// borrowed), and the sender cannot reuse the space.
///
/// A message that does not lie in one piece in the ring (one longer than
/// a quarter of it, which the sender sends in rounds, or one a foreign
/// sender let wrap around the end) cannot be lent: it is copied into a
/// buffer of the receiver's (reused from call to call), and
/// [`in_place`](Self::in_place) is false. Either way the guard holds one
/// whole message, checked as every message is.
///
/// The bytes are the sender's memory, mapped read-only here: see
/// [`Receiver`] for what a sender that writes them after publishing can
/// do. Forgetting the guard (`mem::forget`) is safe: the next receive
/// hands the space back.
///
/// # Trusted and hostile-safe access
///
/// - [`Deref`] to `&[u8]` is the trusted mode (as iceoryx2's samples):
///   Rust promises that the bytes behind a `&[u8]` do not change while it
///   lives, and a sender that writes them breaks that promise.
/// - [`copy_to`](Self::copy_to) and [`to_vec`](Self::to_vec) copy the
///   message out with raw pointers and never form a reference to the
///   shared bytes: a hostile sender can change what is copied (as with the
///   copying receives, the copy is then what you check), but no promise
///   this process relies on.
pub struct InPlace<'a> {
    rx: &'a mut Receiver,
    /// The message in the ring; `None`: in `rx.stash`.
    bytes: Option<NonNull<[u8]>>,
}

impl<'a> InPlace<'a> {
    /// The guard of a message taken by [`Receiver::lend_raw`].
    #[cfg(feature = "tokio")]
    pub(crate) fn new(rx: &'a mut Receiver, bytes: Option<NonNull<[u8]>>) -> InPlace<'a> {
        InPlace { rx, bytes }
    }
}

impl InPlace<'_> {
    /// Whether the bytes are in the ring (nothing was copied) rather than
    /// in the receiver's buffer.
    pub fn in_place(&self) -> bool {
        self.bytes.is_some()
    }

    /// Bytes in the message.
    #[allow(clippy::len_without_is_empty)] // `is_empty` comes with `Deref`
    pub fn len(&self) -> usize {
        match self.bytes {
            Some(bytes) => bytes.len(),
            None => self.rx.stash.len(),
        }
    }

    /// Copies the message to the start of `dst` and returns its length,
    /// with a raw copy that forms no reference to the shared bytes
    /// (hostile-safe: see [the type's docs](InPlace#trusted-and-hostile-safe-access)).
    /// Fails with [`Error::TooLarge`] (nothing copied) if `dst` is
    /// shorter than the message.
    pub fn copy_to(&self, dst: &mut [u8]) -> Result<usize, Error> {
        let len = self.len();
        if dst.len() < len {
            return Err(Error::TooLarge {
                len: len as u64,
                limit: dst.len() as u64,
            });
        }
        self.copy_raw(dst.as_mut_ptr());
        Ok(len)
    }

    /// The message copied into a new `Vec`, hostile-safe as
    /// [`copy_to`](Self::copy_to).
    pub fn to_vec(&self) -> Vec<u8> {
        let len = self.len();
        let mut v = Vec::with_capacity(len);
        self.copy_raw(v.as_mut_ptr());
        // SAFETY: `copy_raw` initialised the first `len` bytes, within the
        // capacity.
        unsafe { v.set_len(len) };
        v
    }

    /// Copies the message's `len()` bytes to `dst`, which has room for
    /// them and is private memory.
    fn copy_raw(&self, dst: *mut u8) {
        match self.bytes {
            // SAFETY: the source lies within the data area of our mapping,
            // alive for our lifetime (see `deref`), and is read without a
            // reference being formed: a sender writing it concurrently
            // only changes the bytes copied, which the caller looks at in
            // its private copy. `dst` has room for `len` bytes (callers)
            // and is not in the mapping.
            Some(bytes) => unsafe {
                std::ptr::copy_nonoverlapping(bytes.cast::<u8>().as_ptr(), dst, bytes.len())
            },
            // SAFETY: the stash is this process's memory, `len` bytes
            // long; `dst` has room for them and is distinct from it.
            None => unsafe {
                std::ptr::copy_nonoverlapping(self.rx.stash.as_ptr(), dst, self.rx.stash.len())
            },
        }
    }
}

/// The trusted mode: see [`InPlace`].
impl Deref for InPlace<'_> {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        match self.bytes {
            // SAFETY: the slice lies within the data area of our mapping
            // (its position and length were checked against the sender's
            // published `tail` and the capacity), which lives as long as
            // `self.rx`, borrowed for our lifetime. Nobody in this process
            // writes it (mapped read-only here), the producer does not
            // reuse it before `give_back` (our `head` stays before it), and
            // an honest sender does not write a message it published: the
            // bytes do not change while the borrow lasts. A sender that
            // does is outside that contract (see `Receiver`'s docs).
            Some(bytes) => unsafe { bytes.as_ref() },
            None => &self.rx.stash,
        }
    }
}

impl Drop for InPlace<'_> {
    #[inline]
    fn drop(&mut self) {
        self.rx.core.give_back();
    }
}

impl std::fmt::Debug for InPlace<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InPlace")
            .field("len", &self.len())
            .field("in_place", &self.in_place())
            .finish()
    }
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("name", &self.seg.name())
            .field("capacity", &self.seg.capacity())
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}
