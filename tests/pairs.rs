//! Contention and offered load (`--pairs`, `--rate`): every mechanism,
//! limit and peer runs with several pairs at once, each pair's messages
//! counted and verified; an open-loop run times round trips from when they
//! were due, so that a stalled server shows in its percentiles; a pair that
//! hits a kernel limit fails its cell naming the limit, and the run goes
//! on. Nothing is left behind. Behaviour only: no figure is asserted
//! against a clock, only against the stall the test itself injects.

mod common;

use std::os::unix::process::CommandExt;
use std::time::Duration;

use serde_json::Value;

/// Runs `ipclab run ARGS --json -` (unpinned, one repetition) with `env`,
/// `setup` run in the child before exec, under a watchdog; returns the
/// exit status, the JSON and standard error.
fn run(args: &[&str], env: &[(&str, &str)], setup: Option<fn()>) -> (i32, Value, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ipclab"));
    cmd.arg("run")
        .args(args)
        .args(["--placement", "unpinned", "--repeat", "1", "--json", "-"])
        .args(["--timeout", "60s"])
        .envs(env.iter().copied());
    if let Some(setup) = setup {
        // SAFETY: `setup` only calls setrlimit, which is async-signal-safe
        // and touches no memory shared with the parent.
        unsafe {
            cmd.pre_exec(move || {
                setup();
                Ok(())
            })
        };
    }
    let out = assert_cmd::Command::from_std(cmd)
        .timeout(Duration::from_secs(300))
        .output()
        .expect("ipclab runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}); stderr:\n{stderr}"));
    (out.status.code().unwrap_or(-1), json, stderr)
}

fn rows(run: &Value) -> Vec<&Value> {
    run["rows"].as_array().expect("rows").iter().collect()
}

fn ns(row: &Value, stats: &str, at: &str) -> f64 {
    row[stats][at]
        .as_f64()
        .unwrap_or_else(|| panic!("no {stats}.{at} in {row}"))
}

/// Every mechanism, limit and peer with 3 pairs, both closed-loop
/// patterns: each row adds up 3 pairs' exact counts (the limits run by
/// time), every pair moved messages, and the row says how oversubscribed
/// the run was.
#[test]
fn every_mechanism_limit_and_peer_runs_with_pairs() {
    let _alone = common::one_at_a_time();
    const PAIRS: u64 = 3;
    const N: u64 = 4;
    let before = common::ipc_objects();
    let (code, run, stderr) = run(
        &[
            "-m",
            "all",
            "-s",
            "64",
            "-p",
            "pingpong,stream",
            "--pairs",
            &PAIRS.to_string(),
            "--iterations",
            &N.to_string(),
            "--warmup",
            "10ms",
        ],
        &[],
        None,
    );
    assert_eq!(code, 0, "{stderr}");
    let failures = run["failures"].as_array().expect("failures");
    assert!(failures.is_empty(), "failures: {failures:#?}");
    let skipped = run["skipped"].as_array().expect("skipped").len();
    let mechanisms = run["settings"]["mechanisms"]
        .as_array()
        .expect("settings")
        .len();
    let rows = rows(&run);
    assert!(
        rows.len() >= 2 * (mechanisms - skipped),
        "{} rows for {mechanisms} mechanisms",
        rows.len()
    );
    let cpus = ipclab_bench::machine::allowed_cpus().len() as f64;
    let families: std::collections::BTreeSet<&str> =
        rows.iter().filter_map(|r| r["family"].as_str()).collect();
    assert!(
        families.len() >= 3,
        "message passing, shared memory and the limits at least: {families:?}"
    );
    for r in &rows {
        let what = format!("{} {}", r["mechanism"], r["pattern"]);
        assert_eq!(r["pairs"], PAIRS, "{what}");
        assert_eq!(r["verified"], true, "{what}");
        assert_eq!(
            r["oversubscription"].as_f64(),
            Some(2.0 * PAIRS as f64 / cpus),
            "{what}"
        );
        if r["family"] != "limit" {
            assert_eq!(r["iterations"], PAIRS * N, "{what}");
        }
        let slowest = r["pair_throughput"]["min"]
            .as_f64()
            .expect("pair_throughput");
        assert!(slowest > 0.0, "{what}: a pair moved nothing");
        assert!(
            r["context_switches_per_message"]["voluntary"].is_number(),
            "{what}"
        );
        if r["pattern"] == "pingpong" {
            let all = r["round_trips"]["messages_per_s"]
                .as_f64()
                .expect("round_trips");
            assert!(all > 0.0, "{what}: no round trips of all pairs");
        }
    }
    let leaked = common::new_objects(&before);
    assert!(leaked.is_empty(), "left behind: {leaked:?}");
}

/// A server that stalls for 300 ms while round trips are due every
/// millisecond: timed from when they were due, about 300 of the 600 round
/// trips wait for it and the p99 shows the stall; timed from when each
/// was sent (what a closed-loop tool reports, kept as
/// `rtt_uncorrected_ns`), only one is slow and the p99 does not. Closed
/// loop (`max`) hides it the same way. One mechanism of each family, the
/// peer included when built, and the limits.
#[test]
fn a_stalled_server_raises_the_corrected_p99_of_an_open_loop_run() {
    let _alone = common::one_at_a_time();
    const STALL_MS: f64 = 300.0;
    let before = common::ipc_objects();
    let mechanisms = if ipclab_bench::mechanisms::find("iceoryx2").is_some() {
        "pipe,shm-futex,iceoryx2"
    } else {
        "pipe,shm-futex"
    };
    let (code, run, stderr) = run(
        &[
            "-m",
            mechanisms,
            "-s",
            "64",
            "-p",
            "pingpong",
            "--rate",
            "1k,max",
            "--iterations",
            "600",
            "--warmup",
            "0ms",
        ],
        // Request 100 of each cell (no warm-up: the first measured is 0).
        &[("IPCLAB_FAULT_STALL", "300:100")],
        None,
    );
    assert_eq!(code, 0, "{stderr}");
    let rows = rows(&run);
    let mut open = 0;
    for r in rows.iter().filter(|r| r["family"] != "limit") {
        let what = format!("{} {}", r["mechanism"], r["offered_rate"]);
        let p99 = ns(r, "rtt_ns", "p99") / 1e6;
        match r["offered_rate"].as_f64() {
            Some(rate) => {
                open += 1;
                assert_eq!(rate, 1000.0, "{what}");
                assert!(
                    r["achieved_rate"].as_f64().is_some_and(|a| a > 0.0),
                    "{what}"
                );
                assert!(r["sustained"].is_boolean(), "{what}");
                let uncorrected = ns(r, "rtt_uncorrected_ns", "p99") / 1e6;
                assert!(
                    p99 >= STALL_MS / 2.0,
                    "{what}: corrected p99 {p99} ms does not show a {STALL_MS} ms stall"
                );
                assert!(
                    uncorrected < STALL_MS / 2.0,
                    "{what}: uncorrected p99 {uncorrected} ms; only one round trip was stalled"
                );
                for q in ["p50", "p90", "p99", "max"] {
                    assert!(
                        ns(r, "rtt_ns", q) >= ns(r, "rtt_uncorrected_ns", q),
                        "{what}: due before sent, so corrected ≥ uncorrected at {q}"
                    );
                }
            }
            None => {
                assert!(r["rtt_uncorrected_ns"].is_null(), "{what}");
                assert!(r["achieved_rate"].is_null(), "{what}");
                assert!(
                    p99 < STALL_MS / 2.0,
                    "{what}: closed loop, one stalled round trip of 600: p99 {p99} ms"
                );
            }
        }
    }
    assert_eq!(open, mechanisms.split(',').count(), "{rows:#?}");
    let leaked = common::new_objects(&before);
    assert!(leaked.is_empty(), "left behind: {leaked:?}");
}

/// Limits RLIMIT_MSGQUEUE (bytes of POSIX queues per user) to about two
/// pairs' worth of posix-mq queues.
fn two_pairs_of_queues() {
    let read = |name: &str| -> libc::rlim_t {
        std::fs::read_to_string(format!("/proc/sys/fs/mqueue/{name}"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(8192)
    };
    // Two queues a pair, each its messages plus about 96 bytes of kernel
    // bookkeeping per message (ipc/mqueue.c).
    let (size, count) = (read("msgsize_max"), read("msg_max"));
    let pair = 2 * count * (size + 96);
    let limit = libc::rlimit {
        rlim_cur: pair * 5 / 2,
        rlim_max: pair * 5 / 2,
    };
    // SAFETY: setrlimit reads the struct we pass and nothing else.
    unsafe { libc::setrlimit(libc::RLIMIT_MSGQUEUE, &limit) };
}

/// Four pairs of posix-mq need more queue bytes than the user may have:
/// that cell fails naming RLIMIT_MSGQUEUE, every queue made is removed,
/// and the run goes on with the next cell (one pair, which fits).
#[test]
fn pairs_beyond_a_kernel_limit_fail_their_cell_naming_it() {
    let _alone = common::one_at_a_time();
    let before = common::ipc_objects();
    let (code, run, stderr) = run(
        &[
            "-m",
            "posix-mq",
            "-s",
            "64",
            "-p",
            "pingpong",
            "--pairs",
            "4,1",
            "--iterations",
            "5",
            "--no-limits",
        ],
        &[],
        Some(two_pairs_of_queues),
    );
    assert_eq!(code, 1, "{stderr}");
    let failures = run["failures"].as_array().expect("failures");
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert_eq!(failures[0]["pairs"], 4);
    let error = failures[0]["error"].as_str().expect("error");
    assert!(
        error.contains("of 4") && error.contains("RLIMIT_MSGQUEUE"),
        "the error names the pair and the limit: {error}"
    );
    let rows = rows(&run);
    assert!(
        rows.iter().any(|r| r["pairs"] == 1 && r["iterations"] == 5),
        "the run went on: {rows:#?}"
    );
    let leaked = common::new_objects(&before);
    assert!(leaked.is_empty(), "left behind: {leaked:?}");
}

/// A server of the first of three pairs killed mid-run: the cell fails
/// naming the pair, the other pairs' processes are stopped, and every
/// channel's objects go, also those of the pairs that were still running.
#[test]
fn a_pair_killed_mid_run_fails_its_cell_and_leaves_nothing() {
    let _alone = common::one_at_a_time();
    let before = common::ipc_objects();
    for mechanism in ["shm-futex", "posix-mq"] {
        let (code, run, stderr) = run(
            &[
                "-m",
                mechanism,
                "-s",
                "4K",
                "-p",
                "stream",
                "--pairs",
                "3",
                "--duration",
                "2s",
                "--no-limits",
            ],
            &[("IPCLAB_FAULT_KILL", &format!("server:100000:{mechanism}"))],
            None,
        );
        assert_eq!(code, 1, "{stderr}");
        let failures = run["failures"].as_array().expect("failures");
        assert_eq!(failures.len(), 1, "{failures:#?}");
        let error = failures[0]["error"].as_str().expect("error");
        assert!(
            error.contains("pair 1 of 3") && error.contains("SIGKILL"),
            "{mechanism}: {error}"
        );
    }
    let leaked = common::new_objects(&before);
    assert!(leaked.is_empty(), "left behind: {leaked:?}");
}
