//! What machine a run happened on.

use serde::{Deserialize, Serialize};

/// A `/proc` or `/sys` file's first line, trimmed, or `unknown`.
pub fn read_proc(path: &str) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.lines().next().map(|l| l.trim().to_string()))
        .unwrap_or_else(|| "unknown".into())
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Machine {
    pub kernel: String,
    pub cpu_model: String,
    pub cpu_count: usize,
    /// CPUs this process may run on (`sched_getaffinity`).
    pub cpus_allowed: Vec<usize>,
    pub virtualised: bool,
    pub clock_source: String,
}

impl Machine {
    pub fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            cpuinfo
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        };
        let uname = rustix::system::uname();
        Machine {
            kernel: format!(
                "{} {}",
                uname.sysname().to_string_lossy(),
                uname.release().to_string_lossy()
            ),
            cpu_model: field("model name").unwrap_or_else(|| "unknown".into()),
            cpu_count: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpus_allowed: allowed_cpus(),
            virtualised: field("flags").is_some_and(|f| f.split(' ').any(|x| x == "hypervisor")),
            clock_source: read_proc(
                "/sys/devices/system/clocksource/clocksource0/current_clocksource",
            ),
        }
    }
}

/// The CPUs this process may be pinned to.
pub fn allowed_cpus() -> Vec<usize> {
    match rustix::thread::sched_getaffinity(None) {
        Ok(set) => (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|&c| set.is_set(c))
            .collect(),
        Err(_) => vec![0],
    }
}
