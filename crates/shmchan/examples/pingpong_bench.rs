//! A bare ping-pong over shmchan's public API, between two processes: a
//! benchmark, not a test (issue 23; `scripts/floor.sh` runs it beside the
//! minimal C loop).
//!
//! ```sh
//! cargo run --release -p shmchan --example pingpong_bench [rtt|fresh] [round trips]
//! ```
//!
//! - `rtt` (the default): 64-byte messages, `send` and `recv_into`,
//!   `Wait::Spin`, the default capacity; prints the p50, p99 and mean
//!   round trip of the last `round trips` (default 2,000,000) after a
//!   warm-up of a tenth as many.
//! - `fresh`: 64-byte messages through channels of 4 MiB; prints the p99
//!   of the first `round trips` (default 20,000) round trips through a
//!   fresh pair of channels, and of as many again once the rings have gone
//!   round twice (warm).
//!
//! The program starts itself again as the echo peer; the two processes are
//! pinned to the first two CPUs they may run on.

use std::process::{Command, Stdio};
use std::time::Instant;

use shmchan::{DEFAULT_CAPACITY, Error, Options, Receiver, Sender, Wait};

const LEN: usize = 64;

/// The `i`-th CPU this process may run on (modulo their number).
fn cpu(i: usize) -> std::io::Result<usize> {
    use rustix::thread::{CpuSet, sched_getaffinity};
    let allowed = sched_getaffinity(None)?;
    let cpus: Vec<usize> = (0..CpuSet::MAX_CPU)
        .filter(|&c| allowed.is_set(c))
        .collect();
    Ok(cpus[i % cpus.len()])
}

/// Pins this process to `cpu`.
fn pin(cpu: usize) -> std::io::Result<()> {
    let mut one = rustix::thread::CpuSet::new();
    one.set(cpu);
    rustix::thread::sched_setaffinity(None, &one)?;
    Ok(())
}

fn options(capacity: usize) -> Options {
    Options::new().capacity(capacity).wait(Wait::Spin)
}

/// The peer: opens the two channels by name and echoes every message
/// until the channel closes.
fn echo(capacity: usize, to_me: &str, to_you: &str) -> Result<(), Error> {
    let mut rx = options(capacity).open_receiver(to_me)?;
    let mut tx = options(capacity).open_sender(to_you)?;
    let mut buf = [0u8; LEN];
    loop {
        match rx.recv_into(&mut buf) {
            Ok(n) => tx.send(&buf[..n])?,
            Err(Error::Closed) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// `n` timed round trips (ns each) of a message that carries its number.
fn round_trips(tx: &mut Sender, rx: &mut Receiver, n: usize) -> Result<Vec<u64>, Error> {
    let mut msg = [0x5Au8; LEN];
    let mut buf = [0u8; LEN];
    let mut rtts = Vec::with_capacity(n);
    let mut last = Instant::now();
    for i in 0..n {
        msg[..8].copy_from_slice(&(i as u64).to_le_bytes());
        tx.send(&msg)?;
        let got = rx.recv_into(&mut buf)?;
        assert_eq!(&buf[..got], &msg[..], "the echo changed message {i}");
        let now = Instant::now();
        rtts.push((now - last).as_nanos() as u64);
        last = now;
    }
    Ok(rtts)
}

fn quantile(rtts: &mut [u64], q: f64) -> u64 {
    rtts.sort_unstable();
    rtts[((rtts.len() - 1) as f64 * q).round() as usize]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--echo") {
        pin(args[5].parse()?)?;
        return Ok(echo(args[2].parse()?, &args[3], &args[4])?);
    }
    let mode = args.get(1).map_or("rtt", String::as_str);
    let fresh = match mode {
        "rtt" => false,
        "fresh" => true,
        other => return Err(format!("unknown mode {other} (rtt or fresh)").into()),
    };
    let n: usize = match args.get(2) {
        Some(s) => s.parse()?,
        None if fresh => 20_000,
        None => 2_000_000,
    };
    let capacity = if fresh { 4 << 20 } else { DEFAULT_CAPACITY };
    let (here, there) = (cpu(0)?, cpu(1)?);
    pin(here)?;
    let mut tx = options(capacity).create_sender()?;
    let mut rx = options(capacity).create_receiver()?;
    let mut child = Command::new(std::env::current_exe()?)
        .arg("--echo")
        .arg(capacity.to_string())
        .arg(tx.name().expect("a named channel"))
        .arg(rx.name().expect("a named channel"))
        .arg(there.to_string())
        .stdin(Stdio::null())
        .spawn()?;
    if fresh {
        let mut first = round_trips(&mut tx, &mut rx, n)?;
        // Twice round the ring (a record of 64 bytes takes 80), untimed.
        let lap = capacity / 80;
        round_trips(&mut tx, &mut rx, 2 * lap)?;
        let mut warm = round_trips(&mut tx, &mut rx, n)?;
        let (f, w) = (quantile(&mut first, 0.99), quantile(&mut warm, 0.99));
        println!(
            "shmchan-fresh size {LEN} capacity {capacity} round_trips {n} fresh_p99_ns {f} warm_p99_ns {w} ratio {:.2}",
            f as f64 / w as f64
        );
    } else {
        round_trips(&mut tx, &mut rx, n / 10)?;
        let t = Instant::now();
        let mut rtts = round_trips(&mut tx, &mut rx, n)?;
        let mean = t.elapsed().as_nanos() as f64 / n as f64;
        let (p50, p99) = (quantile(&mut rtts, 0.5), quantile(&mut rtts, 0.99));
        println!(
            "shmchan-bare size {LEN} round_trips {n} mean_ns {mean:.1} p50_ns {p50} p99_ns {p99}"
        );
    }
    drop(tx);
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("the echo failed: {status}").into());
    }
    Ok(())
}
