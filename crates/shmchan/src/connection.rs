//! A connection made through a [`Listener`](crate::Listener): both sides'
//! steps of the handshake (see `handshake.rs`), and what they yield.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::FileType;
use rustix::io::Errno;
use rustix::net::sockopt::{Timeout, set_socket_timeout};
use rustix::net::{AddressFamily, SocketAddrUnix, SocketType};

use crate::bell::Bell;
use crate::error::Error;
use crate::handshake::{
    Credentials, Got, Message, PROTOCOL, Reason, Terms, WELCOME_FDS, Wire, peer_credentials,
};
use crate::layout::Role;
use crate::listener::new_socket;
use crate::options::Options;
use crate::receiver::Receiver;
use crate::segment::Segment;
use crate::sender::Sender;

/// Two channels between two processes, one each way, made by
/// [`Listener::accept`](crate::Listener::accept) on one side and
/// [`connect`] on the other, with the credentials the kernel reported
/// for the peer.
///
/// Each channel is a sealed memfd the listener made and passed over the
/// socket, so there is no name to leak or to guess, and a doorbell (a
/// Unix socket pair per channel, one end on each side). The ends report
/// a dead peer as every channel does ([`Error::PeerGone`]); dropping an
/// end closes its channel ([`Error::Closed`] on the other side). Both
/// sides had attached both channels when `accept` and `connect` returned.
///
/// ```
/// # fn main() -> Result<(), shmchan::Error> {
/// let name = format!("shmchan-doc-{}", std::process::id());
/// let listener = shmchan::Listener::bind_abstract(&name)?;
/// // Here a thread stands in for the listener's process.
/// let server = std::thread::spawn(move || -> Result<(), shmchan::Error> {
///     let (mut tx, mut rx) = listener.accept()?.into_split();
///     while let Ok(msg) = rx.recv() {
///         tx.send(&msg)?; // an echo, until the client closes
///     }
///     Ok(())
/// });
/// let mut conn = shmchan::connect_abstract(&name)?;
/// assert_eq!(conn.peer().pid, std::process::id()); // here, the same process
/// conn.sender().send(b"echo me")?;
/// assert_eq!(conn.receiver().recv()?, b"echo me");
/// drop(conn); // closes both channels: the server's recv is Closed
/// server.join().unwrap()?;
/// # Ok(()) }
/// ```
pub struct Connection {
    tx: Sender,
    rx: Receiver,
    peer: Credentials,
}

impl Connection {
    /// Our end of the channel to the peer.
    pub fn sender(&mut self) -> &mut Sender {
        &mut self.tx
    }

    /// Our end of the channel from the peer.
    pub fn receiver(&mut self) -> &mut Receiver {
        &mut self.rx
    }

    /// The peer's pid, uid and gid, as the kernel reported them when the
    /// connection was made (`SO_PEERCRED`); see [`Credentials`].
    pub fn peer(&self) -> Credentials {
        self.peer
    }

    /// The two ends, to be used apart (in two threads, say).
    pub fn into_split(self) -> (Sender, Receiver) {
        (self.tx, self.rx)
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("sender", &self.tx)
            .field("receiver", &self.rx)
            .field("peer", &self.peer)
            .finish()
    }
}

/// Connects to the [`Listener`](crate::Listener) at the filesystem path
/// `path` with the default [`Options`]; see [`Options::connect`].
pub fn connect(path: impl AsRef<Path>) -> Result<Connection, Error> {
    Options::new().connect(path)
}

/// Connects to the [`Listener`](crate::Listener) at `name` in the
/// abstract socket namespace with the default [`Options`]; see
/// [`Options::connect_abstract`].
pub fn connect_abstract(name: impl AsRef<[u8]>) -> Result<Connection, Error> {
    Options::new().connect_abstract(name)
}

/// The connecting side: `connect(2)`, the listener's credentials, Hello,
/// Welcome, attach, Ready. `what` names the address in errors.
pub(crate) fn dial(addr: &SocketAddrUnix, what: &str, terms: &Terms) -> Result<Connection, Error> {
    let sock = new_socket()?;
    let wire = Wire::new(sock.as_fd(), terms.timeout);
    // A listener whose queue is full makes `connect` block: bounded too.
    set_socket_timeout(&sock, Timeout::Send, wire.left()?)?;
    loop {
        match rustix::net::connect(&sock, addr) {
            Ok(()) | Err(Errno::ISCONN) => break,
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => {
                return Err(Error::Handshake(format!(
                    "{what} did not take the connection within {:?}",
                    terms.timeout
                )));
            }
            Err(e) => {
                let e = io::Error::from(e);
                return Err(Error::Io(io::Error::new(
                    e.kind(),
                    format!("connecting to {what}: {e}"),
                )));
            }
        }
    }
    let peer = peer_credentials(&sock)?;
    if !terms.admits(peer.uid) {
        return Err(Error::Untrusted(format!(
            "the listener at {what} runs as uid {} (pid {}), which is not admitted \
             (Options::allow_uid admits it)",
            peer.uid, peer.pid
        )));
    }
    // A listener that refuses us may have closed before our hello went
    // (EPIPE): its refusal is still there to read, and says more.
    let hello = wire.send(Message::Hello, &[]);
    let got = match (wire.recv(false), hello) {
        (Ok(got @ Got::Message(Message::Refuse { .. }, _)), _) => got,
        (_, Err(e)) => return Err(e),
        (got, Ok(())) => got?,
    };
    let (caps, fds) = match got {
        Got::Message(
            Message::Welcome {
                to_client,
                to_listener,
            },
            fds,
        ) if fds.len() == WELCOME_FDS => ((to_client, to_listener), fds),
        Got::Message(
            Message::Refuse {
                reason: Reason::Uid,
                ..
            },
            _,
        ) => {
            return Err(Error::Untrusted(format!(
                "the listener at {what} does not admit our uid {}",
                rustix::process::geteuid().as_raw()
            )));
        }
        Got::Message(
            Message::Refuse {
                reason: Reason::Version,
                version,
            },
            _,
        ) => {
            return Err(Error::Handshake(format!(
                "the listener at {what} speaks protocol version {version}, we speak {PROTOCOL}"
            )));
        }
        other => return Err(unexpected("a welcome", other)),
    };
    let (tx, rx) = match attach(fds, caps, peer.uid, terms) {
        Ok(ends) => ends,
        Err(e) => {
            wire.refuse(Reason::Channels);
            return Err(e);
        }
    };
    wire.send(Message::Ready, &[])?;
    Ok(Connection { tx, rx, peer })
}

/// The client's ends from a Welcome's descriptors: listener-to-client
/// memfd, client-to-listener memfd, then their bells. The memfds are open
/// file descriptions made for us and no longer held by the listener, so
/// they are adopted as they are (see `Segment::adopt_fd`), checked to be
/// `owner`'s.
fn attach(
    fds: Vec<OwnedFd>,
    (to_client, to_listener): (u64, u64),
    owner: u32,
    terms: &Terms,
) -> Result<(Sender, Receiver), Error> {
    let [rx_fd, tx_fd, rx_bell, tx_bell]: [OwnedFd; WELCOME_FDS] = fds
        .try_into()
        .map_err(|_| Error::Handshake("the wrong number of descriptors".into()))?;
    check_bell(&rx_bell)?;
    check_bell(&tx_bell)?;
    let rx_seg = Segment::adopt_fd(rx_fd, Role::Receiver, owner)?;
    let tx_seg = Segment::adopt_fd(tx_fd, Role::Sender, owner)?;
    if (rx_seg.capacity(), tx_seg.capacity()) != (to_client, to_listener) {
        return Err(Error::Handshake(format!(
            "rings of {} and {} bytes, announced as {to_client} and {to_listener}",
            rx_seg.capacity(),
            tx_seg.capacity()
        )));
    }
    let tx = Sender::new(tx_seg, terms.wait, Some(Bell { fd: tx_bell }));
    let rx = terms.receiver(Receiver::new(
        rx_seg,
        terms.wait,
        Some(Bell { fd: rx_bell }),
    ));
    Ok((tx, rx))
}

/// A bell must be a Unix stream socket (one end of a socket pair).
fn check_bell(fd: &OwnedFd) -> Result<(), Error> {
    let st = rustix::fs::fstat(fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Socket
        || rustix::net::sockopt::socket_type(fd)? != SocketType::STREAM
        || rustix::net::sockopt::socket_domain(fd)? != AddressFamily::UNIX
    {
        return Err(Error::Handshake(
            "a doorbell that is not a Unix stream socket".into(),
        ));
    }
    Ok(())
}

/// The accepting side's steps, on a socket `accept` returned, none of
/// which waits (`accepting.rs` waits for the client's messages, many
/// handshakes at once): [`admit`] the client's credentials; once its
/// first message came, [`welcome`] it with the two channels and their
/// bells; once its second came, [`established`].
///
/// The client's credentials (`SO_PEERCRED`): a client of a uid not
/// admitted is refused, and told.
pub(crate) fn admit(sock: &OwnedFd, terms: &Terms) -> Result<Credentials, Error> {
    let peer = peer_credentials(sock)?;
    if !terms.admits(peer.uid) {
        Wire::new(sock.as_fd(), terms.timeout).refuse_now(Reason::Uid);
        return Err(Error::Untrusted(format!(
            "a client of uid {} (pid {}) is not admitted (Listener::allow_uid admits it)",
            peer.uid, peer.pid
        )));
    }
    Ok(peer)
}

/// What the listener made for a client it welcomed: its own ends of the
/// two channels and of their bells.
pub(crate) struct Welcomed {
    tx_seg: Segment,
    rx_seg: Segment,
    tx_bell: OwnedFd,
    rx_bell: OwnedFd,
}

/// The client's first message `got` must be a hello: then the two
/// channels and their bells are made, and the Welcome that passes the
/// client's ends is sent.
pub(crate) fn welcome(sock: &OwnedFd, got: Got, terms: &Terms) -> Result<Welcomed, Error> {
    match got {
        Got::Message(Message::Hello, fds) if fds.is_empty() => {}
        other => return Err(unexpected("a hello", other)),
    }
    // Made only now, for a client that spoke: a stranger that connects
    // costs no memory.
    let to_client = Segment::create_anonymous(terms.capacity)?;
    let to_listener = Segment::create_anonymous(terms.capacity)?;
    let (tx_bell, tx_bell_peer) = crate::bell::pair()?;
    let (rx_bell, rx_bell_peer) = crate::bell::pair()?;
    // Our ends reopen the memfds (open file descriptions of our own, for
    // our locks); the client gets the ones `memfd_create` made, which we
    // close once sent, so that its lock is its own, and it needs not
    // reopen what may be another user's 0600 file.
    let tx_seg = Segment::from_fd(to_client.try_clone()?, Role::Sender)?;
    let rx_seg = Segment::from_fd(to_listener.try_clone()?, Role::Receiver)?;
    let welcome = Message::Welcome {
        to_client: tx_seg.capacity(),
        to_listener: rx_seg.capacity(),
    };
    let passed = [
        to_client.as_fd(),
        to_listener.as_fd(),
        tx_bell_peer.as_fd(),
        rx_bell_peer.as_fd(),
    ];
    Wire::new(sock.as_fd(), terms.timeout).send_now(welcome, &passed)?;
    // Theirs alone now: the bells hang up, and the locks go, at their
    // death only.
    drop((to_client, to_listener, tx_bell_peer, rx_bell_peer));
    Ok(Welcomed {
        tx_seg,
        rx_seg,
        tx_bell,
        rx_bell,
    })
}

/// The client's second message `got` must be Ready, and the client must
/// have attached both channels: then the connection is made.
pub(crate) fn established(
    got: Got,
    welcomed: Welcomed,
    peer: Credentials,
    terms: &Terms,
) -> Result<Connection, Error> {
    match got {
        Got::Message(Message::Ready, fds) if fds.is_empty() => {}
        Got::Message(
            Message::Refuse {
                reason: Reason::Channels,
                ..
            },
            _,
        ) => {
            return Err(Error::Handshake(
                "the client could not attach the channels it was given".into(),
            ));
        }
        other => return Err(unexpected("ready", other)),
    }
    let Welcomed {
        tx_seg,
        rx_seg,
        tx_bell,
        rx_bell,
    } = welcomed;
    // Ready means attached: its locks or its flags say so (else its death
    // would go unnoticed on our side, as a peer's that never attached). A
    // client may have sent, closed, even exited since: what it sent is
    // still received, then `Closed` or `PeerGone`.
    let attached = tx_seg.peer_came()? && rx_seg.peer_came()?;
    if !attached {
        return Err(Error::Handshake(
            "the client said it was ready but never attached the channels".into(),
        ));
    }
    Ok(Connection {
        tx: Sender::new(tx_seg, terms.wait, Some(Bell { fd: tx_bell })),
        rx: terms.receiver(Receiver::new(
            rx_seg,
            terms.wait,
            Some(Bell { fd: rx_bell }),
        )),
        peer,
    })
}

/// The error for `got` where `wanted` should have come.
fn unexpected(wanted: &str, got: Got) -> Error {
    Error::Handshake(match got {
        Got::Closed => format!("the peer closed the connection before {wanted}"),
        Got::Garbage(why) => format!("instead of {wanted}: {why}"),
        Got::Message(m, fds) => format!("{m:?} with {} descriptors instead of {wanted}", fds.len()),
    })
}
