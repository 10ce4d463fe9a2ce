//! The summary after the tables: for each condition (placement, pairs,
//! offered rate), pattern and size
//! (limits aside), the mechanisms in groups that the noise cannot tell
//! apart, best first, and how many times faster each group ran than the
//! next.
//!
//! A group is a chain of overlapping 95 % intervals (`Row::ci95`,
//! from the repetitions): two rows in different groups have intervals
//! that do not overlap, and neither does any row of one group with any row
//! of the other, so "N× faster" is only ever said where a second run is
//! not expected to say the opposite. Its range is the ratio of the two
//! groups' facing interval ends. Without intervals (`--repeat 1`) every row
//! stands alone, and the summary says that the differences are untested.
//! A row whose interval spans more than a factor [`TOO_NOISY`] is listed
//! apart as too noisy to place, rather than chaining every group into one.
//! A row that could not sustain its offered rate is never placed, let
//! alone named best: it is listed apart with the rate it achieved.
//!
//! Under load a pingpong row's p50 is not its verdict ([`Basis`]): with
//! several pairs (contention, closed loop) the rows are placed by their
//! round trips per second of all pairs, and at an offered rate (where
//! every row that sustained it did the same work) by their p99; each row
//! names its throughput, p50 and p99, and says so where its p50 would
//! have placed it above the group ahead of it. A spinner preempted by its
//! neighbours makes most round trips in nanoseconds and stalls for whole
//! time slices on a few: its p50 stays the lowest while it does the least
//! work, with the worst tail. Those figures have no interval of their own
//! (the repetitions record the p50): each borrows its row's relative
//! interval (at least [`MIN_RELATIVE`]), as the spinning section does.
//!
//! Then, when the run varied the load, `spinning` says where the spinning
//! mechanisms fall behind the sleeping ones.

use crate::interval::MIN_RELATIVE;
use crate::results::{Row, Run};
use crate::units::{count_rate, duration, rate, size};

/// The summary of `run`; empty when no group has anything to compare.
pub fn render(run: &Run) -> String {
    let mut keys: Vec<(String, &str, usize)> = Vec::new();
    for r in &run.rows {
        let key = (r.condition(), r.pattern.as_str(), r.size);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let mut out = String::new();
    for (condition, pattern, bytes) in keys {
        let rows: Vec<&Row> = run
            .rows
            .iter()
            .filter(|r| {
                r.condition() == condition
                    && r.pattern == pattern
                    && r.size == bytes
                    && r.family != "limit"
            })
            .collect();
        out.push_str(&block(&rows));
    }
    let load = super::spinning::render(run);
    if out.is_empty() {
        return load;
    }
    let how = if run.rows.iter().any(|r| r.ci95.is_some()) {
        format!(
            "groups of overlapping 95 % intervals from {} repetitions, best first",
            run.settings.repeat
        )
    } else {
        "no intervals with one repetition: differences untested, best first".to_string()
    };
    format!("\nSummary (limits aside; {how})\n{out}{load}")
}

/// (low, centre, high), lower is better: see [`span`].
type Span = (f64, f64, f64);

/// What the rows of one condition, pattern and size are placed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Basis {
    /// The headline figure (`Row::figure`): the p50 round trip (pingpong
    /// of one pair, closed loop), messages per second (stream), the p50
    /// run (oneshot).
    Headline,
    /// Round trips per second of all pairs: pingpong with several pairs,
    /// closed loop.
    RoundTrips,
    /// The p99 round trip: pingpong at an offered rate.
    P99,
}

/// What `rows` (one condition, pattern and size) are placed by.
pub fn basis(rows: &[&Row]) -> Basis {
    let Some(r) = rows.first() else {
        return Basis::Headline;
    };
    if r.rtt_ns.is_none() {
        Basis::Headline
    } else if r.offered_rate.is_some() {
        Basis::P99
    } else if r.pairs > 1 {
        Basis::RoundTrips
    } else {
        Basis::Headline
    }
}

/// A row's figure by `basis`, turned so that lower is better (time, or
/// seconds per message or round trip), with its interval in the same
/// sense: (low, centre, high). The loaded figures borrow the relative
/// interval of the headline one.
fn span(r: &Row, basis: Basis) -> Option<Span> {
    let centre = r.figure().filter(|f| *f > 0.0)?;
    let (low, high) = r.ci95.map_or((centre, centre), |i| (i.low, i.high));
    let borrowed = |v: f64| {
        let rel = r.ci95.map_or(0.0, |i| i.relative(centre).max(MIN_RELATIVE));
        (v / (1.0 + rel), v, v * (1.0 + rel))
    };
    Some(match basis {
        Basis::Headline if r.higher_is_better() => (1.0 / high, 1.0 / centre, 1.0 / low),
        Basis::Headline => (low, centre, high),
        Basis::RoundTrips => {
            let rt = r.round_trips?.messages_per_s;
            (rt > 0.0).then_some(())?;
            borrowed(1.0 / rt)
        }
        Basis::P99 => {
            let p99 = r.rtt_ns?.p99 as f64;
            (p99 > 0.0).then_some(())?;
            borrowed(p99)
        }
    })
}

/// An interval whose ends are further apart than this factor says that
/// the row's repetitions disagree too much to place it: chained with the
/// others it would merge every group into one.
pub const TOO_NOISY: f64 = 2.0;

/// Whether `r`'s repetitions disagree too much to place it (see
/// [`TOO_NOISY`]).
pub fn too_noisy(r: &Row) -> bool {
    r.ci95.is_some_and(|i| i.high > i.low * TOO_NOISY)
}

/// Whether `r` could not sustain its offered rate: its figures measure
/// no load, and grow with the length of the run.
pub fn unsustained(r: &Row) -> bool {
    r.sustained == Some(false)
}

/// Whether `r` can be placed among `rows`: it sustained its rate, is not
/// [`too_noisy`], and has an interval if any of them has one (a row left
/// with one repetition, the others failed, is untested beside rows that
/// have intervals).
fn placeable(r: &Row, rows: &[&Row]) -> bool {
    !unsustained(r) && !too_noisy(r) && (r.ci95.is_some() || rows.iter().all(|o| o.ci95.is_none()))
}

/// The rows in groups the intervals cannot tell apart, best group first;
/// inside a group, best figure first. Rows without a figure, and rows
/// that cannot be placed ([`placeable`]), are left out.
/// By [`basis`] of `rows`.
pub fn verdict_groups<'a>(rows: &[&'a Row]) -> Vec<Vec<&'a Row>> {
    let basis = basis(rows);
    let mut spans: Vec<(&Row, Span)> = rows
        .iter()
        .filter(|r| placeable(r, rows))
        .filter_map(|r| Some((*r, span(r, basis)?)))
        .collect();
    // Connected components of overlapping intervals are runs of the rows
    // sorted by their interval's low end.
    spans.sort_by(|a, b| a.1.0.total_cmp(&b.1.0));
    let mut groups: Vec<Vec<(&Row, Span)>> = Vec::new();
    let mut reach = f64::NEG_INFINITY;
    for entry in spans {
        match groups.last_mut() {
            Some(g) if entry.1.0 <= reach => g.push(entry),
            _ => groups.push(vec![entry]),
        }
        reach = reach.max(entry.1.2);
    }
    groups
        .into_iter()
        .map(|mut g| {
            g.sort_by(|a, b| a.1.1.total_cmp(&b.1.1));
            g.into_iter().map(|(r, _)| r).collect()
        })
        .collect()
}

fn figure_text(r: &Row, basis: Basis) -> String {
    if basis != Basis::Headline {
        return loaded_text(r);
    }
    let what = match (r.rtt_ns.or(r.oneshot_ns), r.throughput) {
        (Some(s), _) => duration(s.p50 as f64),
        (None, Some(t)) => rate(t.bytes_per_s),
        _ => String::new(),
    };
    super::table::with_interval(what, r)
}

/// `16.0 k/s round trips, p50 341 ns, p99 174 ms`: what a pingpong row
/// under load did.
fn loaded_text(r: &Row) -> String {
    let mut parts = Vec::new();
    if let Some(t) = r.round_trips {
        parts.push(format!("{} round trips", count_rate(t.messages_per_s)));
    }
    if let Some(s) = r.rtt_ns {
        parts.push(format!(
            "p50 {}, p99 {}",
            duration(s.p50 as f64),
            duration(s.p99 as f64)
        ));
    }
    parts.join(", ")
}

fn name(r: &Row) -> String {
    match r.family.as_str() {
        "peer" => format!("{} (peer)", r.mechanism),
        _ => r.mechanism.clone(),
    }
}

/// (lowest low, highest high) of a group, lower is better.
fn extent(g: &[&Row], basis: Basis) -> (f64, f64) {
    g.iter()
        .filter_map(|r| span(r, basis))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (l, _, h)| {
            (lo.min(l), hi.max(h))
        })
}

/// The heading's words on what the rows are placed by, under load.
fn basis_words(basis: Basis) -> &'static str {
    match basis {
        Basis::Headline => "",
        Basis::RoundTrips => {
            " (placed by round trips per second of all pairs, not by p50: under contention a \
             p50 hides the stalls)"
        }
        Basis::P99 => {
            " (placed by p99, not by p50: at an offered rate every row that sustained it did \
             the same work)"
        }
    }
}

/// `; 4.69× fewer round trips than the group above`, by `basis`.
fn below_words(basis: Basis, times: String) -> String {
    match basis {
        Basis::Headline => format!("; {times} slower than the group above"),
        Basis::RoundTrips => format!("; {times} fewer round trips than the group above"),
        Basis::P99 => format!("; {times} the p99 of the group above"),
    }
}

/// `, though its p50 is lower (341 ns against 10.4 µs)` for a row that the
/// p50 alone would have put ahead of the group above, under load.
fn p50_disagrees(basis: Basis, r: &Row, above: &[&Row]) -> String {
    let best_above = above.iter().filter_map(|a| a.rtt_ns.map(|s| s.p50)).min();
    match (basis, r.rtt_ns.map(|s| s.p50), best_above) {
        (Basis::RoundTrips | Basis::P99, Some(mine), Some(theirs)) if mine < theirs => format!(
            ", though its p50 is lower ({} against {})",
            duration(mine as f64),
            duration(theirs as f64)
        ),
        _ => String::new(),
    }
}

/// A group's range of figures by `basis`, from its lower-is-better
/// extent.
fn range_text(g: &[&Row], basis: Basis) -> String {
    let (lo, hi) = extent(g, basis);
    match basis {
        Basis::Headline if g[0].higher_is_better() => {
            format!("{}–{}", rate_of(g[0], hi), rate_of(g[0], lo))
        }
        Basis::Headline => format!("{}–{}", duration(lo), duration(hi)),
        Basis::RoundTrips => format!(
            "{}–{} round trips",
            count_rate(1.0 / hi),
            count_rate(1.0 / lo)
        ),
        Basis::P99 => format!("p99 {}–{}", duration(lo), duration(hi)),
    }
}

/// The lines of one condition, pattern and size.
fn block(rows: &[&Row]) -> String {
    let groups = verdict_groups(rows);
    let basis = basis(rows);
    if rows.len() < 2 {
        return String::new();
    }
    let Some(first) = groups.first().map(|g| g[0]).or(rows.first().copied()) else {
        return String::new();
    };
    let mut out = format!(
        "  {} {}, {}{}:\n",
        first.pattern,
        size(first.size),
        first.condition(),
        basis_words(basis)
    );
    for (i, g) in groups.iter().enumerate() {
        let members = g.iter().map(|r| name(r)).collect::<Vec<_>>().join(", ");
        let mut line = if g.len() == 1 {
            format!("    {members} ({})", figure_text(g[0], basis))
        } else {
            let range = range_text(g, basis);
            format!("    {members}: not told apart (intervals overlap in a chain), {range}")
        };
        if i > 0 {
            let above = &groups[i - 1];
            let ratio = span(g[0], basis).map(|s| s.1).unwrap_or(f64::NAN)
                / span(above[0], basis).map(|s| s.1).unwrap_or(f64::NAN);
            let (_, above_high) = extent(above, basis);
            let (below_low, _) = extent(g, basis);
            line.push_str(&below_words(basis, times(ratio, below_low / above_high)));
            if g.len() == 1 {
                line.push_str(&p50_disagrees(basis, g[0], above));
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    let listed = |keep: &dyn Fn(&Row) -> bool| -> String {
        rows.iter()
            .filter(|r| keep(r))
            .map(|r| format!("{} ({})", name(r), figure_text(r, basis)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if rows.iter().any(|r| unsustained(r)) {
        let achieved: Vec<String> = rows
            .iter()
            .filter(|r| unsustained(r))
            .map(|r| {
                format!(
                    "{} (achieved {} of {} per pair)",
                    name(r),
                    r.achieved_rate.map_or("?".into(), count_rate),
                    r.offered_rate.map_or("?".into(), count_rate)
                )
            })
            .collect();
        out.push_str(&format!(
            "    could not sustain the offered rate, not placed: {}\n",
            achieved.join(", ")
        ));
    }
    let noisy = listed(&|r| !unsustained(r) && too_noisy(r));
    if !noisy.is_empty() {
        out.push_str(&format!(
            "    too noisy to place (repetitions more than {TOO_NOISY}× apart): {noisy}\n"
        ));
    }
    let untested = listed(&|r| !unsustained(r) && !too_noisy(r) && !placeable(r, rows));
    if !untested.is_empty() {
        out.push_str(&format!(
            "    not placed (one repetition, no interval): {untested}\n"
        ));
    }
    out
}

/// `B/s` of a figure turned "seconds per message" back into a rate.
fn rate_of(r: &Row, seconds_per_message: f64) -> String {
    rate(r.size as f64 / seconds_per_message)
}

/// `3.1×`, with the least ratio the intervals allow when there are any:
/// `3.1× (at least 2.4×)`.
fn times(ratio: f64, least: f64) -> String {
    if (least - ratio).abs() < 1e-9 * ratio.abs() {
        format!("{ratio:.2}×")
    } else {
        format!("{ratio:.2}× (at least {least:.2}×)")
    }
}

#[cfg(test)]
#[path = "summary_tests.rs"]
pub(crate) mod tests;
