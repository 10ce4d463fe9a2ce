//! What one cell is asked to do, and what its processes report back.
//!
//! A cell is one mechanism, one pattern, one size, one placement. The
//! orchestrating `ipclab` process hands a [`CellSpec`] to a fresh supervisor
//! process (`ipclab __cell`) and reads a [`CellOutcome`] back, both as JSON.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::transport::ChannelConfig;

/// How the two sides exchange messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pattern {
    /// The client sends SIZE bytes, the server returns SIZE bytes.
    Pingpong,
    /// The client sends SIZE-byte messages as fast as it can; the server
    /// times them.
    Stream,
    /// Fresh processes and a fresh channel for every single round trip.
    Oneshot,
}

impl Pattern {
    pub const ALL: [Pattern; 3] = [Pattern::Pingpong, Pattern::Stream, Pattern::Oneshot];

    pub fn as_str(self) -> &'static str {
        match self {
            Pattern::Pingpong => "pingpong",
            Pattern::Stream => "stream",
            Pattern::Oneshot => "oneshot",
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Pattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Pattern::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown pattern '{s}' (known: pingpong, stream, oneshot)"))
    }
}

/// Where the two processes run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// Pinned to two different CPUs.
    CrossCore,
    /// Both pinned to the same CPU: every hand-over is a context switch.
    SameCore,
    /// Left to the scheduler; the CPUs each side was seen on are recorded.
    Unpinned,
}

impl Placement {
    pub const ALL: [Placement; 3] = [
        Placement::CrossCore,
        Placement::SameCore,
        Placement::Unpinned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Placement::CrossCore => "cross-core",
            Placement::SameCore => "same-core",
            Placement::Unpinned => "unpinned",
        }
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Placement {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        // `spread` and `packed` are what the placements are called when
        // there are many pairs (`harness::topology`).
        match s {
            "spread" => return Ok(Placement::CrossCore),
            "packed" => return Ok(Placement::SameCore),
            _ => {}
        }
        Placement::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown placement '{s}' (known: cross-core or spread, same-core or packed, \
                     unpinned)"
                )
            })
    }
}

/// One cell, as the supervisor receives it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CellSpec {
    pub mechanism: String,
    pub pattern: Pattern,
    pub channel: ChannelConfig,
    pub placement: Placement,
    /// Client/server pairs, each with its own channel, run at once
    /// (`harness::topology`).
    #[serde(default = "one")]
    pub pairs: usize,
    /// CPU of the client and of the server of each pair; `None` when
    /// unpinned.
    pub cpus: Option<Vec<(usize, usize)>>,
    /// Open loop: round trips per second each client starts, on a fixed
    /// schedule (`harness::pace`); `None` sends the next as soon as the last
    /// came back (closed loop, `--rate max`). Pingpong only.
    #[serde(default)]
    pub rate: Option<f64>,
    /// Time spent before measuring.
    pub warmup_ns: u64,
    /// Minimum measured time (unless `iterations` is set).
    pub duration_ns: u64,
    /// Exact number of measured iterations, overriding `duration_ns`.
    pub iterations: Option<u64>,
    /// Fewest measured iterations when timing by duration.
    pub min_iterations: u64,
    pub verify: bool,
    /// The supervisor kills both sides and fails the cell after this long.
    pub timeout_ns: u64,
}

/// What a cell's supervisor reads: the cell, and where its server side
/// runs when not on this host (`harness::remote`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CellRequest {
    #[serde(flatten)]
    pub spec: CellSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<super::remote::RemoteSpec>,
}

fn one() -> usize {
    1
}

impl CellOutcome {
    /// Every pair's sides, the first pair's first.
    pub fn pairs(&self) -> impl Iterator<Item = (&SideReport, &SideReport)> {
        std::iter::once((&self.client, &self.server))
            .chain(self.more_pairs.iter().map(|p| (&p.client, &p.server)))
    }
}

impl CellSpec {
    /// Timing by duration: whether `measured` iterations over `elapsed` ns
    /// make a window. The duration and the fewest iterations; or, when the
    /// fewest would overrun the budget (a spinning pair on one CPU pays a
    /// scheduler time slice per hand-over, milliseconds), twice the
    /// duration and at least one: a row with fewer iterations, which it
    /// reports, rather than a cell that runs for minutes.
    ///
    /// With several pairs, every client stops when the duration has passed
    /// (with at least one round trip): the pairs started together, so
    /// they then measure over the same window, and a pair starved by the
    /// others shows as few round trips rather than as a window of its own
    /// that runs on after they stopped.
    pub fn enough(&self, measured: u64, elapsed: u64) -> bool {
        if self.pairs > 1 {
            return measured >= 1 && elapsed >= self.duration_ns;
        }
        measured >= 1
            && elapsed >= self.duration_ns
            && (measured >= self.min_iterations
                || (self.duration_ns > 0 && elapsed >= self.duration_ns.saturating_mul(2)))
    }
}

/// What one side (client or server process) reports to the supervisor.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SideReport {
    /// `CLOCK_MONOTONIC` when the side had its endpoint.
    pub attached_at_ns: u64,
    /// Time spent dropping the endpoint (unmapping, closing).
    pub teardown_ns: u64,
    /// Messages (or round trips) in the measured window.
    pub measured: u64,
    /// Every message (or round trip) including warm-up.
    pub total: u64,
    /// `CLOCK_MONOTONIC` when the measured window began (the same clock in
    /// every process of a cell).
    #[serde(default)]
    pub begin_ns: u64,
    /// Wall time of the measured window.
    pub wall_ns: u64,
    /// Open loop: from the window's start to the send of its last round
    /// trip, plus one interval: the time the client took to start the
    /// round trips that were due one interval apart. It keeps up with
    /// the schedule (`measured` over this is the offered rate) unless the
    /// channel holds it back; a stall it catches up on, or a slow last
    /// reply, does not count against it.
    #[serde(default)]
    pub paced_ns: u64,
    /// CPU time (user + system) of the measured window.
    pub cpu_ns: u64,
    /// Transfers needed per received message, over all received messages.
    pub rounds: u64,
    /// Round-trip times as (value, count) pairs of an HDR histogram; in an
    /// open-loop cell, from the moment each round trip was due.
    pub histogram: Vec<(u64, u64)>,
    /// Open loop only: the same round trips from the moment each was
    /// actually sent, as a closed-loop tool would time them (coordinated
    /// omission left in).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uncorrected: Vec<(u64, u64)>,
    /// Context switches of this process in the measured window
    /// (`getrusage`): waits that gave up the CPU, and preemptions.
    #[serde(default)]
    pub voluntary_switches: u64,
    #[serde(default)]
    pub involuntary_switches: u64,
    /// The CPUs this side was seen running on.
    pub cpus_seen: Vec<usize>,
    pub error: Option<String>,
    /// Messages this side received whole and verified, also when it then
    /// failed (for fault injection's counts).
    #[serde(default)]
    pub received: u64,
    /// What ended a failed side, for fault injection's counts: `where:
    /// what`, e.g. `recv: protocol`, `send: peer gone`, `panic`, `signal
    /// 11` (see `harness::scribbler::classify`).
    #[serde(default)]
    pub error_kind: Option<String>,
}

/// One fresh-process iteration of the `oneshot` pattern.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct OneshotSample {
    /// From the start of `prepare` to the last side reaped and the channel's
    /// objects removed.
    pub total_ns: u64,
    /// From the start of `prepare` to both sides attached.
    pub setup_ns: u64,
}

/// The two sides of one pair.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Sides {
    pub client: SideReport,
    pub server: SideReport,
}

/// What the supervisor reports for a whole cell.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CellOutcome {
    /// The first pair's sides (the only pair, unless `--pairs`).
    pub client: SideReport,
    pub server: SideReport,
    /// The sides of pairs 2 to N.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_pairs: Vec<Sides>,
    pub oneshot: Vec<OneshotSample>,
    pub setup_ns: u64,
    pub teardown_ns: u64,
    pub error: Option<String>,
}
