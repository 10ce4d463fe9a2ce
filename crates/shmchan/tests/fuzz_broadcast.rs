//! A fuzz target (proptest) of a broadcast subscriber's parsing of what a
//! hostile publisher can write: the test builds both objects by hand
//! (`common/raw_broadcast.rs`, as shmchan lays them out), publishes
//! honest messages, then overwrites words of the data header, entry
//! heads, message bytes or the control object, and joins and drives a
//! subscriber with its non-blocking and 1 ms receives.
//!
//! One process, no concurrency (as `fuzz_consumer.rs`): the hostile
//! publisher is the test writing between calls, which is all a publisher
//! can do to this memory; races are `broadcast_hostile.rs`'s.
//!
//! Checked for every case: no panic, no fault, every call returns, and
//! - a join either succeeds or names what is wrong;
//! - every message received is no longer than an entry, and the honest
//!   one where the mutation touched neither its entry nor a header word;
//! - with no mutation, every message is received in order;
//! - after `Corrupt`, every call is the same `Corrupt`.
//!
//! Long run: `PROPTEST_CASES=100000 cargo test --release -p shmchan --test
//! fuzz_broadcast`.

mod common;
#[path = "common/raw_broadcast.rs"]
mod raw;

use std::os::fd::AsFd;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::Config;
use shmchan::Error;

const RING: u64 = 8;
const ENTRY: u64 = 64;

fn message(seq: u64) -> Vec<u8> {
    common::message(seq, 8 + seq as usize % 40)
}

#[derive(Clone, Debug)]
enum Target {
    /// A word of the data header (index into its words).
    DataHeader(usize),
    /// A word of an entry's head: entry, stamp (0) or length (1).
    EntryHead(u64, usize),
    /// A byte of an entry's message.
    Byte(u64, usize),
    /// A word of the control object's header.
    Control(usize),
}

#[derive(Clone, Debug)]
struct Mutation {
    target: Target,
    value: u64,
}

const DATA_WORDS: [(usize, usize); 10] = [
    (raw::D_MAGIC, 8),
    (raw::D_VERSION, 4),
    (raw::D_POLICY, 4),
    (raw::D_RING, 8),
    (raw::D_ENTRY, 8),
    (raw::D_SLOTS, 4),
    (raw::D_CLOSED, 4),
    (raw::D_CONTROL_SIZE, 8),
    (raw::D_DATA_SIZE, 8),
    (raw::D_TAIL, 8),
];
const CONTROL_WORDS: [(usize, usize); 4] = [(0, 8), (8, 4), (12, 4), (raw::C_BELL, 4)];

fn mutation() -> impl Strategy<Value = Mutation> {
    let target = prop_oneof![
        (0..DATA_WORDS.len()).prop_map(Target::DataHeader),
        (0..RING, 0usize..2).prop_map(|(e, w)| Target::EntryHead(e, w)),
        (0..RING, 0usize..(ENTRY as usize - 16)).prop_map(|(e, b)| Target::Byte(e, b)),
        (0..CONTROL_WORDS.len()).prop_map(Target::Control),
    ];
    let value = prop_oneof![
        Just(0u64),
        0u64..64,
        Just(u64::MAX),
        (u64::MAX - 64..=u64::MAX),
        any::<u64>(),
    ];
    (target, value).prop_map(|(target, value)| Mutation { target, value })
}

fn run(published: u64, mutations: &[Mutation], calls: &[u8]) {
    let policy = if published % 2 == 0 {
        raw::POLICY_BLOCK
    } else {
        raw::POLICY_OVERWRITE
    };
    let r = raw::Raw::new(RING, ENTRY, 2, policy);
    for m in 0..published {
        r.publish(m, &message(m));
    }
    // Which entries the mutations touched; a header word touches all.
    let mut touched = [false; RING as usize];
    let mut everything = false;
    for mu in mutations {
        match mu.target {
            Target::DataHeader(i) => {
                let (at, w) = DATA_WORDS[i];
                r.put_data(at, mu.value, w);
                everything = true;
            }
            Target::EntryHead(e, w) => {
                let at = raw::HEADER + (e * ENTRY) as usize + 8 * w;
                r.put_data(at, mu.value, 8);
                touched[e as usize] = true;
            }
            Target::Byte(e, b) => {
                let at = raw::HEADER + (e * ENTRY) as usize + 16 + b;
                r.put_data(at, mu.value, 1);
                touched[e as usize] = true;
            }
            Target::Control(i) => {
                let (at, w) = CONTROL_WORDS[i];
                r.put_ctl(at, mu.value, w);
                everything = true;
            }
        }
    }
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    r.send(a.as_fd());
    let history = published.min(RING - 1);
    let mut sub = match shmchan::broadcast::Options::new()
        .history(history)
        .recv_subscriber(&b)
    {
        Ok(sub) => sub,
        Err(e) => {
            assert!(everything, "an untouched broadcast refused: {e}");
            return;
        }
    };
    let max = sub.max_message();
    let mut buf = vec![0u8; max];
    let mut corrupt: Option<String> = None;
    let mut got_in_order = Vec::new();
    for &c in calls {
        let pos = sub.position();
        let got = match c % 4 {
            0 => sub.try_recv(),
            1 => sub.recv_timeout(Duration::from_millis(1)),
            2 => sub.try_recv_into(&mut buf).map(|n| buf[..n].to_vec()),
            _ => sub.try_recv_in_place().and_then(|m| m.to_vec()),
        };
        if let Some(what) = &corrupt {
            assert!(
                matches!(&got, Err(Error::Corrupt(w)) if w == what),
                "{got:?}"
            );
            continue;
        }
        match got {
            Ok(m) => {
                assert!(m.len() <= max);
                if !everything && !touched[(pos % RING) as usize] {
                    assert_eq!(m, message(pos), "an untouched message changed");
                }
                got_in_order.push(pos);
            }
            Err(Error::Corrupt(what)) => corrupt = Some(what.to_string()),
            Err(Error::Lagged(n)) => assert!(n > 0),
            Err(Error::Empty | Error::Timeout | Error::PeerGone | Error::Closed) => {}
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    if mutations.is_empty() && calls.len() as u64 > history + 1 {
        let start = published - history;
        let want: Vec<u64> = (start..published).collect();
        assert_eq!(got_in_order, want);
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000)
}

proptest! {
    #![proptest_config(Config { cases: cases(), ..Config::default() })]

    #[test]
    fn a_subscriber_survives_any_publisher_memory(
        published in 0u64..30,
        mutations in prop::collection::vec(mutation(), 0..6),
        calls in prop::collection::vec(any::<u8>(), 1..24),
    ) {
        run(published, &mutations, &calls);
    }
}
