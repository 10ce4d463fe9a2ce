//! `ipclab compare OLD.json NEW.json`: row by row, what got faster or slower.
//!
//! Rows match on (mechanism, pattern, size, condition: placement, pairs,
//! offered rate). The figure compared
//! is the one the tables lead with: the median round trip (pingpong), the
//! median fork-to-reap time (oneshot), throughput (stream). When both rows
//! carry a 95 % interval from repetitions (schema 2), a change is real
//! when the intervals do not overlap. Otherwise (schema 1, or
//! `--repeat 1`) a change is called real only when it is larger than the
//! spread of both runs: the
//! distance from median to p90, relative to the median, for latencies, and
//! a fixed 10 % for throughput (a stream cell yields one figure, no spread);
//! never less than 5 %.

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

use anyhow::{Result, anyhow, bail};
use comfy_table::{CellAlignment, Table};
use rustix::fs::{FileType, Mode, OFlags};
use serde::Serialize;

use crate::results::{Row, Run};
use crate::units::{duration, rate, size};

/// The largest result file `compare` reads: a run of every mechanism,
/// pattern, size and placement is a few MiB. A file of this size takes
/// about 210 MiB and a second to compare (measured with 150,000 rows).
pub const MAX_FILE: u64 = 64 << 20;

/// Reads the run in `path`: a regular file of at most [`MAX_FILE`] bytes
/// (see [`parse`]). A FIFO, a device or a directory is refused without
/// being read (opened non-blocking, so a FIFO without a writer cannot
/// hold us).
pub fn load(path: &Path) -> Result<Run> {
    let what = path.display().to_string();
    let cannot = |e: &dyn std::fmt::Display| anyhow!("cannot read {what}: {e}");
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| cannot(&e))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| cannot(&e))?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => {}
        FileType::Directory => return Err(cannot(&"it is a directory")),
        _ => return Err(cannot(&"it is not a regular file")),
    }
    let bytes = read_bounded(&mut std::fs::File::from(fd), &what)?;
    parse(&bytes, &what)
}

/// Everything `input` holds, refused past [`MAX_FILE`] bytes: at most one
/// byte more is read, whatever a `stat` said (a file may grow).
pub fn read_bounded(input: &mut dyn Read, what: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    input
        .take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| anyhow!("cannot read {what}: {e}"))?;
    if bytes.len() as u64 > MAX_FILE {
        bail!(
            "cannot read {what}: it is larger than {}, the most compare reads",
            size(MAX_FILE as usize)
        );
    }
    Ok(bytes)
}

/// A run from the bytes of a result file (`what` names it in errors): UTF-8,
/// JSON of this schema ([`super::json::parse`]), and no two rows for the
/// same mechanism, pattern, size and placement.
pub fn parse(bytes: &[u8], what: &str) -> Result<Run> {
    let text = std::str::from_utf8(bytes).map_err(|e| anyhow!("cannot read {what}: {e}"))?;
    let run = super::json::parse(text, what)?;
    let mut seen = HashSet::new();
    for r in &run.rows {
        if !seen.insert(key(r)) {
            bail!("{what} has two rows for {}", label(r));
        }
    }
    Ok(run)
}

/// The least change ever called real.
const FLOOR: f64 = 0.05;
/// The noise assumed for throughput, which has no spread of its own.
const THROUGHPUT_NOISE: f64 = 0.10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Faster,
    Slower,
    Same,
}

/// One matched row.
#[derive(Clone, Debug, Serialize)]
pub struct Change {
    pub mechanism: String,
    pub pattern: String,
    pub size: usize,
    /// Placement, and pairs and offered rate where not 1 and closed loop
    /// (`Row::condition`).
    pub condition: String,
    pub old: f64,
    pub new: f64,
    /// NEW / OLD of the figure (time or throughput).
    pub ratio: f64,
    /// How much slower NEW is, as a fraction (negative when faster).
    pub slowdown: f64,
    /// The change below which the verdict is `Same`; with intervals, the
    /// wider of the two rows' 95 % intervals (relative).
    pub noise: f64,
    /// Whether the verdict comes from the two rows' 95 % intervals
    /// (`same` when they overlap) rather than from their spread.
    pub intervals: bool,
    pub verdict: Verdict,
}

/// The whole comparison.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Comparison {
    pub changes: Vec<Change>,
    /// Rows of OLD with no match in NEW, as `mechanism pattern size condition`.
    pub only_old: Vec<String>,
    pub only_new: Vec<String>,
}

fn key(r: &Row) -> crate::pooled::Key {
    crate::pooled::key(r)
}

fn label(r: &Row) -> String {
    format!(
        "{} {} {} {}",
        r.mechanism,
        r.pattern,
        size(r.size),
        r.condition()
    )
}

/// The figure compared, whether lower is better, and its relative spread.
fn figure(r: &Row) -> Option<(f64, bool, f64)> {
    let latency = |s: &crate::stats::Stats| {
        let p50 = s.p50.max(1) as f64;
        (p50, true, (s.p90 as f64 - p50).max(0.0) / p50)
    };
    if let Some(s) = &r.rtt_ns {
        Some(latency(s))
    } else if let Some(s) = &r.oneshot_ns {
        Some(latency(s))
    } else {
        r.throughput
            .map(|t| (t.bytes_per_s, false, THROUGHPUT_NOISE))
    }
}

pub fn compare(old: &Run, new: &Run) -> Comparison {
    let mut out = Comparison::default();
    for o in &old.rows {
        let Some(n) = new.rows.iter().find(|n| key(n) == key(o)) else {
            out.only_old.push(label(o));
            continue;
        };
        let (Some((a, lower_better, sa)), Some((b, _, sb))) = (figure(o), figure(n)) else {
            continue;
        };
        let ratio = if a > 0.0 { b / a } else { f64::INFINITY };
        // Slowdown as a fraction of the old time, whichever the figure.
        let slowdown = if lower_better {
            ratio - 1.0
        } else {
            1.0 / ratio - 1.0
        };
        // With intervals on both sides (schema 2, --repeat 2 or more), a
        // change is real when they do not overlap; otherwise the spread.
        let intervals = match (o.ci95, n.ci95, o.figure(), n.figure()) {
            (Some(ci_o), Some(ci_n), Some(fo), Some(fn_)) => Some((
                ci_o.overlaps(&ci_n),
                ci_o.relative(fo).max(ci_n.relative(fn_)),
            )),
            _ => None,
        };
        let (noise, verdict) = match intervals {
            Some((overlap, width)) => (
                width,
                match (overlap, slowdown > 0.0) {
                    (true, _) => Verdict::Same,
                    (false, true) => Verdict::Slower,
                    (false, false) => Verdict::Faster,
                },
            ),
            None => {
                let noise = sa.max(sb).max(FLOOR);
                let verdict = if slowdown > noise {
                    Verdict::Slower
                } else if slowdown < -noise / (1.0 + noise) {
                    Verdict::Faster
                } else {
                    Verdict::Same
                };
                (noise, verdict)
            }
        };
        out.changes.push(Change {
            mechanism: o.mechanism.clone(),
            pattern: o.pattern.clone(),
            size: o.size,
            condition: o.condition(),
            old: a,
            new: b,
            ratio,
            slowdown,
            noise,
            intervals: intervals.is_some(),
            verdict,
        });
    }
    for n in &new.rows {
        if !old.rows.iter().any(|o| key(o) == key(n)) {
            out.only_new.push(label(n));
        }
    }
    out
}

impl Comparison {
    /// Rows that got slower by more than `pct` percent (and more than the noise).
    pub fn slower_than(&self, pct: f64) -> Vec<&Change> {
        self.changes
            .iter()
            .filter(|c| c.verdict == Verdict::Slower && c.slowdown * 100.0 > pct)
            .collect()
    }

    pub fn render(&self) -> String {
        let mut t = Table::new();
        t.load_preset(super::table::PLAIN);
        t.set_header([
            "mechanism",
            "pattern",
            "size",
            "condition",
            "old",
            "new",
            "new/old",
            "noise",
            "verdict",
        ]);
        for c in &self.changes {
            let show = |v: f64| {
                if c.pattern == "stream" {
                    rate(v)
                } else {
                    duration(v)
                }
            };
            t.add_row([
                c.mechanism.clone(),
                c.pattern.clone(),
                size(c.size),
                c.condition.clone(),
                show(c.old),
                show(c.new),
                format!("{:.2}", c.ratio),
                if c.intervals {
                    format!("±{:.0} % (95 % CI)", c.noise * 100.0)
                } else {
                    format!("±{:.0} %", c.noise * 100.0)
                },
                match c.verdict {
                    Verdict::Faster => "faster".into(),
                    Verdict::Slower => format!("SLOWER by {:.0} %", c.slowdown * 100.0),
                    Verdict::Same => "same".into(),
                },
            ]);
        }
        for i in 2..t.column_count() {
            if let Some(col) = t.column_mut(i) {
                col.set_cell_alignment(CellAlignment::Right);
            }
        }
        let mut out = format!(
            "Figures: median round trip (pingpong), median fork-to-reap (oneshot), throughput (stream).\n{t}\n"
        );
        let count = |v: Verdict| self.changes.iter().filter(|c| c.verdict == v).count();
        out.push_str(&format!(
            "{} faster, {} slower, {} same within noise\n",
            count(Verdict::Faster),
            count(Verdict::Slower),
            count(Verdict::Same)
        ));
        for r in &self.only_old {
            out.push_str(&format!("only in OLD: {r}\n"));
        }
        for r in &self.only_new {
            out.push_str(&format!("only in NEW: {r}\n"));
        }
        out
    }
}
