//! The `ipclab` command as a user meets it.

use assert_cmd::Command;

mod common;

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

/// Bad input: one clear line on standard error naming the problem, exit
/// status 2, never a panic, and nothing left behind (no file, no IPC
/// object). One row per malformed value of every flag of every subcommand.
#[test]
fn bad_input_is_one_line_and_status_2() {
    let before = common::ipc_objects();
    let dir = std::env::temp_dir().join(format!("ipclab-badinput-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("a-dir")).unwrap();
    std::fs::write(dir.join("a-file"), "x").unwrap();
    let listing = || {
        let mut names: Vec<String> = walk(&dir);
        names.sort();
        names
    };
    let files_before = listing();
    let (a_dir, a_file) = (
        dir.join("a-dir").display().to_string(),
        dir.join("a-file").display().to_string(),
    );
    let new_dir = dir.join("new-report").display().to_string();
    let cases: &[(&[&str], &str)] = &[
        // run -m
        (
            &["run", "-m", "carrier-pigeon"],
            "unknown mechanism 'carrier-pigeon' (known: pipe",
        ),
        (&["run", "-m", ""], "no mechanism given"),
        (&["run", "-m", ","], "no mechanism given"),
        (&["run", "-m", "pipe,nope"], "unknown mechanism 'nope'"),
        // run -s
        (&["run", "-s", "abc"], "'abc' is not a size"),
        (&["run", "-s", ""], "'' is not a size"),
        (&["run", "-s", "0K"], "'0K' is zero"),
        (&["run", "-s", "-1"], "'-1' is not a size"),
        (&["run", "-s", "4X"], "'4X' is not a size"),
        (&["run", "-s", "1000G"], "of memory"),
        (
            &["run", "-s", "99999999999G"],
            "'99999999999G' is too large",
        ),
        (
            &["run", "-s", "99999999999999999999999"],
            "'99999999999999999999999' is too large",
        ),
        (&["run", "-s"], "a value is required for '--sizes"),
        // run -p, --placement, --cpus
        (&["run", "-p", "pong"], "unknown pattern 'pong'"),
        (&["run", "-p", ""], "unknown pattern ''"),
        (&["run", "--placement", "far"], "unknown placement 'far'"),
        (&["run", "--cpus", "0,4096"], "CPU 4096 does not exist"),
        (&["run", "--cpus", "0,1,2"], "--cpus takes CLIENT,SERVER"),
        (&["run", "--cpus", "a,b"], "'a' is not a CPU number"),
        (&["run", "--cpus", "-1,0"], "'-1' is not a CPU number"),
        (
            &["run", "--cpus", "0,0", "--placement", "cross-core"],
            "cross-core placement needs two different CPUs",
        ),
        (
            &["run", "--cpus", "0,1", "--placement", "unpinned"],
            "--placement unpinned does not",
        ),
        // run: durations and counts
        (&["run", "--duration", "soon"], "'soon' is not a duration"),
        (&["run", "--duration", "-1s"], "'-1s' is not a duration"),
        (&["run", "--duration", "5parsecs"], "has an unknown unit"),
        (&["run", "--duration", "9999999m"], "is too long"),
        (&["run", "--warmup", "xyz"], "'xyz' is not a duration"),
        (&["run", "--timeout", "0s"], "'0s' is zero"),
        (&["run", "--timeout", "never"], "'never' is not a duration"),
        (
            &["run", "--iterations", "0"],
            "0 iterations measure nothing",
        ),
        (
            &["run", "--iterations", "-5"],
            "'-5' is not a number of iterations",
        ),
        (&["run", "--iterations", "many"], "'many' is not a number"),
        (
            &["run", "--iterations", "99999999999999999999"],
            "is too large",
        ),
        (
            &["run", "--iterations", "5", "--duration", "1s"],
            "'--iterations <ITERATIONS>' cannot be used with '--duration <TIME>'",
        ),
        (&["run", "--segments", "0"], "0 is not in 1..=1024"),
        (&["run", "--segments", "2000"], "2000 is not in 1..=1024"),
        (
            &["run", "--segments", "x"],
            "invalid value 'x' for '--segments",
        ),
        (&["run", "--segment-size", "0"], "'0' is zero"),
        // run: pairs and offered load
        (&["run", "--pairs", "0"], "0 pairs run nothing"),
        (&["run", "--pairs", "1,257"], "257 pairs are more than 256"),
        (
            &["run", "--pairs", "many"],
            "'many' is not a number of pairs",
        ),
        (&["run", "--rate", "0"], "below one round trip per second"),
        (&["run", "--rate", "abc"], "'abc' is not a rate"),
        (&["run", "--rate", "1k,-3"], "-3 is below one round trip"),
        (&["run", "--rate", "1000,1000.3"], "two rates shown as 1k/s"),
        (
            &["run", "-p", "stream", "--rate", "1k"],
            "--rate paces round trips, so it needs -p pingpong",
        ),
        // Without -p the default patterns include stream and oneshot.
        (
            &["run", "-m", "pipe", "--rate", "1k"],
            "--rate paces round trips, so it needs -p pingpong alone",
        ),
        (
            &[
                "run",
                "-m",
                "pipe",
                "-p",
                "pingpong,stream",
                "--rate",
                "1k,max",
            ],
            "--rate paces round trips, so it needs -p pingpong alone",
        ),
        (&["run", "--segment-size", "big"], "'big' is not a size"),
        // run: output files and folders
        (&["run", "--json", &a_dir], "it is a directory"),
        (&["run", "--markdown", &a_dir], "it is a directory"),
        (
            &["run", "--json", "/nonexistent-dir/x.json"],
            "cannot write /nonexistent-dir/x.json",
        ),
        (
            &["run", "--csv", "/proc/version"],
            "cannot write /proc/version",
        ),
        (&["run", "--json"], "a value is required for '--json"),
        (&["run", "--report", &a_file], "cannot create"),
        (
            &["run", "--report", "/proc/version"],
            "cannot create /proc/version",
        ),
        (
            &["run", "--report", &new_dir, "--cpus", "0,4096"],
            "CPU 4096 does not exist",
        ),
        (&["run", "--cdf-size", "64"], "--report <DIR>"),
        (
            &["run", "-s", "64", "--cdf-size", "4K", "--report", &new_dir],
            "--cdf-size 4096 is not one of the sizes measured",
        ),
        (&["run", "--frob"], "unexpected argument '--frob'"),
        // list
        (&["list", "extra"], "unexpected argument 'extra'"),
        (&["list", "--all"], "unexpected argument '--all'"),
        // compare (bad files: tests/compare.rs)
        (
            &["compare"],
            "required arguments were not provided: <OLD> <NEW>",
        ),
        (
            &["compare", &a_file],
            "required arguments were not provided: <NEW>",
        ),
        (
            &["compare", &a_file, &a_file, &a_file],
            "unexpected argument",
        ),
        (
            &["compare", &a_file, &a_file, "--fail-above", "-5"],
            "'-5' is not a percentage",
        ),
        (
            &["compare", &a_file, &a_file, "--fail-above", "nan"],
            "'nan' is not a percentage",
        ),
        (&["compare", "/nonexistent/a.json", &a_file], "cannot read"),
        // seed
        (&["seed", "--runs", "0"], "0 is not in 1..=100000"),
        (
            &["seed", "--runs", "1000000"],
            "1000000 is not in 1..=100000",
        ),
        (&["seed", "--runs", "-3"], "invalid value '-3' for '--runs"),
        (&["seed", "--report", &a_file], "cannot create"),
        (&["seed", "--warmup", "bad"], "'bad' is not a duration"),
        (&["seed", "--duration", "-1s"], "'-1s' is not a duration"),
        (&["seed", "extra"], "unexpected argument 'extra'"),
        // torture hostile
        (&["torture", "hostile", "--timeout", "0s"], "'0s' is zero"),
        (
            &["torture", "hostile", "--cell-duration", "0ms"],
            "'0ms' is zero",
        ),
        // no such subcommand
        (&["frobnicate"], "unrecognized subcommand 'frobnicate'"),
        (&["--frob"], "unexpected argument '--frob'"),
    ];
    for (args, expected) in cases {
        let out = ipclab().args(*args).current_dir(&dir).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let all = String::from_utf8_lossy(&out.stdout).to_string() + &err;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(!all.contains("panicked"), "{args:?}: {all}");
        assert_eq!(err.lines().count(), 1, "{args:?}: not one line: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert!(
            err.contains(expected),
            "{args:?}: expected '{expected}' in: {err}"
        );
        assert_eq!(listing(), files_before, "{args:?} left a file behind");
    }
    println!("{} bad inputs checked", cases.len());
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(common::new_objects(&before), Vec::<String>::new());
}

/// Every path under `dir`, relative to it.
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        out.push(e.path().display().to_string());
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        }
    }
    out
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

/// A bad value that only shows against the machine or the placement: one
/// `error:` line, status 2, before any cell runs.
fn refused(args: &[&str], expected: &str) {
    let out = ipclab().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: not one line: {err}");
    assert!(
        err.starts_with("error: ") && err.contains(expected),
        "{args:?}: expected '{expected}' in: {err}"
    );
}

#[test]
fn a_segment_size_beyond_memory_is_refused_up_front() {
    refused(
        &["run", "-m", "shm-futex", "--segment-size", "100G"],
        "of memory",
    );
    refused(
        &["run", "--segment-size", "100G", "--segments", "4"],
        "of memory",
    );
}

#[test]
fn one_cpu_for_cross_core_says_two_different_ones_are_needed() {
    refused(
        &["run", "--cpus", "0"],
        "--cpus 0 gives one CPU; cross-core placement needs two different ones (--cpus CLIENT,SERVER)",
    );
}
