//! Two real processes: a stream by name with each waiting policy, and a
//! ping-pong without names, over descriptors passed on a Unix socket.

mod common;

use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::{
    WATCHDOG, check_message, child_env, child_role, in_dev_shm, length, message, reap, spawn,
    stdin_socket,
};
use shmchan::{Error, Options, Wait};

const MESSAGES: u64 = 3000;

/// The child sends `MESSAGES` numbered messages, a tenth of them longer
/// than the 4 KiB ring, then closes; the parent checks every one, in
/// order, then sees `Closed`. The name is gone once both are attached.
fn stream_by_name(test: &str, wait: Wait) {
    if child_role().is_some() {
        let opts = Options::new().wait(wait);
        let mut tx = opts.open_sender(&child_env("SHMCHAN_NAME")).unwrap();
        for seq in 0..MESSAGES {
            let msg = message(seq, length(seq));
            match seq % 3 {
                0 => tx.send(&msg).unwrap(),
                1 => tx.send_timeout(msg, WATCHDOG).unwrap(),
                _ => tx
                    .send_with(msg.len(), |off, piece| {
                        piece.copy_from_slice(&msg[off..off + piece.len()])
                    })
                    .unwrap(),
            }
        }
        return;
    }
    let opts = Options::new().capacity(4096).wait(wait);
    let mut rx = opts.create_receiver().unwrap();
    let name = rx.name().unwrap().to_owned();
    assert!(name.starts_with(shmchan::NAME_PREFIX) && in_dev_shm(&name));
    let mut child = spawn(test, "sender", &[("SHMCHAN_NAME", &name)], None);
    let mut buf = vec![0u8; 32 << 10];
    for seq in 0..MESSAGES {
        let got = if seq % 2 == 0 {
            rx.recv_timeout(WATCHDOG).unwrap()
        } else {
            let n = rx.recv_into_timeout(&mut buf, WATCHDOG).unwrap();
            buf[..n].to_vec()
        };
        check_message(&got, seq, length(seq));
        if seq == 0 {
            assert!(!in_dev_shm(&name), "the opener removes the name");
        }
    }
    assert!(matches!(rx.recv_timeout(WATCHDOG), Err(Error::Closed)));
    assert!(reap(&mut child).success());
    assert!(rx.chunks() > MESSAGES, "long messages went in rounds");
}

#[test]
fn stream_by_name_adaptive() {
    stream_by_name("stream_by_name_adaptive", Wait::default());
}

#[test]
fn stream_by_name_block() {
    stream_by_name("stream_by_name_block", Wait::Block);
}

#[test]
fn stream_by_name_spin() {
    stream_by_name("stream_by_name_spin", Wait::Spin);
}

const ROUND_TRIPS: u64 = 500;

/// The parent makes two anonymous segments and passes them over a socket;
/// the child echoes every request. The parent sends with loans and reads
/// into its own buffer; the child receives into a reused Vec.
#[test]
fn pingpong_over_passed_descriptors() {
    if child_role().is_some() {
        let sock = stdin_socket();
        let opts = Options::new().wait(Wait::Block);
        let mut rx = opts
            .receiver_from_fd(shmchan::recv_fd(&sock).unwrap())
            .unwrap();
        let mut tx = opts
            .sender_from_fd(shmchan::recv_fd(&sock).unwrap())
            .unwrap();
        let mut v = Vec::new();
        loop {
            match rx.recv_vec(&mut v, Some(WATCHDOG)) {
                Ok(_) => tx.send(&v).unwrap(),
                Err(Error::Closed) => return,
                Err(e) => panic!("{e}"),
            }
        }
    }
    let opts = Options::new()
        .capacity(8192)
        .wait(Wait::Adaptive { spin: 100 });
    let (to_child, from_child) = (
        opts.create_anonymous().unwrap(),
        opts.create_anonymous().unwrap(),
    );
    let (ours, theirs) = UnixStream::pair().unwrap();
    shmchan::send_fd(&ours, &to_child).unwrap();
    shmchan::send_fd(&ours, &from_child).unwrap();
    let mut tx = opts.sender_from_fd(to_child).unwrap();
    let mut rx = opts.receiver_from_fd(from_child).unwrap();
    assert!(tx.name().is_none());
    let mut child = spawn(
        "pingpong_over_passed_descriptors",
        "echo",
        &[],
        Some(theirs.into()),
    );
    let mut buf = vec![0u8; 8192];
    for seq in 0..ROUND_TRIPS {
        let len = length(seq) % tx.max_loan();
        let msg = message(seq, len);
        let mut loan = tx.loan(msg.len()).unwrap();
        loan.copy_from_slice(&msg);
        loan.commit();
        let n = rx.recv_into_timeout(&mut buf, WATCHDOG).unwrap();
        check_message(&buf[..n], seq, len);
    }
    drop(tx);
    assert!(reap(&mut child).success());
    assert!(matches!(rx.recv_timeout(WATCHDOG), Err(Error::Closed)));
}

/// A message longer than the buffer stays queued; a larger buffer takes
/// it. Zero-length messages exist.
#[test]
fn recv_into_too_small_keeps_the_message() {
    if child_role().is_some() {
        let mut tx = Options::new()
            .open_sender(&child_env("SHMCHAN_NAME"))
            .unwrap();
        tx.send(&[]).unwrap();
        tx.send(&message(1, 10_000)).unwrap();
        return;
    }
    let mut rx = Options::new().capacity(4096).create_receiver().unwrap();
    let name = rx.name().unwrap().to_owned();
    let mut child = spawn(
        "recv_into_too_small_keeps_the_message",
        "sender",
        &[("SHMCHAN_NAME", &name)],
        None,
    );
    let mut small = [0u8; 100];
    assert_eq!(rx.recv_into_timeout(&mut small, WATCHDOG).unwrap(), 0);
    match rx.recv_into_timeout(&mut small, WATCHDOG) {
        Err(Error::TooLarge {
            len: 10_000,
            limit: 100,
        }) => {}
        other => panic!("{other:?}"),
    }
    let mut big = vec![0u8; 10_000];
    assert_eq!(rx.recv_into_timeout(&mut big, WATCHDOG).unwrap(), 10_000);
    check_message(&big, 1, 10_000);
    assert!(reap(&mut child).success());
    assert!(matches!(
        rx.recv_timeout(Duration::from_secs(5)),
        Err(Error::Closed)
    ));
}

/// Prints the CPU an idle receiver uses while a live sender says nothing
/// for a second, for each policy (a figure for the notes, not an
/// assertion): `cargo test -p shmchan --release --test two_process idle --
/// --ignored --nocapture`.
#[test]
#[ignore = "prints a measurement"]
fn idle_receiver_cpu() {
    if child_role().is_some() {
        let _tx = Options::new()
            .open_sender(&child_env("SHMCHAN_NAME"))
            .unwrap();
        std::thread::sleep(Duration::from_secs(30));
        return;
    }
    use rustix::time::{ClockId, clock_gettime};
    let cpu = || {
        let t = clock_gettime(ClockId::ThreadCPUTime);
        t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
    };
    for wait in [Wait::Spin, Wait::Block, Wait::default()] {
        let mut rx = Options::new().wait(wait).create_receiver().unwrap();
        let name = rx.name().unwrap().to_owned();
        let mut child = spawn(
            "idle_receiver_cpu",
            "sender",
            &[("SHMCHAN_NAME", &name)],
            None,
        );
        while in_dev_shm(&name) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let (c0, t0) = (cpu(), std::time::Instant::now());
        assert!(matches!(
            rx.recv_timeout(Duration::from_secs(1)),
            Err(Error::Timeout)
        ));
        let (c, t) = (cpu() - c0, t0.elapsed().as_secs_f64());
        eprintln!(
            "{wait:?}: idle receiver used {:.3} % of a CPU",
            100.0 * c / t
        );
        let _ = child.kill();
        reap(&mut child);
    }
}
