//! A side killed (`kill -9`) or frozen (`SIGSTOP`) in the middle of a
//! transfer, for every mechanism and limit: `ipclab run` ends with an error
//! that names what happened, never hangs, leaves no process and no IPC
//! object behind, and never panics.
//!
//! The supervisor injects the signal (`IPCLAB_FAULT_KILL` /
//! `IPCLAB_FAULT_STOP`, see `harness/fault.rs`) after a random delay; the
//! seed is printed, and `IPCLAB_KILL_SEED=<seed>` replays a run. The brief
//! test kills each side of each mechanism once; the long one
//! (`IPCLAB_KILL_ROUNDS=20 cargo test --release --test kill -- --ignored
//! --nocapture`) as many times as asked.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ipclab_bench::mechanisms::{REGISTRY, limits::LIMITS};
use rustix::process::{Pid, Signal, kill_process_group, test_kill_process_group};

/// The test's own watchdog, far beyond the supervisor's (`--timeout`) and
/// grace period: only a real hang reaches it.
const WATCHDOG: Duration = Duration::from_secs(90);

/// Every mechanism and limit.
fn names() -> Vec<&'static str> {
    REGISTRY
        .iter()
        .chain(LIMITS)
        .map(|t| t.info().name)
        .collect()
}

/// limit-spin and limit-futex run only in pingpong (at size 0), and
/// limit-bare only in pingpong (at every size).
fn pingpong_only(name: &str) -> bool {
    matches!(name, "limit-spin" | "limit-futex" | "limit-bare")
}

fn is_limit(name: &str) -> bool {
    LIMITS.iter().any(|t| t.info().name == name)
}

/// splitmix64: small, seeded, good enough to spread delays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    let seed = std::env::var("IPCLAB_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("kill tests: IPCLAB_KILL_SEED={seed} replays this run");
    seed
}

#[derive(Clone, Debug)]
struct Job {
    mechanism: &'static str,
    server: bool,
    /// SIGSTOP rather than SIGKILL.
    stop: bool,
    delay_us: u64,
    stream: bool,
}

impl Job {
    fn side(&self) -> &'static str {
        if self.server { "server" } else { "client" }
    }

    fn describe(&self) -> String {
        format!(
            "{} {} {} of the {} after {} µs",
            self.mechanism,
            if self.stream && !pingpong_only(self.mechanism) {
                "stream"
            } else {
                "pingpong"
            },
            if self.stop { "SIGSTOP" } else { "SIGKILL" },
            self.side(),
            self.delay_us
        )
    }
}

/// What one run of `ipclab run` showed.
enum Seen {
    /// The cell failed as it should; whether the survivor noticed itself.
    Failed { noticed: bool },
    /// The cell had ended before the signal came.
    Late,
}

/// Runs one cell with the fault; `Err` says what went wrong.
fn run(job: &Job) -> Result<Seen, String> {
    // A stopped side is caught by the timeout, which must leave time for
    // the cells before it (the limits) to end by themselves.
    let (var, timeout, duration) = if job.stop {
        ("IPCLAB_FAULT_STOP", "2s", "500ms")
    } else {
        ("IPCLAB_FAULT_KILL", "30s", "1s")
    };
    let (pattern, size) = if job.stream && !pingpong_only(job.mechanism) {
        ("stream", "1M")
    } else {
        ("pingpong", "256K")
    };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ipclab"));
    cmd.args(["run", "-p", pattern, "-s", size, "--timeout", timeout]);
    cmd.args(["--warmup", "0ms", "--duration", duration]);
    // One measurement of the cell: the fault hits each repetition's.
    cmd.args(["--placement", "unpinned", "--repeat", "1"]);
    if is_limit(job.mechanism) {
        // Limits run in every run, ahead of the mechanisms; the fault
        // names the one it is for.
        cmd.args(["-m", "pipe"]);
    } else {
        cmd.args(["-m", job.mechanism, "--no-limits"]);
    }
    let fault = format!("{}:{}:{}", job.side(), job.delay_us, job.mechanism);
    let mut child = cmd
        .env(var, fault)
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawning ipclab: {e}"))?;
    let pgid = Pid::from_raw(child.id() as i32).expect("a child's pid");
    let mut stderr = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + WATCHDOG;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = kill_process_group(pgid, Signal::KILL);
            let _ = child.wait();
            return Err(format!("hung: still running after {WATCHDOG:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let text = reader.join().unwrap_or_default();
    // Everything the run started has been reaped by its parent.
    std::thread::sleep(Duration::from_millis(50));
    if test_kill_process_group(pgid).is_ok() {
        let _ = kill_process_group(pgid, Signal::KILL);
        return Err(format!("processes left after the run\n{text}"));
    }
    if text.contains("panicked") {
        return Err(format!("a panic\n{text}"));
    }
    let failed: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(&format!("] {} ", job.mechanism)) && l.contains(": FAILED: "))
        .collect();
    if status.success() && failed.is_empty() {
        return Ok(Seen::Late);
    }
    if status.code() != Some(1) {
        return Err(format!("exit status {status}\n{text}"));
    }
    let [line] = failed[..] else {
        return Err(format!("not one FAILED line for the cell\n{text}"));
    };
    let verb = if job.stop { "stopped" } else { "killed" };
    let fault_line = format!("fault injection: the {} was {verb}", job.side());
    if !line.contains(&fault_line) {
        return Err(format!("the error does not say '{fault_line}'\n{text}"));
    }
    if job.stop {
        if !line.contains("timed out") {
            return Err(format!("a stopped side, but no timeout\n{text}"));
        }
        return Ok(Seen::Failed { noticed: false });
    }
    Ok(Seen::Failed {
        noticed: !line.contains("did not notice"),
    })
}

/// Runs `jobs` from a few threads; returns the failures and, per
/// mechanism, (kills that hit, survivors that noticed by themselves).
fn run_all(jobs: Vec<Job>, threads: usize) -> (Vec<String>, BTreeMap<&'static str, (u32, u32)>) {
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let tally = Mutex::new(BTreeMap::new());
    let late = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while let Some(job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    match run(job) {
                        Ok(Seen::Late) => {
                            late.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Seen::Failed { noticed }) => {
                            let mut t = tally.lock().unwrap();
                            let e: &mut (u32, u32) = t.entry(job.mechanism).or_default();
                            e.0 += 1;
                            e.1 += u32::from(noticed);
                        }
                        Err(why) => failures
                            .lock()
                            .unwrap()
                            .push(format!("{}: {why}", job.describe())),
                    }
                }
            });
        }
    });
    eprintln!(
        "{} runs, {} ended before the signal came",
        jobs.len(),
        late.into_inner()
    );
    (failures.into_inner().unwrap(), tally.into_inner().unwrap())
}

/// Kill jobs: each side of each mechanism `rounds` times, at delays
/// from the first millisecond (attaching) to a few hundred.
fn kill_jobs(rng: &mut Rng, rounds: u64) -> Vec<Job> {
    let mut jobs = Vec::new();
    for round in 0..rounds {
        for mechanism in names() {
            for server in [false, true] {
                let delay_us = if rng.below(4) == 0 {
                    rng.below(2_000)
                } else {
                    2_000 + rng.below(300_000)
                };
                jobs.push(Job {
                    mechanism,
                    server,
                    stop: false,
                    delay_us,
                    stream: (round + u64::from(server)) % 2 == 0,
                });
            }
        }
    }
    jobs
}

/// No failure, and every mechanism was hit (its cell failed because of the
/// signal) at least once: a run whose faults never fire proves nothing.
fn check(what: &str, failures: Vec<String>, tally: &BTreeMap<&str, (u32, u32)>) {
    for (m, (hits, noticed)) in tally {
        eprintln!("{what}: {m}: {hits} hit, the survivor noticed by itself {noticed} times");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    let missed: Vec<&str> = names()
        .into_iter()
        .filter(|m| tally.get(m).is_none_or(|t| t.0 == 0))
        .collect();
    assert!(missed.is_empty(), "{what}: never hit: {missed:?}");
}

#[test]
fn a_killed_side_fails_the_cell_and_leaves_nothing() {
    let _alone = common::one_at_a_time();
    let before = common::ipc_objects();
    let mut rng = Rng(seed());
    let (failures, tally) = run_all(kill_jobs(&mut rng, 1), 3);
    check("kill", failures, &tally);
    assert_eq!(common::new_objects(&before), Vec::<String>::new());
}

#[test]
#[ignore = "long: IPCLAB_KILL_ROUNDS=20 cargo test --release --test kill -- --ignored"]
fn many_kills_of_every_mechanism() {
    let _alone = common::one_at_a_time();
    let before = common::ipc_objects();
    let rounds = std::env::var("IPCLAB_KILL_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let mut rng = Rng(seed());
    let jobs = kill_jobs(&mut rng, rounds);
    eprintln!("{} kills", jobs.len());
    let (failures, tally) = run_all(jobs, 3);
    check("kill", failures, &tally);
    assert_eq!(common::new_objects(&before), Vec::<String>::new());
}

#[test]
fn a_stopped_side_times_the_cell_out_and_leaves_nothing() {
    let _alone = common::one_at_a_time();
    let before = common::ipc_objects();
    let mut rng = Rng(seed() ^ 1);
    let jobs: Vec<Job> = names()
        .into_iter()
        .map(|mechanism| Job {
            mechanism,
            server: rng.below(2) == 0,
            stop: true,
            delay_us: rng.below(100_000),
            stream: rng.below(2) == 0,
        })
        .collect();
    // Stopped and blocked sides mostly sleep: more threads than cores.
    let (failures, tally) = run_all(jobs, 4);
    // One job per mechanism, each stopped well inside its cell: `check`
    // requires every one of them to have failed as stopped and timed out.
    check("stop", failures, &tally);
    assert_eq!(common::new_objects(&before), Vec::<String>::new());
}
