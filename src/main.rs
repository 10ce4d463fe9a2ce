//! `ipclab`: command-line glue over `ipclab-bench`.

mod cli;

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use clap::Parser;
use ipclab_bench::harness::remote::RemoteSpec;
use ipclab_bench::harness::spec::{Pattern, Placement};
use ipclab_bench::harness::supervisor::cell_main;
use ipclab_bench::objects::{cleaning, listing, show};
use ipclab_bench::report::{self, Exports, compare, table};
use ipclab_bench::suite::{self, Options};
use ipclab_bench::{list, mechanisms};

use cli::{
    CleanArgs, Cli, Command, CompareArgs, HostileArgs, RunArgs, SeedArgs, ServeArgs, TortureCommand,
};

/// Exit status for bad input (the same as clap's).
const USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_error(e),
    };
    let result = match cli.command {
        Some(Command::Cell) => cell_main(),
        Some(Command::List) => print(&list::render()),
        Some(Command::Ls(args)) => ls(args.json),
        Some(Command::Clean(args)) => clean(args),
        Some(Command::Compare(args)) => compare(args),
        Some(Command::Seed(args)) => seed(args),
        Some(Command::Run(args)) => run(*args),
        Some(Command::Serve(args)) => serve(args),
        Some(Command::Torture(TortureCommand::Hostile(args))) => hostile(args),
        None => default_run(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(e.downcast_ref::<Usage>().map_or(1, |_| USAGE))
        }
    }
}

/// Help and version as clap prints them; any other error as one line,
/// `error: ...` with clap's usage and tips left out, and status 2.
fn clap_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::from(e.exit_code() as u8);
    }
    // The first paragraph names the problem (a list of missing arguments
    // spans several lines); usage and tips follow after a blank line.
    let text = e.render().to_string();
    let first: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    eprintln!("{}", first.join(" "));
    ExitCode::from(USAGE)
}

/// An error in what the user asked for.
#[derive(Debug)]
struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

fn usage(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!(Usage(e.to_string()))
}

/// Prints to standard output; a closed pipe (`| head`) is a clean exit.
fn print(text: &str) -> Result<ExitCode> {
    match std::io::stdout().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        other => other
            .map(|_| ExitCode::SUCCESS)
            .context("writing to standard output"),
    }
}

/// `ipclab torture hostile`: exit status 1 on any panic, crash or leak.
fn hostile(args: HostileArgs) -> Result<ExitCode> {
    use ipclab_bench::torture::hostile;
    let mechanisms = hostile::select(&args.mechanisms).map_err(usage)?;
    let seed = args.seed.unwrap_or_else(hostile::random_seed);
    eprintln!("seed {seed} (--seed {seed} replays the rounds)");
    ipclab_bench::harness::cell::handle_interrupts();
    let exe = std::env::current_exe().context("finding the ipclab binary")?;
    let opts = hostile::Options {
        mechanisms,
        rounds: args.rounds,
        duration_ns: args.duration,
        seed,
        cell_ns: args.cell_duration,
        timeout_ns: args.timeout,
    };
    let results = hostile::run(&exe, &opts, &mut std::io::stderr())?;
    print(&hostile::render(&results))?;
    Ok(if results.iter().any(|(_, t)| t.failed()) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `ipclab` with no command: the default suite, its files kept in
/// `results/<time>/`.
fn default_run() -> Result<ExitCode> {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let dir = suite::default_results_dir(&stamp);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let args = RunArgs {
        json: Some(dir.join("run.json")),
        csv: Some(dir.join("run.csv")),
        markdown: Some(dir.join("run.md")),
        report: Some(dir.clone()),
        ..RunArgs::default()
    };
    let code = run(args)?;
    eprintln!(
        "results: {}/ (run.json, run.csv, run.md; plots and index.html)",
        dir.display()
    );
    Ok(code)
}

fn run(args: RunArgs) -> Result<ExitCode> {
    let cpus = match args.cpus.as_deref() {
        None => None,
        Some([client, server]) => Some((*client, *server)),
        Some([one]) => Some((*one, *one)),
        Some(_) => return Err(usage("--cpus takes CLIENT,SERVER (two CPU numbers)")),
    };
    if let Some([one]) = args.cpus.as_deref()
        && args.placement.contains(&Placement::CrossCore)
    {
        return Err(usage(format!(
            "--cpus {one} gives one CPU; cross-core placement needs two different ones \
             (--cpus CLIENT,SERVER)"
        )));
    }
    if cpus.is_some() && args.placement.iter().all(|p| *p == Placement::Unpinned) {
        return Err(usage(
            "--cpus pins the processes; --placement unpinned does not",
        ));
    }
    let remote = match (&args.remote, &args.token) {
        (Some(address), Some(token)) => Some(RemoteSpec {
            address: address.clone(),
            token: token.clone(),
            run: ipclab_bench::harness::remote::control::random_hex(),
        }),
        (Some(_), None) => {
            return Err(usage(
                "--remote needs --token (the one `ipclab serve` printed)",
            ));
        }
        _ => None,
    };
    let patterns = match (args.pattern, &remote) {
        (Some(p), _) => dedup(p),
        (None, None) => Pattern::ALL.to_vec(),
        (None, Some(_)) => vec![Pattern::Pingpong, Pattern::Stream],
    };
    if remote.is_some() && patterns.contains(&Pattern::Oneshot) {
        return Err(usage(
            "--remote measures pingpong and stream, not oneshot (fresh processes on both hosts \
             for every round trip)",
        ));
    }
    let options = Options {
        mechanisms: mechanisms::select(&args.mechanisms).map_err(usage)?,
        sizes: dedup(args.sizes),
        patterns,
        placements: dedup(args.placement),
        cpus,
        pairs: dedup(args.pairs),
        rates: dedup(args.rate).into_iter().map(|r| r.0).collect(),
        warmup_ns: args.warmup,
        duration_ns: args.duration,
        iterations: args.iterations,
        verify: !args.no_verify,
        segment_size: args.segment_size,
        // 0: each channel picks its own (ChannelConfig::segments_for).
        segments: args.segments.unwrap_or(0) as usize,
        timeout_ns: args.timeout,
        fail_fast: args.fail_fast,
        // The limits are floors of this host, no floor of a remote pair.
        limits: !args.no_limits && remote.is_none(),
        repeat: args.repeat,
        seed: args
            .seed
            .unwrap_or_else(ipclab_bench::torture::hostile::random_seed),
        remote,
    };
    options.validate().map_err(|e| usage(format!("{e:#}")))?;
    if options.repetitions() < options.repeat {
        eprintln!(
            "note: {} repetitions, not {}: --iterations {} gives each at least one",
            options.repetitions(),
            options.repeat,
            options.iterations.unwrap_or(0)
        );
    }
    let exports = Exports {
        json: args.json,
        csv: args.csv,
        markdown: args.markdown,
    };
    if let Some(size) = args.cdf_size
        && !options.sizes.contains(&size)
    {
        return Err(usage(format!(
            "--cdf-size {size} is not one of the sizes measured (-s)"
        )));
    }
    exports
        .check_writable()
        .map_err(|e| usage(format!("{e:#}")))?;
    if let Some(dir) = &args.report {
        std::fs::create_dir_all(dir)
            .map_err(|e| usage(format!("cannot create {}: {e}", dir.display())))?;
    }

    let exe = std::env::current_exe().context("finding the ipclab binary")?;
    let run = suite::run(&options, &exe, &mut |run| exports.write(run))?;
    exports.write(&run)?;
    // An export to standard output (`-`) has it alone; the table goes to
    // standard error then.
    match exports.for_stdout(&run)? {
        Some(text) => {
            eprint!("{}", table::render(&run));
            print(&text)?;
        }
        None => {
            print(&table::render(&run))?;
        }
    }
    if let Some(dir) = &args.report {
        let index = report::write_report(dir, &run, args.cdf_size)?;
        eprintln!("report: {}", index.display());
    }
    Ok(if let Some(code) = interrupted() {
        code
    } else if run.complete && run.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// 128 plus the signal that stopped the run (130 for Ctrl-C, 143 for
/// SIGTERM), if one did.
fn interrupted() -> Option<ExitCode> {
    use ipclab_bench::harness::{cell::stop_signal, supervisor::interrupted_status};
    stop_signal().map(|s| ExitCode::from(interrupted_status(s) as u8))
}

/// Keeps the first of each value, in order.
fn dedup<T: PartialEq>(items: Vec<T>) -> Vec<T> {
    let mut out = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

fn compare(args: CompareArgs) -> Result<ExitCode> {
    let read = |path: &std::path::Path| compare::load(path).map_err(|e| usage(format!("{e:#}")));
    let (old, new) = (read(&args.old)?, read(&args.new)?);
    let comparison = compare::compare(&old, &new);
    if comparison.changes.is_empty() && old.rows.len() == comparison.only_old.len() {
        return Err(usage(format!(
            "{} and {} have no measurement in common (same mechanism, pattern, size and placement)",
            args.old.display(),
            args.new.display()
        )));
    }
    print(&comparison.render())?;
    if let Some(pct) = args.fail_above {
        let slower = comparison.slower_than(pct);
        if !slower.is_empty() {
            eprintln!(
                "error: {} row(s) got slower by more than {pct} %",
                slower.len()
            );
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `ipclab seed`: the blog post's experiment, printed beside its figures.
fn seed(args: SeedArgs) -> Result<ExitCode> {
    if let Some(dir) = &args.report {
        std::fs::create_dir_all(dir)
            .map_err(|e| usage(format!("cannot create {}: {e}", dir.display())))?;
    }
    let options = ipclab_bench::seed::SeedOptions {
        runs: args.runs,
        warmup_ns: args.warmup,
        duration_ns: args.duration,
        timeout_ns: 60_000_000_000,
    };
    let exe = std::env::current_exe().context("finding the ipclab binary")?;
    let seed = ipclab_bench::seed::run(&options, &exe)?;
    print(&report::seed::render(&seed))?;
    if let Some(dir) = &args.report {
        let index = report::seed::write(dir, &seed)?;
        eprintln!("report: {}", index.display());
    }
    Ok(if let Some(code) = interrupted() {
        code
    } else if seed.complete && seed.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `ipclab serve`: until Ctrl-C (exit 130) or SIGTERM (143).
fn serve(args: ServeArgs) -> Result<ExitCode> {
    use ipclab_bench::harness::remote::{control, serve};
    let opts = serve::ServeOptions {
        listen: args.listen,
        token: args.token.unwrap_or_else(control::random_hex),
        timeout: std::time::Duration::from_nanos(args.timeout),
        cpu: args.cpu,
    };
    if let Some(cpu) = opts.cpu
        && !ipclab_bench::machine::allowed_cpus().contains(&cpu)
    {
        return Err(usage(format!(
            "CPU {cpu} does not exist or is not allowed here"
        )));
    }
    let signal = serve::serve(&opts, &mut std::io::stdout())?;
    use ipclab_bench::harness::supervisor::interrupted_status;
    Ok(ExitCode::from(interrupted_status(signal) as u8))
}

/// `ipclab ls`.
fn ls(json: bool) -> Result<ExitCode> {
    let listing = listing::list().context("listing ipclab's objects")?;
    print(&if json {
        show::json(&listing)
    } else {
        show::table(&listing)
    })
}

/// `ipclab clean`: one line per object removed; status 1 if any could not be.
fn clean(args: CleanArgs) -> Result<ExitCode> {
    let done = cleaning::clean(args.all, args.dry_run).context("cleaning ipclab's objects")?;
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let mut text = String::new();
    for line in &done.removed {
        text.push_str(&format!("{verb} {line}\n"));
    }
    if done.records > 0 {
        text.push_str(&format!(
            "{verb} {} registry record(s) without an object\n",
            done.records
        ));
    }
    if done.removed.is_empty() && done.records == 0 {
        text.push_str("nothing to remove\n");
    }
    if done.kept > 0 {
        text.push_str(&format!(
            "kept {} object(s) whose creator is alive (--all removes them too)\n",
            done.kept
        ));
    }
    print(&text)?;
    if let Some(first) = done.errors.first() {
        return Err(anyhow!(
            "could not remove {} object(s); first: {first}",
            done.errors.len()
        ));
    }
    Ok(ExitCode::SUCCESS)
}
