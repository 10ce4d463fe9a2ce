//! The `ipclab` command as a user meets it.

use assert_cmd::Command;

fn ipclab() -> Command {
    Command::cargo_bin("ipclab").expect("the binary is built")
}

const QUICK: [&str; 6] = [
    "--warmup",
    "0ms",
    "--duration",
    "20ms",
    "--placement",
    "unpinned",
];

#[test]
fn a_corrupted_message_stops_the_run_naming_mechanism_size_and_sequence() {
    let out = ipclab()
        .args(["run", "-m", "pipe", "-s", "64", "-p", "pingpong"])
        .args(QUICK)
        .env("IPCLAB_FAULT_CORRUPT_SEQ", "3")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("integrity error: pipe size 64 sequence 3"),
        "{text}"
    );
}

#[test]
fn no_verify_is_said_in_the_output() {
    let out = ipclab()
        .args([
            "run",
            "-m",
            "pipe",
            "-s",
            "64",
            "-p",
            "stream",
            "--no-verify",
        ])
        .args(QUICK)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("NOT verified"));
}

#[test]
fn json_has_the_documented_fields() {
    let dir = std::env::temp_dir().join(format!("ipclab-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("run.json");
    ipclab()
        .args([
            "run",
            "-m",
            "pipe",
            "-s",
            "12,4K",
            "-p",
            "pingpong,stream,oneshot",
            "--json",
        ])
        .arg(&json)
        .args(QUICK)
        .assert()
        .success();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    for key in ["schema", "ipclab_version", "started_at", "machine"] {
        assert!(v.get(key).is_some(), "top-level {key}");
    }
    for key in [
        "kernel",
        "cpu_model",
        "cpu_count",
        "virtualised",
        "clock_source",
    ] {
        assert!(v["machine"].get(key).is_some(), "machine.{key}");
    }
    let rows = v["rows"].as_array().unwrap();
    // The six cells asked for, and the limits every run adds.
    assert_eq!(rows.iter().filter(|r| r["family"] != "limit").count(), 6);
    for r in rows {
        for key in [
            "mechanism",
            "family",
            "pattern",
            "size",
            "placement",
            "cpus",
            "iterations",
            "verified",
            "rounds",
            "setup_ns",
            "cpu_ns_per_message",
            "polls",
            "vs_limit",
        ] {
            assert!(r.get(key).is_some(), "row.{key} in {r}");
        }
        assert_eq!(r["verified"], true);
        match r["pattern"].as_str().unwrap() {
            "pingpong" => {
                for k in ["min", "p50", "p90", "p99", "p999", "max", "mean", "stddev"] {
                    assert!(r["rtt_ns"].get(k).is_some(), "rtt_ns.{k}");
                }
                assert!(r["rtt_ns"]["p50"].as_u64().unwrap() > 0);
            }
            "stream" => assert!(r["throughput"]["bytes_per_s"].as_f64().unwrap() > 0.0),
            _ => assert!(r["oneshot_ns"]["p50"].as_u64().unwrap() > 0),
        }
    }
}

/// Bad input: one clear line on standard error and exit status 2, never a
/// panic.
#[test]
fn bad_input_is_one_line_and_status_2() {
    let dir = std::env::temp_dir();
    let cases: &[(&[&str], &str)] = &[
        (
            &["run", "-m", "carrier-pigeon"],
            "unknown mechanism 'carrier-pigeon' (known: pipe",
        ),
        (&["run", "-s", "abc"], "'abc' is not a size"),
        (&["run", "-s", "0K"], "'0K' is zero"),
        (&["run", "-s", "-1"], "-1"),
        (&["run", "-s", "1000G"], "of memory"),
        (&["run", "-p", "pong"], "unknown pattern 'pong'"),
        (&["run", "--placement", "far"], "unknown placement 'far'"),
        (&["run", "--cpus", "0,4096"], "CPU 4096 does not exist"),
        (&["run", "--cpus", "0,1,2"], "--cpus takes CLIENT,SERVER"),
        (&["run", "--duration", "soon"], "'soon' is not a duration"),
        (&["run", "--iterations", "0"], "0"),
        (
            &["run", "--json", "/nonexistent-dir/x.json"],
            "cannot write /nonexistent-dir/x.json",
        ),
        (&["frobnicate"], "unrecognized subcommand"),
    ];
    for (args, expected) in cases {
        let out = ipclab().args(*args).current_dir(&dir).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        let first = err.lines().next().unwrap_or("");
        assert!(first.starts_with("error: "), "{args:?}: {err}");
        assert!(
            err.contains(expected),
            "{args:?}: expected '{expected}' in: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn list_names_every_mechanism_with_its_sync() {
    let out = ipclab().arg("list").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for t in ipclab_bench::mechanisms::REGISTRY {
        let info = t.info();
        assert!(
            text.contains(info.name) && text.contains(info.sync),
            "{}",
            info.name
        );
    }
}
