//! `ipclab serve`'s connections on their way in, one step at a time: the
//! hello, its token at its address's turn ([`gate`]), its version, whether
//! the server is free, then a cell or `done` (see [`serve`] for the
//! loop that runs the steps).
//!
//! [`gate`]: super::gate
//! [`serve`]: super::serve

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitOptions, kill_process, waitpid};

use super::control::{MAX_LINE, Msg, later, mismatch, shown};
use super::gate::{Gate, Tally, Verdict};
use super::serve::{CELL_SLACK, HELLO_LINE, RUN_IDLE, ServeOptions, TICK};
use crate::harness::spec::CellSpec;

/// Where a connection is on its way in.
pub(super) enum Stage {
    /// Waiting for its hello line.
    Hello,
    /// Its hello is here; its token waits for its address's turn.
    Held(serde_json::Value),
    /// Welcomed into `run`: waiting for a cell or `done`.
    Command { run: String },
}

pub(super) struct Pending {
    pub(super) stream: TcpStream,
    pub(super) from: SocketAddr,
    /// Read past the last line taken.
    pub(super) buf: Vec<u8>,
    pub(super) eof: bool,
    /// Hello and Held: the end of its hello time; Command: of its wait.
    pub(super) deadline: Instant,
    pub(super) stage: Stage,
    /// Order of accept (the oldest goes first past the cap).
    pub(super) seq: u64,
}

impl Pending {
    pub(super) fn authenticated(&self) -> bool {
        matches!(self.stage, Stage::Command { .. })
    }

    /// Reads what is there, without waiting, up to one line too long.
    pub(super) fn read_some(&mut self) {
        let limit = if self.authenticated() {
            MAX_LINE
        } else {
            HELLO_LINE
        };
        let mut chunk = [0u8; 16 * 1024];
        while !self.eof && self.buf.len() <= limit {
            match (&self.stream).read(&mut chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => self.eof = true,
            }
        }
    }

    /// The next whole line, if there is one; `Err` for a line too long.
    pub(super) fn line(&mut self) -> Result<Option<Vec<u8>>, ()> {
        let limit = if self.authenticated() {
            MAX_LINE
        } else {
            HELLO_LINE
        };
        match self.buf.iter().position(|&b| b == b'\n') {
            Some(end) if end <= limit => Ok(Some(self.buf.drain(..=end).collect())),
            Some(_) => Err(()),
            None if self.buf.len() > limit => Err(()),
            None => Ok(None),
        }
    }

    /// Sends one message without waiting (a fresh connection's buffer
    /// holds it; a client that does not read loses it).
    pub(super) fn say(&self, msg: &Msg) {
        let _ = (&self.stream).write(&msg.line());
    }

    /// Says `reason` as a refusal, then closes: what the client had sent
    /// more is read first, so that the close does not reset the refusal
    /// away.
    pub(super) fn refuse(mut self, reason: &str) {
        self.say(&Msg::Refused {
            reason: reason.to_string(),
        });
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        self.buf.clear();
        self.read_some();
    }

    /// Says `error` as a failure (to a welcomed client), then closes.
    pub(super) fn fail(self, error: &str) {
        self.say(&Msg::Failed {
            error: error.to_string(),
        });
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }
}

/// What becomes of a connection after a step.
pub(super) enum Next {
    Keep(Pending),
    Closed,
    Cell(Pending, Box<CellSpec>),
}

/// The cell running in its process.
pub(super) struct Active {
    pub(super) pid: Pid,
    pub(super) run: String,
    pub(super) since: Instant,
    /// Killed past its slack, once.
    pub(super) killed: bool,
}

/// Everything a step decides by, besides the connection.
pub(super) struct Door<'a> {
    pub(super) opts: &'a ServeOptions,
    pub(super) gate: Gate,
    pub(super) tally: Tally,
    /// The run holding the server, and when it was last heard of.
    pub(super) run: Option<(String, Instant)>,
    pub(super) active: Option<Active>,
}

impl Door<'_> {
    /// The earliest time something is due: a deadline, an address's turn.
    pub(super) fn next_wake(&self, conns: &[Pending], now: Instant) -> Instant {
        let mut wake = now + TICK;
        for c in conns {
            wake = wake.min(c.deadline);
            if let Stage::Held(_) = c.stage
                && let Some(turn) = self.gate.turn(c.from.ip(), now)
            {
                wake = wake.min(turn);
            }
        }
        wake
    }

    /// One connection, as far as it can go now.
    pub(super) fn step(&mut self, mut c: Pending, now: Instant) -> Next {
        loop {
            match &c.stage {
                Stage::Hello => match c.line() {
                    Ok(Some(line)) => match serde_json::from_slice(&line) {
                        Ok(value) => c.stage = Stage::Held(value),
                        Err(_) => {
                            self.unauthenticated(&c, "garbage");
                            c.refuse(&format!(
                                "garbage on the control connection: expected hello, got {}",
                                shown(&line)
                            ));
                            return Next::Closed;
                        }
                    },
                    Err(()) => {
                        self.unauthenticated(&c, "garbage");
                        c.refuse(&format!(
                            "garbage on the control connection: a line longer than \
                             {HELLO_LINE} bytes"
                        ));
                        return Next::Closed;
                    }
                    Ok(None) if c.eof => return Next::Closed,
                    Ok(None) if now >= c.deadline => {
                        self.unauthenticated(&c, "no hello");
                        c.refuse(&format!(
                            "no hello within {} s",
                            self.opts.hello_within().as_secs_f64()
                        ));
                        return Next::Closed;
                    }
                    Ok(None) => return Next::Keep(c),
                },
                Stage::Held(hello) => {
                    let ip = c.from.ip();
                    // Gone while it waited its turn: nobody to answer, and
                    // its token is not worth a turn (an ipclab client never
                    // closes before its answer).
                    if c.eof {
                        return Next::Closed;
                    }
                    if let Some(turn) = self.gate.turn(ip, now) {
                        if turn <= c.deadline {
                            return Next::Keep(c);
                        }
                        self.unauthenticated(&c, "no turn");
                        let wait = turn.saturating_duration_since(now).as_secs_f64();
                        c.refuse(&format!(
                            "too many wrong tokens from this address: its next is checked in \
                             {wait:.1} s"
                        ));
                        return Next::Closed;
                    }
                    match self.gate.check(ip, hello, now) {
                        Verdict::Garbage(reason) => {
                            self.unauthenticated(&c, "garbage");
                            c.refuse(&reason);
                            return Next::Closed;
                        }
                        Verdict::Wrong { count, delay } => {
                            c.refuse(&Verdict::wrong_reason(count, delay));
                            return Next::Closed;
                        }
                        // Welcomed: what it sent after its hello is
                        // looked at now.
                        Verdict::Let => match self.admit(c, now) {
                            Next::Keep(admitted) => c = admitted,
                            other => return other,
                        },
                    }
                }
                Stage::Command { run } => {
                    let run = run.clone();
                    let line = match c.line() {
                        Ok(Some(line)) => line,
                        Ok(None) if c.eof => return Next::Closed,
                        Ok(None) if now >= c.deadline => {
                            let e = format!(
                                "no cell on the control connection within {} s",
                                self.opts.timeout.as_secs_f64()
                            );
                            eprintln!("serve: {}: {e}", c.from);
                            c.fail(&e);
                            return Next::Closed;
                        }
                        Ok(None) => return Next::Keep(c),
                        Err(()) => {
                            c.fail(&format!(
                                "garbage on the control connection: a line longer than \
                                 {MAX_LINE} bytes"
                            ));
                            return Next::Closed;
                        }
                    };
                    return self.command(c, run, line, now);
                }
            }
        }
    }

    /// The right token: the version, then whether the server is free.
    pub(super) fn admit(&mut self, c: Pending, now: Instant) -> Next {
        let Stage::Held(hello) = &c.stage else {
            unreachable!("admitted from Held");
        };
        if let Some(why) = mismatch(hello) {
            c.refuse(&format!("another version: {why}"));
            return Next::Closed;
        }
        let run = match serde_json::from_value::<Msg>(hello.clone()) {
            Ok(Msg::Hello { run, .. }) => run,
            _ => {
                c.refuse("garbage on the control connection: a malformed hello");
                return Next::Closed;
            }
        };
        if self.busy(&run, now) {
            c.refuse("busy with another run");
            return Next::Closed;
        }
        self.run = Some((run.clone(), now));
        c.say(&Msg::welcome());
        let mut c = c;
        c.deadline = later(now, self.opts.timeout);
        c.stage = Stage::Command { run };
        Next::Keep(c)
    }

    /// A welcomed client's message.
    pub(super) fn command(
        &mut self,
        mut c: Pending,
        run: String,
        line: Vec<u8>,
        now: Instant,
    ) -> Next {
        let msg = match serde_json::from_slice::<Msg>(&line) {
            Ok(m) => m,
            Err(e) => {
                c.fail(&format!(
                    "garbage on the control connection: {e}: {}",
                    shown(&line)
                ));
                return Next::Closed;
            }
        };
        match msg {
            Msg::Cell { spec } => {
                if self.active.is_some() {
                    // Its run's previous cell is still ending (a client
                    // checking the server after a failure, then going on):
                    // this one waits its turn, to its deadline.
                    if c.eof {
                        return Next::Closed;
                    }
                    if now >= c.deadline {
                        c.fail("busy: the previous cell is still running");
                        return Next::Closed;
                    }
                    let mut buf = line;
                    buf.extend_from_slice(&c.buf);
                    c.buf = buf;
                    return Next::Keep(c);
                }
                if self.busy(&run, now) {
                    c.fail("busy with another run");
                    return Next::Closed;
                }
                self.run = Some((run, now));
                Next::Cell(c, spec)
            }
            Msg::Done => {
                if self.run.as_ref().is_some_and(|(r, _)| *r == run) {
                    self.run = None;
                }
                Next::Closed
            }
            other => {
                c.fail(&format!("expected a cell, got {other:?}"));
                Next::Closed
            }
        }
    }

    /// Whether another run holds the server, or a cell runs for one.
    pub(super) fn busy(&self, run: &str, now: Instant) -> bool {
        if self.active.as_ref().is_some_and(|a| a.run != run) {
            return true;
        }
        self.run.as_ref().is_some_and(|(other, seen)| {
            other != run && now.saturating_duration_since(*seen) < RUN_IDLE
        })
    }

    /// Counts an unauthenticated failure, logging the 1st, 2nd, 4th... of
    /// its kind.
    pub(super) fn unauthenticated(&mut self, c: &Pending, kind: &'static str) {
        if let Some(n) = self.tally.note(kind) {
            eprintln!(
                "serve: {}: refused: {kind} ({n} such so far; logged at the 1st, 2nd, 4th...)",
                c.from
            );
        }
    }

    /// Reaps the cell's process if it has ended; kills it if it outlives
    /// its watchdog by [`CELL_SLACK`].
    pub(super) fn reap(&mut self) {
        let Some(a) = &mut self.active else {
            return;
        };
        match waitpid(Some(a.pid), WaitOptions::NOHANG) {
            Ok(None) => {
                let limit =
                    Duration::from_nanos(self.opts.cell_limit_ns()).saturating_add(CELL_SLACK);
                if !a.killed && a.since.elapsed() > limit {
                    eprintln!(
                        "serve: the cell process {} outlived its watchdog: killed",
                        a.pid.as_raw_nonzero()
                    );
                    let _ = kill_process(a.pid, Signal::KILL);
                    a.killed = true;
                }
                return;
            }
            Ok(Some((_, status))) if !status.exited() || status.exit_status() != Some(0) => {
                eprintln!("serve: the cell process ended with {status:?}");
            }
            _ => {}
        }
        let run = self.active.take().map(|a| a.run);
        if let Some((held, seen)) = &mut self.run
            && Some(&*held) == run.as_ref()
        {
            *seen = Instant::now();
        }
    }

    /// At exit: the running cell's process is asked to stop (it kills its
    /// side and tells its client), and killed if it does not within 10 s.
    pub(super) fn end_cell(&mut self) {
        let Some(a) = self.active.take() else {
            return;
        };
        let _ = kill_process(a.pid, Signal::TERM);
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if !matches!(waitpid(Some(a.pid), WaitOptions::NOHANG), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = kill_process(a.pid, Signal::KILL);
        let _ = waitpid(Some(a.pid), WaitOptions::empty());
    }
}
