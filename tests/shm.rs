//! Shared-memory mechanisms beyond the generic conformance suite: messages
//! larger than a segment, owner-only modes whatever the umask, and nothing
//! left in `/dev/shm` or System V IPC after a run, also a failing one.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use ipclab_bench::harness::cell::run_cell;
use ipclab_bench::harness::spec::{CellSpec, Pattern, Placement};
use ipclab_bench::mechanisms::shm::cleanup::{Cleanup, Object};
use ipclab_bench::mechanisms::{REGISTRY, find};
use ipclab_bench::transport::{ChannelConfig, Family};

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ipclab"))
}

fn shared_memory() -> Vec<&'static str> {
    REGISTRY
        .iter()
        .map(|t| t.info())
        .filter(|i| i.family == Family::SharedMemory)
        .map(|i| i.name)
        .collect()
}

fn spec(name: &str, pattern: Pattern, channel: ChannelConfig, iterations: u64) -> CellSpec {
    CellSpec {
        mechanism: name.into(),
        pattern,
        channel,
        placement: Placement::Unpinned,
        pairs: 1,
        cpus: None,
        rate: None,
        warmup_ns: 0,
        duration_ns: 0,
        iterations: Some(iterations),
        min_iterations: 1,
        verify: true,
        timeout_ns: 120_000_000_000,
    }
}

/// 64 MiB through 1 MiB buffers: 64 hand-overs per message, every byte
/// checked, the rounds reported; with 4 buffers, 4 rounds in flight.
#[test]
fn a_64_mib_message_through_a_1_mib_segment_arrives_whole_in_64_rounds() {
    for name in ["shm-futex", "sysv-shm"] {
        for (pattern, segments) in [
            (Pattern::Pingpong, 1),
            (Pattern::Stream, 1),
            (Pattern::Stream, 4),
        ] {
            let channel = ChannelConfig {
                size: 64 << 20,
                segment_size: Some(1 << 20),
                segments,
            };
            let n = 2;
            let o = run_cell(exe(), &spec(name, pattern, channel, n))
                .unwrap_or_else(|e| panic!("{name} {pattern} segments {segments}: {e:#}"));
            let at = format!("{name} {pattern} segments {segments}");
            assert_eq!(o.server.total, n, "{at}: messages the server took");
            assert_eq!(o.server.rounds, 64 * n, "{at}: rounds");
            if pattern == Pattern::Pingpong {
                assert_eq!(o.client.rounds, 64 * n, "{at}: reply rounds");
            }
        }
    }
}

/// The child half of `every_object_is_owner_only_whatever_the_umask`:
/// runs only when that test starts it, under the umask it chose.
#[test]
fn shm_modes_child() {
    let Ok(want_umask) = std::env::var("IPCLAB_SHM_MODES_CHILD") else {
        return;
    };
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let umask = status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .unwrap()
        .trim();
    assert_eq!(umask, want_umask, "the parent set the umask");
    let channel = ChannelConfig {
        size: 4096,
        segment_size: None,
        segments: 2,
    };
    let mut kinds = BTreeSet::new();
    for name in shared_memory() {
        let prepared = find(name).unwrap().prepare(&channel).unwrap();
        // The ring engine's channels keep their objects in a `Cleanup`;
        // cma and shmchan's mechanisms make no named or System V objects.
        let Some(cleanup) = prepared.guard.downcast_ref::<Cleanup>() else {
            continue;
        };
        let objects: Vec<Object> = cleanup.objects().to_vec();
        for o in &objects {
            let want = if matches!(o, Object::Dir(..)) {
                0o700
            } else {
                0o600
            };
            let mode = o.mode().unwrap_or_else(|e| panic!("{name}: {o:?}: {e}"));
            assert_eq!(mode, want, "{name}: {o:?} has mode {mode:o}");
            kinds.insert(
                format!("{o:?}")
                    .split(['(', ' '])
                    .next()
                    .unwrap()
                    .to_string(),
            );
        }
        drop(prepared);
        for o in &objects {
            assert!(o.mode().is_err(), "{name}: {o:?} outlived its guard");
        }
    }
    // Every kind of object was looked at.
    for kind in [
        "PosixShm", "PosixSem", "SysvShm", "SysvSem", "SysvMsg", "File", "Dir",
    ] {
        assert!(kinds.contains(kind), "no {kind} seen: {kinds:?}");
    }
}

/// Every segment, semaphore, queue and file is 0600 (the directory 0700)
/// under umask 0 (which would leave 0666 if a mode came from a default)
/// and 0277 (which would make 0400 if modes were left to the umask). The
/// umask is set in a fresh process, never in this multi-threaded one.
#[test]
fn every_object_is_owner_only_whatever_the_umask() {
    let me = std::env::current_exe().unwrap();
    for umask in ["0000", "0277"] {
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
            .arg(&me)
            .args([
                "--exact",
                "shm_modes_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("IPCLAB_SHM_MODES_CHILD", umask)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "umask {umask}:\n{text}");
        assert!(
            text.contains("1 passed"),
            "umask {umask}: the child ran nothing:\n{text}"
        );
    }
}

/// Names in `/dev/shm` and System V ids that look like ipclab's, and
/// ipclab's registry directory if it is left empty.
fn ipc_snapshot() -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for entry in std::fs::read_dir("/dev/shm").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        // The registry's directory counts below.
        if name.contains("ipclab-") && !name.starts_with("ipclab-registry-") {
            seen.insert(format!("/dev/shm/{name}"));
        }
    }
    // Left behind without a record (with records, other cells of ours may
    // be using it: their objects count).
    let registry = ipclab_bench::objects::registry::dir();
    if std::fs::read_dir(&registry).is_ok_and(|mut d| d.next().is_none()) {
        seen.insert(registry.display().to_string());
    }
    for kind in ["shm", "sem", "msg"] {
        let table = std::fs::read_to_string(format!("/proc/sysvipc/{kind}")).unwrap();
        for line in table.lines().skip(1) {
            let mut fields = line.split_whitespace();
            // key, id: ipclab's keys are 0x1cab0000..=0x1cabffff (0 once
            // a segment is removed but still attached).
            let key: Option<i32> = fields.next().and_then(|k| k.parse().ok());
            if let (Some(key), Some(id)) = (key, fields.next())
                && (key == 0 || key >> 16 == 0x1cab)
            {
                seen.insert(format!("{kind} {id}"));
            }
        }
    }
    seen
}

/// Runs every shared-memory mechanism through a good cell, a corrupted one
/// and one whose sides the watchdog kills (`kill -9`) mid-run, then waits until every object that appeared meanwhile is gone.
/// Other programs may make such objects at the same time, so what is new
/// only counts as a leak if it stays (30 s of patience: a watchdog, not a
/// speed bound).
#[test]
fn nothing_is_left_behind_even_after_a_failure() {
    let before = ipc_snapshot();
    let names = shared_memory().join(",");
    let ok = Command::new(exe())
        .args([
            "run",
            "-m",
            &names,
            "-s",
            "12,64K",
            "-p",
            "pingpong,stream,oneshot",
        ])
        .args([
            "--iterations",
            "20",
            "--warmup",
            "0ms",
            "--placement",
            "unpinned",
        ])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let failed = Command::new(exe())
        .args(["run", "-m", &names, "-s", "4K", "-p", "pingpong"])
        .args([
            "--iterations",
            "20",
            "--warmup",
            "0ms",
            "--placement",
            "unpinned",
        ])
        .env("IPCLAB_FAULT_CORRUPT_SEQ", "3")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&failed.stdout).to_string()
        + &String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{text}");
    for name in shared_memory() {
        assert!(
            text.contains(&format!("integrity error: {name} size 4096 sequence 3")),
            "{name}: {text}"
        );
    }
    let killed = Command::new(exe())
        .args(["run", "-m", &names, "-s", "12", "-p", "pingpong"])
        .args(["--iterations", "1000000000", "--timeout", "500ms"])
        .args(["--warmup", "0ms", "--placement", "unpinned"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&killed.stdout).to_string()
        + &String::from_utf8_lossy(&killed.stderr);
    assert_eq!(killed.status.code(), Some(1), "{text}");
    for name in shared_memory() {
        assert!(
            text.contains(&format!("{name} pingpong size 12: timed out")),
            "{name}: {text}"
        );
    }
    let mut left: BTreeSet<String> = BTreeSet::new();
    for _ in 0..300 {
        left = ipc_snapshot().difference(&before).cloned().collect();
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(left.is_empty(), "left behind: {left:?}");
}
