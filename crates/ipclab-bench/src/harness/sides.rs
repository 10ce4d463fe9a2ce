//! The loops each side runs in its own process.
//!
//! The client leads: it sends, times and decides when to stop, then calls
//! [`Endpoint::finish`]. The server follows until it sees
//! [`Received::Closed`]. Both check every byte they receive against what the
//! other must have sent (unless verification is off). The client ends its
//! warm-up after `warmup_ns` and publishes the first measured sequence
//! number ([`Window`]); the server's window holds the same messages.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, anyhow, bail};

use super::clock::{Stopwatch, cpu_ns, mono_ns, switches};
use super::pace::Schedule;
use super::spec::{CellSpec, Pattern, SideReport};
use super::window::MeasuredWindow;
use crate::payload::{Payload, Series, Verifier};
use crate::stats::new_histogram;
use crate::transport::{Endpoint, Received};

/// Messages between clock reads where a loop only needs to know whether
/// its time is up.
const CLOCK_EVERY: u64 = 16;

/// Messages a server may receive between the first measured one and
/// learning that it was the first (across hosts, where the window's
/// announcement and the messages travel on different connections). Its
/// CPU time and context switches are then counted from the moment it
/// learned, a few messages short.
const LATE_MAX: u64 = 64;

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

/// Context switches since a starting point (`getrusage`).
struct Switches((u64, u64));

impl Switches {
    fn start() -> Self {
        Switches(switches())
    }

    /// (voluntary, involuntary) since `start`.
    fn since(&self) -> (u64, u64) {
        let (v, i) = switches();
        (v.saturating_sub(self.0.0), i.saturating_sub(self.0.1))
    }
}

fn recorded(hist: &hdrhistogram::Histogram<u64>) -> Vec<(u64, u64)> {
    hist.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

/// Pingpong, client side: times every round trip. Closed loop, the next
/// round trip as soon as the last came back; or open loop at `spec.rate`,
/// each timed from when it was due ([`Schedule`]).
pub fn pingpong_client(
    spec: &CellSpec,
    ep: &mut dyn Endpoint,
    window: &dyn MeasuredWindow,
) -> Result<SideReport> {
    let io = Integrity::new(spec);
    let series = Series::new(spec.channel.size);
    let mut hist = new_histogram();
    let mut uncorrected = new_histogram();
    let mut cpus = CpuTrace::default();
    cpus.sample();
    let mut round_trip = |seq: u64| -> Result<()> {
        io.send(ep, series.request(seq), seq)?;
        if !io.recv(ep, series.reply(seq), seq)? {
            return Err(closed_early("server", seq));
        }
        Ok(())
    };
    let attached = mono_ns();
    let mut schedule = spec.rate.map(|rate| Schedule::new(rate, attached));
    let mut seq = 0;
    while window.warming(attached, spec.warmup_ns, mono_ns()) {
        if let Some(s) = schedule.as_mut() {
            s.wait_next();
        }
        round_trip(seq)?;
        seq += 1;
    }
    let (cpu0, begin, switches) = (cpu_ns(), mono_ns(), Switches::start());
    window
        .open(seq, begin)
        .context("publishing the measured window")?;
    if let Some(s) = schedule.as_mut() {
        s.restart(begin);
    }
    let mut t0 = begin;
    let mut last_sent = begin;
    let mut measured = 0;
    // Closed loop: each round trip timed in ticks of the cheapest clock
    // (one read per round trip, see `Stopwatch`), the histogram scaled to
    // nanoseconds at the end; whether time is up is asked of the monotonic
    // clock every `CLOCK_EVERY` round trips.
    let watch = Stopwatch::new();
    let rate = watch.rate();
    let mut tick = watch.now();
    loop {
        if let Some(n) = spec.iterations {
            if measured >= n {
                break;
            }
        } else if schedule.is_some() || measured % CLOCK_EVERY == 0 {
            let now = if schedule.is_some() { t0 } else { mono_ns() };
            if spec.enough(measured, now - begin) {
                break;
            }
        }
        match schedule.as_mut() {
            None => {
                round_trip(seq)?;
                let t1 = watch.now();
                hist.saturating_record(t1.wrapping_sub(tick));
                tick = t1;
            }
            Some(s) => {
                let due = s.wait_next();
                let sent = mono_ns();
                last_sent = sent;
                round_trip(seq)?;
                t0 = mono_ns();
                hist.saturating_record(t0 - due);
                uncorrected.saturating_record(t0 - sent);
            }
        }
        seq += 1;
        measured += 1;
        if measured % 1024 == 0 {
            cpus.sample();
        }
    }
    let (cpu1, end, (voluntary, involuntary)) = (cpu_ns(), mono_ns(), switches.since());
    cpus.sample();
    ep.finish().context("finish failed")?;
    let scale = if schedule.is_none() {
        rate.ns_per_tick()
    } else {
        1.0
    };
    Ok(SideReport {
        measured,
        total: seq,
        begin_ns: begin,
        wall_ns: end - begin,
        cpu_ns: cpu1 - cpu0,
        rounds: ep.rounds(),
        histogram: recorded(&hist)
            .into_iter()
            .map(|(ticks, n)| ((ticks as f64 * scale).round() as u64, n))
            .collect(),
        uncorrected: if schedule.is_some() {
            recorded(&uncorrected)
        } else {
            Vec::new()
        },
        paced_ns: schedule.as_ref().map_or(0, |s| {
            (last_sent - begin).saturating_add(s.interval_ns() as u64)
        }),
        voluntary_switches: voluntary,
        involuntary_switches: involuntary,
        cpus_seen: cpus.0,
        ..SideReport::default()
    })
}

/// Test hook: `IPCLAB_FAULT_STALL=<ms>:<seq>` makes a server sleep `ms`
/// milliseconds before it answers request `seq` (counted from 0 with the
/// warm-up), to show what a stall does to an open-loop run's percentiles.
fn stall_from_env() -> Option<(u64, std::time::Duration)> {
    let value = std::env::var("IPCLAB_FAULT_STALL").ok()?;
    let (ms, seq) = value.split_once(':')?;
    Some((
        seq.parse().ok()?,
        std::time::Duration::from_millis(ms.parse().ok()?),
    ))
}

/// The receiving side of pingpong and stream: takes messages until the
/// client finishes, replying to each when `reply` is set.
///
/// Its measured window holds the same messages as the client's: from the
/// first sequence number the client published in `window` on. The window's
/// time starts at the arrival of the message before that one (the last of
/// the warm-up), or at the client's start when there was no warm-up, so that
/// N messages span N intervals; it ends at the arrival of the N-th when the
/// count is known (`--iterations`), else when the client finishes.
pub fn server(
    spec: &CellSpec,
    ep: &mut dyn Endpoint,
    window: &dyn MeasuredWindow,
    reply: bool,
) -> Result<SideReport> {
    let io = Integrity::new(spec);
    let series = Series::new(spec.channel.size);
    let stall = stall_from_env();
    let mut cpus = CpuTrace::default();
    cpus.sample();
    let mut seq = 0;
    // (first measured seq, time, cpu time, switches) once the window is open.
    let mut opened: Option<(u64, u64, u64, Switches)> = None;
    // The last measured message, when the count is known, and when it came.
    let mut last = None;
    let mut ended: Option<(u64, u64, (u64, u64))> = None;
    // Until the window opens, the arrival time of each message (the warm-up
    // only: no clock read per message inside the window), and of the last
    // few, for a window announced late.
    let mut previous_arrival = 0;
    let mut arrivals = [0u64; LATE_MAX as usize];
    loop {
        if !io.recv(ep, series.request(seq), seq)? {
            break;
        }
        if opened.is_none() {
            let now = mono_ns();
            match window.first() {
                Some((first, client_begin)) if seq >= first => {
                    // Message `first` arrived `late` messages ago (only
                    // across hosts, where the window comes over another
                    // connection than the messages; always 0 here).
                    let late = seq - first;
                    if late >= LATE_MAX {
                        bail!(
                            "the measured window was announced {late} messages after its first \
                             message arrived (at most {LATE_MAX} are allowed for)"
                        );
                    }
                    let begin = if first == 0 {
                        client_begin
                    } else if late == 0 {
                        previous_arrival
                    } else {
                        arrivals[((first - 1) % LATE_MAX) as usize]
                    };
                    opened = Some((first, begin, cpu_ns(), Switches::start()));
                    last = spec
                        .iterations
                        .and_then(|n| n.checked_sub(1))
                        .map(|k| first + k);
                }
                _ => {
                    previous_arrival = now;
                    arrivals[(seq % LATE_MAX) as usize] = now;
                }
            }
        }
        if let Some((at, pause)) = stall
            && at == seq
        {
            std::thread::sleep(pause);
        }
        if reply {
            io.send(ep, series.reply(seq), seq)?;
        }
        if last == Some(seq) {
            let switches = opened.as_ref().map_or((0, 0), |o| o.3.since());
            ended = Some((mono_ns(), cpu_ns(), switches));
        }
        seq += 1;
        if seq % 1024 == 0 {
            cpus.sample();
        }
    }
    let (end, cpu_end, (voluntary, involuntary)) = ended.unwrap_or_else(|| {
        let switches = opened.as_ref().map_or((0, 0), |o| o.3.since());
        (mono_ns(), cpu_ns(), switches)
    });
    cpus.sample();
    let (first, begin, cpu0) = opened.map_or((seq, end, cpu_end), |o| (o.0, o.1, o.2));
    Ok(SideReport {
        measured: seq - first,
        total: seq,
        begin_ns: begin,
        wall_ns: end.saturating_sub(begin),
        cpu_ns: cpu_end - cpu0,
        voluntary_switches: voluntary,
        involuntary_switches: involuntary,
        rounds: ep.rounds(),
        cpus_seen: cpus.0,
        ..SideReport::default()
    })
}

/// Stream, client side: sends as fast as the channel takes messages.
pub fn stream_client(
    spec: &CellSpec,
    ep: &mut dyn Endpoint,
    window: &dyn MeasuredWindow,
) -> Result<SideReport> {
    let io = Integrity::new(spec);
    let series = Series::new(spec.channel.size);
    let mut cpus = CpuTrace::default();
    cpus.sample();
    let mut seq = 0;
    let attached = mono_ns();
    while seq % CLOCK_EVERY != 0 || window.warming(attached, spec.warmup_ns, mono_ns()) {
        io.send(ep, series.request(seq), seq)?;
        seq += 1;
    }
    let (cpu0, begin, switches) = (cpu_ns(), mono_ns(), Switches::start());
    window
        .open(seq, begin)
        .context("publishing the measured window")?;
    let mut measured = 0;
    loop {
        if let Some(n) = spec.iterations {
            if measured >= n {
                break;
            }
        } else if measured % CLOCK_EVERY == 0 && spec.enough(measured, mono_ns() - begin) {
            break;
        }
        io.send(ep, series.request(seq), seq)?;
        seq += 1;
        measured += 1;
        if measured % 1024 == 0 {
            cpus.sample();
        }
    }
    let (cpu1, end, (voluntary, involuntary)) = (cpu_ns(), mono_ns(), switches.since());
    cpus.sample();
    ep.finish().context("finish failed")?;
    Ok(SideReport {
        measured,
        total: seq,
        begin_ns: begin,
        wall_ns: end - begin,
        cpu_ns: cpu1 - cpu0,
        voluntary_switches: voluntary,
        involuntary_switches: involuntary,
        cpus_seen: cpus.0,
        ..SideReport::default()
    })
}

/// Oneshot, client side: one round trip on a channel made for it.
pub fn oneshot_client(
    spec: &CellSpec,
    ep: &mut dyn Endpoint,
    window: &dyn MeasuredWindow,
) -> Result<SideReport> {
    let io = Integrity::new(spec);
    let series = Series::new(spec.channel.size);
    let mut cpus = CpuTrace::default();
    cpus.sample();
    window
        .open(0, mono_ns())
        .context("publishing the measured window")?;
    io.send(ep, series.request(0), 0)?;
    if !io.recv(ep, series.reply(0), 0)? {
        return Err(closed_early("server", 0));
    }
    ep.finish().context("finish failed")?;
    cpus.sample();
    Ok(SideReport {
        measured: 1,
        total: 1,
        rounds: ep.rounds(),
        cpus_seen: cpus.0,
        ..SideReport::default()
    })
}

/// Oneshot, server side: answers the one request, then waits for the end.
pub fn oneshot_server(
    spec: &CellSpec,
    ep: &mut dyn Endpoint,
    window: &dyn MeasuredWindow,
) -> Result<SideReport> {
    let report = server(spec, ep, window, true)?;
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

/// Checks that both sides measured the same messages, as many as asked
/// (exactly `iterations`, or by duration at least one; see
/// [`CellSpec::enough`]): a loop that ended early is a failed cell, never a
/// short row.
pub fn check_counts(spec: &CellSpec, client: &SideReport, server: &SideReport) -> Result<()> {
    let (c, s) = (client.measured, server.measured);
    let unit = match spec.pattern {
        Pattern::Stream => "messages",
        Pattern::Pingpong | Pattern::Oneshot => "round trips",
    };
    let wanted = match spec.iterations {
        Some(n) => format!("exactly {n} (--iterations)"),
        None => "at least 1".to_string(),
    };
    let enough = match spec.iterations {
        Some(n) => c == n,
        None => c >= 1,
    };
    if c != s || !enough {
        bail!(
            "{} {} size {}: the client measured {c} {unit} and the server {s}; expected {wanted} on both sides",
            spec.mechanism,
            spec.pattern,
            spec.channel.size
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::spec::Placement;
    use crate::transport::ChannelConfig;

    fn spec(iterations: Option<u64>) -> CellSpec {
        CellSpec {
            mechanism: "pipe".into(),
            pattern: Pattern::Stream,
            channel: ChannelConfig {
                size: 64,
                segment_size: None,
                segments: 0,
            },
            placement: Placement::Unpinned,
            pairs: 1,
            cpus: None,
            rate: None,
            warmup_ns: 0,
            duration_ns: 0,
            iterations,
            min_iterations: 10,
            verify: true,
            timeout_ns: 1,
        }
    }

    fn sides(client: u64, server: u64) -> (SideReport, SideReport) {
        let side = |measured| SideReport {
            measured,
            ..SideReport::default()
        };
        (side(client), side(server))
    }

    #[test]
    fn a_short_or_empty_window_fails_the_cell() {
        let exact = spec(Some(20));
        let (c, s) = sides(20, 20);
        assert!(check_counts(&exact, &c, &s).is_ok());
        for (c, s) in [(20, 0), (20, 19), (0, 0), (19, 19), (20, 611)] {
            let (c, s) = sides(c, s);
            let e = check_counts(&exact, &c, &s).expect_err("a wrong count");
            assert!(e.to_string().starts_with("pipe stream size 64:"), "{e}");
        }
        let timed = spec(None);
        let (c, s) = sides(500, 500);
        assert!(check_counts(&timed, &c, &s).is_ok());
        for (c, s) in [(0, 0), (500, 499)] {
            let (c, s) = sides(c, s);
            assert!(check_counts(&timed, &c, &s).is_err());
        }
    }

    /// Messages `0..total` of `size` bytes, then the end.
    struct Scripted {
        next: u64,
        total: u64,
    }

    impl Endpoint for Scripted {
        fn send(&mut self, _: usize, _: crate::transport::Fill<'_>) -> io::Result<()> {
            Ok(())
        }

        fn recv(&mut self, len: usize, check: crate::transport::Check<'_>) -> io::Result<Received> {
            if self.next == self.total {
                return Ok(Received::Closed);
            }
            let mut buf = vec![0; len];
            Payload::request(self.next, len).fill(0, &mut buf);
            check(0, &buf);
            self.next += 1;
            Ok(Received::Message)
        }

        fn finish(&mut self) -> io::Result<()> {
            Ok(())
        }

        fn rounds(&self) -> u64 {
            self.next
        }
    }

    /// A window whose first measured message (`first`) becomes known only
    /// after `hidden` looks, as across hosts when the channel overtakes
    /// the announcement.
    struct Late {
        first: u64,
        hidden: std::cell::Cell<u64>,
    }

    impl MeasuredWindow for Late {
        fn arrive(&self) {}
        fn warming(&self, _: u64, _: u64, _: u64) -> bool {
            false
        }
        fn open(&self, _: u64, _: u64) -> io::Result<()> {
            Ok(())
        }
        fn first(&self) -> Option<(u64, u64)> {
            match self.hidden.get() {
                0 => Some((self.first, 0)),
                n => {
                    self.hidden.set(n - 1);
                    None
                }
            }
        }
    }

    #[test]
    fn a_window_announced_late_still_counts_from_its_first_message() {
        let mut exact = spec(Some(10));
        exact.channel.size = 64;
        for hidden in [0, 10, 14, 19] {
            let window = Late {
                first: 10,
                hidden: std::cell::Cell::new(hidden),
            };
            let mut ep = Scripted { next: 0, total: 20 };
            let report = server(&exact, &mut ep, &window, false).unwrap();
            assert_eq!(report.measured, 10, "announced after {hidden} looks");
            assert_eq!(report.total, 20);
        }
        // Later than the arrival times kept: an error, never a short count.
        let window = Late {
            first: 1,
            hidden: std::cell::Cell::new(LATE_MAX + 2),
        };
        let mut ep = Scripted {
            next: 0,
            total: 200,
        };
        let e = server(&exact, &mut ep, &window, false).unwrap_err();
        assert!(e.to_string().contains("announced"), "{e}");
    }
}
