//! What the integration tests share: a look at the machine's IPC objects.

#![allow(dead_code)]

use std::collections::BTreeSet;

pub mod serve;

/// Whether `name` is a private directory of ipclab's: `ipclab-<pid>-<32
/// hex>` (mmap-file's, fifo's) or `ipclab-<32 hex>` (iceoryx2's root).
pub fn is_ipclab_dir(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("ipclab-") else {
        return false;
    };
    let hex = match rest.split_once('-') {
        Some((pid, hex)) if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) => hex,
        Some(_) => return false,
        None => rest,
    };
    hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Every IPC object ipclab could have left behind: `/dev/shm` entries,
/// System V ids with their keys, private directories (see
/// [`is_ipclab_dir`]) in the temporary directory and `$XDG_RUNTIME_DIR`,
/// ipclab's registry records (`ipclab_bench::objects::registry::dir`) and
/// the registry directory if it is left empty ([`empty_registry`]), and
/// anything in iceoryx2's
/// default folder
/// `/tmp/iceoryx2` (ipclab points iceoryx2 at a private root, so nothing
/// should ever appear there).
pub fn ipc_objects() -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    let mut dirs = vec![std::env::temp_dir()];
    dirs.extend(std::env::var_os("XDG_RUNTIME_DIR").map(std::path::PathBuf::from));
    for dir in dirs {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if is_ipclab_dir(&name) {
                all.insert(e.path().display().to_string());
            }
        }
    }
    walk(std::path::Path::new("/tmp/iceoryx2"), &mut all);
    if let Ok(dir) = std::fs::read_dir("/dev/shm") {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with("ipclab-registry-") {
                all.insert(format!("/dev/shm/{name}"));
            }
        }
    }
    let registry = ipclab_bench::objects::registry::dir();
    walk(&registry, &mut all);
    if empty_registry(&registry) {
        all.insert(registry.display().to_string());
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

/// Tests of one binary that compare the machine's IPC objects before and
/// after themselves take this first, so that they run one at a time: the
/// live objects of another test running beside them would look leaked.
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A test that panicked holding it has ended: the others may go on.
    ALONE.lock().unwrap_or_else(|e| e.into_inner())
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

/// Whether ipclab's registry directory is there without a record: it
/// goes with its last record, so one left behind is a leak. (While it
/// holds records, other processes of the same user may be using it: the
/// records count, not the directory.)
pub fn empty_registry(registry: &std::path::Path) -> bool {
    std::fs::read_dir(registry).is_ok_and(|mut d| d.next().is_none())
}

/// Every path under `dir`, recursively (nothing if it does not exist).
fn walk(dir: &std::path::Path, all: &mut BTreeSet<String>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            all.insert(e.path().display().to_string());
            walk(&e.path(), all);
        }
    }
}

/// A folder of one test's in the temporary directory (`ipclab-test-<tag>-
/// <pid>-<n>`, which no leak check takes for ipclab's), removed however
/// the test ends.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        // Relaxed: only the count's uniqueness matters.
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("ipclab-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }

    /// The names in the folder, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

/// The cell the behaviour tests run: exactly `n` iterations of `pattern`
/// at `size`, one segment, no warm-up, every byte verified, left to the
/// scheduler (this checks behaviour, not speed, and must also pass on a
/// one-CPU machine), with a 60 s watchdog so that a hang fails the cell
/// instead of the whole CI run.
pub fn cell_spec(
    mechanism: &str,
    pattern: ipclab_bench::harness::spec::Pattern,
    size: usize,
    n: u64,
) -> ipclab_bench::harness::spec::CellSpec {
    ipclab_bench::harness::spec::CellSpec {
        mechanism: mechanism.into(),
        pattern,
        channel: ipclab_bench::transport::ChannelConfig {
            size,
            segment_size: None,
            segments: 1,
        },
        placement: ipclab_bench::harness::spec::Placement::Unpinned,
        pairs: 1,
        cpus: None,
        rate: None,
        warmup_ns: 0,
        duration_ns: 0,
        iterations: Some(n),
        min_iterations: 1,
        verify: true,
        timeout_ns: 60_000_000_000,
    }
}
