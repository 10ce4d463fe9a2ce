//! The listener's side of many handshakes at once: a client that is
//! silent, or slow, costs only its own deadline, never the next client's.
//!
//! [`Listener::accept`](crate::Listener::accept) keeps the handshakes in
//! progress (accepted, not yet done) and drives each one step at a time,
//! never waiting on any one client: the listening socket is non-blocking,
//! and every read and write of a handshake is `MSG_DONTWAIT`. One call
//! takes every client waiting (up to [`MAX_PENDING`] in progress), moves
//! each handshake whose message came one step further, and returns the
//! first handshake that ends: a [`Connection`], or the error of the one
//! client that failed (refused, broke the protocol, or passed its
//! deadline). No thread: a blocking `accept` waits on one descriptor, an
//! epoll instance that holds the listening socket, every socket in
//! progress and a timer armed for the earliest deadline; that descriptor
//! is the listener's [`AsFd`](std::os::fd::AsFd), so a poll loop that
//! waits on it and calls a non-blocking `accept` when it is readable sees
//! every step (a message on a socket in progress does not make the
//! listening socket readable, and a deadline passing makes nothing
//! readable at all: the epoll descriptor covers both).
//!
//! `accept` may be called from several threads at once: the handshakes in
//! progress are shared (one lock, held only for the steps, which never
//! wait), and every thread waits on the epoll descriptor.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, epoll};
use rustix::io::Errno;
use rustix::net::SocketFlags;
use rustix::time::{
    Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
    timerfd_settime,
};

use crate::connection::{Connection, Welcomed, admit, established, welcome};
use crate::error::Error;
use crate::handshake::{Credentials, Terms, Wire};

/// Handshakes in progress at most: past that, further clients wait in the
/// kernel's queue until one ends (each holds a socket and, once it said
/// hello, two rings, until its deadline).
pub(crate) const MAX_PENDING: usize = 64;

/// A listener's handshakes in progress, and what waits on them.
pub(crate) struct Acceptor {
    /// Level-triggered: the listening socket (while fewer than
    /// [`MAX_PENDING`] are in progress), every socket in progress, the
    /// timer.
    epoll: OwnedFd,
    /// `CLOCK_MONOTONIC`, armed for the earliest deadline in progress.
    timer: OwnedFd,
    state: Mutex<State>,
}

struct State {
    /// `set_nonblocking`: `accept` never waits.
    nonblocking: bool,
    pending: Vec<Pending>,
    /// Whether the listening socket is in the epoll set (it is left out
    /// while [`MAX_PENDING`] handshakes are in progress, so that a waiting
    /// client does not keep the descriptor readable with nothing to do).
    listening: bool,
}

/// One handshake in progress.
struct Pending {
    sock: OwnedFd,
    peer: Credentials,
    /// `None`: no deadline (`Duration::MAX`).
    deadline: Option<Instant>,
    /// `None`: waiting for the hello; then waiting for Ready.
    welcomed: Option<Welcomed>,
}

/// What the steps of a handshake came to: `None`, still in progress;
/// else it ended, with the connection or why not.
type Step = Option<Result<Connection, Error>>;

impl Acceptor {
    /// The acceptor of the listening socket `sock`, which it makes
    /// non-blocking.
    pub(crate) fn new(sock: &OwnedFd) -> Result<Acceptor, Error> {
        rustix::io::ioctl_fionbio(sock, true)?;
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let timer = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::CLOEXEC | TimerfdFlags::NONBLOCK,
        )?;
        let data = epoll::EventData::new_u64(0);
        epoll::add(&epoll, sock, data, epoll::EventFlags::IN)?;
        epoll::add(&epoll, &timer, data, epoll::EventFlags::IN)?;
        Ok(Acceptor {
            epoll,
            timer,
            state: Mutex::new(State {
                nonblocking: false,
                pending: Vec::new(),
                listening: true,
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A thread that panicked mid-step left at worst a handshake to
        // time out.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The epoll descriptor: readable when `accept` has something to do.
    pub(crate) fn as_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }

    pub(crate) fn set_nonblocking(&self, nonblocking: bool) {
        self.state().nonblocking = nonblocking;
    }

    /// See [`Listener::accept`](crate::Listener::accept).
    pub(crate) fn accept(&self, sock: &OwnedFd, terms: &Terms) -> Result<Connection, Error> {
        loop {
            {
                let mut st = self.state();
                let step = self.steps(&mut st, sock, terms);
                // Whatever happened, the timer and the listening socket's
                // place in the set follow what is left in progress.
                let tidied = self.tidy(&mut st, sock);
                match step {
                    Ok(Some(done)) => return done,
                    Err(e) => return Err(e),
                    Ok(None) => tidied?,
                }
                if st.nonblocking {
                    return Err(Error::Io(io::ErrorKind::WouldBlock.into()));
                }
            }
            // Outside the lock: other threads may step meanwhile.
            let mut fds = [PollFd::new(&self.epoll, PollFlags::IN)];
            match rustix::event::poll(&mut fds, None) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Every step that can be taken now, until a handshake ends: those in
    /// progress first (oldest first), then new clients. `Ok(None)`: none
    /// ended; `Err`: the listener itself failed (`accept(2)`).
    fn steps(
        &self,
        st: &mut State,
        sock: &OwnedFd,
        terms: &Terms,
    ) -> Result<Option<Result<Connection, Error>>, Error> {
        // The timer's expirations, read so that it is not readable until
        // it is armed and fires again.
        let mut ticks = [0u8; 8];
        let _ = rustix::io::read(&self.timer, &mut ticks);
        let mut i = 0;
        while i < st.pending.len() {
            match step(&mut st.pending[i], terms) {
                None => i += 1,
                Some(done) => {
                    self.forget(st.pending.remove(i));
                    return Ok(Some(done));
                }
            }
        }
        while st.pending.len() < MAX_PENDING {
            let client = match rustix::net::accept_with(sock, SocketFlags::CLOEXEC) {
                Ok(client) => client,
                Err(Errno::INTR | Errno::CONNABORTED) => continue,
                Err(Errno::AGAIN) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let peer = match admit(&client, terms) {
                Ok(peer) => peer,
                Err(e) => return Ok(Some(Err(e))),
            };
            let mut pending = Pending {
                sock: client,
                peer,
                deadline: Instant::now().checked_add(terms.timeout),
                welcomed: None,
            };
            // Its hello may be there already.
            if let Some(done) = step(&mut pending, terms) {
                return Ok(Some(done));
            }
            let data = epoll::EventData::new_u64(0);
            epoll::add(&self.epoll, &pending.sock, data, epoll::EventFlags::IN)?;
            st.pending.push(pending);
        }
        Ok(None)
    }

    /// Drops a handshake that ended from the epoll set. (Explicitly: a
    /// copy of its socket in a child forked meanwhile would keep it there,
    /// and keep the descriptor readable.)
    fn forget(&self, pending: Pending) {
        let _ = epoll::delete(&self.epoll, &pending.sock);
    }

    /// Arms the timer for the earliest deadline in progress (or disarms
    /// it), and keeps the listening socket in the epoll set only while
    /// there is room for another handshake.
    fn tidy(&self, st: &mut State, sock: &OwnedFd) -> Result<(), Error> {
        let earliest = st.pending.iter().filter_map(|p| p.deadline).min();
        let value = match earliest {
            None => Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            Some(deadline) => {
                // At least a nanosecond: zero would disarm it.
                let left = deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_nanos(1));
                Timespec {
                    tv_sec: left.as_secs().try_into().unwrap_or(i64::MAX),
                    tv_nsec: left.subsec_nanos().into(),
                }
            }
        };
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let spec = Itimerspec {
            it_interval: zero,
            it_value: value,
        };
        timerfd_settime(&self.timer, TimerfdTimerFlags::empty(), &spec)?;
        let room = st.pending.len() < MAX_PENDING;
        if room != st.listening {
            if room {
                let data = epoll::EventData::new_u64(0);
                epoll::add(&self.epoll, sock, data, epoll::EventFlags::IN)?;
            } else {
                epoll::delete(&self.epoll, sock)?;
            }
            st.listening = room;
        }
        Ok(())
    }
}

/// Takes every step of `p`'s handshake that can be taken now.
fn step(p: &mut Pending, terms: &Terms) -> Step {
    let wire = Wire::new(p.sock.as_fd(), terms.timeout);
    loop {
        if p.deadline.is_some_and(|d| Instant::now() >= d) {
            return Some(Err(Error::Handshake(format!(
                "the peer did not complete the handshake within {:?}",
                terms.timeout
            ))));
        }
        let got = match wire.recv_now(p.welcomed.is_none()) {
            Ok(None) => return None,
            Ok(Some(got)) => got,
            Err(e) => return Some(Err(e)),
        };
        match p.welcomed.take() {
            None => match welcome(&p.sock, got, terms) {
                // Its Ready may be there already.
                Ok(w) => p.welcomed = Some(w),
                Err(e) => return Some(Err(e)),
            },
            Some(w) => return Some(established(got, w, p.peer, terms)),
        }
    }
}
