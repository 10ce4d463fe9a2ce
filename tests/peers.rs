//! The peers (iceoryx2, ipc-channel, zenoh) beside the mechanisms: nothing they
//! make outlives a run, also when a cell fails or its sides are killed.
//! (They pass the conformance suite with every other mechanism.)

#![cfg(feature = "peers")]

mod common;

use std::process::Command;

const PEERS: &str = "iceoryx2,iceoryx2-event,ipc-channel,ipc-channel-shm,zenoh,zenoh-tcp";

fn run(args: &[&str], env: Option<(&str, &str)>) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ipclab"));
    cmd.args(["run", "-m", PEERS, "--no-limits"])
        .args(args)
        .args(["--warmup", "0ms", "--placement", "unpinned"]);
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[test]
fn nothing_is_left_behind_after_a_run_a_failure_or_a_kill() {
    let before = common::ipc_objects();
    let (code, text) = run(
        &[
            "-s",
            "12,64K",
            "-p",
            "pingpong,stream",
            "--iterations",
            "20",
        ],
        None,
    );
    assert_eq!(code, Some(0), "{text}");

    let (code, text) = run(
        &["-s", "4K", "-p", "pingpong", "--iterations", "20"],
        Some(("IPCLAB_FAULT_CORRUPT_SEQ", "3")),
    );
    assert_eq!(code, Some(1), "{text}");
    for name in PEERS.split(',') {
        assert!(
            text.contains(&format!("integrity error: {name} size 4096 sequence 3")),
            "{name}: {text}"
        );
    }

    // The watchdog kills both sides (SIGKILL) mid-run: only the guard is
    // left to clean up.
    let (code, text) = run(
        &[
            "-s",
            "12",
            "-p",
            "pingpong",
            "--iterations",
            "1000000000",
            "--timeout",
            "500ms",
        ],
        None,
    );
    assert_eq!(code, Some(1), "{text}");
    for name in PEERS.split(',') {
        assert!(
            text.contains(&format!("{name} pingpong size 12: timed out")),
            "{name}: {text}"
        );
    }
    assert_eq!(common::new_objects(&before), Vec::<String>::new());
}
