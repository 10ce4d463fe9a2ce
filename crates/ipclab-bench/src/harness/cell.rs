//! Starting a supervisor for one cell, from the orchestrating process.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::{Context, Result, anyhow};

use super::remote::RemoteSpec;
use super::spec::{CellOutcome, CellRequest, CellSpec};
use super::supervisor::stopped_by;

/// The supervisor running now, for forwarding a stop request to it.
static CURRENT: AtomicI32 = AtomicI32::new(0);
/// The signal that asked the run to stop, 0 until one did; the first one
/// noted wins (SeqCst, like `CURRENT`: the handler thread and the run's
/// thread read and write both).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

fn note_signal(signal: i32) {
    // Failure means another signal came first: it is the one reported.
    let _ = SIGNAL.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
}

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
            for signal in signals.forever() {
                note_signal(signal);
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
    stop_signal().is_some()
}

/// The signal (SIGINT or SIGTERM) that asked the run to stop: the run's
/// exit status is 128 plus it.
pub fn stop_signal() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Runs one cell in a fresh supervisor process started from `exe` (the
/// `ipclab` binary).
pub fn run_cell(exe: &Path, spec: &CellSpec) -> Result<CellOutcome> {
    let spec_json = serde_json::to_vec(spec).expect("a CellSpec always serialises");
    supervise(exe, &spec_json)
}

/// Runs one cell whose server side runs under `ipclab serve` at `remote`.
pub fn run_remote_cell(exe: &Path, spec: &CellSpec, remote: &RemoteSpec) -> Result<CellOutcome> {
    let request = CellRequest {
        spec: spec.clone(),
        remote: Some(remote.clone()),
    };
    let json = serde_json::to_vec(&request).expect("a CellRequest always serialises");
    supervise(exe, &json)
}

fn supervise(exe: &Path, spec_json: &[u8]) -> Result<CellOutcome> {
    let mut child = Command::new(exe)
        .arg("__cell")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    CURRENT.store(child.id() as i32, Ordering::SeqCst);
    let written = child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(spec_json);
    let output = child.wait_with_output();
    CURRENT.store(0, Ordering::SeqCst);
    let output = output.context("waiting for the cell's supervisor")?;
    written.context("handing the cell to its supervisor")?;
    if let Some(signal) = stopped_by(output.status.code()) {
        // The supervisor may see Ctrl-C before our own handler runs.
        note_signal(signal);
    }
    if stopped() {
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
