//! A hostile peer: a second process that writes random bytes over the whole
//! segment (header, indices, waiter words, records) while it also sends or
//! receives. The honest side's calls return messages or errors: never a
//! panic, never a hang past their timeout, never a fault (which would kill
//! the test process). The receiving side takes turns with its three ways
//! to receive: into a new Vec, into its buffer, and in place.

mod common;

use std::time::{Duration, Instant};

use common::{Noise, child_env, child_role, message, reap, spawn, stdin_socket};
use shmchan::{Error, Options, Wait};

/// Scribbling operations per round of the hostile child.
const SCRIBBLES: u64 = 4000;
const ROUNDS: u64 = 12;
const CALL: Duration = Duration::from_millis(20);
/// Where the data area, `tail` and `head` sit (see shmchan's layout).
const HEADER: u64 = 4096;
const TAIL: u64 = 128;
const HEAD: u64 = 256;

/// The hostile child: attaches as `role`, maps the segment a second time
/// for itself, and mixes honest calls with random writes anywhere in it.
fn scribbler(role: &str) {
    let sock = stdin_socket();
    let fd = shmchan::recv_fd(&sock).unwrap();
    let (base, size) = common::map_whole(&fd);
    let opts = Options::new().wait(Wait::Block);
    let (mut tx, mut rx) = match role {
        "sender" => (Some(opts.sender_from_fd(fd).unwrap()), None),
        _ => (None, Some(opts.receiver_from_fd(fd).unwrap())),
    };
    let mut noise = Noise(child_env("SHMCHAN_SEED").parse().unwrap());
    let mode = noise.below(3);
    let rarity = 1 + noise.below(64);
    for i in 0..SCRIBBLES {
        if let Some(tx) = &mut tx {
            let _ = tx.try_send(message(i, noise.below(3000) as usize));
        }
        if let Some(rx) = &mut rx {
            let _ = rx.try_recv();
        }
        if noise.below(rarity) != 0 {
            continue;
        }
        let (at, bytes) = match mode {
            // Anywhere, the header included.
            0 => (noise.below(size as u64), noise.next().to_le_bytes()),
            // Records only: the indices stay sane, the contents do not.
            1 => (
                HEADER + noise.below((size - HEADER as usize) as u64),
                noise.next().to_le_bytes(),
            ),
            // Plausible indices: the other side's, moved by a few records.
            _ => {
                let at = [TAIL, HEAD][noise.below(2) as usize];
                // SAFETY: an aligned u64 within the mapping.
                let now = unsafe { base.add(at as usize).cast::<u64>().read_volatile() };
                let moved = now.wrapping_add(noise.below(9).wrapping_sub(4).wrapping_mul(16));
                (at, moved.to_le_bytes())
            }
        };
        for (k, byte) in bytes.iter().enumerate() {
            let off = (at as usize + k) % size;
            // SAFETY: within the mapping; racing with the other process is
            // the point of this test.
            unsafe { base.add(off).write_volatile(*byte) };
        }
        if noise.below(50) == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// One round: a fresh channel, a hostile child, calls until the channel
/// is broken, closed or gone. Returns how many calls gave a message.
fn round(
    test: &str,
    child_role: &str,
    seed: u64,
    call: &mut dyn FnMut(&mut Ends) -> Result<(), Error>,
) -> u64 {
    let opts = Options::new()
        .capacity(4096)
        .wait(Wait::Adaptive { spin: 50 });
    let fd = opts.create_anonymous().unwrap();
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    shmchan::send_fd(&ours, &fd).unwrap();
    let mut ends = match child_role {
        "sender" => Ends::Rx(opts.receiver_from_fd(fd).unwrap()),
        _ => Ends::Tx(opts.sender_from_fd(fd).unwrap()),
    };
    let seed = seed.to_string();
    let mut child = spawn(
        test,
        child_role,
        &[("SHMCHAN_SEED", &seed)],
        Some(theirs.into()),
    );
    let (mut ok, mut ended, mut other) = (0, 0, 0);
    let mut last = String::new();
    let mut last_other = String::new();
    let start = Instant::now();
    // Each call is bounded by CALL (and by a few checks of the clock); the
    // whole round by the child's end.
    while ended < 3 {
        let t = Instant::now();
        match call(&mut ends) {
            Ok(()) => ok += 1,
            // A message longer than the buffer stays queued: each call
            // says so at once.
            Err(
                e @ (Error::Corrupt(_) | Error::Closed | Error::PeerGone | Error::TooLarge { .. }),
            ) => {
                ended += 1;
                last = e.to_string();
            }
            Err(e) => {
                other += 1;
                last_other = e.to_string();
            }
        }
        assert!(t.elapsed() < CALL * 50, "a call took {:?}", t.elapsed());
        assert!(
            start.elapsed() < common::WATCHDOG,
            "watchdog: {ok} done, {other} other errors (last: {last_other}), {ended} ends"
        );
    }
    drop(ends);
    reap(&mut child);
    eprintln!("round: {ok} calls done, {other} other errors, ended by: {last}");
    ok
}

enum Ends {
    Tx(shmchan::Sender),
    Rx(shmchan::Receiver),
}

fn scribbling_sender(test: &str, rounds: u64) {
    if let Some(role) = child_role() {
        return scribbler(&role);
    }
    let mut noise = Noise::seeded();
    let mut buf = vec![0u8; 2048];
    for r in 0..rounds {
        let recv = &mut |ends: &mut Ends| match ends {
            Ends::Rx(rx) if r % 3 == 0 => rx.recv_timeout(CALL).map(drop),
            Ends::Rx(rx) if r % 3 == 1 => rx.recv_into_timeout(&mut buf, CALL).map(drop),
            // In place: every byte of the lent message is read (what the
            // scribbler writes meanwhile may change them, but the guard
            // never reaches outside the message or the mapping).
            Ends::Rx(rx) => rx.recv_in_place_timeout(CALL).map(|m| {
                let sum = m.iter().fold(0u8, |a, b| a.wrapping_add(*b));
                std::hint::black_box((sum, m.in_place()));
            }),
            Ends::Tx(_) => unreachable!(),
        };
        round(test, "sender", noise.next(), recv);
    }
}

fn scribbling_receiver(test: &str, rounds: u64) {
    if let Some(role) = child_role() {
        return scribbler(&role);
    }
    let mut noise = Noise::seeded();
    for r in 0..rounds {
        let len = noise.below(6000) as usize;
        let send = &mut |ends: &mut Ends| match ends {
            Ends::Tx(tx) if r % 2 == 0 => {
                tx.send_timeout(message(r, len), CALL).map_err(|e| match e {
                    shmchan::SendTimeoutError::Timeout(_) => Error::Timeout,
                    shmchan::SendTimeoutError::Failed(e, _) => e,
                })
            }
            Ends::Tx(tx) => match tx.try_loan(len % tx.max_loan()) {
                Ok(loan) => {
                    loan.commit();
                    Ok(())
                }
                Err(e) => Err(e),
            },
            Ends::Rx(_) => unreachable!(),
        };
        round(test, "receiver", noise.next(), send);
    }
}

#[test]
fn a_scribbling_sender_cannot_crash_the_receiver() {
    scribbling_sender("a_scribbling_sender_cannot_crash_the_receiver", ROUNDS);
}

#[test]
fn a_scribbling_receiver_cannot_crash_the_sender() {
    scribbling_receiver("a_scribbling_receiver_cannot_crash_the_sender", ROUNDS);
}

/// Long version: `cargo test -p shmchan --release --test hostile -- --ignored`.
#[test]
#[ignore = "long: 500 hostile rounds each way"]
fn hostile_senders_many_rounds() {
    scribbling_sender("hostile_senders_many_rounds", 500);
}

#[test]
#[ignore = "long: 500 hostile rounds each way"]
fn hostile_receivers_many_rounds() {
    scribbling_receiver("hostile_receivers_many_rounds", 500);
}
