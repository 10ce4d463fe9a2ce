//! `index.html`: one self-contained page (no scripts, nothing fetched) with
//! the machine, the settings, a summary, the plots (inline SVG) and the
//! same tables as the terminal.

use std::fmt::Write;

use super::chart::{Chart, FAMILIES};
use super::summary::unsustained;
use super::table::{Grid, grids, notes};
use crate::results::{Row, Run};
use crate::units::{count_rate, duration, rate, size};

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page's style: readable tables and plots that fit the window.
pub const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;\
margin:2em auto;max-width:1250px;padding:0 1em;color:#1a1a1a;line-height:1.45}\
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;margin:.6em 0 1.4em;font-size:.92em}\
th,td{padding:.25em .7em;border-bottom:1px solid #e2e2e2;text-align:right;white-space:nowrap}\
th{background:#f3f3f3}td:first-child,th:first-child,td.l,th.l{text-align:left}\
tr:nth-child(even) td{background:#fafafa}\
figure{margin:1.5em 0 2.5em}figure svg{width:100%;height:auto;border:1px solid #eee}\
td.wrap{white-space:normal}figcaption{color:#444;max-width:60em}.note{color:#555}.warn{color:#a00;font-weight:bold}\
nav a{margin-right:1em}.scroll{overflow-x:auto}";

/// The whole page; `svgs[i]` is the SVG of `charts[i]`.
pub fn render(run: &Run, charts: &[Chart], svgs: &[String]) -> String {
    let mut page = String::new();
    let title = format!("ipclab {} — {}", run.ipclab_version, run.started_at);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );
    if !run.complete {
        page.push_str(
            "<p class=\"warn\">This run did not finish: these are the cells measured before \
             it stopped.</p>\n",
        );
    }
    page.push_str(
        "<nav><a href=\"#machine\">Machine</a><a href=\"#summary\">Summary</a>\
         <a href=\"#plots\">Plots</a><a href=\"#tables\">Tables</a><a href=\"#notes\">Notes</a></nav>\n",
    );
    machine_and_settings(&mut page, run);
    summary(&mut page, run);
    page.push_str("<h2 id=\"plots\">Plots</h2>\n");
    if charts.is_empty() {
        page.push_str("<p>No measured row to plot.</p>\n");
    }
    for (chart, svg) in charts.iter().zip(svgs) {
        let _ = write!(
            page,
            "<figure id=\"{stem}\">\n{}\n<figcaption>{} Files: <a href=\"{stem}.svg\">SVG</a>, \
             <a href=\"{stem}.png\">PNG</a>.</figcaption>\n</figure>\n",
            inline_svg(svg),
            escape(&chart.caption),
            stem = escape(&chart.stem),
        );
    }
    page.push_str("<h2 id=\"tables\">Tables</h2>\n");
    for g in grids(run) {
        grid(&mut page, &g);
    }
    page.push_str("<h2 id=\"notes\">Notes</h2>\n");
    for line in notes(run).lines().filter(|l| !l.trim().is_empty()) {
        let _ = writeln!(page, "<p class=\"note\">{}</p>", escape(line));
    }
    page.push_str("</body>\n</html>\n");
    page
}

/// An SVG document as an element of the page: without its XML prolog.
fn inline_svg(svg: &str) -> &str {
    svg.find("<svg").map_or(svg, |i| &svg[i..])
}

fn machine_and_settings(page: &mut String, run: &Run) {
    let m = &run.machine;
    let s = &run.settings;
    let cpus = |c: &[usize]| {
        c.iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut measured = match s.iterations {
        Some(n) => format!("exactly {n} iterations per cell"),
        None => format!("at least {} per cell", duration(s.duration_ns as f64)),
    };
    if s.repeat > 1 {
        measured.push_str(&format!(
            ", in {} repetitions shuffled with seed {}",
            s.repeat, s.seed
        ));
    }
    let pairs: Vec<(&str, String)> = vec![
        ("CPU", m.cpu_model.clone()),
        (
            "CPUs",
            format!(
                "{} (this run may use {})",
                m.cpu_count,
                cpus(&m.cpus_allowed)
            ),
        ),
        (
            "machine",
            if m.virtualised {
                "virtual machine".into()
            } else {
                "bare metal".into()
            },
        ),
        ("kernel", m.kernel.clone()),
        (
            "clock",
            format!(
                "{}, {} per read, resolution {} ns",
                m.clock_source,
                duration(run.timer.overhead_ns),
                run.timer.resolution_ns
            ),
        ),
        ("mechanisms", s.mechanisms.join(", ")),
        (
            "sizes",
            s.sizes
                .iter()
                .map(|&b| size(b))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("patterns", s.patterns.join(", ")),
        ("placements", s.placements.join(", ")),
        (
            "measuring",
            format!(
                "{measured}, after {} of warm-up",
                duration(s.warmup_ns as f64)
            ),
        ),
        (
            "payload",
            if s.verify {
                "every byte of every message verified".into()
            } else {
                "NOT verified (--no-verify)".into()
            },
        ),
        (
            "shared-memory segments",
            format!(
                "{}, {}",
                match s.segments {
                    0 => "buffers in flight chosen per channel (about 4 MiB worth, 2 to 64)".into(),
                    n => format!("{n} in flight per direction"),
                },
                s.segment_size
                    .map_or("each large enough for a message".into(), size)
            ),
        ),
    ];
    page.push_str("<h2 id=\"machine\">Machine and settings</h2>\n<table>\n");
    for (k, v) in pairs {
        let _ = writeln!(
            page,
            "<tr><th class=\"l\">{}</th><td class=\"l wrap\">{}</td></tr>",
            escape(k),
            escape(&v)
        );
    }
    page.push_str("</table>\n");
}

/// Per pattern and condition: the best mechanism of each family at each
/// size, and how far behind the best of all it is.
fn summary(page: &mut String, run: &Run) {
    page.push_str(
        "<h2 id=\"summary\">Summary</h2>\n<p>The best mechanism of each family at each size \
         (lowest p50 round trip, highest throughput, lowest fork-to-reap p50), with its 95 % \
         interval from the repetitions, and how many times slower than the best of all it is \
         (less throughput, for streams), unless the two intervals overlap.</p>\n",
    );
    page.push_str(
        "<p>A rate a mechanism could not sustain (it achieved less than it was offered) is \
         never its family's best: such a row measures no load.</p>\n",
    );
    let mut groups: Vec<(&str, String)> = Vec::new();
    for r in &run.rows {
        let group = (r.pattern.as_str(), r.condition());
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    for (pattern, condition) in groups {
        let rows: Vec<&Row> = run
            .rows
            .iter()
            .filter(|r| r.pattern == pattern && r.condition() == condition)
            .collect();
        let families: Vec<&str> = FAMILIES
            .iter()
            .map(|f| f.0)
            .filter(|f| rows.iter().any(|r| r.family == *f))
            .collect();
        let mut sizes: Vec<usize> = rows.iter().map(|r| r.size).collect();
        sizes.sort_unstable();
        sizes.dedup();
        let _ = write!(
            page,
            "<h3>{}, {}</h3>\n<div class=\"scroll\"><table>\n<tr><th>size</th>",
            escape(pattern),
            escape(&condition)
        );
        for f in &families {
            let _ = write!(page, "<th class=\"l\">{}</th>", escape(f));
        }
        page.push_str("</tr>\n");
        for sz in sizes {
            let at: Vec<&Row> = rows.iter().copied().filter(|r| r.size == sz).collect();
            // A row that could not sustain its rate is never the best.
            let best_row = at
                .iter()
                .copied()
                .filter(|r| !unsustained(r))
                .min_by(|a, b| cost(a).total_cmp(&cost(b)));
            let _ = write!(page, "<tr><td>{}</td>", escape(&size(sz)));
            for f in &families {
                let of_family: Vec<&Row> = at.iter().copied().filter(|r| r.family == *f).collect();
                let top = of_family
                    .iter()
                    .copied()
                    .filter(|r| !unsustained(r))
                    .min_by(|a, b| cost(a).total_cmp(&cost(b)));
                let cell = match (top, best_row) {
                    (Some(r), Some(best_row)) => {
                        let behind = cost(r) / cost(best_row);
                        let overlap = match (r.ci95, best_row.ci95) {
                            (Some(a), Some(b)) => a.overlaps(&b),
                            _ => false,
                        };
                        let times = if behind <= 1.0005 {
                            " (best)".to_string()
                        } else if overlap {
                            " (within noise of the best)".to_string()
                        } else {
                            format!(" ({behind:.1}× slower)")
                        };
                        format!("{} {}{times}", r.mechanism, figure(r))
                    }
                    _ => match of_family.first() {
                        Some(r) => format!(
                            "{} could not sustain the rate (achieved {} per pair)",
                            r.mechanism,
                            r.achieved_rate.map_or("?".into(), count_rate)
                        ),
                        None => "–".to_string(),
                    },
                };
                let _ = write!(page, "<td class=\"l\">{}</td>", escape(&cell));
            }
            page.push_str("</tr>\n");
        }
        page.push_str("</table></div>\n");
        let short: Vec<String> = rows
            .iter()
            .filter(|r| unsustained(r))
            .map(|r| {
                format!(
                    "{} at {} (achieved {} per pair)",
                    r.mechanism,
                    size(r.size),
                    r.achieved_rate.map_or("?".into(), count_rate)
                )
            })
            .collect();
        if !short.is_empty() {
            let _ = writeln!(
                page,
                "<p class=\"note\">Could not sustain the offered rate, so not placed: {}.</p>",
                escape(&short.join(", "))
            );
        }
    }
    spinning(page, run);
}

/// Where the spinning mechanisms fall behind the sleeping ones as the load
/// grows (`report::spinning`), when the run varied it.
fn spinning(page: &mut String, run: &Run) {
    let blocks = super::spinning::blocks(run);
    if blocks.is_empty() {
        return;
    }
    let _ = writeln!(
        page,
        "<h3 id=\"spinning\">Spinning under load</h3>\n<p>{}</p>",
        escape(&super::spinning::title(run))
    );
    for b in blocks {
        let _ = writeln!(page, "<p>{}:</p>\n<ul>", escape(&b.heading));
        for l in b.lines {
            let _ = writeln!(page, "<li>{}</li>", escape(&l));
        }
        page.push_str("</ul>\n");
    }
}

/// Lower is better: p50 time, or seconds per byte.
fn cost(r: &Row) -> f64 {
    if let Some(s) = r.rtt_ns {
        s.p50 as f64
    } else if let Some(t) = r.throughput {
        if t.bytes_per_s > 0.0 {
            1.0 / t.bytes_per_s
        } else if t.messages_per_s > 0.0 {
            1.0 / t.messages_per_s
        } else {
            f64::MAX
        }
    } else if let Some(s) = r.oneshot_ns {
        s.p50 as f64
    } else {
        f64::MAX
    }
}

fn figure(r: &Row) -> String {
    let text = if let Some(s) = r.rtt_ns {
        duration(s.p50 as f64)
    } else if let Some(t) = r.throughput {
        rate(t.bytes_per_s)
    } else if let Some(s) = r.oneshot_ns {
        duration(s.p50 as f64)
    } else {
        String::new()
    };
    super::table::with_interval(text, r)
}

/// A table of the terminal's as HTML.
pub fn grid(page: &mut String, g: &Grid) {
    let _ = write!(
        page,
        "<h3>{}</h3>\n<div class=\"scroll\"><table>\n<tr>",
        escape(&g.title)
    );
    for (i, h) in g.header.iter().enumerate() {
        let class = if i < 2 { " class=\"l\"" } else { "" };
        let _ = write!(page, "<th{class}>{}</th>", escape(h));
    }
    page.push_str("</tr>\n");
    for row in &g.body {
        page.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            let class = if i < 2 { " class=\"l\"" } else { "" };
            let _ = write!(page, "<td{class}>{}</td>", escape(cell));
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</table></div>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn the_summary_never_calls_an_unsustained_rate_best_and_says_where_spinning_falls_behind() {
        let page = render(&crate::report::test_rows::rate_run(), &[], &[]);
        // At 50k/s shm-spin has the lowest p50 but did not sustain it.
        let at_50k = page
            .split("<h3>pingpong, cross-core, 50k/s</h3>")
            .nth(1)
            .and_then(|rest| rest.split("<h3>").next())
            .expect("a summary table for 50k/s");
        assert!(
            at_50k.contains(
                "Could not sustain the offered rate, so not placed: shm-spin at 64 B (achieved \
                 20.0 k/s per pair)."
            ),
            "{at_50k}"
        );
        assert!(!at_50k.contains("shm-spin 300 ns"), "{at_50k}");
        assert!(at_50k.contains("shm-futex 70.0 µs ±5% (best)"), "{at_50k}");
        assert!(page.contains("<h3 id=\"spinning\">Spinning under load</h3>"));
        assert!(page.contains(
            "<li>shm-spin: best at 1k/s (p50 800 ns, p99 3.00 µs, 1.00 k/s round trips); could \
             not sustain the offered rate at 50k/s (achieved 20.0 k/s per pair)</li>"
        ));

        // A family whose only row did not sustain the rate says so.
        let mut run = crate::report::test_rows::rate_run();
        run.rows.retain(|r| r.offered_rate == Some(5e4));
        for r in run.rows.iter_mut().filter(|r| r.mechanism == "shm-futex") {
            r.family = "message-passing".into();
        }
        let page = render(&run, &[], &[]);
        assert!(
            page.contains(
                "<td class=\"l\">shm-futex 70.0 µs ±5% (best)</td><td class=\"l\">shm-spin \
                 could not sustain the rate (achieved 20.0 k/s per pair)</td>"
            ),
            "{page}"
        );

        let page = render(&crate::report::test_rows::pairs_run(), &[], &[]);
        assert!(page.contains("behind shm-futex from 4 pairs"), "{page}");
    }

    #[test]
    fn an_svg_loses_its_prolog() {
        assert_eq!(inline_svg("<?xml version=\"1.0\"?>\n<svg/>"), "<svg/>");
    }
}
