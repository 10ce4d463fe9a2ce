//! What the two ends of a rendezvous say to each other over the Unix
//! socket: one `SOCK_SEQPACKET` message each way per step, so a message
//! arrives whole or not at all and its length is known.
//!
//! ```text
//! client (connect)                           listener (accept)
//!   connect(2) ─────────────────────────────▶ accept(2)
//!   SO_PEERCRED: is its uid admitted?          SO_PEERCRED: is its uid admitted?
//!   Hello ──────────────────────────────────▶ magic and version right?
//!   ◀───────── Welcome {capacities} + SCM_RIGHTS [memfd to client,
//!              memfd to listener, bell to client, bell to listener]
//!              (or Refuse {reason}, then close)
//!   checks and attaches both rings
//!   Ready (or Refuse {Channels}) ───────────▶ accept returns the Connection
//! ```
//!
//! Every message starts with the magic, the protocol version and a kind
//! (16 bytes, little-endian); Refuse keeps its shape in every version, so
//! that a peer of another version is told so. Every read has a deadline
//! (`SO_RCVTIMEO`, set to what is left of the handshake timeout), so that a
//! peer that says nothing cannot hold the other side for ever.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::sockopt::{Timeout, set_socket_timeout};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, recvmsg, sendmsg,
};

use crate::error::Error;
use crate::wait::Wait;

/// Starts every handshake message.
const MAGIC: [u8; 8] = *b"shmchRDV";
/// The handshake's version (not the segment layout's, which the rings
/// check themselves when attached).
pub(crate) const PROTOCOL: u32 = 1;
/// Magic, version, kind.
const HEAD: usize = 16;
/// The longest message of this version (Welcome).
const LONGEST: usize = HEAD + 16;
/// Descriptors a Welcome carries: two memfds, two bells.
pub(crate) const WELCOME_FDS: usize = 4;

/// How long a handshake may take, in all, unless told otherwise: a peer
/// silent for longer is dropped with [`Error::Handshake`]. Long enough
/// for a loaded machine, short enough that a silent client holds up an
/// accepting thread only briefly.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a rendezvous end agrees to: chosen with [`Options`](crate::Options).
#[derive(Clone, Debug)]
pub(crate) struct Terms {
    /// Ring bytes of both channels (the listener's choice).
    pub(crate) capacity: usize,
    /// How this side's ends wait.
    pub(crate) wait: Wait,
    /// Uids admitted besides our own effective uid.
    pub(crate) allowed: Vec<u32>,
    /// The whole handshake's deadline, from `connect` or `accept`.
    pub(crate) timeout: Duration,
    /// The socket file's mode; `None`: 0600, or 0666 when `allowed` holds
    /// another uid.
    pub(crate) socket_mode: Option<u32>,
    /// The receiver's longest message; `None`: its default.
    pub(crate) max_message: Option<usize>,
}

impl Terms {
    /// Applies the options that a receiver takes after it is made.
    pub(crate) fn receiver(&self, mut rx: crate::receiver::Receiver) -> crate::receiver::Receiver {
        if let Some(bytes) = self.max_message {
            rx.set_max_message(bytes);
        }
        rx
    }

    /// Whether a peer of `uid` may connect: our own effective uid, or one
    /// allowed explicitly.
    pub(crate) fn admits(&self, uid: u32) -> bool {
        uid == rustix::process::geteuid().as_raw() || self.allowed.contains(&uid)
    }
}

/// Why a side refused the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    /// The listener does not admit the client's uid.
    Uid,
    /// The listener speaks another protocol version.
    Version,
    /// The client could not attach the channels it was given.
    Channels,
    /// A reason of a later version.
    Other(u32),
}

impl Reason {
    fn code(self) -> u32 {
        match self {
            Reason::Uid => 1,
            Reason::Version => 2,
            Reason::Channels => 3,
            Reason::Other(n) => n,
        }
    }

    fn from_code(n: u32) -> Reason {
        match n {
            1 => Reason::Uid,
            2 => Reason::Version,
            3 => Reason::Channels,
            n => Reason::Other(n),
        }
    }
}

/// One handshake message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Message {
    /// Client to listener, first.
    Hello,
    /// Listener to client, with the four descriptors: the rings'
    /// capacities, listener-to-client first.
    Welcome { to_client: u64, to_listener: u64 },
    /// Client to listener, last: both rings attached.
    Ready,
    /// Either way, instead of the next message; `version` is the sender's.
    Refuse { reason: Reason, version: u32 },
}

const HELLO: u32 = 1;
const WELCOME: u32 = 2;
const READY: u32 = 3;
const REFUSE: u32 = 4;

impl Message {
    fn encode(self) -> ([u8; LONGEST], usize) {
        let mut b = [0u8; LONGEST];
        b[..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&PROTOCOL.to_le_bytes());
        let (kind, len) = match self {
            Message::Hello => (HELLO, HEAD),
            Message::Ready => (READY, HEAD),
            Message::Welcome {
                to_client,
                to_listener,
            } => {
                b[16..24].copy_from_slice(&to_client.to_le_bytes());
                b[24..32].copy_from_slice(&to_listener.to_le_bytes());
                (WELCOME, HEAD + 16)
            }
            Message::Refuse { reason, .. } => {
                b[16..20].copy_from_slice(&reason.code().to_le_bytes());
                (REFUSE, HEAD + 4)
            }
        };
        b[12..16].copy_from_slice(&kind.to_le_bytes());
        (b, len)
    }

    /// Reads a message; says what is wrong with one that is not.
    fn decode(b: &[u8]) -> Result<Message, String> {
        let word = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
        let long = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
        if b.len() < HEAD || b[..8] != MAGIC {
            return Err(format!(
                "a message of {} bytes that is not shmchan's (no magic)",
                b.len()
            ));
        }
        let (version, kind) = (word(8), word(12));
        let size = |want: usize| {
            if b.len() == want {
                Ok(())
            } else {
                Err(format!("a message of kind {kind} has {} bytes", b.len()))
            }
        };
        // A refusal is understood across versions; the rest is not.
        if kind == REFUSE {
            size(HEAD + 4)?;
            let reason = Reason::from_code(word(16));
            return Ok(Message::Refuse { reason, version });
        }
        if version != PROTOCOL {
            return Err(format!(
                "protocol version {version}; this side speaks {PROTOCOL}"
            ));
        }
        match kind {
            HELLO => size(HEAD).map(|()| Message::Hello),
            READY => size(HEAD).map(|()| Message::Ready),
            WELCOME => size(HEAD + 16).map(|()| Message::Welcome {
                to_client: long(16),
                to_listener: long(24),
            }),
            _ => Err(format!("an unknown message kind {kind}")),
        }
    }

    /// Whether `b` is a message of ours from another protocol version
    /// (to be answered with a refusal that says so).
    fn other_version(b: &[u8]) -> bool {
        b.len() >= HEAD && b[..8] == MAGIC && b[8..12] != PROTOCOL.to_le_bytes()
    }
}

/// A socket during its handshake, with the handshake's deadline.
pub(crate) struct Wire<'a> {
    sock: BorrowedFd<'a>,
    /// `None`: a timeout too long to be a time (`Duration::MAX`), which
    /// waits for ever.
    deadline: Option<Instant>,
    timeout: Duration,
}

/// What came: a message, or why none did.
pub(crate) enum Got {
    Message(Message, Vec<OwnedFd>),
    /// The peer closed the socket.
    Closed,
    /// Not a message of this version; the text says why.
    Garbage(String),
}

impl<'a> Wire<'a> {
    /// The handshake on `sock` starts now and may take `timeout`.
    pub(crate) fn new(sock: BorrowedFd<'a>, timeout: Duration) -> Wire<'a> {
        Wire {
            sock,
            deadline: Instant::now().checked_add(timeout),
            timeout,
        }
    }

    /// What is left of the deadline, at least a millisecond (a zero
    /// `SO_RCVTIMEO` would mean no timeout at all); `None`: no deadline.
    pub(crate) fn left(&self) -> Result<Option<Duration>, Error> {
        let Some(deadline) = self.deadline else {
            return Ok(None);
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.timed_out());
        }
        Ok(Some(left.max(Duration::from_millis(1))))
    }

    fn timed_out(&self) -> Error {
        Error::Handshake(format!(
            "the peer did not complete the handshake within {:?}",
            self.timeout
        ))
    }

    /// `sendmsg(sock, msg, SCM_RIGHTS fds, MSG_NOSIGNAL)` before the
    /// deadline.
    pub(crate) fn send(&self, msg: Message, fds: &[BorrowedFd<'_>]) -> Result<(), Error> {
        set_socket_timeout(self.sock, Timeout::Send, self.left()?)?;
        match self.send_with(msg, fds, SendFlags::empty())? {
            true => Ok(()),
            false => Err(self.timed_out()),
        }
    }

    /// [`send`](Self::send) that never waits (`MSG_DONTWAIT`), for the
    /// listener's handshakes in progress (`accepting.rs`). A peer's queue
    /// with no room (which an honest peer, which has read nothing of ours
    /// yet, never has) is a failed handshake.
    pub(crate) fn send_now(&self, msg: Message, fds: &[BorrowedFd<'_>]) -> Result<(), Error> {
        match self.send_with(msg, fds, SendFlags::DONTWAIT)? {
            true => Ok(()),
            false => Err(Error::Handshake(
                "the peer's socket had no room for our message".into(),
            )),
        }
    }

    /// The `sendmsg`; `false` for `EAGAIN` (a timeout, or no room now).
    fn send_with(
        &self,
        msg: Message,
        fds: &[BorrowedFd<'_>],
        flags: SendFlags,
    ) -> Result<bool, Error> {
        let (bytes, len) = msg.encode();
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(WELCOME_FDS))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
            return Err(Error::Io(io::Error::other("no room for SCM_RIGHTS")));
        }
        loop {
            let iov = [IoSlice::new(&bytes[..len])];
            match sendmsg(self.sock, &iov, &mut control, SendFlags::NOSIGNAL | flags) {
                Ok(n) if n == len => return Ok(true),
                Ok(n) => {
                    return Err(Error::Handshake(format!("sent {n} bytes of {len}")));
                }
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => return Ok(false),
                Err(Errno::PIPE | Errno::CONNRESET) => {
                    return Err(Error::Handshake(
                        "the peer closed the connection during the handshake".into(),
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// `sendmsg` of a refusal, best effort: the caller fails anyway.
    pub(crate) fn refuse(&self, reason: Reason) {
        let _ = self.send(
            Message::Refuse {
                reason,
                version: PROTOCOL,
            },
            &[],
        );
    }

    /// [`refuse`](Self::refuse) that never waits.
    pub(crate) fn refuse_now(&self, reason: Reason) {
        let _ = self.send_now(
            Message::Refuse {
                reason,
                version: PROTOCOL,
            },
            &[],
        );
    }

    /// `recvmsg(sock, MSG_CMSG_CLOEXEC)` of one message before the
    /// deadline, with up to [`WELCOME_FDS`] descriptors. A message of
    /// another version is answered with a refusal (if `answer_version`).
    pub(crate) fn recv(&self, answer_version: bool) -> Result<Got, Error> {
        set_socket_timeout(self.sock, Timeout::Recv, self.left()?)?;
        self.recv_with(RecvFlags::empty(), answer_version)?
            .ok_or_else(|| self.timed_out())
    }

    /// [`recv`](Self::recv) that never waits (`MSG_DONTWAIT`): `None` when
    /// no message has come yet.
    pub(crate) fn recv_now(&self, answer_version: bool) -> Result<Option<Got>, Error> {
        self.recv_with(RecvFlags::DONTWAIT, answer_version)
    }

    /// The `recvmsg`; `None` for `EAGAIN` (a timeout, or nothing yet).
    fn recv_with(&self, flags: RecvFlags, answer_version: bool) -> Result<Option<Got>, Error> {
        // One byte more than the longest message: a longer one is cut and
        // so noticed (MSG_TRUNC).
        let mut buf = [0u8; LONGEST + 1];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(WELCOME_FDS))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut reset = false;
        let msg = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg(
                self.sock,
                &mut iov,
                &mut control,
                RecvFlags::CMSG_CLOEXEC | flags,
            ) {
                Ok(msg) => break msg,
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => return Ok(None),
                // A peer that closed with our message unread makes the
                // kernel report ECONNRESET once, before what the peer sent
                // (a refusal, say), which is still there to read.
                Err(Errno::CONNRESET) if !reset => reset = true,
                Err(Errno::CONNRESET) => return Ok(Some(Got::Closed)),
                Err(e) => return Err(e.into()),
            }
        };
        // Take every descriptor that came, so that they all close on drop.
        let mut fds = Vec::new();
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(got) = message {
                fds.extend(got);
            }
        }
        if msg.flags.contains(ReturnFlags::CTRUNC) {
            return Ok(Some(Got::Garbage(format!(
                "more descriptors than the {WELCOME_FDS} a handshake passes"
            ))));
        }
        if msg.flags.contains(ReturnFlags::TRUNC) {
            return Ok(Some(Got::Garbage(format!(
                "a message longer than the {LONGEST} bytes of a handshake"
            ))));
        }
        let bytes = &buf[..msg.bytes.min(buf.len())];
        if bytes.is_empty() && fds.is_empty() {
            return Ok(Some(Got::Closed));
        }
        Ok(Some(match Message::decode(bytes) {
            Ok(m) => Got::Message(m, fds),
            Err(why) => {
                if answer_version && Message::other_version(bytes) {
                    if flags.contains(RecvFlags::DONTWAIT) {
                        self.refuse_now(Reason::Version);
                    } else {
                        self.refuse(Reason::Version);
                    }
                }
                Got::Garbage(why)
            }
        }))
    }
}

/// The peer's credentials as the kernel saw them (`SO_PEERCRED`).
///
/// For the accepting side, those of the process that called `connect`;
/// for the connecting side, those of the process that called `listen`
/// (the one that bound the [`Listener`](crate::Listener), even if another
/// process accepts). The pid is as seen in the caller's pid namespace: 0
/// if the peer's is not visible from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Credentials {
    /// The peer's process id.
    pub pid: u32,
    /// The peer's effective user id.
    pub uid: u32,
    /// The peer's effective group id.
    pub gid: u32,
}

/// `getsockopt(sock, SOL_SOCKET, SO_PEERCRED)`. Through libc rather than
/// rustix: rustix's `UCred` holds the pid as a non-zero `Pid`, and the
/// kernel reports 0 for a peer in a pid namespace we cannot see.
///
/// # References
/// - [`unix(7)`](https://man7.org/linux/man-pages/man7/unix.7.html)
pub(crate) fn peer_credentials(sock: impl AsFd) -> Result<Credentials, Error> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes for the whole call;
    // the kernel writes at most `len` bytes into `cred` and the length
    // into `len`. The descriptor is borrowed, so open.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(Error::Io(io::Error::last_os_error()));
    }
    if len as usize != std::mem::size_of::<libc::ucred>() {
        return Err(Error::Io(io::Error::other("SO_PEERCRED: a short answer")));
    }
    Ok(Credentials {
        pid: u32::try_from(cred.pid).unwrap_or(0),
        uid: cred.uid,
        gid: cred.gid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_decodes_to_itself() {
        let all = [
            Message::Hello,
            Message::Ready,
            Message::Welcome {
                to_client: 4096,
                to_listener: 1 << 20,
            },
            Message::Refuse {
                reason: Reason::Uid,
                version: PROTOCOL,
            },
            Message::Refuse {
                reason: Reason::Other(77),
                version: PROTOCOL,
            },
        ];
        for m in all {
            let (b, len) = m.encode();
            assert_eq!(Message::decode(&b[..len]), Ok(m));
            // Any other length is refused.
            assert!(Message::decode(&b[..len - 1]).is_err());
            let mut longer = b[..len].to_vec();
            longer.push(0);
            assert!(Message::decode(&longer).is_err());
        }
    }

    #[test]
    fn garbage_and_other_versions_are_named() {
        assert!(Message::decode(b"").unwrap_err().contains("magic"));
        assert!(Message::decode(&[0xff; 20]).unwrap_err().contains("magic"));
        let (mut b, len) = Message::Hello.encode();
        b[8..12].copy_from_slice(&99u32.to_le_bytes());
        assert!(Message::decode(&b[..len]).unwrap_err().contains("99"));
        assert!(Message::other_version(&b[..len]));
        // A refusal of another version is still understood.
        let (mut b, len) = Message::Refuse {
            reason: Reason::Version,
            version: PROTOCOL,
        }
        .encode();
        b[8..12].copy_from_slice(&99u32.to_le_bytes());
        assert_eq!(
            Message::decode(&b[..len]),
            Ok(Message::Refuse {
                reason: Reason::Version,
                version: 99
            })
        );
        b[12..16].copy_from_slice(&42u32.to_le_bytes());
        b[8..12].copy_from_slice(&PROTOCOL.to_le_bytes());
        assert!(Message::decode(&b[..len]).unwrap_err().contains("42"));
    }
}
