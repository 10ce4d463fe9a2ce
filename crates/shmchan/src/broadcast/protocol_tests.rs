//! A model of the broadcast protocol over the real shared memory, in one
//! process: a real publisher and real subscribers (each its own open file
//! description, its own slot lock), driven by proptest through random
//! schedules of publishes, receives, joins and leaves, and checked against
//! a model of what each must see: every message in order under `Block`
//! (and `Full` exactly when a live subscriber is a ring behind), an exact
//! `Lagged(n)` under `Overwrite`. The tests with real processes are in
//! `tests/broadcast*.rs`.

use proptest::prelude::*;

use super::{Options, Policy, Publisher, Subscriber};
use crate::error::Error;
use crate::sync::Ordering::{Relaxed, Release};

/// Message `seq`: its number, then bytes that depend on it; 8 to 40 bytes.
fn message(seq: u64) -> Vec<u8> {
    let len = 8 + (seq.wrapping_mul(0x9E37_79B9) >> 7) as usize % 33;
    let mut m = seq.to_le_bytes().to_vec();
    m.extend((8..len).map(|i| (seq as usize * 31 + i * 7) as u8));
    m
}

fn join(p: &Publisher, opts: &Options) -> Result<Subscriber, Error> {
    let [c, d] = p.descriptors();
    opts.subscriber_from_fds(c.try_clone_to_owned()?, d.try_clone_to_owned()?)
}

#[derive(Clone, Debug)]
enum Op {
    Publish(u8),
    Read { sub: u8, count: u8, how: u8 },
    Join { history: u8 },
    Leave(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..12).prop_map(Op::Publish),
        4 => (any::<u8>(), 1u8..12, any::<u8>()).prop_map(|(sub, count, how)| Op::Read { sub, count, how }),
        1 => (0u8..12).prop_map(|history| Op::Join { history }),
        1 => any::<u8>().prop_map(Op::Leave),
    ]
}

/// A subscriber and what the model says it reads next.
struct Sub {
    sub: Subscriber,
    next: u64,
}

/// One receive by one of the receive shapes; the message's bytes.
fn receive(sub: &mut Subscriber, how: u8) -> Result<Vec<u8>, Error> {
    match how % 3 {
        0 => sub.try_recv(),
        1 => {
            let mut buf = [0u8; 64];
            let n = sub.try_recv_into(&mut buf)?;
            Ok(buf[..n].to_vec())
        }
        _ => {
            let msg = sub.try_recv_in_place()?;
            assert!(msg.intact(), "nobody writes meanwhile");
            Ok(msg.to_vec().unwrap())
        }
    }
}

fn run(policy: Policy, ring: usize, slots: u32, ops: &[Op]) {
    let mut p = Options::new()
        .capacity(ring)
        .message_size(40)
        .max_subscribers(slots)
        .policy(policy)
        .create_publisher()
        .unwrap();
    let ring = p.capacity() as u64;
    let mut subs: Vec<Sub> = Vec::new();
    for op in ops {
        match *op {
            Op::Publish(k) => {
                for _ in 0..k {
                    let seq = p.published();
                    let blocked =
                        policy == Policy::Block && subs.iter().any(|s| s.next + ring <= seq);
                    match p.try_send(&message(seq)) {
                        Ok(()) => assert!(!blocked, "a publish past a subscriber a ring behind"),
                        Err(Error::Full) => assert!(blocked, "Full with room for everyone"),
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            Op::Read { sub, count, how } => {
                if subs.is_empty() {
                    continue;
                }
                let i = sub as usize % subs.len();
                let s = &mut subs[i];
                for _ in 0..count {
                    let tail = p.published();
                    let got = receive(&mut s.sub, how);
                    if s.next == tail {
                        assert!(matches!(got, Err(Error::Empty)), "{got:?}");
                        continue;
                    }
                    if s.next + ring < tail {
                        assert_eq!(policy, Policy::Overwrite, "a lag under Block");
                        let lost = tail - ring - s.next;
                        assert!(
                            matches!(got, Err(Error::Lagged(n)) if n == lost),
                            "{got:?}, {lost}"
                        );
                        s.next += lost;
                        continue;
                    }
                    assert_eq!(got.unwrap(), message(s.next));
                    s.next += 1;
                    assert_eq!(s.sub.position(), s.next);
                }
            }
            Op::Join { history } => {
                let got = join(&p, &Options::new().history(u64::from(history)));
                let tail = p.published();
                match got {
                    Ok(sub) => {
                        assert!(subs.len() < slots as usize, "a join past the slots");
                        assert!(u64::from(history) < ring);
                        let next = tail - tail.min(u64::from(history));
                        assert_eq!(sub.position(), next);
                        subs.push(Sub { sub, next });
                    }
                    Err(Error::HistoryTooLong { asked, kept }) => {
                        assert_eq!((asked, kept), (u64::from(history), ring - 1));
                    }
                    Err(Error::TooManySubscribers { slots: n }) => {
                        assert_eq!(n, slots);
                        assert_eq!(subs.len(), slots as usize);
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            Op::Leave(i) => {
                if !subs.is_empty() {
                    let i = i as usize % subs.len();
                    subs.remove(i);
                }
            }
        }
        assert_eq!(p.subscribers(), subs.len());
    }
    // The close: everyone gets the rest (or its lag), then `Closed`.
    let tail = p.published();
    drop(p);
    for s in &mut subs {
        loop {
            match s.sub.try_recv() {
                Ok(m) => {
                    assert_eq!(m, message(s.next));
                    s.next += 1;
                }
                Err(Error::Lagged(n)) => s.next += n,
                Err(Error::Closed) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(s.next, tail);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn block_delivers_every_message_in_order(ring in 2usize..9, slots in 1u32..5, ops in prop::collection::vec(op(), 1..80)) {
        run(Policy::Block, ring, slots, &ops);
    }

    #[test]
    fn overwrite_reports_exactly_what_was_lost(ring in 2usize..9, slots in 1u32..5, ops in prop::collection::vec(op(), 1..80)) {
        run(Policy::Overwrite, ring, slots, &ops);
    }
}

/// A cursor forged in shared memory (by a hostile subscriber, here the
/// test) never holds the publisher back, and never makes it write where a
/// live subscriber reads: the forged slot's owner finds itself overrun.
#[test]
fn a_forged_cursor_does_not_hold_the_publisher_back() {
    let mut p = Options::new()
        .capacity(4)
        .message_size(40)
        .create_publisher()
        .unwrap();
    let mut victim = join(&p, &Options::new()).unwrap();
    let slot0 = p.area_for_tests();
    for forged in [u64::MAX, 1 << 40, 17] {
        // Past the publisher's position: impossible, so ignored.
        slot0.slot(0).cursor.store(forged, Release);
        for _ in 0..4 {
            p.try_send(&message(p.published())).unwrap();
        }
    }
    // The victim was never honest about its cursor: it is overrun, and
    // says by how much; nothing is delivered twice or torn.
    let tail = p.published();
    match victim.try_recv() {
        Err(Error::Lagged(n)) => assert_eq!(n, tail - 4),
        other => panic!("{other:?}"),
    }
    for seq in tail - 4..tail {
        assert_eq!(victim.try_recv().unwrap(), message(seq));
    }
    // A cursor below the ring (an impossible old one) holds nothing either.
    slot0.slot(0).cursor.store(0, Release);
    for _ in 0..8 {
        p.try_send(&message(p.published())).unwrap();
    }
    // An honest cursor again: the publisher waits for it.
    drop(victim);
    let mut honest = join(&p, &Options::new()).unwrap();
    for _ in 0..4 {
        p.try_send(&message(p.published())).unwrap();
    }
    assert!(matches!(p.try_send(b"one too many"), Err(Error::Full)));
    assert!(honest.try_recv().is_ok());
    p.try_send(&message(p.published())).unwrap();
    // The slot's `active` word forged to "left": the publisher stops
    // waiting for it, and it is overrun.
    slot0.slot(0).active.fetch_add(1, Relaxed);
    for _ in 0..8 {
        p.try_send(&message(p.published())).unwrap();
    }
    assert!(matches!(honest.try_recv(), Err(Error::Lagged(_))));
}

/// A forgery that would stall a `Block` publisher for good: a caught-up
/// subscriber's cursor set a ring behind. The subscriber undoes it as soon
/// as it looks for a message (and at every look while it waits).
#[test]
fn a_forged_cursor_of_a_waiting_subscriber_is_undone() {
    let mut p = Options::new()
        .capacity(4)
        .message_size(40)
        .create_publisher()
        .unwrap();
    let mut sub = join(&p, &Options::new()).unwrap();
    for _ in 0..4 {
        p.try_send(&message(p.published())).unwrap();
    }
    assert!(matches!(p.try_send(b"held"), Err(Error::Full)));
    for _ in 0..4 {
        assert!(sub.try_recv().is_ok());
    }
    assert!(matches!(sub.try_recv(), Err(Error::Empty)));
    // Caught up, and forged a ring behind: the one cursor that holds the
    // publisher back.
    p.area_for_tests().slot(0).cursor.store(0, Release);
    assert!(matches!(p.try_send(b"held"), Err(Error::Full)));
    // The subscriber looks (and finds nothing): the forgery is undone.
    assert!(matches!(sub.try_recv(), Err(Error::Empty)));
    p.try_send(&message(p.published())).unwrap();
    assert_eq!(sub.try_recv().unwrap(), message(4));
}

/// A loan is written in place and published by its commit; one dropped
/// uncommitted publishes nothing, and its entry is taken again.
#[test]
fn a_loan_is_published_by_its_commit_only() {
    let mut p = Options::new()
        .capacity(2)
        .message_size(40)
        .create_publisher()
        .unwrap();
    let mut sub = join(&p, &Options::new()).unwrap();
    {
        let mut loan = p.loan(5).unwrap();
        loan.copy_from_slice(b"hello");
    } // not committed
    assert!(matches!(sub.try_recv(), Err(Error::Empty)));
    let mut loan = p.try_loan(3).unwrap();
    loan.copy_from_slice(b"abc");
    loan.commit();
    assert_eq!(sub.try_recv().unwrap(), b"abc");
    assert!(matches!(
        p.loan(49),
        Err(Error::TooLarge { len: 49, limit: 48 })
    ));
    p.loan(0).unwrap().commit();
    p.loan(1).unwrap().commit();
    // Block: a ring of 2, the subscriber 2 behind.
    assert!(matches!(p.try_loan(1), Err(Error::Full)));
    assert_eq!(sub.try_recv().unwrap(), b"");
}

/// A subscriber that never reads under `Block`: `send_timeout` gives up
/// with `Timeout` and publishes nothing; a dead one (its lock gone) stops
/// holding the publisher back.
#[test]
fn a_subscriber_that_never_reads_times_the_publisher_out() {
    use std::time::Duration;
    let mut p = Options::new()
        .capacity(2)
        .message_size(40)
        .wait(crate::Wait::Block)
        .create_publisher()
        .unwrap();
    let sub = join(&p, &Options::new()).unwrap();
    p.send(b"a").unwrap();
    p.send(b"b").unwrap();
    let e = p.send_timeout(b"c", Duration::from_millis(30)).unwrap_err();
    assert!(matches!(e, Error::Timeout), "{e}");
    assert_eq!(p.published(), 2);
    // Gone without leaving (as a killed process: its slot stays active,
    // its lock goes with its descriptor).
    sub.vanish();
    // Calls shorter than `PEER_CHECK` find it dead too, in time.
    let end = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match p.send_timeout(b"c", Duration::from_millis(1)) {
            Ok(()) => break,
            Err(Error::Timeout) => assert!(std::time::Instant::now() < end, "never reaped"),
            Err(e) => panic!("{e}"),
        }
    }
}

/// Joining a broadcast with a channel's end, or the reverse: an error
/// that says so.
#[test]
fn a_channel_and_a_broadcast_refuse_each_other() {
    let p = Options::new().create_publisher().unwrap();
    let [c, _] = p.descriptors();
    let e = crate::Options::new()
        .receiver_from_fd(c.try_clone_to_owned().unwrap())
        .unwrap_err();
    assert!(e.to_string().contains("broadcast, not a channel"), "{e}");
    let ch = crate::Options::new().create_anonymous().unwrap();
    let e = Options::new()
        .subscriber_from_fds(ch.try_clone().unwrap(), ch)
        .unwrap_err();
    assert!(e.to_string().contains("channel, not a broadcast"), "{e}");
}

/// A `Block` publisher held back by one slow subscriber among many looks
/// at that subscriber's slot while it waits, not at every slot: its cost
/// per look must not grow with the subscribers (issue 25's goal). Once the
/// slow one reads, or leaves, or its slot is taken by another, the next
/// look scans again and finds the truth.
#[test]
fn a_waiting_publisher_looks_at_its_blocker_only() {
    let mut p = Options::new()
        .capacity(4)
        .message_size(40)
        .max_subscribers(64)
        .create_publisher()
        .unwrap();
    let mut subs: Vec<Subscriber> = (0..64)
        .map(|_| join(&p, &Options::new()).unwrap())
        .collect();
    for seq in 0..4 {
        p.try_send(&message(seq)).unwrap();
    }
    // Every subscriber but the first reads all; the first holds the ring.
    for sub in &mut subs[1..] {
        for seq in 0..4 {
            assert_eq!(sub.try_recv().unwrap(), message(seq));
        }
    }
    let before = p.scans_for_tests();
    for _ in 0..1000 {
        assert!(matches!(p.try_send(b"x"), Err(Error::Full)));
    }
    let scans = p.scans_for_tests() - before;
    // One scan to find the blocker, and perhaps a look at dead slots
    // (once per `PEER_CHECK`); not one per try.
    assert!(scans <= 4, "{scans} scans of 64 slots for 1000 tries");
    // The blocker reads one: room for exactly one more.
    assert_eq!(subs[0].try_recv().unwrap(), message(0));
    p.try_send(&message(4)).unwrap();
    assert!(matches!(p.try_send(b"x"), Err(Error::Full)));
    // The blocker leaves and a new subscriber takes its slot (at the
    // newest message): no room is held back any more.
    drop(subs.remove(0));
    let late = join(&p, &Options::new()).unwrap();
    p.try_send(&message(5)).unwrap();
    drop(late);
    // The others read on: nothing holds the ring back.
    for sub in &mut subs {
        for seq in 4..6 {
            assert_eq!(sub.try_recv().unwrap(), message(seq));
        }
    }
    p.try_send(&message(6)).unwrap();
}

/// A `Block` publisher asleep for room is woken by the subscriber that
/// held it back, not by every other one that reads: each needless wake-up
/// is a system call on the reader's side and a wake, a look and a sleep
/// again on the publisher's, per subscriber (the publish cost must not
/// grow with subscribers). The sleep is played here by marking the
/// publisher's waiter asleep, as `wait_until` does.
#[test]
fn only_the_blocking_subscriber_wakes_a_waiting_publisher() {
    use crate::sync::Ordering::Acquire;
    let mut p = Options::new()
        .capacity(4)
        .message_size(40)
        .max_subscribers(3)
        .create_publisher()
        .unwrap();
    let mut slow = join(&p, &Options::new()).unwrap();
    let mut fast: Vec<Subscriber> = (0..2).map(|_| join(&p, &Options::new()).unwrap()).collect();
    for seq in 0..4 {
        p.try_send(&message(seq)).unwrap();
    }
    // The fast ones are ahead: only the slow one holds the ring.
    for sub in &mut fast {
        for seq in 0..2 {
            assert_eq!(sub.try_recv().unwrap(), message(seq));
        }
    }
    assert!(matches!(p.try_send(b"x"), Err(Error::Full)));
    let area = p.area_for_tests();
    let waiter = &area.control().publisher.0;
    let asleep = |w: &crate::layout::Waiter| {
        let e = w.epoch.load(Relaxed);
        w.epoch.store((e + 1) | 1, Release);
    };
    asleep(waiter);
    let wakes = waiter.wakes.load(Acquire);
    // The fast ones read the rest: the publisher is still held back.
    for sub in &mut fast {
        for seq in 2..4 {
            assert_eq!(sub.try_recv().unwrap(), message(seq));
        }
    }
    assert_eq!(waiter.wakes.load(Acquire), wakes, "woken for nothing");
    // The slow one reads one: now there is room, and it wakes the publisher.
    assert_eq!(slow.try_recv().unwrap(), message(0));
    assert_ne!(waiter.wakes.load(Acquire), wakes, "not woken");
    let wakes = waiter.wakes.load(Acquire);
    // Leaving wakes it too (the slot no longer holds anything back).
    asleep(waiter);
    drop(slow);
    assert_ne!(waiter.wakes.load(Acquire), wakes, "not woken by a leave");
    p.try_send(&message(4)).unwrap();
}
