//! `ipclab serve`: the server host's side of remote cells, one at a time,
//! available to an honest client whatever the others do.
//!
//! One thread, one event loop (`poll`) over the listener and every
//! connection not yet handed to a cell: nothing a client does or does not
//! send holds anyone else. A connection's way through it:
//!
//! 1. `hello`, within [`ServeOptions::hello_within`] of its accept (the
//!    whole line: a client trickling bytes gets no longer). At most
//!    [`MAX_UNAUTHENTICATED`] connections wait for theirs; a new one past
//!    that pushes the oldest out.
//! 2. Its token, checked before anything else is said, at its address's
//!    turn ([`gate`]: wrong tokens from one address wait longer and longer).
//!    A wrong one is refused with no version in the answer.
//! 3. Its version, then whether another run holds the server: `busy` at
//!    once, also while a cell is running, else `welcome`.
//! 4. One `cell` (or `done`), within `--timeout`: the cell runs in a
//!    process forked from this loop ([`served_cell`]), with its watchdog
//!    capped by `--timeout`; the loop goes on meanwhile.
//!
//! A run holds the server from its hello to its `done`, or until it has
//! been idle for [`RUN_IDLE`]; another run meanwhile is refused as busy.
//! This file is the loop (poll, accept, the cap, the fork); the steps of a
//! connection are in [`door`].
//!
//! [`gate`]: super::gate
//! [`door`]: super::door
//! [`served_cell`]: super::served_cell

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rustix::event::{PollFd, PollFlags, poll};

use super::control::later;
use super::door::{Active, Door, Next, Pending, Stage};
use super::gate::{Gate, Tally};
use super::served_cell::fork_cell;
use crate::harness::spec::CellSpec;
use crate::mechanisms;

/// How long a run holds the server after its last cell without saying
/// `done` (its client died, or was killed).
pub const RUN_IDLE: Duration = Duration::from_secs(5);
/// The longest a new connection may take to say hello (shorter if
/// `--timeout` is).
pub const HELLO_MAX: Duration = Duration::from_secs(10);
/// Connections that have not yet given the right token, at most.
pub const MAX_UNAUTHENTICATED: usize = 64;
/// The longest hello line (a hello is about 200 bytes).
pub(super) const HELLO_LINE: usize = 4096;
/// How long a cell's process may outlive its watchdog (its grace, its
/// last message) before the loop kills it.
pub(super) const CELL_SLACK: Duration = Duration::from_secs(30);
/// The loop's longest sleep: how soon it sees a cell end or a signal.
pub(super) const TICK: Duration = Duration::from_millis(100);

pub struct ServeOptions {
    pub listen: SocketAddr,
    pub token: String,
    /// The server's limit: for the hello (at most [`HELLO_MAX`]), each next
    /// message, and each cell's watchdog.
    pub timeout: Duration,
    /// CPU to pin the server sides to.
    pub cpu: Option<usize>,
}

impl ServeOptions {
    /// How long a new connection has for its whole hello line.
    pub fn hello_within(&self) -> Duration {
        self.timeout.min(HELLO_MAX)
    }

    /// The longest watchdog of a cell here, in nanoseconds.
    pub fn cell_limit_ns(&self) -> u64 {
        u64::try_from(self.timeout.as_nanos()).unwrap_or(u64::MAX)
    }
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
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    writeln!(announce, "listening on {addr} token {}", opts.token)?;
    announce.flush()?;
    let mut server = Server {
        listener: Some(listener),
        conns: Vec::new(),
        accepted: 0,
        paused_until: None,
        door: Door {
            opts,
            gate: Gate::new(&opts.token),
            tally: Tally::default(),
            run: None,
            active: None,
        },
    };
    while !stop.load(Ordering::Relaxed) {
        server.round(&stop);
    }
    server.door.end_cell();
    Ok(if term.load(Ordering::Relaxed) {
        libc::SIGTERM
    } else {
        libc::SIGINT
    })
}

struct Server<'a> {
    /// `None` only in a cell's process, which closes it.
    listener: Option<TcpListener>,
    conns: Vec<Pending>,
    accepted: u64,
    /// Accept failed (no descriptors left): the listener rests until then.
    paused_until: Option<Instant>,
    door: Door<'a>,
}

impl Server<'_> {
    /// Waits for something to do (at most [`TICK`]), then does it all.
    fn round(&mut self, stop: &AtomicBool) {
        let now = Instant::now();
        let wake = self.door.next_wake(&self.conns, now);
        let listening = self.paused_until.is_none_or(|t| t <= now);
        {
            let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(self.conns.len() + 1);
            if listening && let Some(l) = &self.listener {
                fds.push(PollFd::new(l, PollFlags::IN));
            }
            for c in self
                .conns
                .iter()
                .filter(|c| !matches!(c.stage, Stage::Held(_)))
            {
                fds.push(PollFd::new(&c.stream, PollFlags::IN));
            }
            let wait = wake.saturating_duration_since(now).min(TICK);
            let tick = rustix::time::Timespec {
                tv_sec: 0,
                tv_nsec: wait.subsec_nanos().into(),
            };
            let _ = poll(&mut fds, Some(&tick));
        }
        self.door.reap();
        if listening {
            self.accept();
        }
        let mut i = 0;
        while i < self.conns.len() {
            let mut c = self.conns.swap_remove(i);
            c.read_some();
            match self.door.step(c, Instant::now()) {
                Next::Keep(c) => {
                    // Back where it was.
                    self.conns.push(c);
                    let last = self.conns.len() - 1;
                    self.conns.swap(i, last);
                    i += 1;
                }
                Next::Closed => {}
                Next::Cell(c, spec) => self.start_cell(c, *spec, stop),
            }
        }
    }

    /// Takes every connection waiting in the backlog.
    fn accept(&mut self) {
        for _ in 0..MAX_UNAUTHENTICATED {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, from)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    self.accepted += 1;
                    let now = Instant::now();
                    self.conns.push(Pending {
                        stream,
                        from,
                        buf: Vec::new(),
                        eof: false,
                        deadline: later(now, self.door.opts.hello_within()),
                        stage: Stage::Hello,
                        seq: self.accepted,
                    });
                    self.cap();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if let Some(n) = self.door.tally.note("accept failed") {
                        eprintln!("serve: accept: {e} ({n} such so far; retrying in 100 ms)");
                    }
                    self.paused_until = Some(Instant::now() + TICK);
                    break;
                }
            }
        }
    }

    /// Past [`MAX_UNAUTHENTICATED`], the oldest unauthenticated connection
    /// goes: a flood of them pushes out its own, while an honest client's
    /// hello follows its connect at once.
    fn cap(&mut self) {
        while self.conns.iter().filter(|c| !c.authenticated()).count() > MAX_UNAUTHENTICATED {
            let Some(oldest) = self
                .conns
                .iter()
                .enumerate()
                .filter(|(_, c)| !c.authenticated())
                .min_by_key(|(_, c)| c.seq)
                .map(|(i, _)| i)
            else {
                return;
            };
            let c = self.conns.swap_remove(oldest);
            if let Some(n) = self.door.tally.note("pushed out") {
                eprintln!(
                    "serve: {}: closed: more than {MAX_UNAUTHENTICATED} connections without a \
                     hello, the oldest goes ({n} such so far)",
                    c.from
                );
            }
            c.refuse(&format!(
                "too many connections waiting for their hello (more than \
                 {MAX_UNAUTHENTICATED}): the oldest is closed"
            ));
        }
    }

    /// Forks the cell's process, which takes `c`'s connection and closes
    /// its copies of everything else.
    fn start_cell(&mut self, c: Pending, spec: CellSpec, stop: &AtomicBool) {
        let Stage::Command { run } = &c.stage else {
            unreachable!("only a welcomed connection sends a cell");
        };
        let run = run.clone();
        let from = c.from;
        let Pending { stream, buf, .. } = c;
        let listener = &mut self.listener;
        let conns = &mut self.conns;
        let forked = fork_cell(stream, buf, spec, self.door.opts, stop, || {
            drop(listener.take());
            conns.clear();
        });
        match forked {
            Ok(pid) => {
                self.door.active = Some(Active {
                    pid,
                    run,
                    since: Instant::now(),
                    killed: false,
                });
            }
            // The connection is gone with `stream`: the client sees it
            // close before `ready`.
            Err(e) => eprintln!("serve: {from}: cannot start its cell: {e:#}"),
        }
    }
}
