//! One cell's server side under `ipclab serve`, in a process of its own.
//!
//! `serve`'s loop forks it for a `cell` message and goes on answering
//! everyone else (`busy` to another run) while it runs. It is forked from
//! the loop, which is single-threaded and stays so: whatever a mechanism
//! starts to bind its half (a runtime's threads) lives and dies in this
//! process. It binds the half, answers `ready`, forks the side and
//! watches it with the cell's watchdog, capped by the server's own limit
//! (`serve --timeout`: a client's `timeout_ns` can only shorten it), and
//! sends the report.

use std::net::TcpStream;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Result, anyhow};
use rustix::process::{Pid, Signal};

use super::OneHalf;
use super::control::{Conn, Msg};
use super::serve::{ServeOptions, cross_host_names};
use super::window::ServerWindow;
use crate::harness::spec::{CellSpec, Pattern, SideReport};
use crate::harness::supervisor::{Role, fork_side, side_main, wait_all};
use crate::mechanisms;
use crate::transport::Pair;
use crate::units;

/// How long a last message to the client may take to go out.
const SEND_WITHIN: Duration = Duration::from_secs(10);

/// Forks the process of one cell on `stream` (`buffered`: what was read
/// past the `cell` line); returns its pid. `close` runs first in the
/// child: it drops the child's copies of the listener and of every other
/// connection, so that those close when `serve` closes them.
pub fn fork_cell(
    stream: TcpStream,
    buffered: Vec<u8>,
    spec: CellSpec,
    opts: &ServeOptions,
    stop: &AtomicBool,
    close: impl FnOnce(),
) -> Result<Pid> {
    let serve = rustix::process::getpid();
    // SAFETY: `serve`'s loop is single-threaded (it starts no threads and
    // runs nothing that does), so the child may do anything it could.
    match unsafe { nix::unistd::fork() }.map_err(|e| anyhow!("fork: {e}"))? {
        nix::unistd::ForkResult::Child => {
            close();
            // Dies with `serve` (its side then dies with it), and not
            // before the death signal is set.
            let _ = rustix::process::set_parent_process_death_signal(Some(Signal::KILL));
            if rustix::process::getppid() == Some(serve) {
                let mut conn = Conn::with_buffered(stream, buffered);
                if let Err(e) = cell(&mut conn, spec, opts, stop) {
                    eprintln!("serve: {}: {e:#}", conn.peer);
                }
            }
            // SAFETY: `_exit` ends this process at once, running nothing
            // of `serve`'s (its destructors belong to the parent).
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            Ok(Pid::from_raw(child.as_raw()).expect("fork returns a positive pid"))
        }
    }
}

/// The cell's watchdog here: the client's, never longer than the server's.
pub fn capped_timeout_ns(client_ns: u64, opts: &ServeOptions) -> u64 {
    client_ns.min(opts.cell_limit_ns())
}

/// Why the server side's count alone makes the cell a failure: it
/// measured nothing (a client that connected and left), or not the
/// `--iterations` asked. The client checks both sides' counts as well.
pub fn short_count(spec: &CellSpec, server: &SideReport) -> Option<String> {
    let unit = match spec.pattern {
        Pattern::Stream => "messages",
        Pattern::Pingpong | Pattern::Oneshot => "round trips",
    };
    let (ok, wanted) = match spec.iterations {
        Some(n) => (server.measured == n, format!("exactly {n}")),
        None => (server.measured >= 1, "at least 1".to_string()),
    };
    (!ok).then(|| {
        format!(
            "the server side measured {} {unit} (expected {wanted}): the client left the \
             channel before its window",
            server.measured
        )
    })
}

/// One cell's server side.
fn cell(conn: &mut Conn, mut spec: CellSpec, opts: &ServeOptions, stop: &AtomicBool) -> Result<()> {
    let label = format!(
        "{} {} {}",
        spec.mechanism,
        spec.pattern,
        units::size(spec.channel.size)
    );
    let failed = |conn: &mut Conn, error: String| {
        let _ = conn.send(
            &Msg::Failed {
                error: error.clone(),
            },
            SEND_WITHIN,
        );
        anyhow!("{label}: {error}")
    };
    let capped = spec.timeout_ns > opts.cell_limit_ns();
    spec.timeout_ns = capped_timeout_ns(spec.timeout_ns, opts);
    let Some(transport) = mechanisms::find(&spec.mechanism) else {
        return Err(failed(
            conn,
            format!("unknown mechanism '{}'", spec.mechanism),
        ));
    };
    let Some(cross) = transport.cross_host() else {
        return Err(failed(
            conn,
            format!(
                "{} cannot cross hosts (these can: {})",
                spec.mechanism,
                cross_host_names()
            ),
        ));
    };
    if spec.pattern == Pattern::Oneshot || spec.pairs != 1 {
        return Err(failed(
            conn,
            "a remote cell is one pair, pingpong or stream".into(),
        ));
    }
    if let Err(why) = transport.available() {
        return Err(failed(
            conn,
            format!("{} is not available here: {why}", spec.mechanism),
        ));
    }
    let (local, peer) = (conn.stream().local_addr()?, conn.stream().peer_addr()?);
    let (half, reach) = match cross.listen(local.ip(), peer.ip(), &spec.channel) {
        Ok(h) => h,
        Err(e) => {
            return Err(failed(
                conn,
                format!("{}: binding its half: {e}", spec.mechanism),
            ));
        }
    };
    conn.send(&Msg::Ready { reach }, SEND_WITHIN)?;
    let supervisor = rustix::process::getpid();
    let control = conn.stream();
    let mut half = Some(half);
    let spec = &spec;
    let child = fork_side(Role::Server, 0, |report| {
        let pair: Box<dyn Pair> = Box::new(OneHalf(half.take().expect("taken once")));
        let window = ServerWindow::new(control);
        side_main(
            spec,
            Role::Server,
            opts.cpu,
            pair,
            &window,
            report,
            supervisor,
        )
    })?;
    drop(half);
    let mut children = [child];
    let waited = wait_all(spec, &mut children, stop, None);
    let report = children[0].report_or_death();
    let msg = match (waited, report.error.clone()) {
        (Err(e), _) if capped => Msg::Failed {
            error: format!("{e:#} (this server's limit: serve --timeout)"),
        },
        (Err(e), _) => Msg::Failed {
            error: format!("{e:#}"),
        },
        (Ok(()), Some(error)) => Msg::Failed { error },
        (Ok(()), None) => match short_count(spec, &report) {
            Some(error) => Msg::Failed { error },
            None => Msg::Report {
                server: Box::new(report),
            },
        },
    };
    let outcome = match &msg {
        Msg::Failed { error } => format!("FAILED: {error}"),
        _ => "done".into(),
    };
    eprintln!("serve: {label} for {}: {outcome}", conn.peer);
    // The client may be gone: nothing more to do about it.
    let _ = conn.send(&msg, SEND_WITHIN);
    Ok(())
}
