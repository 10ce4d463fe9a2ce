//! The results of a run: what the JSON file holds (schema 1, documented in
//! the README) and what every table and export is made from.

use serde::{Deserialize, Serialize};

use crate::harness::clock::TimerCalibration;
use crate::interval::Interval;
use crate::machine::Machine;
use crate::stats::Stats;

/// The version of the JSON layout. 2 added repetitions and intervals
/// (`repeat`, `seed`, `repetitions`, `ci95`, `vs_limit_ci95`); a reader
/// takes 1 and 2 and refuses any other.
pub const SCHEMA: u32 = 2;

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
    /// The CPUs each side was seen running on.
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
    pub error: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Skipped {
    pub mechanism: String,
    pub reason: String,
}
