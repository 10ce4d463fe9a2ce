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
        ]);
        w.write_record(&rec)?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}
