//! The receiving end of a channel.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use crate::consumer::{Consumer, Sink};
use crate::error::Error;
use crate::liveness::Watcher;
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
/// # Why there is no view into shared memory
///
/// Every receive copies the message out of the ring, once, into memory the
/// caller owns ([`Receiver::recv_into`] copies into the caller's buffer
/// and allocates nothing). A receive that handed out `&[u8]` into the ring
/// would let the sender change the bytes after the caller checked them and
/// before it used them (a double fetch, the bug class of Xen XSA-155): a
/// hostile peer could turn a validated length or command into another. Nor
/// could Rust promise anything about a `&[u8]` whose bytes change under
/// it. Copying once is the price of a receiver that trusts nothing in
/// shared memory; for large messages it is a single `memcpy` per byte,
/// which the ring's chunks overlap with the sender's writes.
pub struct Receiver {
    core: Consumer,
    wait: Wait,
    // Declared last: dropped after `core`, whose ring points into it.
    seg: Segment,
}

// SAFETY: as for `Sender`: the Receiver owns its mapping and descriptor,
// and `&mut self` keeps it single-consumer.
unsafe impl Send for Receiver {}

impl Receiver {
    pub(crate) fn new(seg: Segment, wait: Wait) -> Receiver {
        Receiver {
            core: Consumer::new(seg.ring()),
            wait,
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
        self.core.recv(sink, how, &mut watch)
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
    /// the next call.
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
        let how = How::Wait(self.wait);
        self.take(&mut Sink::Vec(v), how, timeout)
            .map(|n| n as usize)
    }

    /// Receives the next message into `buf`, allocating nothing; returns
    /// its length. A message longer than `buf` stays queued and the call
    /// fails with [`Error::TooLarge`] (whose `len` says how much room it
    /// needs).
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

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("name", &self.seg.name())
            .field("capacity", &self.seg.capacity())
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}
