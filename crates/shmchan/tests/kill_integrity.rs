//! Integrity under `kill -9`: a sender sends numbered, checksummed messages
//! and is killed at a random point, over and over. After each kill the
//! receiver drains the channel until `PeerGone` and checks that every
//! message it got is whole (length and checksum), in order and not
//! repeated, and that every message whose `send` had *returned* before the
//! kill arrived.
//!
//! What "returned" means is told by the sender itself: after each `send`
//! returns it stores the count of returned sends (Release) in a page of its
//! own, a memfd shared with the parent, apart from the channel. A kill
//! cannot tear an aligned 8-byte store, so after the kill the parent reads
//! a count `n` that the sender really reached: messages `0..n` returned,
//! message `n` may have been published just before the kill or not at all.
//! So the receiver must get exactly `n` or `n + 1` messages.
//!
//! Brief: `cargo test -p shmchan --test kill_integrity` (tens of kills).
//! Long: `cargo test -p shmchan --release --test kill_integrity -- --ignored
//! --nocapture` (1000 kills per wait policy).

mod common;

use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Noise, WATCHDOG, child_env, child_role, reap, spawn, stdin_socket};
use rustix::fs::{MemfdFlags, ftruncate, memfd_create};
use rustix::mm::{MapFlags, ProtFlags, mmap, munmap};
use rustix::process::Signal;
use shmchan::{Error, Options, Wait};

/// The ring: small, so that long messages go in rounds and kills land in
/// the middle of them.
const CAPACITY: usize = 4096;
/// Bytes before the body: sequence number, body length, checksum.
const FRAME: usize = 8 + 8 + 8;

/// The counter page: `[0]` is 1 once the sender has attached, `[1]` the
/// number of sends that returned.
struct Counters {
    ptr: *mut AtomicU64,
    _fd: OwnedFd,
}

impl Counters {
    fn new() -> Counters {
        let fd = memfd_create("shmchan-test-counters", MemfdFlags::CLOEXEC).unwrap();
        ftruncate(&fd, 4096).unwrap();
        Counters::map(fd)
    }

    fn map(fd: OwnedFd) -> Counters {
        // SAFETY: a fresh shared mapping of the whole 4096-byte memfd at an
        // address the kernel picks; it overlaps nothing and is unmapped in
        // `drop`.
        let ptr = unsafe {
            mmap(
                std::ptr::null_mut(),
                4096,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &fd,
                0,
            )
            .unwrap()
        };
        Counters {
            ptr: ptr.cast(),
            _fd: fd,
        }
    }

    fn get(&self, i: usize) -> &AtomicU64 {
        assert!(i < 2);
        // SAFETY: the page is mapped while `self` lives, page-aligned, and
        // an AtomicU64 is valid for any bytes.
        unsafe { &*self.ptr.add(i) }
    }
}

impl Drop for Counters {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and nothing refers to it any more.
        let _ = unsafe { munmap(self.ptr.cast(), 4096) };
    }
}

/// FNV-1a over `bytes`: enough to tell a torn or mixed message.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Message `seq`: its number, its body length, a checksum over both and
/// the body, then a body of pseudo-random bytes (mostly short, a tenth
/// longer than the ring).
fn message(seq: u64) -> Vec<u8> {
    let len = common::length(seq);
    let mut noise = Noise(seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let body: Vec<u8> = (0..len).map(|_| noise.next() as u8).collect();
    let mut m = Vec::with_capacity(FRAME + len);
    m.extend(seq.to_le_bytes());
    m.extend((len as u64).to_le_bytes());
    m.extend([0; 8]);
    m.extend(&body);
    let sum = checksum(&m);
    m[16..24].copy_from_slice(&sum.to_le_bytes());
    m
}

/// Checks that `got` is a whole message and returns its number.
fn check(got: &[u8]) -> u64 {
    assert!(got.len() >= FRAME, "a message of {} bytes", got.len());
    let field = |i: usize| u64::from_le_bytes(got[i * 8..i * 8 + 8].try_into().unwrap());
    let (seq, len, sum) = (field(0), field(1), field(2));
    assert_eq!(
        got.len() as u64,
        FRAME as u64 + len,
        "length of message {seq}"
    );
    let mut copy = got.to_vec();
    copy[16..24].fill(0);
    assert_eq!(checksum(&copy), sum, "checksum of message {seq}");
    seq
}

/// The sender child: attaches, says so, then sends for ever, counting
/// every send that returned.
fn sender(wait: Wait) {
    let sock = stdin_socket();
    let channel = shmchan::recv_fd(&sock).unwrap();
    let counters = Counters::map(shmchan::recv_fd(&sock).unwrap());
    let mut tx = Options::new().wait(wait).sender_from_fd(channel).unwrap();
    // Release: pairs with the Acquire load in `wait_attached`.
    counters.get(0).store(1, Ordering::Release);
    let first: u64 = child_env("SHMCHAN_FIRST").parse().unwrap();
    for seq in first.. {
        tx.send(&message(seq)).unwrap();
        // Release: pairs with the Acquire load after the kill; the store
        // happens only once `send` has returned for message `seq`.
        counters.get(1).store(seq + 1, Ordering::Release);
    }
}

/// What one kill found.
struct Kill {
    received: u64,
    /// The message the sender was in when killed was delivered too.
    extra: bool,
}

/// One channel, one sender child killed at a random point, checked.
fn one_kill(test: &str, policy: usize, wait: Wait, noise: &mut Noise) -> Kill {
    let opts = Options::new().capacity(CAPACITY).wait(wait);
    let channel = opts.create_anonymous().unwrap();
    let counters = Counters::new();
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    shmchan::send_fd(&ours, &channel).unwrap();
    shmchan::send_fd(&ours, &counters._fd).unwrap();
    let mut rx = opts.receiver_from_fd(channel).unwrap();
    // Message numbers start anywhere, so that numbering is no shortcut.
    let first = noise.below(1 << 40);
    let mut child = spawn(
        test,
        "sender",
        &[
            ("SHMCHAN_FIRST", &first.to_string()),
            ("SHMCHAN_POLICY", &policy.to_string()),
        ],
        Some(theirs.into()),
    );
    // A peer that dies before it attached is not a peer (see the crate's
    // guarantees): wait until it has.
    let end = Instant::now() + WATCHDOG;
    // Acquire: pairs with the Release store in `sender`.
    while counters.get(0).load(Ordering::Acquire) == 0 {
        assert!(Instant::now() < end, "watchdog: the sender never attached");
        std::thread::sleep(Duration::from_micros(200));
    }
    // Kill at a random moment while this thread keeps receiving, so that
    // the kill lands anywhere in the sender: writing a record, publishing
    // it, waiting for room, between two sends.
    let delay = Duration::from_micros(noise.below(3000));
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(delay);
        rustix::process::kill_process(pid, Signal::KILL).unwrap();
    });
    let mut next = first;
    let end = loop {
        match rx.recv_timeout(WATCHDOG) {
            Ok(got) => {
                let seq = check(&got);
                assert_eq!(seq, next, "messages in order, none lost or repeated");
                next += 1;
            }
            Err(e) => break e,
        }
    };
    killer.join().unwrap();
    assert!(matches!(end, Error::PeerGone), "{end}");
    // Died by our SIGKILL: not a panic, not an exit of its own.
    let status = reap(&mut child);
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    // Acquire: pairs with the Release store after each returned send.
    let returned = counters.get(1).load(Ordering::Acquire);
    let returned = returned.saturating_sub(first);
    let received = next - first;
    assert!(
        received >= returned,
        "{returned} sends returned before the kill, {received} messages received"
    );
    assert!(
        received <= returned + 1,
        "{received} messages received, but only {returned} sends returned (one more may have been in flight)"
    );
    // Still gone on the next call.
    assert!(matches!(rx.try_recv(), Err(Error::PeerGone)));
    Kill {
        received,
        extra: received == returned + 1,
    }
}

fn kills(test: &str, per_policy: u32) {
    let policies = [
        Wait::Spin,
        Wait::Block,
        Wait::Adaptive { spin: 100 },
        Wait::default(),
    ];
    if child_role().is_some() {
        let i: usize = child_env("SHMCHAN_POLICY").parse().unwrap();
        return sender(policies[i]);
    }
    let mut noise = Noise::seeded();
    let start = Instant::now();
    let (mut total, mut received, mut extra) = (0, 0, 0);
    for (i, wait) in policies.into_iter().enumerate() {
        for _ in 0..per_policy {
            let k = one_kill(test, i, wait, &mut noise);
            total += 1;
            received += k.received;
            extra += k.extra as u64;
        }
    }
    eprintln!(
        "{total} kills in {:.1?}: {received} messages received, every returned send among \
         them, nothing torn, out of order or repeated; {extra} times the message in flight \
         at the kill arrived as well",
        start.elapsed()
    );
}

#[test]
fn every_returned_send_survives_a_kill() {
    kills("every_returned_send_survives_a_kill", 10);
}

/// Long version: `cargo test -p shmchan --release --test kill_integrity --
/// --ignored --nocapture`.
#[test]
#[ignore = "long: 4000 kills"]
fn every_returned_send_survives_thousands_of_kills() {
    kills("every_returned_send_survives_thousands_of_kills", 1000);
}
