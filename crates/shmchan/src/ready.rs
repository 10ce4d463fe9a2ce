//! Waiting for a channel in an event loop: each end of a channel made
//! through a connection has a descriptor that becomes readable when the
//! peer published (after this side said it waits, with `arm`) or when the
//! peer is gone; [`wait_any`] waits on several receivers at once.
//!
//! A busy channel still makes no system call: the peer rings the bell
//! only when this side armed it, once per arming (see `wait.rs`).

use std::io;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};

use crate::error::Error;
use crate::producer::Producer;
use crate::receiver::Receiver;
use crate::sender::Sender;
use crate::wait::Wait;
use crate::waitset::{Backend, Ends, Engine, FUTEX_WAITV_MAX, Member};

pub(crate) fn no_bell() -> Error {
    Error::Io(io::Error::new(
        io::ErrorKind::Unsupported,
        "the channel has no bell to wait on: make it with a Listener and connect",
    ))
}

impl Receiver {
    /// The descriptor to wait on in an event loop (epoll, mio, `poll`):
    /// it becomes readable when a message may have arrived since
    /// [`arm`](Self::arm) returned `true`, and stays readable once the
    /// sender is gone. `None` for a channel not made through a connection
    /// (by name or by a passed memfd), which has no bell.
    pub fn ready_fd(&self) -> Option<BorrowedFd<'_>> {
        self.core.bell().map(|bell| bell.as_fd())
    }

    /// Says that this side is about to wait on [`ready_fd`](Self::ready_fd):
    /// returns `Ok(true)` when nothing is there, so the caller should wait
    /// until the descriptor is readable, then receive; `Ok(false)` when a
    /// message (or the close, or the sender's death) is already there, so
    /// the caller should receive at once. Reads what the sender rang, so
    /// call it before every wait, after a receive found
    /// [`Error::Empty`]:
    ///
    /// ```
    /// # fn main() -> Result<(), shmchan::Error> {
    /// use rustix::event::{PollFd, PollFlags, poll};
    /// use shmchan::Error;
    ///
    /// # let name = format!("shmchan-doc-arm-{}", std::process::id());
    /// # let listener = shmchan::Listener::bind_abstract(&name)?;
    /// # let peer = std::thread::spawn(move || -> Result<(), Error> {
    /// #     listener.accept()?.sender().send(b"rung")?;
    /// #     Ok(())
    /// # });
    /// # let mut conn = shmchan::connect_abstract(&name)?;
    /// # let rx = conn.receiver();
    /// // `rx`: the receiver of a connection; another process sends.
    /// let msg = loop {
    ///     match rx.try_recv() {
    ///         Err(Error::Empty) => {}
    ///         other => break other,
    ///     }
    ///     if rx.arm()? {
    ///         // Nothing there: wait until the bell rings (epoll, mio, ...).
    ///         let fd = rx.ready_fd().expect("a connection's end has a bell");
    ///         let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    ///         poll(&mut fds, None)?;
    ///     }
    /// };
    /// assert_eq!(msg?, b"rung");
    /// # peer.join().unwrap()?;
    /// # Ok(()) }
    /// ```
    ///
    /// A receive after `Ok(false)` may still find [`Error::Empty`] when
    /// only part of a long message has arrived: arm again. Fails when the
    /// channel has no bell (see [`ready_fd`](Self::ready_fd)).
    pub fn arm(&mut self) -> Result<bool, Error> {
        let bell = self.core.bell().ok_or_else(no_bell)?;
        if bell.drain() {
            // The sender's end is closed. A sender that closed set the
            // flag first (the next receive says `Closed`); one that did
            // not died: its messages are still received, then `PeerGone`.
            self.core.peer_died();
        }
        self.core.arm()
    }
}

impl Sender {
    /// The descriptor to wait on in an event loop: it becomes readable when
    /// the receiver may have made room since [`arm`](Self::arm) returned
    /// `true`, and stays readable once the receiver is gone. `None` for a
    /// channel not made through a connection.
    pub fn ready_fd(&self) -> Option<BorrowedFd<'_>> {
        self.core.bell().map(|bell| bell.as_fd())
    }

    /// Says that this side is about to wait on [`ready_fd`](Self::ready_fd)
    /// for room for a [`try_send`](Self::try_send) of `len` bytes: returns
    /// `Ok(true)` when there is none yet (wait until the descriptor is
    /// readable, then try again), `Ok(false)` when there is. A message that
    /// can never go at once (longer than the ring allows) fails with
    /// [`Error::TooLarge`]; a closed or dead receiver with
    /// [`Error::Closed`] or [`Error::PeerGone`].
    pub fn arm(&mut self, len: usize) -> Result<bool, Error> {
        let limit = self.core.max_try_send();
        if len as u64 > limit {
            return Err(Error::TooLarge {
                len: len as u64,
                limit,
            });
        }
        self.arm_room(self.core.try_need(len as u64))
    }

    /// Arms the bell to wait for `need` free bytes (see [`arm`](Self::arm)).
    fn arm_room(&mut self, need: u64) -> Result<bool, Error> {
        arm_producer(&mut self.core, need)
    }
}

/// Arms a producer's bell to wait for `need` free bytes: reads what was
/// rung (a hang-up: every later call fails), then `Producer::arm`.
pub(crate) fn arm_producer(core: &mut Producer, need: u64) -> Result<bool, Error> {
    let bell = core.bell().ok_or_else(no_bell)?;
    if bell.drain() {
        core.peer_hung_up();
    }
    core.arm(need)
}

/// Waits until one of `receivers` has something to receive (a message,
/// the close, its sender's death, or an error) and returns its index; the
/// lowest index wins when several have. [`Error::Timeout`] after `timeout`
/// (`None`: no limit). Every receiver must have a bell (made through a
/// connection), and there must be at least one. A closed or failed
/// receiver stays ready: take it out of the slice. As with [`Receiver::arm`], the receive that follows may
/// find only part of a long message: call `wait_any` again.
///
/// This is a [`WaitSet`](crate::WaitSet) over borrowed receivers, made
/// for one call: no system call while one is ready, one `futex_waitv`
/// otherwise; a sender's death is seen within
/// [`PEER_CHECK`](crate::PEER_CHECK). For many channels, or to wait
/// again and again, keep a `WaitSet`; in an event loop, register
/// [`WaitSet::ready_fd`](crate::WaitSet::ready_fd) (or each
/// [`Receiver::ready_fd`]).
pub fn wait_any(
    receivers: &mut [&mut Receiver],
    timeout: Option<Duration>,
) -> Result<usize, Error> {
    if receivers.is_empty() {
        return Err(Error::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "wait_any needs at least one receiver",
        )));
    }
    if receivers.iter().any(|rx| rx.ready_fd().is_none()) {
        return Err(no_bell());
    }
    if receivers.len() > FUTEX_WAITV_MAX {
        return wait_any_on_bells(receivers, timeout);
    }
    // A ready receiver (the lowest index) costs no system call.
    if let Some(i) = receivers
        .iter_mut()
        .position(|rx| Member::ready(&mut **rx, 0))
    {
        return Ok(i);
    }
    // Each bell is read before the sleep, as `wait_any` always did (its
    // `arm`): a sender that died hung its bell up, and its receiver is
    // ready now. The engine's own look at the peers comes only a
    // `PEER_CHECK` after its first wait, and this engine lives for one
    // call: without this, calls with timeouts shorter than that never
    // saw a dead sender.
    for rx in receivers.iter_mut() {
        Member::rung(&mut **rx);
    }
    // Sleeps at once, as `wait_any` always did (poll(2) on the bells).
    let mut engine = Engine::new(Backend::Futex, Wait::Block);
    let mut ready = Vec::new();
    engine.wait(&mut Borrowed(receivers), &mut ready, timeout)?;
    Ok(ready[0])
}

/// The receivers of a `wait_any`, as a wait set's ends.
struct Borrowed<'a, 'b>(&'a mut [&'b mut Receiver]);

impl Ends for Borrowed<'_, '_> {
    fn slots(&self) -> usize {
        self.0.len()
    }

    fn end(&mut self, i: usize) -> Option<(&mut dyn Member, usize)> {
        Some((&mut *self.0[i] as &mut dyn Member, 0))
    }
}

/// `wait_any` over more receivers than `futex_waitv` takes: the bells
/// under `poll(2)`.
fn wait_any_on_bells(
    receivers: &mut [&mut Receiver],
    timeout: Option<Duration>,
) -> Result<usize, Error> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        for (i, rx) in receivers.iter_mut().enumerate() {
            // A receiver whose arming fails (its memory is corrupt, say)
            // is returned too: its receive reports the error, and the
            // caller knows which channel to drop.
            if !matches!(rx.arm(), Ok(true)) {
                return Ok(i);
            }
        }
        let left = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return Err(Error::Timeout),
            },
            None => None,
        };
        let mut fds: Vec<PollFd<'_>> = receivers
            .iter()
            .map(|rx| PollFd::from_borrowed_fd(rx.ready_fd().expect("armed above"), PollFlags::IN))
            .collect();
        let left = left.map(|d| Timespec {
            tv_sec: d.as_secs().try_into().unwrap_or(i64::MAX),
            tv_nsec: d.subsec_nanos().into(),
        });
        match poll(&mut fds, left.as_ref()) {
            // Ready or not (a timeout is checked above): look again.
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}
