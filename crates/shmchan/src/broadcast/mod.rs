//! A broadcast: one [`Publisher`], any number of [`Subscriber`]s (up to
//! the slots it is made with), in other processes, over one ring in
//! shared memory.
//!
//! A publish writes the message once, into the ring's next entry, and
//! publishes it with one Release store, whatever the number of
//! subscribers; each subscriber reads with a cursor of its own. A busy
//! broadcast makes no system call; subscribers that sleep all sleep on
//! one futex word, which a publish wakes with one system call, and only
//! when somebody sleeps (see `wake.rs` for why no wake-up is lost).
//!
//! Messages are byte strings of up to [`Options::message_size`] bytes
//! each (an entry holds one message; the ring holds
//! [`Options::capacity`] of them).
//!
//! # Who falls behind
//!
//! The publisher chooses ([`Options::policy`]):
//! - [`Policy::Block`] (lossless): a publish waits while a live subscriber
//!   has not read the message it would overwrite (the slowest one sets
//!   the pace); `try_send` says [`Error::Full`](crate::Error::Full),
//!   `send_timeout` gives up with [`Error::Timeout`](crate::Error::Timeout).
//! - [`Policy::Overwrite`]: a publish never waits; a subscriber that was
//!   lapped gets [`Error::Lagged`](crate::Error::Lagged)`(n)` once, `n`
//!   the exact number of messages it lost, then the oldest message still
//!   in the ring (as tokio's broadcast channel).
//!
//! A subscriber that joins late starts at the next message published, or
//! up to [`Options::history`] older ones still in the ring.
//!
//! # Dead and hostile peers
//!
//! - A subscriber that dies, even by `kill -9`, stops holding a `Block`
//!   publisher back within [`PEER_CHECK`](crate::PEER_CHECK): each slot
//!   is an OFD lock the kernel drops with the process, which a waiting
//!   publisher looks at.
//! - A publisher that dies is seen by every subscriber as
//!   [`Error::PeerGone`](crate::Error::PeerGone), after the messages it
//!   published; one that closes (drops), as
//!   [`Error::Closed`](crate::Error::Closed).
//! - The data (the ring, its position, the geometry) is a memfd that only
//!   the publisher can write: it is sealed with `F_SEAL_FUTURE_WRITE`
//!   once mapped, and subscribers map it read-only, so no subscriber can
//!   change what another reads. What subscribers write (their cursors, the
//!   futex word, the join counter) is in a second memfd, and the publisher
//!   checks every value it reads there: a forged cursor makes that slot
//!   count for nothing, never makes the publisher misbehave; the
//!   subscriber whose slot it was finds itself overrun (`Lagged`), never
//!   delivered a wrong message. A subscriber can still slow the others
//!   (a false "somebody sleeps" costs the publisher a system call per
//!   publish; a cleared one makes sleepers wake at their slice's end; a
//!   bumped join counter makes a `Block` publisher load the slot table
//!   after each publish; a forged cursor of a waiting subscriber holds a
//!   `Block` publisher until that subscriber's next look, which undoes it)
//!   and fill the slots (as many subscribers would).
//! - The copying receives trust the publisher in nothing: lengths and
//!   stamps are read once and checked, bytes are copied out and the stamp
//!   checked again (a seqlock), so a torn message is never returned and a
//!   broken one is [`Error::Corrupt`](crate::Error::Corrupt). The
//!   in-place receives trust it not to write what it published, as the
//!   channel's do.
//!
//! # Joining
//!
//! By a passed descriptor pair ([`Publisher::send_to`],
//! [`Options::recv_subscriber`]), or through a rendezvous
//! ([`Listener::bind`] / [`Listener::bind_abstract`] in the publisher's
//! process, [`Options::subscribe`] / [`Options::subscribe_abstract`] in
//! the subscriber's). A channel's end refuses a broadcast's objects and
//! the reverse, each saying what it was given.
//!
//! # Example
//!
//! Here a thread stands in for the subscriber's process.
//!
//! ```
//! # fn main() -> Result<(), shmchan::Error> {
//! use shmchan::broadcast::{Listener, Options, Policy};
//!
//! let name = format!("shmchan-doc-broadcast-{}", std::process::id());
//! let mut publisher = Options::new()
//!     .capacity(64)
//!     .message_size(256)
//!     .policy(Policy::Block)
//!     .create_publisher()?;
//! let listener = Listener::bind_abstract(&publisher, &name)?;
//! let sub = {
//!     let name = name.clone();
//!     std::thread::spawn(move || -> Result<Vec<Vec<u8>>, shmchan::Error> {
//!         let mut sub = Options::new().subscribe_abstract(&name)?;
//!         let mut got = Vec::new();
//!         loop {
//!             match sub.recv() {
//!                 Ok(msg) => got.push(msg),
//!                 Err(shmchan::Error::Closed) => return Ok(got),
//!                 Err(e) => return Err(e),
//!             }
//!         }
//!     })
//! };
//! listener.accept()?; // the subscriber has its descriptors
//! while publisher.subscribers() == 0 {
//!     std::thread::yield_now(); // until it took its slot
//! }
//! for i in 0..100u8 {
//!     publisher.send(&[i; 3])?; // Block: waits for the subscriber
//! }
//! drop(publisher); // the subscriber's recv is Closed after the 100
//! let got = sub.join().unwrap()?;
//! assert_eq!(got.len(), 100);
//! assert_eq!(got[99], [99; 3]);
//! # Ok(()) }
//! ```

#![cfg_attr(loom, allow(dead_code, unused_imports))]

mod area;
mod layout;
mod reader;
mod wake;
mod writer;

#[cfg(not(loom))]
mod join;
#[cfg(not(loom))]
mod options;
#[cfg(not(loom))]
mod publisher;
#[cfg(not(loom))]
mod shm;
#[cfg(not(loom))]
mod subscriber;
#[cfg(not(loom))]
mod waitable;
#[cfg(not(loom))]
mod watch;

#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(all(test, not(loom)))]
mod protocol_tests;

#[cfg(not(loom))]
pub use join::Listener;
pub use layout::{MAX_RING, MAX_SUBSCRIBERS};
#[cfg(not(loom))]
pub use options::{DEFAULT_CAPACITY, DEFAULT_MESSAGE_SIZE, DEFAULT_SUBSCRIBERS, Options};
#[cfg(not(loom))]
pub use publisher::{Loan, Publisher};
#[cfg(not(loom))]
pub use subscriber::{InPlace, Subscriber};

/// Whether `magic` is one of a broadcast's objects' (for a channel's
/// opener, to say what it was handed).
#[cfg(not(loom))]
pub(crate) fn is_broadcast_magic(magic: u64) -> bool {
    magic == layout::CONTROL_MAGIC || magic == layout::DATA_MAGIC
}

/// What the publisher does about a subscriber that falls a whole ring
/// behind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Policy {
    /// Wait for it (lossless): a publish waits while a live subscriber has
    /// not read the message the publish would overwrite.
    #[default]
    Block,
    /// Overwrite: the publisher never waits; the late subscriber's next
    /// receive is [`Error::Lagged`](crate::Error::Lagged)`(n)`.
    Overwrite,
}
