//! The publishing end of a broadcast.

use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::time::Duration;

use super::Policy;
use super::shm::{self, Mapped};
use super::watch::{Every, Watcher};
use super::writer::Writer;
use crate::error::Error;
use crate::producer::How;
use crate::wait::{self, Wait};

/// The publishing end of a broadcast: one per broadcast, any number of
/// [`Subscriber`](super::Subscriber)s (up to the slots it was made with).
///
/// A message is written once into the ring and published with one store,
/// whatever the number of subscribers; sleeping subscribers are woken with
/// one system call (none when nobody sleeps). Under
/// [`Policy::Block`] a publish waits while a live subscriber has not read
/// the message it would overwrite; under [`Policy::Overwrite`] it never
/// waits. See [the module](super).
///
/// Dropping the publisher closes the broadcast: every subscriber receives
/// what was published, then [`Error::Closed`]. If its process dies, they
/// receive what was published, then [`Error::PeerGone`].
pub struct Publisher {
    w: Writer,
    wait: Wait,
    policy: Policy,
    /// When the last look at the blocking subscribers' locks was.
    reap: Every,
    /// The descriptors subscribers get (`send_to`, `Listener`).
    share_control: OwnedFd,
    share_data: OwnedFd,
    /// Our own open file description of the control object: it holds
    /// byte 0's lock, which says that we live.
    own: OwnedFd,
    // Declared last: dropped after `w`, whose area points into it.
    _mapped: Mapped,
}

impl Publisher {
    pub(crate) fn new(made: shm::Made, wait: Wait) -> Publisher {
        let policy = made.mapped.policy;
        let w = Writer::new(made.mapped.area(), policy == Policy::Block);
        Publisher {
            w,
            wait,
            policy,
            reap: Every::default(),
            share_control: made.control,
            share_data: made.data,
            own: made.own,
            _mapped: made.mapped,
        }
    }

    /// Publishes `msg` to every subscriber. Under [`Policy::Block`], waits
    /// (as the [`Wait`] policy says) while a live subscriber still has to
    /// read the message that `msg` would overwrite; a subscriber that dies
    /// stops holding it back within [`PEER_CHECK`](crate::PEER_CHECK).
    /// A message longer than [`max_message`](Self::max_message) is
    /// [`Error::TooLarge`].
    pub fn send(&mut self, msg: &[u8]) -> Result<(), Error> {
        self.publish(msg, How::Wait(self.wait), None)
    }

    /// [`send`](Self::send) that never waits: [`Error::Full`] when a live
    /// subscriber holds the next entry back (under [`Policy::Block`]).
    pub fn try_send(&mut self, msg: &[u8]) -> Result<(), Error> {
        self.publish(msg, How::Try, None)
    }

    /// [`send`](Self::send) that gives up with [`Error::Timeout`] after
    /// `timeout` (a subscriber that never reads, under [`Policy::Block`]);
    /// nothing was published then.
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<(), Error> {
        self.publish(msg, How::Wait(self.wait), Some(timeout))
    }

    /// Lends the next entry of the ring for a message of `len` bytes,
    /// written in place (no copy): [`Loan::commit`] publishes it; a loan
    /// dropped without a commit publishes nothing. Waits for room as
    /// [`send`](Self::send) does; [`Error::TooLarge`] past
    /// [`max_message`](Self::max_message).
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_>, Error> {
        self.lend(len, How::Wait(self.wait), None)
    }

    /// [`loan`](Self::loan) that never waits: [`Error::Full`].
    pub fn try_loan(&mut self, len: usize) -> Result<Loan<'_>, Error> {
        self.lend(len, How::Try, None)
    }

    /// [`loan`](Self::loan) that gives up with [`Error::Timeout`] after
    /// `timeout`.
    pub fn loan_timeout(&mut self, len: usize, timeout: Duration) -> Result<Loan<'_>, Error> {
        self.lend(len, How::Wait(self.wait), Some(timeout))
    }

    fn lend(&mut self, len: usize, how: How, timeout: Option<Duration>) -> Result<Loan<'_>, Error> {
        let limit = self.w.area().max_message;
        if len as u64 > limit {
            return Err(Error::TooLarge {
                len: len as u64,
                limit,
            });
        }
        self.wait_room(how, timeout)?;
        let m = self.w.begin();
        let bytes = self.w.area().bytes(m, len as u64);
        Ok(Loan { p: self, bytes })
    }

    fn publish(&mut self, msg: &[u8], how: How, timeout: Option<Duration>) -> Result<(), Error> {
        let limit = self.w.area().max_message;
        let len = msg.len() as u64;
        if len > limit {
            return Err(Error::TooLarge { len, limit });
        }
        self.wait_room(how, timeout)?;
        self.w.write(len, &mut |area, m| area.copy_in(m, msg));
        Ok(())
    }

    fn wait_room(&mut self, how: How, timeout: Option<Duration>) -> Result<(), Error> {
        if self.w.room() {
            return Ok(());
        }
        // A dead subscriber must not cost a `Try` poll its answer for
        // ever: polls look at the blockers' locks too (rate-limited).
        if self.reap.due(true) {
            reap(&mut self.w, self.own.as_fd())?;
            if self.w.room() {
                return Ok(());
            }
        }
        let policy = match how {
            How::Try => return Err(Error::Full),
            How::Wait(policy) => policy,
        };
        let area = *self.w.area();
        let me = &area.control().publisher.0;
        let (w, own, every) = (&mut self.w, self.own.as_fd(), &mut self.reap);
        let mut watch = Watcher::new(timeout, None);
        wait::wait_until(
            policy,
            me,
            &mut || {
                if every.due(true) {
                    reap(w, own)?;
                }
                Ok(w.room())
            },
            &mut watch,
        )
        // Not reset after the wait: calls shorter than `PEER_CHECK` (a
        // `send_timeout` of a millisecond in a loop) must reach the look
        // too, at most once per `PEER_CHECK` whatever their number.
    }

    /// The longest message an entry of the ring holds.
    pub fn max_message(&self) -> usize {
        self.w.area().max_message as usize
    }

    /// Messages in the ring (a power of two): how far a subscriber may
    /// fall behind before the publisher waits (`Block`) or it loses
    /// messages (`Overwrite`).
    pub fn capacity(&self) -> usize {
        self.w.area().ring as usize
    }

    /// Subscriber slots: the most subscribers at once.
    pub fn max_subscribers(&self) -> usize {
        self.w.area().slots_len as usize
    }

    /// Subscribers now attached (not known dead): a look at the slot
    /// table, no system call. A subscriber that died is counted until a
    /// `Block` publisher that waited for it found it dead, or another
    /// subscriber took its slot.
    pub fn subscribers(&self) -> usize {
        self.w.active()
    }

    /// The policy for subscribers that fall behind.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Messages published so far.
    pub fn published(&self) -> u64 {
        self.w.published()
    }

    /// Passes the broadcast's two descriptors over a connected Unix socket
    /// (one `SCM_RIGHTS` message), for the peer's
    /// [`Options::recv_subscriber`](super::Options::recv_subscriber).
    pub fn send_to(&self, socket: impl AsFd) -> std::io::Result<()> {
        super::join::send_fds(socket.as_fd(), self.descriptors())
    }

    /// The descriptors a subscriber joins with: the control object (an
    /// open file description of its own, holding no lock) and the sealed
    /// data object.
    pub(crate) fn descriptors(&self) -> [BorrowedFd<'_>; 2] {
        [self.share_control.as_fd(), self.share_data.as_fd()]
    }

    /// The publisher's view of the memory (tests that play a hostile
    /// subscriber).
    #[cfg(test)]
    pub(super) fn area_for_tests(&self) -> super::area::Area {
        *self.w.area()
    }

    /// Full scans of the slot table so far (tests of the publish's cost).
    #[cfg(test)]
    pub(super) fn scans_for_tests(&self) -> u64 {
        self.w.scans
    }

    /// Closes the broadcast (the same as dropping the publisher).
    pub fn close(self) {}
}

/// Buries the subscribers that hold `w` back and whose lock is gone.
fn reap(w: &mut Writer, own: BorrowedFd<'_>) -> Result<(), Error> {
    for b in w.blockers() {
        if !shm::subscriber_alive(own, b.slot)? {
            w.bury(b);
        }
    }
    Ok(())
}

/// An entry of the ring lent by [`Publisher::loan`]: derefs to the
/// message's bytes where subscribers will read them; [`commit`](Self::commit)
/// publishes it. Dropped without a commit, nothing is published (the next
/// publish takes the same entry).
///
/// The bytes are shared memory that subscribers read: they may still be
/// copying out the message the entry held before (under
/// [`Policy::Overwrite`]); their stamp check drops such a copy, so what
/// the loan's writes can change is only what this publisher publishes.
pub struct Loan<'a> {
    p: &'a mut Publisher,
    bytes: NonNull<[u8]>,
}

impl Loan<'_> {
    /// Publishes the message to every subscriber.
    pub fn commit(self) {
        let len = self.bytes.len() as u64;
        self.p.w.commit(len);
    }
}

impl Deref for Loan<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: the entry's bytes, in our writable mapping, which the
        // publisher this loan borrows keeps alive; no other reference of
        // this process points into them while the loan lives (it borrows
        // the publisher mutably). Subscribers only read them.
        unsafe { self.bytes.as_ref() }
    }
}

impl DerefMut for Loan<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `deref`; `&mut self` makes this the only
        // reference, and the mapping is writable on the publisher's side.
        unsafe { self.bytes.as_mut() }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.w.close();
    }
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("policy", &self.policy)
            .field("capacity", &self.capacity())
            .field("max_message", &self.max_message())
            .field("published", &self.published())
            .finish_non_exhaustive()
    }
}
