//! Fault injection for tests and `ipclab torture hostile`: a hostile third
//! process that overwrites a channel's shared memory while the two sides
//! run. Inert unless the supervisor's environment has
//! `IPCLAB_FAULT_SCRIBBLE=<seed>`.
//!
//! The supervisor asks the channel for its shared memory before the fork
//! ([`Pair::shared_memory`](crate::transport::Pair::shared_memory): mapped
//! exactly as a side maps it), forks the sides, then forks the scribbler,
//! which inherits only those mappings. A channel whose sides make their
//! shared memory after the fork (`shmchan-async`'s rendezvous) gives a
//! socket instead ([`Pair::shared_memory_later`](crate::transport::Pair::shared_memory_later)),
//! on which a side passes each segment once made; the scribbler maps them
//! as they come. The scribbler waits a random time
//! (somewhere in the cell's run, or past it), then overwrites random bytes
//! in one of four ways chosen per cell (anywhere; headers, indices and sync
//! words only; those words nudged by small amounts, which looks plausible;
//! payload only) in bursts at a random pace, until the supervisor kills it
//! when the cell ends. Every write is an atomic store, so the scribbler
//! itself is sound whatever the sides do.
//!
//! A side that is hit must end with a message or an error: never a panic,
//! never a fault, never a hang past the cell's watchdog. [`classify`] and
//! [`died`] name what ended each side for the counts of the torture run.

use std::io;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use nix::unistd::{ForkResult, fork};
use rustix::process::{Pid, Signal};

use super::spec::CellSpec;
use crate::mechanisms::shm::region::Mapping;
use crate::transport::{LaterMemory, SharedMemory};

/// The variable that turns the scribbler on; its value seeds it.
pub const SCRIBBLE: &str = "IPCLAB_FAULT_SCRIBBLE";

/// The seed of the scribbler, when fault injection asks for one.
pub fn scribble_seed() -> Option<u64> {
    std::env::var(SCRIBBLE).ok()?.parse().ok()
}

/// Forks the scribbler over `targets`, and what comes on `later`; it runs
/// until killed.
pub fn start_scribbler(
    seed: u64,
    spec: &CellSpec,
    targets: &[SharedMemory],
    later: Option<&LaterMemory>,
) -> Result<Pid> {
    let supervisor = rustix::process::getpid();
    // SAFETY: the supervisor is single-threaded (see `supervisor::once`),
    // so the child may do anything the parent could.
    match unsafe { fork() }.context("fork (scribbler)")? {
        ForkResult::Child => {
            // The child must never return or unwind into the supervisor's
            // code: that would drop the supervisor's guards here and remove
            // objects under the running sides.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _ = rustix::process::set_parent_process_death_signal(Some(Signal::KILL));
                // The supervisor died before the signal was set: nobody
                // would kill us.
                if rustix::process::getppid() == Some(supervisor) {
                    let mut all: Vec<&SharedMemory> = targets.iter().collect();
                    let passed = later.map(receive).unwrap_or_default();
                    all.extend(&passed);
                    scribble(seed, spec, &all)
                }
            }));
            // SAFETY: `_exit` ends the process at once, without running the
            // supervisor's exit handlers or destructors.
            unsafe { libc::_exit(1) }
        }
        ForkResult::Parent { child } => {
            Ok(Pid::from_raw(child.as_raw()).expect("fork returns a positive pid"))
        }
    }
}

/// xorshift64*: reproducible from the seed (also the rounds' choices of
/// `ipclab torture hostile`). The seed must not be 0.
pub(crate) struct Noise(pub(crate) u64);

impl Noise {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// How a cell's scribbler writes.
#[derive(Clone, Copy)]
enum Mode {
    /// Random bytes at random offsets of the whole mapping.
    Anywhere,
    /// Random bytes in the headers, indices and sync words.
    Control,
    /// A 4-byte word of the control area nudged by a small amount, set to
    /// 0 or to a small number: values an honest peer might write.
    Plausible,
    /// Random bytes in the payload.
    Payload,
}

fn byte_at(t: &SharedMemory, off: usize) -> &AtomicU8 {
    assert!(off < t.map.len());
    // SAFETY: `off` lies inside the live mapping; an atomic byte is valid
    // for any value and races with the sides only as atomics do.
    unsafe { &*t.map.as_ptr().add(off).cast::<AtomicU8>() }
}

fn word_at(t: &SharedMemory, off: usize) -> &AtomicU32 {
    let off = off & !3;
    assert!(off + 4 <= t.map.len());
    // SAFETY: `off` is 4-aligned (the mapping is page-aligned) and the word
    // lies inside the live mapping; as in `byte_at`.
    unsafe { &*t.map.as_ptr().add(off).cast::<AtomicU32>() }
}

/// One write of `mode` somewhere in `t`.
fn hit(t: &SharedMemory, mode: Mode, n: &mut Noise) {
    let len = t.map.len();
    let control = t.control.clamp(4, len);
    let (start, end) = match mode {
        Mode::Anywhere => (0, len),
        Mode::Control | Mode::Plausible => (0, control),
        Mode::Payload if control < len => (control, len),
        Mode::Payload => (0, len),
    };
    let at = start + n.below((end - start) as u64) as usize;
    match mode {
        Mode::Plausible => {
            let w = word_at(t, at.min(control - 4));
            // Relaxed: a hostile write orders nothing.
            match n.below(4) {
                0 => w.store(0, Ordering::Relaxed),
                1 => w.store(n.below(64) as u32, Ordering::Relaxed),
                _ => {
                    let delta = n.below(7) as u32;
                    w.fetch_add(delta.wrapping_sub(3), Ordering::Relaxed);
                }
            }
        }
        _ => {
            let bytes = n.next().to_le_bytes();
            let count = 1 + n.below(8) as usize;
            for (k, b) in bytes.iter().take(count).enumerate() {
                if at + k < len {
                    // Relaxed: as above.
                    byte_at(t, at + k).store(*b, Ordering::Relaxed);
                }
            }
        }
    }
}

/// The segments a side passes on `later`, each mapped whole: as many as
/// come before the side closes its end (a side that failed first passes
/// fewer, or none).
fn receive(later: &LaterMemory) -> Vec<SharedMemory> {
    let mut got = Vec::new();
    for _ in 0..later.count {
        let Ok(fd) = shmchan::recv_fd(&later.line) else {
            break;
        };
        let len = rustix::fs::fstat(&fd).map_or(0, |st| st.st_size.max(0) as usize);
        if let (true, Ok(map)) = (len > 0, Mapping::shared_fd(&fd, len)) {
            got.push(SharedMemory {
                map,
                control: later.control.min(len),
            });
        }
    }
    got
}

/// The scribbler's life; never returns (the supervisor kills it).
fn scribble(seed: u64, spec: &CellSpec, targets: &[&SharedMemory]) -> ! {
    let mut n = Noise(seed | 1);
    if !targets.is_empty() {
        // The first write somewhere in the cell's run, or after it (then
        // the cell ends untouched): some cells break while attaching, some
        // in the middle, some never.
        let run = spec.warmup_ns + spec.duration_ns;
        std::thread::sleep(Duration::from_nanos(n.below(run + run / 2)));
        let mode = [
            Mode::Anywhere,
            Mode::Control,
            Mode::Plausible,
            Mode::Payload,
        ][n.below(4) as usize];
        let pause_ns = [2_000, 50_000, 500_000, 5_000_000][n.below(4) as usize];
        loop {
            let t = targets[n.below(targets.len() as u64) as usize];
            for _ in 0..1 + n.below(4) {
                hit(t, mode, &mut n);
            }
            std::thread::sleep(Duration::from_nanos(n.below(pause_ns)));
        }
    }
    // Nothing to scribble on: wait for the kill.
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// What ended a side that returned an error: `where: what`, where is
/// `open`, `recv`, `send`, `finish` or `run`, and what is `integrity` (a
/// payload check failed), `protocol` (the mechanism refused what it
/// found), `peer gone`, `peer closed early`, `timeout`, or the I/O error's
/// kind.
pub fn classify(e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    let at = if text.contains("opening the") {
        "open"
    } else if text.contains("receive failed") || text.contains("integrity error") {
        "recv"
    } else if text.contains("send failed") {
        "send"
    } else if text.contains("finish failed") {
        "finish"
    } else {
        "run"
    };
    let kind = e
        .chain()
        .find_map(|c| c.downcast_ref::<io::Error>())
        .map(io::Error::kind);
    let what = if text.contains("integrity error") {
        "integrity".to_string()
    } else if text.contains("closed the channel after") {
        "peer closed early".to_string()
    } else {
        match kind {
            Some(io::ErrorKind::InvalidData) => "protocol".to_string(),
            Some(
                io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted,
            ) => "peer gone".to_string(),
            Some(io::ErrorKind::TimedOut) => "timeout".to_string(),
            Some(k) => format!("{k:?}"),
            None => "other".to_string(),
        }
    };
    format!("{at}: {what}")
}

/// What ended a side that left no report, from its wait status: `killed`
/// (SIGKILL: the supervisor's, after its peer failed or at the timeout),
/// `signal N` (a crash) or `exit N`.
pub fn died(status: Option<i32>) -> String {
    match status {
        None => "unknown".to_string(),
        Some(s) if libc::WIFSIGNALED(s) && libc::WTERMSIG(s) == libc::SIGKILL => {
            "killed".to_string()
        }
        Some(s) if libc::WIFSIGNALED(s) => format!("signal {}", libc::WTERMSIG(s)),
        Some(s) if libc::WIFEXITED(s) => format!("exit {}", libc::WEXITSTATUS(s)),
        Some(s) => format!("status {s}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::protocol_error;

    #[test]
    fn errors_are_named_by_where_and_what() {
        let e =
            anyhow::Error::from(protocol_error("buffer 1 holds chunk 9")).context("receive failed");
        assert_eq!(classify(&e), "recv: protocol");
        let e =
            anyhow::Error::from(io::Error::from(io::ErrorKind::BrokenPipe)).context("send failed");
        assert_eq!(classify(&e), "send: peer gone");
        let e = anyhow::anyhow!("integrity error: shm-spin size 12 sequence 3: byte 0");
        assert_eq!(classify(&e), "recv: integrity");
        let e =
            anyhow::Error::from(protocol_error("wrong magic")).context("opening the server end");
        assert_eq!(classify(&e), "open: protocol");
    }

    #[test]
    fn deaths_are_named_by_their_signal() {
        assert_eq!(died(Some(libc::SIGKILL)), "killed");
        assert_eq!(died(Some(libc::SIGSEGV)), "signal 11");
        assert_eq!(died(Some(libc::SIGABRT | 0x80)), "signal 6");
        assert_eq!(died(Some(3 << 8)), "exit 3");
    }

    #[test]
    fn without_the_variable_nothing_scribbles() {
        // The test runner never sets it; the supervisor then maps nothing.
        if std::env::var_os(SCRIBBLE).is_none() {
            assert_eq!(scribble_seed(), None);
        }
    }
}
