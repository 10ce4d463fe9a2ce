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

/// A bell for a model: a real socket pair (its ends' traffic is a side
/// effect loom does not model; the words that decide whether to ring are
/// atomics it does).
fn bells() -> (crate::bell::Bell, crate::bell::Bell) {
    let (a, b) = crate::bell::pair().unwrap();
    (crate::bell::Bell { fd: a }, crate::bell::Bell { fd: b })
}

/// Whether the peer rang `bell` (a byte is there), not counting a hang-up.
fn rung(bell: &crate::bell::Bell) -> bool {
    use rustix::net::{RecvFlags, recv};
    matches!(recv(&bell.fd, &mut [0u8; 8], RecvFlags::DONTWAIT), Ok((n, _)) if n > 0)
}

/// A receiver that finds nothing arms its bell; the sender publishes at
/// any point around that. If the arming said "wait", the sender rang: no
/// lost wake-up for a waiter in an event loop.
#[test]
fn loom_an_armed_receiver_is_rung() {
    model(|| {
        let heap = Arc::new(HeapRing::new(CAP));
        let (to_rx, rx_bell) = bells();
        let sender = {
            let heap = Arc::clone(&heap);
            loom::thread::spawn(move || {
                let mut p = Producer::with_bell(heap.ring(), Some(to_rx));
                let msg = message(0, 3);
                let fill = &mut |off: usize, piece: &mut [u8]| {
                    piece.copy_from_slice(&msg[off..off + piece.len()])
                };
                p.send(3, fill, How::Try, &mut Forever).unwrap();
            })
        };
        let mut c = Consumer::with_bell(heap.ring(), Some(rx_bell));
        let armed = loop {
            let mut v = Vec::new();
            match c.recv(&mut Sink::Vec(&mut v), How::Try, &mut Forever) {
                Ok(_) => break false,
                Err(Error::Empty) => {}
                Err(e) => panic!("receiver: {e}"),
            }
            if c.arm().unwrap() {
                break true;
            }
        };
        sender.join().unwrap();
        if armed {
            assert!(
                rung(c.bell().unwrap()),
                "armed, and the sender did not ring"
            );
        }
    });
}

/// A sender that finds the ring full arms its bell for the room it needs;
/// the receiver takes a message at any point around that. If the arming
/// said "wait", the receiver rang.
#[test]
fn loom_an_armed_sender_is_rung() {
    model(|| {
        let heap = Arc::new(HeapRing::new(CAP));
        let (to_tx, tx_bell) = bells();
        let mut p = Producer::with_bell(heap.ring(), Some(tx_bell));
        // Two records of 32 bytes fill the 64-byte ring.
        for seq in 0..2 {
            let msg = message(seq, 16);
            let fill = &mut |off: usize, piece: &mut [u8]| {
                piece.copy_from_slice(&msg[off..off + piece.len()])
            };
            p.send(16, fill, How::Try, &mut Forever).unwrap();
        }
        let receiver = {
            let heap = Arc::clone(&heap);
            loom::thread::spawn(move || {
                let mut c = Consumer::with_bell(heap.ring(), Some(to_tx));
                let mut v = Vec::new();
                c.recv(&mut Sink::Vec(&mut v), How::Try, &mut Forever)
                    .unwrap();
                assert_eq!(v, message(0, 16));
            })
        };
        let armed = p.arm(32).unwrap();
        receiver.join().unwrap();
        if armed {
            assert!(
                rung(p.bell().unwrap()),
                "armed, and the receiver did not ring"
            );
        }
    });
}

/// The wait set's protocol (`waitset/engine.rs`) over two channels: the
/// set announces both receivers asleep, runs one fence for both, looks
/// at both, and sleeps on both futex words at once (`futex_waitv`); each
/// producer publishes a message on its own channel and wakes the set.
/// A wake-up lost for either channel leaves the set asleep for ever.
#[test]
fn loom_a_wait_set_over_two_channels_is_woken_by_each() {
    model(|| {
        let heaps = [Arc::new(HeapRing::new(CAP)), Arc::new(HeapRing::new(CAP))];
        let producers: Vec<_> = heaps
            .iter()
            .map(|heap| {
                let heap = heap.clone();
                loom::thread::spawn(move || {
                    let mut p = Producer::new(heap.ring());
                    p.send(16, &mut |_, piece| piece.fill(7), How::Try, &mut Forever)
                        .unwrap();
                })
            })
            .collect();
        let mut cs = [
            Consumer::new(heaps[0].ring()),
            Consumer::new(heaps[1].ring()),
        ];
        let mut got = [false, false];
        while !(got[0] && got[1]) {
            let mut any = false;
            for (c, got) in cs.iter_mut().zip(&mut got) {
                if !*got && c.ready() {
                    let mut v = Vec::new();
                    c.recv(&mut Sink::Vec(&mut v), How::Try, &mut Forever)
                        .unwrap();
                    assert_eq!(v, [7; 16]);
                    *got = true;
                    any = true;
                }
            }
            if any {
                continue;
            }
            let words: Vec<u32> = cs
                .iter()
                .map(|c| crate::wait::announce(c.waiter(), false))
                .collect();
            crate::sync::fence(crate::sync::Ordering::SeqCst);
            let ready = cs.iter_mut().zip(&got).any(|(c, got)| !*got && c.ready());
            if !ready {
                let pairs: Vec<_> = cs
                    .iter()
                    .zip(&words)
                    .map(|(c, &v)| (&c.waiter().wakes, v))
                    .collect();
                crate::sync::futex_waitv(&pairs);
            }
            for c in &cs {
                crate::wait::awake(c.waiter());
            }
        }
        for p in producers {
            p.join().unwrap();
        }
    });
}
