//! The plots of contention and offered load: how the mechanisms behave
//! as pairs are added (`--pairs`) and as the offered rate grows
//! (`--rate`).
//!
//! Per placement, when the run measured more than one number of pairs (at
//! the same offered rate): round-trip p50 with p99 whiskers against pairs,
//! round trips per second of all pairs together against pairs (pingpong),
//! and messages per second of all pairs against pairs (stream). When it
//! measured more than one offered rate (with the same pairs): p50 with p99
//! whiskers against the offered rate, the knee. One chart per size, or at
//! the median size when more than [`MAX_SIZES`] were measured.
//!
//! A row that could not sustain its offered rate (`sustained == false`) is
//! drawn as a hollow marker outside its line, and the legend says so: its
//! percentiles grow with the length of the run and measure no load.
//! Closed-loop rows (`max`) are left out of the plots against offered rate:
//! they were offered no rate, and their round trips are timed from their
//! send rather than from a schedule (the tables give them).

use super::chart::{Axis, Chart, Point, Ticks};
use super::plot::{median_size, round_label, series, time_axis};
use crate::results::Row;
use crate::units;

/// Up to this many sizes get charts of their own; beyond it, only the
/// median size is drawn.
pub const MAX_SIZES: usize = 3;

/// The load charts of one placement (`where_` describes it in words).
pub fn charts(run: &crate::results::Run, placement: &str, where_: &str) -> Vec<Chart> {
    let here: Vec<&Row> = run
        .rows
        .iter()
        .filter(|r| r.placement == placement)
        .collect();
    let mut out = Vec::new();
    // Against pairs: one set per offered rate (closed loop first).
    let pingpong: Vec<&Row> = here
        .iter()
        .copied()
        .filter(|r| r.pattern == "pingpong")
        .collect();
    for rate in distinct(&pingpong, |r| r.offered_rate.map(|v| v.to_bits())) {
        let rows: Vec<&Row> = pingpong
            .iter()
            .copied()
            .filter(|r| r.offered_rate.map(|v| v.to_bits()) == rate)
            .collect();
        if distinct(&rows, |r| r.pairs).len() < 2 {
            continue;
        }
        let rate = rate.map(f64::from_bits);
        for size in sizes(&rows) {
            let at = at_size(&rows, size);
            out.extend(pairs_latency(&at, placement, where_, size, rate));
            out.extend(pairs_round_trips(&at, placement, where_, size, rate));
        }
    }
    let stream: Vec<&Row> = here
        .iter()
        .copied()
        .filter(|r| r.pattern == "stream")
        .collect();
    if distinct(&stream, |r| r.pairs).len() >= 2 {
        for size in sizes(&stream) {
            out.extend(pairs_messages(
                &at_size(&stream, size),
                placement,
                where_,
                size,
            ));
        }
    }
    // Against the offered rate: one set per number of pairs.
    let open: Vec<&Row> = pingpong
        .iter()
        .copied()
        .filter(|r| r.offered_rate.is_some())
        .collect();
    for pairs in distinct(&open, |r| r.pairs) {
        let rows: Vec<&Row> = open.iter().copied().filter(|r| r.pairs == pairs).collect();
        if distinct(&rows, |r| r.offered_rate.map(f64::to_bits)).len() < 2 {
            continue;
        }
        for size in sizes(&rows) {
            out.extend(rate_latency(
                &at_size(&rows, size),
                placement,
                where_,
                size,
                pairs,
            ));
        }
    }
    out
}

/// The distinct values of `key` over `rows`, in ascending order.
fn distinct<K: Ord + Copy>(rows: &[&Row], key: impl Fn(&Row) -> K) -> Vec<K> {
    let mut keys: Vec<K> = rows.iter().map(|r| key(r)).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// The sizes that get charts: every size the mechanisms (limits aside)
/// measured, or only the median of them when there are more than
/// [`MAX_SIZES`].
fn sizes(rows: &[&Row]) -> Vec<usize> {
    let measured: Vec<&Row> = rows
        .iter()
        .copied()
        .filter(|r| r.family != "limit")
        .collect();
    let all = distinct(&measured, |r| r.size);
    if all.len() <= MAX_SIZES {
        all
    } else {
        median_size(&measured).into_iter().collect()
    }
}

/// The rows of one size, with the size-0 limits (`limit-spin`,
/// `limit-futex`), which stand for every size.
fn at_size<'a>(rows: &[&'a Row], size: usize) -> Vec<&'a Row> {
    rows.iter()
        .copied()
        .filter(|r| r.size == size || (r.family == "limit" && r.size == 0))
        .collect()
}

fn unsustained(r: &Row) -> bool {
    r.sustained == Some(false)
}

/// The p50 of a round trip with its p99 as the whisker; hollow when the
/// rate was not sustained.
fn percentiles(r: &Row, x: f64) -> Option<Point> {
    let s = r.rtt_ns?;
    Some(Point {
        hollow: unsustained(r),
        ..Point::at(x, s.p50 as f64, Some(s.p99 as f64))
    })
}

fn pairs_axis(rows: &[&Row]) -> Axis {
    Axis {
        label: "client/server pairs at once (log scale)".into(),
        log: true,
        ticks: Ticks::At(
            distinct(rows, |r| r.pairs)
                .into_iter()
                .map(|p| p as f64)
                .collect(),
        ),
        format: |v| format!("{v:.0}"),
    }
}

fn count_axis(label: &str) -> Axis {
    Axis {
        label: label.into(),
        log: true,
        ticks: Ticks::Decimal,
        format: |v| round_label(&units::count_rate(v)),
    }
}

/// `-10k` of a stem and `, 10k/s per pair` of a title, for an open-loop
/// rate; nothing for closed loop.
fn rate_words(rate: Option<f64>) -> (String, String) {
    match rate {
        Some(v) => {
            let label = units::rate_label(v);
            (
                format!("-{}", label.trim_end_matches("/s")),
                format!(", offered {label} per pair"),
            )
        }
        None => (String::new(), String::new()),
    }
}

/// The caption's sentence about hollow markers, when a chart has any.
fn hollow_words(rows: &[&Row]) -> &'static str {
    if rows.iter().any(|r| unsustained(r)) {
        " A hollow marker, off the line, is a rate the mechanism could NOT sustain (it \
         achieved less than the offered rate): no measurement of that load, however its \
         figures look."
    } else {
        ""
    }
}

fn size_stem(size: usize) -> String {
    units::size(size).replace(' ', "")
}

fn pairs_latency(
    rows: &[&Row],
    placement: &str,
    where_: &str,
    size: usize,
    rate: Option<f64>,
) -> Option<Chart> {
    let series = series(rows, |r| percentiles(r, r.pairs as f64));
    let (stem_rate, title_rate) = rate_words(rate);
    let size_words = units::size(size);
    (!series.is_empty()).then(|| Chart {
        stem: format!("pairs-latency-{placement}{stem_rate}-{}", size_stem(size)),
        title: format!("Round-trip time against pairs, {size_words} ({where_}{title_rate})"),
        caption: format!(
            "Median round trip (p50) of {size_words} there and back over all pairs together, \
             against the number of client/server pairs running at once, {where_}{title_rate}; \
             the whisker reaches the p99. A spinning mechanism that looks fastest with one \
             pair may fall behind once the pairs outnumber the CPUs: watch the whiskers. \
             Lower is better; both axes are logarithmic.{}",
            hollow_words(rows)
        ),
        x: pairs_axis(rows),
        y: time_axis("round-trip time, p50 (log scale)"),
        series,
    })
}

fn pairs_round_trips(
    rows: &[&Row],
    placement: &str,
    where_: &str,
    size: usize,
    rate: Option<f64>,
) -> Option<Chart> {
    let series = series(rows, |r| {
        let t = r.round_trips?;
        (t.messages_per_s > 0.0).then(|| Point {
            hollow: unsustained(r),
            ..Point::at(r.pairs as f64, t.messages_per_s, None)
        })
    });
    let (stem_rate, title_rate) = rate_words(rate);
    let size_words = units::size(size);
    (!series.is_empty()).then(|| Chart {
        stem: format!(
            "pairs-round-trips-{placement}{stem_rate}-{}",
            size_stem(size)
        ),
        title: format!("Round trips per second of all pairs, {size_words} ({where_}{title_rate})"),
        caption: format!(
            "Round trips of {size_words} per second, all pairs together, against the number \
             of pairs running at once, {where_}{title_rate}. Higher is better; both axes are \
             logarithmic.{}",
            hollow_words(rows)
        ),
        x: pairs_axis(rows),
        y: count_axis("round trips per second, all pairs (log scale)"),
        series,
    })
}

fn pairs_messages(rows: &[&Row], placement: &str, where_: &str, size: usize) -> Option<Chart> {
    let series = series(rows, |r| {
        let t = r.throughput?;
        (t.messages_per_s > 0.0).then(|| Point::at(r.pairs as f64, t.messages_per_s, None))
    });
    let size_words = units::size(size);
    (!series.is_empty()).then(|| Chart {
        stem: format!("pairs-messages-{placement}-{}", size_stem(size)),
        title: format!("Stream: messages per second of all pairs, {size_words} ({where_})"),
        caption: format!(
            "Messages of {size_words} per second arriving at the receivers, all pairs \
             together, each sender sending as fast as its channel takes messages, against the \
             number of pairs running at once, {where_}. Higher is better; both axes are \
             logarithmic."
        ),
        x: pairs_axis(rows),
        y: count_axis("messages per second, all pairs (log scale)"),
        series,
    })
}

fn rate_latency(
    rows: &[&Row],
    placement: &str,
    where_: &str,
    size: usize,
    pairs: usize,
) -> Option<Chart> {
    let series = series(rows, |r| percentiles(r, r.offered_rate?));
    let size_words = units::size(size);
    let pairs_words = if pairs == 1 {
        "one pair".to_string()
    } else {
        format!("{pairs} pairs")
    };
    let mut rates: Vec<f64> = rows.iter().filter_map(|r| r.offered_rate).collect();
    rates.sort_by(f64::total_cmp);
    rates.dedup();
    (!series.is_empty()).then(|| Chart {
        stem: format!("rate-latency-{placement}-{pairs}p-{}", size_stem(size)),
        title: format!(
            "Round-trip time against offered rate, {size_words} ({where_}, {pairs_words})"
        ),
        caption: format!(
            "Median round trip (p50) of {size_words}, whisker to the p99, each timed from the \
             moment it was due on the client's schedule (corrected for coordinated \
             omission), against the round trips per second offered to each pair, \
             {pairs_words}, {where_}. Where a line turns up is the knee: the load the \
             mechanism stops keeping up with. Closed-loop rows (max) are left out: they were \
             offered no rate (the tables give them). Lower is better; both axes are \
             logarithmic.{}",
            hollow_words(rows)
        ),
        x: Axis {
            label: "offered round trips per second, each pair (log scale)".into(),
            log: true,
            ticks: Ticks::At(rates),
            format: units::rate_label,
        },
        y: time_axis("round-trip time, p50 (log scale)"),
        series,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::chart::HOLLOW_NOTE;
    use crate::report::test_rows::{pairs_run, pingpong, rate_run};

    fn stems(charts: &[Chart]) -> Vec<&str> {
        charts.iter().map(|c| c.stem.as_str()).collect()
    }

    #[test]
    fn several_pairs_give_latency_and_throughput_against_pairs() {
        let run = pairs_run();
        let charts = charts(&run, "cross-core", "pinned");
        assert_eq!(
            stems(&charts),
            [
                "pairs-latency-cross-core-64B",
                "pairs-round-trips-cross-core-64B",
                "pairs-messages-cross-core-64B"
            ]
        );
        let latency = &charts[0];
        let spin = latency
            .series
            .iter()
            .find(|s| s.name == "shm-spin")
            .unwrap();
        let xy: Vec<(f64, f64, Option<f64>)> =
            spin.points.iter().map(|p| (p.x, p.y, p.whisker)).collect();
        assert_eq!(
            xy,
            [
                (1.0, 700.0, Some(2_000.0)),
                (2.0, 700.0, Some(3_000.0)),
                (4.0, 750.0, Some(5_000_000.0))
            ]
        );
        assert!(latency.y.log && latency.x.log);
        let round_trips: Vec<f64> = charts[1].series[0].points.iter().map(|p| p.y).collect();
        assert_eq!(round_trips.len(), 3);
        assert!(charts.iter().all(|c| c.series.len() == 2));
        // Nothing hollow: every rate was sustained.
        assert!(
            charts
                .iter()
                .flat_map(|c| &c.series)
                .all(|s| s.points.iter().all(|p| !p.hollow))
        );
    }

    #[test]
    fn the_knee_leaves_closed_loop_out_and_an_unsustained_rate_hollow() {
        let run = rate_run();
        let charts = charts(&run, "cross-core", "pinned");
        assert_eq!(stems(&charts), ["rate-latency-cross-core-1p-64B"]);
        let c = &charts[0];
        assert!(c.caption.contains("could NOT sustain"), "{}", c.caption);
        assert!(c.caption.contains("Closed-loop rows (max) are left out"));
        let spin = c.series.iter().find(|s| s.name == "shm-spin").unwrap();
        let points: Vec<(f64, bool)> = spin.points.iter().map(|p| (p.x, p.hollow)).collect();
        assert_eq!(points, [(1e3, false), (1e4, false), (5e4, true)]);
        let futex = c.series.iter().find(|s| s.name == "shm-futex").unwrap();
        assert!(futex.points.iter().all(|p| !p.hollow));
        // The legend explains the hollow marker.
        let svg = c.svg().unwrap();
        assert!(
            svg.contains(HOLLOW_NOTE),
            "the legend lacks the hollow note"
        );
        assert!(svg.contains("50k/s") && svg.contains("offered round trips"));
    }

    #[test]
    fn one_pair_closed_loop_gives_no_load_chart() {
        let mut run = pairs_run();
        run.rows.retain(|r| r.pairs == 1);
        assert!(charts(&run, "cross-core", "pinned").is_empty());
        // Another placement's rows are not this one's.
        assert!(charts(&pairs_run(), "same-core", "one CPU").is_empty());
    }

    #[test]
    fn many_sizes_draw_the_median_only() {
        let mut rows = Vec::new();
        for size in [12, 64, 4096, 65536, 1 << 20] {
            for pairs in [1, 2] {
                let mut r = pingpong("shm-futex", false, pairs, 50_000, 100_000, 2e4);
                r.size = size;
                rows.push(r);
            }
        }
        let run = crate::report::summary::tests::run_of(rows, 3);
        let charts = charts(&run, "cross-core", "pinned");
        assert_eq!(
            stems(&charts),
            [
                "pairs-latency-cross-core-4KiB",
                "pairs-round-trips-cross-core-4KiB"
            ]
        );
    }
}
