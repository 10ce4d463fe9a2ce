//! Rows from repetitions: each cell is measured `--repeat` times, in a
//! shuffled order each time, and its row pools them.
//!
//! - Percentiles come from the pooled round trips (one HDR histogram of
//!   every repetition's) or fresh-process runs; throughput is every
//!   measured message over every measured window.
//! - `repetitions` lists each repetition's headline figure (the p50, or
//!   messages per second) and `ci95` is the interval of the row's headline
//!   from them (see `crate::interval`).
//! - `vs_limit` is paired: each repetition's figure over the limit measured
//!   in that same repetition, then the median of those ratios and their
//!   interval. A limit measured at another moment of a drifting machine
//!   would otherwise set the floor of every row.

use std::collections::HashMap;

use crate::interval::{Interval, median};
use crate::results::{CpuPerMessage, MinMax, Row, Switches, Throughput};
use crate::stats::{Stats, cdf, histogram};
use crate::vs_limit;

/// One repetition's measurement of one cell.
#[derive(Clone, Debug)]
pub struct Measured {
    /// 0-based.
    pub repetition: usize,
    /// The row of this repetition alone (its `vs_limit` is not used).
    pub row: Row,
    /// Round-trip times as (value, count) pairs (pingpong), every pair's.
    pub round_trips: Vec<(u64, u64)>,
    /// Open loop: the same timed from the actual sends.
    pub uncorrected: Vec<(u64, u64)>,
    /// Fork-to-reap times of the fresh-process runs (oneshot).
    pub oneshot_ns: Vec<u64>,
}

/// What identifies a row: mechanism, pattern, size, condition
/// ([`Row::condition`]: placement, pairs, offered rate).
pub type Key = (String, String, usize, String);

pub fn key(row: &Row) -> Key {
    (
        row.mechanism.clone(),
        row.pattern.clone(),
        row.size,
        row.condition(),
    )
}

/// The rows of everything measured so far, in the order of `order` (the
/// plan, unshuffled); a cell not yet measured has no row.
pub fn rows(measured: &[Measured], order: &[Key]) -> Vec<Row> {
    // Each repetition's ratios, against the limits of that repetition
    // (only limit rows are searched: the run calls this after every cell).
    let repetitions = measured.iter().map(|m| m.repetition + 1).max().unwrap_or(0);
    let mut limits: Vec<Vec<&Row>> = vec![Vec::new(); repetitions];
    for m in measured.iter().filter(|m| m.row.family == "limit") {
        limits[m.repetition].push(&m.row);
    }
    let ratios: Vec<Option<f64>> = measured
        .iter()
        .map(|m| vs_limit::vs_limit(&limits[m.repetition], &m.row))
        .collect();
    let bare: Vec<Option<f64>> = measured
        .iter()
        .map(|m| vs_limit::vs_bare(&limits[m.repetition], &m.row))
        .collect();
    let mut by_key: HashMap<Key, Vec<usize>> = HashMap::new();
    for (i, m) in measured.iter().enumerate() {
        by_key.entry(key(&m.row)).or_default().push(i);
    }
    order
        .iter()
        .filter_map(|k| {
            let mine = by_key.get(k)?;
            let parts: Vec<&Measured> = mine.iter().map(|&i| &measured[i]).collect();
            let ratios: Vec<f64> = mine.iter().filter_map(|&i| ratios[i]).collect();
            let mut row = pool(&parts, &ratios);
            let bare: Vec<f64> = mine.iter().filter_map(|&i| bare[i]).collect();
            row.vs_bare = median(&bare);
            Some(row)
        })
        .collect()
}

/// One row from the repetitions of a cell (at least one).
fn pool(parts: &[&Measured], ratios: &[f64]) -> Row {
    let mut row = parts[0].row.clone();
    let n: u64 = parts.iter().map(|m| m.row.iterations).sum();
    // Per-message figures weighted by each repetition's messages.
    let weighted = |f: &dyn Fn(&Row) -> f64| -> f64 {
        if n == 0 {
            return 0.0;
        }
        parts
            .iter()
            .map(|m| f(&m.row) * m.row.iterations as f64)
            .sum::<f64>()
            / n as f64
    };
    row.iterations = n;
    row.verified = parts.iter().all(|m| m.row.verified);
    row.rounds = weighted(&|r| r.rounds);
    row.cpu_ns_per_message = CpuPerMessage {
        client: weighted(&|r| r.cpu_ns_per_message.client),
        server: weighted(&|r| r.cpu_ns_per_message.server),
    };
    let middle = |f: &dyn Fn(&Row) -> u64| -> u64 {
        let v: Vec<f64> = parts.iter().map(|m| f(&m.row) as f64).collect();
        median(&v).unwrap_or(0.0) as u64
    };
    row.setup_ns = middle(&|r| r.setup_ns);
    row.teardown_ns = middle(&|r| r.teardown_ns);
    for m in &parts[1..] {
        for (all, seen) in [
            (&mut row.cpus.client, &m.row.cpus.client),
            (&mut row.cpus.server, &m.row.cpus.server),
        ] {
            all.extend(
                seen.iter()
                    .filter(|c| !all.contains(c))
                    .copied()
                    .collect::<Vec<_>>(),
            );
            all.sort_unstable();
        }
    }
    if row.rtt_ns.is_some() {
        let h = histogram(parts.iter().flat_map(|m| m.round_trips.iter().copied()));
        row.rtt_ns = Some(Stats::of(&h));
        row.rtt_cdf = cdf(&h);
    }
    if row.rtt_uncorrected_ns.is_some() {
        let h = histogram(parts.iter().flat_map(|m| m.uncorrected.iter().copied()));
        row.rtt_uncorrected_ns = Some(Stats::of(&h));
    }
    // Rates: every round trip or message over every window (a window is
    // n / rate), as for throughput below.
    let pooled_rate = |f: &dyn Fn(&Row) -> Option<f64>| -> Option<f64> {
        let mut wall = 0.0;
        for m in parts {
            let rate = f(&m.row)?;
            if rate > 0.0 {
                wall += m.row.iterations as f64 / rate;
            }
        }
        Some(if wall > 0.0 { n as f64 / wall } else { 0.0 })
    };
    if row.round_trips.is_some() {
        let per_s = pooled_rate(&|r| r.round_trips.map(|t| t.messages_per_s)).unwrap_or(0.0);
        row.round_trips = Some(Throughput {
            bytes_per_s: per_s * row.size as f64,
            messages_per_s: per_s,
        });
    }
    if let (Some(_), Some(per_s)) = (
        row.offered_rate,
        pooled_rate(&|r| r.achieved_rate.map(|a| a * r.pairs as f64)),
    ) {
        let achieved = per_s / row.pairs.max(1) as f64;
        row.achieved_rate = Some(achieved);
    }
    // The slowest and fastest pair: the median over repetitions of each.
    let middle_f = |f: &dyn Fn(&Row) -> Option<f64>| -> Option<f64> {
        let v: Vec<f64> = parts.iter().filter_map(|m| f(&m.row)).collect();
        median(&v)
    };
    if row.pair_throughput.is_some()
        && let (Some(min), Some(max)) = (
            middle_f(&|r| r.pair_throughput.map(|p| p.min)),
            middle_f(&|r| r.pair_throughput.map(|p| p.max)),
        )
    {
        row.pair_throughput = Some(MinMax { min, max });
    }
    // Sustained when the slowest pair kept up (its rate is the one it
    // started round trips at: see `crate::row`), the median repetition's.
    if let (Some(offered), Some(pairs)) = (row.offered_rate, row.pair_throughput) {
        row.sustained = Some(pairs.min >= Row::SUSTAINED * offered);
    }
    if row.context_switches_per_message.is_some() {
        let of = |f: fn(&Switches) -> f64| {
            weighted(&|r: &Row| r.context_switches_per_message.as_ref().map_or(0.0, f))
        };
        row.context_switches_per_message = Some(Switches {
            voluntary: of(|s| s.voluntary),
            involuntary: of(|s| s.involuntary),
        });
    }
    if row.oneshot_ns.is_some() {
        row.oneshot_ns = Some(Stats::of_samples(
            parts.iter().flat_map(|m| m.oneshot_ns.iter().copied()),
        ));
    }
    if row.throughput.is_some() {
        // Every message over every window: a window is n / rate.
        let wall: f64 = parts
            .iter()
            .filter_map(|m| {
                let rate = m.row.throughput?.messages_per_s;
                (rate > 0.0).then(|| m.row.iterations as f64 / rate)
            })
            .sum();
        let messages_per_s = if wall > 0.0 { n as f64 / wall } else { 0.0 };
        row.throughput = Some(Throughput {
            bytes_per_s: messages_per_s * row.size as f64,
            messages_per_s,
        });
    }
    row.repetitions = parts.iter().filter_map(|m| m.row.figure()).collect();
    row.ci95 = row
        .figure()
        .and_then(|centre| Interval::around(centre, &row.repetitions));
    row.vs_limit = median(ratios);
    row.vs_limit_ci95 = row
        .vs_limit
        .and_then(|centre| Interval::around(centre, ratios));
    row
}
