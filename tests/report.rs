//! The report folder: plots as SVG and PNG, and a self-contained
//! `index.html`, from a hand-made run of thirty mechanisms and from a tiny
//! real one.

mod common;

use std::path::Path;

use assert_cmd::Command;
use ipclab_bench::harness::clock::TimerCalibration;
use ipclab_bench::machine::Machine;
use ipclab_bench::report::write_report;
use ipclab_bench::results::{
    CpuPerMessage, Cpus, Failure, MinMax, Row, Run, SCHEMA, Settings, Skipped, Switches, Throughput,
};
use ipclab_bench::stats::Stats;

use common::TempDir;

const FAMILIES: [(&str, usize); 4] = [
    ("message-passing", 12),
    ("shared-memory", 12),
    ("limit", 3),
    ("peer", 3),
];

fn stats(p50: u64) -> Stats {
    Stats {
        min: p50 / 2,
        p50,
        p90: p50 * 2,
        p99: p50 * 4,
        p999: p50 * 8,
        max: p50 * 20,
        mean: p50 as f64 * 1.2,
        stddev: p50 as f64 * 0.3,
    }
}

/// Thirty mechanisms of four families, three patterns, three sizes; one
/// mechanism's name needs escaping.
fn hand_made_run() -> Run {
    let mut rows = Vec::new();
    let mut k = 0u64;
    for (family, n) in FAMILIES {
        for i in 0..n {
            k += 1;
            let name = if k == 5 {
                "odd<&>name".to_string()
            } else {
                format!("{family}-{i}")
            };
            for pattern in ["pingpong", "stream", "oneshot"] {
                for size in [0usize, 12, 4096, 4 << 20] {
                    let p50 = 1_000 * k + size as u64 / 100;
                    let mut row = Row {
                        mechanism: name.clone(),
                        family: family.into(),
                        sync: "test".into(),
                        polls: false,
                        copies_per_message: Some(2),
                        copies_why: "into the kernel and out".into(),
                        pattern: pattern.into(),
                        size,
                        placement: "cross-core".into(),
                        remote: None,
                        pairs: 1,
                        oversubscription: Some(1.0),
                        offered_rate: None,
                        achieved_rate: None,
                        sustained: None,
                        cpus: Cpus {
                            client: vec![0],
                            server: vec![1],
                        },
                        iterations: 1000,
                        verified: true,
                        rounds: 1.0,
                        setup_ns: 10_000,
                        teardown_ns: 5_000,
                        rtt_ns: None,
                        rtt_cdf: Vec::new(),
                        rtt_uncorrected_ns: None,
                        round_trips: None,
                        pair_throughput: None,
                        context_switches_per_message: None,
                        throughput: None,
                        oneshot_ns: None,
                        vs_limit: None,
                        vs_limit_ci95: None,
                        vs_bare: None,
                        repetitions: Vec::new(),
                        ci95: None,
                        cpu_ns_per_message: CpuPerMessage {
                            client: p50 as f64 / 2.0,
                            server: p50 as f64 / 3.0,
                        },
                    };
                    match pattern {
                        "pingpong" => {
                            row.rtt_ns = Some(stats(p50));
                            row.rtt_cdf = [0.0, 0.5, 0.9, 0.99, 0.999, 0.9999, 1.0]
                                .iter()
                                .zip([1, 2, 4, 8, 16, 32, 64])
                                .map(|(&q, m)| (q, p50 * m / 2))
                                .collect();
                        }
                        "stream" => {
                            let messages_per_s = 1e9 / p50 as f64;
                            row.throughput = Some(Throughput {
                                bytes_per_s: messages_per_s * size as f64,
                                messages_per_s,
                            });
                        }
                        _ => row.oneshot_ns = Some(stats(p50 * 100)),
                    }
                    rows.push(row);
                }
            }
        }
    }
    Run {
        schema: SCHEMA,
        ipclab_version: "0.0.0-test".into(),
        started_at: "2026-01-01T00:00:00Z".into(),
        machine: Machine::read(),
        timer: TimerCalibration {
            overhead_ns: 20.0,
            resolution_ns: 1,
        },
        settings: Settings {
            mechanisms: rows.iter().map(|r| r.mechanism.clone()).collect(),
            sizes: vec![0, 12, 4096, 4 << 20],
            patterns: vec!["pingpong".into(), "stream".into(), "oneshot".into()],
            placements: vec!["cross-core".into()],
            warmup_ns: 0,
            duration_ns: 1,
            iterations: None,
            verify: true,
            segment_size: None,
            segments: 1,
            limits: false,
            repeat: 1,
            seed: 0,
            pairs: vec![1],
            rates: vec![None],
        },
        rows,
        failures: vec![Failure {
            mechanism: "broken".into(),
            pattern: "pingpong".into(),
            size: 12,
            placement: "cross-core".into(),
            pairs: 1,
            offered_rate: None,
            error: "a <test> failure".into(),
        }],
        skipped: vec![Skipped {
            mechanism: "absent".into(),
            reason: "not here".into(),
        }],
        complete: true,
    }
}

/// Every `http://` or `https://` in `text`, except the SVG namespace.
fn web_references(text: &str) -> Vec<String> {
    const SVG_NS: &str = "http://www.w3.org/2000/svg";
    let mut found = Vec::new();
    for scheme in ["http://", "https://"] {
        for (i, _) in text.match_indices(scheme) {
            if !text[i..].starts_with(SVG_NS) {
                found.push(text[i..].chars().take(60).collect());
            }
        }
    }
    found
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        path.display()
    );
    // A blank 1200x680 image compresses to a few kB; text and lines do not.
    assert!(bytes.len() > 20_000, "{} is nearly empty", path.display());
}

fn assert_svg(path: &Path, names: &[&str]) -> String {
    let svg = std::fs::read_to_string(path).unwrap();
    assert!(svg.contains("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(
        svg.matches("<text").count(),
        svg.matches("</text>").count(),
        "unbalanced text elements in {}",
        path.display()
    );
    for name in names {
        assert!(svg.contains(name), "{} lacks {name}", path.display());
    }
    svg
}

#[test]
fn thirty_mechanisms_give_every_plot_and_a_self_contained_page() {
    let dir = TempDir::new("hand");
    let run = hand_made_run();
    let index = write_report(&dir.0, &run, None).unwrap();
    assert_eq!(index, dir.0.join("index.html"));

    // Legend entries: every mechanism, escaped where needed.
    let names: Vec<String> = run
        .rows
        .iter()
        .map(|r| {
            r.mechanism
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        })
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let stems = [
        "latency-cross-core",
        "throughput-cross-core",
        // The median of 12 B, 4 KiB, 4 MiB (size 0 is left out).
        "distribution-4KiB-cross-core",
        "cpu-pingpong-cross-core",
        "cpu-stream-cross-core",
        "oneshot-cross-core",
    ];
    for stem in stems {
        let svg = assert_svg(&dir.0.join(format!("{stem}.svg")), &names);
        for heading in ["message passing", "shared memory", "limits", "peers"] {
            assert!(svg.contains(heading), "{stem} legend lacks {heading}");
        }
        assert_png(&dir.0.join(format!("{stem}.png")));
    }
    let latency = std::fs::read_to_string(dir.0.join("latency-cross-core.svg")).unwrap();
    for label in ["message size", "round-trip time", "4 MiB", "12 B", "p99"] {
        assert!(latency.contains(label), "latency plot lacks {label}");
    }

    let page = std::fs::read_to_string(&index).unwrap();
    assert_eq!(web_references(&page), Vec::<String>::new());
    for forbidden in ["<script", "<link", "<img", "<iframe", "@import", "url("] {
        assert!(!page.contains(forbidden), "the page has {forbidden}");
    }
    assert_eq!(page.matches("<svg").count(), stems.len());
    assert_eq!(page.matches("</svg>").count(), stems.len());
    for text in [
        "Machine and settings",
        "Summary",
        "odd&lt;&amp;&gt;name",
        "a &lt;test&gt; failure",
        "skipped absent: not here",
        // The tables of the terminal.
        "pingpong, cross-core (client on CPU 0, server on CPU 1)",
        "cpu client",
        "throughput",
        "total p50",
    ] {
        assert!(page.contains(text), "the page lacks {text}");
    }
    assert!(!page.contains("odd<&>name"), "unescaped name in the page");
}

/// Two mechanisms of the hand-made run, one spinning, at 1, 2 and 4 pairs
/// closed loop, and at one pair offered 1k/s, 10k/s and 100k/s: the
/// spinner's p99 passes the sleeper's at 4 pairs, and it cannot sustain
/// 100k/s.
fn loaded_run() -> Run {
    let mut run = hand_made_run();
    let base: Vec<Row> = run
        .rows
        .iter()
        .filter(|r| {
            r.size == 12
                && r.pattern != "oneshot"
                && ["shared-memory-0", "message-passing-0"].contains(&r.mechanism.as_str())
        })
        .cloned()
        .collect();
    let mut rows = Vec::new();
    for r in &base {
        let spins = r.family == "shared-memory";
        let mut r = r.clone();
        if spins {
            // Faster than the sleeper (1 µs p50, 4 µs p99) with one pair.
            r.rtt_ns = r.rtt_ns.map(|_| stats(500));
            if let Some(t) = r.throughput.as_mut() {
                t.messages_per_s = 2e6;
                t.bytes_per_s = 2e6 * 12.0;
            }
        }
        for pairs in [1usize, 2, 4] {
            let mut l = r.clone();
            l.polls = spins;
            l.pairs = pairs;
            l.oversubscription = Some(pairs as f64);
            l.pair_throughput = Some(MinMax { min: 1e3, max: 2e3 });
            l.context_switches_per_message = Some(Switches {
                voluntary: 1.0,
                involuntary: 0.5,
            });
            if spins
                && pairs == 4
                && let Some(t) = l.throughput.as_mut()
            {
                t.messages_per_s = 1e5;
            }
            if let Some(s) = l.rtt_ns.as_mut() {
                if spins && pairs == 4 {
                    s.p99 = 50_000_000;
                }
                l.round_trips = Some(Throughput {
                    bytes_per_s: 12e5 * pairs as f64,
                    messages_per_s: 1e5 * pairs as f64
                        / if spins && pairs == 4 { 10.0 } else { 1.0 },
                });
            }
            rows.push(l);
        }
        if r.pattern == "pingpong" {
            for rate in [1e3, 1e4, 1e5] {
                let mut l = r.clone();
                l.polls = spins;
                l.offered_rate = Some(rate);
                let achieved = if spins && rate == 1e5 { 3e4 } else { rate };
                l.achieved_rate = Some(achieved);
                l.sustained = Some(achieved >= rate * Row::SUSTAINED);
                l.rtt_uncorrected_ns = l.rtt_ns;
                rows.push(l);
            }
        }
    }
    run.rows = rows;
    run.settings.pairs = vec![1, 2, 4];
    run.settings.rates = vec![Some(1e3), Some(1e4), Some(1e5), None];
    run
}

#[test]
fn a_loaded_run_draws_against_pairs_and_offered_rate_and_says_where_spinning_falls_behind() {
    let dir = TempDir::new("loaded");
    let index = write_report(&dir.0, &loaded_run(), None).unwrap();
    let names = ["shared-memory-0", "message-passing-0"];
    for stem in [
        "pairs-latency-cross-core-12B",
        "pairs-round-trips-cross-core-12B",
        "pairs-messages-cross-core-12B",
        "rate-latency-cross-core-1p-12B",
    ] {
        assert_svg(&dir.0.join(format!("{stem}.svg")), &names);
        assert_png(&dir.0.join(format!("{stem}.png")));
    }
    let knee = std::fs::read_to_string(dir.0.join("rate-latency-cross-core-1p-12B.svg")).unwrap();
    assert!(
        knee.contains("hollow: rate NOT sustained"),
        "no hollow legend"
    );
    let pairs = std::fs::read_to_string(dir.0.join("pairs-latency-cross-core-12B.svg")).unwrap();
    assert!(
        !pairs.contains("hollow"),
        "a hollow legend without a hollow point"
    );
    let page = std::fs::read_to_string(&index).unwrap();
    for text in [
        "id=\"pairs-latency-cross-core-12B\"",
        "id=\"rate-latency-cross-core-1p-12B\"",
        "Spinning under load",
        "shared-memory-0: best at 1 pair",
        "behind message-passing-0 from 4 pairs",
        "could not sustain the offered rate at 100k/s",
        "pairs slowest–fastest",
        "NOT SUSTAINED",
    ] {
        assert!(page.contains(text), "the page lacks {text}");
    }
}

#[test]
fn a_chosen_size_moves_the_distribution_plot() {
    let dir = TempDir::new("cdf");
    write_report(&dir.0, &hand_made_run(), Some(12)).unwrap();
    assert!(dir.0.join("distribution-12B-cross-core.svg").exists());
    assert!(!dir.0.join("distribution-4KiB-cross-core.svg").exists());
}

#[test]
fn a_tiny_real_run_writes_the_report() {
    let dir = TempDir::new("real");
    let report = dir.0.join("report");
    let out = Command::cargo_bin("ipclab")
        .unwrap()
        .args([
            "run",
            "-m",
            "pipe",
            "-s",
            "0,64,4K",
            "-p",
            "pingpong,stream",
        ])
        .args([
            "--warmup",
            "0ms",
            "--duration",
            "20ms",
            "--placement",
            "unpinned",
        ])
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for stem in [
        "latency-unpinned",
        "throughput-unpinned",
        "distribution-64B-unpinned",
        "cpu-pingpong-unpinned",
        "cpu-stream-unpinned",
    ] {
        assert_svg(&report.join(format!("{stem}.svg")), &["pipe"]);
        assert_png(&report.join(format!("{stem}.png")));
    }
    let page = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert_eq!(web_references(&page), Vec::<String>::new());
    assert!(page.contains("pipe") && page.contains("every byte of every message verified"));
}

#[test]
fn a_cdf_size_that_was_not_measured_is_refused() {
    let dir = TempDir::new("bad");
    let out = Command::cargo_bin("ipclab")
        .unwrap()
        .args([
            "run",
            "-m",
            "pipe",
            "-s",
            "64",
            "--cdf-size",
            "4K",
            "--report",
        ])
        .arg(dir.0.join("r"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cdf-size"));
}

/// The report's files follow the exports' rules: a symbolic link planted
/// as `index.html` (or as a plot) is refused, not written through nor
/// replaced, and no temporary file is left.
#[test]
fn a_link_planted_in_the_report_folder_is_refused_and_left_alone() {
    let dir = TempDir::new("planted");
    let victim = dir.0.join("victim.txt");
    std::fs::write(&victim, "keep me").unwrap();
    let report = dir.0.join("report");
    std::fs::create_dir(&report).unwrap();
    for name in ["index.html", "latency-cross-core.svg"] {
        let link = report.join(name);
        let _ = std::fs::remove_file(report.join("index.html"));
        let _ = std::fs::remove_file(report.join("latency-cross-core.svg"));
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let err = write_report(&report, &hand_made_run(), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("symbolic link") && err.contains(name), "{err}");
        assert_eq!(std::fs::read_link(&link).unwrap(), victim);
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
        let temps: Vec<_> = std::fs::read_dir(&report)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(temps.is_empty(), "{temps:?}");
    }
}
