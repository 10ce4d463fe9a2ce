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
//! **Linux only**: it rests on `memfd_create` and its seals, futexes, OFD
//! locks, `SO_PEERCRED` and abstract Unix sockets; elsewhere the build
//! stops with one error that says so.
//!
//! The examples below run as doctests in one process, with a thread
//! standing in for the other process; real use has two processes (see
//! `examples/rendezvous_server.rs` and `examples/rendezvous_client.rs`,
//! which the test suite runs as two).
//!
//! # Three ways to make a channel
//!
//! ## Through a rendezvous, the way sockets make connections
//!
//! A server [`Listener::bind`]s a Unix socket path (or
//! [`Listener::bind_abstract`] a name) and [`accept`](Listener::accept)s;
//! any number of clients [`connect`], each getting a [`Connection`]: a
//! fresh duplex pair of sealed anonymous channels, each with a doorbell
//! for event loops, and the peer's [`Credentials`] as the kernel reports
//! them. Only the same user is admitted unless [`Options::allow_uid`] says
//! otherwise (on either side). A restarted client connects again; a
//! killed server's path is reclaimed by the next bind. This is the way to
//! start with.
//!
//! ```
//! # fn main() -> Result<(), shmchan::Error> {
//! let dir = std::env::temp_dir().join(format!("shmchan-doc-lib-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let path = dir.join("echo.sock");
//!
//! // The server process: echo each message until the client leaves.
//! let listener = shmchan::Listener::bind(&path)?;
//! let server = std::thread::spawn(move || -> Result<(), shmchan::Error> {
//!     let (mut tx, mut rx) = listener.accept()?.into_split();
//!     while let Ok(msg) = rx.recv() {
//!         tx.send(&msg)?;
//!     }
//!     Ok(()) // dropping the listener removes echo.sock
//! });
//!
//! // A client process:
//! let mut conn = shmchan::connect(&path)?;
//! conn.sender().send(b"hello")?;
//! assert_eq!(conn.receiver().recv()?, b"hello");
//! drop(conn); // closes both channels: the server's recv is Closed
//! server.join().unwrap()?;
//! # std::fs::remove_dir(&dir)?;
//! # Ok(()) }
//! ```
//!
//! ## By name
//!
//! One process makes the channel under a random name in `/dev/shm` and
//! passes the name to the other (an argument, an environment variable),
//! which joins by it and removes the name at once.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use shmchan::{Error, Options, Wait};
//!
//! // The parent: make the channel; its name goes to the child.
//! let mut tx = Options::new().capacity(1 << 20).create_sender()?;
//! let name = tx.name().expect("made by name").to_owned();
//!
//! // The child (here a thread): join as the receiver, read until the
//! // sender closes.
//! let child = std::thread::spawn(move || -> Result<usize, Error> {
//!     let mut rx = Options::new().wait(Wait::Block).open_receiver(&name)?;
//!     let mut buf = vec![0u8; 16 << 20];
//!     let mut got = 0;
//!     loop {
//!         match rx.recv_into(&mut buf) {
//!             Ok(n) => got += n,
//!             Err(Error::Closed) => return Ok(got),
//!             Err(e) => return Err(e),
//!         }
//!     }
//! });
//!
//! tx.send(b"hello")?;
//! // Zero copy: write the message in place, then publish it.
//! let mut loan = tx.loan(4096)?;
//! loan.fill(7);
//! loan.commit();
//! // Longer than the ring: it goes in rounds, as the child reads.
//! tx.send(&vec![1u8; 10 << 20])?;
//! drop(tx); // closes the channel: the child's next recv is Closed
//! assert_eq!(child.join().unwrap()?, 5 + 4096 + (10 << 20));
//! # Ok(()) }
//! ```
//!
//! ## By a passed descriptor
//!
//! Without a name, over a Unix socket: the memfd is sealed, so a hostile
//! peer cannot shrink it under the other side.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::os::unix::net::UnixStream;
//! use shmchan::Options;
//!
//! let (here, there) = UnixStream::pair()?; // `there` goes to the peer process
//! let opts = Options::new();
//! let fd = opts.create_anonymous()?;
//! shmchan::send_fd(&here, &fd)?;
//! let mut tx = opts.sender_from_fd(fd)?;
//! // In the peer process:
//! let mut rx = Options::new().receiver_from_fd(shmchan::recv_fd(&there)?)?;
//! tx.send(b"no name at all")?;
//! assert_eq!(rx.recv()?, b"no name at all");
//! # Ok(()) }
//! ```
//!
//! # Event loops and async
//!
//! The ends of a [`Connection`] have a doorbell: [`Receiver::ready_fd`]
//! and [`Sender::ready_fd`] are descriptors for epoll, mio or `poll`, and
//! [`Receiver::arm`] / [`Sender::arm`] say that this side is about to wait
//! on them (a busy channel still makes no system call: the peer rings only
//! an armed bell). A [`WaitSet`] waits on many ends at once in one thread
//! (one `futex_waitv`, or epoll over the bells, see [`waitset`]);
//! [`wait_any`] is its one-call case over borrowed receivers. With
//! the cargo feature `tokio`, `AsyncSender` and `AsyncReceiver` (module
//! [`tokio`][mod-tokio]) await instead of blocking. Channels made by name or by
//! a passed descriptor have no bell: their ends block or poll only.
//!
//! ```
//! # fn main() -> Result<(), shmchan::Error> {
//! use std::time::Duration;
//!
//! let name = format!("shmchan-doc-lib-{}", std::process::id());
//! let listener = shmchan::Listener::bind_abstract(&name)?;
//! // Two clients (here threads) each send one message on a connection.
//! let clients: Vec<_> = (0..2u8)
//!     .map(|i| {
//!         let name = name.clone();
//!         std::thread::spawn(move || -> Result<(), shmchan::Error> {
//!             let mut conn = shmchan::connect_abstract(&name)?;
//!             conn.sender().send(&[i])?;
//!             conn.receiver().recv()?; // until the server closes
//!             Ok(())
//!         })
//!     })
//!     .collect();
//! let mut a = listener.accept()?;
//! let mut b = listener.accept()?;
//! let mut got = Vec::new();
//! while got.len() < 2 {
//!     let mut both = [a.receiver(), b.receiver()];
//!     let i = shmchan::wait_any(&mut both, Some(Duration::from_secs(10)))?;
//!     match both[i].try_recv() {
//!         Ok(msg) => got.extend(msg),
//!         Err(e) if e.is_would_block() => {} // part of a long message: wait again
//!         Err(e) => return Err(e),
//!     }
//! }
//! got.sort();
//! assert_eq!(got, [0, 1]);
//! drop((a, b)); // the clients' recv is Closed
//! for client in clients {
//!     assert!(client.join().unwrap().unwrap_err().is_disconnected());
//! }
//! # Ok(()) }
//! ```
//!
//! # One publisher, many subscribers
//!
//! [`broadcast`] is the one-to-many shape: a [`broadcast::Publisher`]
//! writes each message once into one ring, and any number of
//! [`broadcast::Subscriber`]s (up to the slots it was made with) read it
//! with cursors of their own; the publisher waits for the slowest
//! ([`broadcast::Policy::Block`]) or laps it, which then learns how many
//! messages it lost ([`broadcast::Policy::Overwrite`], [`Error::Lagged`]).
//! See the module for the guarantees and an example.
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
//! does not depend on serde), `typed::Sender<T>` and `typed::Receiver<T>`
//! (module [`typed`][mod-typed]) wrap the byte ends and send serde values,
//! one message each, in postcard's compact binary format. A message that
//! does not decode as `T` (a hostile or mismatched peer) is
//! `typed::Error::Decode`, never a panic, and the next message is
//! received as usual.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Cargo.toml: shmchan = { version = "0.1", features = ["typed"] }
//! use shmchan::{Options, typed};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Job { id: u64, path: String }
//!
//! let mut tx = typed::Sender::<Job>::new(Options::new().create_sender()?);
//! tx.send(&Job { id: 1, path: "/tmp/a".into() })?;
//! let name = tx.get_ref().name().unwrap().to_owned();
//! // In the peer process, given the name:
//! let mut rx = typed::Receiver::<Job>::new(Options::new().open_receiver(&name)?);
//! let job: Job = rx.recv()?;
//! assert_eq!((job.id, job.path.as_str()), (1, "/tmp/a"));
//! # Ok(()) }
//! ```
//!
//! # Plain-old-data values in place (feature `pod`)
//!
//! With the cargo feature `pod` (off by default; it adds bytemuck),
//! `pod::Sender<T>` and `pod::Receiver<T>` (module [`pod`][mod-pod])
//! carry values of a `T: bytemuck::Pod` with no serialisation and no copy:
//! the sender writes the value's fields in the ring, the receiver gets a
//! guard that derefs to `&T` where the value lies, after checking its size
//! and alignment. See the module for an example. bytemuck rather than
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
//! The crate's tests turn the features `typed`, `pod` and `tokio` on (a
//! dev-dependency on itself), so their tests and doctests run with the
//! others; `tests/examples.rs` runs the rendezvous examples as a server
//! and clients in processes of their own, and checks that the README
//! shows them as they are.
//!

// The feature modules' links: to the module when it is built, else to
// the section above that names the feature.
#![cfg_attr(feature = "typed", doc = "[mod-typed]: typed")]
#![cfg_attr(
    not(feature = "typed"),
    doc = "[mod-typed]: #typed-messages-feature-typed"
)]
#![cfg_attr(feature = "pod", doc = "[mod-pod]: pod")]
#![cfg_attr(
    not(feature = "pod"),
    doc = "[mod-pod]: #plain-old-data-values-in-place-feature-pod"
)]
#![cfg_attr(feature = "tokio", doc = "[mod-tokio]: tokio")]
#![cfg_attr(not(feature = "tokio"), doc = "[mod-tokio]: #event-loops-and-async")]
#![warn(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
// On docs.rs: the items of a feature say so; nothing else is marked (the
// whole crate is Linux-only, and `loom` is the model tests' build).
#![cfg_attr(docsrs, feature(doc_cfg), doc(auto_cfg = false))]

// The rest of the crate is left out elsewhere, so that this is the one
// error a build on another system shows.
#[cfg(not(target_os = "linux"))]
compile_error!(
    "shmchan works on Linux only: it needs memfd_create and its seals, futexes, \
     OFD locks, SO_PEERCRED and the abstract socket namespace"
);

#[cfg(target_os = "linux")]
mod bell;
#[cfg(all(target_os = "linux", not(loom)))]
pub mod broadcast;
#[cfg(all(target_os = "linux", loom))]
pub(crate) mod broadcast;
#[cfg(target_os = "linux")]
mod consumer;
#[cfg(target_os = "linux")]
mod error;
#[cfg(target_os = "linux")]
mod layout;
#[cfg(target_os = "linux")]
mod producer;
#[cfg(target_os = "linux")]
mod ring;
#[cfg(target_os = "linux")]
mod sync;
#[cfg(target_os = "linux")]
mod wait;

#[cfg(all(target_os = "linux", not(loom)))]
mod accepting;
#[cfg(all(target_os = "linux", not(loom)))]
mod connection;
#[cfg(all(target_os = "linux", not(loom)))]
mod fdpass;
#[cfg(all(target_os = "linux", not(loom)))]
mod handshake;
#[cfg(all(target_os = "linux", not(loom)))]
mod listener;
#[cfg(all(target_os = "linux", not(loom)))]
mod liveness;
#[cfg(all(target_os = "linux", not(loom)))]
mod options;
#[cfg(all(target_os = "linux", feature = "pod", not(loom)))]
#[cfg_attr(docsrs, doc(cfg(feature = "pod")))]
pub mod pod;
#[cfg(all(target_os = "linux", not(loom)))]
mod ready;
#[cfg(all(target_os = "linux", not(loom)))]
mod receiver;
#[cfg(all(target_os = "linux", not(loom)))]
mod segment;
#[cfg(all(target_os = "linux", not(loom)))]
mod sender;
#[cfg(all(target_os = "linux", feature = "tokio", not(loom)))]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod tokio;
#[cfg(all(target_os = "linux", feature = "typed", not(loom)))]
#[cfg_attr(docsrs, doc(cfg(feature = "typed")))]
pub mod typed;
#[cfg(all(target_os = "linux", not(loom)))]
pub mod waitset;

#[cfg(target_os = "linux")]
pub use error::{Error, SendTimeoutError, TrySendError};
#[cfg(target_os = "linux")]
pub use layout::{HEADER_SIZE, MAX_CAPACITY, MIN_CAPACITY};
#[cfg(target_os = "linux")]
pub use wait::Wait;

#[cfg(all(target_os = "linux", not(loom)))]
pub use connection::{Connection, connect, connect_abstract};
#[cfg(all(target_os = "linux", not(loom)))]
pub use fdpass::{recv_fd, send_fd};
#[cfg(all(target_os = "linux", not(loom)))]
pub use handshake::{Credentials, HANDSHAKE_TIMEOUT};
#[cfg(all(target_os = "linux", not(loom)))]
pub use listener::{Incoming, Listener};
#[cfg(all(target_os = "linux", not(loom)))]
pub use liveness::PEER_CHECK;
#[cfg(all(target_os = "linux", not(loom)))]
pub use options::{DEFAULT_CAPACITY, DEFAULT_MAX_MESSAGE, Options};
#[cfg(all(target_os = "linux", not(loom)))]
pub use ready::wait_any;
#[cfg(all(target_os = "linux", not(loom)))]
pub use receiver::{InPlace, Receiver};
#[cfg(all(target_os = "linux", not(loom)))]
pub use segment::{NAME_PREFIX, remove};
#[cfg(all(target_os = "linux", not(loom)))]
pub use sender::{Loan, Sender};
#[cfg(all(target_os = "linux", not(loom)))]
pub use waitset::WaitSet;

#[cfg(all(test, target_os = "linux", not(loom)))]
mod protocol_tests;
#[cfg(all(test, target_os = "linux", not(loom)))]
mod ready_tests;

#[cfg(all(test, loom))]
mod loom_tests;
