//! Where the spinning mechanisms fall behind the sleeping ones: the part of
//! the summary that follows the load (`--pairs`, `--rate`).
//!
//! For each placement, pattern and size, and each series of steps that
//! differ only in the number of pairs (at one offered rate) or only in
//! the offered rate (at one number of pairs, closed loop last), every
//! mechanism that polls (`Row::polls`, limits aside) is set against the
//! best sleeping mechanism at each step: the one with the lowest p99 among
//! those that sustained the rate (pingpong), or the highest throughput
//! (stream). A spinner is behind at a step when its p99 is higher, its
//! round trips per second of all pairs (messages per second, for stream)
//! fewer, or its slowest pair's fewer (a starved pair), by more than the
//! noise allows, or when it could not sustain the rate. The p50 alone would hide it: a spinner preempted by its
//! neighbours stalls for whole time slices on a few round trips, which show
//! only past the p99.
//!
//! The noise: p99 and throughput carry no interval of their own (the
//! repetitions record the headline figure, the p50 or the messages per
//! second). The comparison borrows each row's relative 95 % interval of its
//! headline figure (at least [`MIN_RELATIVE`]) and calls a difference only
//! beyond the wider of the two. A sleeper whose interval is too wide to
//! place (`summary::too_noisy`) is no reference. A spinner that is too
//! noisy is judged against the sleeper's interval alone and can only be
//! found behind (its repetitions disagree, which the line says), else it
//! is "too noisy to tell" at that step: its pooled p99 and throughput hold
//! the stalled repetitions too. Without repetitions the differences are
//! untested, and the heading says so.

use super::summary::{too_noisy, unsustained, verdict_groups};
use crate::interval::MIN_RELATIVE;
use crate::results::{Row, Run};
use crate::units::{count_rate, duration, rate_label, size};

/// One series of steps: a heading and a line per spinning mechanism.
pub struct Block {
    pub heading: String,
    pub lines: Vec<String>,
}

/// What the terminal summary prints after its groups; empty when the run
/// has no series of steps with both a spinning and a sleeping mechanism.
pub fn render(run: &Run) -> String {
    let blocks = blocks(run);
    if blocks.is_empty() {
        return String::new();
    }
    let mut out = format!("\n{}\n", title(run));
    for b in blocks {
        out.push_str(&format!("  {}:\n", b.heading));
        for l in b.lines {
            out.push_str(&format!("    {l}\n"));
        }
    }
    out
}

/// The section's title, saying how differences are told from noise.
pub fn title(run: &Run) -> String {
    let how = if run.rows.iter().any(|r| r.ci95.is_some()) {
        "a difference counts beyond the rows' 95 % intervals"
    } else {
        "one repetition: differences untested"
    };
    format!(
        "Spinning against sleeping as the load grows (p99, throughput of all pairs and of the \
         slowest pair, against the best sleeping mechanism at each step; limits aside; {how})"
    )
}

/// What a series of steps varies.
#[derive(Clone, Copy, PartialEq)]
enum Along {
    Pairs,
    Rate,
}

/// A step of a series: pairs, and the offered rate as bits (`None`
/// closed loop).
type Step = (usize, Option<u64>);

/// Every series of the run with a spinning and a sleeping mechanism.
pub fn blocks(run: &Run) -> Vec<Block> {
    let rows: Vec<&Row> = run.rows.iter().filter(|r| r.family != "limit").collect();
    let mut cells: Vec<(&str, &str, usize)> = Vec::new();
    for r in &rows {
        let key = (r.placement.as_str(), r.pattern.as_str(), r.size);
        if r.pattern != "oneshot" && !cells.contains(&key) {
            cells.push(key);
        }
    }
    let mut out = Vec::new();
    for (placement, pattern, bytes) in cells {
        let cell: Vec<&Row> = rows
            .iter()
            .copied()
            .filter(|r| r.placement == placement && r.pattern == pattern && r.size == bytes)
            .collect();
        let step = |r: &Row| -> Step { (r.pairs, r.offered_rate.map(f64::to_bits)) };
        // Along pairs: one series per offered rate.
        let mut rates: Vec<Option<u64>> = cell.iter().map(|r| step(r).1).collect();
        rates.sort_unstable();
        rates.dedup();
        for rate in rates {
            let series: Vec<&Row> = cell.iter().copied().filter(|r| step(r).1 == rate).collect();
            out.extend(block(&series, Along::Pairs));
        }
        // Along the rate: one series per number of pairs.
        let mut pairs: Vec<usize> = cell.iter().map(|r| r.pairs).collect();
        pairs.sort_unstable();
        pairs.dedup();
        for p in pairs {
            let series: Vec<&Row> = cell.iter().copied().filter(|r| r.pairs == p).collect();
            if series.iter().any(|r| r.offered_rate.is_some()) {
                out.extend(block(&series, Along::Rate));
            }
        }
    }
    out
}

/// The steps of a series in order: pairs ascending, or rates ascending
/// with closed loop (the most a pair can do) last.
fn steps(rows: &[&Row], along: Along) -> Vec<Step> {
    let mut steps: Vec<Step> = rows
        .iter()
        .map(|r| (r.pairs, r.offered_rate.map(f64::to_bits)))
        .collect();
    steps.sort_by(|a, b| match along {
        Along::Pairs => a.0.cmp(&b.0),
        Along::Rate => {
            let rate = |s: &Step| s.1.map_or(f64::INFINITY, f64::from_bits);
            rate(a).total_cmp(&rate(b))
        }
    });
    steps.dedup();
    steps
}

fn step_words(step: Step, along: Along) -> String {
    match along {
        Along::Pairs if step.0 == 1 => "1 pair".into(),
        Along::Pairs => format!("{} pairs", step.0),
        Along::Rate => step.1.map_or("max (closed loop)".into(), |b| {
            rate_label(f64::from_bits(b))
        }),
    }
}

fn at<'a>(rows: &[&'a Row], step: Step) -> Vec<&'a Row> {
    rows.iter()
        .copied()
        .filter(|r| (r.pairs, r.offered_rate.map(f64::to_bits)) == (step.0, step.1))
        .collect()
}

/// Throughput of all pairs: round trips per second (pingpong) or messages
/// per second (stream).
fn throughput(r: &Row) -> Option<f64> {
    r.round_trips
        .or(r.throughput)
        .map(|t| t.messages_per_s)
        .filter(|&t| t > 0.0)
}

fn p99(r: &Row) -> Option<f64> {
    r.rtt_ns.map(|s| s.p99 as f64).filter(|&v| v > 0.0)
}

/// The best sleeping rows of a step, each by its own figure (lowest p99,
/// most round trips or messages of all pairs, best slowest pair), among
/// those that sustained the rate and can be placed: a spinner is behind
/// when any of them beats it on its figure.
#[derive(Clone, Copy)]
struct Sleepers<'a> {
    p99: Option<&'a Row>,
    throughput: Option<&'a Row>,
    slowest: Option<&'a Row>,
}

impl<'a> Sleepers<'a> {
    fn of(rows: &[&'a Row]) -> Option<Sleepers<'a>> {
        let eligible: Vec<&Row> = rows
            .iter()
            .copied()
            .filter(|r| !r.polls && !unsustained(r) && !too_noisy(r))
            .collect();
        let best = |f: fn(&Row) -> Option<f64>, lower: bool| {
            eligible
                .iter()
                .copied()
                .filter_map(|r| Some((f(r)?, r)))
                .min_by(|a, b| {
                    let o = a.0.total_cmp(&b.0);
                    if lower { o } else { o.reverse() }
                })
                .map(|(_, r)| r)
        };
        let s = Sleepers {
            p99: best(p99, true),
            throughput: best(throughput, false),
            slowest: best(slowest, false),
        };
        s.any().map(|_| s)
    }

    /// One of them, to quote beside a spinner that is not behind.
    fn any(&self) -> Option<&'a Row> {
        self.p99.or(self.throughput).or(self.slowest)
    }
}

/// The factor a figure must differ by, between `a` and `b`, to count: one
/// plus the wider of their relative intervals (at least
/// [`MIN_RELATIVE`]); 1 when neither has an interval (untested).
fn margin(a: &Row, b: &Row) -> f64 {
    let rel = |r: &Row| match (r.ci95, r.figure()) {
        (Some(i), Some(c)) => Some(i.relative(c).max(MIN_RELATIVE)),
        _ => None,
    };
    1.0 + rel(a).into_iter().chain(rel(b)).fold(0.0, f64::max)
}

/// The figures a spinner is behind by, each with the sleeper that beat it.
#[derive(Clone, Copy, Default)]
struct By<'a> {
    p99: Option<&'a Row>,
    /// Of all pairs together.
    throughput: Option<&'a Row>,
    /// Of the slowest pair: one pair starved while the others run.
    slowest: Option<&'a Row>,
}

impl<'a> By<'a> {
    fn sleepers(&self) -> impl Iterator<Item = &'a Row> {
        [self.p99, self.throughput, self.slowest]
            .into_iter()
            .flatten()
    }

    /// `shm-futex` when one sleeper beat it on every figure it is behind
    /// by, else `the best sleeping mechanisms`.
    fn name(&self) -> String {
        let mut names: Vec<&str> = self.sleepers().map(|r| r.mechanism.as_str()).collect();
        names.dedup();
        match names.as_slice() {
            [one] => one.to_string(),
            _ => "the best sleeping mechanisms".into(),
        }
    }
}

/// The slowest pair's round trips (or messages) per second, with more
/// than one pair.
fn slowest(r: &Row) -> Option<f64> {
    r.pair_throughput
        .filter(|_| r.pairs > 1)
        .map(|p| p.min)
        .filter(|&v| v > 0.0)
}

/// How a spinning row stands at one step.
enum Standing<'a> {
    /// Level with or ahead of the best sleepers (one quoted).
    Ahead(&'a Row),
    /// Behind them by some of the figures compared.
    Behind(By<'a>),
    /// Could not sustain the offered rate.
    Unsustained,
    /// Its repetitions disagree too much to tell.
    Noisy,
}

fn standing<'a>(spinner: &'a Row, sleepers: Sleepers<'a>) -> Standing<'a> {
    if unsustained(spinner) {
        return Standing::Unsustained;
    }
    // A spinner whose repetitions disagree beyond placing is judged against
    // the sleeper's interval alone, and only to say that it is behind: its
    // pooled p99 and throughput hold every repetition, the stalled ones
    // too, and a stall in some repetitions is what falling behind looks
    // like. That it is ahead, such a row cannot tell.
    let noisy = too_noisy(spinner);
    let m = |sleeper: &Row| {
        if noisy {
            margin(sleeper, sleeper)
        } else {
            margin(spinner, sleeper)
        }
    };
    let fewer = |f: fn(&Row) -> Option<f64>, sleeper: Option<&'a Row>| {
        sleeper.filter(|z| matches!((f(spinner), f(z)), (Some(a), Some(b)) if a * m(z) < b))
    };
    let by = By {
        p99: sleepers
            .p99
            .filter(|z| matches!((p99(spinner), p99(z)), (Some(a), Some(b)) if a > b * m(z))),
        throughput: fewer(throughput, sleepers.throughput),
        slowest: fewer(slowest, sleepers.slowest),
    };
    match (by.sleepers().next(), sleepers.any()) {
        (Some(_), _) => Standing::Behind(by),
        (None, _) if noisy => Standing::Noisy,
        (None, Some(quoted)) => Standing::Ahead(quoted),
        (None, None) => Standing::Noisy,
    }
}

/// `; its repetitions disagree: p50 603 ns to 40.0 ms` for a row too noisy
/// to place, nothing otherwise.
fn disagreement(r: &Row) -> String {
    let (lo, hi) = r
        .repetitions
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        });
    if !too_noisy(r) || !lo.is_finite() {
        return String::new();
    }
    let (what, lo, hi) = if r.higher_is_better() {
        ("messages", count_rate(lo), count_rate(hi))
    } else {
        ("p50", duration(lo), duration(hi))
    };
    format!("; its repetitions disagree: {what} {lo} to {hi}")
}

/// `p99 2.68 µs, 206 k/s`: the figures compared, of one row.
fn figures(r: &Row) -> String {
    let mut parts = Vec::new();
    if let Some(s) = r.rtt_ns {
        parts.push(format!(
            "p50 {}, p99 {}",
            duration(s.p50 as f64),
            duration(s.p99 as f64)
        ));
    }
    if let Some(t) = throughput(r) {
        let what = if r.round_trips.is_some() {
            "round trips"
        } else {
            "messages"
        };
        parts.push(format!("{} {what}", count_rate(t)));
    }
    parts.join(", ")
}

/// `p99 9.1 ms against 221 µs; 51.8 k/s round trips against 206 k/s;
/// slowest pair 52.0 /s against 13.0 k/s`, each sleeper named after its
/// figure when they are not all one.
fn against(spinner: &Row, by: By) -> String {
    let named = by.name() == "the best sleeping mechanisms";
    let whose = |r: &Row| {
        if named {
            format!(" ({})", r.mechanism)
        } else {
            String::new()
        }
    };
    let mut parts = Vec::new();
    if let Some(z) = by.p99
        && let (Some(a), Some(b)) = (p99(spinner), p99(z))
    {
        parts.push(format!(
            "p99 {} against {}{}",
            duration(a),
            duration(b),
            whose(z)
        ));
    }
    let what = if spinner.round_trips.is_some() {
        "round trips"
    } else {
        "messages"
    };
    if let Some(z) = by.throughput
        && let (Some(a), Some(b)) = (throughput(spinner), throughput(z))
    {
        parts.push(format!(
            "{} {what} against {}{}",
            count_rate(a),
            count_rate(b),
            whose(z)
        ));
    }
    if let Some(z) = by.slowest
        && let (Some(a), Some(b)) = (slowest(spinner), slowest(z))
    {
        parts.push(format!(
            "slowest pair {} {what} against {}{}",
            count_rate(a),
            count_rate(b),
            whose(z)
        ));
    }
    parts.join("; ")
}

/// The lines of one series, if it has at least two steps, a spinning and
/// a sleeping mechanism.
fn block(rows: &[&Row], along: Along) -> Option<Block> {
    let steps = steps(rows, along);
    if steps.len() < 2 || !rows.iter().any(|r| r.polls) || rows.iter().all(|r| r.polls) {
        return None;
    }
    let first = rows[0];
    let heading = match along {
        Along::Pairs => format!(
            "{} {}, {}{}, as pairs grow ({})",
            first.pattern,
            size(first.size),
            first.placement,
            first.offered_rate.map_or(String::new(), |r| format!(
                ", offered {} per pair",
                rate_label(r)
            )),
            steps
                .iter()
                .map(|s| s.0.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Along::Rate => format!(
            "{} {}, {}{}, as the offered rate grows ({})",
            first.pattern,
            size(first.size),
            first.placement,
            if first.pairs == 1 {
                String::new()
            } else {
                format!(", {} pairs", first.pairs)
            },
            steps
                .iter()
                .map(|&s| step_words(s, along))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut spinners: Vec<&str> = Vec::new();
    for r in rows.iter().filter(|r| r.polls) {
        if !spinners.contains(&r.mechanism.as_str()) {
            spinners.push(&r.mechanism);
        }
    }
    let lines = spinners
        .into_iter()
        .map(|name| spinner_line(rows, name, &steps, along))
        .collect();
    Some(Block { heading, lines })
}

fn spinner_line(rows: &[&Row], name: &str, steps: &[Step], along: Along) -> String {
    let mut parts = Vec::new();
    let mut standings: Vec<(Step, &Row, Standing)> = Vec::new();
    for &step in steps {
        let here = at(rows, step);
        let Some(spinner) = here.iter().copied().find(|r| r.mechanism == name) else {
            continue;
        };
        if standings.is_empty() && parts.is_empty() {
            // The first step it was measured at: where it stood overall.
            let best = verdict_groups(&here)
                .first()
                .is_some_and(|g| g.iter().any(|r| r.mechanism == name));
            let how = if best { "best at" } else { "at" };
            parts.push(format!(
                "{how} {} ({})",
                step_words(step, along),
                figures(spinner)
            ));
        }
        if unsustained(spinner) {
            // Behind whatever the sleepers did: it measured no load.
            standings.push((step, spinner, Standing::Unsustained));
        } else if let Some(sleepers) = Sleepers::of(&here) {
            standings.push((step, spinner, standing(spinner, sleepers)));
        } else if here.iter().any(|r| !r.polls && too_noisy(r)) {
            // The sleepers that could be compared are too noisy to place.
            standings.push((step, spinner, Standing::Noisy));
        }
    }
    let behind = |s: &Standing| matches!(s, Standing::Behind(_) | Standing::Unsustained);
    let noisy: Vec<String> = standings
        .iter()
        .filter(|s| matches!(s.2, Standing::Noisy))
        .map(|s| step_words(s.0, along))
        .collect();
    match standings.iter().position(|s| behind(&s.2)) {
        None => {
            if let Some((step, spinner, Standing::Ahead(sleeper))) = standings
                .iter()
                .rev()
                .find(|s| matches!(s.2, Standing::Ahead(_)))
            {
                parts.push(format!(
                    "not behind the best sleeping mechanism up to {} ({}: {}; {}: {})",
                    step_words(*step, along),
                    name,
                    figures(spinner),
                    sleeper.mechanism,
                    figures(sleeper)
                ));
            }
        }
        Some(i) => {
            let (step, spinner, standing) = &standings[i];
            let all_after = standings[i..].iter().all(|s| behind(&s.2));
            let when = if all_after {
                format!("from {}", step_words(*step, along))
            } else {
                let at: Vec<String> = standings
                    .iter()
                    .filter(|s| behind(&s.2))
                    .map(|s| step_words(s.0, along))
                    .collect();
                format!("at {}", at.join(", "))
            };
            parts.push(match standing {
                Standing::Behind(by) => format!(
                    "behind {} {when} ({}{})",
                    by.name(),
                    against(spinner, *by),
                    disagreement(spinner)
                ),
                _ => format!(
                    "could not sustain the offered rate {when} (achieved {} per pair)",
                    spinner.achieved_rate.map_or("?".into(), count_rate)
                ),
            });
        }
    }
    if !noisy.is_empty() {
        parts.push(format!("too noisy to tell at {}", noisy.join(", ")));
    }
    format!("{name}: {}", parts.join("; "))
}

#[cfg(test)]
#[path = "spinning_tests.rs"]
mod tests;
