//! The summary after the tables, in the manner of hyperfine: for each
//! placement, pattern and size, the fastest mechanism (limits aside), and
//! how many times faster it ran than each peer and than the best
//! message-passing mechanism.
//!
//! Pingpong and oneshot compare p50s. The spread is hyperfine's error
//! propagation for a ratio, `r × √((sa/a)² + (sb/b)²)`, with each row's
//! p90 − p50 standing in for its standard deviation (a round-trip
//! distribution has a long tail that would swamp a standard deviation).
//! Stream compares throughputs, measured over one window each: no spread.

use crate::results::{Row, Run};
use crate::units::{duration, rate, size};

/// The summary of `run`; empty when no group has anything to compare.
pub fn render(run: &Run) -> String {
    let mut groups: Vec<(&str, &str, usize)> = Vec::new();
    for r in &run.rows {
        let key = (r.placement.as_str(), r.pattern.as_str(), r.size);
        if !groups.contains(&key) {
            groups.push(key);
        }
    }
    let mut out = String::new();
    for (placement, pattern, bytes) in groups {
        let rows: Vec<&Row> = run
            .rows
            .iter()
            .filter(|r| {
                r.placement == placement
                    && r.pattern == pattern
                    && r.size == bytes
                    && r.family != "limit"
            })
            .collect();
        out.push_str(&group(&rows));
    }
    if out.is_empty() {
        return out;
    }
    format!(
        "\nSummary (limits aside; p50 over p50 with ± from both rows' p90 − p50, or throughput over throughput, no spread)\n{out}"
    )
}

/// A row's figure, lower is better, and its relative spread.
fn figure(r: &Row) -> Option<(f64, Option<f64>)> {
    let spread = |p50: u64, p90: u64| (p50 > 0).then(|| (p90 - p50.min(p90)) as f64 / p50 as f64);
    if let Some(s) = r.rtt_ns.or(r.oneshot_ns) {
        Some((s.p50 as f64, spread(s.p50, s.p90)))
    } else {
        let t = r.throughput?;
        (t.messages_per_s > 0.0).then(|| (1.0 / t.messages_per_s, None))
    }
}

fn headline(r: &Row) -> String {
    let what = match (r.rtt_ns.or(r.oneshot_ns), r.throughput) {
        (Some(s), _) => format!("p50 {}", duration(s.p50 as f64)),
        (None, Some(t)) => rate(t.bytes_per_s),
        _ => String::new(),
    };
    match r.vs_limit {
        Some(v) => format!("{what}, {v:.1}× limit"),
        None => what,
    }
}

/// The lines of one placement, pattern and size.
fn group(rows: &[&Row]) -> String {
    let mut ranked: Vec<(&Row, f64, Option<f64>)> = rows
        .iter()
        .filter_map(|r| figure(r).map(|(f, s)| (*r, f, s)))
        .collect();
    ranked.sort_by(|a, b| a.1.total_cmp(&b.1));
    let Some(&(best, best_figure, best_spread)) = ranked.first() else {
        return String::new();
    };
    let mut lines = String::new();
    let mut compare = |(r, f, s): (&Row, f64, Option<f64>), label: &str| {
        let ratio = f / best_figure;
        let spread = match (best_spread, s) {
            (Some(a), Some(b)) => format!(" ± {:.2}", ratio * (a * a + b * b).sqrt()),
            _ => String::new(),
        };
        lines.push_str(&format!(
            "    {ratio:.2}{spread} times faster than {} ({label})\n",
            r.mechanism
        ));
    };
    for &entry in ranked.iter().skip(1).filter(|e| e.0.family == "peer") {
        compare(entry, "peer");
    }
    if best.family != "message-passing"
        && let Some(&entry) = ranked.iter().find(|e| e.0.family == "message-passing")
    {
        compare(entry, "best message passing");
    }
    if lines.is_empty() {
        return lines;
    }
    format!(
        "  {} {} {}: {} ran ({})\n{lines}",
        best.pattern,
        best.placement,
        size(best.size),
        best.mechanism,
        headline(best)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Run;
    use crate::vs_limit::tests::row;

    fn run_of(rows: Vec<Row>) -> Run {
        let mut run: Run = serde_json::from_str(
            r#"{"schema":1,"ipclab_version":"0","started_at":"now","machine":{"kernel":"k","cpu_model":"c","cpu_count":2,"cpus_allowed":[0,1],"virtualised":false,"clock_source":"tsc"},"timer":{"overhead_ns":20.0,"resolution_ns":1},"settings":{"mechanisms":[],"sizes":[],"patterns":[],"placements":[],"warmup_ns":0,"duration_ns":0,"iterations":null,"verify":true,"segment_size":null,"segments":0},"rows":[],"failures":[],"skipped":[],"complete":true}"#
        )
        .unwrap();
        run.rows = rows;
        run
    }

    #[test]
    fn the_fastest_against_each_peer_and_the_best_message_passing() {
        let mut fast = row("shm-spin", "shared-memory", "pingpong", 64, true, 1000.0);
        fast.vs_limit = Some(1.25);
        let text = render(&run_of(vec![
            row("limit-spin", "limit", "pingpong", 64, true, 500.0),
            row("pipe", "message-passing", "pingpong", 64, false, 30_000.0),
            row(
                "unix-stream",
                "message-passing",
                "pingpong",
                64,
                false,
                20_000.0,
            ),
            row("iceoryx2", "peer", "pingpong", 64, true, 3000.0),
            fast,
            row("shm-futex", "shared-memory", "pingpong", 64, false, 5000.0),
        ]));
        // Each test row has p90 = 1.2 × p50: a relative spread of 0.2 on
        // both sides, so ± = ratio × √(0.04 + 0.04).
        let expected = "  pingpong cross-core 64 B: shm-spin ran (p50 1.00 µs, 1.2× limit)\n    \
                        3.00 ± 0.85 times faster than iceoryx2 (peer)\n    \
                        20.00 ± 5.66 times faster than unix-stream (best message passing)\n";
        assert!(text.ends_with(expected), "{text}");
        assert!(text.starts_with("\nSummary"), "{text}");
        assert!(!text.contains("limit-spin") && !text.contains("pipe "));
    }

    #[test]
    fn stream_compares_throughput_without_spread_and_a_lone_row_says_nothing() {
        let text = render(&run_of(vec![
            row("shm-spin", "shared-memory", "stream", 4096, true, 4e6),
            row("ipc-channel", "peer", "stream", 4096, false, 1e6),
            row("pipe", "message-passing", "stream", 64, false, 1e6),
        ]));
        assert!(
            text.contains("    4.00 times faster than ipc-channel (peer)\n"),
            "{text}"
        );
        assert!(!text.contains("64 B"), "{text}");
        assert_eq!(render(&run_of(Vec::new())), "");
    }

    #[test]
    fn a_message_passing_winner_is_compared_with_the_peers_only() {
        let text = render(&run_of(vec![
            row(
                "unix-stream",
                "message-passing",
                "pingpong",
                64,
                false,
                10_000.0,
            ),
            row("pipe", "message-passing", "pingpong", 64, false, 12_000.0),
            row("ipc-channel", "peer", "pingpong", 64, false, 15_000.0),
        ]));
        assert!(text.contains("unix-stream ran"), "{text}");
        assert!(text.contains("1.50 ± 0.42 times faster than ipc-channel (peer)"));
        assert!(!text.contains("best message passing"), "{text}");
    }
}
