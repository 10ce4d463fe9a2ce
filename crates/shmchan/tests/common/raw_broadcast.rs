//! A broadcast's two objects built by hand, for the tests that play a
//! hostile peer: where the words of shmchan's `broadcast/layout.rs` sit,
//! and the raw descriptor exchange of `broadcast/join.rs`.

#![allow(dead_code)]

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::SealFlags;
use rustix::mm::{MapFlags, ProtFlags};

pub const HEADER: usize = 4096;
pub const HELLO: &[u8] = b"shmchan-broadcast/1";
// The data header.
pub const D_MAGIC: usize = 0;
pub const D_VERSION: usize = 8;
pub const D_POLICY: usize = 12;
pub const D_RING: usize = 16;
pub const D_ENTRY: usize = 24;
pub const D_SLOTS: usize = 32;
pub const D_CLOSED: usize = 36;
pub const D_CONTROL_SIZE: usize = 40;
pub const D_DATA_SIZE: usize = 48;
pub const D_TAIL: usize = 128;
// The control header.
pub const C_BELL: usize = 128;
pub const C_JOINS: usize = 256;
pub const C_WAITER: usize = 384;
pub const SLOT: usize = 128;
pub const POLICY_BLOCK: u32 = 0xB10C_0001;
pub const POLICY_OVERWRITE: u32 = 0x0E77_0002;

/// `recvmsg`: the text and the descriptors that came with it.
pub fn recv_raw(socket: BorrowedFd<'_>) -> (Vec<u8>, Vec<OwnedFd>) {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut text = [0u8; 64];
    let msg = recvmsg(
        socket,
        &mut [IoSliceMut::new(&mut text)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .unwrap();
    let mut fds = Vec::new();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(got) = m {
            fds.extend(got);
        }
    }
    (text[..msg.bytes].to_vec(), fds)
}

/// `sendmsg(text, SCM_RIGHTS fds)`.
pub fn send_raw(socket: BorrowedFd<'_>, text: &[u8], fds: &[BorrowedFd<'_>]) {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sendmsg};
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    assert!(control.push(SendAncillaryMessage::ScmRights(fds)));
    sendmsg(
        socket,
        &[IoSlice::new(text)],
        &mut control,
        SendFlags::NOSIGNAL,
    )
    .unwrap();
}

/// A shared mapping of `len` bytes of `fd` (read-write, or read-only).
pub fn map(fd: impl AsFd, len: usize, write: bool) -> rustix::io::Result<*mut u8> {
    let prot = if write {
        ProtFlags::READ | ProtFlags::WRITE
    } else {
        ProtFlags::READ
    };
    // SAFETY: a new mapping at an address the kernel picks overlaps
    // nothing Rust knows about; it is used through raw pointers only.
    unsafe { rustix::mm::mmap(std::ptr::null_mut(), len, prot, MapFlags::SHARED, fd, 0) }
        .map(|p| p.cast())
}

/// A broadcast built by hand: both objects mapped read-write here (the
/// data object before it is sealed, as a publisher maps it).
pub struct Raw {
    pub control: OwnedFd,
    pub data: OwnedFd,
    pub ctl: *mut u8,
    pub dat: *mut u8,
    pub ring: u64,
    pub entry: u64,
    pub slots: u32,
    pub data_size: usize,
}

// SAFETY: the mappings live for the process's life; the tests reach them
// through raw pointers (volatile) only.
unsafe impl Send for Raw {}

impl Raw {
    /// Both objects, with a valid header for `ring` entries of `entry`
    /// bytes and `slots` slots, nothing published, sealed as shmchan seals
    /// them.
    pub fn new(ring: u64, entry: u64, slots: u32, policy: u32) -> Raw {
        use rustix::fs::{MemfdFlags, Mode, fchmod, fcntl_add_seals, ftruncate, memfd_create};
        let control_size = (HEADER + SLOT * slots as usize).max(2 * HEADER);
        let data_size = HEADER + ((ring * entry) as usize).next_multiple_of(4096);
        let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
        let control = memfd_create("raw-broadcast", flags).unwrap();
        let data = memfd_create("raw-broadcast-data", flags).unwrap();
        for (fd, size) in [(&control, control_size), (&data, data_size)] {
            fchmod(fd, Mode::RUSR | Mode::WUSR).unwrap();
            ftruncate(fd, size as u64).unwrap();
        }
        let ctl = map(&control, control_size, true).unwrap();
        let dat = map(&data, data_size, true).unwrap();
        fcntl_add_seals(&control, SealFlags::SHRINK | SealFlags::GROW).unwrap();
        fcntl_add_seals(
            &data,
            SealFlags::SHRINK | SealFlags::GROW | SealFlags::FUTURE_WRITE,
        )
        .unwrap();
        let raw = Raw {
            control,
            data,
            ctl,
            dat,
            ring,
            entry,
            slots,
            data_size,
        };
        raw.put_data(D_MAGIC, u64::from_le_bytes(*b"shmbdata"), 8);
        raw.put_data(D_POLICY, u64::from(policy), 4);
        raw.put_data(D_RING, ring, 8);
        raw.put_data(D_ENTRY, entry, 8);
        raw.put_data(D_SLOTS, u64::from(slots), 4);
        raw.put_data(D_CONTROL_SIZE, control_size as u64, 8);
        raw.put_data(D_DATA_SIZE, data_size as u64, 8);
        raw.put_data(D_VERSION, 1, 4);
        raw.put_ctl(0, u64::from_le_bytes(*b"shmbcast"), 8);
        raw.put_ctl(12, HEADER as u64, 4);
        raw.put_ctl(8, 1, 4);
        raw
    }

    fn put(base: *mut u8, at: usize, value: u64, width: usize) {
        // SAFETY: the callers keep `at + width` within the mapping; a
        // volatile write, as the other side reads concurrently.
        unsafe {
            match width {
                8 => base.add(at).cast::<u64>().write_volatile(value),
                4 => base.add(at).cast::<u32>().write_volatile(value as u32),
                _ => base.add(at).write_volatile(value as u8),
            }
        }
    }

    pub fn put_data(&self, at: usize, value: u64, width: usize) {
        assert!(at + width <= self.data_size);
        Self::put(self.dat, at, value, width)
    }

    pub fn put_ctl(&self, at: usize, value: u64, width: usize) {
        assert!(at + width <= HEADER + SLOT * self.slots as usize);
        Self::put(self.ctl, at, value, width)
    }

    /// Writes message `m` (the bytes given) as an honest publisher does,
    /// and publishes it.
    pub fn publish(&self, m: u64, bytes: &[u8]) {
        let e = HEADER + ((m % self.ring) * self.entry) as usize;
        self.put_data(e, m + 1, 8);
        self.put_data(e + 8, bytes.len() as u64, 8);
        for (i, b) in bytes.iter().enumerate() {
            self.put_data(e + 16 + i, u64::from(*b), 1);
        }
        self.put_data(D_TAIL, m + 1, 8);
    }

    /// Passes the two descriptors as a publisher does.
    pub fn send(&self, socket: BorrowedFd<'_>) {
        send_raw(socket, HELLO, &[self.control.as_fd(), self.data.as_fd()]);
    }
}
