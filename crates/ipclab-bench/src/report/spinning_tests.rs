//! Tests of `spinning`: synthetic runs where a spinner falls behind a
//! sleeper, or does not, or cannot be told apart.

use super::*;
use crate::report::summary;
use crate::report::test_rows::{pairs_run, pingpong, rate_run, with_interval};

#[test]
fn a_spinner_whose_p99_passes_the_sleepers_is_behind_from_that_step() {
    let text = render(&pairs_run());
    assert!(
        text.contains("  pingpong 64 B, cross-core, as pairs grow (1, 2, 4):\n"),
        "{text}"
    );
    // Best p50 throughout, yet behind by p99 and round trips at 4.
    assert!(
        text.contains(
            "    shm-spin: best at 1 pair (p50 700 ns, p99 2.00 µs, 1.40 M/s round trips); \
             behind shm-futex from 4 pairs (p99 5.00 ms against 100 µs; 40.0 k/s round \
             trips against 60.0 k/s; slowest pair 8.00 k/s round trips against 12.0 k/s)\n"
        ),
        "{text}"
    );
    // Stream: behind by messages per second from 2 pairs.
    assert!(
        text.contains(
            "behind shm-futex from 2 pairs (500 k/s messages against 2.00 M/s; slowest pair \
             125 k/s messages against 500 k/s)"
        ),
        "{text}"
    );
}

#[test]
fn a_spinner_ahead_at_every_step_is_not_called_behind() {
    let mut run = pairs_run();
    run.rows.retain(|r| r.pairs < 4 && r.pattern == "pingpong");
    let text = render(&run);
    assert!(
        text.contains("shm-spin: best at 1 pair") && text.contains("not behind"),
        "{text}"
    );
    assert!(!text.contains("behind shm-futex"), "{text}");
}

#[test]
fn a_starved_pair_puts_a_spinner_behind_though_p99_and_the_total_hold() {
    let mut run = pairs_run();
    run.rows.retain(|r| r.pairs < 4 && r.pattern == "pingpong");
    for r in run.rows.iter_mut().filter(|r| r.polls && r.pairs == 2) {
        r.pair_throughput = Some(crate::results::MinMax {
            min: 52.0,
            max: 1e6,
        });
    }
    let text = render(&run);
    assert!(
        text.contains(
            "behind shm-futex from 2 pairs (slowest pair 52.0 /s round trips against 16.0 k/s)"
        ),
        "{text}"
    );
}

#[test]
fn a_difference_within_the_intervals_is_not_called() {
    // p99 3 % above the sleeper's, with ±5 % intervals.
    let rows = vec![
        pingpong("shm-spin", true, 1, 700, 2_000, 1.4e6),
        pingpong("shm-futex", false, 1, 50_000, 100_000, 20_000.0),
        pingpong("shm-spin", true, 2, 700, 103_000, 1.0e6),
        pingpong("shm-futex", false, 2, 55_000, 100_000, 40_000.0),
    ];
    let text = render(&summary::tests::run_of(rows.clone(), 3));
    assert!(!text.contains("behind shm-futex"), "{text}");
    // Without intervals, the same 3 % is a difference (untested).
    let bare: Vec<Row> = rows
        .into_iter()
        .map(|mut r| {
            r.ci95 = None;
            r
        })
        .collect();
    let text = render(&summary::tests::run_of(bare, 1));
    assert!(text.contains("differences untested"), "{text}");
    assert!(text.contains("behind shm-futex from 2 pairs (p99 103 µs against 100 µs)"));
}

#[test]
fn noise_keeps_a_spinner_from_being_called_ahead_but_not_from_being_called_behind() {
    // The sleeper too noisy at 4 pairs: no reference there.
    let mut run = pairs_run();
    for r in run.rows.iter_mut().filter(|r| r.pairs == 4) {
        *r = with_interval(r.clone(), 400.0);
    }
    let text = render(&run);
    assert!(text.contains("too noisy to tell at 4 pairs"), "{text}");
    assert!(!text.contains("from 4 pairs"), "{text}");

    // The spinner alone too noisy, one repetition stalled: behind at 4
    // pairs all the same, and the line says its repetitions disagree;
    // at 2 pairs, where it is ahead, nothing can be said.
    let mut run = pairs_run();
    for r in run
        .rows
        .iter_mut()
        .filter(|r| r.polls && r.pattern == "pingpong" && r.pairs > 1)
    {
        *r = with_interval(r.clone(), 400.0);
        r.repetitions = vec![700.0, 720.0, 40e6];
    }
    let text = render(&run);
    assert!(
        text.contains(
            "behind shm-futex from 4 pairs (p99 5.00 ms against 100 µs; 40.0 k/s round trips \
             against 60.0 k/s; slowest pair 8.00 k/s round trips against 12.0 k/s; its \
             repetitions disagree: p50 700 ns to 40.0 ms); too noisy to tell at 2 pairs"
        ),
        "{text}"
    );
}

#[test]
fn an_unsustained_rate_is_reported_as_such_and_never_best() {
    let run = rate_run();
    let text = render(&run);
    assert!(
        text.contains(
            "  pingpong 64 B, cross-core, as the offered rate grows (1k/s, 10k/s, 50k/s, \
             max (closed loop)):\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("shm-spin: best at 1k/s")
            && text.contains(
                "could not sustain the offered rate at 50k/s (achieved 20.0 k/s per pair)"
            ),
        "{text}"
    );
    // The groups of the 50k/s condition: its 300 ns p50 is the lowest,
    // yet it is not placed, let alone first.
    let all = summary::render(&run);
    // At an offered rate the rows are placed by p99 (`summary::Basis`).
    let block: String = all
        .split("  pingpong 64 B, cross-core, 50k/s (placed by p99, not by p50")
        .nth(1)
        .expect("a block for 50k/s")
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .collect::<Vec<_>>()
        .join("\n");
    let first = block.lines().next().unwrap();
    assert!(first.starts_with("    shm-futex"), "{block}");
    assert!(
        block.contains(
            "    could not sustain the offered rate, not placed: shm-spin (achieved 20.0 k/s \
             of 50.0 k/s per pair)"
        ),
        "{block}"
    );
    let rows: Vec<&Row> = run.rows.iter().collect();
    for g in verdict_groups(&rows) {
        assert!(g.iter().all(|r| r.sustained != Some(false)));
    }
}

#[test]
fn nothing_to_say_without_a_spinner_or_without_steps() {
    let mut run = pairs_run();
    run.rows.retain(|r| !r.polls);
    assert_eq!(render(&run), "");
    let mut run = pairs_run();
    run.rows.retain(|r| r.pairs == 1);
    assert_eq!(render(&run), "");
}

#[test]
fn each_figure_is_held_against_the_sleeper_best_at_it() {
    // pipe has the lowest p99, unix-stream the most round trips: a spinner
    // with a better p99 than both but fewer round trips than unix-stream is
    // behind unix-stream, not level with pipe.
    let rows = vec![
        pingpong("shm-spin", true, 1, 700, 2_000, 1.4e6),
        pingpong("pipe", false, 1, 50_000, 90_000, 20_000.0),
        pingpong("unix-stream", false, 1, 50_000, 95_000, 20_000.0),
        pingpong("shm-spin", true, 8, 700, 80_000, 50_000.0),
        pingpong("pipe", false, 8, 60_000, 100_000, 60_000.0),
        pingpong("unix-stream", false, 8, 60_000, 200_000, 110_000.0),
    ];
    let text = render(&summary::tests::run_of(rows, 3));
    assert!(
        text.contains("behind unix-stream from 8 pairs (50.0 k/s round trips against 110 k/s;"),
        "{text}"
    );
}
