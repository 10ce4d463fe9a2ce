//! Synthetic rows of a loaded run (pairs and offered rates) for the unit
//! tests of the report.

use crate::interval::Interval;
use crate::results::{MinMax, Row, Run, Switches, Throughput};
use crate::vs_limit::tests::row;

/// A pingpong row of 64 B at `pairs` pairs: p50 and p99 in ns, round
/// trips per second of all pairs, a ±5 % interval on the p50.
pub fn pingpong(name: &str, polls: bool, pairs: usize, p50: u64, p99: u64, rt: f64) -> Row {
    let family = if name.starts_with("shm") {
        "shared-memory"
    } else {
        "message-passing"
    };
    let mut r = row(name, family, "pingpong", 64, polls, p50 as f64);
    r.pairs = pairs;
    r.oversubscription = Some(pairs as f64);
    if let Some(s) = r.rtt_ns.as_mut() {
        s.p99 = p99;
        s.p90 = p50.max(p99 / 2);
        s.p999 = p99 * 2;
        s.max = p99 * 4;
    }
    r.round_trips = Some(Throughput {
        bytes_per_s: rt * 64.0,
        messages_per_s: rt,
    });
    r.pair_throughput = Some(MinMax {
        min: rt / pairs as f64 * 0.8,
        max: rt / pairs as f64 * 1.2,
    });
    r.context_switches_per_message = Some(Switches {
        voluntary: if polls { 0.01 } else { 2.0 },
        involuntary: 0.5,
    });
    with_interval(r, 5.0)
}

/// The same at an offered rate per pair; `achieved` below 95 % of it is
/// not sustained.
pub fn open_loop(
    name: &str,
    polls: bool,
    pairs: usize,
    offered: f64,
    achieved: f64,
    p50: u64,
    p99: u64,
) -> Row {
    let mut r = pingpong(name, polls, pairs, p50, p99, achieved * pairs as f64);
    r.offered_rate = Some(offered);
    r.achieved_rate = Some(achieved);
    r.sustained = Some(achieved >= offered * Row::SUSTAINED);
    r.rtt_uncorrected_ns = r.rtt_ns.map(|mut s| {
        s.p99 /= 2;
        s
    });
    r
}

/// A stream row of 64 B at `pairs` pairs, messages per second of all.
pub fn stream(name: &str, polls: bool, pairs: usize, messages_per_s: f64) -> Row {
    let mut r = row(name, "shared-memory", "stream", 64, polls, messages_per_s);
    r.pairs = pairs;
    r.oversubscription = Some(pairs as f64);
    r.pair_throughput = Some(MinMax {
        min: messages_per_s / pairs as f64 * 0.5,
        max: messages_per_s / pairs as f64 * 1.5,
    });
    r.context_switches_per_message = Some(Switches {
        voluntary: 0.1,
        involuntary: 0.2,
    });
    with_interval(r, 5.0)
}

/// `r` with a ±`pct` % interval around its headline figure.
pub fn with_interval(mut r: Row, pct: f64) -> Row {
    let centre = r.figure().expect("a figure");
    r.ci95 = Some(Interval {
        low: centre * (1.0 - pct / 100.0),
        high: centre * (1.0 + pct / 100.0),
    });
    r
}

/// shm-spin (polls) against shm-futex (sleeps) at 1, 2 and 4 pairs: the
/// spinner keeps the best p50 throughout, but at 4 pairs its p99 is 50×
/// the sleeper's and its round trips fewer.
pub fn pairs_run() -> Run {
    let rows = vec![
        pingpong("shm-spin", true, 1, 700, 2_000, 1.4e6),
        pingpong("shm-futex", false, 1, 50_000, 100_000, 20_000.0),
        pingpong("shm-spin", true, 2, 700, 3_000, 1.0e6),
        pingpong("shm-futex", false, 2, 55_000, 110_000, 40_000.0),
        pingpong("shm-spin", true, 4, 750, 5_000_000, 40_000.0),
        pingpong("shm-futex", false, 4, 60_000, 100_000, 60_000.0),
        stream("shm-spin", true, 1, 3e6),
        stream("shm-futex", false, 1, 1e6),
        stream("shm-spin", true, 2, 0.5e6),
        stream("shm-futex", false, 2, 2e6),
    ];
    super::summary::tests::run_of(rows, 3)
}

/// One pair offered 1k/s, 10k/s and 50k/s, and closed loop: shm-spin does
/// not sustain 50k/s, and its p50 there looks the fastest of all.
pub fn rate_run() -> Run {
    let rows = vec![
        open_loop("shm-spin", true, 1, 1e3, 1e3, 800, 3_000),
        open_loop("shm-futex", false, 1, 1e3, 1e3, 60_000, 120_000),
        open_loop("shm-spin", true, 1, 1e4, 1e4, 800, 4_000),
        open_loop("shm-futex", false, 1, 1e4, 1e4, 60_000, 130_000),
        open_loop("shm-spin", true, 1, 5e4, 2e4, 300, 90_000_000),
        open_loop("shm-futex", false, 1, 5e4, 4.9e4, 70_000, 150_000),
        pingpong("shm-spin", true, 1, 700, 2_000, 1.4e6),
        pingpong("shm-futex", false, 1, 50_000, 100_000, 20_000.0),
    ];
    super::summary::tests::run_of(rows, 3)
}
