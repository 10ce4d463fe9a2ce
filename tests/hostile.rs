//! A hostile writer: `ipclab torture hostile` runs every shared-memory
//! mechanism and limit a few rounds with a third process overwriting the
//! channel's shared memory (`IPCLAB_FAULT_SCRIBBLE`). Every side must end
//! with messages or errors: no panic, no crash, no leak; hangs end at the
//! cell's watchdog. The long run is the same command with `--duration`
//! (see the README).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipclab_bench::torture::hostile;

/// Kills the run and fails after this long (it takes well under a minute).
const WATCHDOG: Duration = Duration::from_secs(300);

fn column(header: &str, row: &str, name: &str) -> u64 {
    let names: Vec<&str> = header.split_whitespace().collect();
    let at = names.iter().position(|n| *n == name).expect("a column");
    row.split_whitespace().nth(at).unwrap().parse().unwrap()
}

#[test]
fn every_shared_memory_mechanism_survives_a_scribbler() {
    let _alone = common::one_at_a_time();
    let before = common::ipc_objects();
    let seed = hostile::random_seed();
    eprintln!("seed {seed}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ipclab"))
        .args([
            "torture",
            "hostile",
            "--rounds",
            "5",
            "--cell-duration",
            "50ms",
        ])
        .args(["--timeout", "10s", "--seed", &seed.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let end = Instant::now() + WATCHDOG;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("watchdog: the torture run did not end");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(out.status.success(), "{}", out.status);

    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.take_while(|l| !l.is_empty()).collect();
    let expected = hostile::select("shared-memory,limits").unwrap();
    for t in &expected {
        let name = t.info().name;
        let row = rows
            .iter()
            .find(|r| r.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row for {name}"));
        assert_eq!(column(header, row, "rounds"), 5, "{row}");
    }
    let total = rows.iter().find(|r| r.starts_with("total")).unwrap();
    for must_be_zero in ["panics", "crashes", "leaks"] {
        assert_eq!(column(header, total, must_be_zero), 0, "{must_be_zero}");
    }
    // The scribbler did hit: some sides ended with an error.
    assert!(column(header, total, "errors") > 0, "{total}");
    assert!(column(header, total, "valid") > 0, "{total}");
    assert_eq!(common::new_objects(&before), Vec::<String>::new());
}

/// The groups leave out what trusts its peer, and take names of limits.
#[test]
fn the_hostile_run_leaves_out_mechanisms_that_trust_their_peer() {
    let names = |list| -> Vec<&str> {
        hostile::select(list)
            .unwrap()
            .iter()
            .map(|t| t.info().name)
            .collect()
    };
    let group = names("shared-memory");
    assert!(group.contains(&"shm-futex") && group.contains(&"shmchan-block"));
    assert!(!group.contains(&"shm-pthread") && !group.contains(&"cma"));
    assert_eq!(
        names("limits"),
        ["limit-spin", "limit-futex", "limit-bare", "limit-copy"]
    );
    assert_eq!(
        names("shm-pthread,limit-copy"),
        ["shm-pthread", "limit-copy"]
    );
    assert!(hostile::select("pipe2").is_err());
}

/// A mechanism with no shared memory gives the scribbler nothing to hit:
/// refused with one line naming those that have some, status 2.
#[test]
fn a_mechanism_without_shared_memory_is_refused() {
    for list in ["pipe", "shm-futex,cma"] {
        let out = Command::new(env!("CARGO_BIN_EXE_ipclab"))
            .args(["torture", "hostile", "--rounds", "1", "-m", list])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "-m {list}: {err}");
        assert_eq!(err.lines().count(), 1, "-m {list}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains("no shared memory"),
            "{err}"
        );
        assert!(
            err.contains("shm-futex") && err.contains("limit-copy"),
            "{err}"
        );
    }
}

/// `shmchan-async` makes its rings in the rendezvous, after the fork: its
/// server passes them to the scribbler, which writes on them as on every
/// other row's. Its result counts: the scribbler's damage is detected
/// (errors), never a clean pass of rings nobody touched (issue 22: 40 of
/// 40 rounds clean).
#[test]
fn shmchan_async_is_scribbled_on_and_the_damage_detected() {
    let _alone = common::one_at_a_time();
    let before = common::ipc_objects();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ipclab"))
        .args([
            "torture",
            "hostile",
            "-m",
            "shmchan-async",
            "--rounds",
            "20",
        ])
        .args([
            "--cell-duration",
            "100ms",
            "--timeout",
            "10s",
            "--seed",
            "7",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let end = Instant::now() + WATCHDOG;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("watchdog: the torture run did not end");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(out.status.success(), "{}", out.status);
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let row = lines
        .find(|r| r.split_whitespace().next() == Some("shmchan-async"))
        .expect("a row for shmchan-async");
    assert_eq!(column(header, row, "rounds"), 20, "{row}");
    assert!(column(header, row, "errors") > 0, "never hit: {row}");
    assert!(column(header, row, "clean") < 20, "{row}");
    for must_be_zero in ["panics", "crashes", "leaks"] {
        assert_eq!(
            column(header, row, must_be_zero),
            0,
            "{must_be_zero}: {row}"
        );
    }
    assert_eq!(common::new_objects(&before), Vec::<String>::new());
}
