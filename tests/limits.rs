//! The limits every run measures: their cells, their refusal of payloads
//! they cannot carry, and `vs_limit` on every row of a run.

mod common;

use std::path::Path;

use assert_cmd::Command;
use ipclab_bench::harness::cell::run_cell;
use ipclab_bench::harness::spec::{CellSpec, Pattern};

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ipclab"))
}

fn spec(name: &str, pattern: Pattern, size: usize) -> CellSpec {
    let mut spec = common::cell_spec(name, pattern, size, 8);
    spec.channel.segments = 0;
    spec
}

#[test]
fn spin_and_futex_hand_over_at_size_0_and_refuse_a_payload() {
    let before = common::ipc_objects();
    for name in ["limit-spin", "limit-futex"] {
        let o = run_cell(exe(), &spec(name, Pattern::Pingpong, 0)).unwrap();
        assert_eq!(o.client.measured, 8, "{name}");
        assert_eq!(o.server.total, 8, "{name}");
        assert_eq!(o.server.rounds, 8, "{name}");
        let e = run_cell(exe(), &spec(name, Pattern::Pingpong, 64)).unwrap_err();
        assert!(
            format!("{e:#}").contains("carries no payload"),
            "{name}: {e:#}"
        );
    }
    assert_eq!(common::new_objects(&before), Vec::<String>::new());
}

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

fn run_json(extra: &[&str]) -> (serde_json::Value, String) {
    let dir = std::env::temp_dir().join(format!(
        "ipclab-limits-{}-{}",
        std::process::id(),
        extra.len()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("run.json");
    let out = ipclab()
        .args([
            "run",
            "-m",
            "pipe",
            "-s",
            "64",
            "-p",
            "pingpong,stream,oneshot",
        ])
        .args(QUICK)
        .args(extra)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    (v, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn rows(v: &serde_json::Value) -> Vec<(String, String, u64, serde_json::Value)> {
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert!(r.get("vs_limit").is_some(), "every row has vs_limit: {r}");
            (
                r["mechanism"].as_str().unwrap().to_string(),
                r["pattern"].as_str().unwrap().to_string(),
                r["size"].as_u64().unwrap(),
                r["vs_limit"].clone(),
            )
        })
        .collect()
}

#[test]
fn every_run_measures_the_limits_and_matches_each_row_to_one() {
    let (v, table) = run_json(&[]);
    let rows = rows(&v);
    let has = |m: &str, p: &str, s: u64| rows.iter().any(|r| r.0 == m && r.1 == p && r.2 == s);
    assert!(has("limit-spin", "pingpong", 0), "{rows:?}");
    assert!(has("limit-futex", "pingpong", 0), "{rows:?}");
    assert!(has("limit-copy", "pingpong", 64), "{rows:?}");
    assert!(has("limit-bare", "pingpong", 64), "{rows:?}");
    assert!(!has("limit-bare", "stream", 64), "{rows:?}");
    // Every pingpong row of a size limit-bare was measured at (64 B) is
    // set against it; the size-0 limits and other patterns have none.
    for r in v["rows"].as_array().unwrap() {
        let bare = &r["vs_bare"];
        match (r["pattern"].as_str().unwrap(), r["size"].as_u64().unwrap()) {
            ("pingpong", 64) => assert!(bare.as_f64().is_some_and(|x| x > 0.0), "{r}"),
            _ => assert!(bare.is_null(), "{r}"),
        }
    }
    assert!(has("limit-copy", "stream", 64), "{rows:?}");
    assert!(
        !rows
            .iter()
            .any(|r| r.0.starts_with("limit") && r.1 == "oneshot")
    );
    for (m, p, _, vs) in &rows {
        match p.as_str() {
            "oneshot" => assert!(vs.is_null(), "{m} {p}"),
            _ => assert!(vs.as_f64().is_some_and(|x| x > 0.0), "{m} {p}: {vs}"),
        }
    }
    assert_eq!(v["settings"]["limits"], true);
    assert!(table.contains("× limit"), "{table}");
}

#[test]
fn no_limits_leaves_them_out_and_every_vs_limit_null() {
    let (v, _) = run_json(&["--no-limits"]);
    let rows = rows(&v);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(
        rows.iter().all(|r| r.0 == "pipe" && r.3.is_null()),
        "{rows:?}"
    );
}

#[test]
fn a_limit_is_no_mechanism_to_choose() {
    let out = ipclab()
        .args(["run", "-m", "pipe,limit-spin", "-s", "64"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("measured in every run"));
}

/// `--iterations` is the user's count for the rows they asked for; the
/// limits keep to the time budget, so that a spinning limit on one CPU
/// (a time slice per round trip) never fails or stalls the run.
#[test]
fn same_core_iterations_leave_the_limits_to_the_duration() {
    let dir = std::env::temp_dir().join(format!("ipclab-limits-same-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("run.json");
    let out = ipclab()
        .args(["run", "-m", "pipe", "-s", "64", "-p", "pingpong,stream"])
        .args(["--iterations", "2000", "--warmup", "0ms"])
        .args(["--placement", "same-core", "--json"])
        .arg(&json)
        .timeout(std::time::Duration::from_secs(300))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap())
        .unwrap_or(serde_json::Value::Null);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(v["failures"], serde_json::json!([]), "{v}");
    let rows = v["rows"].as_array().unwrap();
    for r in rows {
        let n = r["iterations"].as_u64().unwrap();
        match r["mechanism"].as_str().unwrap() {
            "pipe" => assert_eq!(n, 2000, "{r}"),
            _ => assert!(n >= 1, "{r}"),
        }
    }
    assert_eq!(
        rows.len(),
        7,
        "pipe and limit-copy twice, limit-spin, limit-futex, limit-bare"
    );
}

/// limit-bare carries every size both ways, each byte checked, in
/// pingpong and stream, and a payload flipped on the way is an integrity
/// error, not a row.
#[test]
fn limit_bare_verifies_every_byte_and_fails_on_a_corrupted_payload() {
    let before = common::ipc_objects();
    for pattern in [Pattern::Pingpong, Pattern::Stream] {
        for size in [0, 1, 12, 64, 4096, 65_543] {
            let o = run_cell(exe(), &spec("limit-bare", pattern, size)).unwrap();
            assert_eq!(o.client.measured, 8, "{pattern} {size}");
            assert_eq!(o.server.measured, 8, "{pattern} {size}");
        }
    }
    let failed = ipclab()
        .args(["run", "-m", "pipe", "-s", "4K", "-p", "pingpong"])
        .args(["--iterations", "20", "--warmup", "0ms", "--repeat", "1"])
        .args(["--placement", "unpinned"])
        .env("IPCLAB_FAULT_CORRUPT_SEQ", "3")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&failed.stdout).to_string()
        + &String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{text}");
    assert!(
        text.contains("integrity error: limit-bare size 4096 sequence 3"),
        "{text}"
    );
    assert_eq!(common::new_objects(&before), Vec::<String>::new());
}
