//! A fuzz target (proptest) of the ring reader (`Ring::recv`) over memory
//! a hostile sender can write: a real client sends through a real region
//! (a memfd, or an anonymous shared mapping as `fork-shared` makes), then
//! closes; the test overwrites the region through a third mapping (the
//! header, the lifecycle flags, the semaphore counters, the buffer headers'
//! sequence numbers, lengths and kinds, the payload, or every byte), and
//! the server receives.
//!
//! One process, no concurrency: the "hostile peer" is the test writing raw
//! bytes between calls, which is all a peer can do to this memory; this
//! checks the reader's parsing of any state the memory can be in. Races
//! with a peer writing during a call are `torture hostile`'s (a third
//! process). Nothing here is a measurement. The semaphores are the spin
//! kind: the futex kind keeps the same counters in the segment (`Local`)
//! but sleeps 100 ms in every empty wait, which would make each case slow.
//!
//! Checked for every case: no panic, every call returns (the client has
//! closed, so an empty wait ends; a watchdog aborts the run otherwise),
//! every chunk handed to the caller lies inside one of this direction's
//! buffers and has the length the caller expects, in order; and, up to the
//! first error (after one the harness stops the cell, and the ring makes no
//! promise),
//! - a message whose buffers were not changed is the message sent, byte
//!   for byte; with no buffer changed, no message beyond those sent;
//! - with nothing changed that the receiver reads, every sent message is
//!   received, in order, then `Closed`.
//!
//! Long run: `PROPTEST_CASES=1000000 cargo test --release -p ipclab-bench
//! --lib ring_fuzz`.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::Config;

use super::layout::Layout;
use super::region::Mapping;
use super::ring::Ring;
use super::ring::tests::{Rig, memfd_region, rig_in};
use super::semaphores::BLOCK;
use super::spin::Spin;
use crate::payload::Payload;
use crate::transport::{Endpoint, Received};

/// Cases of the short run (`cargo test`); `PROPTEST_CASES` overrides it.
const DEFAULT_CASES: u32 = 1000;
/// The longest any one receive may take before the watchdog aborts.
const WATCHDOG: Duration = Duration::from_secs(60);
/// Where the semaphores start (`layout.rs`): header and lifecycle lines.
const SYNC_OFF: usize = 256;
const LIFECYCLE_OFF: usize = 128;

/// Aborts the test binary when one receive has been under way for
/// [`WATCHDOG`]: a hang fails the run instead of stalling it. Only time
/// inside a receive counts (a guard per receive), so other tests of the
/// same binary running long afterwards never trip it.
struct Watch;

/// Milliseconds since `base()` (plus one) when the receive under way
/// began; 0 when none is. Relaxed: the watchdog reads this value alone,
/// nothing else is published through it.
static SINCE: AtomicU64 = AtomicU64::new(0);

fn now_ms() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

impl Watch {
    fn start() -> Watch {
        static START: Once = Once::new();
        START.call_once(|| {
            std::thread::spawn(|| {
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                    let since = SINCE.load(Ordering::Relaxed);
                    if since != 0 && now_ms().saturating_sub(since) > WATCHDOG.as_millis() as u64 {
                        eprintln!("watchdog: a receive has not returned for {WATCHDOG:?}");
                        std::process::abort();
                    }
                }
            });
        });
        SINCE.store(now_ms(), Ordering::Relaxed);
        Watch
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        SINCE.store(0, Ordering::Relaxed);
    }
}

fn bytes(seq: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    Payload::request(seq, len).fill(0, &mut v);
    v
}

#[derive(Clone, Debug)]
enum Change {
    Random(u64),
    Add(i64),
    Set(u64),
}

/// What the hostile peer overwrites.
#[derive(Clone, Debug)]
enum Mutation {
    /// A field (0 seq, 1 message length, 2 chunk length, 3 kind) of
    /// direction 0's buffer header `slot`.
    Slot(usize, usize, Change),
    /// `posted` (0) or `waiting` (1) of semaphore `sem`.
    Counter(usize, usize, Change),
    /// `attached` (0) or `closed[side]` (1, 2).
    Lifecycle(usize, Change),
    /// A payload byte of direction 0's buffer `slot`.
    Data(usize, usize, u8),
    /// A byte anywhere in the region.
    Anywhere(usize, u8),
    /// Every byte of the region, from this seed.
    Everything(u64),
}

#[derive(Clone, Debug)]
struct Case {
    anonymous: bool,
    segment_size: usize,
    segments: usize,
    /// `Some(len)`: the client sends; `None`: the server receives (checked).
    ops: Vec<Option<usize>>,
    finish: bool,
    mutations: Vec<Mutation>,
    /// Lengths the server asks for once the sent messages are used up.
    extra: Vec<usize>,
}

fn change() -> impl Strategy<Value = Change> {
    let extremes = prop_oneof![
        Just(0u64),
        Just(1),
        Just(2),
        Just(7),
        Just(64),
        Just(65),
        Just(u64::from(u32::MAX)),
        Just(i64::MAX as u64),
        Just(u64::MAX),
    ];
    prop_oneof![
        any::<u64>().prop_map(Change::Random),
        (-3i64..=3).prop_map(Change::Add),
        extremes.prop_map(Change::Set),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    let op = prop_oneof![2 => (0..300usize).prop_map(Some), 1 => Just(None)];
    let mutation = prop_oneof![
        4 => (0..8usize, 0..4usize, change()).prop_map(|(s, f, c)| Mutation::Slot(s, f, c)),
        2 => (0..4usize, 0..2usize, change()).prop_map(|(s, f, c)| Mutation::Counter(s, f, c)),
        1 => (0..3usize, change()).prop_map(|(f, c)| Mutation::Lifecycle(f, c)),
        2 => (0..8usize, any::<usize>(), any::<u8>()).prop_map(|(s, o, b)| Mutation::Data(s, o, b)),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(o, b)| Mutation::Anywhere(o, b)),
        1 => any::<u64>().prop_map(Mutation::Everything),
    ];
    (
        any::<bool>(),
        prop::sample::select(vec![8usize, 64, 100]),
        1..5usize,
        prop::collection::vec(op, 0..16),
        any::<bool>(),
        prop::collection::vec(mutation, 0..4),
        prop::collection::vec(0..300usize, 0..3),
    )
        .prop_map(
            |(anonymous, segment_size, segments, ops, finish, mutations, extra)| Case {
                anonymous,
                segment_size,
                segments,
                ops,
                finish,
                mutations,
                extra,
            },
        )
}

/// Offset of `ptr` in `region`.
fn offset(region: &Mapping, ptr: *const u8) -> usize {
    ptr as usize - region.as_ptr() as usize
}

/// A message sent and not yet received: its bytes and the buffers its
/// chunks sit in.
struct Sent {
    bytes: Vec<u8>,
    slots: Vec<usize>,
}

/// The honest phase: the client sends while its buffers last (it has no
/// second process to drain them), the server receives and checks.
fn honest(r: &mut Rig, ops: &[Option<usize>]) -> VecDeque<Sent> {
    let (layout, segments) = (r.layout, r.layout.segments);
    let mut queue: VecDeque<Sent> = VecDeque::new();
    let (mut sent_chunks, mut in_flight) = (0usize, 0usize);
    for (seq, op) in ops.iter().enumerate() {
        let seq = seq as u64;
        match *op {
            Some(len) if in_flight + layout.chunks(len) <= segments => {
                let payload = Payload::request(seq, len);
                r.client.send(len, &mut |o, b| payload.fill(o, b)).unwrap();
                let n = layout.chunks(len);
                let slots = (sent_chunks..sent_chunks + n).map(|c| c % segments);
                queue.push_back(Sent {
                    bytes: bytes(seq, len),
                    slots: slots.collect(),
                });
                (sent_chunks, in_flight) = (sent_chunks + n, in_flight + n);
            }
            Some(_) => {}
            None => {
                let Some(next) = queue.pop_front() else {
                    continue;
                };
                let _watch = Watch::start();
                let (got, res) = receive(&mut r.server, &layout, &r.region, next.bytes.len());
                assert_eq!(res.unwrap(), Received::Message);
                assert_eq!(got, next.bytes);
                in_flight -= next.slots.len();
            }
        }
    }
    queue
}

fn changed(old: u64, width: usize, c: &Change) -> u64 {
    let v = match *c {
        Change::Random(r) => r,
        Change::Add(d) => old.wrapping_add(d as u64),
        Change::Set(v) => v,
    };
    if width == 8 { v } else { v & 0xFFFF_FFFF }
}

fn word(at: *mut u8, width: usize) -> u64 {
    // SAFETY: `at` is a field of `width` bytes in the live region; nobody
    // else runs during the read.
    unsafe {
        if width == 8 {
            at.cast::<u64>().read_volatile()
        } else {
            at.cast::<u32>().read_volatile().into()
        }
    }
}

fn set_word(at: *mut u8, width: usize, c: &Change) {
    let v = changed(word(at, width), width, c);
    // SAFETY: as in `word`; the field is aligned for its width.
    unsafe {
        if width == 8 {
            at.cast::<u64>().write_volatile(v)
        } else {
            at.cast::<u32>().write_volatile(v as u32)
        }
    }
}

fn mutate(region: &Mapping, layout: &Layout, mutations: &[Mutation]) {
    let base = region.as_ptr();
    let slot = |s: usize| s % layout.segments;
    for m in mutations {
        match m {
            Mutation::Slot(s, field, c) => {
                let h: *const _ = layout.slot_header(region, 0, slot(*s));
                let (at, width) = [(0, 8), (8, 8), (16, 8), (24, 4)][*field];
                set_word(h.cast::<u8>().cast_mut().wrapping_add(at), width, c);
            }
            Mutation::Counter(sem, field, c) => {
                let at = SYNC_OFF + sem * BLOCK + field * 4;
                set_word(base.wrapping_add(at), 4, c);
            }
            Mutation::Lifecycle(field, c) => {
                set_word(base.wrapping_add(LIFECYCLE_OFF + field * 4), 4, c);
            }
            Mutation::Data(s, o, b) => {
                let at = layout.slot_data(region, 0, slot(*s));
                // SAFETY: within the buffer's `segment_size` bytes.
                unsafe { at.add(o % layout.segment_size).write_volatile(*b) }
            }
            Mutation::Anywhere(o, b) => {
                // SAFETY: within the region.
                unsafe { base.add(o % region.len()).write_volatile(*b) }
            }
            Mutation::Everything(seed) => {
                let mut s = seed | 1;
                for i in 0..region.len() {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    // SAFETY: within the region.
                    unsafe { base.add(i).write_volatile(s as u8) }
                }
            }
        }
    }
}

fn snapshot(region: &Mapping) -> Vec<u8> {
    (0..region.len())
        .map(|i| {
            // SAFETY: a byte of the region; nobody writes it meanwhile.
            unsafe { region.as_ptr().add(i).read_volatile() }
        })
        .collect()
}

/// What the mutation changed that the server reads.
struct Exposure {
    /// Buffers of direction 0 whose header or data changed.
    slots: Vec<bool>,
    /// Nothing the server reads changed.
    inert: bool,
}

fn exposure(region: &Mapping, layout: &Layout, before: &[u8], after: &[u8]) -> Exposure {
    let mut slots = vec![false; layout.segments];
    let mut inert = true;
    let ranges: Vec<_> = (0..layout.segments)
        .flat_map(|s| {
            let h: *const _ = layout.slot_header(region, 0, s);
            let (h, d) = (
                offset(region, h.cast()),
                offset(region, layout.slot_data(region, 0, s)),
            );
            [(s, h..h + 128), (s, d..d + layout.segment_size)]
        })
        .collect();
    for i in (0..before.len()).filter(|&i| before[i] != after[i]) {
        match ranges.iter().find(|(_, r)| r.contains(&i)) {
            Some((s, _)) => (slots[*s], inert) = (true, false),
            // What the server reads besides its buffers: `filled(0)`'s
            // counter and the client's `closed` flag.
            None if (SYNC_OFF..SYNC_OFF + 4).contains(&i) => inert = false,
            None if (LIFECYCLE_OFF + 8..LIFECYCLE_OFF + 12).contains(&i) => inert = false,
            None => {}
        }
    }
    Exposure { slots, inert }
}

/// One receive of a `len`-byte message by `server`; checks each chunk's
/// place and length, and returns the bytes handed over.
fn receive(
    server: &mut Ring<Spin>,
    layout: &Layout,
    region: &Mapping,
    len: usize,
) -> (Vec<u8>, io::Result<Received>) {
    // The server's own mapping, which the chunks point into: the same
    // layout at another address.
    let lifecycle: *const _ = server.lifecycle();
    let base = lifecycle.cast::<u8>() as usize - LIFECYCLE_OFF;
    let data = |s| offset(region, layout.slot_data(region, 0, s));
    let mut got = Vec::new();
    let res = server.recv(len, &mut |at, chunk| {
        assert_eq!(at, got.len(), "chunks in order");
        assert_eq!(
            chunk.len(),
            layout.segment_size.min(len - at),
            "chunk length"
        );
        let off = (chunk.as_ptr() as usize).wrapping_sub(base);
        assert!(
            (0..layout.segments)
                .any(|s| off >= data(s) && off + chunk.len() <= data(s) + layout.segment_size),
            "a chunk outside direction 0's buffers (offset {off})"
        );
        got.extend_from_slice(chunk);
    });
    if let Ok(Received::Message) = res {
        assert_eq!(got.len(), len, "a message of another length");
    }
    (got, res)
}

fn run(case: &Case) {
    let region = if case.anonymous {
        |len| Mapping::shared_anonymous(len).unwrap()
    } else {
        memfd_region
    };
    let mut r = rig_in(region, case.segment_size, case.segments);
    let mut queue = honest(&mut r, &case.ops);
    let history: Vec<usize> = case.ops.iter().flatten().copied().collect();
    if case.finish {
        // Room for the end chunk is not guaranteed: skip it when full
        // (a wait for a free buffer would have no one to end it).
        let in_flight: usize = queue.iter().map(|s| s.slots.len()).sum();
        if in_flight < case.segments {
            r.client.finish().unwrap();
        }
    }
    // The client closes (flag, then its lifeline end): every wait of the
    // server ends, whatever the mutation does to the counters.
    let Rig {
        client,
        mut server,
        layout,
        region,
    } = r;
    drop(client);
    let before = snapshot(&region);
    mutate(&region, &layout, &case.mutations);
    let ex = exposure(&region, &layout, &before, &snapshot(&region));
    let forged = ex.slots.iter().any(|&s| s);
    let mut errored = false;
    // Then lengths that stale buffers hold: a replayed chunk would pass
    // the length checks.
    let lens: Vec<usize> = queue
        .iter()
        .map(|s| s.bytes.len())
        .chain(history)
        .chain(case.extra.iter().copied())
        .collect();
    for len in lens.into_iter().chain([12, 12]) {
        let _watch = Watch::start();
        let (got, res) = receive(&mut server, &layout, &region, len);
        if errored {
            continue;
        }
        match res {
            Ok(Received::Message) => match queue.pop_front() {
                Some(next) if !next.slots.iter().any(|&s| ex.slots[s]) => {
                    assert_eq!(got, next.bytes, "not the message sent next")
                }
                Some(_) => {}
                None => assert!(forged, "a message of {len} bytes that was never sent"),
            },
            Ok(Received::Closed) | Err(_) => {
                if ex.inert {
                    assert!(
                        queue.is_empty(),
                        "{res:?} with {} messages left",
                        queue.len()
                    );
                    assert!(
                        matches!(res, Ok(Received::Closed)),
                        "{res:?} after an inert change"
                    );
                }
                errored = res.is_err();
                if res.is_ok() {
                    queue.clear();
                }
            }
        }
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

proptest! {
    #![proptest_config(Config { cases: cases(), ..Config::default() })]

    /// Failing cases are kept in `proptest-regressions/` and tried first.
    #[test]
    fn ring_reader_with_a_hostile_sender(case in case()) {
        run(&case);
    }
}
