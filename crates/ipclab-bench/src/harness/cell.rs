//! Starting a supervisor for one cell, from the orchestrating process.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use anyhow::{Context, Result, anyhow};

use super::spec::{CellOutcome, CellSpec};
use super::supervisor::INTERRUPTED;

/// The supervisor running now, for forwarding a stop request to it.
static CURRENT: AtomicI32 = AtomicI32::new(0);
static STOPPED: AtomicBool = AtomicBool::new(false);

/// Catches Ctrl-C and SIGTERM once, for the whole run: the running
/// supervisor is told to stop (it kills its sides and removes the channel),
/// and [`stopped`] turns true so that the run ends after this cell.
pub fn handle_interrupts() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
            return;
        };
        std::thread::spawn(move || {
            for _ in signals.forever() {
                STOPPED.store(true, Ordering::SeqCst);
                let pid = CURRENT.load(Ordering::SeqCst);
                if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                }
            }
        });
    });
}

/// Whether Ctrl-C or SIGTERM asked the run to stop.
pub fn stopped() -> bool {
    STOPPED.load(Ordering::SeqCst)
}

/// Runs one cell in a fresh supervisor process started from `exe` (the
/// `ipclab` binary).
pub fn run_cell(exe: &Path, spec: &CellSpec) -> Result<CellOutcome> {
    let mut child = Command::new(exe)
        .arg("__cell")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    CURRENT.store(child.id() as i32, Ordering::SeqCst);
    let spec_json = serde_json::to_vec(spec).expect("a CellSpec always serialises");
    let written = child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(&spec_json);
    let output = child.wait_with_output();
    CURRENT.store(0, Ordering::SeqCst);
    let output = output.context("waiting for the cell's supervisor")?;
    written.context("handing the cell to its supervisor")?;
    if output.status.code() == Some(INTERRUPTED) || stopped() {
        // The supervisor may see Ctrl-C before our own handler runs.
        STOPPED.store(true, Ordering::SeqCst);
        return Err(anyhow!("interrupted"));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let outcome: CellOutcome = serde_json::from_str(text.trim()).map_err(|_| {
        anyhow!(
            "the cell's supervisor died without a result ({})",
            output.status
        )
    })?;
    match outcome.error {
        Some(e) => Err(anyhow!(e)),
        None => Ok(outcome),
    }
}
