//! Dead peers of a broadcast, between real processes: subscribers and
//! publishers killed with SIGKILL at random moments, many rounds. Nothing
//! is lost (under `Block`, a live subscriber gets every message), nothing
//! hangs (every wait has a watchdog), and nothing is left in `/dev/shm`.

mod common;

use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::{Noise, WATCHDOG, child_env, child_role, reap, signal, spawn, stdin_socket};
use rustix::process::Signal;
use shmchan::broadcast::{Options, Policy};
use shmchan::{Error, Wait};

/// Rounds of each kill test (a few seconds each).
const ROUNDS: u32 = 200;

fn message(seq: u64) -> Vec<u8> {
    common::message(seq, 8 + seq as usize % 57)
}

fn number(got: &[u8]) -> u64 {
    let seq = u64::from_le_bytes(got[..8].try_into().unwrap());
    assert!(got == message(seq), "content of message {seq}");
    seq
}

fn dev_shm() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Waits (with the watchdog) for the child's byte that says it joined.
fn joined(sock: &UnixStream) {
    sock.set_read_timeout(Some(WATCHDOG)).unwrap();
    let mut b = [0u8; 1];
    std::io::Read::read_exact(&mut &*sock, &mut b).expect("watchdog: the child never joined");
}

/// A subscriber child: `steady` receives everything until `Closed` and
/// checks it; `victim` receives at a random pace (or not at all) until it
/// is killed.
fn subscriber_child(role: &str) {
    let sock = stdin_socket();
    let mut sub = Options::new().recv_subscriber(&sock).unwrap();
    // Joined: tell the parent.
    std::io::Write::write_all(&mut &sock, b"j").unwrap();
    if role == "steady" {
        let total: u64 = child_env("TOTAL").parse().unwrap();
        let mut next = sub.position();
        loop {
            match sub.recv_timeout(WATCHDOG) {
                Ok(m) => {
                    assert_eq!(number(&m), next, "lost, reordered or twice");
                    next += 1;
                }
                Err(Error::Closed) => break,
                Err(e) => panic!("steady: {e}"),
            }
        }
        assert_eq!(next, total);
        return;
    }
    let mut noise = Noise(child_env("SEED").parse().unwrap());
    let reads = noise.below(3) != 0;
    loop {
        if reads {
            let m = sub.recv_timeout(WATCHDOG).unwrap();
            number(&m);
            if noise.below(8) == 0 {
                std::thread::sleep(Duration::from_micros(noise.below(300)));
            }
        } else {
            std::thread::sleep(WATCHDOG);
        }
    }
}

/// A `Block` publisher with a steady subscriber and a victim: each round
/// the victim joins, reads or not, and is killed at a random moment; the
/// publisher goes on (the victim stops holding it back within
/// `PEER_CHECK`), and the steady subscriber gets every message.
#[test]
fn killed_subscribers_stop_holding_the_publisher_back() {
    const TEST: &str = "killed_subscribers_stop_holding_the_publisher_back";
    if let Some(role) = child_role() {
        return subscriber_child(&role);
    }
    let before = dev_shm();
    let mut noise = Noise::seeded();
    let mut p = Options::new()
        .capacity(8)
        .message_size(64)
        .max_subscribers(3)
        .policy(Policy::Block)
        .wait(Wait::default())
        .create_publisher()
        .unwrap();
    // Every round publishes 24 messages.
    let total = u64::from(ROUNDS) * 24;
    let (here, there) = UnixStream::pair().unwrap();
    let total_s = total.to_string();
    let mut steady = spawn(TEST, "steady", &[("TOTAL", &total_s)], Some(there.into()));
    p.send_to(&here).unwrap();
    joined(&here);
    let mut seq = 0u64;
    for _ in 0..ROUNDS {
        let (here, there) = UnixStream::pair().unwrap();
        let seed = (noise.next() | 1).to_string();
        let mut victim = spawn(TEST, "victim", &[("SEED", &seed)], Some(there.into()));
        p.send_to(&here).unwrap();
        joined(&here);
        // The kill comes from another thread at a random moment: the
        // victim may be holding the publisher back right then.
        let pid = victim.id();
        let delay = Duration::from_micros(noise.below(3000));
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
            rustix::process::kill_process(pid, Signal::KILL).unwrap();
        });
        for _ in 0..24 {
            // A watchdog, not a bound: a dead victim must not hold us.
            p.send_timeout(&message(seq), WATCHDOG).unwrap();
            seq += 1;
        }
        killer.join().unwrap();
        assert!(!reap(&mut victim).success());
    }
    drop(p);
    assert!(reap(&mut steady).success(), "the steady subscriber failed");
    assert_eq!(dev_shm(), before, "left in /dev/shm");
}

/// The publisher child: publishes numbered messages for ever to the
/// subscribers it passed its descriptors to.
fn publisher_child() {
    let sock = stdin_socket();
    let policy = match child_env("POLICY").as_str() {
        "block" => Policy::Block,
        _ => Policy::Overwrite,
    };
    let mut p = Options::new()
        .capacity(8)
        .message_size(64)
        .policy(policy)
        .create_publisher()
        .unwrap();
    let n: usize = child_env("SUBSCRIBERS").parse().unwrap();
    for _ in 0..n {
        p.send_to(&sock).unwrap();
    }
    while p.subscribers() < n {
        std::thread::sleep(Duration::from_micros(100));
    }
    for seq in 0.. {
        p.send(&message(seq)).unwrap();
    }
}

/// A publisher killed at a random moment: each of its subscribers gets
/// what it published, in order (under `Block`, all of it), then
/// `PeerGone`, never a hang or a torn message.
fn killed_publisher(test: &str, policy: &str) {
    if child_role().is_some() {
        return publisher_child();
    }
    let before = dev_shm();
    let mut noise = Noise::seeded();
    for _ in 0..ROUNDS / 2 {
        let (here, there) = UnixStream::pair().unwrap();
        let mut child = spawn(
            test,
            "publisher",
            &[("POLICY", policy), ("SUBSCRIBERS", "2")],
            Some(there.into()),
        );
        let mut subs = [
            Options::new().recv_subscriber(&here).unwrap(),
            Options::new().recv_subscriber(&here).unwrap(),
        ];
        let mut next = [0u64; 2];
        let mut gone = [false; 2];
        let kill_at = noise.below(64);
        let mut received = 0;
        let end = std::time::Instant::now() + WATCHDOG;
        while gone != [true, true] {
            assert!(std::time::Instant::now() < end, "watchdog: no PeerGone");
            if received == kill_at {
                signal(&child, Signal::KILL);
            }
            let i = noise.below(2) as usize;
            if gone[i] {
                continue;
            }
            // One thread reads both: a wait on one would hold a `Block`
            // publisher that waits for the other.
            match subs[i].recv_timeout(Duration::from_millis(1)) {
                Ok(m) => {
                    assert_eq!(number(&m), next[i], "reordered or twice");
                    next[i] += 1;
                    received += 1;
                }
                Err(Error::Lagged(n)) => {
                    assert_eq!(policy, "overwrite", "a lag under Block");
                    next[i] += n;
                }
                Err(Error::Timeout) => {}
                Err(Error::PeerGone) => gone[i] = true,
                Err(e) => panic!("subscriber: {e}"),
            }
        }
        assert!(received >= kill_at);
        assert!(!reap(&mut child).success());
        for sub in &mut subs {
            assert!(matches!(sub.try_recv(), Err(Error::PeerGone)));
        }
    }
    assert_eq!(dev_shm(), before, "left in /dev/shm");
}

#[test]
fn a_killed_block_publisher_is_peer_gone_after_every_message() {
    killed_publisher(
        "a_killed_block_publisher_is_peer_gone_after_every_message",
        "block",
    );
}

#[test]
fn a_killed_overwrite_publisher_is_peer_gone() {
    killed_publisher("a_killed_overwrite_publisher_is_peer_gone", "overwrite");
}
