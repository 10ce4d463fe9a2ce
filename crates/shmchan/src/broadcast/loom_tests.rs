//! Loom models of the broadcast's protocol: the shared bell that wakes
//! every sleeping subscriber, the cursors that hold a `Block` publisher
//! back, a join racing with publishes, and the seqlock re-check under
//! `Overwrite`.
//!
//! Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p shmchan --release --lib loom`
//! (`tests/loom.rs` does). The futex is loom's model of the kernel's,
//! without timeouts: a lost wake-up is a deadlock that loom reports. The
//! entries have no bytes here; a message's length word carries its
//! identity (`len(m)`), and the seqlock guards it as it guards bytes.

use std::sync::Arc;

use super::area::HeapArea;
use super::reader::{Got, Reader, Sink};
use super::wake;
use super::writer::Writer;
use crate::error::Error;
use crate::wait::{self, Forever, Wait};

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

/// The length that says which message it is.
fn len(m: u64) -> u64 {
    m * 3 + 1
}

/// Publishes `n` messages; under `Block`, waits for room on the
/// publisher's waiter as the real publisher does.
fn publish(heap: &HeapArea, block: bool, n: u64) {
    let mut w = Writer::new(heap.area(), block);
    let area = heap.area();
    for m in 0..n {
        wait::wait_until(
            Wait::Block,
            &area.control().publisher.0,
            &mut || Ok(w.room()),
            &mut Forever,
        )
        .unwrap();
        w.write(len(m), &mut |_, _| {});
    }
    w.close();
}

/// Receives until `Closed`, sleeping on the bell as a subscriber does;
/// returns what it got: `Ok(m)` for message `m`, `Err(n)` for a lag of n.
fn subscribe(r: &mut Reader) -> Vec<Result<u64, u64>> {
    let mut got = Vec::new();
    loop {
        // Loaded before the poll: if the publisher had closed, the poll
        // sees everything it published.
        let closed = r.closed();
        let m = r.next();
        let mut v = Vec::new();
        match r.poll(&mut Sink::Vec(&mut v)) {
            Ok(Some(Got::Copied(l))) => {
                assert_eq!(l, len(m), "a torn or wrong message");
                got.push(Ok(m));
                continue;
            }
            Ok(Some(Got::Lent { .. })) => unreachable!(),
            Err(Error::Lagged(n)) => {
                got.push(Err(n));
                continue;
            }
            Err(e) => panic!("subscriber: {e}"),
            Ok(None) if closed => return got,
            Ok(None) => {}
        }
        let area = *r.area();
        wake::wait_until(
            Wait::Block,
            &area.control().bell.0,
            &mut || Ok(r.ready()),
            &mut Forever,
        )
        .unwrap();
    }
}

/// Two subscribers sleep on the one bell while messages come: both are
/// woken (one wake for all), both get every message.
#[test]
fn loom_broadcast_one_bell_wakes_every_subscriber() {
    model(|| {
        let heap = Arc::new(HeapArea::new(4, 2));
        let mut a = Reader::join(heap.area(), 0, 0, false).unwrap();
        let mut b = Reader::join(heap.area(), 1, 0, false).unwrap();
        let other = {
            let heap = Arc::clone(&heap);
            loom::thread::spawn(move || {
                let _keep = &heap;
                subscribe(&mut b)
            })
        };
        let publisher = {
            let heap = Arc::clone(&heap);
            loom::thread::spawn(move || publish(&heap, false, 1))
        };
        assert_eq!(subscribe(&mut a), [Ok(0)]);
        assert_eq!(other.join().unwrap(), [Ok(0)]);
        publisher.join().unwrap();
    });
}

/// `Block` through a ring of 2: the publisher must sleep until the
/// subscriber's cursor moves (the cursor's Release against the scan's
/// Acquire, and the publisher's waiter against the subscriber's notify).
/// Nothing lost, nothing torn.
#[test]
fn loom_broadcast_block_waits_for_the_cursor() {
    model(|| {
        let heap = Arc::new(HeapArea::new(2, 1));
        let mut r = Reader::join(heap.area(), 0, 0, true).unwrap();
        let publisher = {
            let heap = Arc::clone(&heap);
            loom::thread::spawn(move || publish(&heap, true, 3))
        };
        assert_eq!(subscribe(&mut r), [Ok(0), Ok(1), Ok(2)]);
        publisher.join().unwrap();
    });
}

/// A subscriber joins while a `Block` publisher publishes through a ring
/// of 2: from wherever it starts, it gets every later message (the join's
/// fence against the one after each `tail` store).
#[test]
fn loom_broadcast_a_join_racing_publishes_loses_nothing() {
    model(|| {
        let heap = Arc::new(HeapArea::new(2, 1));
        let publisher = {
            let heap = Arc::clone(&heap);
            loom::thread::spawn(move || publish(&heap, true, 3))
        };
        let mut r = Reader::join(heap.area(), 0, 1, true).unwrap();
        let start = r.next();
        let got = subscribe(&mut r);
        let want: Vec<_> = (start..3).map(Ok).collect();
        assert_eq!(got, want);
        publisher.join().unwrap();
    });
}

/// The same with a join at the newest message (no history): a joiner
/// that tried again because the publisher ran a ring past its first
/// cursor may have nothing to read, so no read of its wakes a publisher
/// that saw that first cursor and waits on it; the join must.
#[test]
fn loom_broadcast_a_join_at_the_newest_racing_publishes_loses_nothing() {
    model(|| {
        let heap = Arc::new(HeapArea::new(2, 1));
        let publisher = {
            let heap = Arc::clone(&heap);
            loom::thread::spawn(move || publish(&heap, true, 3))
        };
        let mut r = Reader::join(heap.area(), 0, 0, true).unwrap();
        let start = r.next();
        let got = subscribe(&mut r);
        let want: Vec<_> = (start..3).map(Ok).collect();
        assert_eq!(got, want);
        publisher.join().unwrap();
    });
}

/// `Overwrite` through a ring of 2 with a subscriber that reads while
/// the publisher laps it: every message returned is whole (the seqlock
/// re-check), and what was received plus what was reported lost is
/// exactly what was published.
#[test]
fn loom_broadcast_overwrite_counts_are_exact_and_nothing_is_torn() {
    model(|| {
        let heap = Arc::new(HeapArea::new(2, 1));
        let mut r = Reader::join(heap.area(), 0, 0, false).unwrap();
        let publisher = {
            let heap = Arc::clone(&heap);
            loom::thread::spawn(move || publish(&heap, false, 3))
        };
        let got = subscribe(&mut r);
        let mut next = 0;
        for g in got {
            match g {
                Ok(m) => {
                    assert_eq!(m, next, "out of order or twice");
                    next += 1;
                }
                Err(n) => next += n,
            }
        }
        assert_eq!(next, 3);
        publisher.join().unwrap();
    });
}
