//! A memfd, sealed and passed to the peer over a Unix socket.
//!
//! `prepare` makes `memfd_create(MFD_CLOEXEC|MFD_ALLOW_SEALING)`, sizes and
//! allocates it, and seals it against shrinking and growing
//! (`F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_SEAL`): a peer can then never
//! truncate it under the other's mapping (a `SIGBUS`). The server maps it
//! and sends it to the client with `SCM_RIGHTS`; the client drops the copy
//! it inherited, receives the descriptor (`MSG_CMSG_CLOEXEC`) and checks
//! the seals, access mode and size before mapping. No name exists at any
//! point: the descriptor is the capability.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{
    MemfdFlags, Mode, OFlags, SealFlags, fchmod, fcntl_add_seals, fcntl_get_seals, fcntl_getfl,
    memfd_create,
};
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType, recvmsg, sendmsg, socketpair,
};

use super::cleanup::Cleanup;
use super::names::OWNER_ONLY;
use super::region::{Init, Mapping, Region, Side, check_file, size_and_allocate};
use crate::transport::protocol_error;

const SEALS: SealFlags = SealFlags::SHRINK
    .union(SealFlags::GROW)
    .union(SealFlags::SEAL);

/// A sealed memfd handed from server to client.
pub struct Memfd;

pub struct MemfdHandle {
    memfd: Option<OwnedFd>,
    server: Option<OwnedFd>,
    client: Option<OwnedFd>,
}

fn send_fd(socket: &OwnedFd, fd: &OwnedFd) -> io::Result<()> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [fd.as_fd()];
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(io::Error::other("no room for SCM_RIGHTS"));
    }
    sendmsg(
        socket,
        &[IoSlice::new(b"M")],
        &mut control,
        SendFlags::empty(),
    )?;
    Ok(())
}

fn receive_fd(socket: &OwnedFd) -> io::Result<OwnedFd> {
    // Room for two, to tell "one" from "more than one".
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    let got = recvmsg(
        socket,
        &mut [IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    if got.bytes == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the server closed the socket before sending the memfd",
        ));
    }
    let mut fds: Vec<OwnedFd> = Vec::new();
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = msg {
            fds.extend(received);
        }
    }
    if fds.len() != 1 {
        return Err(protocol_error(format!(
            "expected one descriptor, received {}",
            fds.len()
        )));
    }
    Ok(fds.remove(0))
}

/// Checks a received memfd before mapping it: sealed against resizing,
/// open read-write, `len` bytes, ours.
fn check_received(fd: &OwnedFd, len: usize) -> io::Result<()> {
    let seals = fcntl_get_seals(fd).map_err(|e| {
        protocol_error(format!(
            "the received descriptor is not a memfd (F_GET_SEALS: {e})"
        ))
    })?;
    if !seals.contains(SEALS) {
        return Err(protocol_error(format!(
            "the memfd has seals {seals:?}, expected at least {SEALS:?}"
        )));
    }
    if fcntl_getfl(fd)? & OFlags::RWMODE != OFlags::RDWR {
        return Err(protocol_error("the memfd is not open read-write"));
    }
    check_file("the received memfd", fd, len)
}

impl Region for Memfd {
    type Handle = MemfdHandle;

    fn create(len: usize, cleanup: &mut Cleanup, init: Init<'_>) -> io::Result<MemfdHandle> {
        let memfd = memfd_create(
            "ipclab-ring",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        // A memfd has no name to open, but /proc/PID/fd shows its mode.
        fchmod(&memfd, Mode::from_raw_mode(OWNER_ONLY))?;
        size_and_allocate(&memfd, len)?;
        fcntl_add_seals(&memfd, SEALS)?;
        init(&Mapping::shared_fd(&memfd, len)?, cleanup)?;
        let (server, client) = socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )?;
        Ok(MemfdHandle {
            memfd: Some(memfd),
            server: Some(server),
            client: Some(client),
        })
    }

    fn map_again(handle: &MemfdHandle, len: usize) -> io::Result<Mapping> {
        let memfd = handle
            .memfd
            .as_ref()
            .ok_or_else(|| io::Error::other("the memfd handle was used"))?;
        Mapping::shared_fd(memfd, len)
    }

    fn attach(handle: &mut MemfdHandle, side: Side, len: usize) -> io::Result<Mapping> {
        let missing = || io::Error::other("the memfd handle was used twice");
        match side {
            Side::Server => {
                drop(handle.client.take());
                let memfd = handle.memfd.take().ok_or_else(missing)?;
                let map = Mapping::shared_fd(&memfd, len)?;
                send_fd(handle.server.as_ref().ok_or_else(missing)?, &memfd)?;
                Ok(map)
            }
            Side::Client => {
                // The copy inherited across fork goes: the client maps only
                // what it received.
                drop(handle.memfd.take());
                drop(handle.server.take());
                let memfd = receive_fd(handle.client.as_ref().ok_or_else(missing)?)?;
                check_received(&memfd, len)?;
                Mapping::shared_fd(&memfd, len)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! A client given a bad descriptor refuses it before mapping.

    use std::os::fd::{AsFd, OwnedFd};

    use rustix::fs::{MemfdFlags, Mode, OFlags, SealFlags, fchmod, ftruncate, memfd_create};
    use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};

    use super::{Memfd, MemfdHandle, SEALS, send_fd};
    use crate::mechanisms::shm::region::{Region, Side};

    const LEN: usize = 8192;

    fn memfd(len: usize, seals: SealFlags) -> OwnedFd {
        let fd = memfd_create(
            "ipclab-test",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )
        .unwrap();
        fchmod(&fd, Mode::from_raw_mode(0o600)).unwrap();
        ftruncate(&fd, len as u64).unwrap();
        rustix::fs::fcntl_add_seals(&fd, seals).unwrap();
        fd
    }

    /// The client's attach after the server sent `fds` (none: a bare byte).
    fn attach_after(fds: &[&OwnedFd]) -> std::io::Result<()> {
        let (server, client) = socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        match fds {
            [] => {
                rustix::net::send(&server, b"M", rustix::net::SendFlags::empty()).unwrap();
            }
            [one] => send_fd(&server, one).unwrap(),
            many => {
                let mut space =
                    [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
                let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
                let borrowed: Vec<_> = many.iter().map(|f| f.as_fd()).collect();
                assert!(control.push(rustix::net::SendAncillaryMessage::ScmRights(&borrowed)));
                rustix::net::sendmsg(
                    &server,
                    &[std::io::IoSlice::new(b"M")],
                    &mut control,
                    rustix::net::SendFlags::empty(),
                )
                .unwrap();
            }
        }
        drop(server);
        let mut handle = MemfdHandle {
            memfd: None,
            server: None,
            client: Some(client),
        };
        Memfd::attach(&mut handle, Side::Client, LEN).map(drop)
    }

    fn refused(what: &str, got: std::io::Result<()>, expected: &str) {
        let e = got.err().unwrap_or_else(|| panic!("{what}: mapped"));
        assert!(e.to_string().contains(expected), "{what}: {e}");
    }

    #[test]
    fn a_good_memfd_is_mapped() {
        attach_after(&[&memfd(LEN, SEALS)]).unwrap();
    }

    #[test]
    fn a_bad_descriptor_is_refused_with_a_clear_error() {
        let good = memfd(LEN, SEALS);
        let read_only = rustix::fs::open(
            format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&good)),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        let (pipe_r, _pipe_w) = rustix::pipe::pipe().unwrap();
        // Not a regular file: on a tmpfs one, F_GET_SEALS succeeds.
        let (socket, _peer) = socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        refused(
            "unsealed",
            attach_after(&[&memfd(LEN, SealFlags::empty())]),
            "seals",
        );
        refused(
            "shrinkable",
            attach_after(&[&memfd(LEN, SealFlags::GROW | SealFlags::SEAL)]),
            "expected at least",
        );
        refused(
            "too small",
            attach_after(&[&memfd(LEN / 2, SEALS)]),
            "has 4096 bytes",
        );
        refused(
            "too large",
            attach_after(&[&memfd(LEN * 2, SEALS)]),
            "expected 8192",
        );
        refused(
            "read-only",
            attach_after(&[&read_only]),
            "not open read-write",
        );
        refused("a pipe", attach_after(&[&pipe_r]), "is not a memfd");
        refused("a socket", attach_after(&[&socket]), "is not a memfd");
        refused("no descriptor", attach_after(&[]), "received 0");
        refused(
            "two descriptors",
            attach_after(&[&good, &good]),
            "received 2",
        );
        refused(
            "closed",
            {
                let mut handle = MemfdHandle {
                    memfd: None,
                    server: None,
                    client: Some(
                        socketpair(
                            AddressFamily::UNIX,
                            SocketType::SEQPACKET,
                            SocketFlags::CLOEXEC,
                            None,
                        )
                        .unwrap()
                        .1,
                    ),
                };
                Memfd::attach(&mut handle, Side::Client, LEN).map(drop)
            },
            "closed the socket",
        );
    }
}
