//! The wait set's figures: one server thread answering closed-loop
//! client processes (64-byte requests, each echo checked byte for byte),
//! with 1 and 64 clients, for the wait set sleeping on futexes and on its
//! bells, and beside it the same server shape over Unix stream sockets
//! under epoll. Per row: the server thread's CPU time per request (user
//! and system, `CLOCK_THREAD_CPUTIME_ID`), and the clients' round trips
//! (p50, p99).
//!
//! ```text
//! cargo run --release -p shmchan --example waitset_bench -- [--rounds N] [--clients 1,64] [--pin none|cross|same]
//! ```
//!
//! `--pin cross` puts the server on CPU 0 and every client on CPU 1,
//! `--pin same` everything on CPU 0; by default the scheduler places
//! them, and on a 2-CPU machine a wake-up costs 3-5 µs on one CPU and
//! 25-100 µs across, so unpinned rows of one run may differ by that.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use rustix::event::epoll;
use shmchan::waitset::Backend;
use shmchan::{Error, Options, Receiver, Sender, Wait, WaitSet};

const LEN: usize = 64;
const MODES: [Mode; 4] = [Mode::Futex, Mode::Bells, Mode::Sockets, Mode::FutexAdaptive];
/// Round trips each client makes before its measured ones.
const WARMUP: usize = 200;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Futex,
    Bells,
    Sockets,
    /// The futex set with the default `Wait::Adaptive` (the others block
    /// at once).
    FutexAdaptive,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Futex => "waitset-futex",
            Mode::Bells => "waitset-epoll-bells",
            Mode::Sockets => "epoll-unix-sockets",
            Mode::FutexAdaptive => "waitset-futex-adaptive",
        }
    }

    fn parse(s: &str) -> Option<Mode> {
        MODES.into_iter().find(|m| m.name() == s)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--client") {
        return match client(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: client: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let mut rounds = 2000usize;
    let mut pin = Pin::None;
    let mut counts = vec![1usize, 64];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let value = it.next();
        let parsed = match (a.as_str(), value) {
            ("--rounds", Some(v)) => v.parse().map(|n| rounds = n).ok(),
            ("--pin", Some(v)) => {
                let chosen = match v.as_str() {
                    "none" => Some(Pin::None),
                    "cross" => Some(Pin::Cross),
                    "same" => Some(Pin::Same),
                    _ => None,
                };
                chosen.map(|p| pin = p)
            }
            ("--clients", Some(v)) => v
                .split(',')
                .map(str::parse)
                .collect::<Result<Vec<usize>, _>>()
                .map(|c| counts = c)
                .ok(),
            _ => None,
        };
        if parsed.is_none() || rounds == 0 || counts.contains(&0) {
            eprintln!(
                "usage: waitset_bench [--rounds N] [--clients N,N...] [--pin none|cross|same]"
            );
            return ExitCode::from(2);
        }
    }
    println!(
        "{:<22} {:>7} {:>5} {:>9} {:>14} {:>10} {:>10}",
        "server", "clients", "idle", "requests", "CPU/request", "p50 RTT", "p99 RTT"
    );
    let mut rows = Vec::new();
    // Each count of closed-loop clients; and one client with as many
    // registered as the largest count, the others idle (a hand-off that
    // must sleep and wake with every end registered).
    let most = counts.iter().copied().max().unwrap_or(1);
    let mut shapes: Vec<(usize, usize)> = counts.iter().map(|&c| (c, 0)).collect();
    if most > 1 {
        shapes.insert(1.min(shapes.len()), (1, most - 1));
    }
    for &(clients, idle) in &shapes {
        for mode in MODES {
            // Each client's measured rounds: the same total work per row.
            let each = (rounds * 8 / clients).max(rounds / 4).max(50);
            match run(mode, clients, idle, each, pin) {
                Ok(row) => {
                    println!(
                        "{:<22} {:>7} {:>5} {:>9} {:>11.2} us {:>7.1} us {:>7.1} us",
                        mode.name(),
                        clients,
                        idle,
                        row.requests,
                        row.cpu_per_request * 1e6,
                        row.p50 * 1e6,
                        row.p99 * 1e6
                    );
                    if idle == 0 {
                        rows.push((mode, clients, row));
                    }
                }
                Err(e) => {
                    eprintln!("error: {} with {clients} clients: {e}", mode.name());
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    let find = |m: Mode, c: usize| rows.iter().find(|r| r.0 == m && r.1 == c).map(|r| &r.2);
    let (lo, hi) = (counts[0], *counts.last().unwrap());
    if lo != hi {
        for mode in MODES {
            if let (Some(a), Some(b)) = (find(mode, lo), find(mode, hi)) {
                println!(
                    "{}: CPU/request at {hi} clients / at {lo}: {:.2} (goal for the wait set: <= 1.5)",
                    mode.name(),
                    b.cpu_per_request / a.cpu_per_request
                );
            }
        }
    }
    for c in &counts {
        if let (Some(w), Some(b), Some(s)) = (
            find(Mode::Futex, *c),
            find(Mode::Bells, *c),
            find(Mode::Sockets, *c),
        ) {
            println!(
                "{c} clients: p50 RTT / epoll-unix-sockets': futex {:.2}, bells {:.2} (goal: <= 1)",
                w.p50 / s.p50,
                b.p50 / s.p50
            );
        }
    }
    ExitCode::SUCCESS
}

#[derive(Clone, Copy, PartialEq)]
enum Pin {
    None,
    Cross,
    Same,
}

/// Moves this thread (and the processes it spawns next) to `cpu`.
fn to_cpu(cpu: usize) -> std::io::Result<()> {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set)?;
    Ok(())
}

struct Row {
    requests: u64,
    cpu_per_request: f64,
    p50: f64,
    p99: f64,
}

fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn fresh_name() -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("getrandom");
    format!("shmchan-waitset-bench-{:016x}", u64::from_le_bytes(b))
}

/// One row: `clients` processes of this binary, each `each` measured
/// round trips after the warm-up, against a server in this thread.
/// `idle` more clients connect and only wait for the server to close.
fn run(
    mode: Mode,
    clients: usize,
    idle: usize,
    each: usize,
    pin: Pin,
) -> Result<Row, Box<dyn std::error::Error>> {
    // The children inherit the CPUs of the thread that spawns them.
    match pin {
        Pin::None => {}
        Pin::Cross => to_cpu(1)?,
        Pin::Same => to_cpu(0)?,
    }
    let name = fresh_name();
    let exe = std::env::current_exe()?;
    let rounds = each.to_string();
    let mut n = 0;
    let mut spawn = || {
        n += 1;
        let what = if n <= clients {
            rounds.as_str()
        } else {
            "idle"
        };
        Command::new(&exe)
            .args(["--client", mode.name(), &name, what])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
    };
    let total = clients + idle;
    let mut children = Vec::new();
    let (requests, cpu) = if mode == Mode::Sockets {
        let listener = UnixListener::bind_addr(&SocketAddr::from_abstract_name(&name)?)?;
        for _ in 0..total {
            children.push(spawn()?);
        }
        if pin != Pin::None {
            to_cpu(0)?;
        }
        let streams: Vec<UnixStream> = (0..total)
            .map(|_| listener.accept().map(|(s, _)| s))
            .collect::<Result<_, _>>()?;
        serve_sockets(streams, clients)?
    } else {
        let listener = Options::new().wait(Wait::Block).bind_abstract(&name)?;
        for _ in 0..total {
            children.push(spawn()?);
        }
        if pin != Pin::None {
            to_cpu(0)?;
        }
        let (backend, policy) = match mode {
            Mode::Bells => (Backend::Epoll, Wait::Block),
            Mode::FutexAdaptive => (Backend::Futex, Wait::default()),
            _ => (Backend::Futex, Wait::Block),
        };
        let mut set = WaitSet::with_backend(backend).policy(policy);
        let mut txs = Vec::new();
        for key in 0..total {
            let (tx, rx) = listener.accept()?.into_split();
            set.add(key, rx)?;
            txs.push(tx);
        }
        serve_set(set, txs, clients)?
    };
    let mut rtts = Vec::new();
    for mut child in children {
        let mut out = Vec::new();
        child.stdout.take().expect("piped").read_to_end(&mut out)?;
        let status = child.wait()?;
        if !status.success() {
            return Err(format!("a client failed: {status}").into());
        }
        rtts.extend(
            out.chunks_exact(4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes"))),
        );
    }
    if rtts.is_empty() {
        return Err("no round trip measured".into());
    }
    rtts.sort_unstable();
    let at = |q: f64| f64::from(rtts[((rtts.len() - 1) as f64 * q) as usize]) * 1e-9;
    Ok(Row {
        requests,
        cpu_per_request: cpu.as_secs_f64() / requests as f64,
        p50: at(0.5),
        p99: at(0.99),
    })
}

/// Answers every request on the set's receivers until `clients` have
/// closed (the idle ones close when the set is dropped); returns the
/// requests and the thread's CPU time.
fn serve_set(
    mut set: WaitSet<usize>,
    mut txs: Vec<Sender>,
    clients: usize,
) -> Result<(u64, Duration), Error> {
    let cpu = thread_cpu();
    let mut ready = Vec::new();
    let mut buf = [0u8; LEN];
    let mut requests = 0u64;
    let mut closed = 0;
    while closed < clients {
        set.wait(&mut ready, Some(Duration::from_secs(60)))?;
        for &key in &ready {
            let rx: &mut Receiver = set.receiver(key).expect("in the set");
            match rx.try_recv_into(&mut buf) {
                Ok(n) => {
                    txs[key].send(&buf[..n])?;
                    requests += 1;
                }
                Err(Error::Empty) => {}
                Err(Error::Closed) => {
                    set.remove::<Receiver>(key);
                    closed += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok((requests, thread_cpu() - cpu))
}

/// The same server over Unix stream sockets under epoll.
fn serve_sockets(streams: Vec<UnixStream>, clients: usize) -> std::io::Result<(u64, Duration)> {
    let cpu = thread_cpu();
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    for (i, s) in streams.iter().enumerate() {
        epoll::add(
            &ep,
            s.as_fd(),
            epoll::EventData::new_u64(i as u64),
            epoll::EventFlags::IN,
        )?;
    }
    let mut streams: Vec<Option<UnixStream>> = streams.into_iter().map(Some).collect();
    let mut open = clients;
    let mut events = Vec::with_capacity(64);
    let mut buf = [0u8; LEN];
    let mut requests = 0u64;
    while open > 0 {
        events.clear();
        epoll::wait(&ep, rustix::buffer::spare_capacity(&mut events), None)?;
        for ev in &events {
            let i = ev.data.u64() as usize;
            let Some(s) = streams[i].as_mut() else {
                continue;
            };
            match read_full(s, &mut buf)? {
                true => {
                    s.write_all(&buf)?;
                    requests += 1;
                }
                false => {
                    epoll::delete(&ep, s.as_fd())?;
                    streams[i] = None;
                    open -= 1;
                }
            }
        }
    }
    Ok((requests, thread_cpu() - cpu))
}

/// Reads a whole request; `false` at the end of the stream.
fn read_full(s: &mut UnixStream, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match s.read(&mut buf[got..])? {
            0 if got == 0 => return Ok(false),
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => got += n,
        }
    }
    Ok(true)
}

/// One request's trip: send `req`, read the answer into `reply`.
type Exchange<'a> = dyn FnMut(&[u8], &mut [u8]) -> Result<(), Box<dyn std::error::Error>> + 'a;

/// A client process: `WARMUP` then `each` measured round trips, every
/// echo checked; writes the measured round trips (ns, u32 LE) to stdout
/// after closing.
fn client(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let [mode, name, each] = args else {
        return Err("usage: --client MODE NAME ROUNDS".into());
    };
    let mode = Mode::parse(mode).ok_or("unknown mode")?;
    if each == "idle" {
        // Connected, silent, until the server closes.
        let mut buf = [0u8; LEN];
        if mode == Mode::Sockets {
            let mut s = UnixStream::connect_addr(&SocketAddr::from_abstract_name(name)?)?;
            while s.read(&mut buf)? > 0 {}
        } else {
            let mut conn = Options::new().wait(Wait::Block).connect_abstract(name)?;
            match conn.receiver().recv_into(&mut buf) {
                Err(Error::Closed) => {}
                other => return Err(format!("an idle client got {other:?}").into()),
            }
        }
        return Ok(());
    }
    let each: usize = each.parse()?;
    let mut rtts = Vec::with_capacity(each);
    let mut req = [0u8; LEN];
    let mut reply = [0u8; LEN];
    let seed = std::process::id() as u64;
    let mut round = |i: usize, exchange: &mut Exchange<'_>| {
        for (j, b) in req.iter_mut().enumerate() {
            *b = (seed as usize ^ i.wrapping_mul(31) ^ j) as u8;
        }
        let t = Instant::now();
        exchange(&req, &mut reply)?;
        let rtt = t.elapsed();
        if reply != req {
            return Err::<(), Box<dyn std::error::Error>>(
                format!("round {i}: a wrong answer").into(),
            );
        }
        if i >= WARMUP {
            rtts.push(u32::try_from(rtt.as_nanos()).unwrap_or(u32::MAX));
        }
        Ok(())
    };
    if mode == Mode::Sockets {
        let mut s = UnixStream::connect_addr(&SocketAddr::from_abstract_name(name)?)?;
        for i in 0..WARMUP + each {
            round(i, &mut |req, reply| {
                s.write_all(req)?;
                s.read_exact(reply)?;
                Ok(())
            })?;
        }
    } else {
        let mut conn = Options::new().wait(Wait::Block).connect_abstract(name)?;
        for i in 0..WARMUP + each {
            round(i, &mut |req, reply| {
                conn.sender().send(req)?;
                let n = conn.receiver().recv_into(reply)?;
                if n != LEN {
                    return Err(format!("an answer of {n} bytes").into());
                }
                Ok(())
            })?;
        }
    }
    let out: Vec<u8> = rtts.iter().flat_map(|r| r.to_le_bytes()).collect();
    std::io::stdout().write_all(&out)?;
    Ok(())
}
