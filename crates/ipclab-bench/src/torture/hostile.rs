//! `ipclab torture hostile`: every shared-memory mechanism, round after
//! round, with a hostile third process overwriting its shared memory while
//! the two sides run (see `harness::scribbler`).
//!
//! A round is one cell (fresh supervisor, channel and processes) with a
//! random pattern, size, buffer count and scribbler seed, run by the same
//! supervisor as `ipclab run` with `IPCLAB_FAULT_SCRIBBLE` set. What
//! counts: every receive ends in a verified message or an error; no side
//! panics, no process dies of a signal it did not get from the supervisor,
//! and nothing is left behind (no ipclab object of a dead creator, as
//! `ipclab ls` sees them). A side stuck on a word the scribbler broke
//! is ended by the cell's watchdog: counted as a timeout, allowed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};

use crate::harness::scribbler::{Noise, SCRIBBLE};
use crate::harness::spec::{CellOutcome, CellSpec, Pattern, Placement, SideReport};
use crate::mechanisms::{self, limits};
use crate::transport::{ChannelConfig, Family, Transport};

/// What to run.
pub struct Options {
    pub mechanisms: Vec<&'static dyn Transport>,
    /// Rounds per mechanism; when `None`, `duration_ns` in all, shared.
    pub rounds: Option<u64>,
    pub duration_ns: u64,
    /// Seeds every round (printed, so that a run can be replayed).
    pub seed: u64,
    /// Measured time of each cell (the scribbler strikes within about
    /// 1.5 times warm-up plus this).
    pub cell_ns: u64,
    /// Watchdog of each cell.
    pub timeout_ns: u64,
}

/// A seed for a run that was given none.
pub fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    // A failure leaves a fixed seed: still a run, still replayable.
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
}

/// Shared-memory mechanisms left out of the group `shared-memory` here.
///
/// `cma` shares no memory (the reader copies out of the writer's private
/// memory with `process_vm_readv`). `shm-pthread` keeps glibc's mutexes
/// and condition variables in the segment, and glibc trusts them: it reads
/// a mutex's kind on every call, asserts on its owner and follows the
/// robust-list pointers stored in it, so a peer that writes the segment
/// can make the other process abort (SIGABRT) or write through a pointer
/// of its choosing (SIGSEGV). No check of ours can close that race, so
/// that mechanism is for peers that trust each other; name it to see.
pub const TRUSTS_PEER: &[&str] = &["cma", "shm-pthread"];

/// The mechanisms of `list`: names (limits included), or the groups
/// `shared-memory` (the ring engine's and shmchan's, but for
/// [`TRUSTS_PEER`]) and `limits`. Default: both groups.
/// A mechanism without shared memory ([`Transport::shares_memory`]) is
/// refused: the scribbler would have nothing to write on.
pub fn select(list: &str) -> Result<Vec<&'static dyn Transport>, String> {
    let chosen = resolve(list)?;
    if let Some(t) = chosen.iter().find(|t| !t.shares_memory()) {
        let with: Vec<&str> = mechanisms::REGISTRY
            .iter()
            .chain(limits::LIMITS)
            .filter(|t| t.shares_memory())
            .map(|t| t.info().name)
            .collect();
        return Err(format!(
            "{} has no shared memory for the hostile writer to scribble on (those that have: {})",
            t.info().name,
            with.join(", ")
        ));
    }
    Ok(chosen)
}

fn resolve(list: &str) -> Result<Vec<&'static dyn Transport>, String> {
    mechanisms::select_words(list, |word| {
        Ok(match word {
            "shared-memory" => mechanisms::REGISTRY
                .iter()
                .copied()
                .filter(|t| {
                    t.info().family == Family::SharedMemory && !TRUSTS_PEER.contains(&t.info().name)
                })
                .collect(),
            "limit" | "limits" => limits::LIMITS.to_vec(),
            name => vec![mechanisms::find(name).ok_or_else(|| {
                format!("unknown mechanism '{name}' (groups: shared-memory, limits)")
            })?],
        })
    })
}

/// The counts of one mechanism.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub rounds: u64,
    /// Receives that returned: verified messages plus receives that failed.
    pub receives: u64,
    /// Messages received whole and verified.
    pub valid: u64,
    /// Cells that ran to the end without an error (the scribbler missed
    /// or came too late).
    pub clean: u64,
    /// What ended failed sides, `where: what` (see `scribbler::classify`).
    pub errors: BTreeMap<String, u64>,
    /// Cells the watchdog ended.
    pub timeouts: u64,
    /// Sides killed by the supervisor 2 s after their peer failed (still
    /// waiting: on a broken word, or for a peer that had gone).
    pub killed: u64,
    pub panics: u64,
    /// Sides or supervisors that died of a signal of their own.
    pub crashes: u64,
    /// Objects left behind after the mechanism's rounds.
    pub leaks: Vec<String>,
    /// One message per kind of failure, for the report.
    pub examples: BTreeMap<String, String>,
}

impl Tally {
    pub fn failed(&self) -> bool {
        self.panics + self.crashes > 0 || !self.leaks.is_empty()
    }

    fn example(&mut self, kind: &str, text: &str) {
        self.examples
            .entry(kind.to_string())
            .or_insert_with(|| text.chars().take(300).collect());
    }

    fn side(&mut self, side: &SideReport) {
        self.valid += side.received;
        self.receives += side.received;
        let Some(kind) = side.error_kind.as_deref() else {
            return;
        };
        let text = side.error.as_deref().unwrap_or_default();
        match kind {
            "panic" => {
                self.panics += 1;
                self.example("panic", text);
            }
            "killed" => self.killed += 1,
            k if k.starts_with("signal") => {
                self.crashes += 1;
                self.example(k, text);
            }
            k => {
                if k.starts_with("recv:") {
                    self.receives += 1;
                }
                *self.errors.entry(k.to_string()).or_default() += 1;
                self.example(k, text);
            }
        }
    }

    fn cell(&mut self, outcome: &CellOutcome) {
        self.rounds += 1;
        self.side(&outcome.client);
        self.side(&outcome.server);
        match &outcome.error {
            None => self.clean += 1,
            Some(e) if e.contains("timed out after") => self.timeouts += 1,
            Some(e) if outcome.client.error.is_none() && outcome.server.error.is_none() => {
                // The cell failed outside the sides (preparing the channel).
                *self.errors.entry("cell".into()).or_default() += 1;
                self.example("cell", e);
            }
            Some(_) => {}
        }
    }
}

/// A random cell of mechanism `t`.
fn cell(t: &dyn Transport, opts: &Options, n: &mut Noise) -> CellSpec {
    let name = t.info().name;
    let size = if name == limits::SPIN || name == limits::FUTEX {
        0
    } else {
        [0, 12, 100, 4096, 65_543][n.below(5) as usize]
    };
    // The ring engine carries a large message in rounds of small buffers.
    let engine = t.info().family == Family::SharedMemory && !name.starts_with("shmchan");
    let segment_size = (engine && n.below(2) == 0).then(|| 64 << n.below(7));
    CellSpec {
        mechanism: name.to_string(),
        pattern: [Pattern::Pingpong, Pattern::Stream][n.below(2) as usize],
        channel: ChannelConfig {
            size,
            segment_size,
            segments: n.below(9) as usize,
        },
        placement: Placement::Unpinned,
        pairs: 1,
        cpus: None,
        rate: None,
        warmup_ns: 20_000_000,
        duration_ns: opts.cell_ns,
        iterations: None,
        min_iterations: 1,
        verify: true,
        timeout_ns: opts.timeout_ns,
    }
}

/// One cell under a scribbler seeded with `seed`.
fn run_cell(exe: &Path, spec: &CellSpec, seed: u64) -> Result<CellOutcome> {
    let mut child = Command::new(exe)
        .arg("__cell")
        .env(SCRIBBLE, seed.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        // Panic messages of sides go to their reports as well.
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    let json = serde_json::to_vec(spec).expect("a CellSpec always serialises");
    let written = child.stdin.take().expect("piped").write_all(&json);
    let output = child
        .wait_with_output()
        .context("waiting for a supervisor")?;
    written.context("handing the cell to its supervisor")?;
    let text = String::from_utf8_lossy(&output.stdout);
    match serde_json::from_str::<CellOutcome>(text.trim()) {
        Ok(outcome) => Ok(outcome),
        // The supervisor itself died: as much a crash as a side's.
        Err(_) => Ok(CellOutcome {
            error: Some(format!("the supervisor died ({})", output.status)),
            client: SideReport {
                error: Some(format!("the supervisor died ({})", output.status)),
                error_kind: Some(format!("signal (supervisor: {})", output.status)),
                ..Default::default()
            },
            ..Default::default()
        }),
    }
}

/// Runs the rounds, one mechanism after the other, writing a line per
/// mechanism to `progress`; returns each mechanism's counts.
pub fn run(exe: &Path, opts: &Options, progress: &mut dyn Write) -> Result<Vec<(String, Tally)>> {
    let mut n = Noise(opts.seed | 1);
    let share = opts.duration_ns / opts.mechanisms.len().max(1) as u64;
    let mut all = Vec::new();
    for &t in &opts.mechanisms {
        let name = t.info().name.to_string();
        if let Err(why) = t.available() {
            writeln!(progress, "{name}: skipped ({why})")?;
            continue;
        }
        let before = objects();
        let start = Instant::now();
        let mut tally = Tally::default();
        loop {
            let done = match opts.rounds {
                Some(r) => tally.rounds >= r,
                None => start.elapsed() >= Duration::from_nanos(share) && tally.rounds > 0,
            };
            if done || crate::harness::cell::stopped() {
                break;
            }
            let spec = cell(t, opts, &mut n);
            let outcome = run_cell(exe, &spec, n.next())?;
            tally.cell(&outcome);
        }
        tally.leaks = leaks(&before);
        writeln!(
            progress,
            "{name}: {} rounds, {} receives, {} valid, {} timeouts, {} panics, {} crashes, {} leaks ({:.0?})",
            tally.rounds,
            tally.receives,
            tally.valid,
            tally.timeouts,
            tally.panics,
            tally.crashes,
            tally.leaks.len(),
            start.elapsed()
        )?;
        all.push((name, tally));
        if crate::harness::cell::stopped() {
            return Err(anyhow!("interrupted"));
        }
    }
    Ok(all)
}

/// The table of counts, then what ended the failed sides, by kind.
pub fn render(results: &[(String, Tally)]) -> String {
    let mut out = String::new();
    let head = [
        "mechanism",
        "rounds",
        "receives",
        "valid",
        "clean",
        "errors",
        "timeouts",
        "killed",
        "panics",
        "crashes",
        "leaks",
    ];
    let width = results
        .iter()
        .map(|(n, _)| n.len())
        .max()
        .unwrap_or(0)
        .max(9);
    out.push_str(&format!("{:<width$}", head[0]));
    for h in &head[1..] {
        out.push_str(&format!(" {h:>9}"));
    }
    out.push('\n');
    let mut total = Tally::default();
    for (name, t) in results {
        row(&mut out, name, t, width);
        total.rounds += t.rounds;
        total.receives += t.receives;
        total.valid += t.valid;
        total.clean += t.clean;
        total.timeouts += t.timeouts;
        total.killed += t.killed;
        total.panics += t.panics;
        total.crashes += t.crashes;
        total.leaks.extend(t.leaks.iter().cloned());
        for (k, v) in &t.errors {
            *total.errors.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &t.examples {
            total.examples.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    row(&mut out, "total", &total, width);
    out.push_str("\nerrors by kind (where: what):\n");
    for (name, t) in results {
        let kinds: Vec<String> = t.errors.iter().map(|(k, v)| format!("{k} {v}")).collect();
        out.push_str(&format!("  {name:<width$}  {}\n", kinds.join(", ")));
    }
    if results
        .iter()
        .any(|(n, _)| n == limits::SPIN || n == limits::FUTEX)
    {
        out.push_str(
            "  (limit-spin and limit-futex carry no payload: a message is a counter that moved, \
             which a scribbler can fake; their valid count only says that no call failed)\n",
        );
    }
    out.push_str("\nan example of each:\n");
    for (k, v) in &total.examples {
        out.push_str(&format!("  {k}: {v}\n"));
    }
    for leak in &total.leaks {
        out.push_str(&format!("leak: {leak}\n"));
    }
    out
}

fn row(out: &mut String, name: &str, t: &Tally, width: usize) {
    let errors: u64 = t.errors.values().sum();
    out.push_str(&format!("{name:<width$}"));
    for v in [
        t.rounds,
        t.receives,
        t.valid,
        t.clean,
        errors,
        t.timeouts,
        t.killed,
        t.panics,
        t.crashes,
        t.leaks.len() as u64,
    ] {
        out.push_str(&format!(" {v:>9}"));
    }
    out.push('\n');
}

/// ipclab's objects now, each with whether its creator is alive: what
/// `ipclab ls` finds ([`crate::objects::listing`]: objects with ipclab's
/// marked names, objects its registry records, and records left without
/// an object). Another program's objects are never counted.
fn objects() -> BTreeMap<String, bool> {
    let listing = match crate::objects::listing::list() {
        Ok(listing) => listing,
        // Counted as a leak if it persists: nothing could be checked.
        Err(e) => return BTreeMap::from([(format!("ipclab ls failed: {e}"), false)]),
    };
    let found = listing.objects.iter().map(|f| {
        let id = f.id.map_or(String::new(), |id| format!(" id {id}"));
        (format!("{} {}{id}", f.kind, f.name), f.alive)
    });
    let stale = listing.stale.iter().map(|s| {
        let path = s.record.path();
        (format!("registry record {}", path.display()), s.alive)
    });
    found.chain(stale).collect()
}

/// ipclab objects that appeared since `before` and whose creator is dead,
/// still there a moment later (one being removed as we look is no leak).
fn leaks(before: &BTreeMap<String, bool>) -> Vec<String> {
    let dead_new = || -> BTreeSet<String> {
        objects()
            .into_iter()
            .filter(|(name, alive)| !alive && !before.contains_key(name))
            .map(|(name, _)| name)
            .collect()
    };
    let new = dead_new();
    if new.is_empty() {
        return Vec::new();
    }
    std::thread::sleep(Duration::from_millis(1500));
    dead_new().intersection(&new).cloned().collect()
}
