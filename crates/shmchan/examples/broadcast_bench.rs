//! The broadcast's figures (issue 25's goals), with subscribers as
//! processes of their own (this binary run again with `--child`):
//!
//! - publisher CPU time per 64-byte message at 1, 16 and 64 subscribers
//!   (`CLOCK_THREAD_CPUTIME_ID` of the publishing thread over the run),
//!   under `Overwrite` (the publish alone: it never waits) and `Block`
//!   (lossless: the time includes its waits for the slowest subscriber);
//! - delivered messages per second per subscriber (the median subscriber:
//!   its messages over the time from its first message to the close);
//! - publish-to-last-delivery latency with 16 adaptive subscribers: each
//!   message carries its `CLOCK_MONOTONIC` send time, each subscriber
//!   notes when it got it, and a message's latency is the latest of its
//!   subscribers' minus the send time; the publisher sleeps 200 µs between
//!   messages.
//!
//! ```text
//! cargo run --release -p shmchan --example broadcast_bench [-- MESSAGES [spin|adaptive|block]]
//! ```
//!
//! A measurement, not a test: nothing here asserts a speed. Run on a
//! quiet machine, and compare within one run.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use shmchan::broadcast::{Options, Policy};
use shmchan::{Error, Wait};

const LEN: usize = 64;
const LATENCY_MESSAGES: usize = 2000;
const PACE: Duration = Duration::from_micros(200);

fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        let wait = parse_wait(args.get(2).map(String::as_str).unwrap_or("adaptive"));
        return match child(
            args.get(1).map(String::as_str) == Some("latency"),
            wait.unwrap_or_default(),
        ) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: subscriber: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let usage = || {
        eprintln!("usage: broadcast_bench [MESSAGES] [spin|adaptive|block]");
        ExitCode::from(2)
    };
    let messages: u64 = match args.first().map(|a| a.parse()) {
        None => 200_000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => return usage(),
    };
    let wait = args.get(1).map_or("adaptive", String::as_str);
    if parse_wait(wait).is_none() || args.len() > 2 {
        return usage();
    }
    match bench(messages, wait) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_wait(s: &str) -> Option<Wait> {
    match s {
        "spin" => Some(Wait::Spin),
        "adaptive" => Some(Wait::default()),
        "block" => Some(Wait::Block),
        _ => None,
    }
}

/// A subscriber process: joins by the descriptors on stdin, says so,
/// receives until the close, and reports on its socket: received, lost,
/// nanoseconds from its first message to the close; then (latency runs)
/// its receive times.
fn child(latency: bool, wait: Wait) -> Result<(), Error> {
    let mut sock =
        UnixStream::from(std::os::fd::AsFd::as_fd(&std::io::stdin()).try_clone_to_owned()?);
    let mut sub = Options::new().wait(wait).recv_subscriber(&sock)?;
    sock.write_all(b"j")?;
    let (mut received, mut lost, mut first) = (0u64, 0u64, None);
    let mut times = Vec::new();
    let mut buf = [0u8; LEN];
    loop {
        match sub.recv_into(&mut buf) {
            Ok(_) => {
                let t = now_ns();
                first.get_or_insert(t);
                received += 1;
                if latency {
                    let seq = u64::from_le_bytes(buf[..8].try_into().unwrap());
                    times.push((seq, t));
                }
            }
            Err(Error::Lagged(n)) => lost += n,
            Err(Error::Closed) => break,
            Err(e) => return Err(e),
        }
    }
    let elapsed = first.map_or(0, |f| now_ns() - f);
    writeln!(sock, "{received} {lost} {elapsed}")?;
    for (seq, t) in times {
        sock.write_all(&seq.to_le_bytes())?;
        sock.write_all(&t.to_le_bytes())?;
    }
    Ok(())
}

struct Sub {
    child: Child,
    sock: UnixStream,
}

fn start(
    n: usize,
    p: &shmchan::broadcast::Publisher,
    latency: bool,
    wait: &str,
) -> Result<Vec<Sub>, Error> {
    let exe = std::env::current_exe()?;
    let mut subs = Vec::new();
    for _ in 0..n {
        let (here, there) = UnixStream::pair()?;
        let mut cmd = Command::new(&exe);
        cmd.args(["--child", if latency { "latency" } else { "rate" }, wait]);
        let child = cmd
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(there)))
            .stdout(Stdio::null())
            .spawn()?;
        p.send_to(&here)?;
        here.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut b = [0u8; 1];
        (&here).read_exact(&mut b)?;
        subs.push(Sub { child, sock: here });
    }
    Ok(subs)
}

/// What a subscriber reported.
struct Report {
    received: u64,
    lost: u64,
    /// Nanoseconds from its first message to the close.
    elapsed: u64,
    /// (message, receive time) of a latency run.
    times: Vec<(u64, u64)>,
}

/// Reads each subscriber's report line (and receive times).
fn finish(subs: Vec<Sub>, latency: bool) -> Result<Vec<Report>, Error> {
    let mut out = Vec::new();
    for mut s in subs {
        let mut all = Vec::new();
        s.sock.read_to_end(&mut all)?;
        let nl = all
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(Error::Corrupt("no report"))?;
        let line = String::from_utf8_lossy(&all[..nl]).to_string();
        let f: Vec<u64> = line.split(' ').filter_map(|x| x.parse().ok()).collect();
        let mut times = Vec::new();
        if latency {
            for rec in all[nl + 1..].chunks_exact(16) {
                let seq = u64::from_le_bytes(rec[..8].try_into().unwrap());
                let t = u64::from_le_bytes(rec[8..].try_into().unwrap());
                times.push((seq, t));
            }
        }
        let status = s.child.wait()?;
        if !status.success() || f.len() != 3 {
            return Err(Error::Corrupt("a subscriber failed"));
        }
        out.push(Report {
            received: f[0],
            lost: f[1],
            elapsed: f[2],
            times,
        });
    }
    Ok(out)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn throughput(subs: usize, policy: Policy, messages: u64, wait: &str) -> Result<(), Error> {
    let mut p = Options::new()
        .capacity(1024)
        .message_size(LEN)
        .max_subscribers(subs as u32)
        .policy(policy)
        .wait(Wait::default())
        .create_publisher()?;
    let children = start(subs, &p, false, wait)?;
    let mut msg = [0u8; LEN];
    let (cpu0, t0) = (thread_cpu_ns(), Instant::now());
    for seq in 0..messages {
        msg[..8].copy_from_slice(&seq.to_le_bytes());
        p.send(&msg)?;
    }
    let (cpu, wall) = (thread_cpu_ns() - cpu0, t0.elapsed());
    drop(p);
    let reports = finish(children, false)?;
    let rates: Vec<f64> = reports
        .iter()
        .map(|r| r.received as f64 / (r.elapsed.max(1) as f64 / 1e9))
        .collect();
    let lost: u64 = reports.iter().map(|r| r.lost).sum();
    let got: u64 = reports.iter().map(|r| r.received).sum();
    println!(
        "{:<9} {:>4}  {:>10.1}  {:>10.1}  {:>14.0}  {:>7.2}%",
        format!("{policy:?}"),
        subs,
        cpu as f64 / messages as f64,
        wall.as_nanos() as f64 / messages as f64,
        median(rates),
        100.0 * lost as f64 / (got + lost).max(1) as f64,
    );
    Ok(())
}

fn latency(subs: usize, wait: &str) -> Result<(), Error> {
    let mut p = Options::new()
        .capacity(1024)
        .message_size(LEN)
        .max_subscribers(subs as u32)
        .policy(Policy::Block)
        .create_publisher()?;
    let children = start(subs, &p, true, wait)?;
    let mut msg = [0u8; LEN];
    let mut sent = Vec::with_capacity(LATENCY_MESSAGES);
    for seq in 0..LATENCY_MESSAGES as u64 {
        // Asleep between messages (a spinning publisher would take one of
        // the machine's CPUs from the subscribers).
        std::thread::sleep(PACE);
        msg[..8].copy_from_slice(&seq.to_le_bytes());
        let t = now_ns();
        sent.push(t);
        p.send(&msg)?;
    }
    drop(p);
    let reports = finish(children, true)?;
    let mut last = vec![0u64; LATENCY_MESSAGES];
    for r in &reports {
        for &(seq, t) in &r.times {
            let l = &mut last[seq as usize];
            *l = (*l).max(t);
        }
    }
    let mut lat: Vec<f64> = last
        .iter()
        .zip(&sent)
        .map(|(&l, &s)| l.saturating_sub(s) as f64 / 1e3)
        .collect();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let q = |f: f64| lat[((lat.len() - 1) as f64 * f) as usize];
    println!(
        "publish-to-last-delivery, {subs} {wait} subscribers, a sleep of {} us between messages: p50 {:.1} us, p90 {:.1} us, p99 {:.1} us",
        PACE.as_micros(),
        q(0.5),
        q(0.9),
        q(0.99)
    );
    Ok(())
}

fn bench(messages: u64, wait: &str) -> Result<(), Error> {
    println!("{messages} messages of {LEN} bytes; subscribers are processes that wait: {wait}");
    println!("(Overwrite: the publisher never waits, so subscribers that are not scheduled");
    println!(" are lapped: their rate is over the few messages they got; Block: lossless,");
    println!(" the publisher's CPU includes its waits for the slowest subscriber)");
    println!("policy    subs  pub CPU ns/msg  wall ns/msg  msgs/s/sub (median)  lost");
    for policy in [Policy::Overwrite, Policy::Block] {
        for subs in [1, 16, 64] {
            throughput(subs, policy, messages, wait)?;
        }
    }
    latency(16, wait)?;
    Ok(())
}
