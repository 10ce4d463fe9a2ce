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
//! Then, when the run varied the load, `spinning` says where the spinning
//! mechanisms fall behind the sleeping ones.

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

/// A row's figure turned so that lower is better (time, or seconds per
/// message), with its interval in the same sense: (low, centre, high).
fn span(r: &Row) -> Option<Span> {
    let centre = r.figure().filter(|f| *f > 0.0)?;
    let (low, high) = r.ci95.map_or((centre, centre), |i| (i.low, i.high));
    Some(if r.higher_is_better() {
        (1.0 / high, 1.0 / centre, 1.0 / low)
    } else {
        (low, centre, high)
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
pub fn verdict_groups<'a>(rows: &[&'a Row]) -> Vec<Vec<&'a Row>> {
    let mut spans: Vec<(&Row, Span)> = rows
        .iter()
        .filter(|r| placeable(r, rows))
        .filter_map(|r| Some((*r, span(r)?)))
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

fn figure_text(r: &Row) -> String {
    let what = match (r.rtt_ns.or(r.oneshot_ns), r.throughput) {
        (Some(s), _) => duration(s.p50 as f64),
        (None, Some(t)) => rate(t.bytes_per_s),
        _ => String::new(),
    };
    super::table::with_interval(what, r)
}

fn name(r: &Row) -> String {
    match r.family.as_str() {
        "peer" => format!("{} (peer)", r.mechanism),
        _ => r.mechanism.clone(),
    }
}

/// (lowest low, highest high) of a group, lower is better.
fn extent(g: &[&Row]) -> (f64, f64) {
    g.iter()
        .filter_map(|r| span(r))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (l, _, h)| {
            (lo.min(l), hi.max(h))
        })
}

/// The lines of one condition, pattern and size.
fn block(rows: &[&Row]) -> String {
    let groups = verdict_groups(rows);
    if rows.len() < 2 {
        return String::new();
    }
    let Some(first) = groups.first().map(|g| g[0]).or(rows.first().copied()) else {
        return String::new();
    };
    let mut out = format!(
        "  {} {}, {}:\n",
        first.pattern,
        size(first.size),
        first.condition()
    );
    for (i, g) in groups.iter().enumerate() {
        let members = g.iter().map(|r| name(r)).collect::<Vec<_>>().join(", ");
        let mut line = if g.len() == 1 {
            format!("    {members} ({})", figure_text(g[0]))
        } else {
            let (lo, hi) = extent(g);
            let range = if g[0].higher_is_better() {
                format!("{}–{}", rate_of(g[0], hi), rate_of(g[0], lo))
            } else {
                format!("{}–{}", duration(lo), duration(hi))
            };
            format!("    {members}: not told apart (intervals overlap in a chain), {range}")
        };
        if i > 0 {
            let above = &groups[i - 1];
            let ratio = span(g[0]).map(|s| s.1).unwrap_or(f64::NAN)
                / span(above[0]).map(|s| s.1).unwrap_or(f64::NAN);
            let (_, above_high) = extent(above);
            let (below_low, _) = extent(g);
            line.push_str(&format!(
                "; {} slower than the group above",
                times(ratio, below_low / above_high)
            ));
        }
        out.push_str(&line);
        out.push('\n');
    }
    let listed = |keep: &dyn Fn(&Row) -> bool| -> String {
        rows.iter()
            .filter(|r| keep(r))
            .map(|r| format!("{} ({})", name(r), figure_text(r)))
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
pub(crate) mod tests {
    use super::*;
    use crate::interval::Interval;
    use crate::results::Run;
    use crate::vs_limit::tests::row;

    pub(crate) fn run_of(rows: Vec<Row>, repeat: usize) -> Run {
        let mut run: Run = serde_json::from_str(
            r#"{"schema":1,"ipclab_version":"0","started_at":"now","machine":{"kernel":"k","cpu_model":"c","cpu_count":2,"cpus_allowed":[0,1],"virtualised":false,"clock_source":"tsc"},"timer":{"overhead_ns":20.0,"resolution_ns":1},"settings":{"mechanisms":[],"sizes":[],"patterns":[],"placements":[],"warmup_ns":0,"duration_ns":0,"iterations":null,"verify":true,"segment_size":null,"segments":0},"rows":[],"failures":[],"skipped":[],"complete":true}"#
        )
        .unwrap();
        run.rows = rows;
        run.settings.repeat = repeat;
        run
    }

    /// A row whose figure has a ±`pct` % interval.
    fn noisy(name: &str, family: &str, pattern: &str, figure: f64, pct: f64) -> Row {
        let mut r = row(name, family, pattern, 64, false, figure);
        let centre = r.figure().unwrap();
        r.ci95 = Some(Interval {
            low: centre * (1.0 - pct / 100.0),
            high: centre * (1.0 + pct / 100.0),
        });
        r
    }

    #[test]
    fn overlapping_intervals_are_one_group_and_only_groups_are_ranked() {
        let text = render(&run_of(
            vec![
                row("limit-futex", "limit", "pingpong", 64, false, 500.0),
                noisy("pipe", "message-passing", "pingpong", 80_000.0, 10.0),
                noisy("shm-futex", "shared-memory", "pingpong", 90_000.0, 10.0),
                noisy("unix-stream", "message-passing", "pingpong", 101_000.0, 5.0),
                noisy("shm-spin", "shared-memory", "pingpong", 700.0, 10.0),
                noisy("iceoryx2", "peer", "pingpong", 800.0, 5.0),
            ],
            3,
        ));
        assert!(text.contains("from 3 repetitions"), "{text}");
        assert!(
            text.contains(
                "    shm-spin, iceoryx2 (peer): not told apart (intervals overlap in a chain), 630 ns–840 ns\n"
            ),
            "{text}"
        );
        // pipe reaches 88 µs, shm-futex starts at 81 µs and reaches 99 µs,
        // unix-stream starts at 95.9 µs: one chain, one group.
        assert!(
            text.contains("    pipe, shm-futex, unix-stream: not told apart"),
            "{text}"
        );
        assert!(
            text.contains("114.29× (at least 85.71×) slower than the group above"),
            "{text}"
        );
        assert!(!text.contains("limit-futex"), "{text}");
    }

    #[test]
    fn a_row_too_noisy_to_place_does_not_merge_the_groups() {
        let text = render(&run_of(
            vec![
                noisy("shm-spin", "shared-memory", "pingpong", 700.0, 5.0),
                noisy("pipe", "message-passing", "pingpong", 80_000.0, 5.0),
                // 1 µs to 199 µs: overlaps both.
                noisy("udp", "message-passing", "pingpong", 100_000.0, 99.0),
            ],
            3,
        ));
        assert!(text.contains("    shm-spin (700 ns ±5%)\n"), "{text}");
        assert!(text.contains("    pipe (80.0 µs ±5%); "), "{text}");
        assert!(
            text.contains("too noisy to place (repetitions more than 2× apart): udp (100 µs ±99%)"),
            "{text}"
        );
    }

    #[test]
    fn a_row_without_an_interval_beside_rows_with_one_is_not_placed() {
        let text = render(&run_of(
            vec![
                noisy("shm-spin", "shared-memory", "pingpong", 700.0, 5.0),
                noisy("pipe", "message-passing", "pingpong", 80_000.0, 5.0),
                row("tcp", "message-passing", "pingpong", 64, false, 90_000.0),
            ],
            3,
        ));
        assert!(
            text.contains("    not placed (one repetition, no interval): tcp (90.0 µs)\n"),
            "{text}"
        );
        assert!(!text.contains("tcp (90.0 µs);"), "{text}");
    }

    #[test]
    fn throughput_groups_put_the_highest_first() {
        let run = run_of(
            vec![
                noisy("pipe", "message-passing", "stream", 1e6, 5.0),
                noisy("shm-spin", "shared-memory", "stream", 4e6, 5.0),
                noisy("memfd", "shared-memory", "stream", 3.9e6, 5.0),
            ],
            3,
        );
        let rows: Vec<&Row> = run.rows.iter().collect();
        let groups = verdict_groups(&rows);
        let names: Vec<Vec<&str>> = groups
            .iter()
            .map(|g| g.iter().map(|r| r.mechanism.as_str()).collect())
            .collect();
        assert_eq!(names, vec![vec!["shm-spin", "memfd"], vec!["pipe"]]);
        let text = render(&run);
        assert!(text.contains("4.00×"), "{text}");
    }

    #[test]
    fn without_intervals_every_row_stands_alone_and_says_so() {
        let text = render(&run_of(
            vec![
                row("pipe", "message-passing", "pingpong", 64, false, 12_000.0),
                row(
                    "unix-stream",
                    "message-passing",
                    "pingpong",
                    64,
                    false,
                    10_000.0,
                ),
            ],
            1,
        ));
        assert!(text.contains("differences untested"), "{text}");
        assert!(text.contains("    unix-stream (10.0 µs)\n"), "{text}");
        assert!(
            text.contains("    pipe (12.0 µs); 1.20× slower than the group above\n"),
            "{text}"
        );
        assert_eq!(render(&run_of(Vec::new(), 1)), "");
    }
}
