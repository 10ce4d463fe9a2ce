//! Handing a segment's descriptor to the peer over a Unix socket
//! (`SCM_RIGHTS`): a channel with no name at all, that only the holder of
//! the socket can join.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, recvmsg, sendmsg,
};

/// `sendmsg(socket, "F", SCM_RIGHTS [fd])`: passes `fd` over a connected
/// Unix socket. Pass a [`Sender`](crate::Sender) or
/// [`Receiver`](crate::Receiver) (both are `AsFd`), or the descriptor from
/// [`Options::create_anonymous`](crate::Options::create_anonymous).
///
/// # References
/// - [`unix(7)`](https://man7.org/linux/man-pages/man7/unix.7.html)
pub fn send_fd(socket: impl AsFd, fd: impl AsFd) -> io::Result<()> {
    let fds = [fd.as_fd()];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(io::Error::other("no room for SCM_RIGHTS"));
    }
    // One byte of data: a stream socket carries no message without one.
    let sent = sendmsg(
        socket,
        &[IoSlice::new(b"F")],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    if sent != 1 {
        return Err(io::ErrorKind::WriteZero.into());
    }
    Ok(())
}

/// `recvmsg(socket, MSG_CMSG_CLOEXEC)`: takes one descriptor passed with
/// [`send_fd`]. Give it to
/// [`Options::sender_from_fd`](crate::Options::sender_from_fd) or
/// [`Options::receiver_from_fd`](crate::Options::receiver_from_fd), which
/// check it before mapping anything.
pub fn recv_fd(socket: impl AsFd) -> io::Result<OwnedFd> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    let msg = recvmsg(
        socket,
        &mut [IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    if msg.bytes == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the socket closed before a descriptor came",
        ));
    }
    let mut got = None;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = message {
            // Keep the first; any others close as they drop.
            for fd in fds {
                got.get_or_insert(fd);
            }
        }
    }
    if msg.flags.contains(ReturnFlags::CTRUNC) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "more descriptors came than one",
        ));
    }
    got.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no descriptor came"))
}
