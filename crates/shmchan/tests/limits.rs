//! Lengths a receiver refuses: a hostile sender that announces a message
//! of gigabytes (and sends nothing, or a little) gets `TooLarge` once,
//! the message is skipped, and the receiver's memory stays small; a
//! length no honest sender can write is `Corrupt`. A `try_send` that can
//! never fit fails at once with `TooLarge`.
//!
//! The receiving side is this process, whose peak memory (`VmHWM`) is
//! checked: the tests in this file allocate little, so that the peak
//! says what the refused messages cost.

mod common;

use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{WATCHDOG, child_env, child_role, reap, signal, spawn, stdin_socket};
use rustix::process::Signal;
use shmchan::{Error, HEADER_SIZE, Options, TrySendError, Wait, typed};

/// Where `tail` sits in the header (see shmchan's layout).
const TAIL: usize = 128;
/// Record kinds as the layout writes them.
const MSG: u32 = 0x5A11_C401;
const ABORT: u32 = 0x5A11_C404;
const GIB: u64 = 1 << 30;
/// A short wait: long enough for the forger to have written, and it is
/// `Timeout` that is expected when nothing more comes.
const SHORT: Duration = Duration::from_millis(200);

/// A record for the forger: kind, payload length, message length, payload.
struct Forged<'a>(u32, u64, &'a [u8]);

/// The forging child: attaches as the sender (so that it counts as alive),
/// maps the segment for itself, writes the records `SHMCHAN_FORGE` names
/// straight into the data area, publishes them, and waits to be killed.
fn forger() {
    let sock = stdin_socket();
    let fd = shmchan::recv_fd(&sock).unwrap();
    let (base, _) = common::map_whole(&fd);
    let _tx = Options::new().sender_from_fd(fd).unwrap();
    let huge = child_env("SHMCHAN_TOTAL").parse::<u64>().unwrap();
    let records: Vec<Forged<'_>> = match child_env("SHMCHAN_FORGE").as_str() {
        // A huge message that never continues.
        "stall" => vec![Forged(MSG, 16, &[7; 16])],
        // A huge message given up at once, then an honest one.
        "abort" => vec![
            Forged(MSG, 16, &[7; 16]),
            Forged(ABORT, 0, &[]),
            Forged(MSG, 5, b"after"),
        ],
        other => panic!("no forgery {other}"),
    };
    let mut at = 0usize;
    for (i, Forged(kind, chunk, payload)) in records.iter().enumerate() {
        let total = if i == 0 { huge } else { *chunk };
        let mut rec = kind.to_le_bytes().to_vec();
        rec.extend((*chunk as u32).to_le_bytes());
        rec.extend(total.to_le_bytes());
        rec.extend(*payload);
        for (k, b) in rec.iter().enumerate() {
            // SAFETY: within the data area (a few dozen bytes of 4 KiB).
            unsafe { base.add(HEADER_SIZE + at + k).write_volatile(*b) };
        }
        at += rec.len().next_multiple_of(16);
    }
    // SAFETY: `tail` is an aligned u64 in the header, which the receiver
    // loads atomically.
    let tail = unsafe { &*base.add(TAIL).cast::<AtomicU64>() };
    // Release: the records above are written before the receiver sees them.
    tail.store(at as u64, Ordering::Release);
    std::thread::sleep(WATCHDOG);
}

/// A channel whose sender is the forging child; returns the receiver's
/// options-made end and the child.
fn forged_channel(test: &str, forge: &str, total: u64) -> (shmchan::Receiver, std::process::Child) {
    let opts = Options::new().capacity(4096).wait(Wait::Block);
    let fd = opts.create_anonymous().unwrap();
    let (ours, theirs) = UnixStream::pair().unwrap();
    shmchan::send_fd(&ours, &fd).unwrap();
    let rx = opts.receiver_from_fd(fd).unwrap();
    let total = total.to_string();
    let env = [("SHMCHAN_FORGE", forge), ("SHMCHAN_TOTAL", total.as_str())];
    let child = spawn(test, "forger", &env, Some(theirs.into()));
    (rx, child)
}

/// This process's peak resident memory, in bytes (`VmHWM`).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

fn end(mut child: std::process::Child) {
    signal(&child, Signal::KILL);
    reap(&mut child);
}

/// 1 GiB announced, 16 bytes sent: `TooLarge` once, then `Timeout` (the
/// rest never comes; the receive does not block past its timeout), and
/// this process's peak memory stays far below the announced length.
#[test]
fn an_announced_gigabyte_is_refused_without_allocating_it() {
    if child_role().is_some() {
        return forger();
    }
    let test = "an_announced_gigabyte_is_refused_without_allocating_it";
    let (mut rx, child) = forged_channel(test, "stall", GIB);
    match rx.recv_timeout(WATCHDOG) {
        Err(Error::TooLarge { len, limit }) => assert!(len == GIB && limit < len),
        other => panic!("{other:?}"),
    }
    assert!(matches!(rx.recv_timeout(SHORT), Err(Error::Timeout)));
    assert!(matches!(rx.try_recv(), Err(Error::Empty)));
    let peak = peak_rss();
    eprintln!("peak resident memory: {} KiB", peak >> 10);
    assert!(peak < GIB / 8, "peak resident memory {peak} bytes");
    end(child);
}

/// The typed receiver over the same forgery: the byte receiver's
/// `TooLarge` (it used to zero-fill a buffer of the announced length
/// first), then `Timeout`, and a small peak memory.
#[test]
fn a_typed_receiver_refuses_an_announced_gigabyte() {
    if child_role().is_some() {
        return forger();
    }
    let test = "a_typed_receiver_refuses_an_announced_gigabyte";
    let (rx, child) = forged_channel(test, "stall", GIB);
    let mut rx = typed::Receiver::<Vec<u8>>::new(rx);
    match rx.recv_timeout(WATCHDOG) {
        Err(typed::Error::Channel(Error::TooLarge { len, .. })) => assert_eq!(len, GIB),
        other => panic!("{other:?}"),
    }
    match rx.recv_timeout(SHORT) {
        Err(typed::Error::Channel(Error::Timeout)) => {}
        other => panic!("{other:?}"),
    }
    let peak = peak_rss();
    eprintln!("peak resident memory: {} KiB", peak >> 10);
    assert!(peak < GIB / 8, "peak resident memory {peak} bytes");
    end(child);
}

/// 4 GiB announced, then given up (`Abort`), then a message of 5 bytes:
/// `TooLarge` once, then the next message.
#[test]
fn a_refused_message_is_skipped() {
    if child_role().is_some() {
        return forger();
    }
    let (mut rx, child) = forged_channel("a_refused_message_is_skipped", "abort", 4 * GIB);
    match rx.recv_timeout(WATCHDOG) {
        Err(Error::TooLarge { len, .. }) => assert_eq!(len, 4 * GIB),
        other => panic!("{other:?}"),
    }
    assert_eq!(rx.recv_timeout(WATCHDOG).unwrap(), b"after");
    let peak = peak_rss();
    eprintln!("peak resident memory: {} KiB", peak >> 10);
    assert!(peak < GIB / 8, "peak resident memory {peak} bytes");
    end(child);
}

/// A length no buffer can hold (beyond `isize::MAX`) is corruption: the
/// channel stays broken.
#[test]
fn a_length_beyond_any_buffer_is_corrupt() {
    if child_role().is_some() {
        return forger();
    }
    let test = "a_length_beyond_any_buffer_is_corrupt";
    let (mut rx, child) = forged_channel(test, "stall", u64::MAX - 15);
    assert!(matches!(rx.recv_timeout(WATCHDOG), Err(Error::Corrupt(_))));
    assert!(matches!(rx.try_recv(), Err(Error::Corrupt(_))));
    end(child);
}

/// An honest sender's message longer than the receiver's `max_message`:
/// `TooLarge` once (its chunks are dropped as they arrive, without
/// allocating), then the next message, with every receive.
#[test]
fn an_honest_message_over_the_limit_is_skipped() {
    const LIMIT: usize = 64 << 10;
    if child_role().is_some() {
        let sock = stdin_socket();
        let fd = shmchan::recv_fd(&sock).unwrap();
        let mut tx = Options::new().sender_from_fd(fd).unwrap();
        for round in 0..3u8 {
            tx.send(&vec![round; LIMIT * 4]).unwrap();
            tx.send(&[round; 3]).unwrap();
        }
        return;
    }
    let opts = Options::new().capacity(4096).max_message(LIMIT);
    let fd = opts.create_anonymous().unwrap();
    let (ours, theirs) = UnixStream::pair().unwrap();
    shmchan::send_fd(&ours, &fd).unwrap();
    let mut rx = opts.receiver_from_fd(fd).unwrap();
    assert_eq!(rx.max_message(), LIMIT);
    let mut child = spawn(
        "an_honest_message_over_the_limit_is_skipped",
        "sender",
        &[],
        Some(theirs.into()),
    );
    let too_large = |r: Result<usize, Error>| match r {
        Err(Error::TooLarge { len, limit }) => {
            assert_eq!((len, limit), (LIMIT as u64 * 4, LIMIT as u64))
        }
        other => panic!("{other:?}"),
    };
    // Into a Vec, in place, into a buffer (longer than the message: the
    // limit holds there too).
    too_large(rx.recv_timeout(WATCHDOG).map(|v| v.len()));
    assert_eq!(rx.recv_timeout(WATCHDOG).unwrap(), [0; 3]);
    too_large(rx.recv_in_place_timeout(WATCHDOG).map(|m| m.len()));
    assert_eq!(&*rx.recv_in_place_timeout(WATCHDOG).unwrap(), [1; 3]);
    let mut buf = vec![0u8; LIMIT * 8];
    too_large(rx.recv_into_timeout(&mut buf, WATCHDOG));
    assert_eq!(rx.recv_into_timeout(&mut buf, WATCHDOG).unwrap(), 3);
    assert_eq!(buf[..3], [2; 3]);
    assert!(matches!(rx.recv_timeout(WATCHDOG), Err(Error::Closed)));
    assert!(reap(&mut child).success());
}

/// The default limit: at least 64 MiB, and never below what one loan of
/// the ring can carry.
#[test]
fn the_default_limit_admits_every_loan() {
    let opts = Options::new();
    let fd = opts.create_anonymous().unwrap();
    let rx = opts.receiver_from_fd(fd).unwrap();
    assert_eq!(rx.max_message(), shmchan::DEFAULT_MAX_MESSAGE);
    let opts = Options::new().capacity(256 << 20);
    let fd = opts.create_anonymous().unwrap();
    let rx = opts.receiver_from_fd(fd).unwrap();
    assert_eq!(rx.max_message(), rx.capacity());
}

/// A message that can never fit whole in the ring fails `try_send` at
/// once with `TooLarge` (it used to be `Full` for ever); one byte less
/// fits an empty ring. A loan beyond `max_loan` is `TooLarge` too. (One
/// process holds both ends: the receiver takes no part.)
#[test]
fn a_try_send_that_can_never_fit_is_too_large() {
    let opts = Options::new().capacity(4096);
    let fd = opts.create_anonymous().unwrap();
    let mut tx = opts.sender_from_fd(fd.try_clone().unwrap()).unwrap();
    let mut rx = opts.receiver_from_fd(fd).unwrap();
    let max = tx.max_try_send();
    assert!(max < tx.capacity() && max > tx.capacity() / 2);
    match tx.try_send(vec![1u8; max + 1]) {
        Err(TrySendError::Failed(Error::TooLarge { len, limit }, msg)) => {
            assert_eq!((len, limit), (max as u64 + 1, max as u64));
            assert_eq!(msg.len(), max + 1);
        }
        other => panic!("{other:?}"),
    }
    tx.try_send(vec![2u8; max]).unwrap();
    assert_eq!(rx.try_recv().unwrap(), vec![2u8; max]);
    // Also when the ring is not at its start.
    tx.try_send(&b"x"[..]).unwrap();
    assert_eq!(rx.try_recv().unwrap(), b"x");
    tx.try_send(vec![3u8; max]).unwrap();
    assert_eq!(rx.try_recv().unwrap(), vec![3u8; max]);
    let limit = tx.max_loan();
    for loan in [
        tx.try_loan(limit + 1).map(drop),
        tx.loan(limit + 1).map(drop),
    ] {
        assert!(matches!(loan, Err(Error::TooLarge { .. })), "{loan:?}");
    }
}
