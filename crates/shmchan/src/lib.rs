//! shmchan: a bounded single-producer single-consumer channel of byte
//! messages between two processes, in shared memory, that stays safe when
//! the other process is hostile or dies.
//!
//! A channel is one shared-memory segment holding a ring of a fixed
//! capacity; one process holds the [`Sender`], another the [`Receiver`].
//! Messages are byte strings of any length, 0 included: one longer than the
//! ring goes through it in rounds, so memory use is fixed by the capacity.
//! A busy channel makes no system call; a side that waits spins, yields,
//! then sleeps on a futex as its [`Wait`] policy says, and the other side
//! wakes it only when it said it sleeps.
//!
//! # Example: two processes
//!
//! The parent makes the channel under a random name and starts a child
//! that joins by that name (here the same program, with the name as its
//! argument).
//!
//! ```no_run
//! use std::process::Command;
//! use shmchan::{Error, Options, Wait};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     if let Some(name) = std::env::args().nth(1) {
//!         // The child: join as the receiver, read until the sender closes.
//!         let mut rx = Options::new().wait(Wait::Block).open_receiver(&name)?;
//!         let mut buf = vec![0u8; 16 << 20];
//!         loop {
//!             match rx.recv_into(&mut buf) {
//!                 Ok(n) => println!("got {n} bytes"),
//!                 Err(Error::Closed) => return Ok(()),
//!                 Err(e) => return Err(e.into()),
//!             }
//!         }
//!     }
//!     // The parent: make the channel, start the child with its name.
//!     let mut tx = Options::new().capacity(1 << 20).create_sender()?;
//!     let name = tx.name().expect("made by name").to_owned();
//!     let mut child = Command::new(std::env::current_exe()?).arg(&name).spawn()?;
//!     tx.send(b"hello")?;
//!     // Zero copy: write the message in place, then publish it.
//!     let mut loan = tx.loan(4096)?;
//!     loan.fill(7);
//!     loan.commit();
//!     // Longer than the ring: it goes in rounds, as the child reads.
//!     tx.send(&vec![1u8; 10 << 20])?;
//!     drop(tx); // closes the channel: the child's next recv is Closed
//!     child.wait()?;
//!     Ok(())
//! }
//! ```
//!
//! Without a name, over a Unix socket (the memfd is sealed, so a hostile
//! peer cannot shrink it under the other side):
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::os::unix::net::UnixStream;
//! use shmchan::Options;
//!
//! let (here, there) = UnixStream::pair()?; // `there` goes to the peer process
//! let opts = Options::new();
//! let fd = opts.create_anonymous()?;
//! shmchan::send_fd(&here, &fd)?;
//! let mut tx = opts.sender_from_fd(fd)?;
//! // In the peer: let mut rx = Options::new().receiver_from_fd(shmchan::recv_fd(&there)?)?;
//! # let mut rx = opts.receiver_from_fd(shmchan::recv_fd(&there)?)?;
//! tx.send(b"no name at all")?;
//! assert_eq!(rx.recv()?, b"no name at all");
//! # Ok(()) }
//! ```
//!
//! # A rendezvous: channels the way sockets make connections
//!
//! A server [`Listener::bind`]s a Unix socket path (or
//! [`Listener::bind_abstract`] a name) and [`accept`](Listener::accept)s;
//! any number of clients [`connect`], each getting a [`Connection`]: a
//! fresh duplex pair of sealed anonymous channels, with the peer's
//! [`Credentials`] as the kernel reports them. Only the same user is
//! admitted unless [`Options::allow_uid`] says otherwise (on either side).
//! A restarted client connects again; a killed server's path is reclaimed
//! by the next bind. See `examples/rendezvous_server.rs` and
//! `examples/rendezvous_client.rs`.
//!
//! ```no_run
//! # fn main() -> Result<(), shmchan::Error> {
//! // The server process:
//! let listener = shmchan::Listener::bind("/run/user/1000/echo.sock")?;
//! for conn in listener.incoming() {
//!     let (mut tx, mut rx) = conn?.into_split();
//!     while let Ok(msg) = rx.recv() {
//!         tx.send(&msg)?;
//!     }
//! }
//! // A client process:
//! let mut conn = shmchan::connect("/run/user/1000/echo.sock")?;
//! conn.sender().send(b"hello")?;
//! assert_eq!(conn.receiver().recv()?, b"hello");
//! # Ok(()) }
//! ```
//!
//! # Receiving in place
//!
//! [`Receiver::recv_in_place`] copies nothing: the [`InPlace`] guard
//! derefs to the message where it lies in the ring, whose space the sender
//! gets back when the guard is dropped. It trusts the sender not to write
//! a message after publishing it (see [`Receiver`]); the copying receives
//! trust nothing.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use shmchan::Options;
//!
//! let opts = Options::new();
//! let fd = opts.create_anonymous()?;
//! let mut tx = opts.sender_from_fd(fd.try_clone()?)?; // in one process
//! let mut rx = opts.receiver_from_fd(fd)?; // in the other
//! tx.send(b"checked where it lies")?;
//! let msg = rx.recv_in_place()?;
//! assert_eq!(&*msg, b"checked where it lies");
//! assert!(msg.in_place());
//! drop(msg); // the space goes back to the sender
//! # Ok(()) }
//! ```
//!
//! # Typed messages (feature `typed`)
//!
//! With the cargo feature `typed` (off by default: without it the crate
//! does not depend on serde), [`typed::Sender<T>`](typed::Sender) and
//! [`typed::Receiver<T>`](typed::Receiver) wrap the byte ends and send
//! serde values, one message each, in postcard's compact binary format.
//! A message that does not decode as `T` (a hostile or mismatched peer) is
//! [`typed::Error::Decode`], never a panic, and the next message is
//! received as usual.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Cargo.toml: shmchan = { version = "0.1", features = ["typed"] }
//! use shmchan::{Options, typed};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Job { id: u64, path: String }
//!
//! let mut tx = typed::Sender::<Job>::new(Options::new().create_sender()?);
//! tx.send(&Job { id: 1, path: "/tmp/a".into() })?;
//! # let name = tx.get_ref().name().unwrap().to_owned();
//! // In the peer process, given the name:
//! let mut rx = typed::Receiver::<Job>::new(Options::new().open_receiver(&name)?);
//! let job: Job = rx.recv()?;
//! # Ok(()) }
//! ```
//!
//! # Plain-old-data values in place (feature `pod`)
//!
//! With the cargo feature `pod` (off by default; it adds bytemuck),
//! [`pod::Sender<T>`](pod::Sender) and [`pod::Receiver<T>`](pod::Receiver)
//! carry values of a `T: bytemuck::Pod` with no serialisation and no copy:
//! the sender writes the value's fields in the ring, the receiver gets a
//! guard that derefs to `&T` where the value lies, after checking its size
//! and alignment. See [`pod`] for an example. bytemuck rather than
//! zerocopy: its one trait `Pod` (every bit pattern valid, no padding)
//! is exactly the contract both directions need, it is small, and the
//! workspace already depends on it.
//!
//! # Guarantees
//!
//! While both processes follow the protocol:
//! - **Order**: messages are received in the order they were sent.
//! - **No loss, no duplicates**: every message `send` returned `Ok` for is
//!   received exactly once, whole, unless the receiver closes or dies first.
//!   A message whose `send_timeout` or `try_send` failed is never received,
//!   not even in part.
//! - **Back-pressure**: a sender waits (or gets `Full`/`Timeout`) while the
//!   ring is full; memory use never grows with the traffic.
//! - **Close**: dropping the [`Sender`] closes the channel; the receiver
//!   gets every message sent before, then [`Error::Closed`]. Dropping the
//!   [`Receiver`] makes the sender's calls fail with [`Error::Closed`].
//!
//! When a process dies (`kill -9`, a crash):
//! - Its lock on the segment is released by the kernel. A call of the other
//!   side that waits returns [`Error::PeerGone`] within about
//!   [`PEER_CHECK`] (20 ms) of the death, whatever the policy.
//! - The receiver still gets every message the dead sender had fully sent,
//!   in order; a message it was writing is never delivered, in whole or in
//!   part. Then [`Error::PeerGone`].
//! - A sender whose receiver died finds out when the ring is full (a check
//!   per message would cost a system call).
//! - Polls do too: a `try_recv` that finds no message, or a `try_send`
//!   that finds no room, looks at the peer's lock (at most once per
//!   [`PEER_CHECK`]; a poll that succeeds never does), and reports
//!   [`Error::PeerGone`], the receiver once it has every message the
//!   dead sender had fully sent.
//! - Names: the opener removes the name from `/dev/shm` as soon as it is
//!   attached, so nothing is left behind once both sides are attached,
//!   however they die. A creator whose peer never came removes it on drop;
//!   only a creator killed before any peer attached leaves its name. Made-up
//!   names are `/shmchan-<creator pid>-<32 hex>`, so such a leftover can be
//!   told apart and its creator checked (`ipclab ls`, `ipclab clean`),
//!   and [`remove`]d once no process holds it. Channels made through a
//!   [`Listener`] have no names at all.
//! - A peer that dies before it attached is not noticed: blocked calls wait
//!   until their timeout.
//! - The lock lives on the end's own open file description, which `exec`
//!   does not pass on (`O_CLOEXEC`), but `fork` does: a process that forks
//!   while it holds an end keeps it "alive" in the child until the child
//!   exits too.
//!
//! When the peer is hostile (writes anything anywhere in the segment, at
//! any time):
//! - No call panics, reads or writes outside the mapping, or waits past
//!   its timeout. A receiver allocates for a message only as its bytes
//!   arrive, and refuses (`TooLarge`, once, then skips) one longer than
//!   its [`max_message`](Options::max_message) (64 MiB by default), so a
//!   sender announcing gigabytes costs it nothing. Every shared index and length is read once into a local,
//!   checked with checked arithmetic, and never read again; payload is
//!   copied out before anything looks at it. A value an honest peer never
//!   writes makes the call fail with [`Error::Corrupt`], and the channel
//!   stays broken. Messages may of course carry any bytes.
//! - The in-place receives ([`Receiver::recv_in_place`]) are the
//!   exception: they hand out a view into shared memory, checked as above
//!   (no read outside the message or the mapping, no panic, no hang), but
//!   whose bytes a hostile sender can still change while the caller looks
//!   at them (the double-fetch problem; see [`Receiver`]). The receiver
//!   maps the data area read-only, so it never writes the sender's memory.
//! - A named segment can be shrunk by a peer with the same user id, which
//!   makes the other side's next access raise `SIGBUS`; anonymous segments
//!   are sealed against that. Use them for peers you do not trust.
//! - Joining: names have 128 random bits, objects are created with
//!   `O_CREAT | O_EXCL` and mode 0600 (set with `fchmod`), an opener
//!   refuses objects of another user, open to others, symbolic links, or
//!   passed descriptors that are not read-write and sealed. Through a
//!   [`Listener`], each side checks the other's uid as the kernel reports
//!   it (`SO_PEERCRED`; the same user only, unless
//!   [`Options::allow_uid`]), and the memfds must belong to the
//!   listener's uid.
//!
//! # Tests
//!
//! `cargo test -p shmchan` runs the unit tests and the two-process tests
//! (the test binary runs itself again as the peer: streams, ping-pong over
//! passed descriptors, `kill -9` at random points, `SIGSTOP`, a hostile
//! peer scribbling over the segment, and the refusals when opening). Long
//! versions: `cargo test -p shmchan --release -- --ignored`. The loom
//! models of the ring indices and of the wait/wake protocol:
//! `RUSTFLAGS="--cfg loom" cargo test -p shmchan --release --lib loom`.
//! The fuzz target of the receiver over hostile memory (proptest):
//! `PROPTEST_CASES=1000000 cargo test -p shmchan --release --test
//! fuzz_consumer`.
//! The crate's tests turn the feature `typed` on (a dev-dependency on
//! itself), so the typed two-process tests run with the others.

#![warn(unsafe_op_in_unsafe_fn)]

mod bell;
mod consumer;
mod error;
mod layout;
mod producer;
mod ring;
mod sync;
mod wait;

#[cfg(not(loom))]
mod connection;
#[cfg(not(loom))]
mod fdpass;
#[cfg(not(loom))]
mod handshake;
#[cfg(not(loom))]
mod listener;
#[cfg(not(loom))]
mod liveness;
#[cfg(not(loom))]
mod options;
#[cfg(all(feature = "pod", not(loom)))]
pub mod pod;
#[cfg(not(loom))]
mod ready;
#[cfg(not(loom))]
mod receiver;
#[cfg(not(loom))]
mod segment;
#[cfg(not(loom))]
mod sender;
#[cfg(all(feature = "tokio", not(loom)))]
pub mod tokio;
#[cfg(all(feature = "typed", not(loom)))]
pub mod typed;

pub use error::{Error, SendTimeoutError, TrySendError};
pub use layout::{HEADER_SIZE, MAX_CAPACITY, MIN_CAPACITY};
pub use wait::Wait;

#[cfg(not(loom))]
pub use connection::{Connection, connect, connect_abstract};
#[cfg(not(loom))]
pub use fdpass::{recv_fd, send_fd};
#[cfg(not(loom))]
pub use handshake::{Credentials, HANDSHAKE_TIMEOUT};
#[cfg(not(loom))]
pub use listener::{Incoming, Listener};
#[cfg(not(loom))]
pub use liveness::PEER_CHECK;
#[cfg(not(loom))]
pub use options::{DEFAULT_CAPACITY, DEFAULT_MAX_MESSAGE, Options};
#[cfg(not(loom))]
pub use ready::wait_any;
#[cfg(not(loom))]
pub use receiver::{InPlace, Receiver};
#[cfg(not(loom))]
pub use segment::{NAME_PREFIX, remove};
#[cfg(not(loom))]
pub use sender::{Loan, Sender};

#[cfg(all(test, not(loom)))]
mod protocol_tests;
#[cfg(all(test, not(loom)))]
mod ready_tests;

#[cfg(all(test, loom))]
mod loom_tests;
