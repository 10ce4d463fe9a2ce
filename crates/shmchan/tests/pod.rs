//! The plain-old-data ends (feature `pod`) between two processes: values
//! written in place by one, read in place by the other; a message that is
//! not one value is an error, and the next value arrives as usual.

mod common;

use std::os::unix::net::UnixStream;

use bytemuck::{Pod, Zeroable};
use common::{WATCHDOG, child_role, reap, spawn, stdin_socket};
use shmchan::{Error, Options, Wait, pod};

#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C, align(16))]
struct Sample {
    seq: u64,
    value: f64,
    samples: [u32; 12],
}

fn sample(seq: u64) -> Sample {
    Sample {
        seq,
        value: seq as f64 * 0.5,
        samples: std::array::from_fn(|i| (seq as u32).wrapping_mul(31) ^ i as u32),
    }
}

const VALUES: u64 = 2000;

#[test]
fn values_travel_in_place_and_a_wrong_size_is_an_error() {
    if child_role().is_some() {
        let sock = stdin_socket();
        let opts = Options::new().wait(Wait::Adaptive { spin: 100 });
        let fd = shmchan::recv_fd(&sock).unwrap();
        let mut tx = pod::Sender::<Sample>::new(opts.sender_from_fd(fd).unwrap());
        for seq in 0..VALUES {
            if seq == VALUES / 2 {
                // Not one Sample: the receiver must say so and go on.
                let mut bytes = tx.into_inner();
                bytes.send(&[1, 2, 3]).unwrap();
                tx = pod::Sender::new(bytes);
            }
            if seq % 2 == 0 {
                let mut loan = tx.loan().unwrap();
                *loan = sample(seq);
                loan.commit();
            } else {
                tx.send(&sample(seq)).unwrap();
            }
        }
        return;
    }
    let opts = Options::new()
        .capacity(4096)
        .wait(Wait::Adaptive { spin: 100 });
    let fd = opts.create_anonymous().unwrap();
    let (ours, theirs) = UnixStream::pair().unwrap();
    shmchan::send_fd(&ours, &fd).unwrap();
    let mut rx = pod::Receiver::<Sample>::new(opts.receiver_from_fd(fd).unwrap());
    let test = "values_travel_in_place_and_a_wrong_size_is_an_error";
    let mut child = spawn(test, "sender", &[], Some(theirs.into()));
    for seq in 0..VALUES {
        if seq == VALUES / 2 {
            let err = rx.recv_timeout(WATCHDOG).unwrap_err();
            assert!(
                matches!(
                    err,
                    pod::Error::Mismatch {
                        len: 3,
                        expected: 64,
                        misaligned: false
                    }
                ),
                "{err}"
            );
        }
        let got = rx.recv_timeout(WATCHDOG).unwrap();
        assert_eq!(*got, sample(seq));
    }
    let end = rx.recv_timeout(WATCHDOG).unwrap_err();
    assert!(matches!(end, pod::Error::Channel(Error::Closed)), "{end}");
    assert!(reap(&mut child).success());
}
