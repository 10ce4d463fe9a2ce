//! The CPU time of this process's io_uring polling threads.
//!
//! With `IORING_SETUP_SQPOLL` the kernel starts a thread named
//! `iou-sqp-<pid>` in the ring owner's thread group; it shows under
//! `/proc/self/task` like any thread, with its own `utime` and `stime`.

use std::fs;

/// CPU time (user + system, nanoseconds) of every `iou-sqp-*` thread of
/// this process, and how many there are; `None` when `/proc` is unreadable.
pub fn cpu_ns() -> Option<(u64, usize)> {
    let tick = tick_ns()?;
    let mut total = 0;
    let mut threads = 0;
    for task in fs::read_dir("/proc/self/task").ok()?.flatten() {
        let Ok(stat) = fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        if let Some(t) = sq_ticks(&stat) {
            total += t;
            threads += 1;
        }
    }
    Some((total * tick, threads))
}

/// Nanoseconds per clock tick, the unit of `/proc` CPU times.
fn tick_ns() -> Option<u64> {
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second).ok().filter(|&t| t > 0)?;
    Some(1_000_000_000 / per_second)
}

/// `utime + stime` (clock ticks) from a `/proc/<pid>/task/<tid>/stat` line,
/// if the thread is an io_uring polling thread.
fn sq_ticks(stat: &str) -> Option<u64> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    if !stat[open + 1..close].starts_with("iou-sqp-") {
        return None;
    }
    // After the name: state is field 3, utime 14 and stime 15.
    let mut fields = stat[close + 1..].split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::clock;
    use io_uring::{IoUring, opcode};

    #[test]
    fn parses_a_polling_threads_stat_line() {
        let line = "4242 (iou-sqp-4240) S 1 4240 4240 0 -1 4194368 0 0 0 0 7 35 0 0 20 0 2 0 1 0 0";
        assert_eq!(sq_ticks(line), Some(42));
        let other = "4240 (ipclab) S 1 4240 4240 0 -1 4194368 0 0 0 0 7 35 0 0 20 0 2 0 1 0 0";
        assert_eq!(sq_ticks(other), None);
    }

    /// The polling thread is a thread of the ring's owner, so the
    /// process CPU time the harness reports (`CLOCK_PROCESS_CPUTIME_ID`,
    /// like `getrusage(RUSAGE_SELF)`) includes its spinning: here the only
    /// other thread sleeps while the polling thread spins.
    #[test]
    fn the_polling_threads_time_is_process_cpu_time() {
        let mut ring: IoUring = IoUring::builder()
            .setup_sqpoll(10_000)
            .build(4)
            .expect("an SQPOLL ring");
        let (process0, (sq0, _)) = (clock::cpu_ns(), cpu_ns().unwrap());
        // SAFETY: a NOP names no buffer.
        unsafe { ring.submission().push(&opcode::Nop::new().build()) }.unwrap();
        ring.submit_and_wait(1).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let (process1, (sq1, threads)) = (clock::cpu_ns(), cpu_ns().unwrap());
        assert_eq!(threads, 1, "one iou-sqp thread per SQPOLL ring");
        let (process, sq) = (process1 - process0, sq1 - sq0);
        assert!(sq > 0, "the polling thread spun for no measurable time");
        // /proc counts whole clock ticks: allow two.
        let tick = tick_ns().unwrap();
        assert!(
            process + 2 * tick >= sq,
            "process CPU time {process} ns leaves out the polling thread's {sq} ns"
        );
    }
}
