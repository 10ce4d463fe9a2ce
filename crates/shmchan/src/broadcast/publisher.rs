//! The publishing end of a broadcast.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
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
        let result = wait::wait_until(
            policy,
            me,
            &mut || {
                if every.due(true) {
                    reap(w, own)?;
                }
                Ok(w.room())
            },
            &mut watch,
        );
        self.reap.reset();
        result
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
    /// table, no system call.
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
