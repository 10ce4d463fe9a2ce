//! What the integration tests share: a look at the machine's IPC objects.

#![allow(dead_code)]

use std::collections::BTreeSet;

/// Every IPC object ipclab could have left behind: `/dev/shm` entries and
/// System V ids with their keys.
pub fn ipc_objects() -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    if let Ok(dir) = std::fs::read_dir("/dev/shm") {
        for e in dir.flatten() {
            all.insert(format!("/dev/shm/{}", e.file_name().to_string_lossy()));
        }
    }
    for (file, kind) in [
        ("/proc/sysvipc/shm", "shm"),
        ("/proc/sysvipc/sem", "sem"),
        ("/proc/sysvipc/msg", "msg"),
    ] {
        if let Ok(text) = std::fs::read_to_string(file) {
            for line in text.lines().skip(1) {
                let cols: Vec<&str> = line.split_whitespace().collect();
                if cols.len() > 1 {
                    all.insert(format!("sysv {kind} key {} id {}", cols[0], cols[1]));
                }
            }
        }
    }
    all
}

/// The objects present now that were not in `before`, and still there a
/// moment later (so that a short-lived object of some other process running
/// at the same time is not taken for a leak).
pub fn new_objects(before: &BTreeSet<String>) -> Vec<String> {
    let first: BTreeSet<String> = ipc_objects().difference(before).cloned().collect();
    if first.is_empty() {
        return Vec::new();
    }
    std::thread::sleep(std::time::Duration::from_millis(1500));
    ipc_objects().intersection(&first).cloned().collect()
}
