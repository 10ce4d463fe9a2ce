//! `ipclab compare` on hand-made result files.

mod common;

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

/// Result files written for one test, removed however it ends.
struct Files(common::TempDir);

impl Files {
    fn new(name: &str) -> Self {
        Files(common::TempDir::new(&format!("cmp-{name}")))
    }
    fn write(&self, name: &str, v: &Value) -> std::path::PathBuf {
        let p = self.0.0.join(name);
        std::fs::write(&p, serde_json::to_string(v).unwrap()).unwrap();
        p
    }
}

/// What `ipclab compare OLD NEW` prints, which must succeed.
fn compared(old: &std::path::Path, new: &std::path::Path) -> String {
    let out = ipclab().arg("compare").arg(old).arg(new).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    text
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
    let text = compared(&old, &new);
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

/// A schema-2 row: its figure with a 95 % interval of ±`pct` %.
fn with_ci(mut r: Value, centre: f64, pct: f64) -> Value {
    r["ci95"] = json!({"low": centre * (1.0 - pct / 100.0), "high": centre * (1.0 + pct / 100.0)});
    r["repetitions"] = json!([centre, centre, centre]);
    r
}

#[test]
fn with_intervals_the_verdict_is_whether_they_overlap() {
    let f = Files::new("intervals");
    let schema2 = |rows| {
        let mut v = run(rows);
        v["schema"] = json!(2);
        v
    };
    let old = f.write(
        "old.json",
        &schema2(vec![
            with_ci(
                row("pipe", "pingpong", 64, stats(10_000, 30_000)),
                10_000.0,
                2.0,
            ),
            with_ci(
                row("tcp", "pingpong", 64, stats(20_000, 21_000)),
                20_000.0,
                15.0,
            ),
            with_ci(row("pipe", "stream", 4096, tput(1e9)), 1e9 / 64.0, 1.0),
            // Schema 1 beside it: no interval, the spread decides.
            row("fifo", "pingpong", 64, stats(10_000, 11_000)),
        ]),
    );
    let new = f.write(
        "new.json",
        &schema2(vec![
            // 4 % slower with ±2 % intervals that do not meet: slower,
            // though the old rule (p90 spread of 200 %) called it same.
            with_ci(
                row("pipe", "pingpong", 64, stats(10_400, 31_000)),
                10_400.0,
                1.0,
            ),
            // 20 % slower, but ±15 % intervals overlap: same.
            with_ci(
                row("tcp", "pingpong", 64, stats(24_000, 25_000)),
                24_000.0,
                15.0,
            ),
            // 3 % more throughput, ±1 % each: faster.
            with_ci(
                row("pipe", "stream", 4096, tput(1.03e9)),
                1.03e9 / 64.0,
                1.0,
            ),
            // 30 % slower by the spread rule.
            row("fifo", "pingpong", 64, stats(13_000, 14_000)),
        ]),
    );
    let text = compared(&old, &new);
    assert!(
        text.contains("1 faster, 2 slower, 1 same within noise"),
        "{text}"
    );
    assert!(text.contains("SLOWER by 4 %"), "{text}");
    assert!(text.contains("(95 % CI)"), "{text}");
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
        (f.0.to_path_buf(), "cannot read"),
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

/// A result file larger than `compare` reads (64 MiB) is refused before
/// it is read whole, a regular file or a FIFO alike; so is any file that
/// is not a regular file (a FIFO, which would otherwise block).
#[test]
fn an_oversized_or_irregular_file_is_refused_before_it_is_read() {
    let f = Files::new("big");
    let good = f.write("good.json", &old_run());
    let big = f.0.join("big.json");
    let file = std::fs::File::create(&big).unwrap();
    // A sparse file: 100 MiB of nothing costs no disk.
    file.set_len(100 << 20).unwrap();
    let fifo = f.0.join("fifo.json");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    for (path, expected) in [(&big, "64 MiB"), (&fifo, "not a regular file")] {
        let out = ipclab()
            .arg("compare")
            .arg(&good)
            .arg(path)
            .timeout(std::time::Duration::from_secs(60))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("error: ") && err.contains(expected),
            "expected '{expected}' in: {err}"
        );
        assert!(err.contains(&path.display().to_string()), "{err}");
    }
}

/// The bound holds for what is read, not what a stat says: the loader
/// reads at most one byte past it.
#[test]
fn the_loader_stops_reading_at_the_bound() {
    use ipclab_bench::report::compare::{MAX_FILE, read_bounded};
    let mut endless = std::io::repeat(b' ');
    let err = read_bounded(&mut endless, "endless")
        .unwrap_err()
        .to_string();
    assert!(err.contains("64 MiB"), "{err}");
    let mut small = std::io::Cursor::new(vec![b'x'; MAX_FILE as usize]);
    assert_eq!(
        read_bounded(&mut small, "small").unwrap().len(),
        MAX_FILE as usize
    );
}

/// Two rows for the same mechanism, pattern, size and placement in one
/// file: one error naming the row.
#[test]
fn a_duplicate_row_is_one_error_naming_it() {
    let f = Files::new("dup");
    let good = f.write("good.json", &old_run());
    let mut dup = old_run();
    let first = dup["rows"][1].clone();
    dup["rows"].as_array_mut().unwrap().push(first);
    let dup = f.write("dup.json", &dup);
    for (old, new) in [(&good, &dup), (&dup, &good)] {
        let out = ipclab().arg("compare").arg(old).arg(new).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("error: ")
                && err.contains(&dup.display().to_string())
                && err.contains("two rows for tcp pingpong 64 B cross-core"),
            "{err}"
        );
    }
}

/// Fuzzing what `compare` reads: arbitrary bytes, and a valid result file
/// (written by ipclab's own serializer) with bytes flipped, cut, inserted
/// and repeated and numbers replaced by extreme ones, go through the same
/// parse as `ipclab compare` and, when they parse, through the comparison
/// and its table: an `Ok` or an `Err`, never a panic. `PROPTEST_CASES`
/// sets the number of cases (256 by default; see the README for a long
/// run).
mod fuzz {
    use ipclab_bench::report::{compare, json};
    use proptest::prelude::*;
    use proptest::sample::Index;

    fn seed() -> (String, ipclab_bench::results::Run) {
        let bytes = serde_json::to_vec(&super::old_run()).unwrap();
        let run = compare::parse(&bytes, "seed").unwrap();
        (json::render(&run), run)
    }

    /// Parses like `compare` does; on success, compares both ways and
    /// renders.
    fn exercise(bytes: &[u8], seed: &ipclab_bench::results::Run) {
        if let Ok(run) = compare::parse(bytes, "fuzzed") {
            for (old, new) in [(&run, seed), (seed, &run), (&run, &run)] {
                let c = compare::compare(old, new);
                let _ = c.render();
                let _ = c.slower_than(10.0);
            }
        }
    }

    const LITERALS: &[&str] = &[
        "0",
        "-1",
        "1e308",
        "-1e308",
        "1e-320",
        "18446744073709551616",
        "9007199254740993",
        "null",
        "true",
        "\"\"",
        "[]",
        "{}",
        "\"\u{1F980}\"",
        "NaN",
        "0.0",
        "-0",
    ];

    #[derive(Debug, Clone)]
    enum Edit {
        Byte(Index, u8),
        Cut(Index, usize),
        Insert(Index, Vec<u8>),
        Repeat(Index, usize),
        Literal(Index, Index),
        /// The next number value from a place, replaced by one of NUMBERS.
        Number(Index, Index),
    }

    const NUMBERS: &[&str] = &[
        "0",
        "1",
        "2",
        "0.0",
        "1e308",
        "1e-320",
        "4294967295",
        "18446744073709551615",
        "9007199254740993",
        "123456789.5",
        "-0.0",
    ];

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Byte(i, b)),
            (any::<Index>(), 1usize..200).prop_map(|(i, n)| Edit::Cut(i, n)),
            (
                any::<Index>(),
                proptest::collection::vec(any::<u8>(), 1..16)
            )
                .prop_map(|(i, v)| Edit::Insert(i, v)),
            (any::<Index>(), 1usize..400).prop_map(|(i, n)| Edit::Repeat(i, n)),
            (any::<Index>(), any::<Index>()).prop_map(|(i, l)| Edit::Literal(i, l)),
        ]
    }

    fn apply(mut b: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
        for e in edits {
            if b.is_empty() {
                break;
            }
            match e {
                Edit::Byte(i, v) => {
                    let at = i.index(b.len());
                    b[at] = *v;
                }
                Edit::Cut(i, n) => {
                    let at = i.index(b.len());
                    let end = (at + n).min(b.len());
                    b.drain(at..end);
                }
                Edit::Insert(i, v) => {
                    let at = i.index(b.len());
                    b.splice(at..at, v.iter().copied());
                }
                Edit::Repeat(i, n) => {
                    let at = i.index(b.len());
                    let end = (at + n).min(b.len());
                    let piece = b[at..end].to_vec();
                    b.splice(end..end, piece);
                }
                Edit::Literal(i, l) => {
                    // Replace the number (or word) at a random place.
                    let at = i.index(b.len());
                    let word = |c: u8| c.is_ascii_alphanumeric() || b"-+.".contains(&c);
                    let start = (0..=at).rev().find(|&k| !word(b[k])).map_or(0, |k| k + 1);
                    let end = (at..b.len()).find(|&k| !word(b[k])).unwrap_or(b.len());
                    let lit = LITERALS[l.index(LITERALS.len())].as_bytes();
                    b.splice(start.min(end)..end, lit.iter().copied());
                }
                Edit::Number(i, l) => {
                    let from = i.index(b.len());
                    let value =
                        |k: usize| b[k].is_ascii_digit() && k > 0 && b" [:".contains(&b[k - 1]);
                    let Some(start) = (from..b.len()).chain(0..from).find(|&k| value(k)) else {
                        continue;
                    };
                    let end = (start..b.len())
                        .find(|&k| !(b[k].is_ascii_alphanumeric() || b"-+.".contains(&b[k])))
                        .unwrap_or(b.len());
                    let lit = NUMBERS[l.index(NUMBERS.len())].as_bytes();
                    b.splice(start..end, lit.iter().copied());
                }
            }
        }
        b
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let (_, run) = seed();
            exercise(&bytes, &run);
        }

        /// Only number values replaced: many of these still parse,
        /// so the comparison itself meets zeros, huge and tiny figures.
        #[test]
        fn a_result_file_with_numbers_replaced_never_panics(
            edits in proptest::collection::vec(
                (any::<Index>(), any::<Index>()).prop_map(|(i, l)| Edit::Number(i, l)),
                1..6,
            )
        ) {
            let (text, run) = seed();
            exercise(&apply(text.into_bytes(), &edits), &run);
        }

        #[test]
        fn a_mutated_result_file_never_panics(edits in proptest::collection::vec(edit(), 1..8)) {
            let (text, run) = seed();
            exercise(&apply(text.into_bytes(), &edits), &run);
        }
    }
}
