//! The memory of one channel as the protocol sees it: a [`Header`] and a
//! data area of `capacity` bytes, addressed by ever-growing positions taken
//! modulo the capacity.
//!
//! Only this file touches the data area, and only through raw pointers:
//! the receiver copies bytes out, or (the in-place receive, which trusts
//! the sender) lends a message where it lies; the sender copies bytes in
//! or lends a piece of the area to a closure that fills it.

use std::ptr::NonNull;

use crate::layout::{Header, RECORD_HEADER};

/// A cache line.
const LINE: u64 = 64;
/// Bytes [`Ring::prefetch`] fetches ahead at most: a small message whole
/// (header and payload of 64 bytes span two lines, one of 4 KiB sixty-four);
/// beyond that the hardware prefetcher follows the reads.
const PREFETCH: u64 = 512;

/// Pointers to a header and its data area. `Copy`, so that a side can keep
/// the header borrowed while it changes its own state.
#[derive(Clone, Copy)]
pub(crate) struct Ring {
    hdr: NonNull<Header>,
    data: NonNull<u8>,
    cap: u64,
}

impl Ring {
    /// # Safety
    ///
    /// `hdr` points to a [`Header`] and `data` to `cap` bytes, both valid
    /// for reads and writes for as long as this `Ring` or a copy of it is
    /// used, and written by nobody else but the peer. `cap` is a power of
    /// two and at least 64.
    pub(crate) unsafe fn new(hdr: NonNull<Header>, data: NonNull<u8>, cap: u64) -> Ring {
        debug_assert!(cap.is_power_of_two() && cap >= 64);
        Ring { hdr, data, cap }
    }

    pub(crate) fn header(&self) -> &Header {
        // SAFETY: `new`'s contract: the header is valid while the ring is
        // used; its fields are atomics, so sharing it with the peer is fine.
        unsafe { self.hdr.as_ref() }
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.cap
    }

    fn offset(&self, pos: u64) -> usize {
        // The offset is below `cap`, which fits in the address space.
        (pos & (self.cap - 1)) as usize
    }

    /// The one or two pieces `(offset, len)` that hold `len` bytes from
    /// `pos`: the second is empty unless the bytes wrap around the end.
    fn pieces(&self, pos: u64, len: u64) -> [(usize, usize); 2] {
        debug_assert!(len <= self.cap);
        let off = self.offset(pos);
        let first = len.min(self.cap - off as u64) as usize;
        [(off, first), (0, len as usize - first)]
    }

    /// Copies `src` into the data area at `pos`. The caller owns those bytes
    /// (they lie between its tail and the consumer's head plus capacity).
    #[cfg(test)]
    pub(crate) fn write(&self, pos: u64, src: &[u8]) {
        let mut done = 0;
        for (off, len) in self.pieces(pos, src.len() as u64) {
            // SAFETY: `pieces` keeps `off + len` within the `cap` bytes of
            // the data area, and `src` has `len` bytes from `done`; the two
            // cannot overlap (`src` is private memory).
            unsafe {
                std::ptr::copy_nonoverlapping(
                    src.as_ptr().add(done),
                    self.data.as_ptr().add(off),
                    len,
                );
            }
            done += len;
        }
    }

    /// Writes a record header at `pos` (a multiple of 16, so it never
    /// wraps): one fixed-size store, where `write` would call `memcpy`.
    pub(crate) fn write_header(&self, pos: u64, header: [u8; RECORD_HEADER as usize]) {
        let off = self.offset(pos);
        debug_assert!(off % RECORD_HEADER as usize == 0);
        // SAFETY: `off + 16 <= cap` (as in `read_header`), and a byte array
        // needs no alignment; the caller owns these bytes until it
        // publishes them (a hostile consumer writing them meanwhile only
        // changes what we send).
        unsafe {
            self.data
                .as_ptr()
                .add(off)
                .cast::<[u8; RECORD_HEADER as usize]>()
                .write_unaligned(header)
        }
    }

    /// Lends the `len` bytes at `pos` to `fill`, as one piece or two:
    /// `fill(offset, piece)` with the piece's offset from `pos`.
    ///
    /// # Safety
    ///
    /// The caller owns these bytes (they lie after its unpublished tail,
    /// within the room the consumer gave back) and holds no other
    /// reference into them for the call, and `fill` makes none: the pieces
    /// are the only references to them while it runs. (A `Ring` is `Copy`,
    /// so `&mut self` could not promise that.)
    pub(crate) unsafe fn fill(&self, pos: u64, len: u64, fill: &mut dyn FnMut(usize, &mut [u8])) {
        let mut done = 0;
        for (off, len) in self.pieces(pos, len) {
            if len == 0 {
                continue;
            }
            // SAFETY: within the data area (`piece`); no other reference
            // to these bytes exists during the call (our contract), and the
            // piece lives no longer than it. What a hostile consumer writes
            // there meanwhile only changes the bytes we send, never our
            // control flow (we do not read them back); see `Loan` for the
            // trust that handing out `&mut [u8]` into shared memory takes.
            fill(done, unsafe { self.piece(off, len).as_mut() });
            done += len;
        }
    }

    /// The `len` contiguous bytes at `pos`, which must not wrap: a raw
    /// pointer, so that no two calls can make aliasing `&mut` (the caller
    /// decides when a reference may be formed, see `Loan`).
    pub(crate) fn contiguous_mut(&self, pos: u64, len: u64) -> NonNull<[u8]> {
        let [(off, first), _] = self.pieces(pos, len);
        assert_eq!(first as u64, len, "a loan never wraps");
        self.piece(off, first)
    }

    fn piece(&self, off: usize, len: usize) -> NonNull<[u8]> {
        debug_assert!(off + len <= self.cap as usize);
        // SAFETY: `off <= cap`: within the data area or one past its end.
        let start = unsafe { self.data.add(off) };
        NonNull::slice_from_raw_parts(start, len)
    }

    /// The `len` bytes at `pos` if they lie in one piece (they do not wrap
    /// around the end of the data area); `None` otherwise. A raw pointer:
    /// the caller decides how long it may look (see `InPlace`).
    pub(crate) fn contiguous(&self, pos: u64, len: u64) -> Option<NonNull<[u8]>> {
        let [(off, first), _] = self.pieces(pos, len);
        if first as u64 != len {
            return None;
        }
        // SAFETY: `pieces` keeps `off + len` within the data area.
        let start = unsafe { self.data.add(off) };
        Some(NonNull::slice_from_raw_parts(start, first))
    }

    /// Asks the CPU to start fetching the cache lines of the `len` bytes at
    /// `pos` (at most [`PREFETCH`] of them), so that they travel from the
    /// peer's cache together rather than one miss after another as the
    /// bytes are read. A hint: no fault, no effect on what is read.
    #[inline]
    pub(crate) fn prefetch(&self, pos: u64, len: u64) {
        self.prefetch_lines::<false>(pos & !(LINE - 1), pos + len.min(PREFETCH));
    }

    /// Asks the CPU to fetch, for writing, the whole cache lines of the
    /// `len` bytes at `pos` (at most [`PREFETCH`]) that begin at or after
    /// `pos`: the lines of the next record, taken from the peer's cache
    /// while this side has nothing else to do, instead of on the way to
    /// publishing it. A line that begins before `pos` may still hold
    /// bytes the peer is reading: it is left alone.
    #[inline]
    pub(crate) fn prefetch_for_write(&self, pos: u64, len: u64) {
        self.prefetch_lines::<true>(pos.next_multiple_of(LINE), pos + len.min(PREFETCH));
    }

    #[inline]
    fn prefetch_lines<const WRITE: bool>(&self, mut at: u64, end: u64) {
        #[cfg(target_arch = "x86_64")]
        while at < end {
            let off = self.offset(at);
            // SAFETY: `off` is below `cap`: within the data area. A
            // prefetch is only a hint and cannot fault; `_mm_prefetch` is
            // `unsafe` on the oldest compilers this crate supports.
            #[allow(unused_unsafe)]
            unsafe {
                use std::arch::x86_64::{_MM_HINT_ET0, _MM_HINT_T0, _mm_prefetch};
                let p = self.data.as_ptr().add(off).cast();
                if WRITE {
                    // `prefetchw` (a no-op on CPUs without it).
                    _mm_prefetch::<_MM_HINT_ET0>(p);
                } else {
                    _mm_prefetch::<_MM_HINT_T0>(p);
                }
            }
            at += LINE;
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (at, end);
    }

    /// Copies the record header at `pos` (a multiple of 16, so it never
    /// wraps) out of shared memory.
    pub(crate) fn read_header(&self, pos: u64) -> [u8; RECORD_HEADER as usize] {
        let off = self.offset(pos);
        debug_assert!(off % RECORD_HEADER as usize == 0);
        // SAFETY: `off + 16 <= cap` because `off` is a multiple of 16 below
        // `cap`, itself a multiple of 16; the data area is page-aligned, so
        // both words are aligned. Volatile reads (two words, not sixteen
        // bytes): the peer may be writing these bytes, and we look at the
        // copy only.
        let [a, b] = unsafe {
            let at = self.data.as_ptr().add(off).cast::<u64>();
            [at.read_volatile(), at.add(1).read_volatile()]
        };
        let mut out = [0; RECORD_HEADER as usize];
        out[..8].copy_from_slice(&a.to_ne_bytes());
        out[8..].copy_from_slice(&b.to_ne_bytes());
        out
    }

    /// Copies `len` bytes at `pos` out of shared memory to `dst`.
    ///
    /// # Safety
    ///
    /// `dst` is valid for `len` bytes of writes and is not in the data area.
    pub(crate) unsafe fn read(&self, pos: u64, dst: *mut u8, len: u64) {
        let mut done = 0;
        for (off, len) in self.pieces(pos, len) {
            // SAFETY: the source is within the data area (`pieces`); the
            // destination is valid for `len` writes from `done` (the
            // caller's contract). The copy may race with a hostile peer's
            // writes: it then yields arbitrary bytes, which the caller only
            // ever looks at in its private copy.
            unsafe {
                std::ptr::copy_nonoverlapping(self.data.as_ptr().add(off), dst.add(done), len);
            }
            done += len;
        }
    }
}

/// A header and a data area on the heap, for unit and loom tests.
#[cfg(any(test, loom))]
pub(crate) struct HeapRing {
    hdr: Box<Header>,
    /// Words, so that the data area is aligned as a mapping's is (record
    /// headers are read as words).
    data: Box<[std::cell::UnsafeCell<u64>]>,
}

#[cfg(any(test, loom))]
impl HeapRing {
    pub(crate) fn new(cap: usize) -> HeapRing {
        HeapRing {
            hdr: Box::new(Header::new()),
            data: (0..cap / 8)
                .map(|_| std::cell::UnsafeCell::new(0))
                .collect(),
        }
    }

    fn len(&self) -> usize {
        self.data.len() * 8
    }

    /// A ring over this memory; the `HeapRing` must outlive it.
    pub(crate) fn ring(&self) -> Ring {
        let hdr = NonNull::from(&*self.hdr);
        let data = NonNull::new(self.data.as_ptr().cast_mut().cast::<u8>()).expect("a box");
        // SAFETY: both live as long as `self`; the data is `UnsafeCell`, so
        // writing through a pointer derived from `&self` is allowed.
        unsafe { Ring::new(hdr, data, self.len() as u64) }
    }

    pub(crate) fn header(&self) -> &Header {
        &self.hdr
    }

    /// Overwrites data byte `i` (tests of a hostile peer).
    pub(crate) fn scribble(&self, i: usize, byte: u8) {
        let i = i % self.len();
        // SAFETY: in bounds (`i % len`); an `UnsafeCell` may be written
        // through a shared reference while no reference to it is alive.
        unsafe { *self.data[i / 8].get().cast::<u8>().add(i % 8) = byte }
    }
}

// SAFETY: a HeapRing is memory only; the protocol that shares it is the
// point of the tests that move it between threads.
#[cfg(any(test, loom))]
unsafe impl Sync for HeapRing {}
// SAFETY: as for `Sync`.
#[cfg(any(test, loom))]
unsafe impl Send for HeapRing {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_wrap_around_the_end() {
        let heap = HeapRing::new(64);
        let ring = heap.ring();
        let src: Vec<u8> = (0..40).collect();
        ring.write(48, &src);
        let mut out = vec![0u8; 40];
        // SAFETY: `out` has 40 bytes.
        unsafe { ring.read(48, out.as_mut_ptr(), 40) };
        assert_eq!(out, src);
        let mut pieces = Vec::new();
        // SAFETY: nothing else refers to the heap ring's bytes.
        unsafe {
            ring.fill(48 + 64, 40, &mut |off, piece| {
                pieces.push((off, piece.len()))
            })
        };
        assert_eq!(pieces, [(0, 16), (16, 24)]);
    }
}
