//! How a channel is made and joined.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;

use crate::connection::{Connection, dial};
use crate::error::Error;
use crate::handshake::{HANDSHAKE_TIMEOUT, Terms};
use crate::layout::{MAX_CAPACITY, MIN_CAPACITY, Role};
use crate::listener::Listener;
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
/// - Through a rendezvous: [`bind`](Self::bind) a
///   [`Listener`] to a Unix socket path (or
///   [`bind_abstract`](Self::bind_abstract) a name), and
///   [`connect`](Self::connect) to it from any number of clients, one
///   after another or at once: each connection is a duplex pair of
///   anonymous channels made for it (the listener's capacity), with the
///   peer's credentials checked on both sides.
#[derive(Clone, Debug)]
pub struct Options {
    capacity: usize,
    wait: Wait,
    /// `None`: the receiver's default.
    max_message: Option<usize>,
    rendezvous: Rendezvous,
}

/// The options of [`Options::bind`] and [`Options::connect`] only.
#[derive(Clone, Debug)]
struct Rendezvous {
    allowed: Vec<u32>,
    timeout: Duration,
    socket_mode: Option<u32>,
}

impl Default for Rendezvous {
    fn default() -> Self {
        Rendezvous {
            allowed: Vec::new(),
            timeout: HANDSHAKE_TIMEOUT,
            socket_mode: None,
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            capacity: DEFAULT_CAPACITY,
            wait: Wait::default(),
            max_message: None,
            rendezvous: Rendezvous::default(),
        }
    }
}

impl Options {
    /// The defaults: [`DEFAULT_CAPACITY`], the default [`Wait`] policy,
    /// the receiver's default [`max_message`](Self::max_message), and for
    /// a rendezvous our own uid only, [`HANDSHAKE_TIMEOUT`] and a socket
    /// file of mode 0600.
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

/// A rendezvous: channels made the way Unix sockets make connections (see
/// [`Listener`]).
impl Options {
    /// Admits peers of `uid` through a rendezvous, besides our own
    /// effective uid (the default, and the only one admitted otherwise):
    /// a listener serves clients of `uid`; a client accepts a listener
    /// that runs as `uid`. Call it once per uid. For a path listener it
    /// also makes the socket file connectable by others (mode 0666, unless
    /// [`socket_mode`](Self::socket_mode) says otherwise): the kernel's
    /// credentials (`SO_PEERCRED`) are then the gate. The channels of a
    /// connection with another user are memfds of the listener's user,
    /// passed over the socket, mode 0600: nobody else can open them.
    pub fn allow_uid(mut self, uid: u32) -> Options {
        if !self.rendezvous.allowed.contains(&uid) {
            self.rendezvous.allowed.push(uid);
        }
        self
    }

    /// How long a rendezvous handshake may take in all, on either side
    /// (default [`HANDSHAKE_TIMEOUT`](crate::HANDSHAKE_TIMEOUT)): a peer
    /// that is silent or slow for longer gets [`Error::Handshake`]. For a
    /// client, the time includes the wait in the listener's queue. Zero
    /// fails every handshake; `Duration::MAX` waits for ever.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Options {
        self.rendezvous.timeout = timeout;
        self
    }

    /// The mode of a path listener's socket file (only its permission
    /// bits are used; connecting needs write permission). Default 0600
    /// (our own user only), or 0666 once another uid is admitted with
    /// [`allow_uid`](Self::allow_uid). A group, say 0660 with the file's
    /// group set by the caller, narrows who can even connect.
    pub fn socket_mode(mut self, mode: u32) -> Options {
        self.rendezvous.socket_mode = Some(mode & 0o777);
        self
    }

    pub(crate) fn terms(&self) -> Terms {
        Terms {
            capacity: self.capacity,
            wait: self.wait,
            allowed: self.rendezvous.allowed.clone(),
            timeout: self.rendezvous.timeout,
            socket_mode: self.rendezvous.socket_mode,
            max_message: self.max_message,
        }
    }

    /// `socket(AF_UNIX, SOCK_SEQPACKET)`, `bind(path)`, `chmod`, `listen`:
    /// a [`Listener`] at the filesystem path `path`, whose connections get
    /// two rings of [`capacity`](Self::capacity) bytes each and whose ends
    /// wait as [`wait`](Self::wait) says. A path left by a dead listener is
    /// reclaimed; one a live listener holds fails with
    /// [`std::io::ErrorKind::AddrInUse`]; anything at `path` that is not a
    /// socket is left alone and the bind fails. `path` is at most 107
    /// bytes (`sun_path`). See [`Listener`].
    pub fn bind(&self, path: impl AsRef<Path>) -> Result<Listener, Error> {
        Listener::bind_path(path.as_ref(), self.terms())
    }

    /// A [`Listener`] at `name` (up to 107 bytes) in Linux's abstract
    /// socket namespace: no file, nothing to clean up (the name goes with
    /// the socket, however the process dies), and no permissions, so that
    /// any process in the network namespace can connect and the credential
    /// check is the only gate. A name in use fails with
    /// [`std::io::ErrorKind::AddrInUse`].
    pub fn bind_abstract(&self, name: impl AsRef<[u8]>) -> Result<Listener, Error> {
        Listener::bind_name(name.as_ref(), self.terms())
    }

    /// Connects to the [`Listener`] at the filesystem path `path`: checks
    /// the listener's credentials (its uid must be ours or
    /// [allowed](Self::allow_uid)), runs the handshake within the
    /// [handshake timeout](Self::handshake_timeout), and attaches the two
    /// channels the listener made, whose ends wait as
    /// [`wait`](Self::wait) says (the capacity is the listener's).
    ///
    /// Fails with an [`Error::Io`] of the `connect` call (kind `NotFound`:
    /// no such path; `ConnectionRefused`: a dead listener's file),
    /// [`Error::Untrusted`] when either side refuses the other's uid, or
    /// [`Error::Handshake`] when the listener breaks the protocol or does
    /// not answer in time. A client that lost its listener (or was
    /// restarted) connects again: every connection is new.
    pub fn connect(&self, path: impl AsRef<Path>) -> Result<Connection, Error> {
        let path = path.as_ref();
        let addr = rustix::net::SocketAddrUnix::new(path)?;
        dial(&addr, &path.display().to_string(), &self.terms())
    }

    /// [`connect`](Self::connect) to a listener at `name` in the abstract
    /// namespace.
    pub fn connect_abstract(&self, name: impl AsRef<[u8]>) -> Result<Connection, Error> {
        let name = name.as_ref();
        let addr = rustix::net::SocketAddrUnix::new_abstract_name(name)?;
        let shown = format!("@{}", String::from_utf8_lossy(name));
        dial(&addr, &shown, &self.terms())
    }
}
