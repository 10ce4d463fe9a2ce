//! Offered load: a client that starts its round trips on a fixed schedule
//! (`--rate`), open loop, instead of the next as soon as the last came back.
//!
//! Round trip k is due at `start + k / rate`. The client sleeps until then
//! (an absolute `clock_nanosleep`, timer slack 1 ns) or, when it is behind,
//! sends at once; either way the round trip is timed from the moment it was
//! *due*. A server that stalls for 100 ms at 1000 round trips per second
//! then delays the hundred round trips due during the stall, and the
//! percentiles show it; timed from the actual sends, as a closed-loop tool
//! does, only the one round trip in flight would be slow and the stall
//! would pass as a lower rate ("coordinated omission"; wrk2 and
//! HdrHistogram's corrected recording do the same). A late wake-up of the
//! client itself counts too, as in wrk2: the schedule is what users offer.

use rustix::thread::{ClockId, clock_nanosleep_absolute};
use rustix::time::Timespec;

use super::clock::mono_ns;

/// Fewest round trips per second `--rate` takes.
pub const MIN_RATE: f64 = 1.0;
/// Most round trips per second `--rate` takes, per pair: 1 ns apart.
pub const MAX_RATE: f64 = 1e9;

/// The schedule of one client.
pub struct Schedule {
    start_ns: u64,
    interval_ns: f64,
    next: u64,
}

impl Schedule {
    /// `rate` round trips per second from `start_ns` on; lets the process
    /// sleep with a timer slack of 1 ns (the default 50 µs would make every
    /// wake-up late).
    pub fn new(rate: f64, start_ns: u64) -> Schedule {
        // A failure only costs precision.
        let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1));
        Schedule {
            start_ns,
            interval_ns: 1e9 / rate.clamp(MIN_RATE, MAX_RATE),
            next: 0,
        }
    }

    /// Nanoseconds between two round trips.
    pub fn interval_ns(&self) -> f64 {
        self.interval_ns
    }

    /// Starts the schedule again at `start_ns` (when the warm-up ends).
    pub fn restart(&mut self, start_ns: u64) {
        self.start_ns = start_ns;
        self.next = 0;
    }

    /// The due time of the next round trip, after sleeping until it (at
    /// once when it is already due).
    pub fn wait_next(&mut self) -> u64 {
        let due = self.start_ns + (self.next as f64 * self.interval_ns) as u64;
        self.next += 1;
        sleep_until(due);
        due
    }
}

/// Sleeps until `CLOCK_MONOTONIC` reaches `due_ns`.
fn sleep_until(due_ns: u64) {
    let until = Timespec {
        tv_sec: (due_ns / 1_000_000_000) as _,
        tv_nsec: (due_ns % 1_000_000_000) as _,
    };
    // EINTR: sleep the rest.
    while mono_ns() < due_ns {
        if clock_nanosleep_absolute(ClockId::Monotonic, &until).is_ok() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_follow_the_schedule_not_the_sends() {
        let start = mono_ns();
        let mut s = Schedule::new(1e6, start);
        let dues: Vec<u64> = (0..4).map(|_| s.wait_next()).collect();
        assert_eq!(dues, vec![start, start + 1000, start + 2000, start + 3000]);
        s.restart(start);
        assert_eq!(s.wait_next(), start);
    }

    #[test]
    fn a_late_round_trip_keeps_its_due_time() {
        // Due a second ago: timed from then, not from now.
        let start = mono_ns() - 1_000_000_000;
        let mut s = Schedule::new(10.0, start);
        assert_eq!(s.wait_next(), start);
        assert_eq!(s.wait_next(), start + 100_000_000);
    }
}
