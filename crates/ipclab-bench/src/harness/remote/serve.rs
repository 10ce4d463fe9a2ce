//! `ipclab serve`: the server host's side of remote cells, one at a time.
//!
//! A single-threaded loop (it forks each cell's server side, as a cell's
//! supervisor does): accept a control connection, check its `hello`
//! (version, token, no other run going on), take one `cell`, bind the
//! mechanism's half, answer `ready`, fork the server side and watch it
//! with the cell's watchdog, send its report. A client that goes away
//! mid-cell ends the side (the channel closes, or the watchdog fires);
//! the loop then goes on with the next client. A run holds the server from
//! its first cell to its `done`, or until it has been idle for
//! [`RUN_IDLE`]; another run meanwhile is refused as busy.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use rustix::event::{PollFd, PollFlags, poll};

use super::OneHalf;
use super::control::{self, Conn, Msg, same_token};
use super::window::ServerWindow;
use crate::harness::spec::{CellSpec, Pattern};
use crate::harness::supervisor::{Role, fork_side, side_main, wait_all};
use crate::mechanisms;
use crate::transport::Pair;
use crate::units;

/// How long a run holds the server after its last cell without saying
/// `done` (its client died, or was killed).
pub const RUN_IDLE: Duration = Duration::from_secs(5);
/// How long a new connection may take to say hello.
const HELLO_WITHIN: Duration = Duration::from_secs(10);

pub struct ServeOptions {
    pub listen: SocketAddr,
    pub token: String,
    /// Idle limit of a control connection between its messages.
    pub timeout: Duration,
    /// CPU to pin the server sides to.
    pub cpu: Option<usize>,
}

/// The names of the mechanisms that can cross hosts.
pub fn cross_host_names() -> String {
    mechanisms::REGISTRY
        .iter()
        .filter(|t| t.cross_host().is_some())
        .map(|t| t.info().name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Serves until SIGINT or SIGTERM; returns the signal. `announce` gets
/// one line, `listening on ADDR token TOKEN`, once the socket listens.
pub fn serve(opts: &ServeOptions, announce: &mut dyn Write) -> Result<i32> {
    let stop = Arc::new(AtomicBool::new(false));
    let term = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).context("signal handler")?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&term))
        .context("signal handler")?;
    let listener = TcpListener::bind(opts.listen)
        .with_context(|| format!("cannot listen on {}", opts.listen))?;
    let addr = listener.local_addr()?;
    writeln!(announce, "listening on {addr} token {}", opts.token)?;
    announce.flush()?;
    let mut run: Option<(String, Instant)> = None;
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [PollFd::new(&listener, PollFlags::IN)];
        let tick = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 200_000_000,
        };
        if poll(&mut fds, Some(&tick)).unwrap_or(0) == 0 {
            continue;
        }
        let Ok((stream, from)) = listener.accept() else {
            continue;
        };
        let mut conn = Conn::new(stream);
        if let Err(e) = client(&mut conn, opts, &mut run, &stop) {
            eprintln!("serve: {from}: {e:#}");
        }
    }
    Ok(if term.load(Ordering::Relaxed) {
        libc::SIGTERM
    } else {
        libc::SIGINT
    })
}

/// One control connection: the hello, then one cell or `done`.
fn client(
    conn: &mut Conn,
    opts: &ServeOptions,
    run: &mut Option<(String, Instant)>,
    stop: &AtomicBool,
) -> Result<()> {
    let hello = conn.recv_value(HELLO_WITHIN);
    let refuse = |conn: &mut Conn, reason: String| {
        let _ = conn.send(
            &Msg::Refused {
                reason: reason.clone(),
            },
            HELLO_WITHIN,
        );
        anyhow!("refused: {reason}")
    };
    let hello = match hello {
        Ok(v) => v,
        Err(e) => return Err(refuse(conn, format!("{e:#}"))),
    };
    if hello.get("type").and_then(|t| t.as_str()) != Some("hello") {
        return Err(refuse(
            conn,
            format!(
                "garbage on the control connection: expected hello, got {}",
                control::shown(hello.to_string().as_bytes())
            ),
        ));
    }
    if let Some(why) = control::mismatch(&hello) {
        return Err(refuse(conn, format!("another version: {why}")));
    }
    let (token, run_name) = match serde_json::from_value::<Msg>(hello) {
        Ok(Msg::Hello { token, run, .. }) => (token, run),
        _ => {
            return Err(refuse(
                conn,
                "garbage on the control connection: a malformed hello".into(),
            ));
        }
    };
    if !same_token(&token, &opts.token) {
        return Err(refuse(conn, "wrong token".into()));
    }
    if let Some((other, seen)) = run.as_ref()
        && *other != run_name
        && seen.elapsed() < RUN_IDLE
    {
        return Err(refuse(conn, "busy with another run".into()));
    }
    *run = Some((run_name, Instant::now()));
    conn.send(&Msg::welcome(), HELLO_WITHIN)?;
    let msg = match conn.recv(opts.timeout) {
        Ok(m) => m,
        // A client that only checked the server closes here.
        Err(e) if control::closed(&e) => return Ok(()),
        Err(e) => {
            let error = format!("{e:#}");
            let _ = conn.send(&Msg::Failed { error }, HELLO_WITHIN);
            return Err(e);
        }
    };
    let result = match msg {
        Msg::Cell { spec } => cell(conn, &spec, opts, stop),
        Msg::Done => {
            *run = None;
            return Ok(());
        }
        other => {
            let error = format!("expected a cell, got {other:?}");
            let _ = conn.send(
                &Msg::Failed {
                    error: error.clone(),
                },
                HELLO_WITHIN,
            );
            Err(anyhow!(error))
        }
    };
    if let Some((_, seen)) = run.as_mut() {
        *seen = Instant::now();
    }
    result
}

/// One cell's server side.
fn cell(conn: &mut Conn, spec: &CellSpec, opts: &ServeOptions, stop: &AtomicBool) -> Result<()> {
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
            HELLO_WITHIN,
        );
        anyhow!("{label}: {error}")
    };
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
    conn.send(&Msg::Ready { reach }, HELLO_WITHIN)?;
    let server = rustix::process::getpid();
    let control = conn.stream();
    let mut half = Some(half);
    let child = fork_side(Role::Server, 0, |report| {
        let pair: Box<dyn Pair> = Box::new(OneHalf(half.take().expect("taken once")));
        let window = ServerWindow::new(control);
        side_main(spec, Role::Server, opts.cpu, pair, &window, report, server)
    })?;
    drop(half);
    let mut children = [child];
    let waited = wait_all(spec, &mut children, stop, None);
    let report = children[0].report_or_death();
    let msg = match (waited, report.error.clone()) {
        (Err(e), _) => Msg::Failed {
            error: format!("{e:#}"),
        },
        (Ok(()), Some(error)) => Msg::Failed { error },
        (Ok(()), None) => Msg::Report {
            server: Box::new(report),
        },
    };
    let outcome = match &msg {
        Msg::Failed { error } => format!("FAILED: {error}"),
        _ => "done".into(),
    };
    eprintln!("serve: {label} for {}: {outcome}", conn.peer);
    // The client may be gone: nothing more to do about it.
    let _ = conn.send(&msg, HELLO_WITHIN);
    Ok(())
}
