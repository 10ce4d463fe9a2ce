//! The errors of the channel, each naming the state it found.
//!
//! One [`Error`] for every call, rather than crossbeam-channel's error per
//! call (`SendError`, `TryRecvError`, `RecvTimeoutError`): a channel over
//! shared memory with a possibly hostile peer meets the same outcomes
//! everywhere (`Corrupt`, `PeerGone`, `Io`, `TooLarge`), and a type per
//! call would repeat them all. The calls that take a message by value
//! give it back ([`TrySendError`], [`SendTimeoutError`]); the predicates
//! ([`Error::is_disconnected`], [`Error::is_would_block`], ...) answer
//! the questions crossbeam's split answers with types.

use std::fmt;
use std::io;

/// Why a call on a channel did not do what was asked.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// No segment has this name.
    DoesNotExist,
    /// A segment of this name exists already (`O_EXCL`): someone else made
    /// it, or a name was used twice.
    AlreadyExists,
    /// The segment exists but its creator has not finished setting it up
    /// (its size or its version is still zero). Try again shortly.
    NotInitialised,
    /// The segment was made by another layout version of shmchan.
    VersionMismatch {
        /// The version in the segment's header.
        found: u32,
        /// The version this build of shmchan makes and reads.
        expected: u32,
    },
    /// The segment is not a shmchan segment, or its sizes do not add up.
    BadLayout(String),
    /// The segment is not safe to use: another user owns it, others may open
    /// it, a passed descriptor is not read-write, or it is not sealed
    /// against shrinking.
    Untrusted(String),
    /// This side of the channel has been attached before (each side attaches
    /// once), or another process holds it.
    Taken,
    /// A name that `shm_open` cannot take as one object.
    InvalidName(String),
    /// `try_send`: not enough free space now. (A message that can never
    /// fit whole is [`TooLarge`](Error::TooLarge) instead: use `send`.)
    Full,
    /// `try_recv`: no whole message has arrived (and the sender lives or
    /// closed nothing yet).
    Empty,
    /// The time given to a `*_timeout` call passed.
    Timeout,
    /// The peer closed its end: for the receiver, after every message sent
    /// before has been received.
    Closed,
    /// The peer process died (its lock on the segment was released by the
    /// kernel), without closing its end.
    PeerGone,
    /// A message does not fit. `len` is its length, `limit` what it had to
    /// fit in:
    /// - the caller's buffer (`recv_into`): the message stays queued for a
    ///   longer buffer;
    /// - the receiver's [`max_message`](crate::Receiver::max_message), or
    ///   memory (`limit` is then the bytes that could be held): the
    ///   message is skipped, the next receive returns the next one;
    /// - a loan ([`max_loan`](crate::Sender::max_loan)) or a `try_send`
    ///   ([`max_try_send`](crate::Sender::max_try_send)): it never fits
    ///   that way; nothing was sent.
    TooLarge {
        /// The message's length in bytes.
        len: u64,
        /// The most bytes it had to fit in.
        limit: u64,
    },
    /// The shared memory broke the protocol: an index, a length or a record
    /// that an honest peer never writes. The channel stays broken.
    Corrupt(&'static str),
    /// A system call failed.
    Io(io::Error),
    /// The peer on a rendezvous socket did not complete the handshake
    /// ([`Listener::accept`](crate::Listener::accept),
    /// [`connect`](crate::connect)): it sent something that is not the
    /// protocol (garbage, another protocol version, the wrong
    /// descriptors), said nothing within the handshake timeout, or closed
    /// the socket half-way. Says which.
    Handshake(String),
    /// [`remove`](crate::remove): a live process holds the channel (one
    /// of its ends is attached), so the name is not stale.
    InUse,
    /// A broadcast subscriber fell behind (under
    /// [`Policy::Overwrite`](crate::broadcast::Policy::Overwrite)) and lost
    /// this many messages: they were overwritten before it read them. The
    /// next receive returns the oldest message still in the ring. As
    /// tokio's `RecvError::Lagged`.
    Lagged(u64),
    /// A broadcast has this many subscriber slots, and every one is taken
    /// by a live subscriber.
    TooManySubscribers {
        /// The broadcast's subscriber slots.
        slots: u32,
    },
    /// A late subscriber asked for more older messages than the broadcast's
    /// ring keeps.
    HistoryTooLong {
        /// The messages asked for
        /// ([`broadcast::Options::history`](crate::broadcast::Options::history)).
        asked: u64,
        /// The most the ring keeps for a late joiner (its capacity less one).
        kept: u64,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::DoesNotExist => write!(f, "no shared-memory segment of that name"),
            Error::AlreadyExists => {
                write!(f, "a shared-memory segment of that name exists already")
            }
            Error::NotInitialised => write!(f, "the segment is not initialised yet"),
            Error::VersionMismatch { found, expected } => {
                write!(f, "segment layout version {found}, expected {expected}")
            }
            Error::BadLayout(what) => write!(f, "not a valid shmchan segment: {what}"),
            Error::Untrusted(what) => write!(f, "refusing an untrusted segment: {what}"),
            Error::Taken => write!(f, "this end of the channel is attached already"),
            Error::InvalidName(why) => write!(f, "invalid segment name: {why}"),
            Error::Full => write!(f, "the channel is full"),
            Error::Empty => write!(f, "no message has arrived"),
            Error::Timeout => write!(f, "timed out"),
            Error::Closed => write!(f, "the peer closed the channel"),
            Error::PeerGone => write!(f, "the peer process is gone"),
            Error::TooLarge { len, limit } => {
                write!(f, "a message of {len} bytes does not fit in {limit} bytes")
            }
            Error::Corrupt(what) => write!(f, "the shared memory is corrupt: {what}"),
            Error::Io(e) => write!(f, "{e}"),
            Error::Handshake(what) => write!(f, "rendezvous handshake failed: {what}"),
            Error::InUse => write!(f, "a live process holds the channel"),
            Error::Lagged(n) => write!(f, "fell behind the publisher: {n} messages lost"),
            Error::TooManySubscribers { slots } => {
                write!(f, "all {slots} subscriber slots of the broadcast are taken")
            }
            Error::HistoryTooLong { asked, kept } => write!(
                f,
                "a history of {asked} messages, but the ring keeps at most {kept}"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<rustix::io::Errno> for Error {
    fn from(e: rustix::io::Errno) -> Self {
        Error::Io(e.into())
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        use io::ErrorKind as K;
        let kind = match &e {
            Error::Io(_) => return e.into_io(),
            Error::DoesNotExist => K::NotFound,
            Error::AlreadyExists => K::AlreadyExists,
            Error::NotInitialised | Error::Full | Error::Empty => K::WouldBlock,
            Error::Timeout => K::TimedOut,
            Error::Closed | Error::PeerGone => K::BrokenPipe,
            Error::Untrusted(_) | Error::Taken => K::PermissionDenied,
            Error::InvalidName(_) | Error::TooLarge { .. } => K::InvalidInput,
            Error::VersionMismatch { .. } | Error::BadLayout(_) | Error::Corrupt(_) => {
                K::InvalidData
            }
            Error::Handshake(_) => K::ConnectionAborted,
            Error::InUse => K::ResourceBusy,
            Error::Lagged(_) => K::Other,
            Error::TooManySubscribers { .. } => K::ResourceBusy,
            Error::HistoryTooLong { .. } => K::InvalidInput,
        };
        io::Error::new(kind, e)
    }
}

impl Error {
    /// The peer is no longer there: it closed its end
    /// ([`Closed`](Error::Closed)) or died ([`PeerGone`](Error::PeerGone)).
    /// Every later call fails the same way.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, Error::Closed | Error::PeerGone)
    }

    /// A call that does not wait found nothing to do now
    /// ([`Full`](Error::Full), [`Empty`](Error::Empty)): try again later.
    pub fn is_would_block(&self) -> bool {
        matches!(self, Error::Full | Error::Empty)
    }

    /// A `*_timeout` call ran out of time ([`Timeout`](Error::Timeout)).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout)
    }

    /// The peer broke the protocol ([`Corrupt`](Error::Corrupt)): the
    /// channel stays broken.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Error::Corrupt(_))
    }

    fn into_io(self) -> io::Error {
        match self {
            Error::Io(e) => e,
            other => io::Error::other(other),
        }
    }
}

/// [`Sender::try_send`](crate::Sender::try_send) failed; the message comes
/// back.
#[derive(Debug)]
pub enum TrySendError<M> {
    /// Not enough free space now.
    Full(M),
    /// The channel is closed, the peer is gone, the memory is corrupt, or
    /// the message can never fit whole ([`Error::TooLarge`]).
    Failed(Error, M),
}

/// [`Sender::send_timeout`](crate::Sender::send_timeout) failed; the message
/// comes back. If part of a long message had gone out, the receiver drops
/// that part: the message was not sent.
#[derive(Debug)]
pub enum SendTimeoutError<M> {
    /// The time passed before the message was in the ring.
    Timeout(M),
    /// The channel is closed, the peer is gone, or the memory is corrupt.
    Failed(Error, M),
}

impl<M> TrySendError<M> {
    /// The message that was not sent.
    pub fn into_inner(self) -> M {
        match self {
            TrySendError::Full(m) | TrySendError::Failed(_, m) => m,
        }
    }

    /// Whether the ring had no room now (try again later).
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }

    /// Whether the receiver closed its end or died.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, TrySendError::Failed(e, _) if e.is_disconnected())
    }

    /// The error without the message ([`Error::Full`] for `Full`).
    pub fn into_error(self) -> Error {
        match self {
            TrySendError::Full(_) => Error::Full,
            TrySendError::Failed(e, _) => e,
        }
    }
}

impl<M> SendTimeoutError<M> {
    /// The message that was not sent.
    pub fn into_inner(self) -> M {
        match self {
            SendTimeoutError::Timeout(m) | SendTimeoutError::Failed(_, m) => m,
        }
    }

    /// Whether the time ran out before the message was in the ring.
    pub fn is_timeout(&self) -> bool {
        matches!(self, SendTimeoutError::Timeout(_))
    }

    /// Whether the receiver closed its end or died.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, SendTimeoutError::Failed(e, _) if e.is_disconnected())
    }

    /// The error without the message ([`Error::Timeout`] for `Timeout`).
    pub fn into_error(self) -> Error {
        match self {
            SendTimeoutError::Timeout(_) => Error::Timeout,
            SendTimeoutError::Failed(e, _) => e,
        }
    }
}

impl<M> fmt::Display for TrySendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => Error::Full.fmt(f),
            TrySendError::Failed(e, _) => e.fmt(f),
        }
    }
}

impl<M> fmt::Display for SendTimeoutError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => Error::Timeout.fmt(f),
            SendTimeoutError::Failed(e, _) => e.fmt(f),
        }
    }
}

impl<M: fmt::Debug> std::error::Error for TrySendError<M> {}
impl<M: fmt::Debug> std::error::Error for SendTimeoutError<M> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicates_sort_the_outcomes() {
        assert!(Error::Closed.is_disconnected() && Error::PeerGone.is_disconnected());
        assert!(!Error::Timeout.is_disconnected() && !Error::Corrupt("x").is_disconnected());
        assert!(Error::Full.is_would_block() && Error::Empty.is_would_block());
        assert!(!Error::Timeout.is_would_block() && Error::Timeout.is_timeout());
        assert!(Error::Corrupt("x").is_corrupt() && !Error::Closed.is_corrupt());
        let full = TrySendError::Full(7);
        assert!(full.is_full() && !full.is_disconnected());
        assert!(matches!(full.into_error(), Error::Full));
        let gone = TrySendError::Failed(Error::PeerGone, 7);
        assert!(gone.is_disconnected() && gone.into_inner() == 7);
        let late = SendTimeoutError::Timeout(8);
        assert!(late.is_timeout() && !late.is_disconnected());
        assert!(matches!(late.into_error(), Error::Timeout));
        let closed = SendTimeoutError::Failed(Error::Closed, 8);
        assert!(closed.is_disconnected() && closed.into_inner() == 8);
    }
}
