//! The loops each side runs in its own process.
//!
//! The client leads: it sends, times and decides when to stop, then calls
//! [`Endpoint::finish`]. The server follows until it sees
//! [`Received::Closed`]. Both check every byte they receive against what the
//! other must have sent (unless verification is off), and both start the
//! measured window once `warmup_ns` has passed on their own side.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, anyhow, bail};

use super::clock::{cpu_ns, mono_ns};
use super::spec::{CellSpec, SideReport};
use crate::payload::{Payload, Verifier};
use crate::stats::new_histogram;
use crate::transport::{Endpoint, Received};

/// Messages between clock reads where a loop only needs to know whether
/// its time is up.
const CLOCK_EVERY: u64 = 16;

/// Messages this side process has received and verified (each side is
/// its own process, so one counter per side).
static RECEIVED: AtomicU64 = AtomicU64::new(0);

/// Messages received and verified so far by this side.
pub fn received() -> u64 {
    // Relaxed: read by the same thread that counts.
    RECEIVED.load(Ordering::Relaxed)
}

/// The payload check of one side.
struct Integrity<'a> {
    spec: &'a CellSpec,
    /// Test hook: flip one byte of this outgoing message.
    corrupt: Option<u64>,
}

impl<'a> Integrity<'a> {
    fn new(spec: &'a CellSpec) -> Self {
        let corrupt = std::env::var("IPCLAB_FAULT_CORRUPT_SEQ")
            .ok()
            .and_then(|s| s.parse().ok());
        Integrity { spec, corrupt }
    }

    fn send(&self, ep: &mut dyn Endpoint, payload: Payload, seq: u64) -> Result<()> {
        let size = self.spec.channel.size;
        let corrupt = self.corrupt == Some(seq);
        if !self.spec.verify && !corrupt {
            return ep.send(size, &mut |_, _| {}).context("send failed");
        }
        ep.send(size, &mut |offset, buf| {
            payload.fill(offset, buf);
            if corrupt && offset == 0 && !buf.is_empty() {
                buf[buf.len() / 2] ^= 0x40;
            }
        })
        .context("send failed")
    }

    /// Receives message `seq`; `Ok(false)` when the peer finished instead.
    fn recv(&self, ep: &mut dyn Endpoint, payload: Payload, seq: u64) -> Result<bool> {
        let size = self.spec.channel.size;
        if !self.spec.verify {
            return Ok(
                ep.recv(size, &mut |_, _| {}).context("receive failed")? == Received::Message
            );
        }
        let mut verifier = Verifier::new(payload);
        match ep.recv(size, &mut |offset, chunk| verifier.check(offset, chunk)) {
            Ok(Received::Closed) => return Ok(false),
            Ok(Received::Message) => {}
            Err(e) => return Err(e).context("receive failed"),
        }
        verifier.finish().map_err(|m| {
            anyhow!(
                "integrity error: {} size {} sequence {seq}: {m}",
                self.spec.mechanism,
                size
            )
        })?;
        // Relaxed, and a load plus a store rather than a locked
        // read-modify-write: only this thread writes or reads the count, and
        // this runs once per message on the measured path.
        RECEIVED.store(RECEIVED.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        Ok(true)
    }
}

/// Records the CPUs a side runs on, without a system call per message
/// (`sched_getcpu` is answered by the vDSO).
#[derive(Default)]
struct CpuTrace(Vec<usize>);

impl CpuTrace {
    fn sample(&mut self) {
        if let Some(cpu) = rustix::thread::sched_getcpu().into()
            && !self.0.contains(&cpu)
        {
            self.0.push(cpu);
            self.0.sort_unstable();
        }
    }
}

fn closed_early(who: &str, seq: u64) -> anyhow::Error {
    anyhow!("the {who} closed the channel after {seq} messages, before the run was over")
}

/// Pingpong, client side: times every round trip.
pub fn pingpong_client(spec: &CellSpec, ep: &mut dyn Endpoint) -> Result<SideReport> {
    let io = Integrity::new(spec);
    let size = spec.channel.size;
    let mut hist = new_histogram();
    let mut cpus = CpuTrace::default();
    cpus.sample();
    let mut round_trip = |seq: u64| -> Result<()> {
        io.send(ep, Payload::request(seq, size), seq)?;
        if !io.recv(ep, Payload::reply(seq, size), seq)? {
            return Err(closed_early("server", seq));
        }
        Ok(())
    };
    let mut seq = 0;
    let warm_end = mono_ns() + spec.warmup_ns;
    while mono_ns() < warm_end {
        round_trip(seq)?;
        seq += 1;
    }
    let (cpu0, begin) = (cpu_ns(), mono_ns());
    let mut t0 = begin;
    let mut measured = 0;
    loop {
        if let Some(n) = spec.iterations {
            if measured >= n {
                break;
            }
        } else if measured >= spec.min_iterations && t0 - begin >= spec.duration_ns {
            break;
        }
        round_trip(seq)?;
        let t1 = mono_ns();
        hist.saturating_record(t1 - t0);
        t0 = t1;
        seq += 1;
        measured += 1;
        if measured % 1024 == 0 {
            cpus.sample();
        }
    }
    let (cpu1, end) = (cpu_ns(), mono_ns());
    cpus.sample();
    ep.finish().context("finish failed")?;
    Ok(SideReport {
        measured,
        total: seq,
        wall_ns: end - begin,
        cpu_ns: cpu1 - cpu0,
        rounds: ep.rounds(),
        histogram: hist
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect(),
        cpus_seen: cpus.0,
        ..SideReport::default()
    })
}

/// The receiving side of pingpong and stream: takes messages until the
/// client finishes, replying to each when `reply` is set.
pub fn server(spec: &CellSpec, ep: &mut dyn Endpoint, reply: bool) -> Result<SideReport> {
    let io = Integrity::new(spec);
    let size = spec.channel.size;
    let mut cpus = CpuTrace::default();
    cpus.sample();
    let mut seq = 0;
    // The measured window opens at the first message after the warm-up.
    let mut window: Option<(u64, u64, u64, u64)> = None; // (seq, time, cpu, rounds)
    let mut warm_end = u64::MAX;
    loop {
        if !io.recv(ep, Payload::request(seq, size), seq)? {
            break;
        }
        if window.is_none() {
            if seq == 0 {
                warm_end = mono_ns() + spec.warmup_ns;
            }
            if (seq % CLOCK_EVERY == 0 || reply) && mono_ns() >= warm_end {
                window = Some((seq, mono_ns(), cpu_ns(), ep.rounds()));
            }
        }
        if reply {
            io.send(ep, Payload::reply(seq, size), seq)?;
        }
        seq += 1;
        if seq % 1024 == 0 {
            cpus.sample();
        }
    }
    let (end, cpu_end) = (mono_ns(), cpu_ns());
    cpus.sample();
    let (first, begin, cpu0, _) = window.unwrap_or((seq, end, cpu_end, ep.rounds()));
    // With replies, the message that opened the window was itself served
    // inside it; without, the window runs from its arrival to the last one.
    let measured = if reply {
        seq - first
    } else {
        (seq - first).saturating_sub(1)
    };
    Ok(SideReport {
        measured,
        total: seq,
        wall_ns: end - begin,
        cpu_ns: cpu_end - cpu0,
        rounds: ep.rounds(),
        cpus_seen: cpus.0,
        ..SideReport::default()
    })
}

/// Stream, client side: sends as fast as the channel takes messages.
pub fn stream_client(spec: &CellSpec, ep: &mut dyn Endpoint) -> Result<SideReport> {
    let io = Integrity::new(spec);
    let size = spec.channel.size;
    let mut cpus = CpuTrace::default();
    cpus.sample();
    let mut seq = 0;
    let warm_end = mono_ns() + spec.warmup_ns;
    while seq % CLOCK_EVERY != 0 || mono_ns() < warm_end {
        io.send(ep, Payload::request(seq, size), seq)?;
        seq += 1;
    }
    let (cpu0, begin) = (cpu_ns(), mono_ns());
    let mut measured = 0;
    loop {
        if let Some(n) = spec.iterations {
            if measured >= n {
                break;
            }
        } else if measured % CLOCK_EVERY == 0
            && measured >= spec.min_iterations
            && mono_ns() - begin >= spec.duration_ns
        {
            break;
        }
        io.send(ep, Payload::request(seq, size), seq)?;
        seq += 1;
        measured += 1;
        if measured % 1024 == 0 {
            cpus.sample();
        }
    }
    let (cpu1, end) = (cpu_ns(), mono_ns());
    cpus.sample();
    ep.finish().context("finish failed")?;
    Ok(SideReport {
        measured,
        total: seq,
        wall_ns: end - begin,
        cpu_ns: cpu1 - cpu0,
        cpus_seen: cpus.0,
        ..SideReport::default()
    })
}

/// Oneshot, client side: one round trip on a channel made for it.
pub fn oneshot_client(spec: &CellSpec, ep: &mut dyn Endpoint) -> Result<SideReport> {
    let io = Integrity::new(spec);
    let size = spec.channel.size;
    io.send(ep, Payload::request(0, size), 0)?;
    if !io.recv(ep, Payload::reply(0, size), 0)? {
        return Err(closed_early("server", 0));
    }
    ep.finish().context("finish failed")?;
    Ok(SideReport {
        measured: 1,
        total: 1,
        rounds: ep.rounds(),
        ..SideReport::default()
    })
}

/// Oneshot, server side: answers the one request, then waits for the end.
pub fn oneshot_server(spec: &CellSpec, ep: &mut dyn Endpoint) -> Result<SideReport> {
    let report = server(spec, ep, true)?;
    if report.total != 1 {
        bail!("oneshot server took {} requests, expected 1", report.total);
    }
    Ok(report)
}

/// Turns an I/O error of a side into one line naming the cell.
pub fn describe(spec: &CellSpec, side: &str, e: &anyhow::Error) -> String {
    let root = e.root_cause();
    let kind = root.downcast_ref::<io::Error>().map(|e| e.kind());
    let mut line = format!(
        "{} {} size {} ({side}): {e:#}",
        spec.mechanism, spec.pattern, spec.channel.size
    );
    if kind == Some(io::ErrorKind::BrokenPipe) {
        line.push_str(" (the peer went away)");
    }
    line
}
