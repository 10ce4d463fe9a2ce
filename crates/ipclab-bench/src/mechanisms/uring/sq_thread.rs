//! The CPU time of this process's io_uring polling threads.
//!
//! With `IORING_SETUP_SQPOLL` the kernel starts a thread named
//! `iou-sqp-<pid>` in the ring owner's thread group; it shows under
//! `/proc/self/task` like any thread, with its own `utime` and `stime`.

use std::fs;

/// CPU time (user + system, nanoseconds) of every `iou-sqp-*` thread of
/// this process, and how many there are; `None` when `/proc` is unreadable.
pub fn cpu_ns() -> Option<(u64, usize)> {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = u64::try_from(ticks).ok().filter(|&t| t > 0)?;
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
    Some((total * 1_000_000_000 / ticks, threads))
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

    #[test]
    fn parses_a_polling_threads_stat_line() {
        let line = "4242 (iou-sqp-4240) S 1 4240 4240 0 -1 4194368 0 0 0 0 7 35 0 0 20 0 2 0 1 0 0";
        assert_eq!(sq_ticks(line), Some(42));
        let other = "4240 (ipclab) S 1 4240 4240 0 -1 4194368 0 0 0 0 7 35 0 0 20 0 2 0 1 0 0";
        assert_eq!(sq_ticks(other), None);
    }
}
