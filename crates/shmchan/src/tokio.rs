//! Async ends for [tokio](https://docs.rs/tokio) (feature `tokio`):
//! [`AsyncSender`] and [`AsyncReceiver`] wrap the ends of a channel made
//! through a connection and wait on its bells with tokio's [`AsyncFd`].
//!
//! A message that is there is taken at once, with no system call, as by
//! the blocking ends. A side that finds nothing watches the peer's index
//! (one load a time) as many times as its [`Wait`] policy spins
//! (`Adaptive { spin }`: `spin` times; `Block`: not at all; `Spin`: the
//! default count, since an executor thread must not spin for ever), then
//! arms its bell and awaits it.
//!
//! The futures are cancel-safe: a receive dropped before it completes
//! takes no message (part of a long one stays for the next receive); a
//! send dropped half-way leaves nothing the receiver would see (the part
//! that went out is dropped, as for `send_timeout`). They are `Send`, so
//! a multi-threaded runtime can run them.

use std::os::fd::OwnedFd;

use ::tokio::io::Interest;
use ::tokio::io::unix::AsyncFd;

use crate::error::Error;
use crate::producer::How;
use crate::ready::{arm_producer, no_bell};
use crate::receiver::{InPlace, Receiver};
use crate::sender::{Loan, Sender};
use crate::wait::Wait;
pub use crate::waitset::AsyncWaitSet;

/// Registers a duplicate of the end's bell with the runtime.
fn register(fd: Option<std::os::fd::BorrowedFd<'_>>) -> Result<AsyncFd<OwnedFd>, Error> {
    let fd = fd.ok_or_else(no_bell)?;
    // Outside a runtime tokio would panic: say so instead.
    ::tokio::runtime::Handle::try_current().map_err(|e| {
        Error::Io(std::io::Error::other(format!(
            "shmchan's async ends must be made inside a tokio runtime: {e}"
        )))
    })?;
    let dup = rustix::io::fcntl_dupfd_cloexec(fd, 0)?;
    // Deprecated since tokio 1.54 for types whose descriptor may change
    // or close under the registration; an `OwnedFd` owned by the `AsyncFd`
    // cannot, and this works with every tokio 1.x.
    #[allow(deprecated)]
    Ok(AsyncFd::with_interest(dup, Interest::READABLE)?)
}

/// How long to spin (one load of the peer's index a time, see [`spin`])
/// before arming the bell, as the end's [`Wait`] policy spins before it
/// sleeps: `Block` arms at once; `Adaptive { spin }` spins `spin` times
/// first; `Spin` the default adaptive count, then arms (an executor thread
/// must not spin for ever).
fn tries(wait: Wait) -> u32 {
    match wait {
        Wait::Block => 0,
        Wait::Adaptive { spin } => spin,
        Wait::Spin => match Wait::default() {
            Wait::Adaptive { spin } => spin,
            _ => 0,
        },
    }
}

/// Spins up to `tries` times on `news` (one load each); whether it saw
/// any, so that the caller tries again rather than arming its bell.
fn spin(tries: u32, news: impl Fn() -> bool) -> bool {
    for _ in 0..tries {
        if news() {
            return true;
        }
        std::hint::spin_loop();
    }
    false
}

/// Waits until the bell is readable, then forgets that it was: the next
/// `arm` reads what was rung.
async fn rung(fd: &AsyncFd<OwnedFd>) -> Result<(), Error> {
    let mut guard = fd.readable().await?;
    guard.clear_ready();
    Ok(())
}

/// The receiving end of a channel, for tokio.
///
/// Here a thread stands in for the sending process, and a current-thread
/// runtime awaits (with tokio's features `rt` and `macros`, and
/// shmchan's `tokio`):
///
/// ```
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() -> Result<(), shmchan::Error> {
///     let name = format!("shmchan-doc-async-rx-{}", std::process::id());
///     let listener = shmchan::Listener::bind_abstract(&name)?;
///     // The other process: three messages, then it closes its end.
///     let peer = std::thread::spawn(move || -> Result<(), shmchan::Error> {
///         let mut conn = listener.accept()?;
///         for msg in [&b"one"[..], b"two", b"three"] {
///             conn.sender().send(msg)?;
///         }
///         Ok(())
///     });
///
///     let conn = shmchan::connect_abstract(&name)?;
///     let (_tx, rx) = conn.into_split();
///     let mut rx = shmchan::tokio::AsyncReceiver::new(rx)?;
///     let mut got = Vec::new();
///     while let Ok(msg) = rx.recv().await {
///         got.push(msg);
///     }
///     assert_eq!(got, [&b"one"[..], b"two", b"three"]);
///     peer.join().unwrap()
/// }
/// ```
pub struct AsyncReceiver {
    rx: Receiver,
    bell: AsyncFd<OwnedFd>,
    /// Tries before arming the bell (see [`tries`]).
    tries: u32,
}

impl AsyncReceiver {
    /// Wraps `rx`, which must come from a connection (it has a bell).
    /// Must be called within a tokio runtime with IO enabled: outside one
    /// it fails; in one without IO, tokio's `AsyncFd` panics.
    pub fn new(rx: Receiver) -> Result<AsyncReceiver, Error> {
        let bell = register(rx.ready_fd())?;
        let tries = tries(rx.wait());
        Ok(AsyncReceiver { rx, bell, tries })
    }

    /// Receives the next message: [`Receiver::recv`], awaiting rather than
    /// blocking.
    pub async fn recv(&mut self) -> Result<Vec<u8>, Error> {
        loop {
            match self.rx.try_recv() {
                Err(Error::Empty) => {}
                other => return other,
            }
            if spin(self.tries, || self.rx.core.news()) {
                continue;
            }
            if self.rx.arm()? {
                rung(&self.bell).await?;
            }
        }
    }

    /// Receives the next message into `buf`: [`Receiver::recv_into`],
    /// awaiting rather than blocking.
    pub async fn recv_into(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        loop {
            match self.rx.try_recv_into(buf) {
                Err(Error::Empty) => {}
                other => return other,
            }
            if spin(self.tries, || self.rx.core.news()) {
                continue;
            }
            if self.rx.arm()? {
                rung(&self.bell).await?;
            }
        }
    }

    /// Receives the next message in place: [`Receiver::recv_in_place`],
    /// awaiting rather than blocking (and trusting the sender as it does).
    pub async fn recv_in_place(&mut self) -> Result<InPlace<'_>, Error> {
        loop {
            match self.rx.lend_raw(How::Try, None) {
                Ok(bytes) => return Ok(InPlace::new(&mut self.rx, bytes)),
                Err(Error::Empty) => {}
                Err(e) => return Err(e),
            }
            if spin(self.tries, || self.rx.core.news()) {
                continue;
            }
            if self.rx.arm()? {
                rung(&self.bell).await?;
            }
        }
    }

    /// The blocking end inside.
    pub fn get_ref(&self) -> &Receiver {
        &self.rx
    }

    /// The blocking end inside; receiving from it directly is fine.
    pub fn get_mut(&mut self) -> &mut Receiver {
        &mut self.rx
    }

    /// Unwraps the blocking end.
    pub fn into_inner(self) -> Receiver {
        self.rx
    }
}

/// The sending end of a channel, for tokio.
///
/// Here the listener's side sends, and a thread stands in for the
/// client's process:
///
/// ```
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() -> Result<(), shmchan::Error> {
///     let name = format!("shmchan-doc-async-tx-{}", std::process::id());
///     let listener = shmchan::Listener::bind_abstract(&name)?;
///     // The client process: receives until the sender closes.
///     let peer = std::thread::spawn(move || -> Result<Vec<usize>, shmchan::Error> {
///         let mut conn = shmchan::connect_abstract(&name)?;
///         let mut lengths = Vec::new();
///         loop {
///             match conn.receiver().recv() {
///                 Ok(msg) => lengths.push(msg.len()),
///                 Err(shmchan::Error::Closed) => return Ok(lengths),
///                 Err(e) => return Err(e),
///             }
///         }
///     });
///
///     // (`accept` blocks: a server that must not block its runtime calls
///     // it from `spawn_blocking`.)
///     let (tx, _rx) = listener.accept()?.into_split();
///     let mut tx = shmchan::tokio::AsyncSender::new(tx)?;
///     tx.send(b"hello").await?;
///     // Zero copy: awaits room, then the message is written in place.
///     let mut loan = tx.loan(4096).await?;
///     loan.fill(7);
///     loan.commit();
///     drop(tx); // closes the channel
///     assert_eq!(peer.join().unwrap()?, [5, 4096]);
///     Ok(())
/// }
/// ```
pub struct AsyncSender {
    tx: Sender,
    bell: AsyncFd<OwnedFd>,
    /// Tries before arming the bell (see [`tries`]).
    tries: u32,
}

/// A message part-way out: dropped (a send future cancelled), the
/// receiver is told to drop the part.
struct Step<'a> {
    /// The sender rather than its producer: `&mut Sender` is `Send`, so
    /// the futures that hold a step are too.
    tx: &'a mut Sender,
    len: u64,
    sent: u64,
}

impl Drop for Step<'_> {
    fn drop(&mut self) {
        if self.sent > 0 && self.sent < self.len {
            self.tx.core.abandon();
        }
    }
}

impl AsyncSender {
    /// Wraps `tx`, which must come from a connection (it has a bell).
    /// Must be called within a tokio runtime with IO enabled: outside one
    /// it fails; in one without IO, tokio's `AsyncFd` panics.
    pub fn new(tx: Sender) -> Result<AsyncSender, Error> {
        let bell = register(tx.ready_fd())?;
        let tries = tries(tx.wait());
        Ok(AsyncSender { tx, bell, tries })
    }

    /// Sends `msg`: [`Sender::send`], awaiting room rather than blocking.
    /// Any length: a message longer than the ring goes in rounds, as the
    /// receiver takes them.
    pub async fn send(&mut self, msg: &[u8]) -> Result<(), Error> {
        self.send_with(msg.len(), |off, piece| {
            piece.copy_from_slice(&msg[off..off + piece.len()]);
        })
        .await
    }

    /// Sends a message of `len` bytes written in place:
    /// [`Sender::send_with`], awaiting room rather than blocking. `fill`
    /// may be called for the pieces of one round before an await and for
    /// the next round's after it.
    pub async fn send_with(
        &mut self,
        len: usize,
        mut fill: impl FnMut(usize, &mut [u8]),
    ) -> Result<(), Error> {
        let mut step = Step {
            tx: &mut self.tx,
            len: len as u64,
            sent: 0,
        };
        let fill = &mut fill;
        loop {
            let Some(need) = step.tx.core.send_step(step.len, &mut step.sent, fill)? else {
                return Ok(());
            };
            if spin(self.tries, || step.tx.core.news()) {
                continue;
            }
            if arm_producer(&mut step.tx.core, need)? {
                rung(&self.bell).await?;
            }
        }
    }

    /// Lends `len` contiguous bytes of the ring: [`Sender::loan`], awaiting
    /// room rather than blocking.
    pub async fn loan(&mut self, len: usize) -> Result<Loan<'_>, Error> {
        let limit = self.tx.max_loan() as u64;
        if len as u64 > limit {
            return Err(Error::TooLarge {
                len: len as u64,
                limit,
            });
        }
        loop {
            // Room now: no system call (arming reads the bell). A `Full`
            // may have written an owed `Abort` or a `Pad`: progress.
            match self.tx.try_loan_step(len) {
                Ok(()) => return Ok(Loan::new(&mut self.tx, len)),
                Err(Error::Full) => {}
                Err(e) => return Err(e),
            }
            if spin(self.tries, || self.tx.core.news()) {
                continue;
            }
            // The next step's room, never more than the ring: free, the
            // next try goes further.
            let need = self.tx.core.loan_need(len as u64);
            if arm_producer(&mut self.tx.core, need)? {
                rung(&self.bell).await?;
            }
        }
    }

    /// The blocking end inside.
    pub fn get_ref(&self) -> &Sender {
        &self.tx
    }

    /// The blocking end inside; sending on it directly is fine.
    pub fn get_mut(&mut self) -> &mut Sender {
        &mut self.tx
    }

    /// Unwraps the blocking end.
    pub fn into_inner(self) -> Sender {
        self.tx
    }
}
