//! `--iterations N` means N on every row: every mechanism and peer, every
//! pattern, after a warm-up, split among the repetitions (the limits keep
//! to the time budget). A row with fewer is a failure naming the
//! mechanism, never a short row reported as verified.

mod common;

use std::path::PathBuf;

use assert_cmd::Command;

/// A JSON export path removed however the test ends.
struct Export(PathBuf);

impl Drop for Export {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn every_row_measures_exactly_the_iterations_asked_for() {
    const N: u64 = 7;
    let export =
        Export(std::env::temp_dir().join(format!("ipclab-iterations-{}.json", std::process::id())));
    let before = common::ipc_objects();
    let out = Command::new(env!("CARGO_BIN_EXE_ipclab"))
        .args([
            "run",
            "-m",
            "all",
            "-s",
            "64",
            "-p",
            "stream,pingpong,oneshot",
        ])
        .args(["--iterations", &N.to_string(), "--warmup", "10ms"])
        .args(["--placement", "unpinned", "--timeout", "60s", "--json"])
        .arg(&export.0)
        .timeout(std::time::Duration::from_secs(400))
        .output()
        .expect("ipclab runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ipclab run failed:\n{stderr}");
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&export.0).expect("the export")).expect("JSON");
    let failures = run["failures"].as_array().expect("failures");
    assert!(failures.is_empty(), "failures: {failures:#?}");
    let rows = run["rows"].as_array().expect("rows");
    let mechanisms = run["settings"]["mechanisms"].as_array().expect("settings");
    let skipped = run["skipped"].as_array().expect("skipped").len();
    // Every mechanism, every pattern, plus the limits' rows.
    assert!(
        rows.len() >= 3 * (mechanisms.len() - skipped),
        "{} rows for {} mechanisms",
        rows.len(),
        mechanisms.len()
    );
    // The limits keep to the time budget (see tests/limits.rs).
    let short: Vec<String> = rows
        .iter()
        .filter(|r| r["family"] != "limit" && r["iterations"].as_u64() != Some(N))
        .map(|r| {
            format!(
                "{} {} {}: {}",
                r["mechanism"], r["pattern"], r["size"], r["iterations"]
            )
        })
        .collect();
    assert!(short.is_empty(), "rows without {N} iterations: {short:?}");
    let left = common::new_objects(&before);
    assert!(left.is_empty(), "left behind: {left:?}");
}
