//! Loom model tests of the ring indices and of the wait/wake protocol.
//!
//! Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p shmchan --release --lib loom`.
//!
//! Loom runs the producer and the consumer as model threads over a ring on
//! the heap and explores their interleavings (and the reorderings that the
//! memory orderings allow). The futex is loom's model of the kernel's (see
//! `sync.rs`), without timeouts: a lost wake-up would leave a side asleep
//! for ever, which loom reports as a deadlock. Counts are small on purpose.

use std::sync::Arc;

use crate::consumer::{Consumer, Sink};
use crate::error::Error;
use crate::producer::{How, Producer};
use crate::ring::HeapRing;
use crate::wait::{Forever, Wait};

/// The smallest ring: records of 16 to 64 bytes, chunks of 16.
const CAP: usize = 64;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

fn message(seq: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| seq.wrapping_mul(31).wrapping_add(i as u8))
        .collect()
}

/// Sends `lens` (one message each) with `policy`, then closes.
fn producer(heap: Arc<HeapRing>, policy: Wait, lens: &'static [usize]) {
    let mut p = Producer::new(heap.ring());
    for (seq, &len) in lens.iter().enumerate() {
        let msg = message(seq as u8, len);
        p.send(
            len as u64,
            &mut |off, piece| piece.copy_from_slice(&msg[off..off + piece.len()]),
            How::Wait(policy),
            &mut Forever,
        )
        .unwrap_or_else(|e| {
            eprintln!("PRODUCER FAILED {e}");
            panic!("producer: {e}")
        });
    }
    p.close();
}

/// Receives `lens` with `policy`, checking each, then expects `Closed`.
fn consumer(heap: &HeapRing, policy: Wait, lens: &[usize]) {
    let mut c = Consumer::new(heap.ring());
    for (seq, &len) in lens.iter().enumerate() {
        let mut v = Vec::new();
        let got = c.recv(&mut Sink::Vec(&mut v), How::Wait(policy), &mut Forever);
        assert_eq!(got.unwrap(), len as u64);
        assert_eq!(v, message(seq as u8, len));
    }
    let mut v = Vec::new();
    let end = c.recv(&mut Sink::Vec(&mut v), How::Wait(policy), &mut Forever);
    assert!(matches!(end, Err(Error::Closed)), "{end:?}");
}

fn run(policy: Wait, lens: &'static [usize]) {
    model(move || {
        let heap = Arc::new(HeapRing::new(CAP));
        let sender = {
            let heap = Arc::clone(&heap);
            loom::thread::spawn(move || producer(heap, policy, lens))
        };
        consumer(&heap, policy, lens);
        sender.join().unwrap();
    });
}

/// The receiver sleeps before the message comes, or it does not: either
/// way it is woken (the receiver's waiter flag against `tail`).
#[test]
fn loom_block_one_message_wakes_the_receiver() {
    run(Wait::Block, &[3]);
}

/// Three records (16 + 16 + 8 bytes of payload, 96 bytes of ring) through
/// a 64-byte ring: the sender must sleep until the receiver makes room
/// (the sender's waiter flag against `head`).
#[test]
fn loom_block_a_message_larger_than_the_ring_wakes_the_sender() {
    run(Wait::Block, &[40]);
}

/// Two messages in a row, with the close behind them.
#[test]
fn loom_block_two_messages_then_close() {
    run(Wait::Block, &[0, 20]);
}

/// Spinning sides: the indices alone carry the hand-over.
#[test]
fn loom_spin_messages_in_rounds() {
    run(Wait::Spin, &[20, 1]);
}

/// Spin, yield, then sleep: a side may sleep in either phase of the other.
#[test]
fn loom_adaptive_message_in_rounds() {
    run(Wait::Adaptive { spin: 1 }, &[24]);
}
