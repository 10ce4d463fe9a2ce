//! `vmsplice`: the pipes of `pipe` (grown as in `pipe-sized`, to hold the
//! pages of a whole frame), but the sender hands its frame to the pipe with
//! `vmsplice` instead of `write`; the receiver `read`s as with `pipe`.
//!
//! What `vmsplice` does (Linux `fs/splice.c`, `vmsplice_to_pipe` and
//! `iter_to_pipe`, up to at least 6.18): it takes a reference on each user
//! page of the range (`iov_iter_get_pages2`) and puts one pipe buffer per
//! page piece into the pipe, pointing at the sender's own page; nothing is
//! copied. The reader's `read` copies from those pages
//! (`copy_page_to_iter`), and only when a buffer is used up does the pipe
//! drop its page reference and free the slot (`pipe_read`, under the pipe
//! lock). So until the reader has taken a frame, the frame's bytes are
//! still the sender's memory: a write to the buffer changes data in flight
//! (`probe_maps_pages` shows it on this machine; `ipclab list` says what
//! it found).
//!
//! `SPLICE_F_GIFT` is not used. It only marks the buffers as stealable by a
//! later `splice` to a file (page-cache migration); a `read` copies either
//! way, and a gift forbids ever writing the pages again, which would need a
//! fresh page per message. Without it the buffer may be reused once the
//! reader has consumed it, and the sender proves that without a reply:
//!
//! A pipe holds at most `R = F_GETPIPE_SZ / page size` buffers and the
//! reader consumes them in order. Each buffer covers part of one page, so a
//! `vmsplice` of a range that touches `p` pages makes at least `p` buffers.
//! If a buffer of frame `k` were still in the pipe, every buffer spliced
//! after it would be too, so fewer than `R` buffers went in after it. Hence
//! once `R` buffers (counted by that lower bound) have gone in after frame
//! `k`'s last one, the reader has copied all of frame `k` and the pipe has
//! let go of its pages. [`Frames`] keeps one page-aligned buffer per frame
//! in a ring of `ceil(R / pages per frame) + 1`: by the time the ring comes
//! back to a buffer, the frames after it filled at least `R` buffers. It
//! checks the rule before every reuse anyway and fails rather than
//! overwrite a referenced buffer. (Were `vmsplice` a plain copy, as
//! proposed for later kernels, the rule would merely be unneeded.)
//!
//! Copies per message: one (the reader's `read`, from the sender's pages).

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::io::Errno;
use rustix::param::page_size;
use rustix::pipe::{IoSliceRaw, PipeFlags, SpliceFlags, fcntl_getpipe_size, pipe_with, vmsplice};

use super::framed::{FramedStream, PREFIX, put_prefix, read_exact};
use super::pipe::{self, Pipes};
use super::shm::region::Mapping;
use crate::transport::{
    ChannelConfig, Check, Copies, Endpoint, Family, Fill, Info, Limit, Pair, Prepared, Received,
    Transport, protocol_error,
};

pub struct Vmsplice;

impl Transport for Vmsplice {
    fn info(&self) -> Info {
        Info {
            name: "vmsplice",
            family: Family::MessagePassing,
            sync: "kernel (blocking read)",
            summary: "two pipes sized to a frame; the sender vmsplices page-aligned frames (no SPLICE_F_GIFT) from a ring it reuses only once the pipe must have released them, the receiver reads",
            polls: false,
            copies: Copies {
                count: None,
                why: "1 where vmsplice references the sender's pages (the reader's read is the only copy; a probe in ipclab list says which), 2 where the kernel copies them",
            },
        }
    }

    fn limits(&self) -> Vec<Limit> {
        let mut limits = pipe::limits();
        let found = match probe_maps_pages() {
            Ok(true) => {
                "references the sender's pages (a write after vmsplice showed in the read)".into()
            }
            Ok(false) => "copies (a write after vmsplice did not show in the read)".into(),
            Err(e) => format!("refused ({e})"),
        };
        limits.push(Limit::new("vmsplice into a pipe", found));
        limits
    }

    fn available(&self) -> Result<(), String> {
        probe_maps_pages()
            .map(|_| ())
            .map_err(|e| format!("vmsplice into a pipe fails: {e}"))
    }

    fn prepare(&self, config: &ChannelConfig) -> io::Result<Prepared> {
        let pipes = Pipes::new()?;
        pipes.grow(frame_pages(config.size) * page_size())?;
        Ok(Prepared::new(SplicePipes {
            pipes,
            size: config.size,
        }))
    }
}

struct SplicePipes {
    pipes: Pipes,
    /// The largest message.
    size: usize,
}

impl Pair for SplicePipes {
    fn server(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        let (rx, tx) = self.pipes.server_ends();
        Ok(Box::new(Spliced::new(rx, tx, self.size)?))
    }

    fn client(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        let (rx, tx) = self.pipes.client_ends();
        Ok(Box::new(Spliced::new(rx, tx, self.size)?))
    }
}

/// Pages of a page-aligned frame of a `size`-byte message.
fn frame_pages(size: usize) -> usize {
    (PREFIX + size).div_ceil(page_size())
}

/// Pages touched by the `len` bytes at address `addr`: a lower bound on
/// the pipe buffers a `vmsplice` of them made.
fn pages_touched(addr: usize, len: usize) -> u64 {
    let page = page_size();
    ((addr % page) + len).div_ceil(page) as u64
}

/// One side: receives like `pipe`, sends with [`Frames`].
struct Spliced {
    stream: FramedStream,
    frames: Frames,
}

impl Spliced {
    fn new(rx: OwnedFd, tx: OwnedFd, size: usize) -> io::Result<Self> {
        let slots = fcntl_getpipe_size(&tx)? / page_size();
        Ok(Spliced {
            frames: Frames::new(size, slots as u64, None)?,
            stream: FramedStream::new(rx, tx),
        })
    }
}

impl Endpoint for Spliced {
    fn send(&mut self, len: usize, fill: Fill<'_>) -> io::Result<()> {
        self.frames.send(self.stream.tx()?, len, fill)
    }

    fn recv(&mut self, len: usize, check: Check<'_>) -> io::Result<Received> {
        self.stream.recv(len, check)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.stream.finish()
    }

    fn rounds(&self) -> u64 {
        self.stream.rounds()
    }
}

/// The sender's ring of page-aligned frame buffers (see the module
/// documentation for the reuse rule).
struct Frames {
    /// A mapping of its own, not heap memory: dropped (after `finish`, an
    /// error, or while the reader still drains), its pages stay with the
    /// pipe that references them, and no later allocation of ours can
    /// reuse them while the pipe does.
    mem: Mapping,
    /// Bytes per buffer: a whole number of pages.
    stride: usize,
    /// The largest message.
    size: usize,
    /// The pipe's capacity in buffers (`R`).
    slots: u64,
    /// Pipe buffers made so far (the lower bound of [`pages_touched`]).
    spliced: u64,
    /// For each buffer, `spliced` after its last frame went in.
    ends: Vec<Option<u64>>,
    next: usize,
}

impl Frames {
    /// Buffers for messages of up to `size` bytes into a pipe of `slots`
    /// buffers; `count` overrides the ring's length (tests only).
    fn new(size: usize, slots: u64, count: Option<usize>) -> io::Result<Self> {
        let page = page_size();
        let pages = frame_pages(size);
        let count = count.unwrap_or_else(|| (slots as usize).div_ceil(pages) + 1);
        let stride = pages * page;
        Ok(Frames {
            mem: Mapping::shared_anonymous(count * stride)?,
            stride,
            size,
            slots,
            spliced: 0,
            ends: vec![None; count],
            next: 0,
        })
    }

    /// Fills the next buffer with a frame and splices it into `tx`.
    fn send(&mut self, tx: impl AsFd, len: usize, fill: Fill<'_>) -> io::Result<()> {
        if len > self.size {
            return Err(protocol_error(format!(
                "a {len}-byte message on a channel made for {} bytes",
                self.size
            )));
        }
        let slot = self.next;
        if let Some(end) = self.ends[slot]
            && self.spliced < end + self.slots
        {
            return Err(io::Error::other(format!(
                "frame buffer {slot} may still be in the pipe ({} buffers spliced after it, the pipe holds {})",
                self.spliced - end,
                self.slots
            )));
        }
        let start = slot * self.stride;
        // SAFETY: the mapping is `count * stride` bytes, page-aligned, and
        // only this value writes it; the slice ends within slot `slot`
        // (PREFIX + len ≤ stride, see `frame_pages`).
        let all = unsafe { std::slice::from_raw_parts_mut(self.mem.as_ptr(), self.mem.len()) };
        let frame = &mut all[start..start + PREFIX + len];
        put_prefix(frame, len);
        fill(0, &mut frame[PREFIX..]);
        let mut done = 0;
        while done < frame.len() {
            let piece = &frame[done..];
            // SAFETY: `tx` is the write end of a pipe, so the kernel only
            // reads `piece`; without SPLICE_F_GIFT there is no alignment
            // rule. The pipe keeps referencing the pages after the call:
            // `send` writes this buffer again only once the reuse rule
            // (checked above) says the reader has consumed it.
            match unsafe { vmsplice(&tx, &[IoSliceRaw::from_slice(piece)], SpliceFlags::empty()) } {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.spliced += pages_touched(piece.as_ptr() as usize, n);
                    done += n;
                }
                Err(Errno::INTR) => {}
                Err(e) => {
                    // Part of the frame may be in the pipe: the buffer
                    // counts as used, so a retry never writes over it.
                    self.ends[slot] = Some(self.spliced);
                    self.next = (slot + 1) % self.ends.len();
                    return Err(e.into());
                }
            }
        }
        self.ends[slot] = Some(self.spliced);
        self.next = (slot + 1) % self.ends.len();
        Ok(())
    }
}

/// Whether `vmsplice` into a pipe references the sender's pages (`true`)
/// or copies them (`false`): splices a page, changes it, reads it back.
fn probe_maps_pages() -> io::Result<bool> {
    let (rx, tx) = pipe_with(PipeFlags::CLOEXEC)?;
    let page = page_size();
    let mut mem = vec![0u8; 2 * page];
    let at = mem.as_ptr().align_offset(page);
    let buf = &mut mem[at..at + page];
    buf.fill(1);
    // SAFETY: `tx` is a pipe's write end (the kernel only reads `buf`);
    // `mem` outlives the read below, which takes the page out of the pipe.
    let n = unsafe { vmsplice(&tx, &[IoSliceRaw::from_slice(buf)], SpliceFlags::empty())? };
    buf.fill(2);
    let mut back = vec![0u8; n];
    read_exact(&rx, &mut back)?;
    Ok(back.first() == Some(&2))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sender's buffers dropped while the pipe still references their
    /// pages (after `finish`, or on an error): the reader still gets what
    /// was sent, whatever this process allocates and writes meanwhile.
    #[test]
    fn frames_dropped_before_the_reader_drains_leave_the_data_whole() {
        let (rx, tx) = pipe_with(PipeFlags::CLOEXEC).unwrap();
        let slots = (fcntl_getpipe_size(&tx).unwrap() / page_size()) as u64;
        let mut frames = Frames::new(12, slots, None).unwrap();
        for i in 0..4u8 {
            frames.send(&tx, 12, &mut |_, b| b.fill(i + 1)).unwrap();
        }
        drop(frames);
        let junk: Vec<Vec<u8>> = (0..64).map(|_| vec![0xee; 4096]).collect();
        for i in 0..4u8 {
            let mut frame = [0u8; PREFIX + 12];
            read_exact(&rx, &mut frame).unwrap();
            assert_eq!(frame[..PREFIX], 12u64.to_le_bytes());
            assert_eq!(frame[PREFIX..], [i + 1; 12], "frame {i}");
        }
        drop(junk);
    }

    #[test]
    fn the_ring_outlasts_the_pipe() {
        let page = page_size();
        // A pipe of 16 buffers: 17 one-page frames, 9 two-page ones, and
        // 2 for frames bigger than the pipe.
        assert_eq!(Frames::new(64, 16, None).unwrap().ends.len(), 17);
        assert_eq!(Frames::new(page, 16, None).unwrap().ends.len(), 9);
        assert_eq!(Frames::new(64 * page, 16, None).unwrap().ends.len(), 2);
        assert_eq!(pages_touched(0, 1), 1);
        assert_eq!(pages_touched(page - 1, 2), 2);
        assert_eq!(pages_touched(page, page), 1);
    }

    /// A ring too short for the pipe is refused at the first reuse that
    /// could overwrite a frame the reader has not taken.
    #[test]
    fn early_reuse_is_refused() {
        let (rx, tx) = pipe_with(PipeFlags::CLOEXEC).unwrap();
        let slots = (fcntl_getpipe_size(&tx).unwrap() / page_size()) as u64;
        let mut frames = Frames::new(12, slots, Some(2)).unwrap();
        let mut fill = |_: usize, b: &mut [u8]| b.fill(7);
        frames.send(&tx, 12, &mut fill).unwrap();
        frames.send(&tx, 12, &mut fill).unwrap();
        let e = frames.send(&tx, 12, &mut fill).unwrap_err();
        assert!(e.to_string().contains("may still be in the pipe"), "{e}");
        drop(rx);
    }

    /// On the kernels this was written for, a write after `vmsplice`
    /// changes the data in flight: the reason for the reuse rule.
    #[test]
    fn the_probe_answers() {
        match probe_maps_pages() {
            Ok(maps) => eprintln!("vmsplice references the sender's pages: {maps}"),
            Err(e) => panic!("vmsplice into a pipe failed: {e}"),
        }
    }
}
