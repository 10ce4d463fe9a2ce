//! `MSG_ZEROCOPY` sends and their completions (Linux ≥ 4.14, TCP ≥ 4.14).
//!
//! A socket with `SO_ZEROCOPY` set may take `send(…, MSG_ZEROCOPY)`: the
//! kernel pins the user pages instead of copying them, so the buffer must
//! stay untouched until the kernel says it is done with it. It says so on
//! the socket's error queue (`recvmsg(MSG_ERRQUEUE)`): a
//! `sock_extended_err` with origin `SO_EE_ORIGIN_ZEROCOPY` whose
//! `ee_info..=ee_data` is the range of completed send calls, numbered from
//! 0 per socket, one number per successful `send`. Code
//! `SO_EE_CODE_ZEROCOPY_COPIED` means the kernel copied after all; on
//! loopback it always does (Documentation/networking/msg_zerocopy.rst,
//! "Loopback": a looped packet could wait forever in an unread receive
//! queue, so it gets a deferred copy).
//!
//! # References
//! - <https://docs.kernel.org/networking/msg_zerocopy.html>

use std::io;
use std::mem::{MaybeUninit, size_of};
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, poll};
use rustix::io::Errno;
use rustix::net::{SendFlags, send};

/// `SO_ZEROCOPY` from `asm-generic/socket.h` (x86, arm, riscv…; the libc
/// crate does not define it for Linux targets).
#[cfg(not(any(target_arch = "mips", target_arch = "mips64", target_arch = "sparc64")))]
const SO_ZEROCOPY: libc::c_int = 60;
/// `SO_EE_ORIGIN_ZEROCOPY` from `linux/errqueue.h`.
const SO_EE_ORIGIN_ZEROCOPY: u8 = 5;
/// `SO_EE_CODE_ZEROCOPY_COPIED` from `linux/errqueue.h`.
const SO_EE_CODE_ZEROCOPY_COPIED: u8 = 1;

/// How long a wait for a completion blocks before it looks again.
const WAIT_SLICE: Duration = Duration::from_millis(200);

/// `setsockopt(sock, SOL_SOCKET, SO_ZEROCOPY, 1)`—lets `sock` take
/// `MSG_ZEROCOPY` sends. `ENOPROTOOPT` on kernels before 4.14.
pub fn enable(sock: impl AsFd) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: the descriptor is borrowed and open for the call; the option
    // value points to a live c_int and its size is given exactly.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            SO_ZEROCOPY,
            (&raw const one).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The send calls of one socket and what the kernel said about them.
#[derive(Debug, Default)]
pub struct Completions {
    /// The number the kernel gives the next successful `MSG_ZEROCOPY` send.
    next: u64,
    /// Send calls reported complete.
    pub completed: u64,
    /// Of those, the ones the kernel copied (`SO_EE_CODE_ZEROCOPY_COPIED`).
    pub copied: u64,
    /// Sends that went without `MSG_ZEROCOPY` because the kernel refused it
    /// (`ENOBUFS`: optmem or locked-memory limit) with nothing in flight.
    pub plain: u64,
}

/// A range of send numbers, `start..end`.
pub type Ids = std::ops::Range<u64>;

impl Completions {
    /// The number the next successful send will get.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// Send numbers given out and not yet reported complete.
    pub fn in_flight(&self) -> u64 {
        self.next - self.completed
    }

    /// The 64-bit number of a 32-bit one from the kernel, which wraps: the
    /// latest one given out that is congruent to it.
    fn widen(&self, id: u32) -> u64 {
        let back = (self.next as u32).wrapping_sub(id);
        self.next.wrapping_sub(u64::from(back))
    }

    /// Sends all of `buf` on `sock` with `MSG_ZEROCOPY`; returns the numbers
    /// of the send calls it took. `buf` must stay as it is until all of
    /// them are reported through [`Completions::wait`].
    pub fn send_all(
        &mut self,
        sock: impl AsFd,
        mut buf: &[u8],
        on_done: &mut dyn FnMut(Ids, bool),
    ) -> io::Result<Ids> {
        let zerocopy = SendFlags::from_bits_retain(libc::MSG_ZEROCOPY as u32);
        let start = self.next;
        while !buf.is_empty() {
            match send(&sock, buf, SendFlags::NOSIGNAL | zerocopy) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    buf = &buf[n..];
                    self.next += 1;
                }
                Err(Errno::INTR) => {}
                // Too many notifications or pinned pages outstanding: wait
                // for some, or send this part the ordinary way.
                Err(Errno::NOBUFS) if self.in_flight() > 0 => {
                    let before = self.completed;
                    while self.completed == before {
                        self.wait(&sock, &mut *on_done)?;
                    }
                }
                Err(Errno::NOBUFS) => match send(&sock, buf, SendFlags::NOSIGNAL) {
                    Ok(n) => {
                        buf = &buf[n..];
                        self.plain += 1;
                    }
                    Err(Errno::INTR) => {}
                    Err(e) => return Err(e.into()),
                },
                Err(e) => return Err(e.into()),
            }
        }
        Ok(start..self.next)
    }

    /// Reads the completions waiting on `sock`'s error queue, without
    /// blocking, and hands each range to `on_done` with whether the kernel
    /// copied; returns how many notifications it read.
    pub fn drain(
        &mut self,
        sock: impl AsFd,
        on_done: &mut dyn FnMut(Ids, bool),
    ) -> io::Result<u64> {
        let mut read = 0;
        while let Some((ids, copied)) = self.read_one(&sock)? {
            let len = ids.end - ids.start;
            self.completed += len;
            if copied {
                self.copied += len;
            }
            on_done(ids, copied);
            read += 1;
        }
        Ok(read)
    }

    /// Blocks until at least one completion is read (handed to `on_done`),
    /// or fails when the connection fails with sends in flight.
    pub fn wait(&mut self, sock: impl AsFd, on_done: &mut dyn FnMut(Ids, bool)) -> io::Result<()> {
        loop {
            if self.drain(&sock, &mut *on_done)? > 0 {
                return Ok(());
            }
            let mut fds = [PollFd::new(&sock, PollFlags::ERR)];
            let slice = rustix::time::Timespec::try_from(WAIT_SLICE).unwrap();
            match poll(&mut fds, Some(&slice)) {
                Ok(0) | Err(Errno::INTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(e.into()),
            }
            let revents = fds[0].revents();
            if self.drain(&sock, &mut *on_done)? > 0 {
                return Ok(());
            }
            // POLLERR with an empty error queue: the socket's own error
            // (the peer reset the connection).
            if let Err(e) = rustix::net::sockopt::socket_error(&sock)? {
                return Err(e.into());
            }
            if revents.contains(PollFlags::HUP) {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    format!(
                        "the connection closed with {} sends waiting for completion",
                        self.in_flight()
                    ),
                ));
            }
        }
    }

    /// `recvmsg(sock, MSG_ERRQUEUE | MSG_DONTWAIT)`—one zerocopy
    /// notification, or `None` when the error queue is empty.
    fn read_one(&self, sock: impl AsFd) -> io::Result<Option<(Ids, bool)>> {
        // Room for one cmsghdr carrying a sock_extended_err and the
        // offender's address, u64-aligned as cmsg headers need.
        let mut control = [0u64; 16];
        // SAFETY: msghdr is plain data; all zeroes is a valid empty header.
        let mut msg: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = size_of_val(&control) as _;
        let flags = libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT;
        // SAFETY: the descriptor is borrowed and open; `msg` points to
        // `control`, which outlives the call, with its exact length, and to
        // no data buffers (an error-queue read carries none here).
        let n = unsafe { libc::recvmsg(sock.as_fd().as_raw_fd(), &mut msg, flags) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) => Ok(None),
                Some(libc::EINTR) => self.read_one(sock),
                _ => Err(e),
            };
        }
        // SAFETY: `msg` was filled by the kernel and its control buffer is
        // live; CMSG_FIRSTHDR/NXTHDR stay inside `msg_controllen`.
        let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        while !cmsg.is_null() {
            // SAFETY: `cmsg` is non-null and inside the control buffer.
            let hdr = unsafe { &*cmsg };
            let ipv4 = hdr.cmsg_level == libc::SOL_IP && hdr.cmsg_type == libc::IP_RECVERR;
            let ipv6 = hdr.cmsg_level == libc::SOL_IPV6 && hdr.cmsg_type == libc::IPV6_RECVERR;
            if ipv4 || ipv6 {
                // SAFETY: an IP(V6)_RECVERR message carries a
                // sock_extended_err; read_unaligned because CMSG_DATA is
                // only aligned for size_t.
                let err = unsafe {
                    libc::CMSG_DATA(cmsg)
                        .cast::<libc::sock_extended_err>()
                        .read_unaligned()
                };
                if err.ee_origin != SO_EE_ORIGIN_ZEROCOPY || err.ee_errno != 0 {
                    return Err(io::Error::other(format!(
                        "error queue: origin {} errno {} ({})",
                        err.ee_origin,
                        err.ee_errno,
                        io::Error::from_raw_os_error(err.ee_errno as i32)
                    )));
                }
                let (lo, hi) = (self.widen(err.ee_info), self.widen(err.ee_data));
                let copied = err.ee_code & SO_EE_CODE_ZEROCOPY_COPIED != 0;
                return Ok(Some((lo..hi + 1, copied)));
            }
            // SAFETY: as for CMSG_FIRSTHDR; NXTHDR returns null past the end.
            cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
        }
        Err(io::Error::other(
            "error queue: a message without sock_extended_err",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widen_takes_the_latest_number_congruent_to_the_kernels() {
        let mut c = Completions::default();
        assert_eq!(c.widen(0), 0);
        c.next = 5;
        assert_eq!(c.widen(3), 3);
        c.next = (1 << 32) + 2;
        assert_eq!(c.widen(u32::MAX), (1 << 32) - 1);
        assert_eq!(c.widen(1), (1 << 32) + 1);
    }
}
