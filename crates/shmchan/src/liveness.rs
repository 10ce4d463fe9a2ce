//! Is the peer alive? Each side holds an OFD lock (`F_OFD_SETLK`) on one
//! byte of the segment's file: byte 0 for the sender, byte 1 for the
//! receiver. The kernel drops the lock when the last descriptor of that
//! open file description closes, which happens when the process dies,
//! however it dies. A waiting side asks with `F_OFD_GETLK` whether the
//! peer's byte is still locked, every [`PEER_CHECK`] of waiting, so that a
//! blocked call returns `PeerGone` soon after the peer's death; a busy
//! channel never asks.
//!
//! Classic `F_SETLK` locks would not do: they belong to the process and go
//! when it closes *any* descriptor of the file. OFD locks belong to the
//! open file description, which is why each side opens its own (see
//! `Segment::from_fd`).

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, fcntl};

use crate::error::Error;
use crate::layout::Role;
use crate::segment::Segment;
use crate::wait::Watch;

/// How often a waiting side checks that its peer lives.
pub const PEER_CHECK: Duration = Duration::from_millis(20);

fn role_byte(role: Role, kind: libc::c_short) -> libc::flock {
    libc::flock {
        l_type: kind,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: role.index() as libc::off_t,
        l_len: 1,
        // Must be 0 for OFD locks.
        l_pid: 0,
    }
}

/// `fcntl(fd, F_OFD_SETLK, write lock on byte role)`: fails with `Taken`
/// when another open file description holds it.
pub(crate) fn lock_role(fd: BorrowedFd<'_>, role: Role) -> Result<(), Error> {
    let lock = role_byte(role, libc::F_WRLCK as libc::c_short);
    match fcntl(fd, FcntlArg::F_OFD_SETLK(&lock)) {
        Ok(_) => Ok(()),
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES) => Err(Error::Taken),
        Err(e) => Err(Error::Io(e.into())),
    }
}

/// `fcntl(fd, F_OFD_GETLK, byte role)`: whether another open file
/// description holds `role`'s byte.
pub(crate) fn role_held(fd: BorrowedFd<'_>, role: Role) -> Result<bool, Error> {
    let mut lock = role_byte(role, libc::F_WRLCK as libc::c_short);
    fcntl(fd, FcntlArg::F_OFD_GETLK(&mut lock)).map_err(|e| Error::Io(e.into()))?;
    Ok(lock.l_type != libc::F_UNLCK as libc::c_short)
}

/// `fcntl(fd, F_OFD_SETLK, write lock on byte `byte`)`: the broadcast's
/// slots (byte 0 the publisher, byte 1 + i subscriber slot i). Fails with
/// `Taken` when another open file description holds it.
pub(crate) fn lock_byte(fd: BorrowedFd<'_>, byte: u64) -> Result<(), Error> {
    let mut lock = role_byte(Role::Sender, libc::F_WRLCK as libc::c_short);
    lock.l_start = byte as libc::off_t;
    match fcntl(fd, FcntlArg::F_OFD_SETLK(&lock)) {
        Ok(_) => Ok(()),
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES) => Err(Error::Taken),
        Err(e) => Err(Error::Io(e.into())),
    }
}

/// `fcntl(fd, F_OFD_GETLK, byte)`: whether another open file description
/// holds byte `byte`.
pub(crate) fn byte_held(fd: BorrowedFd<'_>, byte: u64) -> Result<bool, Error> {
    let mut lock = role_byte(Role::Sender, libc::F_WRLCK as libc::c_short);
    lock.l_start = byte as libc::off_t;
    fcntl(fd, FcntlArg::F_OFD_GETLK(&mut lock)).map_err(|e| Error::Io(e.into()))?;
    Ok(lock.l_type != libc::F_UNLCK as libc::c_short)
}

/// What ends a wait on a real segment: the caller's deadline and the
/// peer's death.
pub(crate) struct Watcher<'a> {
    seg: &'a Segment,
    deadline: Option<Instant>,
    next_peer_check: Option<Instant>,
}

impl<'a> Watcher<'a> {
    /// `timeout: None` waits for ever (but for the peer's death).
    pub(crate) fn new(seg: &'a Segment, timeout: Option<Duration>) -> Watcher<'a> {
        Watcher {
            seg,
            deadline: timeout.and_then(|t| Instant::now().checked_add(t)),
            next_peer_check: None,
        }
    }
}

impl Watch for Watcher<'_> {
    fn expired(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn check(&mut self) -> Result<(), Error> {
        let now = Instant::now();
        if self.deadline.is_some_and(|d| now >= d) {
            return Err(Error::Timeout);
        }
        match self.next_peer_check {
            None => self.next_peer_check = Some(now + PEER_CHECK),
            Some(at) if now >= at => {
                if self.seg.peer_gone()? {
                    return Err(Error::PeerGone);
                }
                self.next_peer_check = Some(now + PEER_CHECK);
            }
            Some(_) => {}
        }
        Ok(())
    }

    fn slice(&self) -> Option<Duration> {
        let until_deadline = self
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()));
        Some(until_deadline.map_or(PEER_CHECK, |d| d.min(PEER_CHECK)))
    }
}

/// A poll's look at the peer's lock (`try_recv` finding nothing,
/// `try_send` finding no room): at most one `F_OFD_GETLK` per
/// [`PEER_CHECK`], rate-limited with `Instant::now()` (a vDSO call, not a
/// system call); a poll that succeeds never looks.
#[derive(Debug, Default)]
pub(crate) struct PeerLook {
    next: Option<Instant>,
}

impl PeerLook {
    /// Whether the peer is known dead: asks the kernel if the last look
    /// was at least [`PEER_CHECK`] ago, says `false` otherwise.
    pub(crate) fn gone(&mut self, seg: &Segment) -> Result<bool, Error> {
        let now = Instant::now();
        if self.next.is_some_and(|at| now < at) {
            return Ok(false);
        }
        self.next = now.checked_add(PEER_CHECK);
        seg.peer_gone()
    }
}
