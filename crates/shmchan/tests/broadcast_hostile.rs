//! Hostile peers of a broadcast, as real processes.
//!
//! - A hostile subscriber: the kernel refuses it every way to write the
//!   data object (a writable mapping, `mprotect`, `write`, `ftruncate`),
//!   and what it can write (the control object: every slot, the bell, the
//!   join counter, the publisher's waiter) stalls nobody for longer than
//!   it keeps writing and fools nobody: the honest subscriber gets the
//!   messages in order, with exact lag counts if its slot was forged.
//! - A hostile publisher (objects built by hand, scribbled while the
//!   subscriber reads): every receive is a message no longer than an entry
//!   or an error, never a panic or a hang.

mod common;
#[path = "common/raw_broadcast.rs"]
mod raw;

use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::{Noise, WATCHDOG, child_env, child_role, reap, spawn, stdin_socket};
use shmchan::Error;
use shmchan::broadcast::{Options, Policy};

fn message(seq: u64) -> Vec<u8> {
    common::message(seq, 8 + seq as usize % 50)
}

/// Reads the byte a child writes when it is ready.
fn ready(sock: &UnixStream) {
    sock.set_read_timeout(Some(WATCHDOG)).unwrap();
    let mut b = [0u8; 1];
    std::io::Read::read_exact(&mut &*sock, &mut b).expect("watchdog: the child never got ready");
}

fn tell(sock: &UnixStream) {
    std::io::Write::write_all(&mut &*sock, b"r").unwrap();
}

/// The hostile subscriber child: tries to write the data object every
/// way (each must fail), then scribbles the control object for a while.
fn hostile_subscriber() {
    use rustix::mm::{MprotectFlags, mprotect};
    let sock = stdin_socket();
    let (text, fds) = raw::recv_raw(sock.as_fd());
    assert_eq!(text, raw::HELLO);
    let [control, data]: [std::os::fd::OwnedFd; 2] = fds.try_into().unwrap();
    let size = rustix::fs::fstat(&data).unwrap().st_size as usize;
    // A writable mapping: refused (F_SEAL_FUTURE_WRITE).
    assert!(
        raw::map(&data, size, true).is_err(),
        "a writable mapping of the data"
    );
    // A read-only one, then made writable: refused.
    let p = raw::map(&data, size, false).unwrap();
    // SAFETY: our own mapping; the call only changes its protection.
    let r = unsafe { mprotect(p.cast(), size, MprotectFlags::READ | MprotectFlags::WRITE) };
    assert!(r.is_err(), "mprotect made the data writable");
    // `write` and `ftruncate`: refused.
    assert!(
        rustix::io::pwrite(&data, b"x", 0).is_err(),
        "write to the data"
    );
    assert!(
        rustix::fs::ftruncate(&data, 0).is_err(),
        "shrinking the data"
    );
    let csize = rustix::fs::fstat(&control).unwrap().st_size as usize;
    assert!(
        rustix::fs::ftruncate(&control, 0).is_err(),
        "shrinking the control"
    );
    // The control object is ours to scribble: every word of it.
    let ctl = raw::map(&control, csize, true).unwrap();
    tell(&sock);
    let mut noise = Noise(child_env("SEED").parse().unwrap());
    let end = Instant::now() + Duration::from_millis(300);
    while Instant::now() < end {
        let at = match noise.below(4) {
            0 => raw::C_BELL,
            1 => raw::C_JOINS,
            2 => raw::C_WAITER + 4 * noise.below(3) as usize,
            _ => raw::HEADER + raw::SLOT * noise.below(4) as usize + 8 * noise.below(2) as usize,
        };
        let value = match noise.below(4) {
            0 => 0,
            1 => noise.below(64),
            2 => u64::MAX,
            _ => noise.next(),
        };
        // SAFETY: within the control mapping; volatile, as the others
        // read it concurrently.
        unsafe { ctl.add(at).cast::<u32>().write_volatile(value as u32) };
        if noise.below(16) == 0 {
            std::thread::sleep(Duration::from_micros(noise.below(500)));
        }
    }
    // The forgery that would stall a `Block` publisher for good: the
    // honest subscriber's cursor (slot 0) set a ring behind the tail, the
    // one value that holds the publisher back, while that subscriber has
    // caught up and waits.
    let tail_at = p.wrapping_add(raw::D_TAIL).cast::<u64>();
    let end = Instant::now() + Duration::from_millis(100);
    while Instant::now() < end {
        // SAFETY: within both mappings; volatile, as the others write them.
        unsafe {
            let tail = tail_at.read_volatile();
            ctl.add(raw::HEADER + 8)
                .cast::<u64>()
                .write_volatile(tail.saturating_sub(8));
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// The honest subscriber child: messages in order, lags counted exactly,
/// then `Closed`.
fn honest_subscriber() {
    let sock = stdin_socket();
    let mut sub = Options::new().recv_subscriber(&sock).unwrap();
    tell(&sock);
    let mut next = 0u64;
    loop {
        match sub.recv_timeout(WATCHDOG) {
            Ok(m) => {
                assert_eq!(m, message(next), "a wrong message");
                next += 1;
            }
            Err(Error::Lagged(n)) => next += n,
            Err(Error::Closed) => break,
            Err(e) => panic!("honest subscriber: {e}"),
        }
    }
    // Received and lost add up to this: the parent checks it.
    std::io::Write::write_all(&mut &sock, &next.to_le_bytes()).unwrap();
}

#[test]
fn a_hostile_subscriber_cannot_write_the_data_nor_stall_or_fool_the_others() {
    const TEST: &str = "a_hostile_subscriber_cannot_write_the_data_nor_stall_or_fool_the_others";
    match child_role().as_deref() {
        Some("hostile") => return hostile_subscriber(),
        Some(_) => return honest_subscriber(),
        None => {}
    }
    let mut noise = Noise::seeded();
    let mut p = Options::new()
        .capacity(8)
        .message_size(64)
        .max_subscribers(4)
        .policy(Policy::Block)
        .create_publisher()
        .unwrap();
    let (h1, t1) = UnixStream::pair().unwrap();
    let mut honest = spawn(TEST, "honest", &[], Some(t1.into()));
    p.send_to(&h1).unwrap();
    ready(&h1);
    let (h2, t2) = UnixStream::pair().unwrap();
    let seed = (noise.next() | 1).to_string();
    let mut hostile = spawn(TEST, "hostile", &[("SEED", &seed)], Some(t2.into()));
    p.send_to(&h2).unwrap();
    ready(&h2);
    let end = Instant::now() + WATCHDOG;
    let (mut seq, mut after, mut timeouts) = (0u64, 0, 0);
    // Publish while the hostile subscriber writes, and 2000 messages more.
    while after < 2000 {
        if after > 0 || hostile.try_wait().unwrap().is_some() {
            after += 1;
        }
        // A forged slot may hold a send back while the forger writes;
        // never past the timeout, and never for good.
        loop {
            assert!(Instant::now() < end, "watchdog: the publisher is stalled");
            match p.send_timeout(&message(seq), Duration::from_millis(50)) {
                Ok(()) => break,
                Err(Error::Timeout) => timeouts += 1,
                Err(e) => panic!("publisher: {e}"),
            }
        }
        seq += 1;
    }
    drop(p);
    eprintln!("{seq} messages; {timeouts} sends timed out while the hostile subscriber wrote");
    assert!(
        reap(&mut hostile).success(),
        "the kernel let the hostile subscriber write the data"
    );
    let mut total = [0u8; 8];
    std::io::Read::read_exact(&mut &h1, &mut total).expect("the honest subscriber's count");
    assert_eq!(
        u64::from_le_bytes(total),
        seq,
        "received and lost do not add up"
    );
    assert!(
        reap(&mut honest).success(),
        "the honest subscriber was fooled"
    );
}

/// The hostile publisher child: builds a broadcast by hand, publishes
/// honest messages, and scribbles both objects at random in between.
fn hostile_publisher() {
    let sock = stdin_socket();
    let mut noise = Noise(child_env("SEED").parse().unwrap());
    let (ring, entry) = (8u64, 128u64);
    let policy = if noise.below(2) == 0 {
        raw::POLICY_BLOCK
    } else {
        raw::POLICY_OVERWRITE
    };
    let r = raw::Raw::new(ring, entry, 2, policy);
    r.send(sock.as_fd());
    let end = Instant::now() + Duration::from_millis(200);
    let mut m = 0;
    while Instant::now() < end {
        if noise.below(4) != 0 {
            r.publish(m, &message(m));
            m += 1;
            continue;
        }
        let value = match noise.below(4) {
            0 => 0,
            1 => m + noise.below(3 * ring),
            2 => u64::MAX - noise.below(3),
            _ => noise.next(),
        };
        match noise.below(4) {
            0 => r.put_data(raw::D_TAIL, value, 8),
            1 => {
                let e = raw::HEADER + (noise.below(ring) * entry) as usize;
                r.put_data(e + 8 * noise.below(2) as usize, value, 8);
            }
            2 => r.put_data(8 * noise.below(8) as usize, value, 8),
            _ => {
                let at = raw::HEADER + noise.below(ring * entry) as usize;
                r.put_data(at, value, 1);
            }
        }
    }
}

#[test]
fn a_hostile_publisher_is_met_with_messages_or_errors() {
    const TEST: &str = "a_hostile_publisher_is_met_with_messages_or_errors";
    if child_role().is_some() {
        return hostile_publisher();
    }
    let mut noise = Noise::seeded();
    let mut outcomes = std::collections::BTreeMap::<String, u32>::new();
    for _ in 0..20 {
        let (here, there) = UnixStream::pair().unwrap();
        let seed = (noise.next() | 1).to_string();
        let mut child = spawn(TEST, "publisher", &[("SEED", &seed)], Some(there.into()));
        let mut sub = match Options::new().recv_subscriber(&here) {
            Ok(sub) => sub,
            Err(e) => {
                // Scribbled before we looked: refused, with a reason.
                *outcomes.entry(format!("join: {e}")).or_default() += 1;
                reap(&mut child);
                continue;
            }
        };
        let max = sub.max_message();
        let mut buf = vec![0u8; max];
        let end = Instant::now() + WATCHDOG;
        let mut corrupt = None;
        loop {
            assert!(Instant::now() < end, "watchdog: receives never ended");
            let got = match noise.below(4) {
                0 => sub.try_recv(),
                1 => sub.recv_timeout(Duration::from_millis(2)),
                2 => sub
                    .recv_into_timeout(&mut buf, Duration::from_millis(2))
                    .map(|n| buf[..n].to_vec()),
                _ => sub
                    .recv_in_place_timeout(Duration::from_millis(2))
                    .and_then(|m| m.to_vec()),
            };
            if let Some(what) = &corrupt {
                // Broken stays broken.
                assert!(
                    matches!(&got, Err(Error::Corrupt(w)) if w == what),
                    "{got:?}"
                );
                break;
            }
            match got {
                Ok(ref m) => assert!(m.len() <= max),
                Err(Error::Corrupt(what)) => corrupt = Some(what.to_string()),
                Err(Error::PeerGone | Error::Closed) => break,
                Err(Error::Lagged(n)) => assert!(n > 0),
                Err(Error::Empty | Error::Timeout) => {}
                Err(e) => panic!("an error a hostile publisher should not cause: {e}"),
            }
            let key = match &got {
                Ok(_) => "message".to_string(),
                Err(Error::Lagged(_)) => "lagged".to_string(),
                Err(e) => format!("{e}"),
            };
            *outcomes.entry(key).or_default() += 1;
        }
        reap(&mut child);
    }
    eprintln!("{outcomes:#?}");
}
