//! A rendezvous: channels made the way Unix sockets make connections. A
//! [`Listener`] waits on a Unix socket (a path, or a name in Linux's
//! abstract namespace); each [`connect`](crate::connect) to it yields a
//! [`Connection`] on both sides: a fresh duplex pair of channels, two
//! sealed memfds passed over the socket with their doorbells, and the
//! peer's credentials. A restarted client simply connects again; a path
//! left by a dead listener is reclaimed by the next bind.
//!
//! The handshake itself is in `handshake.rs` (the messages) and
//! `connection.rs` (both sides' steps); the listener runs many at once
//! (`accepting.rs`).

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, FlockOperation, Mode, OFlags};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use crate::accepting::Acceptor;
use crate::connection::Connection;
use crate::error::Error;
use crate::handshake::Terms;
use crate::options::Options;

/// Connections that may wait in the kernel's queue for an `accept`.
const BACKLOG: i32 = 128;
/// Tries at taking a lock file that other listeners keep removing under
/// us (each try fails only if one did, so this is never reached in
/// practice; it turns a pathological race into an error, not a hang).
const LOCK_TRIES: u32 = 64;
/// The socket file's mode when only our own uid may connect.
const OWNER_ONLY: u32 = 0o600;
/// The socket file's mode when other uids are admitted: anyone may
/// connect, and `SO_PEERCRED` decides who is served.
const ANYONE_CONNECTS: u32 = 0o666;

/// The listening end of a rendezvous: a Unix socket (`SOCK_SEQPACKET`)
/// at a path or an abstract name, on which every [`accept`](Self::accept)
/// makes a new [`Connection`] with one client.
///
/// # Who may connect
///
/// Each side checks the other's credentials, which the kernel reports
/// (`SO_PEERCRED`): by default only a peer of our own effective uid is
/// served (root included: uid 0 is another uid); [`allow_uid`]
/// (here or on [`Options`]) admits others. A client refused gets
/// [`Error::Untrusted`], and so does the `accept` that refused it. A
/// socket file is made with mode 0600 (bound, `chmod`, then `listen`: no
/// one can connect before the mode is set), so that other users cannot
/// even connect; when another uid is admitted it gets 0666 instead (the
/// credential check is then the gate; a directory of restricted access
/// narrows it further), or whatever [`Options::socket_mode`] says. An
/// abstract name ([`bind_abstract`](Self::bind_abstract)) has no
/// permissions at all: any process in the network namespace can connect,
/// and the credential check is the only gate.
///
/// # Paths, dead listeners, and a second listener
///
/// A path listener holds `<path>.lock` (mode 0600, `flock`) for its life.
/// The next [`bind`](Self::bind) to the path takes that lock: if it can,
/// the previous listener is dead and its socket file is removed and made
/// again; if it cannot, a live listener has the path and the bind fails
/// with [`io::ErrorKind::AddrInUse`]. Dropping the listener removes the
/// socket file and the lock file; a killed one leaves both until the next
/// bind. An abstract name vanishes with its socket: a second bind while
/// it lives fails with `AddrInUse` too.
///
/// # Accepting
///
/// [`accept`](Self::accept) runs the handshakes of every client that has
/// connected at once, each bounded by its own handshake timeout
/// ([`Options::handshake_timeout`];
/// [`HANDSHAKE_TIMEOUT`](crate::HANDSHAKE_TIMEOUT) by default), and
/// returns the first that ends: a client that connects and says nothing,
/// or says hello and then stalls, holds up no one else; the honest
/// clients behind it are served as they speak, and the silent one makes
/// one `accept` return [`Error::Handshake`] when its own time is up (a
/// client that says garbage, at once). Up to 64 handshakes are in
/// progress at a time; further clients wait in the kernel's queue until
/// one ends. No thread is started: one call steps every handshake that
/// can move, never waiting on any one client, and waits (when there is
/// nothing to do) on one descriptor that covers them all. `accept` may
/// also be called from several threads at once (it takes `&self`).
///
/// The listener is [`AsFd`]: that descriptor (an epoll instance holding
/// the listening socket, the sockets of the handshakes in progress and a
/// timer for their deadlines; not the listening socket itself) is
/// readable whenever `accept` has something to do: a new client, a
/// message of a handshake in progress, or a deadline passed. A poll loop
/// waits for it to be readable and then calls a
/// [non-blocking](Self::set_nonblocking) `accept`, which returns a
/// connection, a failed client's error, or [`io::ErrorKind::WouldBlock`]
/// (a step was taken, nothing ended yet).
///
/// ```
/// # fn main() -> Result<(), shmchan::Error> {
/// use shmchan::Listener;
///
/// let dir = std::env::temp_dir().join(format!("shmchan-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("server.sock");
/// let listener = Listener::bind(&path)?;
/// // Here a thread stands in for the client process.
/// let client = std::thread::spawn(move || -> Result<(), shmchan::Error> {
///     let mut conn = shmchan::connect(&path)?;
///     conn.sender().send(b"ping")?;
///     assert_eq!(conn.receiver().recv()?, b"pong");
///     Ok(())
/// });
/// let mut conn = listener.accept()?;
/// assert_eq!(conn.peer().pid, std::process::id());
/// assert_eq!(conn.receiver().recv()?, b"ping");
/// conn.sender().send(b"pong")?;
/// client.join().unwrap()?;
/// drop(listener); // removes server.sock and server.sock.lock
/// std::fs::remove_dir(&dir)?;
/// # Ok(()) }
/// ```
///
/// [`allow_uid`]: Self::allow_uid
pub struct Listener {
    /// Non-blocking (see `accepting.rs`).
    sock: OwnedFd,
    acceptor: Acceptor,
    /// A path listener's files; `None` for an abstract name.
    file: Option<SocketFile>,
    terms: Terms,
}

impl Listener {
    /// Listens at the filesystem path `path` with the default
    /// [`Options`]; see [`Options::bind`].
    pub fn bind(path: impl AsRef<Path>) -> Result<Listener, Error> {
        Options::new().bind(path)
    }

    /// Listens at `name` in Linux's abstract socket namespace with the
    /// default [`Options`]; see [`Options::bind_abstract`].
    pub fn bind_abstract(name: impl AsRef<[u8]>) -> Result<Listener, Error> {
        Options::new().bind_abstract(name)
    }

    pub(crate) fn bind_path(path: &Path, terms: Terms) -> Result<Listener, Error> {
        let addr = SocketAddrUnix::new(path)?;
        let mut lock_path = OsString::from(path);
        lock_path.push(".lock");
        let lock_path = PathBuf::from(lock_path);
        let lock = take_lock(path, &lock_path)?;
        // From here on, dropping `file` removes what we made.
        let mut file = SocketFile {
            path: path.to_owned(),
            lock_path,
            _lock: lock,
            id: None,
        };
        // Holding the lock: a socket at the path is a dead listener's,
        // unless something answers on it (a program of another kind, or a
        // listener whose lock file was removed by hand): never take over a
        // live socket.
        match rustix::fs::lstat(path) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Socket => {
                if answers(&addr)? {
                    return Err(Error::Io(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!(
                            "{} is a socket something listens on (not removed)",
                            path.display()
                        ),
                    )));
                }
                match rustix::fs::unlink(path) {
                    Ok(()) | Err(Errno::NOENT) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(_) => {
                return Err(Error::Io(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} exists and is not a socket (not removed)",
                        path.display()
                    ),
                )));
            }
            Err(Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
        let sock = new_socket()?;
        rustix::net::bind(&sock, &addr).map_err(|e| bind_error(e, path.display()))?;
        let st = rustix::fs::lstat(path)?;
        file.id = Some((st.st_dev, st.st_ino));
        // Before `listen`: nobody can connect to a socket that does not
        // listen yet, so nobody connects before the mode is right.
        rustix::fs::chmod(path, Mode::from_raw_mode(socket_mode(&terms)))?;
        rustix::net::listen(&sock, BACKLOG)?;
        Ok(Listener {
            acceptor: Acceptor::new(&sock)?,
            sock,
            file: Some(file),
            terms,
        })
    }

    pub(crate) fn bind_name(name: &[u8], terms: Terms) -> Result<Listener, Error> {
        let addr = SocketAddrUnix::new_abstract_name(name)?;
        let sock = new_socket()?;
        let shown = String::from_utf8_lossy(name);
        rustix::net::bind(&sock, &addr).map_err(|e| bind_error(e, format!("@{shown}")))?;
        rustix::net::listen(&sock, BACKLOG)?;
        Ok(Listener {
            acceptor: Acceptor::new(&sock)?,
            sock,
            file: None,
            terms,
        })
    }

    /// The next [`Connection`] made: takes every client waiting, checks
    /// its credentials, and runs its handshake beside those of the others
    /// in progress, each within its handshake timeout (see
    /// [Accepting](Self#accepting)); returns the first that ends. Waits
    /// until one does, unless the listener is non-blocking: then
    /// [`io::ErrorKind::WouldBlock`] when none has ended yet.
    ///
    /// Fails with [`Error::Untrusted`] for a client of a uid not admitted
    /// (the client is told), [`Error::Handshake`] for one that breaks or
    /// does not finish the handshake in time (it says how); either way
    /// only that client is dropped: call `accept` again for the next.
    /// Safe to call from several threads at once.
    pub fn accept(&self) -> Result<Connection, Error> {
        self.acceptor.accept(&self.sock, &self.terms)
    }

    /// [`accept`](Self::accept) for ever: an iterator of its results,
    /// which never ends (a failed handshake is one `Err` item; the next
    /// item is the next client).
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// Admits clients of `uid` from now on, besides our own uid. For a
    /// path listener made with the default mode, the socket file's mode
    /// becomes 0666, so that they can connect (see [`Listener`]).
    pub fn allow_uid(&mut self, uid: u32) -> Result<(), Error> {
        if !self.terms.allowed.contains(&uid) {
            self.terms.allowed.push(uid);
        }
        if let Some(file) = &self.file {
            rustix::fs::chmod(&file.path, Mode::from_raw_mode(socket_mode(&self.terms)))?;
        }
        Ok(())
    }

    /// A non-blocking listener's [`accept`](Self::accept) never waits: it
    /// takes the steps that can be taken now and fails with
    /// [`io::ErrorKind::WouldBlock`] when no handshake has ended, for use
    /// from a poll loop. Wait for the listener's descriptor ([`AsFd`]) to
    /// be readable before each `accept`: it covers new clients, the
    /// messages of handshakes in progress and their deadlines (see
    /// [Accepting](Self#accepting)). [`incoming`](Self::incoming) on a
    /// non-blocking listener yields `WouldBlock` items without end. (The
    /// listening socket itself is always non-blocking inside; this sets
    /// how `accept` behaves.)
    pub fn set_nonblocking(&self, nonblocking: bool) -> Result<(), Error> {
        self.acceptor.set_nonblocking(nonblocking);
        Ok(())
    }

    /// The socket file's path; `None` for an abstract name.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_ref().map(|f| f.path.as_path())
    }
}

/// Readable when [`accept`](Listener::accept) has something to do: a
/// client waiting, a message of a handshake in progress, or a handshake's
/// deadline passed (an epoll descriptor; see
/// [Accepting](Listener#accepting)).
impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.acceptor.as_fd()
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("path", &self.path())
            .field("capacity", &self.terms.capacity)
            .field("allowed", &self.terms.allowed)
            .finish_non_exhaustive()
    }
}

/// The connections of a [`Listener`], from [`Listener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a Listener,
}

impl Iterator for Incoming<'_> {
    type Item = Result<Connection, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(self.listener.accept())
    }
}

/// A path listener's socket file and lock file, removed on drop.
struct SocketFile {
    path: PathBuf,
    lock_path: PathBuf,
    /// Held (`flock`) for the listener's life; released when closed.
    _lock: OwnedFd,
    /// The socket file's device and inode, once bound.
    id: Option<(u64, u64)>,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        // Only what is still ours: the socket file we bound, then (still
        // holding the lock) the lock file, so that a listener that opened
        // it meanwhile notices and opens the path anew.
        if let (Some(id), Ok(st)) = (self.id, rustix::fs::lstat(&self.path)) {
            if id == (st.st_dev, st.st_ino) {
                let _ = rustix::fs::unlink(&self.path);
            }
        }
        if let (Ok(ours), Ok(there)) = (
            rustix::fs::fstat(&self._lock),
            rustix::fs::lstat(&self.lock_path),
        ) {
            if (ours.st_dev, ours.st_ino) == (there.st_dev, there.st_ino) {
                let _ = rustix::fs::unlink(&self.lock_path);
            }
        }
    }
}

/// `open(lock_path, O_CREAT | O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0600)` and
/// `flock(LOCK_EX | LOCK_NB)`, then checks that the path still names the
/// locked file (a listener that was dropping may have removed it between
/// our open and our lock): the usual race-free lock-file pattern.
fn take_lock(path: &Path, lock_path: &Path) -> Result<OwnedFd, Error> {
    let uid = rustix::process::geteuid().as_raw();
    for _ in 0..LOCK_TRIES {
        let flags = OFlags::CREATE | OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rustix::fs::open(lock_path, flags, Mode::RUSR | Mode::WUSR) {
            Ok(fd) => fd,
            Err(Errno::LOOP) => {
                return Err(planted(format!(
                    "{} is a symbolic link, not a listener's lock file",
                    lock_path.display()
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let st = rustix::fs::fstat(&fd)?;
        if st.st_uid != uid {
            return Err(planted(format!(
                "the lock file {} belongs to uid {}, not to us (uid {uid})",
                lock_path.display(),
                st.st_uid
            )));
        }
        match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => {
                return Err(Error::Io(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "a live listener holds {} (its lock file {} is locked)",
                        path.display(),
                        lock_path.display()
                    ),
                )));
            }
            Err(e) => return Err(e.into()),
        }
        match rustix::fs::lstat(lock_path) {
            Ok(now) if (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino) => {
                // Made by a umask of ours, or by a listener of old.
                rustix::fs::fchmod(&fd, Mode::RUSR | Mode::WUSR)?;
                return Ok(fd);
            }
            Ok(_) | Err(Errno::NOENT) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Io(io::Error::other(format!(
        "{} kept changing under us",
        lock_path.display()
    ))))
}

/// Something not ours where the lock file goes: the bind fails with
/// [`io::ErrorKind::PermissionDenied`], saying what is there, which is
/// left as it is.
fn planted(what: String) -> Error {
    Error::Io(io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("{what} (left as it is; remove it or bind elsewhere)"),
    ))
}

/// Whether something listens on `addr`: a connection that does not wait
/// is taken or queued (or refused for its socket type). Only "connection
/// refused" says that nobody listens.
fn answers(addr: &SocketAddrUnix) -> Result<bool, Error> {
    let probe = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    match rustix::net::connect(&probe, addr) {
        Err(Errno::CONNREFUSED) => Ok(false),
        Ok(()) | Err(Errno::AGAIN | Errno::PROTOTYPE | Errno::INPROGRESS) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// `socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC)`: message boundaries
/// for the handshake.
pub(crate) fn new_socket() -> Result<OwnedFd, Error> {
    Ok(rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// The socket file's mode under `terms`.
fn socket_mode(terms: &Terms) -> u32 {
    let me = rustix::process::geteuid().as_raw();
    terms
        .socket_mode
        .unwrap_or(if terms.allowed.iter().all(|&u| u == me) {
            OWNER_ONLY
        } else {
            ANYONE_CONNECTS
        })
}

fn bind_error(e: Errno, what: impl std::fmt::Display) -> Error {
    let e = io::Error::from(e);
    Error::Io(io::Error::new(e.kind(), format!("binding {what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `accept` from several threads at once needs a `Sync` listener.
    #[test]
    fn a_listener_is_shared_by_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Listener>();
    }

    /// For a poll loop: no client waiting is `WouldBlock`, not a wait.
    #[test]
    fn a_nonblocking_listener_does_not_wait() {
        let name = format!("shmchan-unit-nonblocking-{}", std::process::id());
        let listener = Listener::bind_abstract(name).unwrap();
        listener.set_nonblocking(true).unwrap();
        match listener.accept() {
            Err(Error::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_socket_mode_follows_the_admitted_uids() {
        let me = rustix::process::geteuid().as_raw();
        let mut terms = Options::new().terms();
        assert_eq!(socket_mode(&terms), OWNER_ONLY);
        terms.allowed.push(me);
        assert_eq!(socket_mode(&terms), OWNER_ONLY);
        terms.allowed.push(me.wrapping_add(1));
        assert_eq!(socket_mode(&terms), ANYONE_CONNECTS);
        terms.socket_mode = Some(0o660);
        assert_eq!(socket_mode(&terms), 0o660);
    }
}
