//! Export files (`--json`, `--csv`, `--markdown`): a regular file is
//! written, `-` is standard output, and anything else already at the path
//! (a device node, a symbolic link, a FIFO, a directory) is refused up
//! front and left exactly as it was. A planted `<path>.tmp` is no hazard.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;
use rustix::fs::{CWD, FileType, Mode, makedev, mknodat};

/// Kills a run that hangs (a FIFO opened for writing blocks) and fails.
const WATCHDOG: Duration = Duration::from_secs(120);

fn ipclab() -> Command {
    let mut c = Command::cargo_bin("ipclab").expect("the binary is built");
    c.timeout(WATCHDOG);
    c
}

/// The smallest real run: one pipe cell, ten round trips.
const TINY: [&str; 12] = [
    "run",
    "-m",
    "pipe",
    "-p",
    "pingpong",
    "-s",
    "64",
    "--iterations",
    "10",
    "--no-limits",
    "--placement",
    "unpinned",
];

use common::TempDir;

/// Everything that tells one object at a path from another: its type,
/// inode, mode and device number, where a link points, a file's contents.
#[derive(Debug, PartialEq)]
struct Seen {
    kind: String,
    ino: u64,
    mode: u32,
    rdev: u64,
    link: Option<PathBuf>,
    contents: Option<Vec<u8>>,
}

fn seen(path: &Path) -> Seen {
    let m = std::fs::symlink_metadata(path).unwrap();
    let t = m.file_type();
    let kind = if t.is_symlink() {
        "symlink"
    } else if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "fifo"
    } else if t.is_char_device() {
        "char device"
    } else if t.is_file() {
        "file"
    } else {
        "other"
    };
    Seen {
        kind: kind.into(),
        ino: m.ino(),
        mode: m.mode(),
        rdev: m.rdev(),
        link: std::fs::read_link(path).ok(),
        contents: t.is_file().then(|| std::fs::read(path).unwrap()),
    }
}

/// Makes a character device node (1, 7: what `/dev/full` is); `false`
/// when this process may not (not root, or a container without
/// CAP_MKNOD).
fn plant_device(path: &Path) -> bool {
    match mknodat(
        CWD,
        path,
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o600),
        makedev(1, 7),
    ) {
        Ok(()) => true,
        Err(e) if e == rustix::io::Errno::PERM || e == rustix::io::Errno::ACCESS => {
            println!("skipping the device node: mknod refused ({e})");
            false
        }
        Err(e) => panic!("mknod {}: {e}", path.display()),
    }
}

fn plant_fifo(path: &Path) {
    rustix::fs::mkfifoat(CWD, path, Mode::from_raw_mode(0o600)).unwrap();
}

/// Each flag at a planted object that is not a regular file: exit status
/// 2, one `error:` line naming the path, the object exactly as before and
/// nothing else left in the folder (the link's target file included).
#[test]
fn an_export_onto_anything_but_a_regular_file_is_refused_and_left_alone() {
    let dir = TempDir::new("planted");
    let target = dir.0.join("precious.txt");
    std::fs::write(&target, "keep me\n").unwrap();
    let mut planted = vec![
        ("a symbolic link", dir.0.join("link.json")),
        ("a FIFO", dir.0.join("fifo.json")),
        ("a directory", dir.0.join("dir.json")),
    ];
    std::os::unix::fs::symlink(&target, &planted[0].1).unwrap();
    plant_fifo(&planted[1].1);
    std::fs::create_dir(&planted[2].1).unwrap();
    let device = dir.0.join("full.json");
    if plant_device(&device) {
        planted.push(("a device node", device));
    }
    let names = dir.names();
    let target_before = seen(&target);
    for (what, path) in &planted {
        let before = seen(path);
        for flag in ["--json", "--csv", "--markdown"] {
            let out = ipclab().args(TINY).arg(flag).arg(path).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            let at = format!("{flag} onto {what}");
            assert_eq!(out.status.code(), Some(2), "{at}: {err}");
            assert_eq!(err.lines().count(), 1, "{at}: not one line: {err}");
            assert!(err.starts_with("error: "), "{at}: {err}");
            assert!(err.contains(&path.display().to_string()), "{at}: {err}");
            assert!(!err.contains("panicked"), "{at}: {err}");
            assert_eq!(seen(path), before, "{at}: the object changed");
            assert_eq!(
                seen(&target),
                target_before,
                "{at}: the link's target changed"
            );
            assert_eq!(dir.names(), names, "{at}: a file was left behind");
        }
    }
}

/// The old temporary name, `<path>.tmp`, planted as a FIFO (which would
/// block a writer) or a link (which would be written through): the run
/// writes its file and leaves both alone.
#[test]
fn a_planted_tmp_file_is_neither_opened_nor_replaced() {
    let dir = TempDir::new("tmp");
    let victim = dir.0.join("victim.txt");
    std::fs::write(&victim, "keep me\n").unwrap();
    let (json, csv) = (dir.0.join("run.json"), dir.0.join("run.csv"));
    plant_fifo(&dir.0.join("run.json.tmp"));
    std::os::unix::fs::symlink(&victim, dir.0.join("run.csv.tmp")).unwrap();
    let before: Vec<Seen> = ["run.json.tmp", "run.csv.tmp", "victim.txt"]
        .iter()
        .map(|n| seen(&dir.0.join(n)))
        .collect();
    let out = ipclab()
        .args(TINY)
        .arg("--json")
        .arg(&json)
        .arg("--csv")
        .arg(&csv)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after: Vec<Seen> = ["run.json.tmp", "run.csv.tmp", "victim.txt"]
        .iter()
        .map(|n| seen(&dir.0.join(n)))
        .collect();
    assert_eq!(after, before);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["complete"], true);
    assert!(
        std::fs::read_to_string(&csv)
            .unwrap()
            .starts_with("mechanism,")
    );
    // Only the two exports are new: no temporary file is left.
    assert_eq!(
        dir.names(),
        [
            "run.csv",
            "run.csv.tmp",
            "run.json",
            "run.json.tmp",
            "victim.txt"
        ]
    );
    let mode = std::fs::metadata(&json).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o600, "export mode {mode:o}");
}

/// An existing regular file is replaced whole (a new inode: readers of the
/// old one never see half a file).
#[test]
fn an_existing_regular_file_is_replaced() {
    let dir = TempDir::new("regular");
    let md = dir.0.join("run.md");
    std::fs::write(&md, "old\n").unwrap();
    let out = ipclab()
        .args(TINY)
        .arg("--markdown")
        .arg(&md)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&md).unwrap();
    assert!(text.contains("pipe"), "{text}");
    assert_eq!(dir.names(), ["run.md"]);
}

/// `--json -`: the JSON alone on standard output, written once at the end;
/// the table goes to standard error.
#[test]
fn dash_writes_the_export_to_standard_output() {
    let out = ipclab().args(TINY).args(["--json", "-"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(v["complete"], true);
    assert_eq!(v["rows"][0]["mechanism"], "pipe");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("round-trip time"), "the table: {err}");

    let out = ipclab().args(TINY).args(["--csv", "-"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("mechanism,") && text.lines().count() == 2,
        "{text}"
    );
    // The columns of pairs and offered load: one pair, closed loop.
    let mut csv = text.lines().map(|l| l.split(',').collect::<Vec<_>>());
    let (header, row) = (csv.next().unwrap(), csv.next().unwrap());
    let column = |name: &str| {
        let i = header.iter().position(|h| *h == name);
        row[i.unwrap_or_else(|| panic!("no column {name}: {text}"))]
    };
    assert_eq!(column("pairs"), "1");
    assert_eq!(column("offered_rate"), "");
    assert_eq!(column("sustained"), "");
    assert_ne!(column("round_trips_per_s"), "");

    // Two exports cannot share standard output.
    let out = ipclab()
        .args(TINY)
        .args(["--json", "-", "--markdown", "-"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("standard output"), "{err}");
}
