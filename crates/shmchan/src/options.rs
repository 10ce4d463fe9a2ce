//! How a channel is made and joined.

use std::os::fd::OwnedFd;

use crate::error::Error;
use crate::layout::{MAX_CAPACITY, MIN_CAPACITY, Role};
use crate::receiver::Receiver;
use crate::segment::Segment;
use crate::sender::Sender;
use crate::wait::Wait;

/// The capacity a channel gets unless told otherwise.
pub const DEFAULT_CAPACITY: usize = 256 << 10;

/// The longest message a receiver accepts unless told otherwise (64 MiB),
/// or the ring's capacity if that is larger; see
/// [`Options::max_message`].
pub const DEFAULT_MAX_MESSAGE: usize = 64 << 20;

/// Makes and joins channels.
///
/// A channel is one shared-memory segment that holds a ring of
/// [`capacity`](Self::capacity) bytes; memory use is fixed by it, whatever
/// the length of the messages. The [`wait`](Self::wait) policy applies to
/// the end made with these options only; each side picks its own.
///
/// Two ways to join:
/// - By name: one side calls `create_sender` / `create_receiver` (a name of
///   128 random bits, or one of its own with the `_named` variants), passes
///   [`Sender::name`] to the other process, which calls `open_receiver` /
///   `open_sender`. The opener removes the name from `/dev/shm` as soon as
///   it is attached; the creator removes it on drop if nobody came.
/// - Without a name: [`create_anonymous`](Self::create_anonymous) makes a
///   sealed memfd, [`send_fd`](crate::send_fd) hands it over a Unix
///   socket, and each side calls `sender_from_fd` / `receiver_from_fd`.
///   Only the holder of the socket can join, and the seals stop a hostile
///   peer from shrinking the memory under the other (which would raise
///   `SIGBUS`): prefer this way when the peer is not trusted.
#[derive(Clone, Debug)]
pub struct Options {
    capacity: usize,
    wait: Wait,
    /// `None`: the receiver's default.
    max_message: Option<usize>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            capacity: DEFAULT_CAPACITY,
            wait: Wait::default(),
            max_message: None,
        }
    }
}

impl Options {
    pub fn new() -> Options {
        Options::default()
    }

    /// Bytes in the ring, rounded up to a power of two between
    /// [`MIN_CAPACITY`] and [`MAX_CAPACITY`]. Used when creating only: an
    /// opener takes the creator's.
    pub fn capacity(mut self, bytes: usize) -> Options {
        self.capacity = bytes.clamp(MIN_CAPACITY, MAX_CAPACITY).next_power_of_two();
        self
    }

    /// How blocked calls of this end wait.
    pub fn wait(mut self, wait: Wait) -> Options {
        self.wait = wait;
        self
    }

    /// The longest message a receiver made with these options accepts
    /// (receivers only; a sender sends any length). A longer message is
    /// refused before anything is allocated for it: the receive fails with
    /// [`Error::TooLarge`] once, the message is skipped as its chunks
    /// arrive, and the next receive returns the next message (see
    /// [`Receiver`](crate::Receiver#long-messages)).
    ///
    /// The limit is what stands between a hostile sender and this
    /// process's memory: one that announces a message of gigabytes makes
    /// a receive allocate as much as it then sends, up to this. The
    /// default, [`DEFAULT_MAX_MESSAGE`] (64 MiB, or the ring's capacity if
    /// larger), lets honest traffic of any usual size through; raise it
    /// for larger messages from a peer you trust, lower it when a peer you
    /// do not trust sends small ones. At most `isize::MAX`.
    pub fn max_message(mut self, bytes: usize) -> Options {
        self.max_message = Some(bytes);
        self
    }

    /// Applies the options that a receiver takes after it is made.
    fn receiver(&self, mut rx: Receiver) -> Receiver {
        if let Some(bytes) = self.max_message {
            rx.set_max_message(bytes);
        }
        rx
    }

    /// Makes a channel under a new name of 128 random bits and returns its
    /// sending end; [`Sender::name`] tells the name to pass to the peer.
    pub fn create_sender(&self) -> Result<Sender, Error> {
        Segment::create_named(None, self.capacity, Role::Sender)
            .map(|s| Sender::new(s, self.wait, None))
    }

    /// Makes a channel under a new name and returns its receiving end.
    pub fn create_receiver(&self) -> Result<Receiver, Error> {
        Segment::create_named(None, self.capacity, Role::Receiver)
            .map(|s| self.receiver(Receiver::new(s, self.wait, None)))
    }

    /// [`create_sender`](Self::create_sender) under `name` (`/` and up to
    /// 254 bytes): fails with [`Error::AlreadyExists`] if the name is
    /// taken. A name others can guess lets them try to join first; the
    /// lock on each side makes them fail or fail you, never share.
    pub fn create_sender_named(&self, name: &str) -> Result<Sender, Error> {
        Segment::create_named(Some(name), self.capacity, Role::Sender)
            .map(|s| Sender::new(s, self.wait, None))
    }

    /// [`create_receiver`](Self::create_receiver) under `name`.
    pub fn create_receiver_named(&self, name: &str) -> Result<Receiver, Error> {
        Segment::create_named(Some(name), self.capacity, Role::Receiver)
            .map(|s| self.receiver(Receiver::new(s, self.wait, None)))
    }

    /// Joins the channel called `name` as its sender (its creator made the
    /// receiving end).
    pub fn open_sender(&self, name: &str) -> Result<Sender, Error> {
        Segment::open_named(name, Role::Sender).map(|s| Sender::new(s, self.wait, None))
    }

    /// Joins the channel called `name` as its receiver.
    pub fn open_receiver(&self, name: &str) -> Result<Receiver, Error> {
        Segment::open_named(name, Role::Receiver)
            .map(|s| self.receiver(Receiver::new(s, self.wait, None)))
    }

    /// Makes a channel without a name: a memfd sealed against resizing,
    /// with no end attached yet. Pass it (or a `try_clone` of it) to
    /// [`sender_from_fd`](Self::sender_from_fd) in one process and to
    /// [`receiver_from_fd`](Self::receiver_from_fd) in the other, through
    /// [`send_fd`](crate::send_fd) or across `fork`.
    pub fn create_anonymous(&self) -> Result<OwnedFd, Error> {
        Segment::create_anonymous(self.capacity)
    }

    /// Joins the channel behind `fd` as its sender. The descriptor is
    /// checked (read-write, sealed against resizing, ours, a valid header),
    /// then replaced by one of our own and closed.
    pub fn sender_from_fd(&self, fd: OwnedFd) -> Result<Sender, Error> {
        Segment::from_fd(fd, Role::Sender).map(|s| Sender::new(s, self.wait, None))
    }

    /// Joins the channel behind `fd` as its receiver; see
    /// [`sender_from_fd`](Self::sender_from_fd).
    pub fn receiver_from_fd(&self, fd: OwnedFd) -> Result<Receiver, Error> {
        Segment::from_fd(fd, Role::Receiver)
            .map(|s| self.receiver(Receiver::new(s, self.wait, None)))
    }
}
