//! The memory of one broadcast as the protocol sees it: pointers to the
//! two headers, the slot table and the entries. Only this file turns
//! them into references or copies bytes in and out.

use std::ptr::NonNull;

use super::layout::{Control, DataHeader, EntryHead, Slot};

/// Pointers into a broadcast's memory. `Copy`, so that a side can keep a
/// header borrowed while it changes its own state.
#[derive(Clone, Copy)]
pub(crate) struct Area {
    data: NonNull<DataHeader>,
    ctl: NonNull<Control>,
    slots: NonNull<Slot>,
    entries: NonNull<u8>,
    /// Bytes from one entry to the next.
    stride: usize,
    /// Bytes from an entry's start to its message.
    payload: usize,
    /// Entries (a power of two).
    pub(crate) ring: u64,
    /// The longest message an entry holds.
    pub(crate) max_message: u64,
    /// Subscriber slots.
    pub(crate) slots_len: u32,
}

// SAFETY: pointers into shared memory that every holder reaches through
// atomics (or raw copies whose result is checked); moving them to another
// thread changes nothing the protocol relies on. The end that owns the
// mappings keeps them alive (see `new`).
unsafe impl Send for Area {}

/// Where the parts of a broadcast lie, for [`Area::new`].
pub(crate) struct Parts {
    pub(crate) data: NonNull<DataHeader>,
    pub(crate) ctl: NonNull<Control>,
    pub(crate) slots: NonNull<Slot>,
    pub(crate) entries: NonNull<u8>,
    pub(crate) stride: usize,
    pub(crate) payload: usize,
    pub(crate) ring: u64,
    pub(crate) max_message: u64,
    pub(crate) slots_len: u32,
}

impl Area {
    /// # Safety
    ///
    /// Every pointer of `parts` is valid (for reads; for writes too where
    /// this side writes: all of the control object, and the data object on
    /// the publisher's side) for as long as this `Area` or a copy of it is
    /// used: `slots_len` slots, `ring` entries `stride` bytes apart, each
    /// an [`EntryHead`] then `max_message` bytes from `payload`; `ring`
    /// is a power of two. Other processes write them only through atomics
    /// (or, the payload, as raw bytes).
    pub(crate) unsafe fn new(parts: Parts) -> Area {
        debug_assert!(parts.ring.is_power_of_two());
        Area {
            data: parts.data,
            ctl: parts.ctl,
            slots: parts.slots,
            entries: parts.entries,
            stride: parts.stride,
            payload: parts.payload,
            ring: parts.ring,
            max_message: parts.max_message,
            slots_len: parts.slots_len,
        }
    }

    pub(crate) fn data(&self) -> &DataHeader {
        // SAFETY: `new`'s contract; every field is atomic.
        unsafe { self.data.as_ref() }
    }

    pub(crate) fn control(&self) -> &Control {
        // SAFETY: `new`'s contract; every field is atomic.
        unsafe { self.ctl.as_ref() }
    }

    /// Slot `i`, which must be below `slots_len`.
    pub(crate) fn slot(&self, i: usize) -> &Slot {
        assert!(i < self.slots_len as usize);
        // SAFETY: within the table (checked above); atomics only.
        unsafe { self.slots.add(i).as_ref() }
    }

    fn entry(&self, m: u64) -> NonNull<u8> {
        // Below `ring`, which fits in the address space with its entries.
        let i = (m & (self.ring - 1)) as usize;
        // SAFETY: entry `i` of `ring` (`new`'s contract).
        unsafe { self.entries.add(i * self.stride) }
    }

    /// The head of message `m`'s entry.
    pub(crate) fn head(&self, m: u64) -> &EntryHead {
        // SAFETY: an entry starts with its head (`new`'s contract),
        // aligned (entries are multiples of 64 bytes from a page, or
        // heap entries of the head's type); atomics only.
        unsafe { self.entry(m).cast::<EntryHead>().as_ref() }
    }

    /// The `len` bytes of message `m`'s entry as a raw slice (`len` at
    /// most `max_message`): the caller decides how long it looks at them.
    pub(crate) fn bytes(&self, m: u64, len: u64) -> NonNull<[u8]> {
        assert!(len <= self.max_message);
        // SAFETY: the payload lies `payload` bytes into the entry and is
        // `max_message` bytes long (`new`'s contract).
        let start = unsafe { self.entry(m).add(self.payload) };
        NonNull::slice_from_raw_parts(start, len as usize)
    }

    /// Copies the first `dst.len()` bytes of message `m`'s entry out.
    pub(crate) fn copy_out(&self, m: u64, dst: &mut [u8]) {
        if cfg!(loom) {
            return; // the models' entries have no bytes (see `HeapArea`)
        }
        let src = self.bytes(m, dst.len() as u64);
        // SAFETY: `src` is within the entry (`bytes`); `dst` is private
        // memory, so the two cannot overlap. The publisher may be writing
        // these bytes (under `Overwrite`): the copy then holds anything,
        // and the caller's stamp re-check throws it away.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr().cast::<u8>(), dst.as_mut_ptr(), dst.len())
        }
    }

    /// Copies `src` into message `m`'s entry (the publisher only).
    pub(crate) fn copy_in(&self, m: u64, src: &[u8]) {
        if cfg!(loom) {
            return; // the models' entries have no bytes (see `HeapArea`)
        }
        let dst = self.bytes(m, src.len() as u64);
        // SAFETY: within the entry (`bytes`), which the publisher owns
        // once its stamp is stored; `src` is private memory. Readers may
        // copy these bytes meanwhile: their stamp re-check drops the copy.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_ptr().cast::<u8>(), src.len()) }
    }
}

/// A broadcast's memory on the heap, for the loom models.
#[cfg(loom)]
pub(crate) struct HeapArea {
    data: Box<DataHeader>,
    ctl: Box<Control>,
    slots: Box<[Slot]>,
    entries: Box<[EntryHead]>,
}

#[cfg(loom)]
impl HeapArea {
    /// `ring` entries and `slots` slots. The entries have no bytes: the
    /// models carry a message's identity in its length word, which the
    /// seqlock re-check guards as it guards the bytes (`copy_in` and
    /// `copy_out` copy nothing under loom).
    pub(crate) fn new(ring: u64, slots: u32) -> HeapArea {
        use crate::sync::{AtomicU32, AtomicU64};
        let zero64 = || AtomicU64::new(0);
        HeapArea {
            data: Box::new(DataHeader {
                magic: zero64(),
                version: AtomicU32::new(0),
                policy: AtomicU32::new(0),
                ring: zero64(),
                entry: zero64(),
                slots: AtomicU32::new(0),
                closed: AtomicU32::new(0),
                control_size: zero64(),
                data_size: zero64(),
                tail: crate::layout::Line(zero64()),
            }),
            ctl: Box::new(Control {
                magic: zero64(),
                version: AtomicU32::new(0),
                header_size: AtomicU32::new(0),
                bell: crate::layout::Line(AtomicU32::new(0)),
                joins: crate::layout::Line(AtomicU32::new(0)),
                publisher: crate::layout::Line(crate::layout::Waiter::new()),
            }),
            slots: (0..slots)
                .map(|_| Slot {
                    active: AtomicU32::new(0),
                    cursor: zero64(),
                })
                .collect(),
            entries: (0..ring)
                .map(|_| EntryHead {
                    stamp: zero64(),
                    len: zero64(),
                })
                .collect(),
        }
    }

    /// An area over this memory; the `HeapArea` must outlive it.
    pub(crate) fn area(&self) -> Area {
        // SAFETY: every part lives as long as `self`, and is atomics only;
        // no byte of a message is ever touched under loom (see `new`).
        unsafe {
            Area::new(Parts {
                data: NonNull::from(&*self.data),
                ctl: NonNull::from(&*self.ctl),
                slots: NonNull::new(self.slots.as_ptr().cast_mut()).expect("a box"),
                entries: NonNull::new(self.entries.as_ptr().cast_mut().cast::<u8>())
                    .expect("a box"),
                stride: std::mem::size_of::<EntryHead>(),
                payload: 0,
                ring: self.entries.len() as u64,
                max_message: 1 << 16,
                slots_len: self.slots.len() as u32,
            })
        }
    }
}

// SAFETY: memory of atomics only; sharing it is what the models test.
#[cfg(loom)]
unsafe impl Send for HeapArea {}
// SAFETY: as for `Send`.
#[cfg(loom)]
unsafe impl Sync for HeapArea {}
