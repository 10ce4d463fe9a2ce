//! What `ipclab seed` prints and writes: the post's table beside this
//! machine's, and what the two say.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::html::{STYLE, escape, grid};
use super::table::{Grid, styled};
use super::write_atomically;
use crate::results::Row;
use crate::seed::{BLOG, CHOSEN, SIZES, Seed};
use crate::units::{duration, size};

/// The post's table.
pub fn blog_grid() -> Grid {
    let how = |family: &str| match family {
        "message passing" => "Mach messages (4 MB out of line)",
        _ => "System V segment + semaphore",
    };
    Grid {
        title: "The post (OS X, March 2017): time(1) of the whole program, an average of several \
                runs"
            .into(),
        header: vec![
            "family",
            "mechanism",
            "\"Hello World\" (12 B)",
            "4 MB of /dev/urandom",
        ],
        body: BLOG
            .iter()
            .map(|(family, hello, big)| {
                vec![
                    family.to_string(),
                    how(family).to_string(),
                    format!("{hello} ms"),
                    format!("{big} ms"),
                ]
            })
            .collect(),
    }
}

fn ms(ns: f64) -> String {
    duration(ns)
}

/// This machine's blog-style table: mean and median per mechanism and size.
pub fn oneshot_grid(seed: &Seed) -> Grid {
    let mut body = Vec::new();
    for (name, family, _) in CHOSEN {
        let mut line = vec![family.to_string(), name.to_string()];
        for sz in SIZES {
            match seed.row(name, "oneshot", sz).and_then(|r| r.oneshot_ns) {
                Some(s) => line.extend([ms(s.mean), ms(s.p50 as f64)]),
                None => line.extend(["–".into(), "–".into()]),
            }
        }
        body.push(line);
    }
    let alone = &seed.processes_alone_ns;
    let mut line = vec!["(no IPC)".into(), "fork two, exit, reap".into()];
    for _ in SIZES {
        line.extend([ms(alone.mean), ms(alone.p50 as f64)]);
    }
    body.push(line);
    Grid {
        title: format!(
            "This machine (ipclab oneshot): fork a client and a server, set up the channel, one \
             round trip, exit, reap; {} runs each, unpinned, every byte checked",
            seed.runs
        ),
        header: vec![
            "family",
            "mechanism",
            "12 B mean",
            "12 B median",
            "4 MiB mean",
            "4 MiB median",
        ],
        body,
    }
}

/// The same mechanisms once the processes exist.
pub fn warm_grid(seed: &Seed) -> Grid {
    let body = CHOSEN
        .iter()
        .map(|(name, family, _)| {
            let mut line = vec![family.to_string(), name.to_string()];
            for sz in SIZES {
                line.push(
                    seed.row(name, "pingpong", sz)
                        .and_then(|r| r.rtt_ns)
                        .map_or("–".into(), |s| ms(s.p50 as f64)),
                );
            }
            line
        })
        .collect();
    Grid {
        title: "Once the processes exist (ipclab pingpong): median round trip, unpinned".into(),
        header: vec!["family", "mechanism", "12 B", "4 MiB"],
        body,
    }
}

/// Which mechanisms, the payload, and how this differs from the post.
pub fn method_notes(seed: &Seed) -> Vec<String> {
    let mut out = Vec::new();
    for (name, family, why) in CHOSEN {
        let state = seed
            .missing
            .iter()
            .find(|m| m.mechanism == name)
            .map_or(String::new(), |m| format!(" — NOT MEASURED: {}", m.reason));
        out.push(format!("{name} ({family}): {why}{state}."));
    }
    out.push(format!(
        "Payload: the post's 4 MB came from /dev/urandom, inside what time(1) timed (reading \
         4 MiB from /dev/urandom takes {} here, median of 5); ipclab sends its own pattern \
         instead, written in place and checked byte by byte on arrival, so its figures leave \
         that read out. \"Hello World\" with its NUL is 12 bytes; 4 MiB is 4,194,304.",
        ms(seed.urandom_4mib_ns.p50 as f64)
    ));
    out.push(
        "Differences: ipclab's oneshot sends the bytes both ways (request and reply), the post \
         sent its data one way; time(1) also counted starting the program (exec and loading), \
         which ipclab's fork from a running process does not; the post's Mach message passed \
         4 MB out of line, copy-on-write, without copying, while every mechanism here copies."
            .into(),
    );
    for f in &seed.failures {
        out.push(format!(
            "FAILED {} {} {}: {}",
            f.mechanism,
            f.pattern,
            size(f.size),
            f.error
        ));
    }
    if !seed.complete {
        out.push("Interrupted: these are the cells measured before it stopped.".into());
    }
    out
}

/// The fastest measured row of a family, by median.
fn best<'a>(seed: &'a Seed, family: &str, pattern: &str, sz: usize) -> Option<&'a Row> {
    CHOSEN
        .iter()
        .filter(|(_, f, _)| *f == family)
        .filter_map(|(name, _, _)| seed.row(name, pattern, sz))
        .min_by_key(|r| median(r))
}

fn median(r: &Row) -> u64 {
    r.oneshot_ns.or(r.rtt_ns).map_or(u64::MAX, |s| s.p50)
}

/// One comparison: "sysv-mq (1.20 ms) is 1.5× faster than sysv-shm (1.80 ms)".
fn versus(a: &Row, b: &Row) -> String {
    let (fast, slow) = if median(a) <= median(b) {
        (a, b)
    } else {
        (b, a)
    };
    let (f, s) = (median(fast) as f64, median(slow) as f64);
    let ratio = s / f.max(1.0);
    if ratio < 1.1 {
        format!(
            "{} ({}) and {} ({}) are within 10 % of each other",
            fast.mechanism,
            ms(f),
            slow.mechanism,
            ms(s)
        )
    } else {
        format!(
            "{} ({}) is {ratio:.1}× faster than {} ({})",
            fast.mechanism,
            ms(f),
            slow.mechanism,
            ms(s)
        )
    }
}

/// "What the two tables say", from the figures measured.
pub fn explanation(seed: &Seed) -> Vec<String> {
    let mut out = vec![
        "The post's two rows lie within 2 ms of each other: message passing came out 2 ms \
         faster for \"Hello World\" and 1 ms slower for 4 MB, and the author read them as \
         roughly equivalent."
            .to_string(),
    ];
    let pick = |pattern: &str, sz: usize| {
        (
            best(seed, "message passing", pattern, sz),
            best(seed, "shared memory", pattern, sz),
        )
    };
    let (Some(_), Some(_)) = pick("oneshot", SIZES[0]) else {
        out.push(
            "Message passing and shared memory could not both be measured here (see the \
             mechanisms above), so this run cannot compare them."
                .into(),
        );
        return out;
    };
    let mut fresh = String::from("Timed as the post did, on this machine:");
    for sz in SIZES {
        if let (Some(mp), Some(sm)) = pick("oneshot", sz) {
            let _ = write!(fresh, " at {}, {};", size(sz), versus(mp, sm));
        }
    }
    let fastest_small = pick("oneshot", SIZES[0])
        .0
        .into_iter()
        .chain(pick("oneshot", SIZES[0]).1)
        .map(median)
        .min()
        .unwrap_or(u64::MAX);
    let alone = seed.processes_alone_ns.p50;
    let _ = write!(
        fresh,
        " forking the two processes and reaping them, with no IPC at all, already takes {} \
         ({:.0} % of the fastest 12-byte run): at 12 bytes this experiment mostly times process \
         creation rather than IPC, a likely reason why the post's two rows came out so close.",
        ms(alone as f64),
        100.0 * alone as f64 / fastest_small.max(1) as f64
    );
    out.push(fresh);
    if let (Some(mp), Some(sm)) = pick("pingpong", SIZES[0]) {
        let mut warm = format!(
            "Once the processes exist, a 12-byte round trip costs microseconds: {}",
            versus(mp, sm)
        );
        if let (Some(mp), Some(sm)) = pick("pingpong", SIZES[1]) {
            let _ = write!(
                warm,
                "; at 4 MiB, where copying the bytes dominates, {}",
                versus(mp, sm)
            );
        }
        warm.push_str(
            ". Those differences are what \"the fastest form of IPC\" is about, and a time(1) \
             of a whole program, dominated by fork, exec and exit, cannot show them; `ipclab \
             run --report DIR` compares every mechanism that way.",
        );
        out.push(warm);
    }
    out
}

/// The whole terminal output.
pub fn render(seed: &Seed) -> String {
    let mut out = String::from(
        "ipclab seed: the experiment of \"Benchmarking message passing and shared memory on \
         macOS\" (March 2017), on this machine\n",
    );
    for g in [blog_grid(), oneshot_grid(seed), warm_grid(seed)] {
        let _ = write!(out, "\n{}\n{}\n", g.title, styled(&g, false));
    }
    out.push('\n');
    for line in method_notes(seed) {
        let _ = writeln!(out, "- {line}");
    }
    out.push_str("\nWhat the two tables say\n");
    for p in explanation(seed) {
        let _ = writeln!(out, "\n{p}");
    }
    out
}

/// Writes `seed.json` and `index.html` into `dir`; returns the page's path.
pub fn write(dir: &Path, seed: &Seed) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut json = serde_json::to_string_pretty(seed).expect("a Seed always serialises");
    json.push('\n');
    write_atomically(&dir.join("seed.json"), &json)?;
    let index = dir.join("index.html");
    write_atomically(&index, &page(seed))?;
    Ok(index)
}

fn page(seed: &Seed) -> String {
    let m = &seed.machine;
    let title = "ipclab seed: message passing against shared memory, as in the post";
    let mut page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n\
         <p>The experiment of “Benchmarking message passing and shared memory on macOS” \
         (March 2017), run by ipclab {} on {} ({} CPUs, {}, {}) at {}.</p>\n",
        escape(&seed.ipclab_version),
        escape(&m.cpu_model),
        m.cpu_count,
        if m.virtualised {
            "virtual machine"
        } else {
            "bare metal"
        },
        escape(&m.kernel),
        escape(&seed.started_at),
    );
    for g in [blog_grid(), oneshot_grid(seed), warm_grid(seed)] {
        grid(&mut page, &g);
    }
    page.push_str("<h2>How it was measured</h2>\n<ul>\n");
    for line in method_notes(seed) {
        let _ = writeln!(page, "<li>{}</li>", escape(&line));
    }
    page.push_str("</ul>\n<h2>What the two tables say</h2>\n");
    for p in explanation(seed) {
        let _ = writeln!(page, "<p>{}</p>", escape(&p));
    }
    page.push_str(
        "<p class=\"note\">All figures: seed.json beside this page (rows as in a run's \
         JSON).</p>\n</body>\n</html>\n",
    );
    page
}
