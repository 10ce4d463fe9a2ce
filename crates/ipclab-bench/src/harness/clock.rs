//! Clocks: one monotonic clock shared by every process of a cell, and CPU
//! time.

use rustix::time::{ClockId, clock_gettime};

/// `CLOCK_MONOTONIC` in nanoseconds: the same clock in every process, read
/// through the vDSO without a system call.
#[inline]
pub fn mono_ns() -> u64 {
    let t = clock_gettime(ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// CPU time (user + system) this process has used, in nanoseconds.
pub fn cpu_ns() -> u64 {
    let t = clock_gettime(ClockId::ProcessCPUTime);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Context switches of this process so far (`getrusage`): voluntary (it
/// waited and gave up the CPU) and involuntary (it was preempted).
pub fn switches() -> (u64, u64) {
    use nix::sys::resource::{UsageWho, getrusage};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => (
            u.voluntary_context_switches() as u64,
            u.involuntary_context_switches() as u64,
        ),
        Err(_) => (0, 0),
    }
}

/// The cost of one clock read, and the smallest step the clock shows.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct TimerCalibration {
    /// Mean cost of one `mono_ns()`; every round trip includes two.
    pub overhead_ns: f64,
    /// The smallest non-zero difference between two reads.
    pub resolution_ns: u64,
}

impl TimerCalibration {
    pub fn measure() -> Self {
        const N: u64 = 200_000;
        let mut resolution = u64::MAX;
        let start = mono_ns();
        let mut last = start;
        for _ in 0..N {
            let now = mono_ns();
            if now > last {
                resolution = resolution.min(now - last);
            }
            last = now;
        }
        TimerCalibration {
            overhead_ns: (last - start) as f64 / N as f64,
            resolution_ns: if resolution == u64::MAX {
                0
            } else {
                resolution
            },
        }
    }
}
