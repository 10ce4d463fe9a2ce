//! `io-uring` and `io-uring-sqpoll`: an `AF_UNIX SOCK_STREAM` socketpair
//! with length-prefixed frames, both sides driving it through io_uring
//! (the `io-uring` crate) with registered buffers ([`stream`]).
//!
//! Each side makes its own ring after the fork (a ring shared across
//! `fork` would be one ring for two processes). `io-uring-sqpoll` asks for
//! `IORING_SETUP_SQPOLL`: a kernel thread (`iou-sqp-<pid>`, a thread of the
//! side's process) takes submissions from the ring without a system call,
//! pinned with `IORING_SETUP_SQ_AFF` to the CPU the side is pinned to. It
//! spins while there is work and for [`SQ_IDLE_MS`] after. Its CPU time,
//! the price of the saved `io_uring_enter` calls, is part of the side's
//! process CPU time and so of the CPU column ([`sq_thread`] reads it apart
//! and its test shows that).

use std::io;
use std::os::fd::OwnedFd;

use io_uring::IoUring;
use rustix::net::SocketType;

use super::framed::PREFIX;
use crate::machine::read_proc;
use crate::mechanisms::address_space::{memlock, memlock_text};
use crate::mechanisms::unix_stream::unix_pair;
use crate::transport::{
    ChannelConfig, Copies, Endpoint, Family, Info, Limit, Pair, Prepared, Transport,
};

pub mod sq_thread;
mod stream;

use stream::UringStream;

/// Milliseconds the polling thread spins without work before it sleeps.
pub const SQ_IDLE_MS: u32 = 100;
/// Submission queue entries: a side has at most one read and one write.
const ENTRIES: u32 = 8;
/// The largest buffer a side registers (three of them).
const CHUNK_MAX: usize = 1 << 20;

pub struct Uring {
    sqpoll: bool,
}

pub static IO_URING: Uring = Uring { sqpoll: false };
pub static IO_URING_SQPOLL: Uring = Uring { sqpoll: true };

impl Transport for Uring {
    fn info(&self) -> Info {
        let (name, sync, summary) = if self.sqpoll {
            (
                "io-uring-sqpoll",
                "io_uring (kernel thread polls submissions; io_uring_enter waits)",
                "as io-uring, with IORING_SETUP_SQPOLL: a kernel thread per side, pinned to the side's CPU, spins on the queue (its CPU time counts in the side's CPU time)",
            )
        } else {
            (
                "io-uring",
                "io_uring (io_uring_enter waits)",
                "AF_UNIX SOCK_STREAM socketpair through io_uring: READ_FIXED/WRITE_FIXED on registered buffers, a send and the next receive in one io_uring_enter; length-prefixed frames",
            )
        };
        Info {
            name,
            family: Family::MessagePassing,
            sync,
            summary,
            polls: false,
            copies: Copies {
                count: Some(2),
                why: "the write copies the registered buffer into the socket, the read copies into the receiver's registered buffer",
            },
        }
    }

    fn limits(&self) -> Vec<Limit> {
        let mut limits = vec![
            Limit::new(
                "kernel.io_uring_disabled",
                read_proc("/proc/sys/kernel/io_uring_disabled"),
            ),
            Limit::new("RLIMIT_MEMLOCK (counts registered buffers)", memlock_text()),
            Limit::new(
                "registered buffer per side",
                format!("3 x {} bytes at most", chunk_max()),
            ),
        ];
        if self.sqpoll {
            limits.push(Limit::new("sq_thread_idle", format!("{SQ_IDLE_MS} ms")));
        }
        limits
    }

    fn available(&self) -> Result<(), String> {
        let disabled = read_proc("/proc/sys/kernel/io_uring_disabled");
        if disabled == "2" {
            return Err("kernel.io_uring_disabled = 2: io_uring is off for every process".into());
        }
        ring(self.sqpoll).map(drop).map_err(|e| {
            let why = match e.raw_os_error() {
                Some(libc::ENOSYS) => "the kernel has no io_uring, or a seccomp filter refuses it",
                Some(libc::EPERM) if disabled == "1" => {
                    "kernel.io_uring_disabled = 1 and this process is not in kernel.io_uring_group"
                }
                Some(libc::EPERM) => "refused (a seccomp filter or a security module)",
                _ => "refused",
            };
            format!("io_uring_setup: {why} ({e})")
        })
    }

    fn prepare(&self, config: &ChannelConfig) -> io::Result<Prepared> {
        let (server, client) = unix_pair(SocketType::STREAM)?;
        Ok(Prepared::new(Ends {
            server,
            client,
            sqpoll: self.sqpoll,
            chunk: chunk_for(config.size),
        }))
    }
}

struct Ends {
    server: OwnedFd,
    client: OwnedFd,
    sqpoll: bool,
    chunk: usize,
}

impl Ends {
    /// This side's endpoint on `sock`, on a ring made in this process.
    fn endpoint(self, take_server: bool) -> io::Result<Box<dyn Endpoint>> {
        let sock = if take_server {
            self.server
        } else {
            self.client
        };
        let ring = ring(self.sqpoll)?;
        Ok(Box::new(UringStream::new(
            ring,
            sock,
            self.chunk,
            self.sqpoll,
        )?))
    }
}

impl Pair for Ends {
    fn server(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        self.endpoint(true)
    }

    fn client(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        self.endpoint(false)
    }
}

/// `io_uring_setup`: a ring of [`ENTRIES`]; with `sqpoll`, its polling
/// thread pinned to this process's CPU when the process is pinned to one.
fn ring(sqpoll: bool) -> io::Result<IoUring> {
    let mut builder = IoUring::builder();
    if sqpoll {
        builder.setup_sqpoll(SQ_IDLE_MS);
        if let Some(cpu) = only_cpu() {
            builder.setup_sqpoll_cpu(cpu as u32);
        }
    }
    builder.build(ENTRIES)
}

/// The one CPU this process may run on, if it is pinned to one.
fn only_cpu() -> Option<usize> {
    let set = rustix::thread::sched_getaffinity(None).ok()?;
    if set.count() != 1 {
        return None;
    }
    (0..rustix::thread::CpuSet::MAX_CPU).find(|&c| set.is_set(c))
}

/// The buffer size for frames of `size` bytes: a whole frame (in pages)
/// when it fits in [`chunk_max`].
fn chunk_for(size: usize) -> usize {
    (PREFIX + size).next_multiple_of(4096).min(chunk_max())
}

/// The largest size of each of a side's three registered buffers: a power of two
/// of at most [`CHUNK_MAX`], small enough that both sides' buffers take at
/// most a quarter of `RLIMIT_MEMLOCK` (the kernel counts registered pages
/// per user, so other processes of the user share the limit).
fn chunk_max() -> usize {
    let budget = memlock().map_or(CHUNK_MAX, |b| (b / 24) as usize);
    let chunk = budget.clamp(4096, CHUNK_MAX);
    1 << chunk.ilog2()
}
