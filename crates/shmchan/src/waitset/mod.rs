//! One thread waits on many channels: a [`WaitSet`] holds receivers,
//! senders waiting for room and (through the same interface) other ends,
//! and [`wait`](WaitSet::wait) returns the keys of those that are ready.
//!
//! # How it sleeps
//!
//! A wait first looks at every end (shared memory only: no system call
//! while any end is ready). When none is, it spins and yields as its
//! [`Wait`] policy says, then announces every end asleep (each end's odd
//! epoch, as a single channel's wait does, see `wait.rs`), runs one
//! SeqCst fence for all of them, looks once more, and sleeps in one
//! system call: `futex_waitv` over the ends' futex words
//! ([`Backend::Futex`], the default), or `epoll_wait` over their bells
//! ([`Backend::Epoll`]). A peer that publishes sees the odd epoch and
//! wakes it with one `FUTEX_WAKE` (or one byte on the bell): one sleep and
//! one wake-up per hand-off, whatever the number of ends. The crate's
//! README gives the measurements behind the default.
//!
//! For an event loop or an async runtime, [`ready_fd`](WaitSet::ready_fd)
//! is an epoll descriptor over the ends' bells, readable when one rang or
//! hung up, and [`arm`](WaitSet::arm) announces the ends on their bells
//! first, as [`Receiver::arm`] does for one end. With the feature `tokio`,
//! `AsyncWaitSet` (also `shmchan::tokio::AsyncWaitSet`) awaits it.
//!
//! # Dead peers
//!
//! An end whose peer died is returned ready, and its next call says
//! [`Error::PeerGone`] (a receiver's, once it has every message the dead
//! sender had fully sent): the set looks at every end's peer once per
//! [`PEER_CHECK`](crate::PEER_CHECK) (one system call per end, also
//! while ends are ready), and a bell that hangs up while the set sleeps
//! on the bells wakes it at once. An end that is closed, dead or broken
//! stays ready: take it out with [`remove`](WaitSet::remove).
//!
//! # Example
//!
//! ```
//! # fn main() -> Result<(), shmchan::Error> {
//! use std::time::Duration;
//! use shmchan::{Receiver, WaitSet};
//!
//! let name = format!("shmchan-doc-waitset-{}", std::process::id());
//! let listener = shmchan::Listener::bind_abstract(&name)?;
//! // Three clients (processes; here threads) send a request each and
//! // wait for the answer.
//! let clients: Vec<_> = (0..3u8)
//!     .map(|i| {
//!         let name = name.clone();
//!         std::thread::spawn(move || -> Result<Vec<u8>, shmchan::Error> {
//!             let mut conn = shmchan::connect_abstract(&name)?;
//!             conn.sender().send(&[i])?;
//!             conn.receiver().recv()
//!         })
//!     })
//!     .collect();
//! let mut set = WaitSet::new();
//! let mut replies = Vec::new();
//! for key in 0..3usize {
//!     let (tx, rx) = listener.accept()?.into_split();
//!     set.add(key, rx)?;
//!     replies.push(tx);
//! }
//! let mut ready = Vec::new();
//! let mut served = 0;
//! while served < 3 {
//!     set.wait(&mut ready, Some(Duration::from_secs(10)))?;
//!     for &key in &ready {
//!         let rx: &mut Receiver = set.receiver(key).expect("registered");
//!         match rx.try_recv() {
//!             Ok(req) => {
//!                 replies[key].send(&[req[0] + 10])?;
//!                 served += 1;
//!             }
//!             Err(e) if e.is_would_block() => {} // part of a long message
//!             // A client that got its answer and left: out of the set.
//!             Err(shmchan::Error::Closed) => drop(set.remove::<Receiver>(key)),
//!             Err(e) => return Err(e),
//!         }
//!     }
//! }
//! for (i, client) in clients.into_iter().enumerate() {
//!     assert_eq!(client.join().unwrap()?, [i as u8 + 10]);
//! }
//! # Ok(()) }
//! ```

#[cfg(feature = "tokio")]
mod async_set;
mod engine;
mod member;
mod sleep;

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Duration;

#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use async_set::AsyncWaitSet;
pub use engine::Backend;
pub(crate) use engine::{Ends, Engine};
#[allow(unused_imports)] // for the broadcast subscriber
pub(crate) use member::Member;
pub use member::Waitable;
#[allow(unused_imports)] // for the broadcast subscriber
pub(crate) use member::sealed;
pub use sleep::FUTEX_WAITV_MAX;

use crate::error::Error;
use crate::receiver::Receiver;
use crate::sender::Sender;
use crate::wait::Wait;

fn invalid(what: &str) -> Error {
    Error::Io(io::Error::new(io::ErrorKind::InvalidInput, what))
}

struct Slot<K> {
    key: K,
    end: Box<dyn Member>,
    /// For a sender: the length of the message it waits to send.
    room: usize,
}

struct Slots<'a, K>(&'a mut [Option<Slot<K>>]);

impl<K> Ends for Slots<'_, K> {
    fn slots(&self) -> usize {
        self.0.len()
    }

    fn end(&mut self, i: usize) -> Option<(&mut dyn Member, usize)> {
        self.0[i]
            .as_mut()
            .map(|slot| (&mut *slot.end as &mut dyn Member, slot.room))
    }
}

/// Waits on many ends at once; see [the module docs](self).
///
/// The set owns its ends, each under a key the caller chooses (a
/// connection number, an index: any `Copy + Eq` value, as mio's
/// `Token`), so one end cannot be registered twice; a key can't either.
/// Reach an end with [`receiver`](Self::receiver),
/// [`sender`](Self::sender) or [`get_mut`](Self::get_mut), and take it
/// back with [`remove`](Self::remove).
pub struct WaitSet<K> {
    slots: Vec<Option<Slot<K>>>,
    len: usize,
    engine: Engine,
    ready: Vec<usize>,
}

/// A registration that failed: why, and the end, given back.
pub struct AddError<E> {
    error: Error,
    end: E,
}

impl<E> AddError<E> {
    /// Why the end was refused.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The end, given back.
    pub fn into_end(self) -> E {
        self.end
    }

    /// Why, and the end.
    pub fn into_parts(self) -> (Error, E) {
        (self.error, self.end)
    }
}

impl<E> std::fmt::Debug for AddError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<E> std::fmt::Display for AddError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot add the end to the wait set: {}", self.error)
    }
}

impl<E> std::error::Error for AddError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl<E> From<AddError<E>> for Error {
    fn from(e: AddError<E>) -> Error {
        e.error
    }
}

impl<K: Copy + Eq> Default for WaitSet<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Copy + Eq> WaitSet<K> {
    /// An empty set that sleeps with `futex_waitv` ([`Backend::Futex`])
    /// and waits as [`Wait::default`] says.
    pub fn new() -> WaitSet<K> {
        Self::with_backend(Backend::Futex)
    }

    /// An empty set that sleeps as `backend` says.
    pub fn with_backend(backend: Backend) -> WaitSet<K> {
        WaitSet {
            slots: Vec::new(),
            len: 0,
            engine: Engine::new(backend, Wait::default()),
            ready: Vec::new(),
        }
    }

    /// How [`wait`](Self::wait) waits before it sleeps: [`Wait::Spin`]
    /// looks at the ends without pause, [`Wait::Block`] sleeps at once,
    /// [`Wait::Adaptive`]` { spin }` makes `spin` looks at an end in all
    /// (`spin / len()` rounds over the set), then yields a few times,
    /// then sleeps.
    pub fn policy(mut self, wait: Wait) -> WaitSet<K> {
        self.engine.policy = wait;
        self
    }

    /// How the set sleeps.
    pub fn backend(&self) -> Backend {
        self.engine.backend
    }

    /// The most ends the set holds: [`FUTEX_WAITV_MAX`] (128) for
    /// [`Backend::Futex`]; for [`Backend::Epoll`], as many as the process
    /// may have descriptors.
    pub fn limit(&self) -> usize {
        match self.engine.backend {
            Backend::Futex => FUTEX_WAITV_MAX,
            Backend::Epoll => usize::MAX,
        }
    }

    /// Registers `end` under `key`: a [`Receiver`] is ready when a
    /// message (or the close, or its sender's death) is there. Fails, and
    /// gives the end back, when `key` is taken, the set is full (see
    /// [`limit`](Self::limit)), or the set sleeps on bells
    /// ([`Backend::Epoll`]) and the end has none. An end added after an
    /// [`arm`](Self::arm) is waited on from the next one.
    // The end comes back by value on failure, as crossbeam's `SendError`
    // gives the message back: a large `Err`, on purpose.
    #[allow(clippy::result_large_err)]
    pub fn add<E: Waitable>(&mut self, key: K, end: E) -> Result<(), AddError<E>> {
        self.insert(key, end, 0)
    }

    /// Registers a sender that waits for room for a message of `len`
    /// bytes (sent with [`Sender::try_send`] or a loan of at most that
    /// once ready). Fails as [`add`](Self::add) does, and with
    /// [`Error::TooLarge`] when such a message can never go at once
    /// (longer than [`Sender::max_try_send`]).
    // The end comes back by value on failure, as crossbeam's `SendError`
    // gives the message back: a large `Err`, on purpose.
    #[allow(clippy::result_large_err)]
    pub fn add_sender(&mut self, key: K, tx: Sender, len: usize) -> Result<(), AddError<Sender>> {
        if let Err(error) = tx.check_room(len) {
            return Err(AddError { error, end: tx });
        }
        self.insert(key, tx, len)
    }

    /// Changes the room the sender under `key` waits for (see
    /// [`add_sender`](Self::add_sender)).
    pub fn set_room(&mut self, key: K, len: usize) -> Result<(), Error> {
        let slot = self
            .slot_mut(key)
            .ok_or_else(|| invalid("no end of the wait set has this key"))?;
        slot.end.check_room(len)?;
        slot.room = len;
        Ok(())
    }

    // The end comes back by value on failure, as crossbeam's `SendError`
    // gives the message back: a large `Err`, on purpose.
    #[allow(clippy::result_large_err)]
    fn insert<E: Waitable>(&mut self, key: K, end: E, room: usize) -> Result<(), AddError<E>> {
        let refuse = |error, end| Err(AddError { error, end });
        if self.contains(key) {
            return refuse(invalid("the key is already in the wait set"), end);
        }
        if self.len >= self.limit() {
            return refuse(
                invalid(
                    "the wait set is full: futex_waitv takes at most 128 words \
                     (use Backend::Epoll for more ends)",
                ),
                end,
            );
        }
        if self.engine.backend == Backend::Epoll && end.bell_fd().is_none() {
            return refuse(crate::ready::no_bell(), end);
        }
        let i = self
            .slots
            .iter()
            .position(Option::is_none)
            .unwrap_or(self.slots.len());
        if let (Some(poller), Some(bell)) = (&self.engine.poller, end.bell_fd()) {
            if let Err(error) = poller.add(bell, i) {
                return refuse(error, end);
            }
        }
        if i == self.slots.len() {
            self.slots.push(None);
        }
        self.slots[i] = Some(Slot {
            key,
            end: Box::new(end),
            room,
        });
        self.len += 1;
        Ok(())
    }

    fn slot_mut(&mut self, key: K) -> Option<&mut Slot<K>> {
        self.slots.iter_mut().flatten().find(|slot| slot.key == key)
    }

    /// Whether an end is registered under `key`.
    pub fn contains(&self, key: K) -> bool {
        self.slots.iter().flatten().any(|slot| slot.key == key)
    }

    /// Ends in the set.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set holds no end.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The keys of the set's ends.
    pub fn keys(&self) -> impl Iterator<Item = K> + '_ {
        self.slots.iter().flatten().map(|slot| slot.key)
    }

    /// The end under `key`, if there is one and it is an `E`.
    pub fn get_mut<E: Waitable>(&mut self, key: K) -> Option<&mut E> {
        self.slot_mut(key)?.end.as_any().downcast_mut()
    }

    /// The receiver under `key`, if there is one.
    pub fn receiver(&mut self, key: K) -> Option<&mut Receiver> {
        self.get_mut(key)
    }

    /// The sender under `key`, if there is one.
    pub fn sender(&mut self, key: K) -> Option<&mut Sender> {
        self.get_mut(key)
    }

    /// Takes the end under `key` out of the set, if there is one and it is
    /// an `E` (otherwise it stays).
    pub fn remove<E: Waitable>(&mut self, key: K) -> Option<E> {
        let i = self
            .slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|slot| slot.key == key))?;
        let slot = self.slots[i].as_mut().expect("found above");
        slot.end.as_any().downcast_mut::<E>()?;
        let mut slot = self.slots[i].take().expect("found above");
        if let (Some(poller), Some(bell)) = (&self.engine.poller, slot.end.bell_fd()) {
            poller.delete(bell);
        }
        // Its peer need not wake it any more.
        slot.end.finish();
        self.len -= 1;
        let any = slot.end.into_any();
        Some(*any.downcast::<E>().expect("checked above"))
    }

    /// Waits until at least one end is ready and puts their keys in
    /// `ready` (cleared first); returns how many. A receiver is ready when
    /// its next `try_recv` would not find [`Error::Empty`], a sender when
    /// its message fits or the call would fail at once. A ready receiver's
    /// receive may still find `Empty` when only part of a long message has
    /// arrived: wait again.
    ///
    /// Fails with [`Error::Timeout`] after `timeout` (`None`: no limit;
    /// `Some(ZERO)`: look once, as [`try_wait`](Self::try_wait) does but
    /// with `Timeout` when nothing is ready). An empty set with no
    /// timeout would wait for ever: that is an error at once.
    pub fn wait(&mut self, ready: &mut Vec<K>, timeout: Option<Duration>) -> Result<usize, Error> {
        ready.clear();
        if self.len == 0 {
            let Some(timeout) = timeout else {
                return Err(invalid(
                    "an empty wait set with no timeout would wait for ever",
                ));
            };
            std::thread::sleep(timeout);
            return Err(Error::Timeout);
        }
        let result = self
            .engine
            .wait(&mut Slots(&mut self.slots), &mut self.ready, timeout);
        self.keys_of_ready(ready);
        result.map(|()| ready.len())
    }

    /// Puts the keys of the ends ready now in `ready` (cleared first),
    /// never sleeping; returns how many (perhaps none).
    pub fn try_wait(&mut self, ready: &mut Vec<K>) -> Result<usize, Error> {
        ready.clear();
        self.engine
            .try_wait(&mut Slots(&mut self.slots), &mut self.ready)?;
        self.keys_of_ready(ready);
        Ok(ready.len())
    }

    fn keys_of_ready(&mut self, ready: &mut Vec<K>) {
        for &i in &self.ready {
            if let Some(slot) = &self.slots[i] {
                ready.push(slot.key);
            }
        }
        self.ready.clear();
    }

    /// How many times [`wait`](Self::wait) has slept so far (one system
    /// call each: `futex_waitv`, `futex_wait` or `epoll_wait`). A wait
    /// that finds an end ready makes none.
    pub fn sleeps(&self) -> u64 {
        self.engine.sleeps
    }

    /// The descriptor to wait on in an event loop (epoll, mio, tokio's
    /// `AsyncFd`): an epoll instance over the ends' bells, readable when
    /// one rang since [`arm`](Self::arm) returned `true`, or hung up.
    /// Every end must have a bell (made through a connection).
    pub fn ready_fd(&mut self) -> Result<BorrowedFd<'_>, Error> {
        self.engine.poller(&mut Slots(&mut self.slots), true)?;
        Ok(self.engine.poller.as_ref().expect("made above").fd())
    }

    /// Says that this thread is about to wait on
    /// [`ready_fd`](Self::ready_fd): `Ok(true)` when no end is ready (wait
    /// until the descriptor is readable, then [`try_wait`](Self::try_wait)),
    /// `Ok(false)` when one is (call `try_wait` at once). Reads what rang,
    /// so call it before every wait:
    ///
    /// ```no_run
    /// # fn f(set: &mut shmchan::WaitSet<usize>) -> Result<(), shmchan::Error> {
    /// use rustix::event::{PollFd, PollFlags, poll};
    /// let mut ready = Vec::new();
    /// loop {
    ///     if set.arm()? {
    ///         let fd = set.ready_fd()?;
    ///         poll(&mut [PollFd::new(&fd, PollFlags::IN)], None)?;
    ///     }
    ///     set.try_wait(&mut ready)?;
    ///     for &key in &ready { /* try_recv on set.receiver(key) */ }
    /// }
    /// # }
    /// ```
    pub fn arm(&mut self) -> Result<bool, Error> {
        self.engine
            .arm(&mut Slots(&mut self.slots), &mut self.ready)
    }
}

impl<K: std::fmt::Debug> std::fmt::Debug for WaitSet<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitSet")
            .field(
                "keys",
                &self
                    .slots
                    .iter()
                    .flatten()
                    .map(|s| &s.key)
                    .collect::<Vec<_>>(),
            )
            .field("backend", &self.engine.backend)
            .field("policy", &self.engine.policy)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Options;

    fn pair() -> (Sender, Receiver) {
        let opts = Options::new().capacity(4096);
        let fd = opts.create_anonymous().unwrap();
        let tx = opts.sender_from_fd(fd.try_clone().unwrap()).unwrap();
        (tx, opts.receiver_from_fd(fd).unwrap())
    }

    /// Without `futex_waitv` the set sleeps on epoll; ends without a bell
    /// cannot wake it, so it looks at them every millisecond: a wait
    /// still times out, and still finds what came.
    #[test]
    fn the_fallback_without_futex_waitv_waits_on_bell_less_ends() {
        let mut set = WaitSet::new().policy(Wait::Block);
        set.engine.pretend_no_waitv();
        let (mut tx0, rx0) = pair();
        let (_tx1, rx1) = pair();
        set.add(0u8, rx0).unwrap();
        set.add(1u8, rx1).unwrap();
        let mut ready = Vec::new();
        let short = Some(Duration::from_millis(5));
        assert!(matches!(set.wait(&mut ready, short), Err(Error::Timeout)));
        assert!(set.sleeps() >= 1, "the fallback never slept");
        assert!(set.engine.poller.is_some(), "no epoll instance made");
        tx0.send(b"late").unwrap();
        assert_eq!(set.wait(&mut ready, short).unwrap(), 1);
        assert_eq!(ready, [0]);
    }
}
