//! The sending end of a channel.

use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use crate::bell::Bell;
use crate::error::{Error, SendTimeoutError, TrySendError};
use crate::liveness::{PeerLook, Watcher};
use crate::producer::{How, Producer};
use crate::segment::Segment;
use crate::wait::Wait;

/// The sending end of a channel: one per channel, in one process.
///
/// Dropping it closes the channel: the receiver gets every message sent
/// before, then [`Error::Closed`].
pub struct Sender {
    pub(crate) core: Producer,
    wait: Wait,
    /// When a poll that found no room last asked whether the receiver
    /// lives.
    look: PeerLook,
    // Declared last: dropped after `core`, whose ring points into it.
    seg: Segment,
}

// SAFETY: a Sender owns its mapping and descriptor; the raw pointers in
// `core` point into that mapping, which moves with it. Nothing in it is
// tied to a thread (`&mut self` keeps it single-producer).
unsafe impl Send for Sender {}

impl Sender {
    pub(crate) fn new(seg: Segment, wait: Wait, bell: Option<Bell>) -> Sender {
        Sender {
            core: Producer::with_bell(seg.ring(), bell),
            wait,
            look: PeerLook::default(),
            seg,
        }
    }

    fn run<T>(
        &mut self,
        how: How,
        timeout: Option<Duration>,
        f: impl FnOnce(&mut Producer, How, &mut Watcher<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut watch = Watcher::new(&self.seg, timeout);
        match f(&mut self.core, how, &mut watch) {
            // A poll found no room: is the receiver dead?
            Err(Error::Full) if self.look.gone(&self.seg)? => Err(Error::PeerGone),
            other => other,
        }
    }

    /// The segment, for a wait set's look at the peer's lock.
    pub(crate) fn segment(&self) -> &Segment {
        &self.seg
    }

    fn copy(&mut self, msg: &[u8], how: How, timeout: Option<Duration>) -> Result<(), Error> {
        let fill = &mut |off: usize, piece: &mut [u8]| {
            piece.copy_from_slice(&msg[off..off + piece.len()]);
        };
        self.run(how, timeout, |core, how, watch| {
            core.send(msg.len() as u64, fill, how, watch)
        })
    }

    /// Sends `msg`, waiting for room as long as it takes. A message larger
    /// than the ring goes through it in rounds: this call returns once the
    /// last round is in the ring.
    ///
    /// Fails with [`Error::Closed`] when the receiver closed its end, and
    /// with [`Error::PeerGone`] when the receiver died while this call
    /// waited for room. (A message that finds room is written even if the
    /// receiver is dead: finding out would cost a system call per message.)
    pub fn send(&mut self, msg: &[u8]) -> Result<(), Error> {
        self.copy(msg, How::Wait(self.wait), None)
    }

    /// Sends `msg` if all of it fits in the ring now; gives it back
    /// otherwise: [`TrySendError::Full`] when there is no room now.
    ///
    /// A message longer than [`max_try_send`](Self::max_try_send) (a little
    /// less than the capacity) can never fit whole: it fails at once with
    /// [`TrySendError::Failed`]`(`[`Error::TooLarge`]`, msg)`; send it with
    /// [`send`](Self::send), which sends it in rounds. A poll that finds
    /// no room also looks whether the receiver died (a system call, at most
    /// once per [`PEER_CHECK`](crate::PEER_CHECK)): then
    /// [`Error::PeerGone`].
    pub fn try_send<M: AsRef<[u8]>>(&mut self, msg: M) -> Result<(), TrySendError<M>> {
        match self.copy(msg.as_ref(), How::Try, None) {
            Ok(()) => Ok(()),
            Err(Error::Full) => Err(TrySendError::Full(msg)),
            Err(e) => Err(TrySendError::Failed(e, msg)),
        }
    }

    /// Like [`send`](Self::send), but gives up after `timeout` and gives
    /// the message back. If part of a long message was in the ring by then,
    /// the receiver drops that part: it never sees half a message.
    pub fn send_timeout<M: AsRef<[u8]>>(
        &mut self,
        msg: M,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError<M>> {
        match self.copy(msg.as_ref(), How::Wait(self.wait), Some(timeout)) {
            Ok(()) => Ok(()),
            Err(Error::Timeout) => Err(SendTimeoutError::Timeout(msg)),
            Err(e) => Err(SendTimeoutError::Failed(e, msg)),
        }
    }

    /// Sends a message of `len` bytes written in place: `fill(offset,
    /// piece)` is called for pieces of the ring that together cover the
    /// message once, in order. Nothing is copied; any length works (a long
    /// message goes in rounds, as with [`send`](Self::send)).
    pub fn send_with(
        &mut self,
        len: usize,
        mut fill: impl FnMut(usize, &mut [u8]),
    ) -> Result<(), Error> {
        let how = How::Wait(self.wait);
        self.run(how, None, |core, how, watch| {
            core.send(len as u64, &mut fill, how, watch)
        })
    }

    /// Lends `len` contiguous bytes of the ring, waiting for room: write
    /// the message into the [`Loan`], then [`Loan::commit`] it. Dropping
    /// the loan sends nothing. `len` is at most
    /// [`max_loan`](Self::max_loan); for longer messages use
    /// [`send_with`](Self::send_with).
    #[inline]
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_>, Error> {
        let how = How::Wait(self.wait);
        self.run(how, None, |core, how, watch| {
            core.loan(len as u64, how, watch)
        })?;
        Ok(Loan { sender: self, len })
    }

    /// Like [`loan`](Self::loan), but fails with [`Error::Full`] instead of
    /// waiting (or [`Error::PeerGone`], as [`try_send`](Self::try_send)
    /// finds out). Longer than [`max_loan`](Self::max_loan):
    /// [`Error::TooLarge`] at once.
    pub fn try_loan(&mut self, len: usize) -> Result<Loan<'_>, Error> {
        self.try_loan_step(len)?;
        Ok(Loan { sender: self, len })
    }

    /// The work of [`try_loan`](Self::try_loan), borrowing nothing after
    /// it returns (the async loan loops on it, then makes the guard with
    /// [`Loan::new`]). A `Full` may still have written an owed `Abort` or
    /// a `Pad`: the next try goes on from there.
    pub(crate) fn try_loan_step(&mut self, len: usize) -> Result<(), Error> {
        self.run(How::Try, None, |core, how, watch| {
            core.loan(len as u64, how, watch)
        })
        .map(|_| ())
    }

    /// How this end's blocking calls wait (the async ends').
    #[cfg(feature = "tokio")]
    pub(crate) fn wait(&self) -> Wait {
        self.wait
    }

    /// Bytes in the ring.
    pub fn capacity(&self) -> usize {
        self.seg.capacity() as usize
    }

    /// The longest [`loan`](Self::loan).
    pub fn max_loan(&self) -> usize {
        self.core.max_loan() as usize
    }

    /// The longest message [`try_send`](Self::try_send) can send: its
    /// chunks and their headers fill the empty ring (the capacity less 64
    /// bytes). Longer ones are [`Error::TooLarge`] for `try_send`; `send`
    /// and `send_timeout` take any length.
    pub fn max_try_send(&self) -> usize {
        self.core.max_try_send() as usize
    }

    /// The segment's name, if it was made or opened by name (it is removed
    /// from `/dev/shm` once both sides are attached).
    pub fn name(&self) -> Option<&str> {
        self.seg.name()
    }

    /// Closes the channel (the same as dropping the sender).
    pub fn close(self) {}
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.core.close();
    }
}

/// The segment's descriptor, to pass to the peer with
/// [`send_fd`](crate::send_fd) (anonymous segments only).
impl AsFd for Sender {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.seg.fd()
    }
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("name", &self.seg.name())
            .field("capacity", &self.seg.capacity())
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

/// Bytes of the ring lent by [`Sender::loan`]: write the message here, in
/// place, then [`commit`](Self::commit) it.
///
/// # Trusted and hostile-safe access
///
/// The bytes are shared memory: the receiver cannot see them before the
/// commit, but a hostile receiver could write them meanwhile. Two ways to
/// write them:
///
/// - [`Deref`]/[`DerefMut`] to `[u8]` (`loan.fill(0)`,
///   `loan.copy_from_slice(..)`, `&mut loan[..]` handed to an encoder):
///   the trusted mode, as iceoryx2's loans. Rust promises that the bytes
///   behind a `&mut [u8]` change only through it; a receiver that writes
///   them while the reference lives breaks that promise (formally
///   undefined behaviour, in practice what you read back may differ from
///   what you wrote). Use it with a receiver you trust (your own process
///   tree).
/// - [`write_at`](Self::write_at): copies with raw pointers and never
///   forms a reference to the shared bytes, so nothing a receiver does to
///   them can break a promise this process relies on: the hostile-safe
///   way. Do not read back what you wrote; keep your own copy.
pub struct Loan<'a> {
    sender: &'a mut Sender,
    len: usize,
}

impl<'a> Loan<'a> {
    /// The guard of a loan [`Sender::try_loan_step`] made.
    #[cfg(feature = "tokio")]
    pub(crate) fn new(sender: &'a mut Sender, len: usize) -> Loan<'a> {
        Loan { sender, len }
    }
}

impl Loan<'_> {
    /// Sends the loaned bytes as one message.
    #[inline]
    pub fn commit(self) {
        self.sender.core.commit(self.len as u64);
    }

    /// Bytes in the loan (the length of the message it becomes).
    #[allow(clippy::len_without_is_empty)] // `is_empty` comes with `Deref`
    pub fn len(&self) -> usize {
        self.len
    }

    /// Copies `src` into the loan at `offset`, with a raw copy that forms
    /// no reference to the shared bytes (hostile-safe: see
    /// [the type's docs](Loan#trusted-and-hostile-safe-access)). Fails
    /// with [`Error::TooLarge`] (nothing written) if `offset + src.len()`
    /// is beyond the loan.
    #[inline]
    pub fn write_at(&mut self, offset: usize, src: &[u8]) -> Result<(), Error> {
        let end = offset.checked_add(src.len()).filter(|&end| end <= self.len);
        if end.is_none() {
            return Err(Error::TooLarge {
                len: (offset as u64).saturating_add(src.len() as u64),
                limit: self.len as u64,
            });
        }
        let dst = self.sender.core.loaned(self.len as u64).cast::<u8>();
        // SAFETY: `offset + src.len() <= len`: within the loan, which lies
        // in our mapping (borrowed with the sender for our lifetime) and is
        // ours until the commit. `src` is this process's memory, so the two
        // do not overlap. No reference to the destination is formed, so a
        // receiver writing it concurrently only changes what is sent.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_ptr().add(offset), src.len());
        }
        Ok(())
    }
}

/// The trusted mode: see [`Loan`].
impl Deref for Loan<'_> {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: the loan lies in our mapping, which lives as long as the
        // sender, borrowed mutably for our lifetime: no other `Loan`, and
        // no `&mut` from `deref_mut` while this `&self` borrow lasts. Only
        // the receiver could write the bytes meanwhile, which an honest one
        // does not do before the commit (the trust this mode takes).
        unsafe { self.sender.core.loaned(self.len as u64).as_ref() }
    }
}

/// The trusted mode: see [`Loan`].
impl DerefMut for Loan<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference
        // this process holds to the bytes while it lives.
        unsafe { self.sender.core.loaned(self.len as u64).as_mut() }
    }
}
