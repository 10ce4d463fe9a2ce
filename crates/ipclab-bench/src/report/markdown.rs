//! The Markdown export: the machine, then the same tables as the terminal.

use crate::results::Run;

use super::table::{Titled, notes, tables};

pub fn render(run: &Run) -> String {
    let m = &run.machine;
    let mut out = format!(
        "# ipclab {} — {}\n\n{} · {} CPUs ({}) · {} · clock {}\n",
        run.ipclab_version,
        run.started_at,
        m.cpu_model,
        m.cpu_count,
        if m.virtualised {
            "virtual machine"
        } else {
            "bare metal"
        },
        m.kernel,
        m.clock_source,
    );
    for Titled { title, table } in tables(run, true) {
        out.push_str(&format!("\n## {title}\n\n{table}\n"));
    }
    out.push_str(
        &notes(run)
            .lines()
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
    );
    out
}
