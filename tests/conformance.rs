//! The one conformance suite every mechanism in the registry must pass:
//! every size of the suite through pingpong, stream and oneshot, in real
//! separate processes, with the order, content and count of messages
//! checked. Set `IPCLAB_CONFORMANCE=name,name` to run only some mechanisms.

mod common;

use std::path::Path;

use ipclab_bench::harness::cell::run_cell;
use ipclab_bench::harness::spec::{CellOutcome, CellSpec, Pattern};
use ipclab_bench::mechanisms::{REGISTRY, limits};
use ipclab_bench::transport::Transport;

const SIZES: [usize; 8] = [0, 1, 12, 4095, 4096, 4097, 65536, (4 << 20) + 1];

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ipclab"))
}

fn spec(
    t: &dyn Transport,
    pattern: Pattern,
    size: usize,
    iterations: u64,
    warmup_ns: u64,
) -> CellSpec {
    CellSpec {
        warmup_ns,
        ..common::cell_spec(t.info().name, pattern, size, iterations)
    }
}

fn cell(t: &dyn Transport, pattern: Pattern, size: usize, n: u64) -> Result<CellOutcome, String> {
    warmed_cell(t, pattern, size, n, 0)
}

fn warmed_cell(
    t: &dyn Transport,
    pattern: Pattern,
    size: usize,
    n: u64,
    warmup_ns: u64,
) -> Result<CellOutcome, String> {
    let spec = spec(t, pattern, size, n, warmup_ns);
    run_cell(exe(), &spec).map_err(|e| format!("{} {pattern} size {size}: {e:#}", spec.mechanism))
}

fn expect(what: &str, got: u64, want: u64) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: {got}, expected {want}"))
    }
}

/// Runs one mechanism through the whole suite.
pub fn conforms(t: &dyn Transport) -> Result<(), String> {
    let name = t.info().name;
    for size in SIZES {
        let big = size > 1 << 20;
        let n = if big { 3 } else { 8 };
        let o = cell(t, Pattern::Pingpong, size, n)?;
        let at = |what: &str| format!("{name} pingpong size {size}: {what}");
        expect(&at("round trips timed"), o.client.measured, n)?;
        expect(&at("round trips the server measured"), o.server.measured, n)?;
        expect(&at("requests the server took"), o.server.total, n)?;
        let samples: u64 = o.client.histogram.iter().map(|(_, c)| c).sum();
        expect(&at("round-trip samples"), samples, n)?;

        let n = if big { 4 } else { 32 };
        let o = cell(t, Pattern::Stream, size, n)?;
        let at = |what: &str| format!("{name} stream size {size}: {what}");
        expect(&at("messages sent"), o.client.total, n)?;
        expect(&at("messages received"), o.server.total, n)?;
        expect(&at("messages the client measured"), o.client.measured, n)?;
        expect(&at("messages the server measured"), o.server.measured, n)?;
        if o.server.rounds < n {
            return Err(at(&format!("{} rounds for {n} messages", o.server.rounds)));
        }
    }
    // With a warm-up, both sides must still count exactly the messages
    // asked for (a stream's server used to open its window on its own
    // clock and count some of the warm-up, or none at all).
    for pattern in [Pattern::Pingpong, Pattern::Stream] {
        for size in [12, 4097] {
            let n = 16;
            let o = warmed_cell(t, pattern, size, n, 20_000_000)?;
            let at = |what: &str| format!("{name} {pattern} size {size} after a warm-up: {what}");
            expect(&at("client measured"), o.client.measured, n)?;
            expect(&at("server measured"), o.server.measured, n)?;
            if o.client.total <= n || o.server.total != o.client.total {
                return Err(at(&format!(
                    "{} sent and {} received in all, expected a warm-up before the {n}",
                    o.client.total, o.server.total
                )));
            }
        }
    }
    for size in [12, 4097] {
        let o = cell(t, Pattern::Oneshot, size, 2)?;
        expect(
            &format!("{name} oneshot size {size}: runs"),
            o.oneshot.len() as u64,
            2,
        )?;
        // Where each side ran is recorded for every pattern (the oneshot
        // table's header said "client on CPU ," without it).
        if o.client.cpus_seen.is_empty() || o.server.cpus_seen.is_empty() {
            return Err(format!(
                "{name} oneshot size {size}: CPUs not recorded (client {:?}, server {:?})",
                o.client.cpus_seen, o.server.cpus_seen
            ));
        }
    }
    Ok(())
}

#[test]
fn every_mechanism_conforms() {
    let only = std::env::var("IPCLAB_CONFORMANCE").ok();
    // The limits that carry payloads conform too (limit-spin and
    // limit-futex take size 0 only: tests/limits.rs).
    let chosen: Vec<&dyn Transport> = REGISTRY
        .iter()
        .chain(limits::CONFORMING)
        .copied()
        .filter(|t| {
            only.as_deref()
                .is_none_or(|o| o.split(',').any(|n| n == t.info().name))
        })
        .collect();
    assert!(
        !chosen.is_empty(),
        "IPCLAB_CONFORMANCE names no known mechanism"
    );
    let mut failures = Vec::new();
    for t in chosen {
        if let Err(why) = t.available() {
            eprintln!("skipping {}: {why}", t.info().name);
            continue;
        }
        let before = common::ipc_objects();
        match conforms(t) {
            Ok(()) => eprintln!("{}: conforms", t.info().name),
            Err(e) => failures.push(e),
        }
        let left = common::new_objects(&before);
        if !left.is_empty() {
            failures.push(format!(
                "{} left IPC objects behind: {left:?}",
                t.info().name
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "mechanisms that do not conform:\n{}",
        failures.join("\n")
    );
}
