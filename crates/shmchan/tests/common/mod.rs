//! Helpers for tests with two real processes: the test binary runs itself
//! again as the other side, for one test, with `SHMCHAN_TEST_CHILD` set.
//!
//! A test function starts with `if let Some(role) = child_role() { ... }`:
//! in the child it plays the other side and returns; in the parent it goes
//! on. Every child dies with its parent (`PR_SET_PDEATHSIG`), and every
//! wait for a child has a watchdog.

#![allow(dead_code)]

use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

const CHILD_ENV: &str = "SHMCHAN_TEST_CHILD";

/// How long any single wait in these tests may take before it is a failure.
pub const WATCHDOG: Duration = Duration::from_secs(20);

/// In a child: the role the parent gave it; `None` in the parent.
pub fn child_role() -> Option<String> {
    let role = std::env::var(CHILD_ENV).ok()?;
    // Never outlive the parent, whatever happens to it.
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL)).unwrap();
    Some(role)
}

/// An environment variable the parent gave the child.
pub fn child_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("the parent sets {name}"))
}

/// Runs the test `test` of this binary in a child process as `role`, with
/// `env`, and `stdin` (a socket, say) as its standard input.
pub fn spawn(test: &str, role: &str, env: &[(&str, &str)], stdin: Option<OwnedFd>) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        test,
        "--exact",
        "--nocapture",
        "--include-ignored",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, role)
    .stdout(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(fd) = stdin {
        cmd.stdin(Stdio::from(fd));
    }
    cmd.spawn().expect("spawning the test binary")
}

/// In a child: the socket the parent gave as standard input.
pub fn stdin_socket() -> std::os::unix::net::UnixStream {
    use std::os::fd::AsFd;
    let fd = std::io::stdin().as_fd().try_clone_to_owned().unwrap();
    std::os::unix::net::UnixStream::from(fd)
}

/// Waits for `child` with the watchdog; kills it and fails on time-out.
pub fn reap(child: &mut Child) -> ExitStatus {
    let end = Instant::now() + WATCHDOG;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("watchdog: child {} did not exit", child.id());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Sends `signal` to `child`.
pub fn signal(child: &Child, signal: Signal) {
    let pid = Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
}

/// Whether `/dev/shm` holds an object called `name`.
pub fn in_dev_shm(name: &str) -> bool {
    Path::new("/dev/shm")
        .join(name.trim_start_matches('/'))
        .exists()
}

/// xorshift64*: reproducible noise; the seed is printed on failure.
pub struct Noise(pub u64);

impl Noise {
    /// A random seed (printed, so that a failure can be replayed with
    /// `SHMCHAN_TEST_SEED`).
    pub fn seeded() -> Noise {
        let seed = std::env::var("SHMCHAN_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let mut b = [0u8; 8];
                getrandom::fill(&mut b).unwrap();
                u64::from_le_bytes(b) | 1
            });
        eprintln!("noise seed {seed} (SHMCHAN_TEST_SEED replays it)");
        Noise(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Message `seq`: its number, then bytes that depend on number and place,
/// `len(seq)` bytes in all (at least 8).
pub fn message(seq: u64, len: usize) -> Vec<u8> {
    let mut m = seq.to_le_bytes().to_vec();
    m.extend((8..len.max(8)).map(|i| (seq.wrapping_mul(131) as usize ^ i.wrapping_mul(7)) as u8));
    m
}

/// Checks that `got` is message `seq` of `len` bytes.
pub fn check_message(got: &[u8], seq: u64, len: usize) {
    assert_eq!(got.len(), len.max(8), "length of message {seq}");
    let found = u64::from_le_bytes(got[..8].try_into().unwrap());
    assert_eq!(found, seq, "message number");
    assert!(got == message(seq, len), "content of message {seq}");
}

/// A length for message `seq` that a sender and a receiver agree on: mostly
/// short, sometimes longer than a 4 KiB ring.
pub fn length(seq: u64) -> usize {
    let h = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    match h % 10 {
        0 => 4096 + (h % 20_000) as usize,
        1 => (h % 4096) as usize,
        _ => 8 + (h % 200) as usize,
    }
}

/// Writes `value` at byte `at` of the object behind `fd`, as a hostile
/// peer would.
pub fn poke(fd: impl std::os::fd::AsFd, at: usize, value: &[u8]) {
    let (p, len) = map(fd, at + value.len());
    // SAFETY: `at + value.len()` bytes of a fresh shared mapping, written
    // through a raw pointer only, then unmapped.
    unsafe {
        std::ptr::copy_nonoverlapping(value.as_ptr(), p.add(at), value.len());
        rustix::mm::munmap(p.cast(), len).unwrap();
    }
}

/// Maps the whole object behind `fd` for a hostile peer: its base and
/// size. The mapping stays for the process's life; use it through raw
/// pointers only (the other side writes it too).
pub fn map_whole(fd: impl std::os::fd::AsFd) -> (*mut u8, usize) {
    let size = rustix::fs::fstat(&fd).unwrap().st_size as usize;
    map(fd, size)
}

fn map(fd: impl std::os::fd::AsFd, len: usize) -> (*mut u8, usize) {
    use rustix::mm::{MapFlags, ProtFlags};
    // SAFETY: a new mapping at an address the kernel picks overlaps
    // nothing Rust knows about.
    let p = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            fd,
            0,
        )
    }
    .unwrap();
    (p.cast(), len)
}
