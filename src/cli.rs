//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ipclab_bench::harness::spec::{Pattern, Placement};
use ipclab_bench::units::{parse_duration_ns, parse_size};

#[derive(Parser)]
#[command(
    name = "ipclab",
    version,
    about = "Measures every Linux IPC mechanism on this machine, in real separate processes",
    long_about = "Measures every Linux IPC mechanism on this machine, in real separate processes, \
                  with every byte verified. With no command, runs the default quick suite."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Measure mechanisms and print the comparison tables.
    Run(Box<RunArgs>),
    /// List every mechanism, how it synchronises, and this machine's limits.
    List,
    /// Compare two result files row by row (NEW / OLD), with a verdict.
    Compare(CompareArgs),
    /// The blog post that started ipclab, reproduced: message passing against
    /// shared memory, fresh processes each time.
    Seed(SeedArgs),
    /// List the IPC objects ipclab (or shmchan) made that still exist, with
    /// their creator and whether it is alive.
    #[command(
        long_about = "List every IPC object on this machine that ipclab or shmchan made and that \
                      belongs to you: POSIX shared memory, named semaphores and message queues, \
                      System V segments, semaphore sets and queues, private directories, \
                      iceoryx2 files. Each shows its creating process and whether that process \
                      is alive (/proc/PID exists; a reused pid counts as alive, so such an \
                      object is kept, the safe direction)."
    )]
    Ls(LsArgs),
    /// Remove ipclab's IPC objects whose creator died (a killed run's
    /// leftovers); never anything that is not ipclab's.
    #[command(
        long_about = "Remove ipclab's (and shmchan's) IPC objects whose creating process is dead \
                      (/proc/PID is gone; a reused pid counts as alive and keeps its objects), \
                      and registry records left without an object. Only objects with ipclab's \
                      marks are ever touched: a name ipclab-PID-HEX (shmchan-PID-HEX), or a \
                      record in ipclab's registry matching the kernel's object. Prints what it \
                      removed."
    )]
    Clean(CleanArgs),
    /// Run the server side of network mechanisms for `ipclab run --remote`
    /// on another host, one run at a time, until Ctrl-C.
    #[command(
        long_about = "Run the server side of the mechanisms that can cross hosts (tcp, udp, \
                      zenoh-tcp where built) for `ipclab run --remote ADDR:PORT --token T` on \
                      another host. Prints `listening on ADDR token TOKEN`; the token (random \
                      unless given, at least 16 characters) lets a client in. One run at a \
                      time; a client that goes away mid-run ends its cell and the server goes \
                      on. Ctrl-C stops it.\n\n\
                      Connections are served concurrently by one event loop: a silent or slow \
                      client costs only its own time. Each must send its whole hello within \
                      --timeout or 10 s, whichever is shorter; at most 64 connections wait for \
                      their hello at once, and a new one past that closes the oldest. The token \
                      is checked before anything else is said (a wrong one is told nothing of \
                      this server). After the n-th wrong token in a row from one address (IPv6: \
                      its /64), the next from there is checked only 100 ms x 2^(n-1) later, at \
                      most 10 s; a right token clears the count. While a run is going on, \
                      another run is answered `busy` at once. Each cell's watchdog is the \
                      client's --timeout, capped by this server's --timeout."
    )]
    Serve(ServeArgs),
    /// Long runs under faults; they print counts, not timings.
    #[command(subcommand)]
    Torture(TortureCommand),
    /// Internal: supervise one cell (started by `ipclab run`).
    #[command(name = "__cell", hide = true)]
    Cell,
}

#[derive(Args, Clone)]
pub struct RunArgs {
    /// Mechanisms: names, or the groups message-passing, shared-memory, peer, all.
    #[arg(short, long, default_value = "all", value_name = "LIST")]
    pub mechanisms: String,

    /// Message sizes, comma-separated, with binary K/M/G suffixes.
    #[arg(short, long, value_delimiter = ',', value_parser = parse_size, default_value = "64,4K,1M",
          allow_hyphen_values = true)]
    pub sizes: Vec<usize>,

    /// Patterns: pingpong, stream, oneshot [default: all three; with
    /// --remote, pingpong,stream].
    #[arg(short, long, value_delimiter = ',')]
    pub pattern: Option<Vec<Pattern>>,

    /// Exact number of measured iterations per cell (instead of --duration).
    #[arg(long, value_parser = parse_iterations, allow_hyphen_values = true,
          conflicts_with = "duration")]
    pub iterations: Option<u64>,

    /// Minimum measured time per cell.
    #[arg(long, value_parser = parse_duration_ns, default_value = "300ms", value_name = "TIME",
          allow_hyphen_values = true)]
    pub duration: u64,

    /// Measure every cell K times, the cells shuffled anew each time; rows
    /// pool the repetitions and give 95 % intervals. The warm-up and the
    /// duration (or --iterations) are shared among the K.
    #[arg(long, value_parser = parse_repeat, default_value = "3", value_name = "K",
          allow_hyphen_values = true)]
    pub repeat: usize,

    /// Seed of the shuffled order (recorded in the JSON; the same seed
    /// replays the order) [default: random].
    #[arg(long, value_name = "S", value_parser = parse_seed, allow_hyphen_values = true)]
    pub seed: Option<u64>,

    /// Warm-up time per cell, not measured.
    #[arg(long, value_parser = parse_duration_ns, default_value = "100ms", value_name = "TIME",
          allow_hyphen_values = true)]
    pub warmup: u64,

    /// Where the processes run: cross-core (alias spread: each pair's two
    /// sides on different CPUs, the pairs round-robin over the CPUs),
    /// same-core (alias packed: both sides of a pair on one CPU), unpinned
    /// (comma-separated for several).
    #[arg(long, value_delimiter = ',', default_value = "cross-core")]
    pub placement: Vec<Placement>,

    /// Client/server pairs run at once, each with its own channel (e.g.
    /// 1,2,4,8): with more processes than CPUs, the row shows contention.
    /// Rows add up the pairs' throughput and merge their round trips.
    #[arg(long, value_delimiter = ',', value_parser = parse_pairs, default_value = "1",
          value_name = "LIST", allow_hyphen_values = true)]
    pub pairs: Vec<usize>,

    /// Offered load of pingpong, round trips per second per pair (e.g.
    /// 1k,10k,100k,max): open loop, each round trip timed from when it was
    /// due, so that stalls show in the percentiles (coordinated omission
    /// corrected). max is closed loop. Stream and oneshot run at max only:
    /// a rate other than max needs -p pingpong alone.
    #[arg(long, value_delimiter = ',', value_parser = parse_offered_rate, default_value = "max",
          value_name = "LIST", allow_hyphen_values = true)]
    pub rate: Vec<OfferedRate>,

    /// Client and server CPUs for pinned placements, e.g. 0,1.
    #[arg(
        long,
        value_delimiter = ',',
        num_args = 1,
        value_name = "CLIENT,SERVER",
        value_parser = parse_cpu,
        allow_hyphen_values = true
    )]
    pub cpus: Option<Vec<usize>>,

    /// Skip checking the payload (the output then says so).
    #[arg(long)]
    pub no_verify: bool,

    /// Size of each shared-memory segment (default: large enough for a message).
    #[arg(long, value_parser = parse_nonzero_size, value_name = "SIZE",
          allow_hyphen_values = true)]
    pub segment_size: Option<usize>,

    /// Buffers in flight for shared-memory channels [default: about 4 MiB
    /// per direction, 2 to 64 buffers].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024),
          allow_hyphen_values = true)]
    pub segments: Option<u64>,

    /// Kill a cell's processes and fail it after this long.
    #[arg(long, value_parser = parse_nonzero_duration, default_value = "60s", value_name = "TIME",
          allow_hyphen_values = true)]
    pub timeout: u64,

    /// Stop at the first failing cell.
    #[arg(long)]
    pub fail_fast: bool,

    /// Leave out the limits (limit-spin, limit-futex, limit-bare, limit-copy) that every
    /// run otherwise measures, and so the `× limit` column.
    #[arg(long)]
    pub no_limits: bool,

    /// Write the results as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Write the results as CSV.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,

    /// Write the results as Markdown.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,

    /// Write plots (SVG and PNG) and a self-contained index.html into DIR.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,

    /// Run the server sides under `ipclab serve` at HOST:PORT (another
    /// host): rows get placement `remote`. Pingpong and stream, one pair,
    /// mechanisms that can cross hosts; no limits.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_remote)]
    pub remote: Option<String>,

    /// The token `ipclab serve` printed (or was given), with --remote (16
    /// to 256 characters).
    #[arg(long, value_name = "TOKEN", requires = "remote", value_parser = parse_token)]
    pub token: Option<String>,

    /// Message size of the report's latency-distribution plot (default: the median size).
    #[arg(long, value_parser = parse_size, value_name = "SIZE", requires = "report",
          allow_hyphen_values = true)]
    pub cdf_size: Option<usize>,
}

impl Default for RunArgs {
    fn default() -> Self {
        let cli = Cli::parse_from(["ipclab", "run"]);
        match cli.command {
            Some(Command::Run(args)) => *args,
            _ => unreachable!("`ipclab run` parses as Run"),
        }
    }
}

#[derive(Args, Clone)]
pub struct ServeArgs {
    /// Address and port to listen on for control connections (0: any port;
    /// the one taken is printed).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:7600",
          value_parser = parse_listen)]
    pub listen: std::net::SocketAddr,

    /// The token clients must give, 16 to 256 printable characters
    /// (default: 32 random hex digits, printed).
    #[arg(long, value_name = "TOKEN", value_parser = parse_token)]
    pub token: Option<String>,

    /// The server's limit: for a connection's hello (at most 10 s), for
    /// each next message, and for each cell (its watchdog is the client's
    /// --timeout, never longer than this).
    #[arg(long, value_parser = parse_nonzero_duration, default_value = "60s", value_name = "TIME",
          allow_hyphen_values = true)]
    pub timeout: u64,

    /// Pin the server sides to this CPU [default: unpinned].
    #[arg(long, value_name = "CPU", value_parser = parse_cpu, allow_hyphen_values = true)]
    pub cpu: Option<usize>,
}

/// `ADDR:PORT` to listen on.
fn parse_listen(s: &str) -> Result<std::net::SocketAddr, String> {
    s.trim().parse().map_err(|_| {
        format!("'{s}' is not an ADDR:PORT to listen on (e.g. 127.0.0.1:7600, [::1]:0)")
    })
}

/// `HOST:PORT` of a server: a port and something before it.
fn parse_remote(s: &str) -> Result<String, String> {
    let s = s.trim();
    match s.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0) => {
            Ok(s.to_string())
        }
        _ => Err(format!(
            "'{s}' is not a HOST:PORT of an ipclab serve (e.g. 198.18.0.1:7600)"
        )),
    }
}

/// The shortest token: 16 characters are at least 64 bits of hex, past
/// guessing at the server's pace (one try per 10 s per address once it
/// slows an address down).
pub const MIN_TOKEN: usize = 16;

/// A token: printable, no spaces, 16 to 256 characters. The client is held
/// to it as well: no server takes a shorter one.
fn parse_token(s: &str) -> Result<String, String> {
    if !s.chars().all(|c| c.is_ascii_graphic()) || s.len() > 256 {
        return Err("a token is 16 to 256 printable characters without spaces".into());
    }
    if s.len() < MIN_TOKEN {
        return Err(format!(
            "a token of {} characters is too short to keep anyone out: give at least \
             {MIN_TOKEN} (the default is 32 random hex digits)",
            s.len()
        ));
    }
    Ok(s.to_string())
}

#[derive(Args, Clone)]
pub struct CompareArgs {
    /// The earlier run (a JSON file written by `ipclab run --json`).
    pub old: PathBuf,
    /// The later run.
    pub new: PathBuf,
    /// Exit with status 1 when any row got slower by more than PCT percent.
    #[arg(long, value_name = "PCT", value_parser = parse_percent, allow_hyphen_values = true)]
    pub fail_above: Option<f64>,
}

/// An offered rate: round trips per second, or `max` (`None`, closed loop).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OfferedRate(pub Option<f64>);

fn parse_offered_rate(s: &str) -> Result<OfferedRate, String> {
    ipclab_bench::units::parse_rate(s).map(OfferedRate)
}

/// Pairs: 1 to `MAX_PAIRS`.
fn parse_pairs(s: &str) -> Result<usize, String> {
    use ipclab_bench::harness::topology::MAX_PAIRS;
    match s.trim().parse::<usize>() {
        Ok(0) => Err("0 pairs run nothing; give at least 1".into()),
        Ok(n) if n <= MAX_PAIRS => Ok(n),
        Ok(n) => Err(format!(
            "{n} pairs are more than {MAX_PAIRS} (2 processes each)"
        )),
        Err(_) => Err(format!("'{s}' is not a number of pairs")),
    }
}

/// Repetitions: 1 to 100.
fn parse_repeat(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=100).contains(&n) => Ok(n),
        Ok(_) => Err(format!("--repeat takes 1 to 100, got {s}")),
        Err(_) => Err(format!("'{s}' is not a number of repetitions")),
    }
}

/// A seed: any unsigned 64-bit number.
fn parse_seed(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<u64>()
        .map_err(|_| format!("'{s}' is not a seed (a number from 0 to 2^64-1)"))
}

/// A whole number of iterations, at least 1.
fn parse_iterations(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(0) => Err("0 iterations measure nothing; give at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) if s.trim().bytes().all(|b| b.is_ascii_digit()) && !s.trim().is_empty() => {
            Err(format!("'{s}' is too large"))
        }
        Err(_) => Err(format!("'{s}' is not a number of iterations")),
    }
}

/// A CPU number (whether it exists is checked with the other options).
fn parse_cpu(s: &str) -> Result<usize, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a CPU number"))
}

/// A size that may not be 0.
fn parse_nonzero_size(s: &str) -> Result<usize, String> {
    match parse_size(s)? {
        0 => Err(format!("'{s}' is zero")),
        n => Ok(n),
    }
}

/// A duration that may not be 0.
fn parse_nonzero_duration(s: &str) -> Result<u64, String> {
    match parse_duration_ns(s)? {
        0 => Err(format!("'{s}' is zero")),
        n => Ok(n),
    }
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("'{s}' is not a percentage"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("'{s}' is not a percentage"))
    }
}

#[derive(Args, Clone)]
pub struct SeedArgs {
    /// Fresh-process runs per mechanism and size (the mean and median are shown).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000),
          allow_hyphen_values = true)]
    pub runs: u64,

    /// Write seed.json and a page (index.html) into DIR.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,

    /// Warm-up per cell (for quick tests).
    #[arg(long, hide = true, value_parser = parse_duration_ns, default_value = "100ms",
          allow_hyphen_values = true)]
    pub warmup: u64,

    /// Measured time of each warm round-trip cell (for quick tests).
    #[arg(long, hide = true, value_parser = parse_duration_ns, default_value = "300ms",
          allow_hyphen_values = true)]
    pub duration: u64,
}

#[derive(Args, Clone)]
pub struct LsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Clone)]
pub struct CleanArgs {
    /// Also remove objects whose creator is alive (every object of ipclab's;
    /// running cells fail).
    #[arg(long)]
    pub all: bool,
    /// Print what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Subcommand)]
pub enum TortureCommand {
    /// A third process overwrites each channel's shared memory with random
    /// bytes while the two sides run; every receive must end in a verified
    /// message or an error: no panic, no crash, no leak, no hang past the
    /// watchdog.
    Hostile(HostileArgs),
}

#[derive(Args, Clone)]
pub struct HostileArgs {
    /// Mechanisms: names, or the groups shared-memory and limits.
    #[arg(
        short,
        long,
        default_value = "shared-memory,limits",
        value_name = "LIST"
    )]
    pub mechanisms: String,

    /// Rounds (cells) per mechanism, instead of --duration.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub rounds: Option<u64>,

    /// Total time, shared between the mechanisms.
    #[arg(long, value_parser = parse_duration_ns, default_value = "60s", value_name = "TIME")]
    pub duration: u64,

    /// Seed of the rounds' choices and scribblers (default: random; printed).
    #[arg(long)]
    pub seed: Option<u64>,

    /// Measured time of each round's cell.
    #[arg(long, value_parser = parse_nonzero_duration, default_value = "150ms", value_name = "TIME")]
    pub cell_duration: u64,

    /// Watchdog of each round's cell.
    #[arg(long, value_parser = parse_nonzero_duration, default_value = "5s", value_name = "TIME")]
    pub timeout: u64,
}
