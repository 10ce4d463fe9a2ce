//! The report's plots: what a run is drawn as.
//!
//! Per placement, one pair, closed loop: round-trip p50 against size (p99
//! whiskers), throughput against size, fresh-process round trips against
//! size, the round-trip distribution at one size, and CPU time per message;
//! then, when the run measured several pairs or offered rates, the plots
//! of `load_plots` (against pairs, against offered rate). Each is written as
//! `<stem>.svg` and `<stem>.png`; the page inlines the SVG.

use std::path::Path;

use anyhow::Result;

use super::chart::{Axis, Chart, FAMILIES, Point, Series, Ticks};
use crate::results::{Row, Run};
use crate::units;

/// Every chart of `run`; `cdf_size` picks the size of the distribution
/// plot (default: the median pingpong size).
pub fn charts(run: &Run, cdf_size: Option<usize>) -> Vec<Chart> {
    let mut placements: Vec<&str> = Vec::new();
    for r in &run.rows {
        if !placements.contains(&r.placement.as_str()) {
            placements.push(&r.placement);
        }
    }
    let mut out = Vec::new();
    for placement in placements {
        let rows = |pattern: &str| -> Vec<&Row> {
            run.rows
                .iter()
                .filter(|r| {
                    r.placement == placement
                        && r.pattern == pattern
                        && r.pairs == 1
                        && r.offered_rate.is_none()
                })
                .collect()
        };
        let where_ = placement_words(placement);
        let (pingpong, stream, oneshot) = (rows("pingpong"), rows("stream"), rows("oneshot"));
        if let Some(c) = latency(&pingpong, placement, &where_) {
            out.push(c);
        }
        if let Some(c) = throughput(&stream, placement, &where_) {
            out.push(c);
        }
        let size = cdf_size.or_else(|| median_size(&pingpong));
        if let Some(c) = size.and_then(|s| distribution(&pingpong, s, placement, &where_)) {
            out.push(c);
        }
        if let Some(c) = cpu(&pingpong, "pingpong", placement, &where_) {
            out.push(c);
        }
        if let Some(c) = cpu(&stream, "stream", placement, &where_) {
            out.push(c);
        }
        if let Some(c) = fresh(&oneshot, placement, &where_) {
            out.push(c);
        }
        out.extend(super::load_plots::charts(run, placement, &where_));
    }
    out
}

/// Writes `<stem>.svg` and `<stem>.png` of every chart into `dir`; returns
/// the SVG text of each, in order.
pub fn write(dir: &Path, charts: &[Chart]) -> Result<Vec<String>> {
    let mut svgs = Vec::new();
    for c in charts {
        let svg = c.svg()?;
        super::write_atomically(&dir.join(format!("{}.svg", c.stem)), svg.as_bytes())?;
        super::write_atomically(&dir.join(format!("{}.png", c.stem)), &c.png()?)?;
        svgs.push(svg);
    }
    Ok(svgs)
}

/// The middle of the sizes measured (the lower one of an even count).
pub fn median_size(rows: &[&Row]) -> Option<usize> {
    let mut sizes: Vec<usize> = rows.iter().map(|r| r.size).filter(|&s| s > 0).collect();
    sizes.sort_unstable();
    sizes.dedup();
    sizes.get(sizes.len().saturating_sub(1) / 2).copied()
}

pub(super) fn placement_words(placement: &str) -> String {
    match placement {
        "cross-core" => "pinned to two CPUs".into(),
        "same-core" => "both pinned to one CPU".into(),
        "unpinned" => "unpinned".into(),
        other => other.into(),
    }
}

/// One series per mechanism, families in legend order, from the rows that
/// give a point.
pub(super) fn series(rows: &[&Row], point: impl Fn(&Row) -> Option<Point>) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    for r in rows {
        let Some(p) = point(r) else { continue };
        match out.iter_mut().find(|s| s.name == r.mechanism) {
            Some(s) => s.points.push(p),
            None => out.push(Series {
                name: r.mechanism.clone(),
                family: r.family.clone(),
                points: vec![p],
            }),
        }
    }
    for s in &mut out {
        s.points.sort_by(|a, b| a.x.total_cmp(&b.x));
    }
    out.sort_by_key(|s| family_rank(&s.family));
    out
}

/// Where a family goes in the legend (stable sorts keep registry order within).
pub(super) fn family_rank(family: &str) -> usize {
    FAMILIES
        .iter()
        .position(|f| f.0 == family)
        .unwrap_or(FAMILIES.len())
}

/// Message sizes on a log axis, labelled at the sizes measured.
fn size_axis(rows: &[&Row]) -> Axis {
    let mut sizes: Vec<f64> = rows
        .iter()
        .filter(|r| r.size > 0)
        .map(|r| r.size as f64)
        .collect();
    sizes.sort_by(f64::total_cmp);
    sizes.dedup();
    Axis {
        label: "message size (bytes, log scale)".into(),
        log: true,
        ticks: Ticks::At(sizes),
        format: |v| units::size(v.round() as usize),
    }
}

pub(super) fn time_axis(label: &str) -> Axis {
    Axis {
        label: label.into(),
        log: true,
        ticks: Ticks::Decimal,
        format: |ns| round_label(&units::duration(ns)),
    }
}

/// `1.00 µs` → `1 µs`, `2.50 ms` → `2.5 ms`: tick labels at round values.
pub(super) fn round_label(s: &str) -> String {
    match s.split_once(' ') {
        Some((num, unit)) if num.contains('.') => {
            format!("{} {unit}", num.trim_end_matches('0').trim_end_matches('.'))
        }
        _ => s.to_string(),
    }
}

const ZERO_NOTE: &str = "Size 0 cannot sit on a log axis and is left out.";

fn latency(rows: &[&Row], placement: &str, where_: &str) -> Option<Chart> {
    let series = series(rows, |r| {
        let s = r.rtt_ns?;
        (r.size > 0).then_some(Point::at(r.size as f64, s.p50 as f64, Some(s.p99 as f64)))
    });
    (!series.is_empty()).then(|| Chart {
        stem: format!("latency-{placement}"),
        title: format!("Round-trip time against message size ({where_})"),
        caption: format!(
            "Median round trip (p50) of SIZE bytes there and SIZE back, {where_}; the whisker \
             reaches the p99. Lower is better; both axes are logarithmic. {ZERO_NOTE}"
        ),
        x: size_axis(rows),
        y: time_axis("round-trip time, p50 (log scale)"),
        series,
    })
}

fn throughput(rows: &[&Row], placement: &str, where_: &str) -> Option<Chart> {
    let series = series(rows, |r| {
        let t = r.throughput?;
        (r.size > 0 && t.bytes_per_s > 0.0).then_some(Point::at(r.size as f64, t.bytes_per_s, None))
    });
    (!series.is_empty()).then(|| Chart {
        stem: format!("throughput-{placement}"),
        title: format!("Throughput against message size ({where_})"),
        caption: format!(
            "Bytes per second arriving at the receiver while the sender sends as fast as the \
             channel takes messages, {where_}. Higher is better; both axes are logarithmic. \
             {ZERO_NOTE}"
        ),
        x: size_axis(rows),
        y: Axis {
            label: "throughput (bytes/s, log scale)".into(),
            log: true,
            ticks: Ticks::Binary,
            format: |v| round_label(&units::rate(v)),
        },
        series,
    })
}

fn fresh(rows: &[&Row], placement: &str, where_: &str) -> Option<Chart> {
    let series = series(rows, |r| {
        let s = r.oneshot_ns?;
        (r.size > 0).then_some(Point::at(r.size as f64, s.p50 as f64, Some(s.p99 as f64)))
    });
    (!series.is_empty()).then(|| Chart {
        stem: format!("oneshot-{placement}"),
        title: format!("Fresh processes per round trip ({where_})"),
        caption: format!(
            "oneshot: a new channel and two new processes for a single round trip, timed from \
             creating the channel to both processes reaped; p50 with a whisker to the p99, \
             {where_}. {ZERO_NOTE}"
        ),
        x: size_axis(rows),
        y: time_axis("fork to reap, p50 (log scale)"),
        series,
    })
}

/// The nines scale of the distribution plot: `-log10(1 - q)`, with the
/// maximum drawn one step above 99.99 %.
const MAX_NINES: f64 = 5.0;

fn nines(q: f64) -> f64 {
    if q >= 1.0 {
        MAX_NINES
    } else {
        (-(1.0 - q).log10()).min(MAX_NINES - 1.0)
    }
}

fn nines_label(v: f64) -> String {
    const LABELS: [(f64, &str); 7] = [
        (0.0, "min"),
        (std::f64::consts::LOG10_2, "50 %"),
        (1.0, "90 %"),
        (2.0, "99 %"),
        (3.0, "99.9 %"),
        (4.0, "99.99 %"),
        (MAX_NINES, "max"),
    ];
    LABELS
        .iter()
        .find(|(at, _)| (at - v).abs() < 1e-3)
        .map_or_else(String::new, |(_, l)| l.to_string())
}

fn distribution(rows: &[&Row], size: usize, placement: &str, where_: &str) -> Option<Chart> {
    let mut out: Vec<Series> = Vec::new();
    for r in rows.iter().filter(|r| r.size == size) {
        // Quantiles past the last sample (1 - 1/n) all read the maximum.
        let last = 1.0 - 1.0 / r.iterations.max(1) as f64;
        let points: Vec<Point> = r
            .rtt_cdf
            .iter()
            .filter(|(q, _)| *q <= last || *q >= 1.0)
            .map(|&(q, ns)| Point::at(ns.max(1) as f64, nines(q), None))
            .collect();
        if !points.is_empty() {
            out.push(Series {
                name: r.mechanism.clone(),
                family: r.family.clone(),
                points,
            });
        }
    }
    if out.is_empty() {
        return None;
    }
    out.sort_by_key(|s| family_rank(&s.family));
    let size_words = units::size(size);
    Some(Chart {
        stem: format!("distribution-{}-{placement}", size_words.replace(' ', "")),
        title: format!("Round-trip time distribution at {size_words} ({where_})"),
        caption: format!(
            "For each mechanism, the share of round trips of {size_words} that took at most the \
             time on the x axis (a CDF). The y axis stretches the tail: equal steps from 90 % \
             to 99 %, 99.9 %, 99.99 %, then the slowest round trip. A line further left is \
             faster; a line bending right at the top has a long tail."
        ),
        x: time_axis("round-trip time (log scale)"),
        y: Axis {
            label: "round trips at or below (percentile)".into(),
            log: false,
            ticks: Ticks::At(vec![
                0.0,
                std::f64::consts::LOG10_2,
                1.0,
                2.0,
                3.0,
                4.0,
                MAX_NINES,
            ]),
            format: nines_label,
        },
        series: out,
    })
}

fn cpu(rows: &[&Row], pattern: &str, placement: &str, where_: &str) -> Option<Chart> {
    let series = series(rows, |r| {
        let c = r.cpu_ns_per_message;
        let total = c.client + c.server;
        (r.size > 0 && total > 0.0).then_some(Point::at(r.size as f64, total, None))
    });
    let what = if pattern == "pingpong" {
        "round trip"
    } else {
        "message"
    };
    (!series.is_empty()).then(|| Chart {
        stem: format!("cpu-{pattern}-{placement}"),
        title: format!("CPU time per {what}, {pattern} ({where_})"),
        caption: format!(
            "User + system CPU time of both processes together per {what} ({pattern}), \
             {where_}. A side that polls instead of sleeping pays here for its speed. Lower is \
             better. {ZERO_NOTE}"
        ),
        x: size_axis(rows),
        y: time_axis(&format!("CPU time per {what}, both sides (log scale)")),
        series,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_drop_trailing_zeros() {
        assert_eq!(round_label("1.00 µs"), "1 µs");
        assert_eq!(round_label("2.50 ms"), "2.5 ms");
        assert_eq!(round_label("100 ns"), "100 ns");
        assert_eq!(round_label("512 MiB/s"), "512 MiB/s");
    }

    #[test]
    fn the_nines_scale_stretches_the_tail() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(0.99) - 2.0).abs() < 1e-9);
        assert_eq!(nines(1.0), MAX_NINES);
        assert_eq!(nines_label(nines(0.999)), "99.9 %");
        assert_eq!(nines_label(MAX_NINES), "max");
    }
}
