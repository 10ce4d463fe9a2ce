//! A second run must not contradict the first: three runs of the same
//! small set with `--repeat 3`, and no pair of rows that one run calls
//! distinguishable (different groups of the summary) may come out in the
//! opposite order, distinguishably, in another. A behaviour test: it
//! asserts what the runs say of each other, never a time.

mod common;

use std::collections::BTreeMap;

use assert_cmd::Command;
use ipclab_bench::report::summary::verdict_groups;
use ipclab_bench::results::{Row, Run};

/// (placement, pattern, size) → mechanism → rank of its group (0 best).
type Ranks = BTreeMap<(String, String, usize), BTreeMap<String, usize>>;

fn ranks(run: &Run) -> Ranks {
    let mut out = Ranks::new();
    for r in run.rows.iter().filter(|r| r.family != "limit") {
        out.entry((r.placement.clone(), r.pattern.clone(), r.size))
            .or_default();
    }
    for (key, ranks) in &mut out {
        let rows: Vec<&Row> = run
            .rows
            .iter()
            .filter(|r| {
                r.family != "limit" && (&r.placement, &r.pattern, r.size) == (&key.0, &key.1, key.2)
            })
            .collect();
        for (rank, group) in verdict_groups(&rows).iter().enumerate() {
            for r in group {
                ranks.insert(r.mechanism.clone(), rank);
            }
        }
    }
    out
}

fn one_run(i: usize) -> Run {
    let path = std::env::temp_dir().join(format!(
        "ipclab-consistency-{}-{i}.json",
        std::process::id()
    ));
    let out = Command::new(env!("CARGO_BIN_EXE_ipclab"))
        .args([
            "run",
            "-m",
            "pipe,unix-stream,shm-futex,shm-spin",
            "-s",
            "64",
        ])
        .args(["-p", "pingpong,stream", "--repeat", "3"])
        .args(["--duration", "150ms", "--warmup", "30ms", "--json"])
        .arg(&path)
        .timeout(std::time::Duration::from_secs(300))
        .output()
        .expect("ipclab runs");
    let text = std::fs::read_to_string(&path);
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run: Run = serde_json::from_str(&text.expect("the export")).expect("a run");
    assert_eq!(run.settings.repeat, 3);
    assert!(run.failures.is_empty(), "{:?}", run.failures);
    for r in &run.rows {
        assert_eq!(r.repetitions.len(), 3, "{} {}", r.mechanism, r.pattern);
        assert!(
            r.ci95.is_some(),
            "{} {}: no interval",
            r.mechanism,
            r.pattern
        );
    }
    run
}

#[test]
fn no_run_orders_distinguishable_rows_the_other_way() {
    if ipclab_bench::machine::allowed_cpus().len() < 2 {
        eprintln!("skipped: cross-core placement needs two CPUs");
        return;
    }
    let before = common::ipc_objects();
    let runs: Vec<Ranks> = (0..3).map(|i| ranks(&one_run(i))).collect();
    let mut contradictions = Vec::new();
    for (i, a) in runs.iter().enumerate() {
        for (j, b) in runs.iter().enumerate().filter(|(j, _)| *j != i) {
            for (cell, ra) in a {
                let Some(rb) = b.get(cell) else { continue };
                for (x, &xa) in ra {
                    for (y, &ya) in ra {
                        // Run i: x ahead of y, distinguishably.
                        if xa < ya
                            && let (Some(&xb), Some(&yb)) = (rb.get(x), rb.get(y))
                            && yb < xb
                        {
                            contradictions.push(format!(
                                "{cell:?}: run {i} puts {x} ahead of {y}, run {j} the other way"
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(
        contradictions.is_empty(),
        "{contradictions:#?}\nranks: {runs:#?}"
    );
    assert_eq!(common::new_objects(&before), Vec::<String>::new());
}
