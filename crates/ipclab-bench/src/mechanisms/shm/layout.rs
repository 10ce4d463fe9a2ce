//! The layout of a channel's shared memory.
//!
//! ```text
//! 0       Header      magic, version, sizes (written in prepare, magic last)
//! 128     Lifecycle   attach count, a "closed" flag per side
//! 256     sync area   4 blocks of 256 bytes (futex words, pthread objects)
//! 1280    slot headers, 128 bytes each: direction 0's buffers, then 1's
//! page    data: direction 0's buffers, then direction 1's, `stride` apart
//! ```
//!
//! Direction 0 carries client to server, 1 server to client. Every value
//! read from the segment is an atomic (the peer may write it at any time)
//! and is loaded once and checked before use.

use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::region::Mapping;
use super::semaphores::{BLOCK, Sem, SyncArea};
use crate::transport::{ChannelConfig, protocol_error};

const MAGIC: u64 = u64::from_le_bytes(*b"ipclab\x00R");
const VERSION: u32 = 1;
const LINE: usize = 128;
const PAGE: usize = 4096;

/// The largest segment chosen by default: a 4 MiB + 1 message fits in one.
pub const DEFAULT_SEGMENT_CAP: usize = 16 << 20;
/// The largest region ipclab makes (both directions, every buffer).
pub const MAX_REGION: usize = 4 << 30;
/// The most buffers per direction.
pub const MAX_SEGMENTS: usize = 1 << 16;

/// What the creator writes first; a side checks it before trusting any
/// other field.
#[repr(C, align(128))]
pub struct Header {
    magic: AtomicU64,
    version: AtomicU32,
    segments: AtomicU32,
    segment_size: AtomicU64,
    region_len: AtomicU64,
}

/// Written by the sides, read rarely: apart from the hot counters.
#[repr(C, align(128))]
pub struct Lifecycle {
    /// Sides that have opened everything; the one that makes it 2 removes
    /// the names.
    pub attached: AtomicU32,
    /// Set by a side when it drops its endpoint, indexed by `Side::index`.
    pub closed: [AtomicU32; 2],
}

/// What kind of chunk a slot holds.
pub const CHUNK_DATA: u32 = 1;
/// No more messages follow (`Endpoint::finish`).
pub const CHUNK_END: u32 = 2;

/// The header of one buffer, written by the sender before it publishes
/// `seq`.
#[repr(C, align(128))]
pub struct SlotHeader {
    /// The chunk's number in its direction, counting from 1; 0 is never
    /// written. Published last.
    pub seq: AtomicU64,
    pub message_len: AtomicU64,
    pub chunk_len: AtomicU64,
    pub kind: AtomicU32,
}

const HEADER_OFF: usize = 0;
const LIFECYCLE_OFF: usize = LINE;
const SYNC_OFF: usize = 2 * LINE;
const SLOTS_OFF: usize = SYNC_OFF + Sem::COUNT * BLOCK;

const _: () = {
    assert!(size_of::<Header>() == LINE && size_of::<Lifecycle>() == LINE);
    assert!(size_of::<SlotHeader>() == LINE);
    assert!(SLOTS_OFF.is_multiple_of(LINE) && BLOCK.is_multiple_of(LINE));
};

/// Sizes and offsets of a channel's region; both sides compute the same
/// from the channel's config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Bytes per buffer: the most one hand-over carries.
    pub segment_size: usize,
    /// Buffers per direction.
    pub segments: usize,
    stride: usize,
    data_off: usize,
    /// Bytes of the whole region.
    pub len: usize,
}

fn round_up(n: usize, to: usize) -> Option<usize> {
    n.checked_next_multiple_of(to)
}

impl Layout {
    /// The layout for `config`: `segment_size` bytes per buffer (default:
    /// one message, at least 1 byte, at most 16 MiB), `segments` buffers per
    /// direction.
    pub fn new(config: &ChannelConfig) -> io::Result<Layout> {
        let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
        let segment_size = match config.segment_size {
            Some(0) => return Err(invalid("a segment size of 0 bytes".into())),
            Some(s) => s,
            None => round_up(config.size.max(1), 64)
                .unwrap_or(usize::MAX)
                .min(DEFAULT_SEGMENT_CAP),
        };
        let segments = config.segments_for(segment_size);
        if segments == 0 || segments > MAX_SEGMENTS {
            return Err(invalid(format!(
                "{segments} segments (1 to {MAX_SEGMENTS} are possible)"
            )));
        }
        let too_big = || {
            invalid(format!(
                "2 × {segments} segments of {segment_size} bytes are more than the {} GiB of \
                 shared memory ipclab makes",
                MAX_REGION >> 30
            ))
        };
        let stride = if segment_size >= PAGE {
            round_up(segment_size, PAGE)
        } else {
            round_up(segment_size, 64)
        }
        .ok_or_else(too_big)?;
        let buffers = 2 * segments;
        let data_off = round_up(SLOTS_OFF + buffers * LINE, PAGE).ok_or_else(too_big)?;
        let len = stride
            .checked_mul(buffers)
            .and_then(|d| d.checked_add(data_off))
            .filter(|&l| l <= MAX_REGION)
            .ok_or_else(too_big)?;
        Ok(Layout {
            segment_size,
            segments,
            stride,
            data_off,
            len,
        })
    }

    /// Initial values of the four semaphores: nothing filled, every buffer
    /// free.
    pub fn initial_counts(&self) -> [u32; Sem::COUNT] {
        let mut counts = [0; Sem::COUNT];
        for dir in 0..2 {
            counts[Sem::free(dir).index()] = self.segments as u32;
        }
        counts
    }

    /// Bytes before the first buffer's data: header, lifecycle, sync area
    /// and buffer headers.
    pub fn control_len(&self) -> usize {
        self.data_off
    }

    /// How many chunks (hand-overs) a message of `len` bytes takes: a
    /// 0-byte message still takes one.
    pub fn chunks(&self, len: usize) -> usize {
        len.div_ceil(self.segment_size).max(1)
    }

    /// Writes the header of a fresh, zero-filled region.
    pub fn init(&self, map: &Mapping) {
        let h = self.header(map);
        h.version.store(VERSION, Ordering::Relaxed);
        h.segments.store(self.segments as u32, Ordering::Relaxed);
        h.segment_size
            .store(self.segment_size as u64, Ordering::Relaxed);
        h.region_len.store(self.len as u64, Ordering::Relaxed);
        // Release: pairs with the Acquire load in `check`; the sides attach
        // after a fork, which orders this anyway, but a header is only
        // trusted once its magic is seen.
        h.magic.store(MAGIC, Ordering::Release);
    }

    /// Checks that `map` holds a region made for this layout, naming the
    /// first field that differs.
    pub fn check(&self, map: &Mapping) -> io::Result<()> {
        if map.len() < self.len {
            return Err(protocol_error(format!(
                "the mapping has {} bytes, the layout needs {}",
                map.len(),
                self.len
            )));
        }
        let h = self.header(map);
        // Acquire: pairs with the Release store in `init`.
        let magic = h.magic.load(Ordering::Acquire);
        let fields = [
            ("magic", magic, MAGIC),
            (
                "version",
                h.version.load(Ordering::Relaxed).into(),
                VERSION.into(),
            ),
            (
                "segments",
                h.segments.load(Ordering::Relaxed).into(),
                self.segments as u64,
            ),
            (
                "segment size",
                h.segment_size.load(Ordering::Relaxed),
                self.segment_size as u64,
            ),
            (
                "region length",
                h.region_len.load(Ordering::Relaxed),
                self.len as u64,
            ),
        ];
        for (name, got, want) in fields {
            if got != want {
                return Err(protocol_error(format!(
                    "segment header: {name} is {got:#x}, expected {want:#x}"
                )));
            }
        }
        Ok(())
    }

    fn header<'m>(&self, map: &'m Mapping) -> &'m Header {
        debug_assert!(map.len() >= self.len);
        // SAFETY: the region is at least `self.len > SLOTS_OFF` bytes,
        // page-aligned, and a `Header` of atomics is valid for any bytes;
        // the reference lives no longer than the mapping.
        unsafe { &*map.as_ptr().add(HEADER_OFF).cast::<Header>() }
    }

    pub fn lifecycle<'m>(&self, map: &'m Mapping) -> &'m Lifecycle {
        debug_assert!(map.len() >= self.len);
        // SAFETY: as in `header`.
        unsafe { &*map.as_ptr().add(LIFECYCLE_OFF).cast::<Lifecycle>() }
    }

    pub fn sync_area(&self, map: &Mapping) -> SyncArea {
        debug_assert!(map.len() >= self.len);
        // SAFETY: `SYNC_OFF .. SLOTS_OFF` lies inside the mapping, 128-byte
        // aligned; the caller keeps the mapping alive as long as the area.
        unsafe { SyncArea::new(map.as_ptr().add(SYNC_OFF)) }
    }

    /// The header of buffer `slot` of direction `dir`.
    pub fn slot_header<'m>(&self, map: &'m Mapping, dir: usize, slot: usize) -> &'m SlotHeader {
        assert!(dir < 2 && slot < self.segments && map.len() >= self.len);
        let off = SLOTS_OFF + (dir * self.segments + slot) * LINE;
        // SAFETY: `off + LINE <= data_off <= len <= map.len()` for any
        // checked `dir` and `slot`; atomics are valid for any bytes.
        unsafe { &*map.as_ptr().add(off).cast::<SlotHeader>() }
    }

    /// The data of buffer `slot` of direction `dir`: `segment_size` bytes.
    pub fn slot_data(&self, map: &Mapping, dir: usize, slot: usize) -> *mut u8 {
        assert!(dir < 2 && slot < self.segments && map.len() >= self.len);
        let off = self.data_off + (dir * self.segments + slot) * self.stride;
        // SAFETY: `off + segment_size <= len <= map.len()` for any checked
        // `dir` and `slot`.
        unsafe { map.as_ptr().add(off) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(size: usize, segment_size: Option<usize>, segments: usize) -> ChannelConfig {
        ChannelConfig {
            size,
            segment_size,
            segments,
        }
    }

    #[test]
    fn default_segment_holds_a_whole_message() {
        for size in [0, 1, 12, 4095, 4096, 4097, 65536, (4 << 20) + 1] {
            let l = Layout::new(&config(size, None, 1)).unwrap();
            assert!(l.segment_size >= size.max(1), "{size}");
            assert_eq!(l.chunks(size), 1, "{size}");
        }
        let l = Layout::new(&config(64 << 20, None, 1)).unwrap();
        assert_eq!(l.segment_size, DEFAULT_SEGMENT_CAP);
        assert_eq!(l.chunks(64 << 20), 4);
    }

    #[test]
    fn a_small_segment_means_rounds() {
        let l = Layout::new(&config(64 << 20, Some(1 << 20), 1)).unwrap();
        assert_eq!(l.chunks(64 << 20), 64);
        assert_eq!(l.chunks((64 << 20) + 1), 65);
        assert_eq!(l.chunks(0), 1);
    }

    #[test]
    fn automatic_segments_keep_about_4_mib_in_flight() {
        // 0 asks for the automatic count: 2 to 64 buffers.
        assert_eq!(Layout::new(&config(12, None, 0)).unwrap().segments, 64);
        assert_eq!(Layout::new(&config(1 << 20, None, 0)).unwrap().segments, 4);
        assert_eq!(Layout::new(&config(4 << 20, None, 0)).unwrap().segments, 2);
    }

    #[test]
    fn impossible_layouts_are_errors() {
        assert!(Layout::new(&config(1, Some(0), 1)).is_err());
        assert!(Layout::new(&config(1, None, MAX_SEGMENTS + 1)).is_err());
        assert!(Layout::new(&config(1, Some(usize::MAX), 1)).is_err());
        assert!(Layout::new(&config(1, Some(1 << 30), 1024)).is_err());
    }
}
