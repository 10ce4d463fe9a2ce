//! How a broadcast is made and joined.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use super::layout;
use super::{Policy, Publisher, Subscriber, join, shm};
use crate::error::Error;
use crate::handshake::HANDSHAKE_TIMEOUT;
use crate::wait::Wait;

/// The messages a ring holds unless told otherwise.
pub const DEFAULT_CAPACITY: usize = 256;
/// The longest message unless told otherwise.
pub const DEFAULT_MESSAGE_SIZE: usize = 4096 - 16;
/// The subscriber slots unless told otherwise.
pub const DEFAULT_SUBSCRIBERS: u32 = 64;

/// Makes a broadcast's [`Publisher`] and joins [`Subscriber`]s to one.
///
/// The sizes and the policy are the publisher's (a subscriber takes the
/// publisher's); [`wait`](Self::wait) is each end's own;
/// [`history`](Self::history) and
/// [`handshake_timeout`](Self::handshake_timeout) are a subscriber's.
#[derive(Clone, Debug)]
pub struct Options {
    capacity: usize,
    message_size: usize,
    subscribers: u32,
    policy: Policy,
    wait: Wait,
    history: u64,
    handshake_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            capacity: DEFAULT_CAPACITY,
            message_size: DEFAULT_MESSAGE_SIZE,
            subscribers: DEFAULT_SUBSCRIBERS,
            policy: Policy::default(),
            wait: Wait::default(),
            history: 0,
            handshake_timeout: HANDSHAKE_TIMEOUT,
        }
    }
}

impl Options {
    /// The defaults: [`DEFAULT_CAPACITY`] messages of up to
    /// [`DEFAULT_MESSAGE_SIZE`] bytes, [`DEFAULT_SUBSCRIBERS`] slots,
    /// [`Policy::Block`], the default [`Wait`], no history.
    pub fn new() -> Options {
        Options::default()
    }

    /// Messages in the ring, rounded up to a power of two (2 to
    /// [`MAX_RING`](super::MAX_RING)). The publisher's.
    pub fn capacity(mut self, messages: usize) -> Options {
        self.capacity = messages;
        self
    }

    /// The longest message (the ring's entries are this long, plus 16
    /// bytes, rounded up to 64). The publisher's.
    pub fn message_size(mut self, bytes: usize) -> Options {
        self.message_size = bytes;
        self
    }

    /// Subscriber slots: the most subscribers at once (1 to
    /// [`MAX_SUBSCRIBERS`](super::MAX_SUBSCRIBERS)); one more gets
    /// [`Error::TooManySubscribers`](crate::Error::TooManySubscribers).
    /// The publisher's.
    pub fn max_subscribers(mut self, slots: u32) -> Options {
        self.subscribers = slots;
        self
    }

    /// What the publisher does about a subscriber that falls behind.
    pub fn policy(mut self, policy: Policy) -> Options {
        self.policy = policy;
        self
    }

    /// How blocked calls of this end wait.
    pub fn wait(mut self, wait: Wait) -> Options {
        self.wait = wait;
        self
    }

    /// A subscriber made with these options starts up to `messages` older
    /// messages back, if the ring still holds them (fewer if the publisher
    /// overwrites them meanwhile). At most the ring's capacity less one:
    /// more fails the join with
    /// [`Error::HistoryTooLong`](crate::Error::HistoryTooLong).
    pub fn history(mut self, messages: u64) -> Options {
        self.history = messages;
        self
    }

    /// How long [`subscribe`](Self::subscribe) waits for the listener
    /// (default [`HANDSHAKE_TIMEOUT`](crate::HANDSHAKE_TIMEOUT)).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Options {
        self.handshake_timeout = timeout;
        self
    }

    /// Makes a broadcast (two sealed memfds, no name) and returns its
    /// publisher. Sizes past the limits (1 GiB of entries,
    /// [`MAX_RING`](super::MAX_RING), [`MAX_SUBSCRIBERS`](super::MAX_SUBSCRIBERS)) are [`Error::BadLayout`]
    /// saying which.
    pub fn create_publisher(&self) -> Result<Publisher, Error> {
        let geo = layout::Geometry::new(
            self.capacity as u64,
            self.message_size as u64,
            self.subscribers,
        )
        .map_err(Error::BadLayout)?;
        Ok(Publisher::new(shm::create(geo, self.policy)?, self.wait))
    }

    /// Joins the broadcast behind the two descriptors a publisher passed
    /// ([`Publisher::send_to`]): checks both objects (ours, closed to
    /// others, sealed; the data object against writing too), maps the
    /// data read-only, and takes a slot.
    pub fn subscriber_from_fds(
        &self,
        control: OwnedFd,
        data: OwnedFd,
    ) -> Result<Subscriber, Error> {
        Subscriber::join(shm::open(control, data)?, self.wait, self.history)
    }

    /// Receives a broadcast's descriptors from `socket` (sent with
    /// [`Publisher::send_to`]) and joins it. Something else on the socket
    /// is [`Error::Handshake`].
    pub fn recv_subscriber(&self, socket: impl AsFd) -> Result<Subscriber, Error> {
        let (control, data) = join::recv_fds(socket.as_fd())?;
        self.subscriber_from_fds(control, data)
    }

    /// Joins the broadcast whose [`Listener`](super::Listener) is at the filesystem path
    /// `path` (it must run as our uid).
    pub fn subscribe(&self, path: impl AsRef<Path>) -> Result<Subscriber, Error> {
        let path = path.as_ref();
        let addr = rustix::net::SocketAddrUnix::new(path)?;
        let shown = path.display().to_string();
        let (control, data) = join::dial(&addr, &shown, self.handshake_timeout)?;
        self.subscriber_from_fds(control, data)
    }

    /// Joins the broadcast whose [`Listener`](super::Listener) is at `name` in the abstract
    /// namespace.
    pub fn subscribe_abstract(&self, name: impl AsRef<[u8]>) -> Result<Subscriber, Error> {
        let name = name.as_ref();
        let addr = rustix::net::SocketAddrUnix::new_abstract_name(name)?;
        let shown = format!("@{}", String::from_utf8_lossy(name));
        let (control, data) = join::dial(&addr, &shown, self.handshake_timeout)?;
        self.subscriber_from_fds(control, data)
    }
}
