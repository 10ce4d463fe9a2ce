//! Everything a run writes: the terminal table, the export files, and the
//! report folder (plots and `index.html`).
//!
//! Each export is a function of the whole [`Run`] so far, and files are
//! rewritten after every cell: an interrupted run keeps what it measured.
//! The report is drawn once, at the end of the run (also after Ctrl-C).

pub mod chart;
pub mod compare;
pub mod csv;
pub mod html;
pub mod json;
pub mod markdown;
pub mod plot;
pub mod seed;
pub mod summary;
pub mod table;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::results::Run;

/// The export files asked for on the command line.
#[derive(Clone, Debug, Default)]
pub struct Exports {
    pub json: Option<PathBuf>,
    pub csv: Option<PathBuf>,
    pub markdown: Option<PathBuf>,
}

impl Exports {
    /// Checks that every file can be written, before anything runs: not a
    /// directory, and its temporary sibling (see [`write_atomically`]) can
    /// be made. Leaves nothing behind.
    pub fn check_writable(&self) -> Result<()> {
        for path in self.paths() {
            if path.is_dir() {
                anyhow::bail!("cannot write {}: it is a directory", path.display());
            }
            let tmp = tmp_path(path);
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&tmp)
                .and_then(|_| std::fs::remove_file(&tmp))
                .with_context(|| {
                    format!(
                        "cannot write {} (its temporary file {} cannot be made)",
                        path.display(),
                        tmp.display()
                    )
                })?;
        }
        Ok(())
    }

    fn paths(&self) -> impl Iterator<Item = &Path> {
        [&self.json, &self.csv, &self.markdown]
            .into_iter()
            .flatten()
            .map(|p| p.as_path())
    }

    /// Writes every file from the run so far.
    pub fn write(&self, run: &Run) -> Result<()> {
        if let Some(p) = &self.json {
            write_atomically(p, &json::render(run))?;
        }
        if let Some(p) = &self.csv {
            write_atomically(p, &csv::render(run)?)?;
        }
        if let Some(p) = &self.markdown {
            write_atomically(p, &markdown::render(run))?;
        }
        Ok(())
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
    write_atomically(&index, &html::render(run, &charts, &svgs))?;
    Ok(index)
}

/// Writes through a temporary file and a rename, so that a reader (or a
/// crash) never sees half a file.
/// `PATH.tmp`, where a file is written before it is renamed into place.
fn tmp_path(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    PathBuf::from(tmp)
}

pub fn write_atomically(path: &Path, content: &str) -> Result<()> {
    let tmp = tmp_path(path);
    std::fs::write(&tmp, content).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}
