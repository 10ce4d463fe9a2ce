//! A whole run: every cell of mechanisms × patterns × sizes × placements,
//! one supervisor process each, results gathered into a [`Run`].

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

use crate::harness::cell::{handle_interrupts, run_cell, run_remote_cell, stopped};
use crate::harness::clock::TimerCalibration;
use crate::harness::remote::RemoteSpec;
use crate::harness::remote::control::{self, Msg};
use crate::harness::scribbler::Noise;
use crate::harness::spec::{CellSpec, Pattern, Placement, SideReport};
use crate::harness::topology::{self, MAX_PAIRS};
use crate::machine::{Machine, allowed_cpus};
use crate::mechanisms::limits::{LIMIT_BARE, LIMIT_COPY, LIMIT_FUTEX, LIMIT_SPIN};
use crate::pooled::{self, Key, Measured};
use crate::results::{Failure, Row, Run, SCHEMA, Settings, Skipped};
use crate::transport::{ChannelConfig, Family, Transport};
use crate::units;

/// What a run measures, as the command line gave it.
pub struct Options {
    pub mechanisms: Vec<&'static dyn Transport>,
    pub sizes: Vec<usize>,
    pub patterns: Vec<Pattern>,
    pub placements: Vec<Placement>,
    /// Client and server CPU for pinned placements; `None` picks the first
    /// two CPUs this process may use.
    pub cpus: Option<(usize, usize)>,
    pub warmup_ns: u64,
    pub duration_ns: u64,
    pub iterations: Option<u64>,
    pub verify: bool,
    pub segment_size: Option<usize>,
    pub segments: usize,
    /// Per-cell watchdog.
    pub timeout_ns: u64,
    /// Stop at the first failing cell instead of recording it and going on.
    pub fail_fast: bool,
    /// Measure the limits (`mechanisms::limits`) beside the mechanisms.
    pub limits: bool,
    /// Measurements of every cell (`--repeat`), each in a new order.
    pub repeat: usize,
    /// The seed of the shuffled orders (`--seed`).
    pub seed: u64,
    /// Numbers of client/server pairs to run at once (`--pairs`).
    pub pairs: Vec<usize>,
    /// Offered rates of pingpong, round trips per second per pair; `None`
    /// is closed loop (`--rate`). Stream and oneshot run closed loop only.
    pub rates: Vec<Option<f64>>,
    /// The server sides run under `ipclab serve` there (`--remote`): one
    /// pair, pingpong and stream, mechanisms that can cross hosts, no
    /// limits (they are floors of this host).
    pub remote: Option<RemoteSpec>,
}

/// The fewest measured iterations of a cell timed by duration.
const MIN_ITERATIONS: u64 = 10;

impl Options {
    /// Repetitions that will run: `repeat`, or fewer when `--iterations`
    /// gives fewer round trips than that (each repetition measures at
    /// least one).
    pub fn repetitions(&self) -> usize {
        let k = self.repeat.max(1);
        match self.iterations {
            Some(n) => k.min(n.max(1) as usize),
            None => k,
        }
    }

    /// Checks what can be checked before anything runs; the error is one
    /// line. Returns the CPUs pinned placements use, in order.
    pub fn validate(&self) -> Result<Vec<usize>> {
        let allowed = allowed_cpus();
        if let Some(&most) = self.pairs.iter().max() {
            check_pairs(most)?;
        }
        let mut labels: Vec<String> = Vec::new();
        for &rate in self.rates.iter().flatten() {
            let label = units::rate_label(rate);
            if labels.contains(&label) {
                bail!(
                    "--rate has two rates shown as {label}: give rates that differ in their \
                     first three figures"
                );
            }
            labels.push(label);
        }
        // Exactly pingpong: the default patterns, or a list with stream or
        // oneshot beside pingpong, would run those at `max` under a rate
        // they never had.
        if self.rates.iter().any(Option::is_some) && self.patterns != [Pattern::Pingpong] {
            bail!(
                "--rate paces round trips, so it needs -p pingpong alone (a stream has no round \
                 trips to time, and oneshot starts fresh processes for each; without -p all \
                 three run); give -p pingpong or --rate max"
            );
        }
        if self.remote.is_some() {
            self.validate_remote()?;
        }
        let (client, server) = match self.cpus {
            Some(pair) => pair,
            None => {
                let needs_two = self.placements.contains(&Placement::CrossCore);
                match allowed.as_slice() {
                    [a, b, ..] => (*a, *b),
                    [a] if !needs_two => (*a, *a),
                    _ => bail!(
                        "cross-core placement needs two CPUs; this process may use only {allowed:?}"
                    ),
                }
            }
        };
        for cpu in [client, server] {
            if !allowed.contains(&cpu) {
                bail!(
                    "CPU {cpu} does not exist or is not allowed here (allowed: {})",
                    cpu_list(&allowed)
                );
            }
        }
        if self.placements.contains(&Placement::CrossCore) && client == server {
            bail!("cross-core placement needs two different CPUs, got {client} and {server}");
        }
        let available = available_memory();
        // Both directions' segments of a shared-memory channel.
        if let Some(segment) = self.segment_size {
            let config = ChannelConfig {
                size: 0,
                segment_size: Some(segment),
                segments: self.segments,
            };
            let per_direction = config.segments_for(segment);
            let needed = segment
                .saturating_mul(per_direction)
                .saturating_mul(2)
                .saturating_mul(self.pairs.iter().copied().max().unwrap_or(1));
            if needed > available {
                bail!(
                    "a segment size of {} needs about {} of memory (2 × {per_direction} segments), \
                     but only {} is available",
                    units::size(segment),
                    units::size(needed),
                    units::size(available)
                );
            }
        }
        // Each side holds a few message buffers; refuse what cannot fit.
        let most_pairs = self.pairs.iter().copied().max().unwrap_or(1);
        if let Some(&largest) = self.sizes.iter().max() {
            let needed = largest.saturating_mul(6).saturating_mul(most_pairs);
            if needed > available {
                bail!(
                    "a size of {} needs about {} of memory{}, but only {} is available",
                    units::size(largest),
                    units::size(needed),
                    match most_pairs {
                        1 => String::new(),
                        n => format!(" with {n} pairs"),
                    },
                    units::size(available)
                );
            }
        }
        // The pinned CPUs: the two given, or every allowed one from the
        // first two, for the pairs to spread over.
        let mut cpus = vec![client, server];
        cpus.dedup();
        if self.cpus.is_none() {
            cpus.extend(allowed.iter().filter(|c| **c != client && **c != server));
        }
        Ok(cpus)
    }
}

impl Options {
    /// What a remote run cannot do, refused before anything runs.
    fn validate_remote(&self) -> Result<()> {
        let local: Vec<&str> = self
            .mechanisms
            .iter()
            .filter(|t| t.cross_host().is_none())
            .map(|t| t.info().name)
            .collect();
        if !local.is_empty() {
            bail!(
                "{} cannot cross hosts; with --remote give mechanisms that can: {}",
                local.join(", "),
                crate::harness::remote::serve::cross_host_names()
            );
        }
        if self.pairs.iter().any(|&p| p != 1) {
            bail!("--remote runs one pair; leave out --pairs");
        }
        if self.patterns.is_empty() {
            bail!(
                "--remote measures pingpong and stream (oneshot starts fresh processes on both \
                 hosts for each round trip, which it does not do)"
            );
        }
        Ok(())
    }
}

/// Refuses no pairs, more than [`MAX_PAIRS`], or more processes than
/// this user may start.
fn check_pairs(pairs: usize) -> Result<()> {
    if pairs == 0 {
        bail!("--pairs 0 runs nothing; give at least 1");
    }
    if pairs > MAX_PAIRS {
        bail!("--pairs {pairs} is more than {MAX_PAIRS} pairs (2 processes each)");
    }
    // The supervisor keeps a report and a pidfd per side, 4 a pair, beside
    // each pair's guard and its own few.
    if let Some(limit) = rustix::process::getrlimit(rustix::process::Resource::Nofile).current {
        let needed = 4 * pairs as u64 + 64;
        if needed > limit {
            bail!(
                "--pairs {pairs} needs about {needed} open files in the supervisor, but \
                 RLIMIT_NOFILE (ulimit -n) allows {limit}"
            );
        }
    }
    if let Some(limit) = rustix::process::getrlimit(rustix::process::Resource::Nproc).current {
        // The user's other processes count too: this is the least needed.
        let needed = 2 * pairs as u64 + 2;
        if needed > limit {
            bail!(
                "--pairs {pairs} needs {needed} processes with the run's own two, but \
                 RLIMIT_NPROC (ulimit -u) allows {limit} for this user"
            );
        }
    }
    Ok(())
}

fn cpu_list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// `MemAvailable` from `/proc/meminfo`, in bytes.
fn available_memory() -> usize {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<usize>().ok())
        })
        .map_or(usize::MAX, |kb| kb * 1024)
}

/// Called after every cell with the run so far, so that exports are
/// rewritten and an interrupted run keeps what it measured.
pub type OnCell<'a> = &'a mut dyn FnMut(&Run) -> Result<()>;

/// Runs every cell; `exe` is the `ipclab` binary (it re-executes itself as
/// each cell's supervisor).
pub fn run(options: &Options, exe: &Path, on_cell: OnCell<'_>) -> Result<Run> {
    let cpus = options.validate()?;
    handle_interrupts();
    if let Some(remote) = &options.remote {
        check_remote(remote, options.timeout_ns)?;
    }
    let mut run = Run {
        schema: SCHEMA,
        ipclab_version: env!("CARGO_PKG_VERSION").to_string(),
        started_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        machine: Machine::read(),
        timer: TimerCalibration::measure(),
        settings: Settings {
            mechanisms: options
                .mechanisms
                .iter()
                .map(|t| t.info().name.to_string())
                .collect(),
            sizes: options.sizes.clone(),
            patterns: options.patterns.iter().map(|p| p.to_string()).collect(),
            placements: options.placements.iter().map(|p| p.to_string()).collect(),
            warmup_ns: options.warmup_ns,
            duration_ns: options.duration_ns,
            iterations: options.iterations,
            verify: options.verify,
            segment_size: options.segment_size,
            segments: options.segments,
            limits: options.limits,
            repeat: options.repeat,
            seed: options.seed,
            pairs: options.pairs.clone(),
            rates: options.rates.clone(),
        },
        rows: Vec::new(),
        failures: Vec::new(),
        skipped: Vec::new(),
        complete: false,
    };
    let mut mechanisms = Vec::new();
    for &t in &options.mechanisms {
        match t.available() {
            Ok(()) => mechanisms.push(t),
            Err(reason) => run.skipped.push(Skipped {
                mechanism: t.info().name.into(),
                reason,
            }),
        }
    }
    let cells = plan(&mechanisms, options);
    let order: Vec<Key> = cells
        .iter()
        .map(|c| {
            let mut key = c.key();
            if options.remote.is_some() {
                key.3 = crate::results::condition(REMOTE, c.pairs, c.rate);
            }
            key
        })
        .collect();
    let repeat = options.repetitions();
    run.settings.repeat = repeat;
    let progress = Progress::new((cells.len() * repeat) as u64);
    let mut shuffle = Noise(splitmix(options.seed));
    let mut measured: Vec<Measured> = Vec::new();
    'repetitions: for rep in 0..repeat {
        let mut this = cells.clone();
        if repeat > 1 {
            shuffled(&mut this, &mut shuffle);
        }
        for cell in this {
            if stopped() {
                break 'repetitions;
            }
            let Cell {
                t,
                pattern,
                size,
                placement,
                pairs,
                rate,
            } = cell;
            let info = t.info();
            let spec = CellSpec {
                mechanism: info.name.to_string(),
                pattern,
                channel: ChannelConfig {
                    size,
                    segment_size: options.segment_size,
                    segments: options.segments,
                },
                placement,
                pairs,
                cpus: topology::pin(placement, pairs, &cpus),
                rate,
                // Each repetition gets its share of the time, so that a
                // run takes about as long whatever `--repeat`.
                warmup_ns: options.warmup_ns / repeat as u64,
                duration_ns: options.duration_ns / repeat as u64,
                // The limits run for the cell's time budget (`--duration`),
                // never for the user's count: a spinning limit on one CPU
                // pays a scheduler time slice per round trip (milliseconds),
                // so `--iterations 20000 --placement same-core` would keep
                // it busy for minutes on rows nobody asked for. Their rows
                // say how many they measured.
                iterations: match info.family {
                    Family::Limit => None,
                    _ => options.iterations.map(|n| share(n, repeat, rep)),
                },
                min_iterations: MIN_ITERATIONS,
                verify: options.verify,
                timeout_ns: options.timeout_ns,
            };
            // Named as the row will be: a remote cell's placement is `remote`.
            let condition = match options.remote {
                Some(_) => crate::results::condition(REMOTE, pairs, rate),
                None => crate::results::condition(placement.as_str(), pairs, rate),
            };
            let mut label = format!("{} {pattern} {} {condition}", info.name, units::size(size));
            if repeat > 1 {
                label.push_str(&format!(" ({}/{repeat})", rep + 1));
            }
            progress.start(&label);
            let result = match &options.remote {
                Some(remote) => run_remote_cell(exe, &spec, remote),
                None => run_cell(exe, &spec),
            };
            match result {
                Ok(outcome) => {
                    let merged = |h: fn(&SideReport) -> &Vec<(u64, u64)>| {
                        outcome
                            .pairs()
                            .flat_map(|(c, _)| h(c).iter().copied())
                            .collect()
                    };
                    let round_trips = merged(|c| &c.histogram);
                    let uncorrected = merged(|c| &c.uncorrected);
                    let oneshot_ns = outcome.oneshot.iter().map(|s| s.total_ns).collect();
                    let mut row = crate::row::row(t, &spec, outcome);
                    if let Some(remote) = &options.remote {
                        row.placement = REMOTE.into();
                        row.remote = Some(remote.address.clone());
                        row.oversubscription = None;
                    }
                    progress.done(&label, &headline(&row));
                    measured.push(Measured {
                        repetition: rep,
                        row,
                        round_trips,
                        uncorrected,
                        oneshot_ns,
                    });
                    run.rows = pooled::rows(&measured, &order);
                }
                Err(_) if stopped() => break 'repetitions,
                Err(e) => {
                    let mut error = format!("{e:#}");
                    if repeat > 1 {
                        error = format!("repetition {} of {repeat}: {error}", rep + 1);
                    }
                    progress.failed(&label, &error);
                    run.failures.push(Failure {
                        mechanism: info.name.into(),
                        pattern: pattern.to_string(),
                        size,
                        placement: match options.remote {
                            Some(_) => REMOTE.into(),
                            None => placement.to_string(),
                        },
                        pairs,
                        offered_rate: rate,
                        error: error.clone(),
                    });
                    if options.fail_fast {
                        on_cell(&run)?;
                        break 'repetitions;
                    }
                    // A server that went away fails the run, not every
                    // cell after it.
                    if let Some(remote) = &options.remote
                        && let Err(e) = check_remote(remote, options.timeout_ns)
                    {
                        on_cell(&run)?;
                        progress.finish();
                        return Err(e.context(format!("after {label} failed ({error})")));
                    }
                }
            }
            on_cell(&run)?;
        }
    }
    progress.finish();
    if let Some(remote) = &options.remote {
        // The server is free for another run (it would be after a few
        // idle seconds anyway).
        let _ = control::handshake(
            &remote.address,
            &remote.token,
            &remote.run,
            Duration::from_secs(5),
        )
        .and_then(|mut c| c.send(&Msg::Done, Duration::from_secs(5)));
    }
    run.complete = !stopped() && (run.failures.is_empty() || !options.fail_fast);
    Ok(run)
}

/// The placement of rows whose server side ran on another host.
pub const REMOTE: &str = "remote";

/// Says hello to the server of a remote run: an error (one line) when it
/// cannot be reached, refuses us, or runs another version.
fn check_remote(remote: &RemoteSpec, timeout_ns: u64) -> Result<()> {
    control::handshake(
        &remote.address,
        &remote.token,
        &remote.run,
        Duration::from_nanos(timeout_ns),
    )
    .map(drop)
}

/// Repetition `rep`'s share of `n` iterations over `repeat` repetitions
/// (the first `n % repeat` take one more).
fn share(n: u64, repeat: usize, rep: usize) -> u64 {
    let k = repeat as u64;
    n / k + u64::from((rep as u64) < n % k)
}

/// splitmix64 of the seed: every seed its own non-zero xorshift state
/// (`seed | 1` gave seeds 2k and 2k+1 the same order).
fn splitmix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    match z ^ (z >> 31) {
        0 => 1,
        z => z,
    }
}

/// Fisher-Yates with the run's seeded generator.
fn shuffled<T>(cells: &mut [T], noise: &mut Noise) {
    for i in (1..cells.len()).rev() {
        let j = noise.below(i as u64 + 1) as usize;
        cells.swap(i, j);
    }
}

/// One cell of the plan.
#[derive(Clone, Copy)]
struct Cell {
    t: &'static dyn Transport,
    pattern: Pattern,
    size: usize,
    placement: Placement,
    pairs: usize,
    rate: Option<f64>,
}

impl Cell {
    fn key(&self) -> Key {
        (
            self.t.info().name.to_string(),
            self.pattern.to_string(),
            self.size,
            crate::results::condition(self.placement.as_str(), self.pairs, self.rate),
        )
    }
}

/// Every cell of a run, in order: per placement, pairs, pattern and rate,
/// the limits of each size just before the mechanisms (`limit-spin` and
/// `limit-futex` once, at size 0, ahead of the pingpong sizes; `limit-copy`
/// at every size of pingpong and stream). Rates other than `max` apply to
/// pingpong only; oneshot runs with one pair.
fn plan(mechanisms: &[&'static dyn Transport], options: &Options) -> Vec<Cell> {
    let mut cells = Vec::new();
    let closed_loop = [None];
    for &placement in &options.placements {
        for &pairs in &options.pairs {
            for &pattern in &options.patterns {
                let rates: &[Option<f64>] = match pattern {
                    Pattern::Pingpong => &options.rates,
                    _ => &closed_loop,
                };
                // Oneshot times fresh processes for one round trip: with
                // several pairs it would time N forks as one; it runs with
                // one pair, once per placement.
                if pattern == Pattern::Oneshot && options.pairs.first() != Some(&pairs) {
                    continue;
                }
                let pairs = if pattern == Pattern::Oneshot {
                    1
                } else {
                    pairs
                };
                for &rate in rates {
                    let mut add = |t: &'static dyn Transport, size: usize| {
                        cells.push(Cell {
                            t,
                            pattern,
                            size,
                            placement,
                            pairs,
                            rate,
                        })
                    };
                    if options.limits && pattern == Pattern::Pingpong {
                        add(&LIMIT_SPIN, 0);
                        add(&LIMIT_FUTEX, 0);
                    }
                    for &size in &options.sizes {
                        if options.limits && pattern == Pattern::Pingpong {
                            add(&LIMIT_BARE, size);
                        }
                        if options.limits && pattern != Pattern::Oneshot {
                            add(&LIMIT_COPY, size);
                        }
                        for &t in mechanisms {
                            add(t, size);
                        }
                    }
                }
            }
        }
    }
    cells
}

/// The one figure that sums up a row, for progress lines.
pub fn headline(row: &Row) -> String {
    if let Some(r) = &row.rtt_ns {
        format!("p50 {}", units::duration(r.p50 as f64))
    } else if let Some(t) = &row.throughput {
        units::rate(t.bytes_per_s)
    } else if let Some(o) = &row.oneshot_ns {
        format!("p50 {}", units::duration(o.p50 as f64))
    } else {
        String::new()
    }
}

/// A progress bar on a terminal, a line per cell otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    done: std::cell::Cell<u64>,
}

impl Progress {
    fn new(total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} {msg}")
                    .expect("the template is valid"),
            );
            bar
        });
        Progress {
            bar,
            total,
            done: std::cell::Cell::new(0),
        }
    }

    fn start(&self, label: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(label.to_string());
        }
    }

    fn done(&self, label: &str, figure: &str) {
        self.step(format!("{label}: {figure}"));
    }

    fn failed(&self, label: &str, error: &str) {
        self.step(format!("{label}: FAILED: {error}"));
    }

    fn step(&self, line: String) {
        self.done.set(self.done.get() + 1);
        match &self.bar {
            Some(bar) => {
                if line.contains("FAILED") {
                    bar.println(line);
                }
                bar.inc(1);
            }
            // A closed standard error (`2>&1 | head`) only loses the line.
            None => {
                let _ = writeln!(
                    std::io::stderr(),
                    "[{}/{}] {line}",
                    self.done.get(),
                    self.total
                );
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Where the default run keeps its files: `results/<timestamp>/`.
pub fn default_results_dir(started_at: &str) -> PathBuf {
    PathBuf::from("results").join(started_at.replace(':', "-"))
}
