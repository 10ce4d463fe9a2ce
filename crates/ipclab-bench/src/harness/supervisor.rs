//! The supervisor: one short-lived process per cell (`ipclab __cell`).
//!
//! It is single-threaded, so it may `fork`. It prepares the channel, forks
//! the server and the client, pins each to its CPU, and waits for both with
//! a watchdog. Each side writes its [`SideReport`] as JSON into a memfd made
//! for it before the fork (no name, nothing to leak, no pipe to fill up).
//! When both are reaped, or when one fails, hangs, or Ctrl-C arrives, the
//! supervisor kills what is left and drops the channel's guard, which
//! removes every named or System V object.

use std::io::{Read, Seek, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, anyhow, bail};
use rustix::event::{PollFd, PollFlags, poll};
use rustix::process::{Pid, Signal, WaitOptions, kill_process, pidfd_open, waitpid};

use nix::unistd::{ForkResult, fork};
use rustix::fs::{MemfdFlags, memfd_create};

use super::clock::mono_ns;
use super::fault::Fault;
use super::kernel_limits;
use super::scribbler;
use super::sides;
use super::sigbus;
use super::spec::{CellOutcome, CellRequest, CellSpec, OneshotSample, Pattern, SideReport, Sides};
use super::start::{Started, kill};
use super::window::{MeasuredWindow, Window};
use crate::mechanisms;
use crate::transport::{Endpoint, Pair, Transport};

/// Exit status of a process that a signal asked to stop and that stopped
/// cleanly: 128 plus the signal, as a shell reports a death by it (130
/// for Ctrl-C, 143 for SIGTERM).
pub fn interrupted_status(signal: i32) -> i32 {
    128 + signal
}

/// The signal a supervisor's exit status says stopped it, if any.
pub fn stopped_by(code: Option<i32>) -> Option<i32> {
    [libc::SIGINT, libc::SIGTERM]
        .into_iter()
        .find(|&s| code == Some(interrupted_status(s)))
}

/// The `ipclab __cell` entry point: reads a [`CellSpec`] from standard
/// input, writes a [`CellOutcome`] to standard output.
pub fn cell_main() -> ! {
    let stop = Arc::new(AtomicBool::new(false));
    // Which of the two it was, for the exit status.
    let term = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A failure here only costs the clean-up on Ctrl-C.
        let _ = signal_hook::flag::register(signal, Arc::clone(&stop));
    }
    let _ = signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&term));
    // Die with the orchestrator rather than run on unseen.
    let _ = rustix::process::set_parent_process_death_signal(Some(Signal::TERM));

    let mut input = String::new();
    let outcome = match std::io::stdin().read_to_string(&mut input) {
        Err(e) => CellOutcome {
            error: Some(format!("reading the cell spec: {e}")),
            ..Default::default()
        },
        Ok(_) => match serde_json::from_str::<CellRequest>(&input) {
            Err(e) => CellOutcome {
                error: Some(format!("bad cell spec: {e}")),
                ..Default::default()
            },
            Ok(CellRequest { spec, remote }) => match remote {
                Some(remote) => mechanisms::find(&spec.mechanism)
                    .ok_or_else(|| anyhow!("unknown mechanism '{}'", spec.mechanism))
                    .and_then(|t| super::remote::client::run(&spec, &remote, t, &stop)),
                None => run(&spec, &stop),
            }
            .unwrap_or_else(|e| {
                // A failed channel still tells what each side got (for the
                // counts of fault injection).
                let (client, server) = match e.downcast_ref::<SidesFailed>() {
                    Some(f) => (f.client.clone(), f.server.clone()),
                    None => Default::default(),
                };
                CellOutcome {
                    error: Some(format!("{e:#}")),
                    client,
                    server,
                    ..Default::default()
                }
            }),
        },
    };
    // The registry's directory, if our records were its last.
    crate::objects::registry::tidy();
    let json = serde_json::to_string(&outcome).expect("a CellOutcome always serialises");
    let _ = writeln!(std::io::stdout(), "{json}");
    let code = if stop.load(Ordering::Relaxed) {
        interrupted_status(if term.load(Ordering::Relaxed) {
            libc::SIGTERM
        } else {
            libc::SIGINT
        })
    } else if outcome.error.is_some() {
        1
    } else {
        0
    };
    std::process::exit(code)
}

fn run(spec: &CellSpec, stop: &AtomicBool) -> Result<CellOutcome> {
    let transport = mechanisms::find(&spec.mechanism)
        .ok_or_else(|| anyhow!("unknown mechanism '{}'", spec.mechanism))?;
    if let Err(why) = transport.available() {
        bail!("{} is not available here: {why}", spec.mechanism);
    }
    match spec.pattern {
        Pattern::Pingpong | Pattern::Stream => {
            let run = once(spec, transport, stop)?;
            let outcome = CellOutcome {
                setup_ns: run.setup_ns,
                teardown_ns: run.client.teardown_ns.max(run.server.teardown_ns) + run.guard_drop_ns,
                client: run.client,
                server: run.server,
                more_pairs: run.more_pairs,
                ..Default::default()
            };
            for (i, (client, server)) in outcome.pairs().enumerate() {
                sides::check_counts(spec, client, server).map_err(|e| match spec.pairs {
                    0 | 1 => e,
                    n => e.context(format!("pair {} of {n}", i + 1)),
                })?;
            }
            Ok(outcome)
        }
        Pattern::Oneshot => oneshot(spec, transport, stop),
    }
}

/// `oneshot`: a new channel and new processes for every round trip, until
/// the warm-up and then the measuring time have passed.
fn oneshot(spec: &CellSpec, transport: &dyn Transport, stop: &AtomicBool) -> Result<CellOutcome> {
    let warm_end = mono_ns() + spec.warmup_ns;
    while mono_ns() < warm_end {
        once(spec, transport, stop)?;
    }
    let begin = mono_ns();
    let mut samples = Vec::new();
    let mut last = None;
    loop {
        let n = samples.len() as u64;
        match spec.iterations {
            Some(want) if n >= want => break,
            None if spec.enough(n, mono_ns() - begin) => break,
            _ => {}
        }
        let start = mono_ns();
        let run = once(spec, transport, stop)?;
        let end = mono_ns();
        samples.push(OneshotSample {
            total_ns: end - start,
            setup_ns: run.setup_ns,
        });
        last = Some(run);
    }
    let run = last.ok_or_else(|| anyhow!("no oneshot iteration ran"))?;
    let mut setups: Vec<u64> = samples.iter().map(|s| s.setup_ns).collect();
    setups.sort_unstable();
    Ok(CellOutcome {
        setup_ns: setups[setups.len() / 2],
        teardown_ns: run.client.teardown_ns.max(run.server.teardown_ns) + run.guard_drop_ns,
        // `total` and `rounds` stay those of the last run (one round trip),
        // so that rounds per message come out right.
        client: SideReport {
            measured: samples.len() as u64,
            ..run.client
        },
        server: SideReport {
            measured: samples.len() as u64,
            ..run.server
        },
        oneshot: samples,
        more_pairs: Vec::new(),
        error: None,
    })
}

struct Once {
    client: SideReport,
    server: SideReport,
    more_pairs: Vec<Sides>,
    /// From preparing a pair's channel to both its sides attached, the
    /// slowest pair's.
    setup_ns: u64,
    guard_drop_ns: u64,
}

/// A side failed: its error, with both sides' reports.
#[derive(Debug)]
struct SidesFailed {
    errors: String,
    client: SideReport,
    server: SideReport,
}

impl std::fmt::Display for SidesFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.errors)
    }
}

impl std::error::Error for SidesFailed {}

#[derive(Clone, Copy)]
pub(crate) enum Role {
    Server,
    Client,
}

impl Role {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Client => "client",
        }
    }
}

/// The channels of every pair, a server process and a client process each,
/// start to end.
///
/// Pair by pair, the supervisor prepares the channel, forks its two sides
/// and drops its own copy of the ends, so that each side holds its own
/// channel and no other (a side that dies is then seen by its peer, and by
/// nobody else). The pairs start measuring together (`harness::window`).
fn once(spec: &CellSpec, transport: &dyn Transport, stop: &AtomicBool) -> Result<Once> {
    let fault = Fault::from_env(&spec.mechanism)?;
    let window = Window::new(spec.pairs).context("mapping the measured window's page")?;
    let scribble = scribbler::scribble_seed();
    let mut started = Started::default();
    let mut prepare_ns = Vec::new();
    for index in 0..spec.pairs.max(1) {
        prepare_ns.push(mono_ns());
        let scribble_on = scribble.is_some() && index == 0;
        if let Err(e) = started.pair(spec, transport, index, &window, scribble_on) {
            started.kill_all();
            return Err(e);
        }
    }
    let Started {
        guards,
        mut children,
        targets,
        later,
    } = started;
    // Forked after the pairs: the scribbler holds the first pair's
    // mappings (or the line on which they will come), nothing else of the
    // channels.
    let scribbler = match scribble {
        Some(seed) if !targets.is_empty() || later.is_some() => {
            match scribbler::start_scribbler(seed, spec, &targets, later.as_ref()) {
                Ok(pid) => Some(pid),
                Err(e) => {
                    kill(&mut children);
                    return Err(e);
                }
            }
        }
        Some(_) if transport.shares_memory() => {
            // A row that says it shares memory but handed nothing over
            // would pass `torture hostile` untouched.
            kill(&mut children);
            bail!(
                "fault injection: {} shares memory but handed the scribbler none to write on",
                spec.mechanism
            );
        }
        _ => None,
    };
    drop((targets, later));
    let fault = fault.map(|f| (f, mono_ns().saturating_add(f.delay_ns)));
    let waited = wait_all(spec, &mut children, stop, fault);
    if let Some(pid) = scribbler {
        let _ = kill_process(pid, Signal::KILL);
        let _ = waitpid(Some(pid), WaitOptions::empty());
    }
    let t = mono_ns();
    drop(guards);
    let guard_drop_ns = mono_ns() - t;
    if let Err(e) = waited {
        // A frozen side is why a cell timed out: say so.
        match children.iter().find_map(|c| c.ended_by.as_ref()?.fault()) {
            Some(f) => bail!("{e}; {}", f.describe()),
            None => return Err(e),
        }
    }

    // A side that died leaves no report; the survivor's error usually
    // names the effect, so both lines are kept, an injected fault's first.
    let reports: Vec<SideReport> = children.iter_mut().map(Child::report_or_death).collect();
    // The side a fault hit first, then its survivor's view of it.
    let faulted = |i: usize| {
        children[i]
            .ended_by
            .as_ref()
            .is_some_and(|e| e.fault().is_some())
    };
    // Sides stopped because another pair failed add nothing to its error.
    let stopped_for_other = |i: usize| matches!(children[i].ended_by, Some(EndedBy::OtherPair(_)));
    let mut errors: Vec<(bool, String)> = (0..reports.len())
        .filter(|&i| !stopped_for_other(i))
        .filter_map(|i| {
            let line = reports[i].error.as_deref()?;
            let line = match spec.pairs {
                0 | 1 => line.to_string(),
                n => format!("pair {} of {n}: {line}", children[i].pair + 1),
            };
            Some((!faulted(i), line))
        })
        .collect();
    errors.sort_by_key(|&(later, _)| later);
    let errors = errors
        .into_iter()
        .map(|(_, line)| line)
        .collect::<Vec<_>>()
        .join("; ");
    // Children were forked server then client, pair by pair.
    let mut sides: Vec<Sides> = Vec::new();
    let mut reports = reports.into_iter();
    while let (Some(server), Some(client)) = (reports.next(), reports.next()) {
        sides.push(Sides { client, server });
    }
    let setup_ns = sides
        .iter()
        .zip(&prepare_ns)
        .map(|(p, &start)| {
            p.client
                .attached_at_ns
                .max(p.server.attached_at_ns)
                .saturating_sub(start)
        })
        .max()
        .unwrap_or(0);
    let mut sides = sides.into_iter();
    let first = sides.next().unwrap_or_default();
    let more_pairs: Vec<Sides> = sides.collect();
    if !errors.is_empty() {
        return Err(SidesFailed {
            errors,
            client: first.client,
            server: first.server,
        }
        .into());
    }
    Ok(Once {
        client: first.client,
        server: first.server,
        more_pairs,
        setup_ns,
        guard_drop_ns,
    })
}

/// The CPU `role` of pair `index` is pinned to, if any.
pub(super) fn side_cpu(spec: &CellSpec, role: Role, index: usize) -> Option<usize> {
    let &(client, server) = spec.cpus.as_ref()?.get(index)?;
    Some(match role {
        Role::Client => client,
        Role::Server => server,
    })
}

/// Forks one side of pair `pair`: `child` runs in the new process, with
/// the memfd its report goes to, and should never return (the child ends
/// if it does). The caller must be
/// single-threaded.
pub(crate) fn fork_side(role: Role, pair: usize, child: impl FnOnce(OwnedFd)) -> Result<Child> {
    let report = memfd_create("ipclab-report", MemfdFlags::CLOEXEC)
        .map_err(|e| kernel_limits::name_the_limit(anyhow!(e).context("memfd_create")))?;
    // SAFETY: the supervisor is single-threaded (it is its own process,
    // started by exec, and starts no threads; so is `ipclab serve`), so the
    // child may do anything the parent could.
    match unsafe { fork() }
        .map_err(|e| anyhow!(kernel_limits::name_the_limit(anyhow!(e).context("fork"))))?
    {
        ForkResult::Child => {
            child(report);
            // SAFETY: `_exit` ends the process at once; `child` is meant
            // never to return (it ends in `side_main`).
            unsafe { libc::_exit(1) }
        }
        ForkResult::Parent { child } => {
            let pid = Pid::from_raw(child.as_raw()).expect("fork returns a positive pid");
            Ok(Child {
                role,
                pair,
                pid,
                pidfd: pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok(),
                report,
                status: None,
                ended_by: None,
            })
        }
    }
}

pub(crate) struct Child {
    pub role: Role,
    /// 0-based.
    pub pair: usize,
    pub pid: Pid,
    pub pidfd: Option<OwnedFd>,
    pub report: OwnedFd,
    pub status: Option<i32>,
    /// Why the supervisor signalled this side, if it did.
    pub ended_by: Option<EndedBy>,
}

/// Why the supervisor signalled a side.
pub(crate) enum EndedBy {
    /// Fault injection (`IPCLAB_FAULT_*`).
    Fault(Fault),
    /// Its peer failed and it did not end within [`GRACE_NS`].
    Grace,
    /// Another pair (0-based) failed: the cell has failed, and this side
    /// is stopped at once rather than left to finish a window nobody uses.
    OtherPair(usize),
    /// The cell timed out or was interrupted.
    GaveUp,
}

impl EndedBy {
    fn fault(&self) -> Option<&Fault> {
        match self {
            EndedBy::Fault(f) => Some(f),
            _ => None,
        }
    }
}

/// How long a side may take to notice that its peer failed.
const GRACE_NS: u64 = 2_000_000_000;

impl Child {
    /// The error line of a side the supervisor signalled.
    pub(crate) fn why_ended(&self) -> String {
        match &self.ended_by {
            Some(EndedBy::Fault(f)) => f.describe(),
            Some(EndedBy::Grace) => format!(
                "the {} did not notice within {} s that its peer had failed; stopped",
                self.role.name(),
                GRACE_NS / 1_000_000_000
            ),
            Some(EndedBy::OtherPair(p)) => format!(
                "the {} was stopped: pair {} failed",
                self.role.name(),
                p + 1
            ),
            _ => format!("the {} was killed", self.role.name()),
        }
    }

    /// The side's report, or one whose error says how it ended.
    pub(crate) fn report_or_death(&mut self) -> SideReport {
        self.read_report().unwrap_or_else(|e| SideReport {
            error: Some(match self.ended_by {
                Some(_) => self.why_ended(),
                None => format!("{e:#}"),
            }),
            error_kind: Some(scribbler::died(self.status)),
            ..Default::default()
        })
    }

    fn read_report(&mut self) -> Result<SideReport> {
        let mut file = std::fs::File::from(self.report.try_clone()?);
        file.rewind()?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        if text.is_empty() {
            bail!(
                "the {} process died without a report (status {:?})",
                self.role.name(),
                self.status
            );
        }
        serde_json::from_str(&text).context("a side's report")
    }
}

/// Waits for every child; on a failure, a timeout or a stop request, kills
/// the rest (after a grace period for a failed side's peer to notice).
/// `fault` is a signal to inject, with the time to send it.
pub(crate) fn wait_all(
    spec: &CellSpec,
    children: &mut [Child],
    stop: &AtomicBool,
    mut fault: Option<(Fault, u64)>,
) -> Result<()> {
    // Saturating: a `timeout_ns` of u64::MAX is "never", not the past.
    let deadline = mono_ns().saturating_add(spec.timeout_ns);
    let mut failed_at: Option<u64> = None;
    loop {
        reap(children);
        if children.iter().all(|c| c.status.is_some()) {
            break;
        }
        let mut now = mono_ns();
        if let Some((f, at)) = fault
            && now >= at
        {
            fault = None;
            if let Some(c) = children
                .iter_mut()
                .find(|c| c.status.is_none() && (c.role.name() == "server") == f.server)
            {
                let _ = kill_process(c.pid, f.signal);
                c.ended_by = Some(EndedBy::Fault(f));
                // The killed side is reaped on the next round.
                continue;
            }
        }
        now = now.max(mono_ns());
        if failed_at.is_none()
            && let Some(failed) = children.iter().find(|c| c.status.is_some_and(|s| s != 0))
        {
            failed_at = Some(now);
            // The other pairs' sides: the cell has failed; its failing
            // pair's survivor keeps its grace to say what it saw.
            let pair = failed.pair;
            for c in children
                .iter_mut()
                .filter(|c| c.status.is_none() && c.pair != pair && c.ended_by.is_none())
            {
                let _ = kill_process(c.pid, Signal::KILL);
                c.ended_by = Some(EndedBy::OtherPair(pair));
            }
        }
        let grace = failed_at.is_some_and(|t| now - t >= GRACE_NS);
        let give_up = if stop.load(Ordering::Relaxed) {
            Some("interrupted".to_string())
        } else if now >= deadline {
            Some(format!(
                "{} {} size {}: timed out after {} s; every side was killed",
                spec.mechanism,
                spec.pattern,
                spec.channel.size,
                spec.timeout_ns / 1_000_000_000
            ))
        } else if grace {
            Some(String::new())
        } else {
            None
        };
        if let Some(why) = give_up {
            for c in children.iter_mut().filter(|c| c.status.is_none()) {
                let _ = kill_process(c.pid, Signal::KILL);
                if c.ended_by.is_none() {
                    c.ended_by = Some(if why.is_empty() {
                        EndedBy::Grace
                    } else {
                        EndedBy::GaveUp
                    });
                }
            }
            for c in children.iter_mut().filter(|c| c.status.is_none()) {
                let status = waitpid(Some(c.pid), WaitOptions::empty()).ok().flatten();
                c.status = Some(status.map_or(-1, |(_, s)| s.as_raw()));
            }
            if !why.is_empty() {
                bail!(why);
            }
            break;
        }
        let limit = deadline
            .min(failed_at.map_or(u64::MAX, |t| t + GRACE_NS))
            .min(fault.map_or(u64::MAX, |(_, at)| at))
            .saturating_sub(now);
        let timeout = rustix::time::Timespec {
            tv_sec: (limit.min(100_000_000) / 1_000_000_000) as _,
            tv_nsec: (limit.min(100_000_000) % 1_000_000_000) as _,
        };
        let mut fds: Vec<PollFd> = children
            .iter()
            .filter(|c| c.status.is_none())
            .filter_map(|c| c.pidfd.as_ref().map(|fd| PollFd::new(fd, PollFlags::IN)))
            .collect();
        // EINTR (Ctrl-C) and timeouts both just go round the loop again.
        let _ = poll(&mut fds, Some(&timeout));
    }
    Ok(())
}

/// Collects the exit status of every child that has exited.
fn reap(children: &mut [Child]) {
    for c in children.iter_mut().filter(|c| c.status.is_none()) {
        if let Ok(Some((_, status))) = waitpid(Some(c.pid), WaitOptions::NOHANG) {
            c.status = Some(if status.exit_status() == Some(0) {
                0
            } else {
                status.as_raw().max(1)
            });
        }
    }
}

/// A side's whole life after the fork; never returns.
pub(crate) fn side_main(
    spec: &CellSpec,
    role: Role,
    cpu: Option<usize>,
    pair: Box<dyn Pair>,
    window: &dyn MeasuredWindow,
    report: OwnedFd,
    supervisor: Pid,
) -> ! {
    let _ = rustix::process::set_parent_process_death_signal(Some(Signal::KILL));
    if rustix::process::getppid() != Some(supervisor) {
        // The supervisor died before the death signal was set: nobody
        // would ever stop us.
        // SAFETY: `_exit` ends the process at once; nothing of ours runs.
        unsafe { libc::_exit(1) }
    }
    // A thread's panic (a peer library's) goes to the report, not to the
    // terminal, and ends the side.
    let (mechanism, pattern, role_name) = (spec.mechanism.clone(), spec.pattern, role.name());
    super::side_panics::install(
        report.as_raw_fd(),
        Box::new(move |line| {
            let report = SideReport {
                error: Some(format!("{mechanism} {pattern} ({role_name}): {line}")),
                error_kind: Some("panic".into()),
                received: sides::received(),
                ..Default::default()
            };
            serde_json::to_vec(&report).expect("a SideReport always serialises")
        }),
    );
    // The supervisor's Ctrl-C handler was inherited; a side just dies.
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: restoring the default disposition is always sound; no
        // handler of ours runs in this process afterwards.
        unsafe { libc::signal(signal, libc::SIG_DFL) };
    }
    // Shared memory a peer truncated or a full file system: a report, not
    // a death by signal. A failure to install it only costs that report.
    let _ = sigbus::report_on_sigbus(report.as_fd(), |cause| {
        let report = SideReport {
            error: Some(format!(
                "{} {} size {} ({}): {cause}",
                spec.mechanism,
                spec.pattern,
                spec.channel.size,
                role.name()
            )),
            ..Default::default()
        };
        serde_json::to_vec(&report).expect("a SideReport always serialises")
    });
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        side(spec, role, cpu, pair, window)
    }));
    let panicked = super::side_panics::first();
    let report_value = match result {
        Ok(Ok(r)) if panicked.is_none() => r,
        // A thread of the side (a peer library's) panicked, though the
        // side itself went on: the cell fails on that panic.
        Ok(Ok(r)) => SideReport {
            error: Some(format!(
                "{} {} ({}): {}",
                spec.mechanism,
                spec.pattern,
                role.name(),
                panicked.unwrap_or_default()
            )),
            error_kind: Some("panic".into()),
            ..r
        },
        Ok(Err(e)) => SideReport {
            error: Some(match panicked {
                Some(p) => format!("{}; {p}", sides::describe(spec, role.name(), &e)),
                None => sides::describe(spec, role.name(), &e),
            }),
            error_kind: Some(scribbler::classify(&e)),
            received: sides::received(),
            ..Default::default()
        },
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".into());
            SideReport {
                error: Some(format!(
                    "{} {} ({}): panicked: {what}",
                    spec.mechanism,
                    spec.pattern,
                    role.name()
                )),
                error_kind: Some("panic".into()),
                received: sides::received(),
                ..Default::default()
            }
        }
    };
    let failed = report_value.error.is_some();
    let json = serde_json::to_vec(&report_value).expect("a SideReport always serialises");
    super::side_panics::write_report(&json);
    drop(report);
    // SAFETY: `_exit` ends the process at once, without running the
    // supervisor's exit handlers or flushing its buffers a second time.
    unsafe { libc::_exit(if failed { 1 } else { 0 }) }
}

fn side(
    spec: &CellSpec,
    role: Role,
    cpu: Option<usize>,
    pair: Box<dyn Pair>,
    window: &dyn MeasuredWindow,
) -> Result<SideReport> {
    if let Some(cpu) = cpu {
        let mut set = rustix::thread::CpuSet::new();
        set.set(cpu);
        rustix::thread::sched_setaffinity(None, &set)
            .with_context(|| format!("pinning to CPU {cpu}"))?;
    }
    let mut ep: Box<dyn Endpoint> = match role {
        Role::Server => pair.server(),
        Role::Client => pair.client(),
    }
    .with_context(|| format!("opening the {} end", role.name()))?;
    let attached_at_ns = mono_ns();
    window.arrive();
    let mut report = match (spec.pattern, role) {
        (Pattern::Pingpong, Role::Client) => sides::pingpong_client(spec, &mut *ep, window),
        (Pattern::Pingpong, Role::Server) => sides::server(spec, &mut *ep, window, true),
        (Pattern::Stream, Role::Client) => sides::stream_client(spec, &mut *ep, window),
        (Pattern::Stream, Role::Server) => sides::server(spec, &mut *ep, window, false),
        (Pattern::Oneshot, Role::Client) => sides::oneshot_client(spec, &mut *ep, window),
        (Pattern::Oneshot, Role::Server) => sides::oneshot_server(spec, &mut *ep, window),
    }?;
    let t = mono_ns();
    drop(ep);
    report.teardown_ns = mono_ns() - t;
    report.attached_at_ns = attached_at_ns;
    report.received = sides::received();
    Ok(report)
}
