//! Unit tests of the protocol on a ring on the heap: records, chunks,
//! loans, aborts, partial messages, and a scribbling peer. Where both
//! halves must run at once they are threads: these test the protocol's
//! logic; the tests with real processes are in `tests/`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::consumer::{Consumer, Sink};
use crate::error::Error;
use crate::producer::{How, Producer};
use crate::ring::HeapRing;
use crate::sync::Ordering::Relaxed;
use crate::wait::{Wait, Watch};

/// A watchdog for the tests: a wait past the deadline is `Timeout`.
struct Deadline(Instant);

impl Deadline {
    fn after(ms: u64) -> Deadline {
        Deadline(Instant::now() + Duration::from_millis(ms))
    }
}

impl Watch for Deadline {
    fn expired(&self) -> bool {
        Instant::now() >= self.0
    }
    fn check(&mut self) -> Result<(), Error> {
        if self.expired() {
            Err(Error::Timeout)
        } else {
            Ok(())
        }
    }
    fn slice(&self) -> Option<Duration> {
        Some(self.0.saturating_duration_since(Instant::now()))
    }
}

const WATCHDOG_MS: u64 = 20_000;

fn message(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq as usize * 31 + i * 7) as u8)
        .collect()
}

fn send(p: &mut Producer, msg: &[u8], how: How, watch: &mut dyn Watch) -> Result<(), Error> {
    p.send(
        msg.len() as u64,
        &mut |off, piece| piece.copy_from_slice(&msg[off..off + piece.len()]),
        how,
        watch,
    )
}

fn try_recv(c: &mut Consumer) -> Result<Vec<u8>, Error> {
    let mut v = Vec::new();
    c.recv(
        &mut Sink::Vec(&mut v),
        How::Try,
        &mut Deadline::after(WATCHDOG_MS),
    )
    .map(|_| v)
}

#[test]
fn small_messages_keep_order_and_content_across_wraps() {
    let heap = HeapRing::new(256);
    let (mut p, mut c) = (Producer::new(heap.ring()), Consumer::new(heap.ring()));
    let mut w = Deadline::after(WATCHDOG_MS);
    let mut sent = std::collections::VecDeque::new();
    for seq in 0..500u64 {
        let msg = message(seq, (seq % 70) as usize);
        match send(&mut p, &msg, How::Try, &mut w) {
            Ok(()) => sent.push_back(msg),
            Err(Error::Full) => {
                while let Err(Error::Full) = send(&mut p, &msg, How::Try, &mut w) {
                    assert_eq!(try_recv(&mut c).unwrap(), sent.pop_front().unwrap());
                }
                sent.push_back(msg);
            }
            Err(e) => panic!("{e}"),
        }
    }
    while let Some(want) = sent.pop_front() {
        assert_eq!(try_recv(&mut c).unwrap(), want);
    }
    assert!(matches!(try_recv(&mut c), Err(Error::Empty)));
}

#[test]
fn try_send_of_a_message_that_can_never_fit_is_too_large() {
    let heap = HeapRing::new(256);
    let mut p = Producer::new(heap.ring());
    let err = send(
        &mut p,
        &[0; 300],
        How::Try,
        &mut Deadline::after(WATCHDOG_MS),
    );
    assert!(matches!(
        err,
        Err(Error::TooLarge {
            len: 300,
            limit: 192
        })
    ));
}

/// `max_try_send` is exactly the longest message whose records fit the
/// ring.
#[test]
fn max_try_send_is_the_threshold() {
    for cap in [256, 4096, 1 << 16, 1 << 20] {
        let heap = HeapRing::new(cap);
        let p = Producer::new(heap.ring());
        let max = p.max_try_send();
        assert!(p.records_size(max) <= cap as u64, "{cap}");
        assert!(p.records_size(max + 1) > cap as u64, "{cap}");
        if cap >= 4096 {
            assert_eq!(max, cap as u64 - 64);
        }
    }
}

#[test]
fn recv_into_a_small_buffer_leaves_the_message_queued() {
    let heap = HeapRing::new(256);
    let (mut p, mut c) = (Producer::new(heap.ring()), Consumer::new(heap.ring()));
    let mut w = Deadline::after(WATCHDOG_MS);
    send(&mut p, &message(1, 40), How::Try, &mut w).unwrap();
    let mut small = [0u8; 39];
    let err = c.recv(&mut Sink::Slice(&mut small), How::Try, &mut w);
    assert!(matches!(err, Err(Error::TooLarge { len: 40, limit: 39 })));
    let mut big = [0u8; 64];
    assert_eq!(
        c.recv(&mut Sink::Slice(&mut big), How::Try, &mut w)
            .unwrap(),
        40
    );
    assert_eq!(&big[..40], &message(1, 40)[..]);
}

#[test]
fn loans_pad_to_the_end_instead_of_wrapping() {
    let heap = HeapRing::new(256);
    let (mut p, mut c) = (Producer::new(heap.ring()), Consumer::new(heap.ring()));
    let mut w = Deadline::after(WATCHDOG_MS);
    for seq in 0..40u64 {
        let len = [0, 5, 100, 200, 240][seq as usize % 5];
        let msg = message(seq, len);
        // One thread plays both sides: when the loan needs the space of a
        // padding record, the consumer must take that record first.
        while let Err(e) = p.loan(len as u64, How::Try, &mut w) {
            assert!(matches!(e, Error::Full), "{e}");
            assert!(matches!(try_recv(&mut c), Err(Error::Empty)));
        }
        // SAFETY: the loan's bytes, with no other reference to them.
        unsafe { p.loaned(len as u64).as_mut() }.copy_from_slice(&msg);
        p.commit(len as u64);
        assert_eq!(try_recv(&mut c).unwrap(), msg);
    }
    let err = p.loan(241, How::Try, &mut w);
    assert!(matches!(
        err,
        Err(Error::TooLarge {
            len: 241,
            limit: 240
        })
    ));
}

#[test]
fn a_long_message_goes_through_a_small_ring_in_rounds() {
    let heap = Arc::new(HeapRing::new(256));
    let sender = {
        let heap = Arc::clone(&heap);
        std::thread::spawn(move || {
            let mut p = Producer::new(heap.ring());
            let mut w = Deadline::after(WATCHDOG_MS);
            for seq in 0..20u64 {
                send(&mut p, &message(seq, 5000), How::Wait(Wait::Block), &mut w).unwrap();
            }
        })
    };
    let mut c = Consumer::new(heap.ring());
    for seq in 0..20u64 {
        // Alternate between waiting and polling: a `try_recv` that finds
        // half a message keeps it for the next call.
        let got = if seq % 2 == 0 {
            let mut v = Vec::new();
            let how = How::Wait(Wait::Adaptive { spin: 10 });
            c.recv(
                &mut Sink::Vec(&mut v),
                how,
                &mut Deadline::after(WATCHDOG_MS),
            )
            .unwrap();
            v
        } else {
            let deadline = Deadline::after(WATCHDOG_MS);
            loop {
                match try_recv(&mut c) {
                    Ok(v) => break v,
                    Err(Error::Empty) => assert!(!deadline.expired(), "watchdog"),
                    Err(e) => panic!("{e}"),
                }
                std::thread::yield_now();
            }
        };
        assert_eq!(got, message(seq, 5000), "message {seq}");
    }
    assert!(c.records() > 20 * 4);
    sender.join().unwrap();
}

#[test]
fn a_sender_that_times_out_half_way_aborts_its_message() {
    let heap = HeapRing::new(256);
    let (mut p, mut c) = (Producer::new(heap.ring()), Consumer::new(heap.ring()));
    let err = send(
        &mut p,
        &message(1, 1000),
        How::Wait(Wait::Block),
        &mut Deadline::after(1),
    );
    assert!(matches!(err, Err(Error::Timeout)));
    // The receiver takes the part that went out, then learns it is void.
    assert!(matches!(try_recv(&mut c), Err(Error::Empty)));
    let mut w = Deadline::after(WATCHDOG_MS);
    send(&mut p, &message(2, 10), How::Try, &mut w).unwrap();
    assert_eq!(try_recv(&mut c).unwrap(), message(2, 10));
}

#[test]
fn close_is_seen_after_every_message_sent_before() {
    let heap = HeapRing::new(256);
    let (mut p, mut c) = (Producer::new(heap.ring()), Consumer::new(heap.ring()));
    let mut w = Deadline::after(WATCHDOG_MS);
    send(&mut p, &message(1, 10), How::Try, &mut w).unwrap();
    p.close();
    assert_eq!(try_recv(&mut c).unwrap(), message(1, 10));
    assert!(matches!(try_recv(&mut c), Err(Error::Closed)));
    c.close();
    let err = send(&mut p, &message(2, 10), How::Try, &mut w);
    assert!(matches!(err, Err(Error::Closed)));
}

/// xorshift64*: reproducible noise without a dependency.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn a_scribbling_peer_gets_errors_never_a_panic() {
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    for round in 0..300 {
        let heap = HeapRing::new(256);
        let (mut p, mut c) = (Producer::new(heap.ring()), Consumer::new(heap.ring()));
        let mut w = Deadline::after(WATCHDOG_MS);
        for seq in 0..(noise.next() % 8) {
            let _ = send(
                &mut p,
                &message(seq, (noise.next() % 100) as usize),
                How::Try,
                &mut w,
            );
        }
        for _ in 0..(noise.next() % 64) {
            heap.scribble(noise.next() as usize, noise.next() as u8);
        }
        if round % 3 == 0 {
            heap.header().tail.0.store(noise.next() % 512, Relaxed);
        }
        if round % 5 == 0 {
            heap.header().head.0.store(noise.next() % 512, Relaxed);
        }
        // Every call ends, with a message or an error.
        for _ in 0..20 {
            let mut buf = [0u8; 64];
            let _ = c.recv(&mut Sink::Slice(&mut buf), How::Try, &mut w);
            let _ = try_recv(&mut c);
            let _ = send(&mut p, &message(0, 30), How::Try, &mut w);
        }
    }
}

#[test]
fn a_message_interrupted_in_a_buffer_resumes_in_a_vec_and_back() {
    let heap = HeapRing::new(256);
    let (mut p, mut c) = (Producer::new(heap.ring()), Consumer::new(heap.ring()));
    let mut w = Deadline::after(WATCHDOG_MS);
    let msg = message(3, 600);
    let mut sent = 0;
    // One thread plays both sides: the producer writes 64-byte chunks by
    // hand, never more than the ring holds, and never waits.
    let mut push = |p: &mut Producer, records: usize| {
        for _ in 0..records {
            let n = (msg.len() - sent).min(64);
            if n > 0 {
                p.test_chunk(&msg[sent..sent + n], sent == 0, msg.len() as u64);
                sent += n;
            }
        }
    };
    let mut buf = [0u8; 1000];
    push(&mut p, 1);
    let got = c.recv(&mut Sink::Slice(&mut buf), How::Try, &mut w);
    assert!(matches!(got, Err(Error::Empty)));
    // Resumed into a Vec, which must grow to the whole message.
    push(&mut p, 1);
    assert!(matches!(try_recv(&mut c), Err(Error::Empty)));
    push(&mut p, 1);
    let mut small = [0u8; 100];
    let err = c.recv(&mut Sink::Slice(&mut small), How::Try, &mut w);
    assert!(matches!(err, Err(Error::TooLarge { len: 600, .. })));
    loop {
        push(&mut p, 2);
        match c.recv(&mut Sink::Slice(&mut buf), How::Try, &mut w) {
            Ok(n) => break assert_eq!(n, 600),
            Err(Error::Empty) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(&buf[..600], &msg[..]);
}

/// Receives in place with `Try`: the message's bytes (read from the ring
/// when lent, then given back) and whether they were lent.
fn try_lend(c: &mut Consumer, stash: &mut Vec<u8>) -> Result<(Vec<u8>, bool), Error> {
    let w = &mut Deadline::after(WATCHDOG_MS);
    match c.take(&mut Sink::Lend(stash), How::Try, w)? {
        crate::consumer::Taken::Lent { pos, len } => {
            let bytes = c.ring().contiguous(pos, len).expect("lent in one piece");
            // SAFETY: within the heap ring, which nobody writes meanwhile.
            let got = unsafe { bytes.as_ref() }.to_vec();
            c.give_back();
            Ok((got, true))
        }
        crate::consumer::Taken::Copied(n) => {
            assert_eq!(stash.len() as u64, n);
            Ok((stash.clone(), false))
        }
    }
}

#[test]
fn one_record_messages_are_lent_in_place_across_wraps() {
    let heap = HeapRing::new(256);
    let (mut p, mut c) = (Producer::new(heap.ring()), Consumer::new(heap.ring()));
    let mut w = Deadline::after(WATCHDOG_MS);
    let mut stash = Vec::new();
    for seq in 0..300u64 {
        // Up to a quarter of the ring: one record, which `send` pads
        // rather than wraps.
        let msg = message(seq, (seq * 7 % 65) as usize);
        while let Err(e) = send(&mut p, &msg, How::Try, &mut w) {
            assert!(matches!(e, Error::Full), "{e}");
            assert!(matches!(try_lend(&mut c, &mut stash), Err(Error::Empty)));
        }
        assert_eq!(try_lend(&mut c, &mut stash).unwrap(), (msg, true));
    }
}

#[test]
fn a_lent_message_keeps_its_space_until_given_back() {
    let heap = HeapRing::new(256);
    let (mut p, mut c) = (Producer::new(heap.ring()), Consumer::new(heap.ring()));
    let mut w = Deadline::after(WATCHDOG_MS);
    let mut stash = Vec::new();
    // Three records of 64 bytes fill 240 of the 256 bytes.
    for seq in 0..3 {
        send(&mut p, &message(seq, 64), How::Try, &mut w).unwrap();
    }
    let taken = c
        .take(&mut Sink::Lend(&mut stash), How::Try, &mut w)
        .unwrap();
    let crate::consumer::Taken::Lent { pos, len } = taken else {
        panic!("not lent: {taken:?}");
    };
    // The ring is full while the first message is lent.
    let err = send(&mut p, &message(9, 64), How::Try, &mut w);
    assert!(matches!(err, Err(Error::Full)));
    let bytes = c.ring().contiguous(pos, len).unwrap();
    // SAFETY: within the heap ring; the producer could not reuse it.
    assert_eq!(unsafe { bytes.as_ref() }, &message(0, 64)[..]);
    c.give_back();
    send(&mut p, &message(3, 64), How::Try, &mut w).unwrap();
    // A guard that was never given back is given back by the next receive.
    let _forgotten = c
        .take(&mut Sink::Lend(&mut stash), How::Try, &mut w)
        .unwrap();
    for seq in 2..4 {
        assert_eq!(
            try_lend(&mut c, &mut stash).unwrap(),
            (message(seq, 64), true)
        );
    }
}

#[test]
fn messages_in_rounds_or_wrapped_are_copied_not_lent() {
    let heap = HeapRing::new(256);
    let (mut p, mut c) = (Producer::new(heap.ring()), Consumer::new(heap.ring()));
    let mut w = Deadline::after(WATCHDOG_MS);
    let mut stash = Vec::new();
    // Longer than a quarter of the ring: several records.
    let long = message(1, 150);
    send(&mut p, &long, How::Try, &mut w).unwrap();
    assert_eq!(try_lend(&mut c, &mut stash).unwrap(), (long, false));
    // One record written wrapped round the end (a foreign sender's: ours
    // pads instead). The long message took records of 64, 64 and 22
    // bytes (208 with headers); an empty one takes 16 more, to 224.
    let msg = message(2, 40);
    send(&mut p, &[], How::Try, &mut w).unwrap();
    assert_eq!(try_lend(&mut c, &mut stash).unwrap(), (vec![], true));
    p.test_chunk(&msg, true, msg.len() as u64);
    assert_eq!(try_lend(&mut c, &mut stash).unwrap(), (msg, false));
}

#[test]
fn large_records_go_back_to_the_start_of_an_empty_ring() {
    let cap = 1 << 20;
    let heap = HeapRing::new(cap);
    let (mut p, mut c) = (Producer::new(heap.ring()), Consumer::new(heap.ring()));
    let mut w = Deadline::after(WATCHDOG_MS);
    let mut stash = Vec::new();
    for seq in 0..6u64 {
        // Large: each one reuses the bytes at the start.
        let len = 200 << 10;
        p.loan(len, How::Try, &mut w).unwrap();
        // SAFETY: the loan's bytes, with no other reference to them.
        unsafe { p.loaned(len).as_mut() }.copy_from_slice(&message(seq, len as usize));
        p.commit(len);
        let taken = c
            .take(&mut Sink::Lend(&mut stash), How::Try, &mut w)
            .unwrap();
        let pos = seq * cap as u64 + 16;
        assert_eq!(taken, crate::consumer::Taken::Lent { pos, len });
        c.give_back();
        // Small ones between them walk on as usual.
        send(&mut p, &message(seq, 100), How::Try, &mut w).unwrap();
        assert_eq!(try_recv(&mut c).unwrap(), message(seq, 100));
    }
    // With the ring not empty, a large record goes where the last one
    // ended.
    send(&mut p, &message(9, 10), How::Try, &mut w).unwrap();
    let len = 100 << 10;
    p.loan(len, How::Try, &mut w).unwrap();
    p.commit(len);
    assert_eq!(try_recv(&mut c).unwrap(), message(9, 10));
    let taken = c
        .take(&mut Sink::Lend(&mut stash), How::Try, &mut w)
        .unwrap();
    let crate::consumer::Taken::Lent { pos, .. } = taken else {
        panic!("{taken:?}")
    };
    assert_ne!(pos % cap as u64, 16);
}

/// A message over the limit is refused once and skipped chunk by chunk,
/// also when its chunks arrive across several calls (`Empty` between
/// them); the next message then arrives whole.
#[test]
fn a_message_over_the_limit_is_refused_once_and_skipped() {
    let heap = HeapRing::new(256);
    let (mut p, mut c) = (Producer::new(heap.ring()), Consumer::new(heap.ring()));
    c.set_max_message(100);
    let long = message(1, 300);
    // Chunks of 60 bytes, published one at a time.
    for (i, piece) in long.chunks(60).enumerate() {
        p.test_chunk(piece, i == 0, long.len() as u64);
        let got = try_recv(&mut c);
        if i == 0 {
            assert!(matches!(
                got,
                Err(Error::TooLarge {
                    len: 300,
                    limit: 100
                })
            ));
        } else {
            assert!(matches!(got, Err(Error::Empty)), "{got:?}");
        }
    }
    let next = message(2, 100);
    p.test_chunk(&next, true, next.len() as u64);
    assert_eq!(try_recv(&mut c).unwrap(), next);
    assert!(matches!(try_recv(&mut c), Err(Error::Empty)));
}

/// After a cancelled send, the next `send_step` of a one-record message
/// writes the owed `Abort` first and only then reckons the `Pad`: the
/// `Abort` moves `tail`, so a `Pad` reckoned before it could be one nobody
/// checked room for, and the message would land over records the
/// consumer has not read yet.
#[test]
fn send_step_after_an_abort_never_overwrites_unread_records() {
    let heap = HeapRing::new(256);
    let (mut p, mut c) = (Producer::new(heap.ring()), Consumer::new(heap.ring()));
    let mut w = Deadline::after(WATCHDOG_MS);
    let step = |p: &mut Producer, msg: &[u8], sent: &mut u64| {
        p.send_step(msg.len() as u64, sent, &mut |off, piece: &mut [u8]| {
            piece.copy_from_slice(&msg[off..off + piece.len()])
        })
    };
    let (m1, m2, m3) = (message(1, 16), message(2, 48), message(3, 16));
    for m in [&m1, &m2, &m3] {
        // 0..32, 32..96, 96..128
        send(&mut p, m, How::Try, &mut w).unwrap();
    }
    // A long message (chunks of 64): its first chunk goes (128..208), the
    // second does not fit; the future is dropped: `Step` abandons it.
    let long = message(4, 100);
    let mut sent = 0;
    assert_eq!(step(&mut p, &long, &mut sent).unwrap(), Some(64));
    assert_eq!(sent, 64);
    p.abandon();
    assert_eq!(try_recv(&mut c).unwrap(), m1); // head = 32: 80 bytes free
    // A 32-byte message: record 48 bytes, exactly `to_end`. Room checked:
    // Abort 16 + record 48 = 64 <= 80. Written: Abort 16 + Pad 32 + 48 = 96.
    let short = message(5, 32);
    let mut sent = 0;
    let r = step(&mut p, &short, &mut sent).unwrap();
    // Whatever it said, what was queued must come out intact, in order.
    assert_eq!(
        try_recv(&mut c).unwrap(),
        m2,
        "m2 overwritten (step said {r:?})"
    );
    assert_eq!(try_recv(&mut c).unwrap(), m3);
}

/// After a cancelled send (an `Abort` owed) a loan that does not wait
/// goes step by step (`Abort`, `Pad`, record): each time the room
/// `loan_need` names is free, the next try makes progress, and no step
/// asks for more than the ring. (Asking for all at once could promise room
/// that the `Abort`, moving the tail, then took away.)
#[test]
fn a_loan_after_an_abort_progresses_by_the_room_loan_need_names() {
    let heap = HeapRing::new(256);
    let (mut p, mut c) = (Producer::new(heap.ring()), Consumer::new(heap.ring()));
    let mut w = Deadline::after(WATCHDOG_MS);
    let (m1, m2, m3) = (message(1, 16), message(2, 48), message(3, 16));
    for m in [&m1, &m2, &m3] {
        send(&mut p, m, How::Try, &mut w).unwrap();
    }
    let long = message(4, 100);
    let mut sent = 0;
    let fill =
        &mut |off: usize, piece: &mut [u8]| piece.copy_from_slice(&long[off..off + piece.len()]);
    assert_eq!(p.send_step(100, &mut sent, fill).unwrap(), Some(64));
    p.abandon();
    assert_eq!(try_recv(&mut c).unwrap(), m1);
    let mut steps = 0;
    loop {
        let need = p.loan_need(32);
        assert!(need <= 256, "a step asks for more than the ring: {need}");
        match p.loan(32, How::Try, &mut w) {
            Ok(_) => break,
            Err(Error::Full) => {}
            Err(e) => panic!("loan: {e}"),
        }
        steps += 1;
        assert!(steps <= 3, "no progress");
        // Room for the next step: the receiver takes what is queued.
        if p.arm(p.loan_need(32)).unwrap() {
            let _ = try_recv(&mut c);
        }
    }
    p.commit(32);
    // What was queued comes out intact, in order, then the loan.
    let mut rest = Vec::new();
    while let Ok(m) = try_recv(&mut c) {
        rest.push(m);
    }
    let rest: Vec<_> = rest.into_iter().filter(|m| m != &m1).collect();
    assert!(rest.ends_with(&[vec![0u8; 32]]) || rest.last().map(|m| m.len()) == Some(32));
    assert!(rest.iter().all(|m| m == &m2 || m == &m3 || m.len() == 32));
}
