//! Dead and stopped peers: `kill -9` at random points, `SIGSTOP`.

mod common;

use std::time::Duration;

use common::{
    Noise, WATCHDOG, check_message, child_env, child_role, in_dev_shm, length, message, reap,
    signal, spawn,
};
use rustix::process::Signal;
use shmchan::{Error, Options, SendTimeoutError, TrySendError, Wait};

/// The sender child: numbered messages for ever (a tenth longer than the
/// ring, so that a kill often lands in the middle of one).
fn send_for_ever(wait: Wait) {
    let mut tx = Options::new()
        .wait(wait)
        .open_sender(&child_env("SHMCHAN_NAME"))
        .unwrap();
    for seq in 0.. {
        tx.send(&message(seq, length(seq))).unwrap();
    }
}

/// Kills the sender with SIGKILL after a random number of messages; the
/// receiver gets whole messages, in order, then `PeerGone`, never a hang
/// (every wait has a watchdog) and never a half message. The name is gone.
fn killed_sender(test: &str, wait: Wait, rounds: u32) {
    if child_role().is_some() {
        return send_for_ever(wait);
    }
    let mut noise = Noise::seeded();
    for _ in 0..rounds {
        let mut rx = Options::new()
            .capacity(4096)
            .wait(wait)
            .create_receiver()
            .unwrap();
        let name = rx.name().unwrap().to_owned();
        let mut child = spawn(test, "sender", &[("SHMCHAN_NAME", &name)], None);
        // A peer that dies before it attached is not a peer: wait for it.
        wait_until_attached(&name);
        let kill_at = noise.below(300);
        let mut seq = 0;
        let end = loop {
            if seq == kill_at {
                // Let it run a little further, then kill it wherever it is.
                std::thread::sleep(Duration::from_micros(noise.below(500)));
                signal(&child, Signal::KILL);
            }
            match rx.recv_timeout(WATCHDOG) {
                Ok(got) => check_message(&got, seq, length(seq)),
                Err(e) => break e,
            }
            seq += 1;
        };
        assert!(matches!(end, Error::PeerGone), "{end}");
        assert!(seq >= kill_at, "messages sent before the kill arrive");
        assert!(!reap(&mut child).success());
        assert!(!in_dev_shm(&name), "{name} left behind");
        // Still gone on the next call.
        assert!(matches!(rx.try_recv(), Err(Error::PeerGone)));
    }
}

/// The opener removes the name once it is attached.
fn wait_until_attached(name: &str) {
    let end = std::time::Instant::now() + WATCHDOG;
    while in_dev_shm(name) {
        assert!(
            std::time::Instant::now() < end,
            "watchdog: the peer never attached"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn killed_sender_block() {
    killed_sender("killed_sender_block", Wait::Block, 4);
}

#[test]
fn killed_sender_spin() {
    killed_sender("killed_sender_spin", Wait::Spin, 2);
}

#[test]
fn killed_sender_adaptive() {
    killed_sender("killed_sender_adaptive", Wait::default(), 2);
}

/// Long version: `cargo test -p shmchan --release --test crash -- --ignored`.
#[test]
#[ignore = "long: 200 kills"]
fn killed_sender_many_times() {
    killed_sender("killed_sender_many_times", Wait::default(), 200);
}

/// A receiver that attaches and never reads, killed while the sender waits
/// for room: the sender's blocked call fails with `PeerGone`.
#[test]
fn killed_receiver_fails_a_blocked_send() {
    if child_role().is_some() {
        let rx = Options::new()
            .open_receiver(&child_env("SHMCHAN_NAME"))
            .unwrap();
        std::thread::sleep(WATCHDOG);
        drop(rx);
        return;
    }
    let mut tx = Options::new()
        .capacity(4096)
        .wait(Wait::Block)
        .create_sender()
        .unwrap();
    let name = tx.name().unwrap().to_owned();
    let mut child = spawn(
        "killed_receiver_fails_a_blocked_send",
        "receiver",
        &[("SHMCHAN_NAME", &name)],
        None,
    );
    // Fill the ring (the receiver may attach at any point meanwhile).
    while tx.try_send(&[7u8; 100][..]).is_ok() {}
    wait_until_attached(&name);
    signal(&child, Signal::KILL);
    match tx.send_timeout(vec![1u8; 100], WATCHDOG) {
        Err(SendTimeoutError::Failed(Error::PeerGone, msg)) => assert_eq!(msg.len(), 100),
        other => panic!("{other:?}"),
    }
    reap(&mut child);
}

/// A stopped sender holds its lock: `recv_timeout` returns `Timeout` (also
/// in the middle of a long message), and after SIGKILL `PeerGone`.
#[test]
fn stopped_sender_times_out_then_killed_is_gone() {
    if child_role().is_some() {
        let mut tx = Options::new()
            .open_sender(&child_env("SHMCHAN_NAME"))
            .unwrap();
        for seq in 0.. {
            // Long messages: the stop likely lands in the middle of one.
            tx.send(&message(seq, 20_000)).unwrap();
        }
        return;
    }
    let mut rx = Options::new()
        .capacity(4096)
        .wait(Wait::Block)
        .create_receiver()
        .unwrap();
    let name = rx.name().unwrap().to_owned();
    let mut child = spawn(
        "stopped_sender_times_out_then_killed_is_gone",
        "sender",
        &[("SHMCHAN_NAME", &name)],
        None,
    );
    wait_until_attached(&name);
    let mut seq = 0;
    for _ in 0..5 {
        check_message(&rx.recv_timeout(WATCHDOG).unwrap(), seq, 20_000);
        seq += 1;
    }
    signal(&child, Signal::STOP);
    // Whatever had arrived whole, then nothing: the peer lives but is silent.
    let timed_out = loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(got) => check_message(&got, seq, 20_000),
            Err(e) => break e,
        }
        seq += 1;
        assert!(seq < 10_000, "a stopped sender kept sending");
    };
    assert!(matches!(timed_out, Error::Timeout), "{timed_out}");
    signal(&child, Signal::CONT);
    check_message(&rx.recv_timeout(WATCHDOG).unwrap(), seq, 20_000);
    signal(&child, Signal::KILL);
    loop {
        match rx.recv_timeout(WATCHDOG) {
            Ok(got) => {
                seq += 1;
                check_message(&got, seq, 20_000);
            }
            Err(e) => {
                assert!(matches!(e, Error::PeerGone), "{e}");
                break;
            }
        }
    }
    reap(&mut child);
}

/// Whether process `pid` is stopped (state `T` in `/proc/PID/stat`).
fn stopped(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the command name, which is in parentheses.
    stat.rsplit_once(") ")
        .is_some_and(|(_, rest)| rest.starts_with('T'))
}

/// Messages the poll tests' sender sends before it stops itself.
const POLLED: u64 = 20;

/// A sender killed after it sent `POLLED` messages: a receiver that only
/// polls (`try_recv`, `try_recv_in_place`) gets every one of them, then
/// `PeerGone`, not `Empty` for ever.
#[test]
fn killed_sender_is_seen_by_a_polling_receiver() {
    if child_role().is_some() {
        let mut tx = Options::new()
            .open_sender(&child_env("SHMCHAN_NAME"))
            .unwrap();
        for seq in 0..POLLED {
            tx.send(&message(seq, 40)).unwrap();
        }
        // Stop here, holding the end: the parent kills us when it sees it.
        rustix::process::kill_process(rustix::process::getpid(), Signal::STOP).unwrap();
        std::thread::sleep(WATCHDOG);
        return;
    }
    for in_place in [false, true] {
        let mut rx = Options::new().capacity(4096).create_receiver().unwrap();
        let name = rx.name().unwrap().to_owned();
        let mut child = spawn(
            "killed_sender_is_seen_by_a_polling_receiver",
            "sender",
            &[("SHMCHAN_NAME", &name)],
            None,
        );
        let end = std::time::Instant::now() + WATCHDOG;
        while !stopped(child.id()) {
            assert!(std::time::Instant::now() < end, "watchdog: never stopped");
            std::thread::sleep(Duration::from_millis(1));
        }
        signal(&child, Signal::KILL);
        assert!(!reap(&mut child).success());
        let mut seq = 0;
        let last = loop {
            let got = match in_place {
                false => rx.try_recv(),
                true => rx.try_recv_in_place().map(|m| m.to_vec()),
            };
            match got {
                Ok(got) => {
                    check_message(&got, seq, 40);
                    seq += 1;
                }
                Err(Error::Empty) => {
                    assert!(std::time::Instant::now() < end, "watchdog: Empty for ever");
                    std::thread::yield_now();
                }
                Err(e) => break e,
            }
        };
        assert!(matches!(last, Error::PeerGone), "{last}");
        assert_eq!(seq, POLLED, "every message sent arrives first");
        assert!(matches!(rx.try_recv(), Err(Error::PeerGone)));
    }
}

/// A receiver that never reads, killed: a sender that only polls
/// (`try_send`, `try_loan`) gets `PeerGone`, not `Full` for ever.
#[test]
fn killed_receiver_is_seen_by_a_polling_sender() {
    if child_role().is_some() {
        let rx = Options::new()
            .open_receiver(&child_env("SHMCHAN_NAME"))
            .unwrap();
        std::thread::sleep(WATCHDOG);
        drop(rx);
        return;
    }
    for loan in [false, true] {
        let mut tx = Options::new().capacity(4096).create_sender().unwrap();
        let name = tx.name().unwrap().to_owned();
        let mut child = spawn(
            "killed_receiver_is_seen_by_a_polling_sender",
            "receiver",
            &[("SHMCHAN_NAME", &name)],
            None,
        );
        wait_until_attached(&name);
        signal(&child, Signal::KILL);
        assert!(!reap(&mut child).success());
        let end = std::time::Instant::now() + WATCHDOG;
        let last = loop {
            let sent = match loan {
                false => tx.try_send(&[7u8; 100][..]).map_err(|e| match e {
                    TrySendError::Full(_) => Error::Full,
                    TrySendError::Failed(e, _) => e,
                }),
                true => tx.try_loan(100).map(|l| l.commit()),
            };
            match sent {
                Ok(()) => {}
                Err(Error::Full) => {
                    assert!(std::time::Instant::now() < end, "watchdog: Full for ever");
                    std::thread::yield_now();
                }
                Err(e) => break e,
            }
        };
        assert!(matches!(last, Error::PeerGone), "{last}");
    }
}
