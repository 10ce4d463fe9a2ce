//! Ctrl-C during `ipclab run`: the processes it started stop, nothing is
//! left behind, and what was measured so far is kept.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process, kill_process_group, test_kill_process_group};

use common::TempDir;

#[test]
fn ctrl_c_stops_every_process_and_leaves_nothing() {
    let mechanisms = ipclab_bench::mechanisms::REGISTRY
        .iter()
        .map(|t| t.info().name)
        .collect::<Vec<_>>()
        .join(",");
    // The terminal signals the whole process group.
    let code = stop_a_run(&mechanisms, Signal::INT, true);
    assert_eq!(code, Some(130), "exit status after Ctrl-C");
}

/// `kill PID` (SIGTERM to ipclab alone): the same clean stop, and the exit
/// status says which signal it was (128 + 15).
#[test]
fn sigterm_stops_the_run_with_status_143() {
    let code = stop_a_run("pipe,unix-stream,shm-futex", Signal::TERM, false);
    assert_eq!(code, Some(143), "exit status after SIGTERM");
}

/// Starts a run of `mechanisms`, sends `signal` during its second cell
/// (to the process group when `group`, else to ipclab alone), and checks
/// that every process stops, nothing is left and the JSON so far is whole;
/// returns the exit status.
fn stop_a_run(mechanisms: &str, signal: Signal, group: bool) -> Option<i32> {
    // Both tests snapshot the machine's IPC objects: one at a time, so that
    // one test's live cell is never the other's leak.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let before = common::ipc_objects();
    let dir = TempDir::new("interrupt");
    let json = dir.0.join("run.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ipclab"))
        .args([
            "run", "-m", mechanisms, "-s", "64", "-p", "pingpong", "--warmup", "0ms",
        ])
        .args(["--duration", "2s", "--placement", "unpinned", "--json"])
        .arg(&json)
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pgid = Pid::from_raw(child.id() as i32).unwrap();
    // Wait until the first cell is done, then signal during the second
    // (or the first, when there is only one).
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    if mechanisms.contains(',') {
        lines.next();
    }
    std::thread::sleep(Duration::from_millis(300));
    if group {
        kill_process_group(pgid, signal).unwrap();
    } else {
        kill_process(pgid, signal).unwrap();
    }

    // Watchdog: the run must end promptly, not hang.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = kill_process_group(pgid, Signal::KILL);
            panic!("ipclab did not stop within 30 s of {signal:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // No process of the group (supervisor, sides) is left.
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        test_kill_process_group(pgid).is_err(),
        "processes of the run are still alive"
    );
    assert_eq!(
        common::new_objects(&before),
        Vec::<String>::new(),
        "IPC objects left behind"
    );
    let text = std::fs::read_to_string(&json).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&text).expect("the JSON file is whole");
    assert_eq!(v["complete"], false);
    status.code()
}
