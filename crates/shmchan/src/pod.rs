//! Zero-copy ends for plain-old-data values (feature `pod`): a value of a
//! type `T: bytemuck::Pod` is written in place in the ring and read where
//! it lies, with no serialisation and no copy.
//!
//! [`Sender<T>`] and [`Receiver<T>`] wrap the byte [`crate::Sender`] and
//! [`crate::Receiver`]. A message is the bytes of one `T`. The sender
//! loans room for a `T` in the ring ([`Sender::loan`]) and the caller
//! writes its fields there; the receiver's [`Receiver::recv`] returns a
//! guard that derefs to `&T` in the ring, after checking that the message
//! is exactly `size_of::<T>()` bytes and suitably aligned (records start
//! on 16-byte boundaries, so any `T` aligned to 16 or less is).
//!
//! [`Pod`] is what makes this sound for any bytes: every bit pattern is a
//! valid `T` and `T` has no padding, so whatever the sender wrote, or
//! whatever was in the ring before, is a `T`. The receive is the in-place
//! one ([`crate::Receiver::recv_in_place`]) and trusts the sender in the
//! same way: a sender that writes a value after sending it changes the
//! `T` under the receiver's `&T` (see [`crate::Receiver`]). With a sender
//! you do not trust, copy the value out (`*guard`) before looking at it.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use bytemuck::{Pod, Zeroable};
//! use shmchan::{Options, pod};
//!
//! #[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
//! #[repr(C)]
//! struct Tick {
//!     seq: u64,
//!     price: f64,
//!     size: u32,
//!     venue: u32,
//! }
//!
//! let opts = Options::new();
//! let fd = opts.create_anonymous()?;
//! // One end in each process (here both in one, for the example).
//! let mut tx = pod::Sender::<Tick>::new(opts.sender_from_fd(fd.try_clone()?)?);
//! let mut rx = pod::Receiver::<Tick>::new(opts.receiver_from_fd(fd)?);
//!
//! // Written in place: the fields go straight into the ring.
//! let mut loan = tx.loan()?;
//! *loan = Tick { seq: 1, price: 101.5, size: 300, venue: 7 };
//! loan.commit();
//! tx.send(&Tick { seq: 2, price: 101.25, size: 100, venue: 3 })?;
//!
//! // Read where it lies: `tick` derefs to `&Tick` in the ring.
//! let tick = rx.recv()?;
//! assert_eq!(tick.seq, 1);
//! assert_eq!(tick.price, 101.5);
//! drop(tick); // gives the space back to the sender
//! assert_eq!(*rx.recv()?, Tick { seq: 2, price: 101.25, size: 100, venue: 3 });
//! # Ok(()) }
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use bytemuck::Pod;

/// The alignment of every message's first byte in the ring.
const RING_ALIGN: usize = crate::layout::RECORD_HEADER as usize;

/// Why a call of a plain-old-data end did not do what was asked.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The byte channel failed (as for the byte ends).
    Channel(crate::Error),
    /// The message is not one `T`: its length is not `size_of::<T>()`, or
    /// (a foreign sender) it is not aligned for `T`. It is consumed; the
    /// next call receives the next message.
    Mismatch {
        /// The message's length in bytes.
        len: usize,
        /// `size_of::<T>()`.
        expected: usize,
        /// Whether the message's first byte is not aligned for `T`.
        misaligned: bool,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Channel(e) => e.fmt(f),
            Error::Mismatch {
                len,
                expected,
                misaligned: false,
            } => write!(f, "a message of {len} bytes, not one value of {expected}"),
            Error::Mismatch { len, .. } => {
                write!(f, "a message of {len} bytes not aligned for the type")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Channel(e) => Some(e),
            Error::Mismatch { .. } => None,
        }
    }
}

impl From<crate::Error> for Error {
    fn from(e: crate::Error) -> Self {
        Error::Channel(e)
    }
}

/// The sending end: values of `T`, each one message of `size_of::<T>()`
/// bytes written in place.
pub struct Sender<T> {
    tx: crate::Sender,
    _type: PhantomData<fn(T)>,
}

impl<T: Pod> Sender<T> {
    /// Wraps a byte sender.
    pub fn new(tx: crate::Sender) -> Self {
        const {
            assert!(
                align_of::<T>() <= RING_ALIGN,
                "shmchan::pod carries types aligned to 16 bytes or less"
            )
        };
        Sender {
            tx,
            _type: PhantomData,
        }
    }

    fn wrap(loan: crate::Loan<'_>) -> Loan<'_, T> {
        debug_assert_eq!(loan.as_ptr() as usize % RING_ALIGN, 0);
        Loan {
            bytes: loan,
            _type: PhantomData,
        }
    }

    /// Loans room for one `T` in the ring, waiting for it as long as it
    /// takes. Write the value through the [`Loan`] (it starts as whatever
    /// bytes the ring held: a valid `T`, but not a chosen one), then
    /// [`Loan::commit`] it; dropping the loan sends nothing.
    pub fn loan(&mut self) -> Result<Loan<'_, T>, crate::Error> {
        self.tx.loan(size_of::<T>()).map(Self::wrap)
    }

    /// [`loan`](Self::loan) that fails with [`crate::Error::Full`]
    /// instead of waiting.
    pub fn try_loan(&mut self) -> Result<Loan<'_, T>, crate::Error> {
        self.tx.try_loan(size_of::<T>()).map(Self::wrap)
    }

    /// Sends a copy of `value`, written straight into the ring.
    pub fn send(&mut self, value: &T) -> Result<(), crate::Error> {
        let mut loan = self.loan()?;
        *loan = *value;
        loan.commit();
        Ok(())
    }

    /// The byte sender.
    pub fn get_ref(&self) -> &crate::Sender {
        &self.tx
    }

    /// Unwraps the byte sender.
    pub fn into_inner(self) -> crate::Sender {
        self.tx
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("pod::Sender").field(&self.tx).finish()
    }
}

/// Room for one `T` in the ring: write it, then [`commit`](Self::commit).
pub struct Loan<'a, T> {
    bytes: crate::Loan<'a>,
    _type: PhantomData<&'a mut T>,
}

impl<T: Pod> Loan<'_, T> {
    /// Sends the value as one message.
    pub fn commit(self) {
        self.bytes.commit();
    }
}

impl<T: Pod> Deref for Loan<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // Size: the loan is `size_of::<T>()` bytes; alignment: records
        // start on 16-byte boundaries of a page-aligned area, and `new`
        // refuses types aligned to more. Any bytes are a `T` (`Pod`).
        bytemuck::from_bytes(&self.bytes)
    }
}

impl<T: Pod> DerefMut for Loan<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // As in `deref`.
        bytemuck::from_bytes_mut(&mut self.bytes)
    }
}

/// The receiving end: values of `T`, each read where it lies.
pub struct Receiver<T> {
    rx: crate::Receiver,
    _type: PhantomData<fn() -> T>,
}

impl<T: Pod> Receiver<T> {
    /// Wraps a byte receiver.
    pub fn new(rx: crate::Receiver) -> Self {
        Receiver {
            rx,
            _type: PhantomData,
        }
    }

    fn view(msg: crate::InPlace<'_>) -> Result<InPlace<'_, T>, Error> {
        let mismatch = |misaligned| Error::Mismatch {
            len: msg.len(),
            expected: size_of::<T>(),
            misaligned,
        };
        match bytemuck::try_from_bytes::<T>(&msg) {
            Ok(_) => Ok(InPlace {
                msg,
                _type: PhantomData,
            }),
            Err(bytemuck::PodCastError::TargetAlignmentGreaterAndInputNotAligned) => {
                Err(mismatch(true))
            }
            Err(_) => Err(mismatch(false)),
        }
    }

    /// Receives the next value in place, waiting as long as it takes (but
    /// for the sender's death or close); see
    /// [`crate::Receiver::recv_in_place`].
    pub fn recv(&mut self) -> Result<InPlace<'_, T>, Error> {
        Self::view(self.rx.recv_in_place()?)
    }

    /// [`recv`](Self::recv) that never waits:
    /// `Error::Channel(shmchan::Error::Empty)`.
    pub fn try_recv(&mut self) -> Result<InPlace<'_, T>, Error> {
        Self::view(self.rx.try_recv_in_place()?)
    }

    /// [`recv`](Self::recv) that gives up with
    /// `Error::Channel(shmchan::Error::Timeout)` after `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<InPlace<'_, T>, Error> {
        Self::view(self.rx.recv_in_place_timeout(timeout)?)
    }

    /// The byte receiver.
    pub fn get_ref(&self) -> &crate::Receiver {
        &self.rx
    }

    /// Unwraps the byte receiver.
    pub fn into_inner(self) -> crate::Receiver {
        self.rx
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("pod::Receiver").field(&self.rx).finish()
    }
}

/// One `T` received in place: derefs to it; dropping it gives its space
/// back to the sender. Its size and alignment were checked.
pub struct InPlace<'a, T> {
    msg: crate::InPlace<'a>,
    _type: PhantomData<&'a T>,
}

impl<T: Pod> Deref for InPlace<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // `view` checked size and alignment of these very bytes (which do
        // not move while the guard lives); any bytes are a `T` (`Pod`).
        bytemuck::from_bytes(&self.msg)
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for InPlace<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("pod::InPlace").field(&**self).finish()
    }
}
