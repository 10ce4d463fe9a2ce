//! `ipclab compare` on hand-made result files.

use assert_cmd::Command;
use serde_json::{Value, json};

fn stats(p50: u64, p90: u64) -> Value {
    json!({"min": p50 / 2, "p50": p50, "p90": p90, "p99": p90 * 2, "p999": p90 * 3,
           "max": p90 * 4, "mean": p50 as f64, "stddev": 1.0})
}

fn row(mechanism: &str, pattern: &str, size: u64, figure: Value) -> Value {
    let mut r = json!({
        "mechanism": mechanism, "family": "message-passing", "sync": "kernel", "pattern": pattern,
        "size": size, "placement": "cross-core", "cpus": {"client": [0], "server": [1]},
        "iterations": 100, "verified": true, "rounds": 1.0, "setup_ns": 1000, "teardown_ns": 10,
        "cpu_ns_per_message": {"client": 1.0, "server": 1.0}
    });
    let key = match pattern {
        "pingpong" => "rtt_ns",
        "stream" => "throughput",
        _ => "oneshot_ns",
    };
    r[key] = figure;
    r
}

fn run(rows: Vec<Value>) -> Value {
    json!({
        "schema": 1, "ipclab_version": "0.1.0", "started_at": "2026-11-23T10:00:00Z",
        "machine": {"kernel": "Linux 6", "cpu_model": "x", "cpu_count": 2, "cpus_allowed": [0, 1],
                    "virtualised": true, "clock_source": "tsc"},
        "timer": {"overhead_ns": 20.0, "resolution_ns": 10},
        "settings": {"mechanisms": [], "sizes": [], "patterns": [], "placements": [], "warmup_ns": 0,
                     "duration_ns": 0, "iterations": null, "verify": true, "segment_size": null, "segments": 1},
        "rows": rows, "failures": [], "skipped": [], "complete": true
    })
}

fn tput(bytes_per_s: f64) -> Value {
    json!({"bytes_per_s": bytes_per_s, "messages_per_s": bytes_per_s / 64.0})
}

struct Files(std::path::PathBuf);

impl Files {
    fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("ipclab-cmp-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Files(d)
    }
    fn write(&self, name: &str, v: &Value) -> std::path::PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, serde_json::to_string(v).unwrap()).unwrap();
        p
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ipclab() -> Command {
    Command::cargo_bin("ipclab").unwrap()
}

fn old_run() -> Value {
    run(vec![
        row("pipe", "pingpong", 64, stats(10_000, 11_000)),
        row("tcp", "pingpong", 64, stats(20_000, 21_000)),
        row("pipe", "stream", 4096, tput(1e9)),
        row("pipe", "oneshot", 64, stats(500_000, 520_000)),
        row("fifo", "pingpong", 64, stats(10_000, 11_000)),
    ])
}

#[test]
fn a_run_against_itself_is_all_same() {
    let f = Files::new("self");
    let a = f.write("a.json", &old_run());
    let out = ipclab()
        .arg("compare")
        .arg(&a)
        .arg(&a)
        .args(["--fail-above", "0"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("0 faster, 0 slower, 5 same within noise"),
        "{text}"
    );
}

#[test]
fn verdicts_follow_the_figures_and_the_noise() {
    let f = Files::new("verdicts");
    let old = f.write("old.json", &old_run());
    let new = f.write(
        "new.json",
        &run(vec![
            // 30 % slower, spread 10 %: slower.
            row("pipe", "pingpong", 64, stats(13_000, 14_300)),
            // 3 % slower: within the 5 % floor.
            row("tcp", "pingpong", 64, stats(20_600, 21_600)),
            // Throughput halved: slower by 100 %.
            row("pipe", "stream", 4096, tput(5e8)),
            // Twice as fast.
            row("pipe", "oneshot", 64, stats(250_000, 260_000)),
            // Only in NEW.
            row("udp", "pingpong", 64, stats(30_000, 31_000)),
        ]),
    );
    let out = ipclab()
        .arg("compare")
        .arg(&old)
        .arg(&new)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("1 faster, 2 slower, 1 same within noise"),
        "{text}"
    );
    assert!(text.contains("SLOWER by 30 %"), "{text}");
    assert!(text.contains("SLOWER by 100 %"), "{text}");
    assert!(
        text.contains("only in OLD: fifo pingpong 64 B cross-core"),
        "{text}"
    );
    assert!(
        text.contains("only in NEW: udp pingpong 64 B cross-core"),
        "{text}"
    );

    // --fail-above: 30 % and 100 % are above 20; only 100 % is above 50.
    let code = |pct: &str| {
        ipclab()
            .arg("compare")
            .arg(&old)
            .arg(&new)
            .args(["--fail-above", pct])
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(code("20"), Some(1));
    assert_eq!(code("50"), Some(1));
    assert_eq!(code("150"), Some(0));
}

/// Malformed or unusable result files: one `error:` line naming the file
/// and the problem, exit status 2, no panic.
#[test]
fn bad_files_are_one_clear_error() {
    let f = Files::new("bad");
    let good = f.write("good.json", &old_run());
    let raw = |name: &str, bytes: &[u8]| {
        let p = f.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let with = |key: &str, v: Value| {
        let mut r = old_run();
        r[key] = v;
        r
    };
    let mut wrong_row = old_run();
    wrong_row["rows"][0]["size"] = json!("big");
    let mut cases = vec![
        (
            f.write("v99.json", &with("schema", json!(99))),
            "schema version 99",
        ),
        (
            f.write("v-str.json", &with("schema", json!("1"))),
            "not an ipclab result file",
        ),
        (
            f.write("nothing.json", &json!({"rows": []})),
            "not an ipclab result file",
        ),
        (
            f.write("array.json", &json!([1, 2])),
            "not an ipclab result file",
        ),
        (
            f.write("rows.json", &with("rows", json!("none"))),
            "does not match schema 1",
        ),
        (f.write("row.json", &wrong_row), "does not match schema 1"),
        (
            f.write("other.json", &run(vec![row("udp", "stream", 8, tput(1e6))])),
            "no measurement in common",
        ),
        (
            f.write("empty-run.json", &run(vec![])),
            "no measurement in common",
        ),
        (raw("empty.json", b""), "is not valid JSON"),
        (
            raw("text.json", b"mechanism,p50\npipe,10\n"),
            "is not valid JSON",
        ),
        (
            raw("broken.json", b"{\"schema\": 1, \"rows\": ["),
            "is not valid JSON",
        ),
        (raw("deep.json", &[b'['; 100_000]), "is not valid JSON"),
        (
            raw("garbage.bin", &[0xff, 0xfe, 0, 1, 0x80, 0xc3, 0x28]),
            "cannot read",
        ),
        (f.0.join("missing.json"), "cannot read"),
        (f.0.clone(), "cannot read"),
    ];
    let truncated = serde_json::to_string(&old_run()).unwrap();
    cases.push((
        raw(
            "truncated.json",
            &truncated.as_bytes()[..truncated.len() / 2],
        ),
        "is not valid JSON",
    ));
    for (path, expected) in &cases {
        // The bad file as NEW, and as OLD.
        for (old, new) in [(&good, path), (path, &good)] {
            let out = ipclab().arg("compare").arg(old).arg(new).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            let at = format!("compare {} {}", old.display(), new.display());
            assert_eq!(out.status.code(), Some(2), "{at}: {err}");
            assert!(
                err.starts_with("error: ") && err.contains(expected),
                "{at}: expected '{expected}' in: {err}"
            );
            if !expected.contains("in common") {
                assert!(err.contains(&path.display().to_string()), "{at}: {err}");
            }
            assert_eq!(err.lines().count(), 1, "{at}: {err}");
            assert!(!err.contains("panicked"), "{at}: {err}");
        }
    }
    println!("{} bad files checked", cases.len());
}
