//! Where the shared memory comes from: one [`Region`] implementation per
//! kind (System V segment, POSIX shared memory, a file, a memfd, an
//! anonymous mapping), and the [`Mapping`] that unmaps it.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::ptr::NonNull;

use rustix::fs::{FallocateFlags, fallocate, fstat, ftruncate};
use rustix::mm::{MapFlags, ProtFlags, mmap, mmap_anonymous, munmap};
use rustix::process::Signal;

use super::cleanup::Cleanup;
use super::names::{OWNER_ONLY, check_mode};
use crate::mechanisms::address_space::map_error;
use crate::transport::{Limit, protocol_error};

/// Which process a side runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Server,
    Client,
}

impl Side {
    /// Index into per-side arrays in the segment.
    pub fn index(self) -> usize {
        match self {
            Side::Server => 0,
            Side::Client => 1,
        }
    }

    pub fn peer(self) -> Side {
        match self {
            Side::Server => Side::Client,
            Side::Client => Side::Server,
        }
    }

    /// The direction this side sends in: 0 is client to server, 1 server
    /// to client.
    pub fn tx_dir(self) -> usize {
        match self {
            Side::Client => 0,
            Side::Server => 1,
        }
    }

    pub fn rx_dir(self) -> usize {
        1 - self.tx_dir()
    }
}

/// Initialises a fresh region through a mapping of it (in `prepare`).
pub type Init<'a> = &'a mut dyn FnMut(&Mapping, &mut Cleanup) -> io::Result<()>;

/// One kind of shared memory.
pub trait Region: 'static {
    /// What a side needs to attach: an id, a name, a descriptor.
    type Handle;

    /// Creates a zero-filled region of `len` bytes in `prepare`, registers
    /// in `cleanup` whatever outlives processes, and lets `init` write the
    /// header through a mapping of it.
    fn create(len: usize, cleanup: &mut Cleanup, init: Init<'_>) -> io::Result<Self::Handle>;

    /// Maps the region in a side's process, checking that it is what
    /// `create` made (size, owner, seals).
    fn attach(handle: &mut Self::Handle, side: Side, len: usize) -> io::Result<Mapping>;

    /// Removes the region's name (or id) once both sides have attached; the
    /// memory lives on until both unmap it.
    fn unlink(_handle: &Self::Handle) -> io::Result<()> {
        Ok(())
    }

    /// Limits of this machine that bound the region.
    fn limits() -> Vec<Limit> {
        Vec::new()
    }

    /// Another mapping of the region, made in the supervisor before the
    /// fork, for fault injection (`Pair::shared_memory`).
    fn map_again(handle: &Self::Handle, len: usize) -> io::Result<Mapping>;
}

/// Sizes `fd` to `len` bytes, allocated now.
pub fn size_and_allocate(fd: &OwnedFd, len: usize) -> io::Result<()> {
    ftruncate(fd, len as u64)?;
    fallocate(fd, FallocateFlags::empty(), 0, len as u64).map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!("allocating {len} bytes of shared memory: {e}"),
        )
    })
}

/// Checks that an opened object is a regular file of ours, `len` bytes long.
pub fn check_file(what: &str, fd: &OwnedFd, len: usize) -> io::Result<()> {
    let st = fstat(fd)?;
    if st.st_uid != rustix::process::geteuid().as_raw() {
        return Err(protocol_error(format!(
            "{what} belongs to uid {}",
            st.st_uid
        )));
    }
    if st.st_size != len as i64 {
        return Err(protocol_error(format!(
            "{what} has {} bytes, expected {len}",
            st.st_size
        )));
    }
    check_mode(what, st.st_mode, OWNER_ONLY)
}

/// Test-only fault, inert when unset: with `IPCLAB_FAULT_TRUNCATE=<µs>`,
/// the server's attach leaves behind a process holding `fd` that truncates
/// it to 0 bytes after that delay, as a hostile peer with the same user id
/// could. The sides then fault (`SIGBUS`) on their next access: see
/// `harness/sigbus.rs`.
pub fn fault_truncate_later(fd: &OwnedFd, side: Side) -> io::Result<()> {
    let Some(delay_us) = std::env::var("IPCLAB_FAULT_TRUNCATE")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return Ok(());
    };
    if side != Side::Server {
        return Ok(());
    }
    let server = rustix::process::getpid();
    // SAFETY: the child makes only system calls (prctl, getppid,
    // close_range, nanosleep, ftruncate, _exit), all async-signal-safe, so
    // it is sound whatever other threads this process has.
    if let nix::unistd::ForkResult::Child = unsafe { nix::unistd::fork() }? {
        // Dies with the server (which never reaps it), and holds nothing
        // but `fd`: an inherited lifeline end would hide the server's death
        // from the client.
        let _ = rustix::process::set_parent_process_death_signal(Some(Signal::KILL));
        if rustix::process::getppid() != Some(server) {
            // SAFETY: as below.
            unsafe { libc::_exit(0) }
        }
        let keep = fd.as_raw_fd() as libc::c_uint;
        // SAFETY: close_range closes descriptors only; no Rust object of
        // this child uses them again before `_exit` (`fd` is kept).
        unsafe {
            if keep > 0 {
                libc::syscall(libc::SYS_close_range, 0, keep - 1, 0);
            }
            libc::syscall(libc::SYS_close_range, keep + 1, libc::c_uint::MAX, 0);
        }
        let delay = rustix::time::Timespec {
            tv_sec: (delay_us / 1_000_000) as _,
            tv_nsec: ((delay_us % 1_000_000) * 1000) as _,
        };
        let _ = rustix::thread::nanosleep(&delay);
        let _ = ftruncate(fd, 0);
        // SAFETY: ends the helper at once, running nothing of the side's.
        unsafe { libc::_exit(0) }
    }
    Ok(())
}

#[derive(Debug)]
enum Detach {
    Munmap,
    Shmdt,
}

/// A mapping of shared memory, unmapped (or detached) on drop.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    detach: Detach,
}

impl Mapping {
    /// `mmap(NULL, len, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0)`—Maps a
    /// shared file, shared memory object or memfd.
    pub fn shared_fd(fd: impl AsFd, len: usize) -> io::Result<Mapping> {
        // SAFETY: a new mapping at an address the kernel picks overlaps no
        // existing Rust object; the returned value owns it.
        let ptr = unsafe {
            mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )
            .map_err(|e| map_error("the shared memory", len, e))?
        };
        Ok(Mapping {
            ptr: NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap returned NULL"))?,
            len,
            detach: Detach::Munmap,
        })
    }

    /// `mmap(NULL, len, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_ANONYMOUS, -1,
    /// 0)`—Memory shared with the children forked after this call.
    pub fn shared_anonymous(len: usize) -> io::Result<Mapping> {
        Self::anonymous(len, MapFlags::SHARED)
    }

    /// `mmap(NULL, len, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS,
    /// -1, 0)`—Memory of this process alone.
    pub fn private_anonymous(len: usize) -> io::Result<Mapping> {
        Self::anonymous(len, MapFlags::PRIVATE)
    }

    fn anonymous(len: usize, flags: MapFlags) -> io::Result<Mapping> {
        // SAFETY: as in `shared_fd`.
        let ptr = unsafe {
            mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                flags,
            )?
        };
        Ok(Mapping {
            ptr: NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap returned NULL"))?,
            len,
            detach: Detach::Munmap,
        })
    }

    /// Takes ownership of a System V attachment.
    ///
    /// # Safety
    /// `ptr` must be an address returned by `shmat` for a segment of at
    /// least `len` bytes, attached once and owned by nothing else.
    pub unsafe fn from_shmat(ptr: NonNull<u8>, len: usize) -> Mapping {
        Mapping {
            ptr,
            len,
            detach: Detach::Shmdt,
        }
    }

    /// `mremap(ptr, 0, len, MREMAP_MAYMOVE)`—A second mapping of the same
    /// shared pages (a mapping made by `mmap` with `MAP_SHARED`), unmapped
    /// on its own drop.
    pub fn duplicate(&self) -> io::Result<Mapping> {
        if !matches!(self.detach, Detach::Munmap) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "only an mmap'ed mapping can be duplicated",
            ));
        }
        // SAFETY: with an old size of 0, mremap leaves the shared mapping at
        // `ptr` as it is and creates a new one of the same pages at an
        // address the kernel picks, overlapping no Rust object; the
        // returned value owns it.
        let ptr = unsafe {
            rustix::mm::mremap(
                self.ptr.as_ptr().cast(),
                0,
                self.len,
                rustix::mm::MremapFlags::MAYMOVE,
            )?
        };
        Ok(Mapping {
            ptr: NonNull::new(ptr.cast())
                .ok_or_else(|| io::Error::other("mremap returned NULL"))?,
            len: self.len,
            detach: Detach::Munmap,
        })
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Maps every page now, writable (`MADV_POPULATE_WRITE`), without
    /// changing a byte: the first messages then pay no page faults. A hint:
    /// a kernel without it (before 5.14) leaves the faults for later.
    pub fn prefault(&self) {
        // SAFETY: the range is this mapping; populating changes no
        // contents, only which pages are mapped.
        let _ = unsafe {
            rustix::mm::madvise(
                self.ptr.as_ptr().cast(),
                self.len,
                rustix::mm::Advice::LinuxPopulateWrite,
            )
        };
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        match self.detach {
            Detach::Munmap => {
                // SAFETY: this value owns the mapping, and every pointer
                // into it lives in values that drop before it (the ring
                // drops its semaphores first).
                let _ = unsafe { munmap(self.ptr.as_ptr().cast(), self.len) };
            }
            Detach::Shmdt => {
                // SAFETY: as for `munmap`; `ptr` came from `shmat`.
                let _ = unsafe { libc::shmdt(self.ptr.as_ptr().cast()) };
            }
        }
    }
}
