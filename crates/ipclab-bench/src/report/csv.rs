//! The CSV export: one line per row, nested figures flattened.

use anyhow::Result;

use crate::results::Run;

const HEADER: [&str; 25] = [
    "mechanism",
    "family",
    "sync",
    "pattern",
    "size",
    "placement",
    "cpus_client",
    "cpus_server",
    "iterations",
    "verified",
    "rounds",
    "setup_ns",
    "teardown_ns",
    "rtt_min_ns",
    "rtt_p50_ns",
    "rtt_p90_ns",
    "rtt_p99_ns",
    "rtt_p999_ns",
    "rtt_max_ns",
    "rtt_mean_ns",
    "rtt_stddev_ns",
    "bytes_per_s",
    "messages_per_s",
    "cpu_ns_per_message_client",
    "cpu_ns_per_message_server",
];

pub fn render(run: &Run) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<&str> = HEADER.to_vec();
    header.extend([
        "oneshot_p50_ns",
        "oneshot_p99_ns",
        "vs_limit",
        // The headline figure (p50 ns, or messages/s for stream): each
        // repetition's, space-separated, and the 95 % interval.
        "repetitions",
        "ci95_low",
        "ci95_high",
        "vs_limit_ci95_low",
        "vs_limit_ci95_high",
        "copies_per_message",
        // Pairs and offered load (schema 3): empty where the row has none.
        "pairs",
        "oversubscription",
        // Round trips per second per pair; empty for closed loop.
        "offered_rate",
        "achieved_rate",
        "sustained",
        // Pingpong: round trips per second over all pairs.
        "round_trips_per_s",
        // The slowest and fastest pair: round trips or messages per second.
        "pair_min_per_s",
        "pair_max_per_s",
        "switches_voluntary_per_message",
        "switches_involuntary_per_message",
        // Open loop: the p99 timed from each send, not from when it was due.
        "rtt_uncorrected_p99_ns",
    ]);
    w.write_record(&header)?;
    let opt = |v: Option<String>| v.unwrap_or_default();
    for r in &run.rows {
        let join = |c: &[usize]| {
            c.iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let rtt = r.rtt_ns.as_ref();
        let mut rec = vec![
            r.mechanism.clone(),
            r.family.clone(),
            r.sync.clone(),
            r.pattern.clone(),
            r.size.to_string(),
            r.placement.clone(),
            join(&r.cpus.client),
            join(&r.cpus.server),
            r.iterations.to_string(),
            r.verified.to_string(),
            format!("{:.3}", r.rounds),
            r.setup_ns.to_string(),
            r.teardown_ns.to_string(),
        ];
        rec.extend([
            opt(rtt.map(|s| s.min.to_string())),
            opt(rtt.map(|s| s.p50.to_string())),
            opt(rtt.map(|s| s.p90.to_string())),
            opt(rtt.map(|s| s.p99.to_string())),
            opt(rtt.map(|s| s.p999.to_string())),
            opt(rtt.map(|s| s.max.to_string())),
            opt(rtt.map(|s| format!("{:.1}", s.mean))),
            opt(rtt.map(|s| format!("{:.1}", s.stddev))),
            opt(r.throughput.map(|t| format!("{:.0}", t.bytes_per_s))),
            opt(r.throughput.map(|t| format!("{:.0}", t.messages_per_s))),
            format!("{:.1}", r.cpu_ns_per_message.client),
            format!("{:.1}", r.cpu_ns_per_message.server),
            opt(r.oneshot_ns.map(|s| s.p50.to_string())),
            opt(r.oneshot_ns.map(|s| s.p99.to_string())),
            opt(r.vs_limit.map(|v| format!("{v:.3}"))),
            r.repetitions
                .iter()
                .map(|x| format!("{x:.1}"))
                .collect::<Vec<_>>()
                .join(" "),
            opt(r.ci95.map(|i| format!("{:.1}", i.low))),
            opt(r.ci95.map(|i| format!("{:.1}", i.high))),
            opt(r.vs_limit_ci95.map(|i| format!("{:.3}", i.low))),
            opt(r.vs_limit_ci95.map(|i| format!("{:.3}", i.high))),
            opt(r.copies_per_message.map(|n| n.to_string())),
            r.pairs.to_string(),
            opt(r.oversubscription.map(|o| format!("{o:.3}"))),
            opt(r.offered_rate.map(|v| format!("{v:.1}"))),
            opt(r.achieved_rate.map(|v| format!("{v:.1}"))),
            opt(r.sustained.map(|b| b.to_string())),
            opt(r.round_trips.map(|t| format!("{:.1}", t.messages_per_s))),
            opt(r.pair_throughput.map(|p| format!("{:.1}", p.min))),
            opt(r.pair_throughput.map(|p| format!("{:.1}", p.max))),
            opt(r
                .context_switches_per_message
                .map(|c| format!("{:.4}", c.voluntary))),
            opt(r
                .context_switches_per_message
                .map(|c| format!("{:.4}", c.involuntary))),
            opt(r.rtt_uncorrected_ns.map(|s| s.p99.to_string())),
        ]);
        w.write_record(&rec)?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_rows::{pairs_run, rate_run};

    /// The records of `run`'s CSV as maps from column to value.
    fn records(run: &Run) -> Vec<std::collections::HashMap<String, String>> {
        let text = render(run).unwrap();
        let mut r = csv::Reader::from_reader(text.as_bytes());
        let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
        r.records()
            .map(|rec| {
                header
                    .iter()
                    .cloned()
                    .zip(rec.unwrap().iter().map(String::from))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn pairs_and_offered_load_have_columns() {
        let rows = records(&rate_run());
        let spin_50k = rows
            .iter()
            .find(|r| r["mechanism"] == "shm-spin" && r["offered_rate"] == "50000.0")
            .unwrap();
        assert_eq!(spin_50k["achieved_rate"], "20000.0");
        assert_eq!(spin_50k["sustained"], "false");
        assert_eq!(spin_50k["pairs"], "1");
        assert_eq!(spin_50k["rtt_uncorrected_p99_ns"], "45000000");
        assert_eq!(spin_50k["round_trips_per_s"], "20000.0");
        let closed = rows
            .iter()
            .find(|r| r["mechanism"] == "shm-spin" && r["offered_rate"].is_empty())
            .unwrap();
        assert_eq!(closed["sustained"], "");
        assert_eq!(closed["rtt_uncorrected_p99_ns"], "");

        let rows = records(&pairs_run());
        let spin_4 = rows
            .iter()
            .find(|r| r["mechanism"] == "shm-spin" && r["pairs"] == "4")
            .unwrap();
        assert_eq!(spin_4["oversubscription"], "4.000");
        assert_eq!(spin_4["pair_min_per_s"], "8000.0");
        assert_eq!(spin_4["pair_max_per_s"], "12000.0");
        assert_eq!(spin_4["switches_voluntary_per_message"], "0.0100");
        assert_eq!(spin_4["switches_involuntary_per_message"], "0.5000");
    }
}
