//! `ipclab seed`: the experiment of the blog post that started ipclab
//! ("Benchmarking message passing and shared memory on macOS", March 2017).
//!
//! The post timed, with time(1), a program that forks a client and a
//! server, sets up a channel, moves "Hello World" or 4 MB read from
//! /dev/urandom, and exits: Mach messages against System V shared memory
//! with a System V semaphore, averaged over several runs. Here that is the
//! `oneshot` pattern (a fresh channel and two fresh processes, timed from
//! creating the channel to both processes reaped), repeated `runs` times
//! for the Linux mechanisms closest to the post's two, next to what the
//! same mechanisms cost once the processes exist (`pingpong`), what
//! forking alone costs, and what reading 4 MiB from /dev/urandom costs.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::harness::clock::mono_ns;
use crate::harness::spec::{Pattern, Placement};
use crate::machine::Machine;
use crate::mechanisms;
use crate::results::{Failure, Row, Skipped};
use crate::stats::Stats;
use crate::suite::{self, Options};

/// The version of `seed.json`.
pub const SEED_SCHEMA: u32 = 1;

/// The sizes of the post: `strlen("Hello World") + 1` and 4 MB.
pub const SIZES: [usize; 2] = [12, 4 << 20];

/// The mechanisms measured, by the post's family, each with why it stands
/// close to what the post used.
pub const CHOSEN: [(&str, &str, &str); 3] = [
    (
        "sysv-mq",
        "message passing",
        "System V message queues (msgsnd/msgrcv), the calls the post names for message passing; \
         like a Mach port, a queue of whole messages kept by the kernel",
    ),
    (
        "unix-stream",
        "message passing",
        "a Unix stream socket, Linux's everyday local message channel",
    ),
    (
        "sysv-shm",
        "shared memory",
        "a System V segment (shmget, shmat) with a System V semaphore (semop), as in the post",
    ),
];

/// The post's figures, in ms: (family, "Hello World", 4 MB).
pub const BLOG: [(&str, f64, f64); 2] = [
    ("message passing", 9.0, 14.0),
    ("shared memory", 11.0, 13.0),
];

/// What `ipclab seed` is asked to do.
pub struct SeedOptions {
    /// Fresh-process runs per mechanism and size.
    pub runs: u64,
    pub warmup_ns: u64,
    /// Measured time of each warm (pingpong) cell.
    pub duration_ns: u64,
    pub timeout_ns: u64,
}

/// Everything `ipclab seed` measured (`seed.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Seed {
    pub schema: u32,
    pub ipclab_version: String,
    pub started_at: String,
    pub machine: Machine,
    /// Fresh-process runs per mechanism and size.
    pub runs: u64,
    pub placement: String,
    /// Forking a client and a server that exit at once, and reaping both:
    /// the part of every oneshot figure that is not IPC.
    pub processes_alone_ns: Stats,
    /// Reading 4 MiB from /dev/urandom (in the post's figures, not here).
    pub urandom_4mib_ns: Stats,
    /// The oneshot rows (blog-style) and the pingpong rows (warm), as in a
    /// run's JSON.
    pub rows: Vec<Row>,
    /// Chosen mechanisms this build or machine does not have.
    pub missing: Vec<Skipped>,
    pub failures: Vec<Failure>,
    /// False when Ctrl-C stopped it.
    pub complete: bool,
}

impl Seed {
    /// The row of `mechanism`, `pattern` and `size`, if it was measured.
    pub fn row(&self, mechanism: &str, pattern: &str, size: usize) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.mechanism == mechanism && r.pattern == pattern && r.size == size)
    }
}

/// Runs the experiment; `exe` is the `ipclab` binary.
pub fn run(o: &SeedOptions, exe: &Path) -> Result<Seed> {
    let started_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    // First, while this process has no other thread.
    let processes_alone_ns = processes_alone(o.runs)?;
    let urandom_4mib_ns = urandom(5)?;

    let mut missing = Vec::new();
    let mut chosen = Vec::new();
    for (name, _, _) in CHOSEN {
        match mechanisms::find(name) {
            Some(t) => chosen.push(t),
            None => missing.push(Skipped {
                mechanism: name.into(),
                reason: "not in this build of ipclab".into(),
            }),
        }
    }
    let mut seed = Seed {
        schema: SEED_SCHEMA,
        ipclab_version: env!("CARGO_PKG_VERSION").into(),
        started_at,
        machine: Machine::read(),
        runs: o.runs,
        placement: Placement::Unpinned.to_string(),
        processes_alone_ns,
        urandom_4mib_ns,
        rows: Vec::new(),
        missing,
        failures: Vec::new(),
        complete: true,
    };
    if chosen.is_empty() {
        return Ok(seed);
    }
    // Like the post's processes, these are left to the scheduler.
    let options = |pattern: Pattern| Options {
        mechanisms: chosen.clone(),
        sizes: SIZES.to_vec(),
        patterns: vec![pattern],
        placements: vec![Placement::Unpinned],
        cpus: None,
        warmup_ns: o.warmup_ns,
        duration_ns: o.duration_ns,
        iterations: (pattern == Pattern::Oneshot).then_some(o.runs),
        verify: true,
        segment_size: None,
        segments: 1,
        timeout_ns: o.timeout_ns,
        fail_fast: false,
    };
    for pattern in [Pattern::Oneshot, Pattern::Pingpong] {
        let run = suite::run(&options(pattern), exe, &mut |_| Ok(()))?;
        seed.rows.extend(run.rows);
        seed.failures.extend(run.failures);
        for s in run.skipped {
            if !seed.missing.iter().any(|m| m.mechanism == s.mechanism) {
                seed.missing.push(s);
            }
        }
        if !run.complete {
            seed.complete = false;
            break;
        }
    }
    Ok(seed)
}

/// Fork two children that exit at once and reap both, `runs` times (after
/// a few unmeasured ones): what a oneshot run pays before any IPC.
fn processes_alone(runs: u64) -> Result<Stats> {
    use nix::sys::wait::waitpid;
    use nix::unistd::{ForkResult, fork};
    let mut samples = Vec::new();
    for i in 0..runs + 5 {
        let start = mono_ns();
        let mut children = Vec::new();
        for _ in 0..2 {
            // SAFETY: the child only calls `_exit`, which is
            // async-signal-safe, so the fork is sound whatever other
            // threads exist.
            match unsafe { fork() }.context("fork")? {
                // SAFETY: `_exit` ends the child at once, without running
                // the parent's exit handlers.
                ForkResult::Child => unsafe { libc::_exit(0) },
                ForkResult::Parent { child } => children.push(child),
            }
        }
        for child in children {
            waitpid(child, None).context("waitpid")?;
        }
        if i >= 5 {
            samples.push(mono_ns() - start);
        }
    }
    Ok(Stats::of_samples(samples))
}

/// Reading 4 MiB from /dev/urandom, `runs` times.
fn urandom(runs: usize) -> Result<Stats> {
    let mut buf = vec![0u8; 4 << 20];
    let mut samples = Vec::new();
    for _ in 0..runs {
        let start = mono_ns();
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut buf))
            .context("reading /dev/urandom")?;
        samples.push(mono_ns() - start);
    }
    Ok(Stats::of_samples(samples))
}
