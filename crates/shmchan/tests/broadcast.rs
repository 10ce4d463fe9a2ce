//! A broadcast between real processes: the test binary runs itself again
//! as subscribers (or as the publisher), which join by the descriptors
//! passed on their standard input (a Unix socket).
//!
//! - `Block`: every subscriber receives every message, in order, whatever
//!   its (random) pace; the publisher waits for the slowest.
//! - `Overwrite`: a slow subscriber's receives are messages in order and
//!   `Lagged(n)` counts that add up exactly to what it missed.
//! - Joining through a rendezvous, a late joiner's history, and the bad
//!   inputs (too many subscribers, too long a history, garbage on the
//!   socket).

mod common;

use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::{Noise, WATCHDOG, child_env, child_role, reap, spawn, stdin_socket};
use shmchan::broadcast::{Options, Policy, Publisher};
use shmchan::{Error, Wait};

/// Message `seq`: its number, then bytes that depend on it; 8 to 200 bytes.
pub fn message(seq: u64) -> Vec<u8> {
    common::message(seq, 8 + (seq.wrapping_mul(0x9E37_79B9) >> 9) as usize % 193)
}

/// Checks a received message; returns its number.
fn number(got: &[u8]) -> u64 {
    assert!(got.len() >= 8, "a message of {} bytes", got.len());
    let seq = u64::from_le_bytes(got[..8].try_into().unwrap());
    assert!(got == message(seq), "content of message {seq}");
    seq
}

/// The subscriber child: joins by the descriptors on stdin, receives until
/// `Closed` with random pauses (seeded by `SEED`), and checks order (and,
/// under `Overwrite`, that the lags add up). Exits non-zero on any fault.
fn subscriber_child() {
    let sock = stdin_socket();
    let wait = match child_env("WAIT").as_str() {
        "spin" => Wait::Spin,
        "block" => Wait::Block,
        _ => Wait::default(),
    };
    let mut sub = Options::new().wait(wait).recv_subscriber(&sock).unwrap();
    let total: u64 = child_env("TOTAL").parse().unwrap();
    let mut noise = Noise(child_env("SEED").parse().unwrap());
    let (mut next, mut lost) = (0u64, 0u64);
    let mut buf = vec![0u8; sub.max_message()];
    loop {
        if noise.below(64) == 0 {
            std::thread::sleep(Duration::from_micros(noise.below(2000)));
        }
        let got = match noise.below(3) {
            0 => sub.recv_timeout(WATCHDOG).map(|m| number(&m)),
            1 => sub
                .recv_into_timeout(&mut buf, WATCHDOG)
                .map(|n| number(&buf[..n])),
            _ => sub
                .recv_in_place_timeout(WATCHDOG)
                .and_then(|m| m.to_vec())
                .map(|m| number(&m)),
        };
        match got {
            Ok(seq) => {
                assert_eq!(seq, next, "out of order, or twice");
                next += 1;
            }
            Err(Error::Lagged(n)) => {
                assert_eq!(sub.policy(), Policy::Overwrite, "a lag under Block");
                assert!(n > 0);
                next += n;
                lost += n;
            }
            Err(Error::Closed) => break,
            Err(e) => panic!("subscriber: {e}"),
        }
    }
    assert_eq!(next, total, "received and lost add up to what was sent");
    eprintln!("subscriber: {} received, {lost} lost", total - lost);
}

/// Starts `n` subscriber children of `test`, each with the descriptors of
/// `publisher`, and waits until they all took their slots.
fn subscribers(
    test: &str,
    publisher: &Publisher,
    n: usize,
    total: u64,
    wait: &str,
    noise: &mut Noise,
) -> Vec<std::process::Child> {
    let children: Vec<_> = (0..n)
        .map(|_| {
            let (here, there) = UnixStream::pair().unwrap();
            let seed = (noise.next() | 1).to_string();
            let env = [
                ("TOTAL", total.to_string()),
                ("SEED", seed),
                ("WAIT", wait.to_string()),
            ];
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let child = spawn(test, "subscriber", &env, Some(there.into()));
            publisher.send_to(&here).unwrap();
            child
        })
        .collect();
    let end = Instant::now() + WATCHDOG;
    while publisher.subscribers() < n {
        assert!(
            Instant::now() < end,
            "watchdog: the subscribers never joined"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    children
}

fn fan_out(test: &str, policy: Policy, wait: &str, children: usize, total: u64) {
    if child_role().is_some() {
        return subscriber_child();
    }
    let mut noise = Noise::seeded();
    let mut p = Options::new()
        .capacity(16)
        .message_size(200)
        .policy(policy)
        .create_publisher()
        .unwrap();
    let mut kids = subscribers(test, &p, children, total, wait, &mut noise);
    for seq in 0..total {
        if policy == Policy::Overwrite && noise.below(512) == 0 {
            std::thread::sleep(Duration::from_micros(noise.below(500)));
        }
        p.send_timeout(&message(seq), WATCHDOG).unwrap();
    }
    drop(p); // Closed, after every message
    for kid in &mut kids {
        assert!(reap(kid).success(), "a subscriber failed");
    }
}

#[test]
fn block_every_subscriber_gets_every_message_in_order() {
    fan_out(
        "block_every_subscriber_gets_every_message_in_order",
        Policy::Block,
        "adaptive",
        3,
        20_000,
    );
}

#[test]
fn block_with_sleeping_subscribers() {
    fan_out(
        "block_with_sleeping_subscribers",
        Policy::Block,
        "block",
        2,
        5_000,
    );
}

#[test]
fn overwrite_lags_add_up_exactly() {
    fan_out(
        "overwrite_lags_add_up_exactly",
        Policy::Overwrite,
        "adaptive",
        3,
        50_000,
    );
}

#[test]
fn overwrite_with_spinning_subscribers() {
    fan_out(
        "overwrite_with_spinning_subscribers",
        Policy::Overwrite,
        "spin",
        1,
        50_000,
    );
}

/// A subscriber that joins through the rendezvous after messages went out
/// starts `history` messages back, then gets the rest.
#[test]
fn a_late_joiner_through_the_rendezvous_gets_its_history() {
    if child_role().is_some() {
        let mut sub = Options::new()
            .history(5)
            .subscribe_abstract(child_env("NAME"))
            .unwrap();
        assert_eq!(sub.position(), 15);
        for seq in 15..40 {
            assert_eq!(number(&sub.recv_timeout(WATCHDOG).unwrap()), seq);
        }
        assert!(matches!(sub.recv_timeout(WATCHDOG), Err(Error::Closed)));
        return;
    }
    let name = format!("shmchan-test-late-{}", std::process::id());
    let mut p = Options::new()
        .capacity(8)
        .message_size(200)
        .create_publisher()
        .unwrap();
    let listener = shmchan::broadcast::Listener::bind_abstract(&p, &name).unwrap();
    for seq in 0..20 {
        p.send(&message(seq)).unwrap(); // nobody subscribed: nothing waits
    }
    let mut child = spawn(
        "a_late_joiner_through_the_rendezvous_gets_its_history",
        "late",
        &[("NAME", &name)],
        None,
    );
    let peer = listener.accept().unwrap();
    assert_eq!(peer.uid, rustix::process::geteuid().as_raw());
    // It joined at 20 - 5 = 15, so 15 is held: Block waits for it.
    let end = Instant::now() + WATCHDOG;
    while p.subscribers() == 0 {
        assert!(Instant::now() < end, "watchdog: no join");
        std::thread::sleep(Duration::from_millis(1));
    }
    for seq in 20..40 {
        p.send_timeout(&message(seq), WATCHDOG).unwrap();
    }
    drop(p);
    assert!(reap(&mut child).success());
}

/// The bad inputs of joining: each an error that says what is wrong.
#[test]
fn bad_joins_are_refused_with_a_reason() {
    let p = Options::new()
        .capacity(8)
        .max_subscribers(2)
        .create_publisher()
        .unwrap();
    let join = |opts: &Options| {
        let (a, b) = UnixStream::pair().unwrap();
        p.send_to(&a).unwrap();
        opts.recv_subscriber(&b)
    };
    let e = join(&Options::new().history(8)).unwrap_err();
    assert!(
        matches!(e, Error::HistoryTooLong { asked: 8, kept: 7 }),
        "{e}"
    );
    let _a = join(&Options::new().history(7)).unwrap();
    let _b = join(&Options::new()).unwrap();
    let e = join(&Options::new()).unwrap_err();
    assert!(matches!(e, Error::TooManySubscribers { slots: 2 }), "{e}");
    assert!(e.to_string().contains("all 2 subscriber slots"), "{e}");
    // Something else on the socket: a channel's descriptor.
    let (a, b) = UnixStream::pair().unwrap();
    let ch = shmchan::Options::new().create_anonymous().unwrap();
    shmchan::send_fd(&a, &ch).unwrap();
    let e = Options::new().recv_subscriber(&b).unwrap_err();
    assert!(matches!(e, Error::Handshake(_)), "{e}");
    // Sizes past the limits.
    let e = Options::new()
        .capacity(1 << 20)
        .message_size(1 << 20)
        .create_publisher()
        .unwrap_err();
    assert!(matches!(e, Error::BadLayout(_)), "{e}");
    let e = Options::new()
        .max_subscribers(0)
        .create_publisher()
        .unwrap_err();
    assert!(e.to_string().contains("subscriber slots"), "{e}");
    // A message longer than an entry.
    let mut p = Options::new().message_size(100).create_publisher().unwrap();
    let e = p.send(&[0; 200]).unwrap_err();
    assert!(matches!(e, Error::TooLarge { len: 200, .. }), "{e}");
}
