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

/// The clock a pingpong client times each round trip with: the CPU's time
/// stamp counter (`rdtsc`, about 11 ns here against 30 for a vDSO
/// `clock_gettime`) where the kernel itself keeps time with it (its
/// clocksource is `tsc`: constant rate, the same on every CPU), else
/// `CLOCK_MONOTONIC`. Ticks become nanoseconds by the rate measured
/// against `CLOCK_MONOTONIC` over the client's own run ([`Rate`]).
#[derive(Clone, Copy, Debug)]
pub struct Stopwatch {
    tsc: bool,
}

impl Stopwatch {
    pub fn new() -> Stopwatch {
        let source = std::fs::read_to_string(
            "/sys/devices/system/clocksource/clocksource0/current_clocksource",
        );
        Stopwatch {
            tsc: cfg!(target_arch = "x86_64") && source.is_ok_and(|s| s.trim() == "tsc"),
        }
    }

    /// Whether it reads the time stamp counter.
    pub fn is_tsc(&self) -> bool {
        self.tsc
    }

    /// Ticks: of the time stamp counter, or nanoseconds.
    #[inline(always)]
    pub fn now(&self) -> u64 {
        #[cfg(target_arch = "x86_64")]
        if self.tsc {
            // SAFETY: `rdtsc` only reads a register; every x86-64 CPU has
            // it.
            return unsafe { std::arch::x86_64::_rdtsc() };
        }
        mono_ns()
    }

    /// Starts measuring the ticks' rate.
    pub fn rate(&self) -> Rate {
        Rate {
            watch: *self,
            start: (self.now(), mono_ns()),
        }
    }
}

impl Default for Stopwatch {
    fn default() -> Self {
        Stopwatch::new()
    }
}

/// The rate of a [`Stopwatch`]'s ticks against `CLOCK_MONOTONIC`, from
/// two readings of both.
pub struct Rate {
    watch: Stopwatch,
    start: (u64, u64),
}

impl Rate {
    /// The shortest span the rate is taken over: with ~30 ns per clock read
    /// that is a few parts in 100,000.
    const SPAN_NS: u64 = 2_000_000;

    /// Nanoseconds per tick, from the start until now (waiting until at
    /// least [`Self::SPAN_NS`] have passed).
    pub fn ns_per_tick(&self) -> f64 {
        if !self.watch.tsc {
            return 1.0;
        }
        let (t0, n0) = self.start;
        loop {
            let (t1, n1) = (self.watch.now(), mono_ns());
            if n1.saturating_sub(n0) >= Self::SPAN_NS && t1 > t0 {
                return (n1 - n0) as f64 / (t1 - t0) as f64;
            }
            std::hint::spin_loop();
        }
    }
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
    /// Mean cost of one `mono_ns()`; an open-loop round trip includes two,
    /// a closed-loop one a [`Stopwatch`] read.
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
