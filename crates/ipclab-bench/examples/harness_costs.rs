//! What each layer of ipclab's measured path costs on its own, in one
//! process, per call: a benchmark, not a test (issue 23; the README's
//! per-layer table).
//!
//! ```sh
//! cargo run --release -p ipclab-bench --example harness_costs [SIZE=64]
//! ```
//!
//! Each figure is the mean of 2,000,000 calls, the best of five rounds:
//! the payload's fill and its check (every byte), the two clocks (the
//! vDSO `clock_gettime` and the stopwatch's `rdtsc`), a histogram record,
//! and a call through `&mut dyn FnMut` as the endpoints take `fill` and
//! `check`. In a pingpong each round trip pays two fills, two checks, one
//! clock read and one record; the dispatch four times (two sends, two
//! receives), on both sides of the critical path.

use std::hint::black_box;
use std::time::Instant;

use ipclab_bench::harness::clock::{Stopwatch, mono_ns};
use ipclab_bench::payload::{Payload, Verifier};
use ipclab_bench::stats::new_histogram;

const CALLS: u64 = 2_000_000;

fn best(mut f: impl FnMut(u64)) -> f64 {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            for i in 0..CALLS {
                f(i);
            }
            t.elapsed().as_nanos() as f64 / CALLS as f64
        })
        .fold(f64::INFINITY, f64::min)
}

#[inline(never)]
fn through_dyn(len: usize, f: &mut dyn FnMut(usize, &mut [u8]), buf: &mut [u8]) {
    f(0, &mut buf[..len]);
}

fn main() {
    let size: usize = std::env::args()
        .nth(1)
        .map_or(64, |s| s.parse().expect("a size"));
    let mut buf = vec![0u8; size];
    let fill = best(|i| {
        Payload::request(i, size).fill(0, &mut buf);
        black_box(&buf);
    });
    Payload::request(7, size).fill(0, &mut buf);
    let check = best(|_| {
        let mut v = Verifier::new(Payload::request(7, size));
        v.check(0, black_box(&buf));
        black_box(v.finish()).expect("the bytes just written");
    });
    let mono = best(|_| {
        black_box(mono_ns());
    });
    let watch = Stopwatch::new();
    let tsc = best(|_| {
        black_box(watch.now());
    });
    let mut hist = new_histogram();
    let record = best(|i| {
        hist.saturating_record(black_box(200 + (i & 127)));
    });
    let mut sum = 0u64;
    let dispatch = best(|i| {
        through_dyn(
            size.min(8),
            &mut |_, b: &mut [u8]| {
                sum = sum.wrapping_add(i);
                b[0] = sum as u8;
            },
            &mut buf,
        );
    });
    black_box(sum);
    println!("harness costs at {size} B (ns per call, best of 5 rounds of {CALLS}):");
    println!("  payload fill          {fill:6.1}");
    println!("  payload check         {check:6.1}");
    println!("  clock_gettime (vDSO)  {mono:6.1}");
    println!(
        "  stopwatch ({})  {tsc:6.1}",
        if watch.is_tsc() {
            "rdtsc    "
        } else {
            "monotonic"
        }
    );
    println!("  histogram record      {record:6.1}");
    println!("  dyn FnMut call        {dispatch:6.1}");
    println!(
        "  per round trip: 2 fills + 2 checks + 1 clock + 1 record + 4 dyn calls = {:.1} (old clock: {:.1})",
        2.0 * fill + 2.0 * check + tsc + record + 4.0 * dispatch,
        2.0 * fill + 2.0 * check + mono + record + 4.0 * dispatch
    );
}
