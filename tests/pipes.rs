//! The pipe mechanisms of issue 17: `pipe-sized` carries a message that
//! fits under `fs.pipe-max-size` in one `read`, a bigger one in rounds as
//! `pipe` does; `vmsplice` reuses its frame buffers only once the pipe has
//! released them, over long verified streams at 1 MiB and 4 MiB.

mod common;

use std::path::Path;

use ipclab_bench::harness::cell::run_cell;
use ipclab_bench::harness::spec::{CellOutcome, CellSpec, Pattern};

fn cell(mechanism: &str, pattern: Pattern, size: usize, n: u64) -> CellOutcome {
    let spec = CellSpec {
        // Streams of 4 MiB frames take a while in a debug build.
        timeout_ns: 120_000_000_000,
        ..common::cell_spec(mechanism, pattern, size, n)
    };
    run_cell(Path::new(env!("CARGO_BIN_EXE_ipclab")), &spec)
        .unwrap_or_else(|e| panic!("{mechanism} {pattern} size {size}: {e:#}"))
}

fn pipe_max_size() -> usize {
    std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A message whose frame fits under fs.pipe-max-size but not in a
/// default pipe.
fn fitting_size() -> usize {
    pipe_max_size() / 2
}

#[test]
fn a_message_that_fits_goes_in_one_read() {
    let (size, n) = (fitting_size(), 8);
    for name in ["pipe-sized", "vmsplice"] {
        let o = cell(name, Pattern::Pingpong, size, n);
        assert_eq!(o.server.total, n, "{name}");
        assert_eq!(
            o.server.rounds, n,
            "{name}: requests read in one piece each"
        );
        assert_eq!(o.client.rounds, n, "{name}: replies read in one piece each");
    }
    // The same message through a default pipe takes several reads: the
    // rounds above are the sizing's doing.
    let o = cell("pipe", Pattern::Pingpong, size, n);
    assert!(o.server.rounds > n, "pipe: {} rounds", o.server.rounds);
}

#[test]
fn a_message_beyond_the_cap_goes_in_rounds() {
    // Also as root, who could grow the pipe further: the cap holds.
    let (size, n) = (2 * pipe_max_size(), 4);
    let o = cell("pipe-sized", Pattern::Pingpong, size, n);
    assert!(o.server.rounds >= 2 * n, "{} rounds", o.server.rounds);
}

#[test]
fn vmsplice_streams_long_and_verified() {
    // Many reuses of every buffer, small and big: a buffer rewritten while
    // the pipe still referenced it would fail the payload check.
    for (size, n) in [(64, 20_000), (4097, 4_000), (1 << 20, 200), (4 << 20, 60)] {
        let o = cell("vmsplice", Pattern::Stream, size, n);
        assert_eq!(o.server.total, n, "size {size}");
        assert_eq!(o.server.measured, n, "size {size}");
    }
}
