//! The one engine behind every shared-memory mechanism: per direction a
//! ring of `segments` buffers of `segment_size` bytes, handed over with
//! the four counting semaphores of a [`Semaphores`] kind.
//!
//! The sender waits for a free buffer, lets the caller fill it in place,
//! writes the buffer's header and publishes its sequence number (Release),
//! then posts `filled`. The receiver waits on `filled`, loads the sequence
//! number (Acquire) and checks it, loads the lengths once and checks them
//! against what it expects, lets the caller check the bytes in place, then
//! posts `free`. Payload bytes are written once and read once. A message
//! larger than a buffer goes in rounds of `segment_size` bytes, each round
//! one hand-over; with several buffers, several rounds are in flight. The
//! buffer for a chunk is implicit in the ring order (chunk `n` uses buffer
//! `n % segments`); queues that carry buffer ids have them checked.
//!
//! A peer that closes sets its `closed` flag and wakes us. A peer killed
//! outright sets nothing: each side also holds one end of a [`Lifeline`],
//! which the kernel hangs up when the peer process dies. A wait that comes
//! back empty (`Waited::Nothing`: a time slice passed, a spin budget, or
//! a wake timer's tick on a System V queue) looks at the lifeline at most
//! every [`LOOK_EVERY`], so a side that finds a unit at once never makes
//! the extra system call.

use std::io;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::layout::{CHUNK_DATA, CHUNK_END, Layout, Lifecycle};
use super::region::{Mapping, Side};
use super::semaphores::{CLOSED, Sem, Semaphores, Waited};
use crate::mechanisms::lifeline::Lifeline;
use crate::transport::{Check, Endpoint, Fill, Received, protocol_error};

/// The longest a waiting side goes without looking at its lifeline.
const LOOK_EVERY: Duration = Duration::from_millis(50);

/// One side's end of a shared-memory channel.
pub struct Ring<S: Semaphores> {
    // Field order is drop order: the semaphores may point into the mapping.
    sync: S,
    map: Mapping,
    layout: Layout,
    side: Side,
    /// Hung up by the kernel when the peer process dies.
    lifeline: Lifeline,
    /// When an empty wait next looks at the lifeline.
    next_look: Option<Instant>,
    /// Chunks sent / received so far in this side's directions.
    tx_seq: u64,
    rx_seq: u64,
    sent_end: bool,
    got_end: bool,
    rounds: u64,
}

fn peer_gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the peer closed the channel")
}

fn peer_died(waiting_for: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        format!(
            "the peer process died without closing the channel while this side waited for {waiting_for}"
        ),
    )
}

impl<S: Semaphores> Ring<S> {
    /// A ring over a checked mapping; `sync` may point into `map`; the
    /// peer holds the other end of `lifeline`.
    pub fn new(sync: S, map: Mapping, layout: Layout, side: Side, lifeline: Lifeline) -> Self {
        Ring {
            sync,
            map,
            layout,
            side,
            lifeline,
            next_look: None,
            tx_seq: 0,
            rx_seq: 0,
            sent_end: false,
            got_end: false,
            rounds: 0,
        }
    }

    pub fn lifecycle(&self) -> &Lifecycle {
        self.layout.lifecycle(&self.map)
    }

    fn peer_closed(&self) -> bool {
        // Acquire: pairs with the Release store in `drop`; everything the
        // peer posted before closing is visible after this.
        self.lifecycle().closed[self.side.peer().index()].load(Ordering::Acquire) != 0
    }

    fn slot_of(&self, seq: u64) -> usize {
        (seq % self.layout.segments as u64) as usize
    }

    /// After an empty wait: whether the peer process died without closing,
    /// looking at the lifeline at most every [`LOOK_EVERY`].
    fn peer_died(&mut self) -> io::Result<bool> {
        let now = Instant::now();
        if self.next_look.is_some_and(|t| now < t) {
            return Ok(false);
        }
        self.next_look = Some(now + LOOK_EVERY);
        // A peer that closed (flag first, then its lifeline end) is not dead.
        Ok(self.lifeline.peer_gone()? && !self.peer_closed())
    }

    /// Takes a unit of `sem` for buffer `slot`; `Ok(false)` when the peer
    /// has closed and no unit came; an error when it died.
    fn acquire(&mut self, sem: Sem, slot: usize) -> io::Result<bool> {
        let mut last_look = false;
        loop {
            match self.sync.wait(sem)? {
                Waited::Unit => return Ok(true),
                Waited::Slot(id) if id as usize == slot => return Ok(true),
                Waited::Slot(id) => {
                    if id == CLOSED || self.peer_closed() {
                        return Ok(false);
                    }
                    return Err(protocol_error(format!(
                        "the peer announced buffer {id}, expected {slot}"
                    )));
                }
                Waited::Nothing if last_look => return Ok(false),
                // A unit posted just before the peer closed is taken by one
                // more wait.
                Waited::Nothing => {
                    last_look = self.peer_closed();
                    if !last_look && self.peer_died()? {
                        return Err(peer_died(if sem.index().is_multiple_of(2) {
                            "a chunk"
                        } else {
                            "a free buffer"
                        }));
                    }
                }
            }
        }
    }

    /// Waits for the next free buffer of this side's direction.
    fn claim(&mut self) -> io::Result<usize> {
        let slot = self.slot_of(self.tx_seq);
        if !self.acquire(Sem::free(self.side.tx_dir()), slot)? || self.peer_closed() {
            // Also after a unit: a closing peer's interrupt may have been it,
            // and nobody would read what we write.
            return Err(peer_gone());
        }
        Ok(slot)
    }

    /// Publishes the chunk in `slot` and wakes the receiver.
    fn publish(
        &mut self,
        slot: usize,
        message_len: usize,
        chunk_len: usize,
        kind: u32,
    ) -> io::Result<()> {
        let dir = self.side.tx_dir();
        let h = self.layout.slot_header(&self.map, dir, slot);
        h.message_len.store(message_len as u64, Ordering::Relaxed);
        h.chunk_len.store(chunk_len as u64, Ordering::Relaxed);
        h.kind.store(kind, Ordering::Relaxed);
        self.tx_seq += 1;
        // Release: pairs with the Acquire load of `seq` in `recv`; publishes
        // the payload and the fields above.
        h.seq.store(self.tx_seq, Ordering::Release);
        self.sync.post(Sem::filled(dir), slot as u32)
    }

    /// What `recv` returns when the peer has gone before chunk `k`.
    fn gone_at(&mut self, k: usize) -> io::Result<Received> {
        if k == 0 {
            self.got_end = true;
            Ok(Received::Closed)
        } else {
            Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer closed the channel in the middle of a message",
            ))
        }
    }
}

impl<S: Semaphores> Endpoint for Ring<S> {
    fn send(&mut self, len: usize, fill: Fill<'_>) -> io::Result<()> {
        if self.sent_end {
            return Err(protocol_error("send after finish"));
        }
        let seg = self.layout.segment_size;
        for k in 0..self.layout.chunks(len) {
            let offset = k * seg;
            let chunk_len = seg.min(len - offset);
            let slot = self.claim()?;
            let data = self.layout.slot_data(&self.map, self.side.tx_dir(), slot);
            // SAFETY: the buffer holds `segment_size >= chunk_len` bytes
            // inside the mapping, and it is ours: `free` said the receiver
            // is done with it, and it publishes nothing until we post.
            let chunk = unsafe { std::slice::from_raw_parts_mut(data, chunk_len) };
            fill(offset, chunk);
            self.publish(slot, len, chunk_len, CHUNK_DATA)?;
        }
        Ok(())
    }

    fn recv(&mut self, len: usize, check: Check<'_>) -> io::Result<Received> {
        if self.got_end {
            return Ok(Received::Closed);
        }
        let seg = self.layout.segment_size;
        let dir = self.side.rx_dir();
        for k in 0..self.layout.chunks(len) {
            let slot = self.slot_of(self.rx_seq);
            if !self.acquire(Sem::filled(dir), slot)? {
                return self.gone_at(k);
            }
            let h = self.layout.slot_header(&self.map, dir, slot);
            // Acquire: pairs with the Release store of `seq` in `publish`.
            let seq = h.seq.load(Ordering::Acquire);
            if seq != self.rx_seq + 1 {
                if self.peer_closed() {
                    // The unit was a closing peer's wake-up, not a chunk.
                    return self.gone_at(k);
                }
                return Err(protocol_error(format!(
                    "buffer {slot} holds chunk {seq}, expected {}",
                    self.rx_seq + 1
                )));
            }
            let (kind, message_len, chunk_len) = (
                h.kind.load(Ordering::Relaxed),
                h.message_len.load(Ordering::Relaxed),
                h.chunk_len.load(Ordering::Relaxed),
            );
            self.rx_seq += 1;
            match kind {
                CHUNK_END if k == 0 => {
                    self.got_end = true;
                    return Ok(Received::Closed);
                }
                CHUNK_END => {
                    return Err(protocol_error(
                        "the peer finished in the middle of a message",
                    ));
                }
                CHUNK_DATA => {}
                other => {
                    return Err(protocol_error(format!(
                        "buffer {slot} has chunk kind {other}"
                    )));
                }
            }
            let offset = k * seg;
            let want = seg.min(len - offset);
            if message_len != len as u64 {
                return Err(protocol_error(format!(
                    "the peer sends messages of {message_len} bytes, expected {len}"
                )));
            }
            if chunk_len != want as u64 {
                return Err(protocol_error(format!(
                    "chunk at offset {offset} has {chunk_len} bytes, expected {want}"
                )));
            }
            let data = self.layout.slot_data(&self.map, dir, slot);
            // SAFETY: `want <= segment_size` bytes inside the mapping; the
            // sender published them (seq checked above) and writes the
            // buffer again only after we post `free`.
            let chunk = unsafe { std::slice::from_raw_parts(data, want) };
            check(offset, chunk);
            self.rounds += 1;
            self.sync.post(Sem::free(dir), slot as u32)?;
        }
        Ok(Received::Message)
    }

    fn finish(&mut self) -> io::Result<()> {
        if self.sent_end {
            return Ok(());
        }
        self.sent_end = true;
        match self.claim() {
            Ok(slot) => self.publish(slot, 0, 0, CHUNK_END),
            // Nobody is left to tell.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn rounds(&self) -> u64 {
        self.rounds
    }
}

impl<S: Semaphores> Drop for Ring<S> {
    fn drop(&mut self) {
        // Release: pairs with the Acquire load in the peer's `peer_closed`.
        self.lifecycle().closed[self.side.index()].store(1, Ordering::Release);
        // The peer may wait for a chunk from us, or for a buffer we hold.
        self.sync.interrupt(Sem::filled(self.side.tx_dir()));
        self.sync.interrupt(Sem::free(self.side.rx_dir()));
    }
}

/// The protocol in one process: two mappings of one memfd stand for the
/// two sides, and spin semaphores never block while a unit is there, so
/// every step below runs to completion without a second process.
#[cfg(test)]
pub(super) mod tests {
    use std::io::ErrorKind;

    use rustix::fs::{MemfdFlags, ftruncate, memfd_create};

    use super::*;
    use crate::mechanisms::lifeline::lifelines;
    use crate::mechanisms::shm::cleanup::Cleanup;
    use crate::mechanisms::shm::spin::Spin;
    use crate::payload::{Payload, Verifier};
    use crate::transport::ChannelConfig;

    pub(in crate::mechanisms::shm) struct Rig {
        pub client: Ring<Spin>,
        pub server: Ring<Spin>,
        pub layout: Layout,
        /// A third mapping of the region (also `ring_fuzz.rs`'s pen).
        pub region: Mapping,
    }

    /// A region of a memfd (`memfd`, `posix-shm`, `mmap-file` map a file
    /// the same way).
    pub(in crate::mechanisms::shm) fn memfd_region(len: usize) -> Mapping {
        let fd = memfd_create("ipclab-test", MemfdFlags::CLOEXEC).unwrap();
        ftruncate(&fd, len as u64).unwrap();
        Mapping::shared_fd(&fd, len).unwrap()
    }

    fn rig(segment_size: usize, segments: usize) -> Rig {
        rig_in(memfd_region, segment_size, segments)
    }

    /// Both sides over a region made by `region`; each side maps it again
    /// (`Mapping::duplicate`), as a side's own process would.
    pub(in crate::mechanisms::shm) fn rig_in(
        region: fn(usize) -> Mapping,
        segment_size: usize,
        segments: usize,
    ) -> Rig {
        let layout = Layout::new(&ChannelConfig {
            size: 0,
            segment_size: Some(segment_size),
            segments,
        })
        .unwrap();
        let init = region(layout.len);
        layout.init(&init);
        let initial = layout.initial_counts();
        Spin::create(initial, layout.sync_area(&init), &mut Cleanup::default()).unwrap();
        let (server_line, client_line) = lifelines().unwrap();
        let side = |side, lifeline| {
            let map = init.duplicate().unwrap();
            layout.check(&map).unwrap();
            // SAFETY: the ring keeps the mapping as long as the semaphores.
            let sync =
                unsafe { Spin::open(&mut (), layout.sync_area(&map), side, initial) }.unwrap();
            Ring::new(sync, map, layout, side, lifeline)
        };
        Rig {
            client: side(Side::Client, client_line),
            server: side(Side::Server, server_line),
            layout,
            region: init,
        }
    }

    fn send(ring: &mut Ring<Spin>, payload: Payload) -> io::Result<()> {
        ring.send(payload.len(), &mut |offset, buf| payload.fill(offset, buf))
    }

    fn recv(ring: &mut Ring<Spin>, payload: Payload) -> io::Result<Received> {
        let mut v = Verifier::new(payload);
        let got = ring.recv(payload.len(), &mut |offset, chunk| v.check(offset, chunk))?;
        if got == Received::Message {
            v.finish().map_err(|m| protocol_error(m.to_string()))?;
        }
        Ok(got)
    }

    #[test]
    fn a_message_larger_than_a_buffer_goes_in_rounds() {
        let mut r = rig(64, 16);
        send(&mut r.client, Payload::request(0, 1000)).unwrap();
        assert_eq!(
            recv(&mut r.server, Payload::request(0, 1000)).unwrap(),
            Received::Message
        );
        assert_eq!(r.server.rounds(), 16);
        send(&mut r.server, Payload::reply(0, 1000)).unwrap();
        assert_eq!(
            recv(&mut r.client, Payload::reply(0, 1000)).unwrap(),
            Received::Message
        );
        // A 0-byte message is still one hand-over.
        send(&mut r.client, Payload::request(1, 0)).unwrap();
        assert_eq!(
            recv(&mut r.server, Payload::request(1, 0)).unwrap(),
            Received::Message
        );
        assert_eq!(r.server.rounds(), 17);
        r.client.finish().unwrap();
        assert_eq!(
            recv(&mut r.server, Payload::request(2, 12)).unwrap(),
            Received::Closed
        );
        assert_eq!(
            recv(&mut r.server, Payload::request(2, 12)).unwrap(),
            Received::Closed
        );
        assert!(send(&mut r.client, Payload::request(2, 12)).is_err());
    }

    #[test]
    fn buffers_are_reused_in_ring_order() {
        let mut r = rig(8, 3);
        for seq in 0..20 {
            send(&mut r.client, Payload::request(seq, 20)).unwrap();
            assert_eq!(
                recv(&mut r.server, Payload::request(seq, 20)).unwrap(),
                Received::Message
            );
        }
        assert_eq!(r.server.rounds(), 60);
    }

    /// Corrupts the header of direction 0's buffer `slot` after the client
    /// sent, then expects the server's receive to fail without reading
    /// past the buffer.
    fn corrupted(
        slot: usize,
        len: usize,
        corrupt: impl FnOnce(&super::super::layout::SlotHeader),
    ) -> io::Error {
        let mut r = rig(64, 2);
        send(&mut r.client, Payload::request(0, len)).unwrap();
        corrupt(r.client.layout.slot_header(&r.client.map, 0, slot));
        let mut seen = 0;
        let e = r
            .server
            .recv(len, &mut |_, chunk| seen += chunk.len())
            .unwrap_err();
        assert!(seen <= len, "{seen} bytes checked");
        e
    }

    #[test]
    fn a_chunk_longer_than_the_buffer_is_a_protocol_error() {
        let e = corrupted(0, 64, |h| h.chunk_len.store(u64::MAX, Ordering::Relaxed));
        assert_eq!(e.kind(), ErrorKind::InvalidData, "{e}");
        assert!(e.to_string().contains("expected 64"), "{e}");
    }

    #[test]
    fn a_wrong_sequence_number_is_a_protocol_error() {
        let e = corrupted(0, 12, |h| h.seq.store(7, Ordering::Relaxed));
        assert_eq!(e.kind(), ErrorKind::InvalidData, "{e}");
    }

    #[test]
    fn a_wrong_message_length_is_a_protocol_error() {
        let e = corrupted(0, 12, |h| h.message_len.store(13, Ordering::Relaxed));
        assert!(e.to_string().contains("13 bytes, expected 12"), "{e}");
    }

    #[test]
    fn an_end_in_the_middle_of_a_message_is_an_error() {
        let e = corrupted(1, 100, |h| h.kind.store(CHUNK_END, Ordering::Relaxed));
        assert!(e.to_string().contains("middle"), "{e}");
        let e = corrupted(0, 12, |h| h.kind.store(99, Ordering::Relaxed));
        assert!(e.to_string().contains("kind 99"), "{e}");
    }

    #[test]
    fn a_peer_gone_at_a_boundary_is_closed_and_mid_message_an_error() {
        let mut r = rig(64, 2);
        drop(r.client);
        assert_eq!(
            recv(&mut r.server, Payload::request(0, 12)).unwrap(),
            Received::Closed
        );

        let mut r = rig(64, 2);
        // Only the first of two chunks, then the client goes.
        let slot = r.client.claim().unwrap();
        r.client.publish(slot, 100, 64, CHUNK_DATA).unwrap();
        drop(r.client);
        let e = r.server.recv(100, &mut |_, _| {}).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnexpectedEof, "{e}");
        // Sending to a closed peer is a broken pipe.
        assert_eq!(
            send(&mut r.server, Payload::reply(0, 12))
                .unwrap_err()
                .kind(),
            ErrorKind::BrokenPipe
        );
    }
}
