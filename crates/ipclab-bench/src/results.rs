//! The results of a run: what the JSON file holds (schema 1, documented in
//! the README) and what every table and export is made from.

use serde::{Deserialize, Serialize};

use crate::harness::clock::TimerCalibration;
use crate::interval::Interval;
use crate::machine::Machine;
use crate::stats::Stats;

/// The version of the JSON layout. 2 added repetitions and intervals
/// (`repeat`, `seed`, `repetitions`, `ci95`, `vs_limit_ci95`); 3 added
/// pairs and offered load (`pairs`, `rates`, `oversubscription`,
/// `offered_rate`, `achieved_rate`, `sustained`, `rtt_uncorrected_ns`,
/// `round_trips`, `pair_throughput`, `context_switches_per_message`). A
/// reader takes 1 to 3 and refuses any other.
pub const SCHEMA: u32 = 3;

/// A whole run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Run {
    pub schema: u32,
    pub ipclab_version: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub machine: Machine,
    pub timer: TimerCalibration,
    pub settings: Settings,
    pub rows: Vec<Row>,
    /// Cells that failed, each with its error.
    pub failures: Vec<Failure>,
    /// Mechanisms this machine refuses, and why.
    pub skipped: Vec<Skipped>,
    /// False when the run was interrupted or stopped by a failure.
    pub complete: bool,
}

/// What the run was asked to do.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Settings {
    pub mechanisms: Vec<String>,
    pub sizes: Vec<usize>,
    pub patterns: Vec<String>,
    pub placements: Vec<String>,
    pub warmup_ns: u64,
    pub duration_ns: u64,
    pub iterations: Option<u64>,
    pub verify: bool,
    pub segment_size: Option<usize>,
    /// Buffers in flight; 0 when each channel chose (see the README).
    pub segments: usize,
    /// Whether the limits (`limit-spin`, `limit-futex`, `limit-copy`) were
    /// measured beside the mechanisms.
    #[serde(default)]
    pub limits: bool,
    /// Measurements of every cell, each in a newly shuffled order (1 in
    /// schema 1).
    #[serde(default = "one")]
    pub repeat: usize,
    /// The seed of the shuffles (`--seed` replays the order).
    #[serde(default)]
    pub seed: u64,
    /// Numbers of pairs measured (`--pairs`; schema 3).
    #[serde(default = "ones")]
    pub pairs: Vec<usize>,
    /// Offered rates of pingpong, round trips per second per pair, `null`
    /// for closed loop (`--rate`; schema 3).
    #[serde(default = "closed_loop")]
    pub rates: Vec<Option<f64>>,
}

fn ones() -> Vec<usize> {
    vec![1]
}

fn closed_loop() -> Vec<Option<f64>> {
    vec![None]
}

fn one() -> usize {
    1
}

/// One cell: a mechanism, pattern, size and placement.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    pub mechanism: String,
    pub family: String,
    /// How the sides wait for each other (`kernel (blocking read)`, `futex`, `busy-poll`, …).
    pub sync: String,
    /// Whether a waiting side spins (matched with `limit-spin`) rather than
    /// sleeps (matched with `limit-futex`).
    #[serde(default)]
    pub polls: bool,
    /// Times the payload is copied from the buffer the sender fills to the
    /// bytes the receiver checks (`transport::Copies`); `null` where the
    /// kernel decides.
    #[serde(default)]
    pub copies_per_message: Option<u8>,
    /// Where those copies happen.
    #[serde(default)]
    pub copies_why: String,
    pub pattern: String,
    /// Bytes per message, each way.
    pub size: usize,
    pub placement: String,
    /// `remote` placement (`ipclab run --remote`): the address of the
    /// `ipclab serve` the server side ran under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// Client/server pairs measured at once, each with its own channel
    /// (schema 3; 1 before).
    #[serde(default = "one")]
    pub pairs: usize,
    /// Processes per CPU they could run on (`harness::topology`): above 1
    /// some process waits for a CPU whenever all want one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oversubscription: Option<f64>,
    /// Open loop (`--rate`): round trips per second each pair was offered;
    /// none for closed loop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered_rate: Option<f64>,
    /// Open loop: round trips per second each pair achieved, on average.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub achieved_rate: Option<f64>,
    /// Open loop: whether the achieved rate reached
    /// [`Row::SUSTAINED`] of the offered one. A row that did not is no
    /// measurement of that load: its percentiles grow with the run's
    /// length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sustained: Option<bool>,
    /// The CPUs each side was seen running on (with pairs, every client's
    /// and every server's).
    pub cpus: Cpus,
    /// Measured iterations: round trips (pingpong), messages received in
    /// the window (stream), fresh-process runs (oneshot).
    pub iterations: u64,
    /// Whether every byte of every message was checked.
    pub verified: bool,
    /// Transfers per message at the receiver (reads, datagrams, segment
    /// hand-overs); 1 when a message fits the mechanism at once.
    pub rounds: f64,
    /// From creating the channel to both sides attached (the median over
    /// runs, for oneshot).
    pub setup_ns: u64,
    /// Closing and removing the channel.
    pub teardown_ns: u64,
    /// Round-trip time (pingpong).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rtt_ns: Option<Stats>,
    /// Points of the round-trip distribution, (quantile, ns) (pingpong).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub rtt_cdf: Vec<(f64, u64)>,
    /// Open loop: the same round trips timed from their actual send rather
    /// than from when they were due, as a closed-loop tool would time them
    /// (`rtt_ns` is corrected for coordinated omission; this is not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_uncorrected_ns: Option<Stats>,
    /// Pingpong: round trips per second over all pairs, and the bytes of
    /// the requests (each way carries as many).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round_trips: Option<Throughput>,
    /// The slowest and the fastest pair: round trips (pingpong) or messages
    /// (stream) per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair_throughput: Option<MinMax>,
    /// Context switches of all processes per round trip (pingpong) or
    /// message (stream), from `getrusage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_switches_per_message: Option<Switches>,
    /// Throughput at the receiver (stream).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub throughput: Option<Throughput>,
    /// Fork-to-reap time of a whole fresh-process run (oneshot).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub oneshot_ns: Option<Stats>,
    pub cpu_ns_per_message: CpuPerMessage,
    /// How many times the matching limit of the same run and placement
    /// this row costs (see `crate::vs_limit`): 1 is at the floor. The
    /// median over repetitions of each repetition's figure over the limit
    /// measured in that repetition (`crate::pooled`). `null` for oneshot,
    /// or when the run measured no matching limit.
    #[serde(default)]
    pub vs_limit: Option<f64>,
    /// The 95 % interval of `vs_limit` from the repetitions (schema 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vs_limit_ci95: Option<Interval>,
    /// Pingpong: how many times `limit-bare`'s p50 (the bare hand-off, the
    /// minimal C ping-pong's protocol under the same harness) at the same
    /// size and condition this row's p50 is (see `crate::vs_limit`); paired
    /// per repetition as `vs_limit` is. Added in schema 3, absent before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vs_bare: Option<f64>,
    /// Each repetition's headline figure ([`Row::figure`]), in the order
    /// they ran (schema 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repetitions: Vec<f64>,
    /// The 95 % interval of the headline figure from the repetitions
    /// (`crate::interval`); none from a single repetition (schema 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci95: Option<Interval>,
}

impl Row {
    /// The share of the offered rate an open-loop row must achieve to count
    /// as sustained.
    pub const SUSTAINED: f64 = 0.95;

    /// What besides mechanism, pattern and size tells this row's cell
    /// apart: the placement, then the pairs and the offered rate when not 1
    /// and closed loop (`cross-core`, `cross-core, 4 pairs, 10k/s`). Tables,
    /// summaries, limits and comparisons group rows by it.
    pub fn condition(&self) -> String {
        condition(&self.placement, self.pairs, self.offered_rate)
    }

    /// The headline figure: the p50 round trip in ns (pingpong), the p50
    /// fresh-process run in ns (oneshot), or messages per second (stream).
    pub fn figure(&self) -> Option<f64> {
        if let Some(s) = &self.rtt_ns {
            Some(s.p50 as f64)
        } else if let Some(t) = &self.throughput {
            Some(t.messages_per_s)
        } else {
            self.oneshot_ns.map(|s| s.p50 as f64)
        }
    }

    /// Whether a larger [`Row::figure`] is better (throughput).
    pub fn higher_is_better(&self) -> bool {
        self.throughput.is_some()
    }
}

/// [`Row::condition`] of a cell not measured yet.
pub fn condition(placement: &str, pairs: usize, rate: Option<f64>) -> String {
    let mut c = placement.to_string();
    if pairs != 1 {
        c.push_str(&format!(", {pairs} pairs"));
    }
    if let Some(rate) = rate {
        c.push_str(&format!(", {}", crate::units::rate_label(rate)));
    }
    c
}

/// The smallest and the largest of some figure.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MinMax {
    pub min: f64,
    pub max: f64,
}

/// Context switches per message: voluntary (a process waited and gave up
/// its CPU) and involuntary (it was preempted).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Switches {
    pub voluntary: f64,
    pub involuntary: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Cpus {
    pub client: Vec<usize>,
    pub server: Vec<usize>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Throughput {
    pub bytes_per_s: f64,
    pub messages_per_s: f64,
}

/// CPU time (user + system) per message (stream) or per round trip
/// (pingpong), on each side: what a polling side pays for its speed.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct CpuPerMessage {
    pub client: f64,
    pub server: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Failure {
    pub mechanism: String,
    pub pattern: String,
    pub size: usize,
    pub placement: String,
    #[serde(default = "one")]
    pub pairs: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered_rate: Option<f64>,
    pub error: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Skipped {
    pub mechanism: String,
    pub reason: String,
}
