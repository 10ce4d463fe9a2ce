//! The measured window, agreed by both sides.
//!
//! The client decides when its warm-up ends: after `warmup_ns` on its own
//! clock. The server cannot see that moment, and it must count exactly the
//! messages the client counts (`--iterations N` means N on both sides, and a
//! stream's throughput is the server's). So the client publishes the first
//! measured sequence number in a page of memory the supervisor shares with
//! both sides before it forks them (outside the channel, so no mechanism
//! and no scribbler touches it); the server opens its window at the first
//! message numbered that or later.
//!
//! The page is the harness's, not the mechanism's: it is written once per
//! cell and read only until the server's window opens.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::mechanisms::shm::region::Mapping;

/// Not yet published.
const UNSET: u64 = u64::MAX;

/// The shared page: the client's first measured sequence number and the
/// time it started measuring.
pub struct Window {
    map: Mapping,
}

#[repr(C)]
struct Page {
    first_seq: AtomicU64,
    begin_ns: AtomicU64,
}

impl Window {
    /// Maps the page, shared with every process forked afterwards.
    pub fn new() -> io::Result<Window> {
        let map = Mapping::shared_anonymous(std::mem::size_of::<Page>())?;
        let window = Window { map };
        window.page().first_seq.store(UNSET, Ordering::Relaxed);
        Ok(window)
    }

    fn page(&self) -> &Page {
        // SAFETY: the mapping is at least a `Page` long, page-aligned, and
        // lives as long as `self`; its fields are atomics, so shared access
        // from several processes is sound.
        unsafe { &*self.map.as_ptr().cast::<Page>() }
    }

    /// Client: messages from `seq` on are measured, from `now_ns`
    /// (`CLOCK_MONOTONIC`). Called before message `seq` is sent.
    pub fn open(&self, seq: u64, now_ns: u64) {
        let page = self.page();
        page.begin_ns.store(now_ns, Ordering::Relaxed);
        // Release: pairs with the Acquire in `first`, so that a server that
        // sees `seq` sees `begin_ns` too. The channel's own hand-over of
        // message `seq` comes after this store, so the server sees it by the
        // time that message arrives (if it ever saw it late, it would count
        // fewer messages, and the cell fails its count check).
        page.first_seq.store(seq, Ordering::Release);
    }

    /// Server: the first measured sequence number and the client's start
    /// time, once the client has published them.
    pub fn first(&self) -> Option<(u64, u64)> {
        let page = self.page();
        // Acquire: pairs with the Release in `open`.
        match page.first_seq.load(Ordering::Acquire) {
            UNSET => None,
            seq => Some((seq, page.begin_ns.load(Ordering::Relaxed))),
        }
    }
}
