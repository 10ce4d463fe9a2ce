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
    let seals = fcntl_get_seals(fd)?;
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
