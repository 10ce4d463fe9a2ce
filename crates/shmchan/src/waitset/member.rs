//! What an end must offer to join a [`WaitSet`](super::WaitSet): the
//! crate-private [`Member`] trait, and the public sealed [`Waitable`]
//! that names the ends a user may register. Receivers and senders are
//! members here; the broadcast subscriber implements the same trait in
//! its own module.

use std::any::Any;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;

use crate::error::Error;
use crate::receiver::Receiver;
use crate::sender::Sender;
use crate::sync::AtomicU32;
use crate::wait;

/// One end as a wait set sees it. Every method but [`peer_dead`] and
/// [`rung`] is free of system calls.
///
/// The protocol (see `wait.rs`): the set calls [`ready`] on every end; if
/// none is, it calls [`announce`] on every end, runs one SeqCst fence (the
/// partner of the fence each peer runs before it looks whether we sleep),
/// calls [`ready`] on every end again, and only if none is ready sleeps:
/// `futex_waitv` over the words [`announce`] returned, or epoll over the
/// bells. Then [`finish`] on every end it announced.
///
/// [`peer_dead`]: Member::peer_dead
/// [`rung`]: Member::rung
/// [`ready`]: Member::ready
/// [`announce`]: Member::announce
/// [`finish`]: Member::finish
pub(crate) trait Member: Any + Send {
    /// Whether the end's next `try_` call would not find `Empty` or `Full`:
    /// also true when it is closed, its peer is known gone or its memory
    /// broken (the call then says so). `room`: for a sender, the length of
    /// the message it waits to send; 0 for others.
    fn ready(&mut self, room: usize) -> bool;
    /// Says that this side is about to sleep (see `wait::announce`): the
    /// futex word the peer wakes, in shared memory, and the value to sleep
    /// on. `bell`: the peer must ring [`bell_fd`](Member::bell_fd) instead.
    fn announce(&mut self, bell: bool) -> (NonNull<AtomicU32>, u32);
    /// Ends the sleep [`announce`](Member::announce) began.
    fn finish(&mut self);
    /// The descriptor that becomes readable when the peer rings or hangs
    /// up; `None`: this end has no bell (it works with `wait`, not with
    /// the set's descriptor in an event loop).
    fn bell_fd(&self) -> Option<BorrowedFd<'_>>;
    /// The bell was reported readable: drain it; a hang-up marks the peer
    /// gone (a system call).
    fn rung(&mut self);
    /// Looks whether the peer died (a system call; the set calls it at
    /// most once per [`PEER_CHECK`](crate::PEER_CHECK) per end). `true`:
    /// it did, and the end now knows (its next call, after what the peer
    /// published, fails with [`Error::PeerGone`]).
    fn peer_dead(&mut self) -> Result<bool, Error>;
    /// Checks the room a sender is to wait for: `Err(TooLarge)` when a
    /// message of `room` bytes can never go at once.
    fn check_room(&self, room: usize) -> Result<(), Error> {
        let _ = room;
        Ok(())
    }
    /// For [`WaitSet::get_mut`](super::WaitSet::get_mut).
    fn as_any(&mut self) -> &mut dyn Any;
    /// For [`WaitSet::remove`](super::WaitSet::remove).
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

pub(crate) mod sealed {
    pub trait Sealed {}
}

/// An end that a [`WaitSet`](super::WaitSet) can wait on: a [`Receiver`]
/// (ready when a message, the close or the sender's death is there) or a
/// [`Sender`] (ready when there is room for the message it waits to
/// send, see [`WaitSet::add_sender`](super::WaitSet::add_sender)).
/// Sealed: only this crate's ends implement it.
#[allow(private_bounds)] // `Member` is the crate's business.
pub trait Waitable: sealed::Sealed + Member {}

impl sealed::Sealed for Receiver {}
impl Waitable for Receiver {}
impl sealed::Sealed for Sender {}
impl Waitable for Sender {}

/// The pointer and value [`Member::announce`] returns for `me`.
fn announce_on(me: &crate::layout::Waiter, bell: bool) -> (NonNull<AtomicU32>, u32) {
    let expected = wait::announce(me, bell);
    (NonNull::from(&me.wakes), expected)
}

impl Member for Receiver {
    fn ready(&mut self, _room: usize) -> bool {
        self.core.ready()
    }

    fn announce(&mut self, bell: bool) -> (NonNull<AtomicU32>, u32) {
        announce_on(self.core.waiter(), bell)
    }

    fn finish(&mut self) {
        wait::awake(self.core.waiter());
    }

    fn bell_fd(&self) -> Option<BorrowedFd<'_>> {
        self.ready_fd()
    }

    fn rung(&mut self) {
        if self.core.bell().is_some_and(|bell| bell.drain()) {
            // As in `Receiver::arm`: a sender that closed set its flag
            // first; one that did not died, and what it sent is still
            // received before `PeerGone`.
            self.core.peer_died();
        }
    }

    fn peer_dead(&mut self) -> Result<bool, Error> {
        let dead = self.segment().peer_gone()?;
        if dead {
            self.core.peer_died();
        }
        Ok(dead)
    }

    fn as_any(&mut self) -> &mut dyn Any {
        self
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

impl Member for Sender {
    fn ready(&mut self, room: usize) -> bool {
        let need = self.core.try_need(room as u64);
        self.core.ready(need)
    }

    fn announce(&mut self, bell: bool) -> (NonNull<AtomicU32>, u32) {
        announce_on(self.core.waiter(), bell)
    }

    fn finish(&mut self) {
        wait::awake(self.core.waiter());
    }

    fn bell_fd(&self) -> Option<BorrowedFd<'_>> {
        self.ready_fd()
    }

    fn rung(&mut self) {
        if self.core.bell().is_some_and(|bell| bell.drain()) {
            self.core.peer_hung_up();
        }
    }

    fn peer_dead(&mut self) -> Result<bool, Error> {
        let dead = self.segment().peer_gone()?;
        if dead {
            self.core.peer_hung_up();
        }
        Ok(dead)
    }

    fn check_room(&self, room: usize) -> Result<(), Error> {
        let limit = self.core.max_try_send();
        if room as u64 > limit {
            return Err(Error::TooLarge {
                len: room as u64,
                limit,
            });
        }
        Ok(())
    }

    fn as_any(&mut self) -> &mut dyn Any {
        self
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}
