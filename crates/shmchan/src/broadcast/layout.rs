//! What a broadcast looks like in memory: two objects, so that what the
//! subscribers may write and what they may only read are apart.
//!
//! The **data** object: read-write for the publisher only. It is sealed
//! with `F_SEAL_FUTURE_WRITE` once the publisher has mapped it, so that a
//! subscriber can map it read-only and in no other way.
//!
//! ```text
//! offset    0  line 0: magic, version, policy, sizes, closed
//!         128  line 1: tail    (messages published)
//!        4096  `ring` entries of `entry` bytes each
//! ```
//!
//! Message `m` lives in entry `m % ring`: a stamp (`m + 1`: which message
//! the entry holds, or is being overwritten with), the message's length,
//! then its bytes from offset 16.
//!
//! The **control** object: read-write for every side; what lives here is
//! written by subscribers, and the publisher checks whatever it reads.
//!
//! ```text
//! offset    0  line 0: magic, version, header size (where a channel has its own)
//!         256  line 2: bell    (the futex word every sleeping subscriber waits on)
//!         384  line 3: joins   (bumped by each subscriber that joins)
//!         512  line 4: the publisher's Waiter (its `Block` sleep, see wait.rs)
//!        4096  subscriber slots: one 128-byte line each: active, cursor
//! ```
//!
//! The control header's first fields sit where a channel's header has its
//! magic and version, so that each kind of end can tell the other kind's
//! object and say so.

use crate::layout::{Line, Waiter};
use crate::sync::{AtomicU32, AtomicU64};

/// The control object's magic: "shmbcast", little-endian.
pub(crate) const CONTROL_MAGIC: u64 = u64::from_le_bytes(*b"shmbcast");
/// The data object's magic: "shmbdata", little-endian.
pub(crate) const DATA_MAGIC: u64 = u64::from_le_bytes(*b"shmbdata");
/// The layout version; bump it with any change to this file.
pub(crate) const VERSION: u32 = 1;
/// Bytes of either object's header (one page).
pub(crate) const HEADER: u64 = 4096;
/// Bytes of one subscriber slot.
pub(crate) const SLOT: u64 = 128;
/// Bytes of an entry before its message.
pub(crate) const ENTRY_HEADER: u64 = 16;
/// Entries are multiples of a cache line.
pub(crate) const ENTRY_ALIGN: u64 = 64;
/// The most subscriber slots a broadcast may have.
pub const MAX_SUBSCRIBERS: u32 = 4096;
/// The most messages a ring may hold.
pub const MAX_RING: u64 = 1 << 20;
/// The most bytes of entries.
pub(crate) const MAX_DATA: u64 = 1 << 30;

/// Policy codes in the header (far from small integers).
pub(crate) const POLICY_BLOCK: u32 = 0xB10C_0001;
pub(crate) const POLICY_OVERWRITE: u32 = 0x0E77_0002;

/// The start of the data object. Atomics: the publisher writes them while
/// subscribers read.
#[repr(C)]
pub(crate) struct DataHeader {
    /// [`DATA_MAGIC`], written before the version.
    pub(crate) magic: AtomicU64,
    /// [`VERSION`], written last (Release) before the object is sealed.
    pub(crate) version: AtomicU32,
    /// [`POLICY_BLOCK`] or [`POLICY_OVERWRITE`].
    pub(crate) policy: AtomicU32,
    /// Entries in the ring (a power of two).
    pub(crate) ring: AtomicU64,
    /// Bytes per entry (a multiple of [`ENTRY_ALIGN`]).
    pub(crate) entry: AtomicU64,
    /// Subscriber slots in the control object.
    pub(crate) slots: AtomicU32,
    /// Set by the publisher when it closes (Release).
    pub(crate) closed: AtomicU32,
    /// Bytes of the control object.
    pub(crate) control_size: AtomicU64,
    /// Bytes of the data object.
    pub(crate) data_size: AtomicU64,
    /// Messages published: the entries of the messages before it are
    /// complete.
    pub(crate) tail: Line<AtomicU64>,
}

/// The start of the control object.
#[repr(C)]
pub(crate) struct Control {
    /// [`CONTROL_MAGIC`].
    pub(crate) magic: AtomicU64,
    /// [`VERSION`], written last (Release).
    pub(crate) version: AtomicU32,
    /// [`HEADER`].
    pub(crate) header_size: AtomicU32,
    /// The futex word of every sleeping subscriber; bit 0: someone sleeps.
    pub(crate) bell: Line<AtomicU32>,
    /// Bumped by each subscriber once its slot is active (see `Reader::join`).
    pub(crate) joins: Line<AtomicU32>,
    /// How the publisher sleeps under `Block` (see `wait.rs`).
    pub(crate) publisher: Line<Waiter>,
}

/// One subscriber's slot. Written by the subscriber that holds the slot's
/// lock; read by the publisher (under `Block` only), which checks it.
#[repr(C, align(128))]
pub(crate) struct Slot {
    /// Odd while a subscriber is active in the slot (a new odd value for
    /// every subscriber that takes it), even once it left.
    pub(crate) active: AtomicU32,
    /// The next message the subscriber reads: it holds the entries of the
    /// messages from here on.
    pub(crate) cursor: AtomicU64,
}

/// The head of an entry: which message it holds, and how long it is.
#[repr(C)]
pub(crate) struct EntryHead {
    /// `m + 1` once the publisher started writing message `m` here.
    pub(crate) stamp: AtomicU64,
    /// The message's length.
    pub(crate) len: AtomicU64,
}

#[cfg(not(loom))]
const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(offset_of!(Control, version) == 8);
    assert!(offset_of!(Control, bell) == 128);
    assert!(offset_of!(Control, joins) == 256);
    assert!(offset_of!(Control, publisher) == 384);
    assert!(size_of::<Control>() as u64 <= HEADER);
    assert!(offset_of!(DataHeader, tail) == 128);
    assert!(size_of::<DataHeader>() as u64 <= HEADER);
    assert!(size_of::<Slot>() as u64 == SLOT);
    assert!(size_of::<EntryHead>() as u64 == ENTRY_HEADER);
};

/// The sizes a broadcast is made with, and checked against when joined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// Entries in the ring (a power of two, at least 2).
    pub(crate) ring: u64,
    /// Bytes per entry.
    pub(crate) entry: u64,
    /// Subscriber slots.
    pub(crate) slots: u32,
}

impl Geometry {
    /// The geometry for `ring` messages (rounded up to a power of two) of
    /// up to `message` bytes and `slots` subscribers, or why not.
    pub(crate) fn new(ring: u64, message: u64, slots: u32) -> Result<Geometry, String> {
        if !(2..=MAX_RING).contains(&ring) {
            return Err(format!("a ring of {ring} messages (2 to {MAX_RING})"));
        }
        if !(1..=MAX_SUBSCRIBERS).contains(&slots) {
            return Err(format!("{slots} subscriber slots (1 to {MAX_SUBSCRIBERS})"));
        }
        let ring = ring.next_power_of_two();
        let entry = message
            .checked_add(ENTRY_HEADER)
            .map(|e| e.next_multiple_of(ENTRY_ALIGN))
            .filter(|e| e.checked_mul(ring).is_some_and(|d| d <= MAX_DATA))
            .ok_or_else(|| format!("{ring} messages of {message} bytes: more than 1 GiB"))?;
        Ok(Geometry { ring, entry, slots })
    }

    /// The longest message an entry holds.
    pub(crate) fn max_message(&self) -> u64 {
        self.entry - ENTRY_HEADER
    }

    pub(crate) fn control_size(&self) -> u64 {
        HEADER + SLOT * u64::from(self.slots)
    }

    pub(crate) fn data_size(&self) -> u64 {
        HEADER + (self.ring * self.entry).next_multiple_of(4096)
    }
}
