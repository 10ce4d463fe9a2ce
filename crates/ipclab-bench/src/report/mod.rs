//! Everything a run writes: the terminal table, the export files, and the
//! report folder (plots and `index.html`).
//!
//! Each export is a function of the whole [`Run`] so far, and files are
//! rewritten after every cell: an interrupted run keeps what it measured.
//! The report is drawn once, at the end of the run (also after Ctrl-C).

pub mod chart;
pub mod compare;
pub mod csv;
pub mod files;
pub mod html;
pub mod json;
pub mod load_plots;
pub mod markdown;
pub mod plot;
pub mod seed;
pub mod spinning;
pub mod summary;
pub mod table;
#[cfg(test)]
pub(crate) mod test_rows;

pub use files::write_atomically;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::results::Run;

/// The export files asked for on the command line; a path of `-`
/// ([`STDOUT`]) is standard output.
#[derive(Clone, Debug, Default)]
pub struct Exports {
    pub json: Option<PathBuf>,
    pub csv: Option<PathBuf>,
    pub markdown: Option<PathBuf>,
}

/// The path that means standard output.
pub const STDOUT: &str = "-";

fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == STDOUT
}

impl Exports {
    /// Checks that every file can be written, before anything runs (see
    /// [`files::check_writable`]: nothing or a regular file at the path, a
    /// temporary file can be made beside it), and that at most one export
    /// goes to standard output. Leaves nothing behind.
    pub fn check_writable(&self) -> Result<()> {
        if self.exports().filter(|(p, _)| is_stdout(p)).count() > 1 {
            anyhow::bail!("only one of --json, --csv and --markdown can go to standard output (-)");
        }
        for (path, _) in self.exports().filter(|(p, _)| !is_stdout(p)) {
            files::check_writable(path)?;
        }
        Ok(())
    }

    /// Each export asked for, with what renders it.
    fn exports(&self) -> impl Iterator<Item = (&Path, fn(&Run) -> Result<String>)> {
        let renderers: [fn(&Run) -> Result<String>; 3] = [
            |run| Ok(json::render(run)),
            csv::render,
            |run| Ok(markdown::render(run)),
        ];
        [&self.json, &self.csv, &self.markdown]
            .into_iter()
            .zip(renderers)
            .filter_map(|(p, render)| p.as_deref().map(|p| (p, render)))
    }

    /// Writes every file from the run so far (an export to standard output
    /// waits for [`Exports::for_stdout`], at the end).
    pub fn write(&self, run: &Run) -> Result<()> {
        for (path, render) in self.exports().filter(|(p, _)| !is_stdout(p)) {
            files::write_atomically(path, render(run)?.as_bytes())?;
        }
        Ok(())
    }

    /// The export that goes to standard output, rendered from the whole
    /// run, if one does.
    pub fn for_stdout(&self, run: &Run) -> Result<Option<String>> {
        self.exports()
            .find(|(p, _)| is_stdout(p))
            .map(|(_, render)| render(run))
            .transpose()
    }
}

/// Writes the report folder: `<plot>.svg` and `<plot>.png` for every plot,
/// and `index.html`, a self-contained page; returns the page's path.
/// `cdf_size` picks the size of the distribution plot (default: the median
/// size measured).
pub fn write_report(dir: &Path, run: &Run, cdf_size: Option<usize>) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let charts = plot::charts(run, cdf_size);
    let svgs = plot::write(dir, &charts)?;
    let index = dir.join("index.html");
    write_atomically(&index, html::render(run, &charts, &svgs).as_bytes())?;
    Ok(index)
}
