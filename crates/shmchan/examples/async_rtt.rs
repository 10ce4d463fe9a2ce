//! The round trip of an async receive against a blocking one, between two
//! processes over a rendezvous: a benchmark, not a test.
//!
//! ```sh
//! cargo run --release -p shmchan --features tokio --example async_rtt [round trips] [--same-core]
//! ```
//!
//! For each way of waiting, the program starts itself again as an echo
//! peer that waits the same way, sends 64-byte messages one at a time and
//! times each round trip. The ways alternate over three repetitions, in
//! one run, so that they see the same machine. The two processes are
//! pinned to the first two allowed CPUs (cross-core), or both to the
//! first with `--same-core`.

use std::process::{Command, Stdio};
use std::time::Instant;

use shmchan::tokio::{AsyncReceiver, AsyncSender};
use shmchan::{Error, Options, Wait};

const LEN: usize = 64;
const REPEATS: usize = 3;

#[derive(Clone, Copy, Debug)]
enum Way {
    /// Blocking calls, sleeping on the futex at once.
    Block,
    /// Blocking calls, spinning a while before the futex (the default).
    Adaptive,
    /// tokio (current-thread runtime), arming the bell at once.
    TokioBlock,
    /// tokio, looking as often as `Adaptive` spins before arming the bell.
    TokioAdaptive,
}

impl Way {
    const ALL: [Way; 4] = [
        Way::Block,
        Way::TokioBlock,
        Way::Adaptive,
        Way::TokioAdaptive,
    ];

    fn name(self) -> &'static str {
        match self {
            Way::Block => "block",
            Way::Adaptive => "adaptive",
            Way::TokioBlock => "tokio-block",
            Way::TokioAdaptive => "tokio-adaptive",
        }
    }

    fn is_async(self) -> bool {
        matches!(self, Way::TokioBlock | Way::TokioAdaptive)
    }

    fn parse(s: &str) -> Way {
        *Way::ALL.iter().find(|w| w.name() == s).expect("a way")
    }

    fn options(self) -> Options {
        match self {
            Way::Adaptive | Way::TokioAdaptive => Options::new(),
            Way::Block | Way::TokioBlock => Options::new().wait(Wait::Block),
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

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

/// The peer: echoes every message until the channel closes.
fn echo(way: Way, name: &str) -> Result<(), Error> {
    let (mut tx, mut rx) = way.options().connect_abstract(name)?.into_split();
    if way.is_async() {
        return runtime().block_on(async {
            let (mut tx, mut rx) = (AsyncSender::new(tx)?, AsyncReceiver::new(rx)?);
            let mut buf = [0u8; LEN];
            loop {
                match rx.recv_into(&mut buf).await {
                    Ok(n) => tx.send(&buf[..n]).await?,
                    Err(Error::Closed) => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        });
    }
    let mut buf = [0u8; LEN];
    loop {
        match rx.recv_into(&mut buf) {
            Ok(n) => tx.send(&buf[..n])?,
            Err(Error::Closed) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// One run of `n` round trips; the round trips in nanoseconds.
fn measure(way: Way, n: usize, there: usize) -> Result<Vec<u64>, Box<dyn std::error::Error>> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|e| e.to_string())?;
    let name = format!("shmchan-async-rtt-{:016x}", u64::from_le_bytes(b));
    let listener = way.options().bind_abstract(&name)?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--echo", way.name(), &name, &there.to_string()])
        .stdin(Stdio::null())
        .spawn()?;
    let (mut tx, mut rx) = listener.accept()?.into_split();
    let msg = [0x5Au8; LEN];
    let mut buf = [0u8; LEN];
    let mut rtts = Vec::with_capacity(n);
    let warm = n / 10;
    if way.is_async() {
        runtime().block_on(async {
            let (mut tx, mut rx) = (AsyncSender::new(tx)?, AsyncReceiver::new(rx)?);
            for i in 0..warm + n {
                let t = Instant::now();
                tx.send(&msg).await?;
                let got = rx.recv_into(&mut buf).await?;
                if i >= warm {
                    rtts.push(t.elapsed().as_nanos() as u64);
                }
                assert_eq!(&buf[..got], &msg[..]);
            }
            Ok::<(), Error>(())
        })?;
    } else {
        for i in 0..warm + n {
            let t = Instant::now();
            tx.send(&msg)?;
            let got = rx.recv_into(&mut buf)?;
            if i >= warm {
                rtts.push(t.elapsed().as_nanos() as u64);
            }
            assert_eq!(&buf[..got], &msg[..]);
        }
        drop(tx);
    }
    child.wait()?;
    Ok(rtts)
}

fn quantile(sorted: &[u64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--echo") {
        pin(args[4].parse()?)?;
        return Ok(echo(Way::parse(&args[2]), &args[3])?);
    }
    let same_core = args.iter().any(|a| a == "--same-core");
    let n: usize = args
        .iter()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .map_or(Ok(20_000), |s| s.parse())?;
    let (here, there) = (cpu(0)?, cpu(if same_core { 0 } else { 1 })?);
    pin(here)?;
    println!(
        "{n} round trips of {LEN} bytes per run, {REPEATS} runs per way, alternating; \
         this side on CPU {here}, the echo on CPU {there}"
    );
    let mut all: Vec<(Way, Vec<[f64; 3]>)> = Way::ALL.iter().map(|&w| (w, Vec::new())).collect();
    for _ in 0..REPEATS {
        for (way, runs) in &mut all {
            let mut rtts = measure(*way, n, there)?;
            rtts.sort_unstable();
            runs.push([
                quantile(&rtts, 0.5),
                quantile(&rtts, 0.99),
                quantile(&rtts, 0.999),
            ]);
        }
    }
    println!(
        "{:<9} {:>28} {:>28} {:>28}",
        "way", "p50 µs (3 runs)", "p99 µs", "p99.9 µs"
    );
    for (way, runs) in &all {
        let col = |k: usize| {
            runs.iter()
                .map(|r| format!("{:.1}", r[k]))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        println!(
            "{:<9} {:>28} {:>28} {:>28}",
            way.name(),
            col(0),
            col(1),
            col(2)
        );
    }
    Ok(())
}
