//! What a segment looks like in memory: the `#[repr(C)]` header, then a
//! data area of `capacity` bytes that holds records.
//!
//! ```text
//! offset    0  line 0: magic, version, sizes, attached[2], closed[2]
//!         128  line 1: tail    (written by the sender only)
//!         256  line 2: head    (written by the receiver only)
//!         384  line 3: waiting[sender]    (epoch: the sender sleeps; wakes; bell)
//!         512  line 4: waiting[receiver]  (epoch: the receiver sleeps; wakes; bell)
//!        4096  data: `capacity` bytes (a power of two), records
//! ```
//!
//! The producer's and the consumer's indices sit on cache lines of their
//! own, 128 bytes apart (adjacent-line prefetch on x86-64 pulls lines in
//! pairs), so that neither side's writes evict what the other side reads.
//! `head` and `tail` count bytes since the start and never wrap (2^64 bytes
//! would take centuries); a position's place in the data area is the
//! position modulo the capacity.
//!
//! A record starts at a position that is a multiple of 16 with a 16-byte
//! header (kind, chunk length, message length), then the chunk's bytes,
//! which may wrap around the end of the data area; the next record starts at
//! the next multiple of 16. A message is one `Msg` record (which carries the
//! message's whole length) followed by `Cont` records until the lengths add
//! up. `Pad` fills the rest of the data area when a loan needs contiguous
//! space; `Abort` drops a message whose sender gave up half-way.

use crate::error::Error;
use crate::sync::{AtomicU32, AtomicU64};

/// "shmchan\0", little-endian.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"shmchan\0");
/// The layout version; bump it with any change to this file.
pub(crate) const VERSION: u32 = 2;
/// Bytes of a segment before its data area (the header): one page, so that
/// the data is page-aligned.
pub const HEADER_SIZE: usize = 4096;
/// The smallest data area a segment may have.
pub const MIN_CAPACITY: usize = 4096;
/// The largest data area a segment may have.
pub const MAX_CAPACITY: usize = 1 << 30;
/// Bytes in a record header, and the alignment of every record.
pub(crate) const RECORD_HEADER: u64 = 16;

/// The two sides of a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Sender = 0,
    Receiver = 1,
}

impl Role {
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    pub(crate) fn peer(self) -> Role {
        match self {
            Role::Sender => Role::Receiver,
            Role::Receiver => Role::Sender,
        }
    }
}

/// A value alone on a 128-byte line.
#[repr(C, align(128))]
pub(crate) struct Line<T>(pub(crate) T);

/// The words of one side's sleep (see `wait.rs`). Each word has one
/// writer, so that no store of one side can overwrite the other's.
#[repr(C)]
pub(crate) struct Waiter {
    /// Written only by the side that sleeps: odd from just before it
    /// sleeps until it is awake again, then even; a new value each time.
    pub(crate) epoch: AtomicU32,
    /// Written only by the peer, which adds one to wake the sleeper: the
    /// futex word.
    pub(crate) wakes: AtomicU32,
    /// Written only by the side that sleeps: 1 while its wait is armed on
    /// its bell (a readiness wait: epoll, an async runtime) rather than on
    /// the futex, so that the peer rings the bell instead (see `wait.rs`).
    pub(crate) bell: AtomicU32,
}

/// The start of every segment. Every field is atomic: the peer may write
/// any of them at any time, so none is ever read as a plain value.
#[repr(C)]
pub(crate) struct Header {
    /// [`MAGIC`], written by the creator before the version.
    pub(crate) magic: AtomicU64,
    /// [`VERSION`], written by the creator last (Release): until it is
    /// there, the segment is not initialised.
    pub(crate) version: AtomicU32,
    /// [`HEADER_SIZE`].
    pub(crate) header_size: AtomicU32,
    /// Bytes in the data area.
    pub(crate) capacity: AtomicU64,
    /// `header_size + capacity`: the size of the object.
    pub(crate) segment_size: AtomicU64,
    /// Set once by each side when it attaches (indexed by [`Role`]).
    pub(crate) attached: [AtomicU32; 2],
    /// Set by each side when it closes its end (indexed by [`Role`]).
    pub(crate) closed: [AtomicU32; 2],
    /// Bytes the sender has published: records before it are complete.
    pub(crate) tail: Line<AtomicU64>,
    /// Bytes the receiver has consumed: space before it may be reused.
    pub(crate) head: Line<AtomicU64>,
    /// How each side sleeps and is woken, indexed by [`Role`].
    pub(crate) waiting: [Line<Waiter>; 2],
}

#[cfg(not(loom))]
const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(offset_of!(Header, tail) == 128);
    assert!(offset_of!(Header, head) == 256);
    assert!(offset_of!(Header, waiting) == 384);
    assert!(size_of::<Header>() == 640);
    assert!(size_of::<Header>() <= HEADER_SIZE);
};

impl Header {
    /// A zeroed header, for rings on the heap (unit and loom tests). In a
    /// segment, the zeroes come from `ftruncate`.
    #[cfg(any(test, loom))]
    pub(crate) fn new() -> Header {
        Header {
            magic: AtomicU64::new(0),
            version: AtomicU32::new(0),
            header_size: AtomicU32::new(0),
            capacity: AtomicU64::new(0),
            segment_size: AtomicU64::new(0),
            attached: [AtomicU32::new(0), AtomicU32::new(0)],
            closed: [AtomicU32::new(0), AtomicU32::new(0)],
            tail: Line(AtomicU64::new(0)),
            head: Line(AtomicU64::new(0)),
            waiting: [Line(Waiter::new()), Line(Waiter::new())],
        }
    }
}

#[cfg(any(test, loom))]
impl Waiter {
    pub(crate) fn new() -> Waiter {
        Waiter {
            epoch: AtomicU32::new(0),
            wakes: AtomicU32::new(0),
            bell: AtomicU32::new(0),
        }
    }
}

/// The bytes of a segment with a data area of `capacity` bytes.
pub(crate) fn segment_size(capacity: usize) -> usize {
    HEADER_SIZE + capacity
}

/// What a record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The first chunk of a message; carries the message's length.
    Msg,
    /// A further chunk of the current message.
    Cont,
    /// Filler up to the end of the data area.
    Pad,
    /// The current message is dropped: its sender gave up.
    Abort,
}

impl Kind {
    // Values far from small integers, so that a scribbled header is seldom
    // taken for a record.
    const fn code(self) -> u32 {
        match self {
            Kind::Msg => 0x5A11_C401,
            Kind::Cont => 0x5A11_C402,
            Kind::Pad => 0x5A11_C403,
            Kind::Abort => 0x5A11_C404,
        }
    }

    fn from_code(code: u32) -> Option<Kind> {
        const MSG: u32 = Kind::Msg.code();
        const CONT: u32 = Kind::Cont.code();
        const PAD: u32 = Kind::Pad.code();
        const ABORT: u32 = Kind::Abort.code();
        match code {
            MSG => Some(Kind::Msg),
            CONT => Some(Kind::Cont),
            PAD => Some(Kind::Pad),
            ABORT => Some(Kind::Abort),
            _ => None,
        }
    }
}

/// A decoded record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub(crate) kind: Kind,
    /// Bytes of payload in this record.
    pub(crate) chunk: u32,
    /// For `Msg`: bytes in the whole message. Otherwise 0.
    pub(crate) total: u64,
}

impl RecordHeader {
    pub(crate) fn encode(&self) -> [u8; RECORD_HEADER as usize] {
        let mut b = [0; RECORD_HEADER as usize];
        b[0..4].copy_from_slice(&self.kind.code().to_le_bytes());
        b[4..8].copy_from_slice(&self.chunk.to_le_bytes());
        b[8..16].copy_from_slice(&self.total.to_le_bytes());
        b
    }

    /// Decodes bytes copied out of shared memory; anything may be in them.
    pub(crate) fn decode(b: [u8; RECORD_HEADER as usize]) -> Result<RecordHeader, Error> {
        let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let kind = Kind::from_code(word(0)).ok_or(Error::Corrupt("unknown record kind"))?;
        let mut total = [0; 8];
        total.copy_from_slice(&b[8..16]);
        Ok(RecordHeader {
            kind,
            chunk: word(4),
            total: u64::from_le_bytes(total),
        })
    }
}

/// Bytes a record with `chunk` bytes of payload takes in the ring.
pub(crate) fn record_size(chunk: u64) -> u64 {
    // `chunk` is at most u32::MAX: no overflow.
    (RECORD_HEADER + chunk).next_multiple_of(RECORD_HEADER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_headers_round_trip_and_garbage_is_refused() {
        let h = RecordHeader {
            kind: Kind::Cont,
            chunk: 1234,
            total: 1 << 40,
        };
        assert_eq!(RecordHeader::decode(h.encode()).unwrap(), h);
        assert!(matches!(
            RecordHeader::decode([0xAB; 16]),
            Err(Error::Corrupt(_))
        ));
    }

    #[test]
    fn records_are_aligned_to_16() {
        assert_eq!(record_size(0), 16);
        assert_eq!(record_size(1), 32);
        assert_eq!(record_size(16), 32);
        assert_eq!(record_size(17), 48);
        assert_eq!(record_size(u64::from(u32::MAX)) % 16, 0);
    }
}
