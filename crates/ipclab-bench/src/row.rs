//! A result row from what a cell's processes reported: every pair's round
//! trips in one histogram, CPU time and context switches of every process
//! per message, and rates over the pairs' common span.

use crate::harness::spec::{CellOutcome, CellSpec, Pattern, SideReport};
use crate::harness::topology;
use crate::results::{CpuPerMessage, Cpus, MinMax, Row, Switches, Throughput};
use crate::stats::{Stats, cdf, histogram};
use crate::transport::Transport;

/// Messages (or round trips) per second of `sides` together: all they
/// measured over the span from the earliest window's start to the latest
/// one's end. Pairs start together but stop on their own (a starved pair
/// runs on to make its fewest iterations; with `--iterations` the fast
/// ones finish first), so a sum of each pair's own rate would count the
/// time the last ones ran alone as if all had run through it.
fn rate(sides: &[&SideReport]) -> f64 {
    let measured: u64 = sides.iter().map(|s| s.measured).sum();
    let begin = sides.iter().map(|s| s.begin_ns).min().unwrap_or(0);
    let end = sides
        .iter()
        .map(|s| s.begin_ns + s.wall_ns)
        .max()
        .unwrap_or(0);
    let span = end.saturating_sub(begin);
    if span == 0 {
        0.0
    } else {
        measured as f64 * 1e9 / span as f64
    }
}

/// Turns what the supervisor reported into a result row: every pair's
/// round trips in one histogram, rates over the pairs' common span, CPU
/// time and context switches of every process per message.
pub fn row(t: &dyn Transport, spec: &CellSpec, o: CellOutcome) -> Row {
    let info = t.info();
    let pairs: Vec<(&SideReport, &SideReport)> = o.pairs().collect();
    let sum = |f: &dyn Fn(&SideReport, &SideReport) -> u64| -> u64 {
        pairs.iter().map(|&(c, s)| f(c, s)).sum()
    };
    // Messages are counted where they are received: the server for
    // requests and streams; round trips by the client.
    let messages = match spec.pattern {
        Pattern::Stream => sum(&|_, s| s.measured),
        _ => sum(&|c, _| c.measured),
    };
    let per = |total: u64| {
        if messages == 0 {
            0.0
        } else {
            total as f64 / messages as f64
        }
    };
    let received = sum(&|_, s| s.total);
    let rounds = if received == 0 {
        0.0
    } else {
        sum(&|_, s| s.rounds) as f64 / received as f64
    };
    // The side whose window counts: the server's for streams (it times
    // arrivals), the client's for round trips.
    let timed: Vec<&SideReport> = pairs
        .iter()
        .map(|&(c, s)| {
            if spec.pattern == Pattern::Stream {
                s
            } else {
                c
            }
        })
        .collect();
    // Each pair's rate over its own window, for fairness; all pairs' over
    // the span from the first window's start to the last one's end.
    // Open loop: the rate each client started its round trips at (see
    // `SideReport::paced_ns`), the offered one unless the channel held it
    // back; a stall it caught up on, or a slow last reply, does not count.
    let pair_rates: Vec<f64> = timed
        .iter()
        .map(|side| match (spec.rate, side.paced_ns) {
            (Some(_), 0) => 0.0,
            (Some(_), ns) => side.measured as f64 * 1e9 / ns as f64,
            (None, _) => rate(&[side]),
        })
        .collect();
    let total_rate = rate(&timed);
    let seen = |client: bool| {
        let mut all: Vec<usize> = pairs
            .iter()
            .flat_map(|&(c, s)| if client { c } else { s }.cpus_seen.iter().copied())
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    };
    let mut row = Row {
        mechanism: info.name.into(),
        family: info.family.as_str().into(),
        sync: info.sync.into(),
        polls: info.polls,
        copies_per_message: info.copies.count,
        copies_why: info.copies.why.into(),
        pattern: spec.pattern.to_string(),
        size: spec.channel.size,
        placement: spec.placement.to_string(),
        remote: None,
        pairs: spec.pairs,
        oversubscription: Some(topology::oversubscription(
            spec.cpus.as_deref(),
            spec.pairs,
            crate::machine::allowed_cpus().len(),
        )),
        offered_rate: spec.rate,
        achieved_rate: None,
        sustained: None,
        cpus: Cpus {
            client: seen(true),
            server: seen(false),
        },
        iterations: 0,
        verified: spec.verify,
        rounds,
        setup_ns: o.setup_ns,
        teardown_ns: o.teardown_ns,
        rtt_ns: None,
        rtt_cdf: Vec::new(),
        rtt_uncorrected_ns: None,
        round_trips: None,
        pair_throughput: None,
        context_switches_per_message: None,
        throughput: None,
        oneshot_ns: None,
        cpu_ns_per_message: CpuPerMessage {
            client: per(sum(&|c, _| c.cpu_ns)),
            server: per(sum(&|_, s| s.cpu_ns)),
        },
        vs_limit: None,
        vs_limit_ci95: None,
        vs_bare: None,
        repetitions: Vec::new(),
        ci95: None,
    };
    if spec.pattern != Pattern::Oneshot {
        row.pair_throughput = Some(MinMax {
            min: pair_rates.iter().copied().fold(f64::INFINITY, f64::min),
            max: pair_rates.iter().copied().fold(0.0, f64::max),
        });
        row.context_switches_per_message = Some(Switches {
            voluntary: per(sum(&|c, s| c.voluntary_switches + s.voluntary_switches)),
            involuntary: per(sum(&|c, s| c.involuntary_switches + s.involuntary_switches)),
        });
    }
    match spec.pattern {
        Pattern::Pingpong => {
            let h = histogram(pairs.iter().flat_map(|(c, _)| c.histogram.iter().copied()));
            row.iterations = messages;
            row.rtt_ns = Some(Stats::of(&h));
            row.rtt_cdf = cdf(&h);
            row.round_trips = Some(Throughput {
                bytes_per_s: total_rate * spec.channel.size as f64,
                messages_per_s: total_rate,
            });
            if let Some(offered) = spec.rate {
                let u = histogram(
                    pairs
                        .iter()
                        .flat_map(|(c, _)| c.uncorrected.iter().copied()),
                );
                row.rtt_uncorrected_ns = Some(Stats::of(&u));
                row.achieved_rate =
                    Some(pair_rates.iter().sum::<f64>() / pair_rates.len().max(1) as f64);
                // Every pair must keep up: one that fell behind has round
                // trips whose wait grows with the run, whatever the others
                // did.
                let slowest = pair_rates.iter().copied().fold(f64::INFINITY, f64::min);
                row.sustained = Some(slowest >= Row::SUSTAINED * offered);
            }
        }
        Pattern::Stream => {
            row.iterations = messages;
            row.throughput = Some(Throughput {
                bytes_per_s: total_rate * spec.channel.size as f64,
                messages_per_s: total_rate,
            });
        }
        Pattern::Oneshot => {
            row.iterations = o.oneshot.len() as u64;
            row.oneshot_ns = Some(Stats::of_samples(o.oneshot.iter().map(|s| s.total_ns)));
            row.cpu_ns_per_message = CpuPerMessage {
                client: 0.0,
                server: 0.0,
            };
        }
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(begin_ns: u64, wall_ns: u64, measured: u64) -> SideReport {
        SideReport {
            begin_ns,
            wall_ns,
            measured,
            ..SideReport::default()
        }
    }

    #[test]
    fn all_pairs_count_over_their_common_span() {
        // Two pairs of 100 each: one done in 1 s, the other, starved, in
        // 4 s. Not 100 + 25 per second: 200 over the 4 s they took.
        let (fast, slow) = (
            window(10, 1_000_000_000, 100),
            window(10, 4_000_000_000, 100),
        );
        assert_eq!(rate(&[&fast, &slow]), 50.0);
        assert_eq!(rate(&[&fast]), 100.0);
        assert_eq!(rate(&[&slow]), 25.0);
        // Windows that start apart: the span runs from the first start.
        let late = window(1_000_000_010, 1_000_000_000, 100);
        assert_eq!(rate(&[&fast, &late]), 100.0);
        assert_eq!(rate(&[&window(5, 0, 0)]), 0.0);
    }
}
