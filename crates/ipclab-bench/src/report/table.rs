//! The comparison tables: one per pattern and placement, fastest first
//! within each size.

use comfy_table::{CellAlignment, Table, presets};

use crate::results::{Row, Run};
use crate::units::{count_rate, duration, rate, size};

/// Columns separated by spaces, one line under the header and nothing
/// between rows, so a table of thirty mechanisms stays thirty lines.
pub const PLAIN: &str = "     ─             ";

/// A titled table.
pub struct Titled {
    pub title: String,
    pub table: Table,
}

/// A table's title and cells, before any styling (the HTML report draws
/// the same cells).
pub struct Grid {
    pub title: String,
    pub header: Vec<&'static str>,
    pub body: Vec<Vec<String>>,
}

/// Builds every table of `run`; `markdown` picks the Markdown style.
pub fn tables(run: &Run, markdown: bool) -> Vec<Titled> {
    grids(run)
        .into_iter()
        .map(|g| Titled {
            table: styled(&g, markdown),
            title: g.title,
        })
        .collect()
}

/// The cells of every table of `run`: one per pattern and condition
/// (placement, pairs, offered rate), fastest first within each size.
pub fn grids(run: &Run) -> Vec<Grid> {
    let mut groups: Vec<(String, &str)> = Vec::new();
    for r in &run.rows {
        let group = (r.condition(), r.pattern.as_str());
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    groups
        .into_iter()
        .map(|(condition, pattern)| {
            let mut rows: Vec<&Row> = run
                .rows
                .iter()
                .filter(|r| r.condition() == condition && r.pattern == pattern)
                .collect();
            rows.sort_by(|a, b| {
                a.size
                    .cmp(&b.size)
                    .then(main_figure(a).total_cmp(&main_figure(b)))
            });
            let what = match pattern {
                "pingpong" => "round-trip time; CPU time per round trip",
                "stream" => "throughput at the receiver; CPU time per message",
                _ => "fresh processes and channel per round trip, fork to reap",
            };
            let cpus = rows.first().map(|r| placement_note(r)).unwrap_or_default();
            let verified = if rows.iter().all(|r| r.verified) {
                "every byte verified"
            } else {
                "NOT verified (--no-verify)"
            };
            let (header, body) = cells(&rows, pattern);
            Grid {
                title: format!("{pattern}, {condition}{cpus}: {what}; {verified}"),
                header,
                body,
            }
        })
        .collect()
}

fn placement_note(r: &Row) -> String {
    let list = |c: &[usize]| match c {
        [] => "?".to_string(),
        _ => c
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(","),
    };
    let load = match r.oversubscription {
        Some(o) if r.pairs > 1 || o > 1.0 => {
            format!("; {} processes, {o:.1} per CPU", 2 * r.pairs)
        }
        _ => String::new(),
    };
    let sides = if r.pairs > 1 { "s" } else { "" };
    format!(
        " (client{sides} on CPU {}, server{sides} on CPU {}{load})",
        list(&r.cpus.client),
        list(&r.cpus.server)
    )
}

/// Lower is better: p50, or the inverse of throughput; a rate the row
/// could not sustain sorts last.
fn main_figure(r: &Row) -> f64 {
    if r.sustained == Some(false) {
        f64::MAX / 2.0
    } else if let Some(s) = &r.rtt_ns {
        s.p50 as f64
    } else if let Some(t) = &r.throughput {
        -t.bytes_per_s
    } else if let Some(s) = &r.oneshot_ns {
        s.p50 as f64
    } else {
        f64::MAX
    }
}

/// A grid as a terminal (or Markdown) table, figures right-aligned.
pub fn styled(grid: &Grid, markdown: bool) -> Table {
    let mut t = Table::new();
    t.load_preset(if markdown {
        presets::ASCII_MARKDOWN
    } else {
        PLAIN
    });
    t.set_header(grid.header.clone());
    for line in &grid.body {
        t.add_row(line.clone());
    }
    for i in 2..t.column_count() {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

/// The header and rows of one table.
fn cells(rows: &[&Row], pattern: &str) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let d = |ns: u64| duration(ns as f64);
    match pattern {
        "pingpong" => pingpong_cells(rows),
        "stream" => stream_cells(rows),
        _ => (
            vec![
                "mechanism",
                "sync",
                "size",
                "total p50",
                "total p99",
                "setup p50",
                "teardown",
                "n",
            ],
            rows.iter()
                .map(|r| {
                    let s = r.oneshot_ns.expect("oneshot rows have oneshot_ns");
                    vec![
                        r.mechanism.clone(),
                        r.sync.clone(),
                        size(r.size),
                        with_interval(d(s.p50), r),
                        d(s.p99),
                        d(r.setup_ns),
                        d(r.teardown_ns),
                        r.iterations.to_string(),
                    ]
                })
                .collect(),
        ),
    }
}

/// The stream table: throughput, then the slowest and fastest pair and
/// the context switches when the rows have more than one pair.
fn stream_cells(rows: &[&Row]) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let contention = rows.iter().any(|r| r.pairs > 1);
    let mut header = vec!["mechanism", "sync", "size", "throughput", "messages"];
    if contention {
        header.extend(["pairs slowest–fastest", "switches"]);
    }
    header.extend(["cpu sender", "cpu receiver", "rounds", "n", "× limit"]);
    let body = rows
        .iter()
        .map(|r| {
            let tp = r.throughput.expect("stream rows have throughput");
            let mut line = vec![
                r.mechanism.clone(),
                r.sync.clone(),
                size(r.size),
                with_interval(rate(tp.bytes_per_s), r),
                count_rate(tp.messages_per_s),
            ];
            if contention {
                line.extend(pairs_and_switches(r));
            }
            line.extend(last_cells(r));
            line
        })
        .collect();
    (header, body)
}

/// The cells every pingpong and stream table ends with: CPU time per
/// message on each side, rounds, iterations, `× limit`.
fn last_cells(r: &Row) -> [String; 5] {
    let cpu = |ns: f64| if ns > 0.0 { duration(ns) } else { "-".into() };
    [
        cpu(r.cpu_ns_per_message.client),
        cpu(r.cpu_ns_per_message.server),
        format!("{:.1}", r.rounds),
        r.iterations.to_string(),
        times_limit(r),
    ]
}

/// The `pairs slowest–fastest` and `switches` cells of a row.
fn pairs_and_switches(r: &Row) -> [String; 2] {
    [
        r.pair_throughput.map_or("-".into(), |p| {
            format!("{} – {}", count_rate(p.min), count_rate(p.max))
        }),
        r.context_switches_per_message.map_or("-".into(), |c| {
            format!("{:.2}", c.voluntary + c.involuntary)
        }),
    ]
}

/// The pingpong table: latency, then what contention and offered load
/// add when the rows have them (round trips per second of all pairs, the
/// slowest and fastest pair, context switches; offered and achieved rate,
/// the p99 a closed-loop tool would have reported).
fn pingpong_cells(rows: &[&Row]) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let d = |ns: u64| duration(ns as f64);
    let contention = rows.iter().any(|r| r.pairs > 1);
    let open = rows.iter().any(|r| r.offered_rate.is_some());
    let mut header = vec![
        "mechanism",
        "sync",
        "size",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max",
    ];
    if open {
        header.extend(["offered", "achieved", "p99 uncorrected"]);
    }
    if contention {
        header.extend(["round trips", "pairs slowest–fastest", "switches"]);
    }
    header.extend(["cpu client", "cpu server", "rounds", "n", "× limit"]);
    let body = rows
        .iter()
        .map(|r| {
            let s = r.rtt_ns.expect("pingpong rows have rtt_ns");
            let mut line = vec![
                r.mechanism.clone(),
                r.sync.clone(),
                size(r.size),
                with_interval(d(s.p50), r),
                d(s.p90),
                d(s.p99),
                d(s.p999),
                d(s.max),
            ];
            if open {
                line.push(r.offered_rate.map_or("max".into(), count_rate));
                line.push(match (r.achieved_rate, r.sustained) {
                    (Some(a), Some(false)) => format!("{} NOT SUSTAINED", count_rate(a)),
                    (Some(a), _) => count_rate(a),
                    _ => "-".into(),
                });
                line.push(r.rtt_uncorrected_ns.map_or("-".into(), |u| d(u.p99)));
            }
            if contention {
                line.push(
                    r.round_trips
                        .map_or("-".into(), |t| count_rate(t.messages_per_s)),
                );
                line.extend(pairs_and_switches(r));
            }
            line.extend(last_cells(r));
            line
        })
        .collect();
    (header, body)
}

/// A headline figure with its 95 % interval from the repetitions, as the
/// larger distance to an end in percent: `84.5 µs ±6%`.
pub fn with_interval(figure: String, r: &Row) -> String {
    match (r.ci95, r.figure()) {
        (Some(ci), Some(centre)) => format!("{figure} ±{}", percent(ci.relative(centre))),
        _ => figure,
    }
}

/// A relative width as a short percentage: `0.4%`, `6%`, `130%`; past
/// 999 % (one repetition a hundred times another's, as a spinning pair
/// that lost its CPU gives) only that: `>999%`.
fn percent(x: f64) -> String {
    let p = x * 100.0;
    if p < 1.0 {
        format!("{p:.1}%")
    } else if p < 999.5 {
        format!("{p:.0}%")
    } else {
        ">999%".into()
    }
}

/// The `× limit` cell: `vs_limit` (see `crate::vs_limit`), `-` without one.
fn times_limit(r: &Row) -> String {
    r.vs_limit.map_or("-".into(), |v| format!("{v:.1}"))
}

/// The whole terminal report: tables, then what failed or was skipped.
pub fn render(run: &Run) -> String {
    let mut out = String::new();
    for Titled { title, table } in tables(run, false) {
        out.push_str(&format!("\n{title}\n{table}\n"));
    }
    out.push_str(&super::summary::render(run));
    out.push_str(&notes(run));
    out
}

/// Timer, failures and skipped mechanisms, as plain lines.
pub fn notes(run: &Run) -> String {
    let mut out = format!(
        "\nclock: {} per read (subtracted nowhere; every round trip includes two), resolution {} ns, source {}\n",
        duration(run.timer.overhead_ns),
        run.timer.resolution_ns,
        run.machine.clock_source
    );
    for s in &run.skipped {
        out.push_str(&format!("skipped {}: {}\n", s.mechanism, s.reason));
    }
    for f in &run.failures {
        out.push_str(&format!(
            "FAILED {} {} {} {}: {}\n",
            f.mechanism,
            f.pattern,
            size(f.size),
            crate::results::condition(&f.placement, f.pairs, f.offered_rate),
            f.error
        ));
    }
    if !run.complete {
        out.push_str("the run did not finish: these are the cells measured before it stopped\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_rows::{pairs_run, rate_run};

    fn grid<'a>(grids: &'a [Grid], starts: &str) -> &'a Grid {
        grids
            .iter()
            .find(|g| g.title.starts_with(starts))
            .unwrap_or_else(|| panic!("no table {starts}"))
    }

    #[test]
    fn a_stream_table_with_pairs_shows_the_slowest_and_fastest_pair_and_switches() {
        let grids = grids(&pairs_run());
        let two = grid(&grids, "stream, cross-core, 2 pairs");
        let at = |h: &str| two.header.iter().position(|c| *c == h).unwrap();
        let spin = two.body.iter().find(|l| l[0] == "shm-spin").unwrap();
        assert_eq!(spin[at("pairs slowest–fastest")], "125 k/s – 375 k/s");
        assert_eq!(spin[at("switches")], "0.30");
        assert!(
            two.title.contains("4 processes, 2.0 per CPU"),
            "{}",
            two.title
        );
        // One pair: the columns stay out.
        let one = grid(&grids, "stream, cross-core (");
        assert!(!one.header.contains(&"switches"));
    }

    #[test]
    fn an_unsustained_rate_sorts_last_and_says_so() {
        let grids = grids(&rate_run());
        let g = grid(&grids, "pingpong, cross-core, 50k/s");
        let last = g.body.last().unwrap();
        assert_eq!(last[0], "shm-spin");
        assert!(
            last.iter().any(|c| c == "20.0 k/s NOT SUSTAINED"),
            "{last:?}"
        );
    }

    #[test]
    fn percentages_stay_short() {
        assert_eq!(percent(0.004), "0.4%");
        assert_eq!(percent(0.06), "6%");
        assert_eq!(percent(9.99), "999%");
        assert_eq!(percent(3.2e6), ">999%");
    }
}
