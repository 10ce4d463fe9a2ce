//! How a subscriber gets a broadcast's two descriptors: over a Unix
//! socket in one `SCM_RIGHTS` message (a socket the caller has, with
//! [`Publisher::send_to`](super::Publisher::send_to)), or through a
//! rendezvous: a [`Listener`] that the publisher's process binds, and
//! [`Options::subscribe`](super::Options::subscribe) in the subscriber's.
//!
//! The message is one datagram: the text [`HELLO`] and the control and
//! data descriptors. The receiving side checks the text and the count and
//! then checks the objects themselves (`shm::open`): nothing it receives
//! is trusted. Through a rendezvous both sides check the other's uid as
//! the kernel reports it (`SO_PEERCRED`): the same user only.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::io::Errno;
use rustix::net::sockopt::{Timeout, set_socket_timeout};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, recvmsg, sendmsg,
};

use super::Publisher;
use crate::error::Error;
use crate::handshake::{Credentials, peer_credentials};
use crate::listener::new_socket;

/// The text that comes with a broadcast's descriptors: what they are, and
/// the version of this exchange.
pub(crate) const HELLO: &[u8] = b"shmchan-broadcast/1";

/// `sendmsg(socket, HELLO, SCM_RIGHTS [control, data])`.
pub(crate) fn send_fds(socket: BorrowedFd<'_>, fds: [BorrowedFd<'_>; 2]) -> io::Result<()> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(io::Error::other("no room for SCM_RIGHTS"));
    }
    let sent = sendmsg(
        socket,
        &[IoSlice::new(HELLO)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    if sent != HELLO.len() {
        return Err(io::ErrorKind::WriteZero.into());
    }
    Ok(())
}

/// `recvmsg(socket, MSG_CMSG_CLOEXEC)`: the two descriptors of a
/// broadcast, after [`HELLO`]. Anything else is [`Error::Handshake`],
/// which says what came.
pub(crate) fn recv_fds(socket: BorrowedFd<'_>) -> Result<(OwnedFd, OwnedFd), Error> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut text = [0u8; 64];
    let msg = match recvmsg(
        socket,
        &mut [IoSliceMut::new(&mut text)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    ) {
        Ok(msg) => msg,
        Err(Errno::AGAIN) => {
            return Err(Error::Handshake(
                "the publisher sent no descriptors in time".into(),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let mut fds: Vec<OwnedFd> = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(got) = message {
            fds.extend(got);
        }
    }
    if msg.bytes == 0 && fds.is_empty() {
        return Err(Error::Handshake(
            "the socket closed before the descriptors came".into(),
        ));
    }
    if &text[..msg.bytes.min(text.len())] != HELLO {
        return Err(Error::Handshake(format!(
            "not a broadcast's descriptors (the text was {:?})",
            String::from_utf8_lossy(&text[..msg.bytes.min(text.len())])
        )));
    }
    if msg.flags.contains(ReturnFlags::CTRUNC) || fds.len() != 2 {
        return Err(Error::Handshake(format!(
            "{} descriptors came, not 2",
            if msg.flags.contains(ReturnFlags::CTRUNC) {
                "more than 2".to_string()
            } else {
                fds.len().to_string()
            }
        )));
    }
    let data = fds.pop().expect("two");
    let control = fds.pop().expect("two");
    Ok((control, data))
}

/// The rendezvous of a broadcast: a Unix socket (`SOCK_SEQPACKET`) at a
/// path or an abstract name; each [`accept`](Self::accept) hands one
/// subscriber the broadcast's descriptors. A subscriber joins with
/// [`Options::subscribe`](super::Options::subscribe) or
/// [`subscribe_abstract`](super::Options::subscribe_abstract).
///
/// The listener holds its own copies of the descriptors, so it can run
/// in another thread than the publisher's; if the publisher has gone, a
/// subscriber that joins gets [`Error::Closed`] or [`Error::PeerGone`]
/// at its first receive. Only clients of our own effective uid are
/// served (`SO_PEERCRED`); a path's socket file has mode 0600. `accept`
/// never waits on the client: it sends one datagram and is done.
pub struct Listener {
    sock: OwnedFd,
    control: OwnedFd,
    data: OwnedFd,
    /// A path listener's socket file and its device and inode.
    file: Option<(PathBuf, (u64, u64))>,
}

impl Listener {
    /// `bind(path)`, `chmod 0600`, `listen`: a rendezvous for `publisher`
    /// at the filesystem path `path`. A socket left at `path` by a dead
    /// listener (nobody answers on it) is replaced; a live one, or
    /// anything that is not a socket, fails the bind. Dropping the
    /// listener removes the socket file.
    pub fn bind(publisher: &Publisher, path: impl AsRef<Path>) -> Result<Listener, Error> {
        let path = path.as_ref();
        let addr = SocketAddrUnix::new(path)?;
        let sock = new_socket()?;
        match rustix::net::bind(&sock, &addr) {
            Ok(()) => {}
            Err(Errno::ADDRINUSE) => {
                let st = rustix::fs::lstat(path)?;
                let is_socket =
                    rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Socket;
                if !is_socket || answers(&addr)? {
                    return Err(Error::Io(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("{} is in use (not removed)", path.display()),
                    )));
                }
                rustix::fs::unlink(path)?;
                rustix::net::bind(&sock, &addr)?;
            }
            Err(e) => return Err(e.into()),
        }
        let st = rustix::fs::lstat(path)?;
        let file = Some((path.to_owned(), (st.st_dev, st.st_ino)));
        let mut listener = Self::with_socket(publisher, sock)?;
        listener.file = file;
        // Before `listen`: nobody can connect before the mode is right.
        rustix::fs::chmod(path, rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR)?;
        rustix::net::listen(&listener.sock, 128)?;
        Ok(listener)
    }

    /// A rendezvous for `publisher` at `name` in Linux's abstract socket
    /// namespace: no file; any process in the network namespace can
    /// connect, and the credential check is the gate.
    pub fn bind_abstract(publisher: &Publisher, name: impl AsRef<[u8]>) -> Result<Listener, Error> {
        let addr = SocketAddrUnix::new_abstract_name(name.as_ref())?;
        let sock = new_socket()?;
        rustix::net::bind(&sock, &addr)?;
        rustix::net::listen(&sock, 128)?;
        Self::with_socket(publisher, sock)
    }

    fn with_socket(publisher: &Publisher, sock: OwnedFd) -> Result<Listener, Error> {
        let [control, data] = publisher.descriptors();
        Ok(Listener {
            sock,
            control: control.try_clone_to_owned()?,
            data: data.try_clone_to_owned()?,
            file: None,
        })
    }

    /// Takes the next client, checks its uid, and sends it the
    /// broadcast's descriptors; returns its credentials. A client of
    /// another uid is dropped with [`Error::Untrusted`]: call `accept`
    /// again for the next. Waits for a client unless the listener is
    /// non-blocking ([`io::ErrorKind::WouldBlock`] then).
    pub fn accept(&self) -> Result<Credentials, Error> {
        let sock = loop {
            match rustix::net::accept_with(&self.sock, SocketFlags::CLOEXEC) {
                Ok(sock) => break sock,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        let peer = peer_credentials(&sock)?;
        let me = rustix::process::geteuid().as_raw();
        if peer.uid != me {
            return Err(Error::Untrusted(format!(
                "a subscriber of uid {}, not {me}",
                peer.uid
            )));
        }
        // A fresh socket's buffer is empty: this never waits on the client.
        send_fds(sock.as_fd(), [self.control.as_fd(), self.data.as_fd()])?;
        Ok(peer)
    }

    /// `ioctl(FIONBIO)`: see [`crate::Listener::set_nonblocking`].
    pub fn set_nonblocking(&self, nonblocking: bool) -> Result<(), Error> {
        rustix::io::ioctl_fionbio(&self.sock, nonblocking)?;
        Ok(())
    }
}

/// The listening socket: readable when a subscriber waits.
impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some((path, id)) = &self.file {
            if let Ok(st) = rustix::fs::lstat(path) {
                if (st.st_dev, st.st_ino) == *id {
                    let _ = rustix::fs::unlink(path);
                }
            }
        }
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("path", &self.file.as_ref().map(|f| &f.0))
            .finish_non_exhaustive()
    }
}

/// Whether something listens on `addr`: only "connection refused" says
/// that nobody does.
fn answers(addr: &SocketAddrUnix) -> Result<bool, Error> {
    let probe = rustix::net::socket_with(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::SEQPACKET,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    match rustix::net::connect(&probe, addr) {
        Err(Errno::CONNREFUSED) => Ok(false),
        Ok(()) | Err(Errno::AGAIN | Errno::PROTOTYPE | Errno::INPROGRESS) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// Connects to a broadcast's [`Listener`] at `addr`, checks that it runs
/// as our uid, and receives the descriptors within `timeout`.
pub(crate) fn dial(
    addr: &SocketAddrUnix,
    shown: &str,
    timeout: Duration,
) -> Result<(OwnedFd, OwnedFd), Error> {
    let sock = new_socket()?;
    let t = (timeout < Duration::MAX).then_some(timeout.max(Duration::from_millis(1)));
    set_socket_timeout(&sock, Timeout::Send, t)?;
    set_socket_timeout(&sock, Timeout::Recv, t)?;
    loop {
        match rustix::net::connect(&sock, addr) {
            Ok(()) | Err(Errno::ISCONN) => break,
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => {
                return Err(Error::Handshake(format!(
                    "{shown}: the listener's queue stayed full"
                )));
            }
            Err(e) => {
                let e = io::Error::from(e);
                return Err(Error::Io(io::Error::new(
                    e.kind(),
                    format!("connecting to {shown}: {e}"),
                )));
            }
        }
    }
    let peer = peer_credentials(&sock)?;
    let me = rustix::process::geteuid().as_raw();
    if peer.uid != me {
        return Err(Error::Untrusted(format!(
            "{shown} is a listener of uid {}, not {me}",
            peer.uid
        )));
    }
    recv_fds(sock.as_fd())
}
