//! Typed ends (feature `typed`): values of a serde type `T`, each sent as
//! one message in postcard's compact binary format.
//!
//! [`Sender<T>`] and [`Receiver<T>`] wrap the byte [`crate::Sender`] and
//! [`crate::Receiver`]: make the byte ends as usual (by name, or from a
//! passed descriptor), then wrap them with `new` or `From`. Both sides must
//! agree on `T`; nothing on the wire says what type it is.
//!
//! Each end reuses one buffer: the sender serialises into it, then copies
//! it into the ring; the receiver copies a message out of the ring into it
//! (once, so that a hostile sender cannot change the bytes while they are
//! decoded), then decodes from it. The buffer keeps the size of the
//! largest message so far. The receiver's buffer grows with the bytes that
//! arrive, never with a length the sender only announced, and a message
//! longer than the byte receiver's
//! [`max_message`](crate::Receiver::max_message) is refused
//! (`Error::Channel(TooLarge)`, once) and skipped, as for the byte ends.
//!
//! A message that does not decode as a `T` (garbage, a truncated message,
//! trailing bytes, a peer using another type) is [`Error::Decode`]; the
//! channel goes on with the next message. Decoding never panics, and
//! allocates at most what the message's own length bounds. One caveat: a
//! recursive type (a tree of `Box`es) is decoded by recursion, so a hostile
//! peer can nest it deep enough to overflow the stack; use flat types with
//! peers you do not trust.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::producer::How;

/// Why a typed call did not do what was asked.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The byte channel failed: [`Full`](crate::Error::Full),
    /// [`Empty`](crate::Error::Empty), [`Timeout`](crate::Error::Timeout),
    /// [`Closed`](crate::Error::Closed), [`PeerGone`](crate::Error::PeerGone)
    /// and so on, as for the byte ends.
    Channel(crate::Error),
    /// The value could not be serialised (its `Serialize` failed, or it is
    /// a sequence of unknown length). Nothing was sent.
    Encode(postcard::Error),
    /// The message received is not a valid `T`. It is consumed; the next
    /// call receives the next message.
    Decode(postcard::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Channel(e) => e.fmt(f),
            Error::Encode(e) => write!(f, "cannot encode the value: {e}"),
            Error::Decode(e) => write!(f, "the message does not decode: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Channel(e) => Some(e),
            Error::Encode(e) | Error::Decode(e) => Some(e),
        }
    }
}

impl From<crate::Error> for Error {
    fn from(e: crate::Error) -> Self {
        Error::Channel(e)
    }
}

/// The sending end of a typed channel: sends `&T` values.
///
/// The calls take the value by reference, so a failed `try_send` or
/// `send_timeout` has nothing to give back: call again with the same value.
pub struct Sender<T: ?Sized> {
    tx: crate::Sender,
    buf: Vec<u8>,
    _type: PhantomData<fn(&T)>,
}

impl<T: Serialize + ?Sized> Sender<T> {
    /// Wraps a byte sender.
    pub fn new(tx: crate::Sender) -> Self {
        Sender {
            tx,
            buf: Vec::new(),
            _type: PhantomData,
        }
    }

    /// Serialises `value` into the reused buffer.
    fn encode(&mut self, value: &T) -> Result<(), Error> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        // On failure the buffer is dropped; the next call starts a new one.
        self.buf = postcard::to_extend(value, buf).map_err(Error::Encode)?;
        Ok(())
    }

    /// Sends `value`, waiting for room as long as it takes: see
    /// [`crate::Sender::send`].
    pub fn send(&mut self, value: &T) -> Result<(), Error> {
        self.encode(value)?;
        Ok(self.tx.send(&self.buf)?)
    }

    /// Sends `value` if its message fits in the ring now;
    /// `Error::Channel(shmchan::Error::Full)` otherwise, or
    /// `Error::Channel(shmchan::Error::TooLarge { .. })` for a message that
    /// can never fit whole (see [`crate::Sender::try_send`]).
    pub fn try_send(&mut self, value: &T) -> Result<(), Error> {
        self.encode(value)?;
        match self.tx.try_send(&self.buf[..]) {
            Ok(()) => Ok(()),
            Err(crate::TrySendError::Full(_)) => Err(Error::Channel(crate::Error::Full)),
            Err(crate::TrySendError::Failed(e, _)) => Err(Error::Channel(e)),
        }
    }

    /// Like [`send`](Self::send), but gives up with
    /// `Error::Channel(shmchan::Error::Timeout)` after `timeout`; the
    /// receiver then never sees the value, not even in part.
    pub fn send_timeout(&mut self, value: &T, timeout: Duration) -> Result<(), Error> {
        self.encode(value)?;
        match self.tx.send_timeout(&self.buf[..], timeout) {
            Ok(()) => Ok(()),
            Err(crate::SendTimeoutError::Timeout(_)) => Err(Error::Channel(crate::Error::Timeout)),
            Err(crate::SendTimeoutError::Failed(e, _)) => Err(Error::Channel(e)),
        }
    }
}

impl<T: ?Sized> Sender<T> {
    /// The byte sender (its name, capacity, descriptor).
    pub fn get_ref(&self) -> &crate::Sender {
        &self.tx
    }

    /// Unwraps the byte sender.
    pub fn into_inner(self) -> crate::Sender {
        self.tx
    }
}

impl<T: Serialize + ?Sized> From<crate::Sender> for Sender<T> {
    fn from(tx: crate::Sender) -> Self {
        Sender::new(tx)
    }
}

impl<T: ?Sized> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("typed::Sender").field(&self.tx).finish()
    }
}

/// The receiving end of a typed channel: receives `T` values.
pub struct Receiver<T> {
    rx: crate::Receiver,
    /// The last message received; its allocation is reused.
    buf: Vec<u8>,
    _type: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Receiver<T> {
    /// Wraps a byte receiver.
    pub fn new(rx: crate::Receiver) -> Self {
        Receiver {
            rx,
            buf: Vec::new(),
            _type: PhantomData,
        }
    }

    /// Receives one message into the buffer and decodes it.
    fn take(&mut self, how: How, timeout: Option<Duration>) -> Result<T, Error> {
        let n = self.rx.take_into(&mut self.buf, how, timeout)?;
        let (value, rest) =
            postcard::take_from_bytes::<T>(&self.buf[..n]).map_err(Error::Decode)?;
        if !rest.is_empty() {
            // A valid `T` followed by more: not a message an honest peer sends.
            return Err(Error::Decode(postcard::Error::DeserializeBadEncoding));
        }
        Ok(value)
    }

    /// Receives the next value, waiting as long as it takes: see
    /// [`crate::Receiver::recv`].
    pub fn recv(&mut self) -> Result<T, Error> {
        self.take(How::Wait(self.rx.wait()), None)
    }

    /// Receives the next value if its message has arrived whole;
    /// `Error::Channel(shmchan::Error::Empty)` otherwise.
    pub fn try_recv(&mut self) -> Result<T, Error> {
        self.take(How::Try, None)
    }

    /// Like [`recv`](Self::recv), but gives up with
    /// `Error::Channel(shmchan::Error::Timeout)` after `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T, Error> {
        self.take(How::Wait(self.rx.wait()), Some(timeout))
    }
}

impl<T> Receiver<T> {
    /// The byte receiver (its name, capacity, descriptor).
    pub fn get_ref(&self) -> &crate::Receiver {
        &self.rx
    }

    /// Unwraps the byte receiver.
    pub fn into_inner(self) -> crate::Receiver {
        self.rx
    }
}

impl<T: DeserializeOwned> From<crate::Receiver> for Receiver<T> {
    fn from(rx: crate::Receiver) -> Self {
        Receiver::new(rx)
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("typed::Receiver").field(&self.rx).finish()
    }
}
