//! The client host's side of a remote cell, run by the cell's supervisor
//! (`ipclab __cell` with a [`RemoteSpec`]): asks the server for its half,
//! forks the client side against it, and puts the two sides' reports
//! together.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use super::control::{self, Msg};
use super::window::ClientWindow;
use super::{OneHalf, RemoteSpec};
use crate::harness::clock::mono_ns;
use crate::harness::sides;
use crate::harness::spec::{CellOutcome, CellSpec, Pattern, SideReport};
use crate::harness::supervisor::{Role, fork_side, side_main, wait_all};
use crate::transport::{Pair, Transport};

/// How long the server may take to report once the client side ended: it
/// sees the end of the channel at once, or its peer's death within the
/// local supervisor's grace.
const REPORT_GRACE: Duration = Duration::from_secs(5);

/// Runs one pingpong or stream cell with its server side on `remote`.
pub fn run(
    spec: &CellSpec,
    remote: &RemoteSpec,
    transport: &dyn Transport,
    stop: &AtomicBool,
) -> Result<CellOutcome> {
    let cross = transport.cross_host().ok_or_else(|| {
        anyhow!(
            "{} cannot cross hosts (it has no remote mode)",
            spec.mechanism
        )
    })?;
    if spec.pattern == Pattern::Oneshot || spec.pairs > 1 {
        bail!("a remote cell is one pair, pingpong or stream");
    }
    let timeout = Duration::from_nanos(spec.timeout_ns);
    let start = mono_ns();
    let mut conn = control::handshake(&remote.address, &remote.token, &remote.run, timeout)?;
    conn.send(
        &Msg::Cell {
            spec: Box::new(spec.clone()),
        },
        timeout,
    )?;
    let reach = match conn.recv(timeout)? {
        Msg::Ready { reach } => reach,
        Msg::Failed { error } => bail!("the server at {}: {error}", remote.address),
        other => bail!(
            "the server at {} answered a cell with {other:?}",
            remote.address
        ),
    };
    let half = cross
        .dial(&reach, &spec.channel)
        .with_context(|| format!("{}: what the server reported", spec.mechanism))?;
    let cpu = spec.cpus.as_ref().and_then(|c| c.first()).map(|&(c, _)| c);
    let supervisor = rustix::process::getpid();
    let control = conn.stream();
    let mut half = Some(half);
    let child = fork_side(Role::Client, 0, |report| {
        let pair: Box<dyn Pair> = Box::new(OneHalf(half.take().expect("taken once")));
        let window = ClientWindow { control };
        side_main(spec, Role::Client, cpu, pair, &window, report, supervisor)
    })?;
    // Our copy of the client's half goes: the side holds the only one.
    drop(half);
    let mut children = [child];
    let waited = wait_all(spec, &mut children, stop, None);
    let client = children[0].report_or_death();
    waited?;
    let server = match conn.recv(REPORT_GRACE) {
        Ok(Msg::Report { server }) => *server,
        Ok(Msg::Failed { error }) => SideReport {
            error: Some(format!("the server side at {}: {error}", remote.address)),
            ..Default::default()
        },
        Ok(other) => bail!(
            "the server at {} sent {other:?} instead of its report",
            remote.address
        ),
        Err(e) => SideReport {
            error: Some(format!(
                "no report from the server at {}: {e:#}",
                remote.address
            )),
            ..Default::default()
        },
    };
    let errors: Vec<&str> = [&client, &server]
        .iter()
        .filter_map(|r| r.error.as_deref())
        .collect();
    if !errors.is_empty() {
        bail!(errors.join("; "));
    }
    let outcome = CellOutcome {
        setup_ns: client.attached_at_ns.saturating_sub(start),
        teardown_ns: client.teardown_ns.max(server.teardown_ns),
        client,
        server,
        ..Default::default()
    };
    sides::check_counts(spec, &outcome.client, &outcome.server)?;
    Ok(outcome)
}
