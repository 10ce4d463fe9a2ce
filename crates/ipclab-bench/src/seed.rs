//! `ipclab seed`: the experiment of the blog post that started ipclab
//! ("Benchmarking message passing and shared memory on macOS", March 2017).
//!
//! The post timed, with time(1), a program that forks a client and a
//! server, sets up a channel, moves "Hello World" or 4 MB read from
//! /dev/urandom, and exits: Mach messages against System V shared memory
//! with a System V semaphore, averaged over several runs. Here that is the
//! `oneshot` pattern (a fresh channel and two fresh processes, timed from
//! creating the channel to both processes reaped), repeated `runs` times
//! for the Linux mechanisms closest to the post's two, in interleaved
//! rounds, next to what the same mechanisms cost once the processes exist
//! (`pingpong`), what forking alone costs, and what reading 4 MiB from
//! /dev/urandom costs.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::harness::cell::{handle_interrupts, run_cell, stopped};
use crate::harness::clock::mono_ns;
use crate::harness::spec::{CellSpec, OneshotSample, Pattern, Placement};
use crate::machine::Machine;
use crate::mechanisms;
use crate::results::{Failure, Row, Skipped};
use crate::stats::Stats;
use crate::suite::{self, Options};
use crate::transport::{ChannelConfig, Transport};

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
        "a System V segment (shmget, shmat) with a System V semaphore (semop), one segment each \
         way handed back and forth (--segments 1), as in the post",
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

/// Fresh-process runs of one mechanism at one size.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Fresh {
    pub mechanism: String,
    /// `message passing` or `shared memory`, as the post put it.
    pub family: String,
    pub size: usize,
    pub runs: u64,
    /// From creating the channel to both processes reaped and the channel
    /// removed.
    pub total_ns: Stats,
    /// From creating the channel to both sides attached.
    pub setup_ns: Stats,
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
    /// The runs went in this many rounds, each running every cell, so that
    /// a change in the machine's load shifts every figure alike.
    pub rounds: u64,
    pub placement: String,
    /// Forking a client and a server that exit at once, and reaping both:
    /// the part of every fresh-process figure that is not IPC.
    pub processes_alone_ns: Stats,
    /// Reading 4 MiB from /dev/urandom (in the post's figures, not here).
    pub urandom_4mib_ns: Stats,
    /// The post's experiment: fresh processes and channel per round trip.
    pub fresh: Vec<Fresh>,
    /// The same mechanisms once the processes exist: pingpong rows, as in
    /// a run's JSON.
    pub warm: Vec<Row>,
    /// Chosen mechanisms this build or machine does not have.
    pub missing: Vec<Skipped>,
    pub failures: Vec<Failure>,
    /// False when Ctrl-C stopped it.
    pub complete: bool,
}

impl Seed {
    pub fn fresh(&self, mechanism: &str, size: usize) -> Option<&Fresh> {
        self.fresh
            .iter()
            .find(|f| f.mechanism == mechanism && f.size == size)
    }

    pub fn warm(&self, mechanism: &str, size: usize) -> Option<&Row> {
        self.warm
            .iter()
            .find(|r| r.mechanism == mechanism && r.size == size)
    }
}

/// At most this many rounds.
const ROUNDS: u64 = 10;

/// Runs the experiment; `exe` is the `ipclab` binary.
pub fn run(o: &SeedOptions, exe: &Path) -> Result<Seed> {
    let started_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let urandom_4mib_ns = urandom(5)?;
    let mut missing = Vec::new();
    let mut chosen = Vec::new();
    for (name, family, _) in CHOSEN {
        match mechanisms::find(name) {
            None => missing.push(Skipped {
                mechanism: name.into(),
                reason: "not in this build of ipclab".into(),
            }),
            Some(t) => match t.available() {
                Ok(()) => chosen.push((t, family)),
                Err(reason) => missing.push(Skipped {
                    mechanism: name.into(),
                    reason,
                }),
            },
        }
    }
    handle_interrupts();

    // Every round forks alone and runs every cell, so that the load of the
    // machine, which can change within seconds, weighs on all alike.
    let rounds = o.runs.clamp(1, ROUNDS);
    let mut alone = Vec::new();
    let mut samples: Vec<Vec<OneshotSample>> = vec![Vec::new(); chosen.len() * SIZES.len()];
    let mut failures: Vec<Failure> = Vec::new();
    let mut complete = true;
    'rounds: for k in 0..rounds {
        let n = o.runs / rounds + u64::from(k < o.runs % rounds);
        alone.extend(processes_alone(n)?);
        for (i, (t, _)) in chosen.iter().enumerate() {
            let name = t.info().name;
            if failures.iter().any(|f| f.mechanism == name) {
                continue;
            }
            for (j, &size) in SIZES.iter().enumerate() {
                if stopped() {
                    complete = false;
                    break 'rounds;
                }
                match run_cell(exe, &fresh_spec(o, name, size, n, rounds)) {
                    Ok(outcome) => samples[i * SIZES.len() + j].extend(outcome.oneshot),
                    Err(_) if stopped() => {
                        complete = false;
                        break 'rounds;
                    }
                    Err(e) => {
                        failures.push(Failure {
                            mechanism: name.into(),
                            pattern: Pattern::Oneshot.to_string(),
                            size,
                            placement: Placement::Unpinned.to_string(),
                            pairs: 1,
                            offered_rate: None,
                            error: format!("{e:#}"),
                        });
                        break;
                    }
                }
            }
        }
        eprintln!("seed: round {}/{rounds} of fresh processes done", k + 1);
    }
    let mut fresh = Vec::new();
    for (i, (t, family)) in chosen.iter().enumerate() {
        for (j, &size) in SIZES.iter().enumerate() {
            let s = &samples[i * SIZES.len() + j];
            if !s.is_empty() {
                fresh.push(Fresh {
                    mechanism: t.info().name.into(),
                    family: family.to_string(),
                    size,
                    runs: s.len() as u64,
                    total_ns: Stats::of_samples(s.iter().map(|x| x.total_ns)),
                    setup_ns: Stats::of_samples(s.iter().map(|x| x.setup_ns)),
                });
            }
        }
    }

    let mut warm = Vec::new();
    let alive: Vec<&'static dyn Transport> = chosen
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| !failures.iter().any(|f| f.mechanism == t.info().name))
        .collect();
    if complete && !alive.is_empty() {
        // Like the post's processes, these are left to the scheduler.
        let options = Options {
            mechanisms: alive,
            sizes: SIZES.to_vec(),
            patterns: vec![Pattern::Pingpong],
            placements: vec![Placement::Unpinned],
            cpus: None,
            pairs: vec![1],
            rates: vec![None],
            warmup_ns: o.warmup_ns,
            duration_ns: o.duration_ns,
            iterations: None,
            verify: true,
            segment_size: None,
            segments: 1,
            timeout_ns: o.timeout_ns,
            fail_fast: false,
            // The post compared two mechanisms, not floors.
            limits: false,
            remote: None,
            repeat: 3,
            seed: crate::torture::hostile::random_seed(),
        };
        let run = suite::run(&options, exe, &mut |_| Ok(()))?;
        warm = run.rows;
        failures.extend(run.failures);
        complete = run.complete;
    }
    Ok(Seed {
        schema: SEED_SCHEMA,
        ipclab_version: env!("CARGO_PKG_VERSION").into(),
        started_at,
        machine: Machine::read(),
        runs: o.runs,
        rounds,
        placement: Placement::Unpinned.to_string(),
        processes_alone_ns: Stats::of_samples(alone),
        urandom_4mib_ns,
        fresh,
        warm,
        missing,
        failures,
        complete,
    })
}

/// One round's share of the fresh-process runs of a mechanism and size.
fn fresh_spec(o: &SeedOptions, mechanism: &str, size: usize, runs: u64, rounds: u64) -> CellSpec {
    CellSpec {
        mechanism: mechanism.into(),
        pattern: Pattern::Oneshot,
        channel: ChannelConfig {
            size,
            segment_size: None,
            segments: 1,
        },
        placement: Placement::Unpinned,
        pairs: 1,
        cpus: None,
        rate: None,
        warmup_ns: o.warmup_ns / rounds,
        duration_ns: 0,
        iterations: Some(runs),
        min_iterations: 1,
        verify: true,
        timeout_ns: o.timeout_ns,
    }
}

/// Forks two children that exit at once and reaps both, `runs` times
/// (after two unmeasured ones): what a fresh-process run pays before any
/// IPC. (The only fork in the `ipclab` process itself; the children do
/// nothing but `_exit`.)
fn processes_alone(runs: u64) -> Result<Vec<u64>> {
    use nix::sys::wait::waitpid;
    use nix::unistd::{ForkResult, fork};
    let mut samples = Vec::new();
    for i in 0..runs + 2 {
        let start = mono_ns();
        let mut children = Vec::new();
        for _ in 0..2 {
            // SAFETY: the child only calls `_exit`, which is
            // async-signal-safe, so the fork is sound whatever other
            // threads this process has.
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
        if i >= 2 {
            samples.push(mono_ns() - start);
        }
    }
    Ok(samples)
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
