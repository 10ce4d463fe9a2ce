//! One side of a framed Unix stream socket driven by io_uring.
//!
//! The frames are those of [`super::super::framed`] (an 8-byte
//! little-endian length, then the payload), moved with
//! `IORING_OP_WRITE_FIXED` and `IORING_OP_READ_FIXED` on one registered
//! buffer region: two send buffers (one filled while the other is written)
//! and one receive buffer, each of [`UringStream::chunk`] bytes. A frame
//! larger than a buffer goes in chunks.
//!
//! A write is *queued*, not submitted: it enters the kernel with the next
//! `io_uring_enter`, which for a pingpong is the one that submits the next
//! receive and waits for it. A round trip then costs one system call per
//! side instead of two. With `IORING_SETUP_SQPOLL` the kernel's polling
//! thread takes queued entries on its own and `io_uring_enter` only waits.
//!
//! At most one write is in flight, so the bytes of consecutive writes can
//! never overtake one another, and at most one read.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use io_uring::{IoUring, opcode, squeue, types};

use crate::mechanisms::framed::{PREFIX, check_prefix, put_prefix};
use crate::mechanisms::shm::region::Mapping;
use crate::transport::{Check, Endpoint, Fill, Received, protocol_error};

/// `user_data` of the write in flight.
const WRITE: u64 = 1;
/// `user_data` of the read in flight.
const READ: u64 = 2;

/// The write in flight: bytes `done..end` of send buffer `buf`.
struct Write {
    buf: usize,
    done: usize,
    end: usize,
}

/// One side of the channel. Fields drop in order: the ring (after
/// [`Drop`] has waited out every operation) before the buffers it uses.
pub struct UringStream {
    ring: IoUring,
    sock: OwnedFd,
    /// Send buffer 0, send buffer 1, receive buffer; registered as buffer 0.
    bufs: Mapping,
    chunk: usize,
    sqpoll: bool,
    write: Option<Write>,
    /// The send buffer the next chunk goes in; the write in flight, if
    /// any, uses the other one.
    next_send: usize,
    /// A write that failed, reported by the next `send`, `recv` or `finish`.
    write_error: Option<io::Error>,
    /// `Some(None)` while a read is in flight, `Some(Some(res))` once its
    /// completion came.
    read: Option<Option<i32>>,
    finished: bool,
    /// An error happened: see [`UringStream::checked`].
    broken: bool,
    rounds: u64,
}

impl UringStream {
    /// Takes `sock` and `ring` and registers three buffers of `chunk` bytes.
    pub fn new(ring: IoUring, sock: OwnedFd, chunk: usize, sqpoll: bool) -> io::Result<Self> {
        // Private: the ring is this process's alone, and kernels before
        // 5.14 refuse to register shmem-backed (MAP_SHARED) buffers.
        let bufs = Mapping::private_anonymous(3 * chunk)?;
        let region = libc::iovec {
            iov_base: bufs.as_ptr().cast(),
            iov_len: bufs.len(),
        };
        // SAFETY: the region stays mapped until the ring is dropped (the
        // field `bufs` drops after `ring`), which unregisters it.
        unsafe { ring.submitter().register_buffers(&[region]) }.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "registering {} bytes of buffers with io_uring (RLIMIT_MEMLOCK counts them): {e}",
                    3 * chunk
                ),
            )
        })?;
        Ok(UringStream {
            ring,
            sock,
            bufs,
            chunk,
            sqpoll,
            write: None,
            next_send: 0,
            write_error: None,
            read: None,
            finished: false,
            broken: false,
            rounds: 0,
        })
    }

    /// The address of byte `offset` of buffer `index` (0, 1: send; 2: receive).
    fn addr(&self, index: usize, offset: usize) -> *mut u8 {
        debug_assert!(index < 3 && offset <= self.chunk);
        // SAFETY: the offset stays inside the mapping of 3 * chunk bytes.
        unsafe { self.bufs.as_ptr().add(index * self.chunk + offset) }
    }

    /// Puts `entry` on the submission queue; with a polling thread, wakes
    /// it if it went to sleep (otherwise no system call).
    ///
    /// # Safety
    /// The buffer `entry` names must stay untouched by this process until
    /// its completion is reaped.
    unsafe fn push(&mut self, entry: squeue::Entry) -> io::Result<()> {
        // SAFETY: the caller keeps the buffer alive and alone until the
        // completion; the queue holds at most one read and one write.
        unsafe { self.ring.submission().push(&entry) }
            .map_err(|_| io::Error::other("io_uring submission queue full"))?;
        if self.sqpoll {
            // The entry is queued whatever this says, and the polling
            // thread may take it: it counts as in flight (the caller
            // records it), and the next `submit_and_wait` wakes the thread
            // anyway, so a failed wake-up is no error.
            let _ = self.ring.submit();
        }
        Ok(())
    }

    /// Queues the write of bytes `done..end` of send buffer `buf`.
    fn push_write(&mut self, buf: usize, done: usize, end: usize) -> io::Result<()> {
        let fd = types::Fd(self.sock.as_raw_fd());
        let entry = opcode::WriteFixed::new(fd, self.addr(buf, done), (end - done) as u32, 0)
            .build()
            .user_data(WRITE);
        // SAFETY: send buffer `buf` is written to only by `send`, which
        // waits for this write's completion (`wait_write`) before it fills
        // the buffer again; `Drop` waits for it before the buffers go.
        unsafe { self.push(entry) }?;
        self.write = Some(Write { buf, done, end });
        Ok(())
    }

    /// Queues a read of `len` bytes into the receive buffer at `offset`.
    fn push_read(&mut self, offset: usize, len: usize) -> io::Result<()> {
        let fd = types::Fd(self.sock.as_raw_fd());
        let entry = opcode::ReadFixed::new(fd, self.addr(2, offset), len as u32, 0)
            .build()
            .user_data(READ);
        // SAFETY: the receive buffer is looked at only by `recv` after this
        // read's completion; `Drop` waits for it before the buffers go.
        unsafe { self.push(entry) }?;
        self.read = Some(None);
        Ok(())
    }

    /// Operations submitted or queued whose completion has not come.
    fn in_flight(&self) -> usize {
        usize::from(self.write.is_some()) + usize::from(self.read == Some(None))
    }

    /// Submits whatever is queued, waits until every operation in flight
    /// has completed (one system call for a pingpong's write and read) and
    /// takes every completion there is. A short write's rest is queued
    /// again, so a caller loops until what it waits for is done.
    fn wait_once(&mut self) -> io::Result<()> {
        match self.ring.submit_and_wait(self.in_flight().max(1)) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) => return Err(e),
        }
        let done: Vec<(u64, i32)> = self
            .ring
            .completion()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        // Every completion is taken, also after an error: one left behind
        // would leave its operation counted in flight for ever.
        let mut first_error = None;
        for (what, res) in done {
            let taken = match what {
                READ => {
                    self.read = Some(Some(res));
                    Ok(())
                }
                WRITE => self.write_completed(res),
                _ => Err(io::Error::other("io_uring completion of no operation")),
            };
            if let Err(e) = taken {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn write_completed(&mut self, res: i32) -> io::Result<()> {
        let Some(Write { buf, done, end }) = self.write.take() else {
            return Err(io::Error::other(
                "io_uring write completion without a write",
            ));
        };
        match res {
            n if n > 0 && done + n as usize == end => Ok(()),
            // A short write: the rest goes next, before any other write.
            n if n > 0 => self.push_write(buf, done + n as usize, end),
            n if n == -libc::EINTR || n == -libc::EAGAIN => self.push_write(buf, done, end),
            0 => {
                self.write_error = Some(io::ErrorKind::WriteZero.into());
                Ok(())
            }
            n => {
                self.write_error = Some(io::Error::from_raw_os_error(-n));
                Ok(())
            }
        }
    }

    /// Waits until no write is in flight; the error of a failed one.
    fn wait_write(&mut self) -> io::Result<()> {
        while self.write.is_some() {
            self.wait_once()?;
        }
        self.write_error.take().map_or(Ok(()), Err)
    }

    /// Reads `len` bytes into the receive buffer at `offset` with one read
    /// operation: how many came (0 at end of stream).
    fn read_once(&mut self, offset: usize, len: usize) -> io::Result<usize> {
        loop {
            self.push_read(offset, len)?;
            while self.read == Some(None) {
                self.wait_once()?;
            }
            if let Some(e) = self.write_error.take() {
                return Err(e);
            }
            match self.read.take().flatten() {
                Some(n) if n >= 0 => return Ok(n as usize),
                Some(n) if n == -libc::EINTR || n == -libc::EAGAIN => {}
                Some(n) => return Err(io::Error::from_raw_os_error(-n)),
                None => return Err(io::Error::other("io_uring read completion lost")),
            }
        }
    }
}

impl UringStream {
    /// After any error the buffers' bookkeeping may be out of step with
    /// the kernel (a write whose buffer was flipped, a read left queued):
    /// every later call fails instead of reusing a buffer in flight.
    fn checked<T>(&mut self, f: impl FnOnce(&mut Self) -> io::Result<T>) -> io::Result<T> {
        if self.broken {
            return Err(io::Error::other("the io_uring stream failed earlier"));
        }
        let result = f(self);
        self.broken = result.is_err();
        result
    }

    fn send_frame(&mut self, len: usize, fill: Fill<'_>) -> io::Result<()> {
        if self.finished {
            return Err(protocol_error("send after finish"));
        }
        let frame = PREFIX + len;
        let mut pos = 0;
        while pos < frame {
            let n = self.chunk.min(frame - pos);
            let buf = self.next_send;
            self.next_send ^= 1;
            // SAFETY: send buffer `buf` is not in flight: the only write
            // that may be uses the other one (the previous chunk), and
            // the write before that completed in an earlier `wait_write`.
            let chunk = unsafe { std::slice::from_raw_parts_mut(self.addr(buf, 0), n) };
            if pos == 0 {
                put_prefix(chunk, len);
                fill(0, &mut chunk[PREFIX..]);
            } else {
                fill(pos - PREFIX, chunk);
            }
            self.wait_write()?;
            self.push_write(buf, 0, n)?;
            pos += n;
        }
        Ok(())
    }

    fn recv_frame(&mut self, len: usize, check: Check<'_>) -> io::Result<Received> {
        let frame = PREFIX + len;
        let mut pos = 0;
        while pos < frame {
            let n = self.chunk.min(frame - pos);
            let mut got = 0;
            while got < n {
                match self.read_once(got, n - got)? {
                    0 if pos + got == 0 => return Ok(Received::Closed),
                    0 => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!(
                                "peer closed the stream after {} of {frame} bytes",
                                pos + got
                            ),
                        ));
                    }
                    k => got += k,
                }
                self.rounds += 1;
            }
            // SAFETY: no read is in flight: the receive buffer's `n` bytes
            // are the kernel's finished work, untouched until the next read.
            let chunk = unsafe { std::slice::from_raw_parts(self.addr(2, 0), n) };
            if pos == 0 {
                check_prefix(chunk, len)?;
                check(0, &chunk[PREFIX..]);
            } else {
                check(pos - PREFIX, chunk);
            }
            pos += n;
        }
        Ok(Received::Message)
    }

    fn finish_stream(&mut self) -> io::Result<()> {
        if !self.finished {
            self.finished = true;
            self.wait_write()?;
            rustix::net::shutdown(&self.sock, rustix::net::Shutdown::Write)?;
        }
        Ok(())
    }
}

impl Endpoint for UringStream {
    fn send(&mut self, len: usize, fill: Fill<'_>) -> io::Result<()> {
        self.checked(|s| s.send_frame(len, fill))
    }

    fn recv(&mut self, len: usize, check: Check<'_>) -> io::Result<Received> {
        self.checked(|s| s.recv_frame(len, check))
    }

    fn finish(&mut self) -> io::Result<()> {
        self.checked(Self::finish_stream)
    }

    fn rounds(&self) -> u64 {
        self.rounds
    }
}

impl Drop for UringStream {
    /// Ends every operation before the ring and buffers go: shutting the
    /// socket down completes a waiting read (end of stream) and a waiting
    /// write (`EPIPE`) at once.
    fn drop(&mut self) {
        if self.write.is_none() && self.read != Some(None) {
            return;
        }
        let _ = rustix::net::shutdown(&self.sock, rustix::net::Shutdown::Both);
        while self.write.is_some() || self.read == Some(None) {
            if self.wait_once().is_err() {
                // Only a ring that cannot enter the kernel gets here. The
                // kernel keeps the registered pages pinned until the ring
                // is gone, so an operation still running touches those
                // pages, never memory this process reuses after `munmap`.
                break;
            }
        }
    }
}
