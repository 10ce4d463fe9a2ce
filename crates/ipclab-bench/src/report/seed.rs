//! What `ipclab seed` prints and writes: the post's table beside this
//! machine's, and what the two say.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::html::{STYLE, escape, grid};
use super::table::{Grid, styled};
use super::write_atomically;
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
            match seed.fresh(name, sz) {
                Some(f) => line.extend([ms(f.total_ns.mean), ms(f.total_ns.p50 as f64)]),
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
             round trip, exit, reap; {} runs each in {} interleaved rounds, unpinned, every \
             byte checked",
            seed.runs, seed.rounds
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
                    seed.warm(name, sz)
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

/// A measured figure: a mechanism, its median and its mean.
struct Figure<'a> {
    mechanism: &'a str,
    median_ns: u64,
    mean_ns: f64,
}

/// The fastest mechanism of a family, by median: fresh processes or warm.
fn best<'a>(seed: &'a Seed, family: &str, warm: bool, sz: usize) -> Option<Figure<'a>> {
    CHOSEN
        .iter()
        .filter(|(_, f, _)| *f == family)
        .filter_map(|(name, _, _)| {
            let stats = if warm {
                seed.warm(name, sz)?.rtt_ns?
            } else {
                seed.fresh(name, sz)?.total_ns
            };
            Some(Figure {
                mechanism: name,
                median_ns: stats.p50,
                mean_ns: stats.mean,
            })
        })
        .min_by_key(|f| f.median_ns)
}

/// One comparison: "sysv-mq (1.20 ms) is 1.5× faster than sysv-shm (1.80
/// ms)", said only when the medians and the means agree.
fn versus(a: &Figure, b: &Figure) -> String {
    let (fast, slow) = if a.median_ns <= b.median_ns {
        (a, b)
    } else {
        (b, a)
    };
    let (f, s) = (fast.median_ns as f64, slow.median_ns as f64);
    let by_median = s / f.max(1.0);
    let by_mean = slow.mean_ns / fast.mean_ns.max(1.0);
    if by_median < 1.1 {
        format!(
            "{} ({}) and {} ({}) are within 10 % of each other",
            fast.mechanism,
            ms(f),
            slow.mechanism,
            ms(s)
        )
    } else if by_mean < 1.1 {
        format!(
            "{} has the lower median ({} against {} for {}) but not a clearly lower mean ({} \
             against {}): the runs vary too much here to call it",
            fast.mechanism,
            ms(f),
            ms(s),
            slow.mechanism,
            ms(fast.mean_ns),
            ms(slow.mean_ns)
        )
    } else {
        format!(
            "{} ({}) is {by_median:.1}× faster than {} ({})",
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
    let pick = |warm: bool, sz: usize| {
        (
            best(seed, "message passing", warm, sz),
            best(seed, "shared memory", warm, sz),
        )
    };
    let (Some(_), Some(_)) = pick(false, SIZES[0]) else {
        out.push(
            "Message passing and shared memory could not both be measured here (see the \
             mechanisms above), so this run cannot compare them."
                .into(),
        );
        return out;
    };
    let mut fresh = String::from("Timed as the post did, on this machine (medians):");
    for sz in SIZES {
        if let (Some(mp), Some(sm)) = pick(false, sz) {
            let _ = write!(fresh, " at {}, {};", size(sz), versus(&mp, &sm));
        }
    }
    let (mp, sm) = pick(false, SIZES[0]);
    let fastest_small = mp.into_iter().chain(sm).map(|f| f.median_ns).min();
    let alone = seed.processes_alone_ns.p50;
    let share = 100.0 * alone as f64 / fastest_small.unwrap_or(u64::MAX).max(1) as f64;
    let _ = write!(
        fresh,
        " forking the two processes and reaping them, with no IPC at all, takes {} ({share:.0} \
         % of the fastest 12-byte run)",
        ms(alone as f64),
    );
    fresh.push_str(if share >= 50.0 {
        ": at 12 bytes this experiment mostly times process creation rather than IPC, a likely \
         reason why the post's two rows came out so close."
    } else {
        "."
    });
    out.push(fresh);
    if let (Some(mp), Some(sm)) = pick(true, SIZES[0]) {
        let mut warm = format!(
            "Once the processes exist (medians of round trips): at 12 B, {}",
            versus(&mp, &sm)
        );
        if let (Some(mp), Some(sm)) = pick(true, SIZES[1]) {
            let _ = write!(warm, "; at 4 MiB, {}", versus(&mp, &sm));
        }
        warm.push_str(
            ". Those differences are what \"the fastest form of IPC\" is about; a time(1) of a \
             whole program, which also pays for fork, exec and exit, blurs them. `ipclab run \
             --report DIR` compares every mechanism that way.",
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
    write_atomically(&dir.join("seed.json"), json.as_bytes())?;
    let index = dir.join("index.html");
    write_atomically(&index, page(seed).as_bytes())?;
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
        "<p class=\"note\">All figures: seed.json beside this page.</p>\n</body>\n</html>\n",
    );
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(mechanism: &str, median_ns: u64, mean_ns: f64) -> Figure<'_> {
        Figure {
            mechanism,
            median_ns,
            mean_ns,
        }
    }

    #[test]
    fn a_verdict_needs_the_median_and_the_mean_to_agree() {
        let said = versus(&fig("a", 2_000_000, 2e6), &fig("b", 1_000_000, 1e6));
        assert_eq!(said, "b (1.00 ms) is 2.0× faster than a (2.00 ms)");
        let said = versus(&fig("a", 1_000_000, 1e6), &fig("b", 1_050_000, 1.05e6));
        assert!(said.contains("within 10 %"), "{said}");
        // Bimodal runs: the medians differ, the means hardly.
        let said = versus(&fig("a", 1_000_000, 2.5e6), &fig("b", 3_000_000, 2.6e6));
        assert!(said.contains("vary too much"), "{said}");
    }
}
