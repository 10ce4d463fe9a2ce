//! The typed layer (feature `typed`) between two real processes: structs
//! with a String, a Vec and an enum arrive in order and whole; bytes that
//! do not decode are a `Decode` error, and the channel goes on.

#![cfg(feature = "typed")]

mod common;

use common::{WATCHDOG, child_env, child_role, reap, spawn};
use serde::{Deserialize, Serialize};
use shmchan::{Options, Wait, typed};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Kind {
    Empty,
    Count(u32),
    Point { x: i64, y: i64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    seq: u64,
    name: String,
    data: Vec<u16>,
    kind: Kind,
}

/// Record `seq`: every field depends on `seq`; some are longer than the
/// 4 KiB ring, so they go in rounds and make the receiver's buffer grow.
fn record(seq: u64) -> Record {
    let kind = match seq % 3 {
        0 => Kind::Empty,
        1 => Kind::Count(seq as u32 * 7),
        _ => Kind::Point {
            x: -(seq as i64),
            y: seq as i64 * 3,
        },
    };
    let len = if seq % 50 == 7 {
        5000
    } else {
        seq as usize % 40
    };
    Record {
        seq,
        name: format!("record {seq} é"),
        data: (0..len).map(|i| (i as u64 ^ seq) as u16).collect(),
        kind,
    }
}

const RECORDS: u64 = 400;

/// The child sends records with each of the three send calls, then
/// closes; the parent receives with each of the three receive calls and
/// checks every record, in order, then sees `Closed`.
#[test]
fn typed_stream_between_processes() {
    if child_role().is_some() {
        let tx = Options::new()
            .wait(Wait::Block)
            .open_sender(&child_env("SHMCHAN_NAME"))
            .unwrap();
        let mut tx = typed::Sender::<Record>::from(tx);
        for seq in 0..RECORDS {
            let r = record(seq);
            match seq % 3 {
                0 => tx.send(&r).unwrap(),
                1 => tx.send_timeout(&r, WATCHDOG).unwrap(),
                _ => loop {
                    match tx.try_send(&r) {
                        Ok(()) => break,
                        // Longer than the ring: it never fits at once.
                        Err(typed::Error::Channel(shmchan::Error::TooLarge { .. })) => {
                            break tx.send(&r).unwrap();
                        }
                        Err(typed::Error::Channel(shmchan::Error::Full)) => {
                            std::thread::yield_now()
                        }
                        Err(e) => panic!("{e}"),
                    }
                },
            }
        }
        return;
    }
    let rx = Options::new().capacity(4096).create_receiver().unwrap();
    let name = rx.name().unwrap().to_owned();
    let mut rx = typed::Receiver::<Record>::new(rx);
    let mut child = spawn(
        "typed_stream_between_processes",
        "sender",
        &[("SHMCHAN_NAME", &name)],
        None,
    );
    for seq in 0..RECORDS {
        let got = match seq % 3 {
            0 => rx.recv_timeout(WATCHDOG).unwrap(),
            1 => rx.recv().unwrap(),
            _ => loop {
                match rx.try_recv() {
                    Ok(r) => break r,
                    Err(typed::Error::Channel(shmchan::Error::Empty)) => std::thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            },
        };
        assert_eq!(got, record(seq), "record {seq}");
    }
    assert!(matches!(
        rx.recv_timeout(WATCHDOG),
        Err(typed::Error::Channel(shmchan::Error::Closed))
    ));
    assert!(reap(&mut child).success());
}

/// A value whose `Serialize` fails.
struct Unencodable;

impl Serialize for Unencodable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("refuses"))
    }
}

/// Messages that are not a `Record`: each must be a `Decode` error.
fn garbage() -> Vec<Vec<u8>> {
    let valid = postcard::to_allocvec(&record(3)).unwrap();
    let mut trailing = valid.clone();
    trailing.push(0);
    let mut bad_enum = postcard::to_allocvec(&record(0)).unwrap();
    *bad_enum.last_mut().unwrap() = 9; // `kind`'s variant index
    vec![
        Vec::new(),                            // empty
        valid[..valid.len() - 1].to_vec(),     // truncated
        trailing,                              // a record, then more
        bad_enum,                              // no such variant
        vec![1, 3, 0xff, 0xfe, 0xfd, 0, 0, 0], // invalid UTF-8 in `name`
        vec![
            1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
        ], // bad varint
        {
            // `data` claims 2^60 elements: no huge allocation, just an error.
            let mut m = vec![1, 0];
            m.extend(postcard::to_allocvec(&(1u64 << 60)).unwrap());
            m.extend([1, 2, 3]);
            m
        },
        vec![0xAB; 10_000], // long noise, in rounds
    ]
}

/// The child sends garbage with the byte sender, each piece followed by a
/// valid record through the typed sender over the same channel; the
/// parent gets `Decode` for each piece and every record after it. An
/// unencodable value is `Encode` and sends nothing.
#[test]
fn typed_garbage_is_a_decode_error() {
    if child_role().is_some() {
        let tx = Options::new()
            .open_sender(&child_env("SHMCHAN_NAME"))
            .unwrap();
        let mut tx = typed::Sender::<Record>::new(tx);
        for (i, junk) in garbage().iter().enumerate() {
            let mut bytes = tx.into_inner();
            bytes.send(junk).unwrap();
            tx = typed::Sender::new(bytes);
            tx.send(&record(i as u64)).unwrap();
        }
        let mut odd = typed::Sender::<Unencodable>::new(tx.into_inner());
        assert!(matches!(
            odd.send(&Unencodable),
            Err(typed::Error::Encode(_))
        ));
        let mut tx = typed::Sender::<Record>::new(odd.into_inner());
        tx.send(&record(99)).unwrap();
        return;
    }
    let rx = Options::new().capacity(4096).create_receiver().unwrap();
    let name = rx.name().unwrap().to_owned();
    let mut rx = typed::Receiver::<Record>::new(rx);
    let mut child = spawn(
        "typed_garbage_is_a_decode_error",
        "sender",
        &[("SHMCHAN_NAME", &name)],
        None,
    );
    for i in 0..garbage().len() {
        match rx.recv_timeout(WATCHDOG) {
            Err(typed::Error::Decode(_)) => {}
            other => panic!("garbage {i}: {other:?}"),
        }
        assert_eq!(rx.recv_timeout(WATCHDOG).unwrap(), record(i as u64));
    }
    assert_eq!(rx.recv_timeout(WATCHDOG).unwrap(), record(99));
    assert!(matches!(
        rx.recv_timeout(WATCHDOG),
        Err(typed::Error::Channel(shmchan::Error::Closed))
    ));
    assert!(reap(&mut child).success());
}
