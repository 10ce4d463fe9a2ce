//! The JSON export: the [`Run`] as it is (schema in the README).

use anyhow::{Context, Result, bail};

use crate::results::{Run, SCHEMA};

pub fn render(run: &Run) -> String {
    let mut s = serde_json::to_string_pretty(run).expect("a Run always serialises");
    s.push('\n');
    s
}

/// Reads a run written by [`render`], refusing other schema versions.
pub fn parse(text: &str, what: &str) -> Result<Run> {
    let value: serde_json::Value =
        serde_json::from_str(text).with_context(|| format!("{what} is not valid JSON"))?;
    match value.get("schema").and_then(|s| s.as_u64()) {
        Some(v) if v == SCHEMA as u64 => {}
        Some(v) => bail!("{what} has schema version {v}; this ipclab reads version {SCHEMA}"),
        None => bail!("{what} is not an ipclab result file (no schema version)"),
    }
    serde_json::from_value(value).with_context(|| format!("{what} does not match schema {SCHEMA}"))
}
