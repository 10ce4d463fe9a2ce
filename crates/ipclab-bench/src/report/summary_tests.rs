//! Tests of `summary`: groups, ratios, and the verdicts under load.

use super::*;
use crate::interval::Interval;
use crate::results::Run;
use crate::vs_limit::tests::row;

pub(crate) fn run_of(rows: Vec<Row>, repeat: usize) -> Run {
    let mut run: Run = serde_json::from_str(
        r#"{"schema":1,"ipclab_version":"0","started_at":"now","machine":{"kernel":"k","cpu_model":"c","cpu_count":2,"cpus_allowed":[0,1],"virtualised":false,"clock_source":"tsc"},"timer":{"overhead_ns":20.0,"resolution_ns":1},"settings":{"mechanisms":[],"sizes":[],"patterns":[],"placements":[],"warmup_ns":0,"duration_ns":0,"iterations":null,"verify":true,"segment_size":null,"segments":0},"rows":[],"failures":[],"skipped":[],"complete":true}"#
    )
    .unwrap();
    run.rows = rows;
    run.settings.repeat = repeat;
    run
}

/// A row whose figure has a ±`pct` % interval.
fn noisy(name: &str, family: &str, pattern: &str, figure: f64, pct: f64) -> Row {
    let mut r = row(name, family, pattern, 64, false, figure);
    let centre = r.figure().unwrap();
    r.ci95 = Some(Interval {
        low: centre * (1.0 - pct / 100.0),
        high: centre * (1.0 + pct / 100.0),
    });
    r
}

#[test]
fn overlapping_intervals_are_one_group_and_only_groups_are_ranked() {
    let text = render(&run_of(
        vec![
            row("limit-futex", "limit", "pingpong", 64, false, 500.0),
            noisy("pipe", "message-passing", "pingpong", 80_000.0, 10.0),
            noisy("shm-futex", "shared-memory", "pingpong", 90_000.0, 10.0),
            noisy("unix-stream", "message-passing", "pingpong", 101_000.0, 5.0),
            noisy("shm-spin", "shared-memory", "pingpong", 700.0, 10.0),
            noisy("iceoryx2", "peer", "pingpong", 800.0, 5.0),
        ],
        3,
    ));
    assert!(text.contains("from 3 repetitions"), "{text}");
    assert!(
        text.contains(
            "    shm-spin, iceoryx2 (peer): not told apart (intervals overlap in a chain), 630 ns–840 ns\n"
        ),
        "{text}"
    );
    // pipe reaches 88 µs, shm-futex starts at 81 µs and reaches 99 µs,
    // unix-stream starts at 95.9 µs: one chain, one group.
    assert!(
        text.contains("    pipe, shm-futex, unix-stream: not told apart"),
        "{text}"
    );
    assert!(
        text.contains("114.29× (at least 85.71×) slower than the group above"),
        "{text}"
    );
    assert!(!text.contains("limit-futex"), "{text}");
}

#[test]
fn a_row_too_noisy_to_place_does_not_merge_the_groups() {
    let text = render(&run_of(
        vec![
            noisy("shm-spin", "shared-memory", "pingpong", 700.0, 5.0),
            noisy("pipe", "message-passing", "pingpong", 80_000.0, 5.0),
            // 1 µs to 199 µs: overlaps both.
            noisy("udp", "message-passing", "pingpong", 100_000.0, 99.0),
        ],
        3,
    ));
    assert!(text.contains("    shm-spin (700 ns ±5%)\n"), "{text}");
    assert!(text.contains("    pipe (80.0 µs ±5%); "), "{text}");
    assert!(
        text.contains("too noisy to place (repetitions more than 2× apart): udp (100 µs ±99%)"),
        "{text}"
    );
}

#[test]
fn a_row_without_an_interval_beside_rows_with_one_is_not_placed() {
    let text = render(&run_of(
        vec![
            noisy("shm-spin", "shared-memory", "pingpong", 700.0, 5.0),
            noisy("pipe", "message-passing", "pingpong", 80_000.0, 5.0),
            row("tcp", "message-passing", "pingpong", 64, false, 90_000.0),
        ],
        3,
    ));
    assert!(
        text.contains("    not placed (one repetition, no interval): tcp (90.0 µs)\n"),
        "{text}"
    );
    assert!(!text.contains("tcp (90.0 µs);"), "{text}");
}

#[test]
fn throughput_groups_put_the_highest_first() {
    let run = run_of(
        vec![
            noisy("pipe", "message-passing", "stream", 1e6, 5.0),
            noisy("shm-spin", "shared-memory", "stream", 4e6, 5.0),
            noisy("memfd", "shared-memory", "stream", 3.9e6, 5.0),
        ],
        3,
    );
    let rows: Vec<&Row> = run.rows.iter().collect();
    let groups = verdict_groups(&rows);
    let names: Vec<Vec<&str>> = groups
        .iter()
        .map(|g| g.iter().map(|r| r.mechanism.as_str()).collect())
        .collect();
    assert_eq!(names, vec![vec!["shm-spin", "memfd"], vec!["pipe"]]);
    let text = render(&run);
    assert!(text.contains("4.00×"), "{text}");
}

/// `--pairs 256` as the probe saw it: the spinner had the lowest p50
/// by far, yet made a fifth of pipe's round trips, with a p99 of
/// 174 ms. Under contention the verdict goes by round trips, and says
/// where the p50 disagrees.
#[test]
fn under_contention_round_trips_place_the_rows_not_the_p50() {
    use crate::report::test_rows::pingpong;
    let text = render(&run_of(
        vec![
            pingpong("shmchan-spin", true, 256, 341, 174_000_000, 16_000.0),
            pingpong("pipe", false, 256, 2_386_000, 9_000_000, 75_100.0),
        ],
        3,
    ));
    assert!(
        text.contains(
            "  pingpong 64 B, cross-core, 256 pairs (placed by round trips per second of all \
             pairs, not by p50"
        ),
        "{text}"
    );
    assert!(
        text.contains("    pipe (75.1 k/s round trips, p50 2.39 ms, p99 9.00 ms)\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "    shmchan-spin (16.0 k/s round trips, p50 341 ns, p99 174 ms); 4.69× (at \
             least 4.26×) fewer round trips than the group above, though its p50 is lower \
             (341 ns against 2.39 ms)\n"
        ),
        "{text}"
    );
    assert!(!text.contains("slower than the group above"), "{text}");
    // One pair, closed loop: the p50 as before.
    let one = render(&run_of(
        vec![
            pingpong("shmchan-spin", true, 1, 341, 2_000, 1.4e6),
            pingpong("pipe", false, 1, 20_000, 90_000, 50_000.0),
        ],
        3,
    ));
    assert!(one.contains("    shmchan-spin (341 ns ±5%)\n"), "{one}");
}

/// At an offered rate every row that sustained it did the same work:
/// the p99 places them.
#[test]
fn at_an_offered_rate_the_p99_places_the_rows() {
    use crate::report::test_rows::open_loop;
    let text = render(&run_of(
        vec![
            open_loop("shm-spin", true, 4, 1e4, 1e4, 800, 40_000_000),
            open_loop("shm-futex", false, 4, 1e4, 1e4, 60_000, 200_000),
        ],
        3,
    ));
    assert!(text.contains("(placed by p99, not by p50"), "{text}");
    assert!(
        text.contains(
            "    shm-futex (40.0 k/s round trips, p50 60.0 µs, p99 200 µs)\n    shm-spin \
             (40.0 k/s round trips, p50 800 ns, p99 40.0 ms); 200.00× (at least 181.41×) \
             the p99 of the group above, though its p50 is lower (800 ns against 60.0 µs)\n"
        ),
        "{text}"
    );
}

#[test]
fn without_intervals_every_row_stands_alone_and_says_so() {
    let text = render(&run_of(
        vec![
            row("pipe", "message-passing", "pingpong", 64, false, 12_000.0),
            row(
                "unix-stream",
                "message-passing",
                "pingpong",
                64,
                false,
                10_000.0,
            ),
        ],
        1,
    ));
    assert!(text.contains("differences untested"), "{text}");
    assert!(text.contains("    unix-stream (10.0 µs)\n"), "{text}");
    assert!(
        text.contains("    pipe (12.0 µs); 1.20× slower than the group above\n"),
        "{text}"
    );
    assert_eq!(render(&run_of(Vec::new(), 1)), "");
}
