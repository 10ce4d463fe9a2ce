//! Message queues are made with mode 0600, whatever the umask; so are the
//! FIFOs (in a 0700 directory) and iceoryx2's private root directory (0700).
//!
//! The umask belongs to the whole process and tests run as threads of one
//! process, so the check runs in a fresh copy of this test binary that runs
//! nothing else ([`check_in_child`]), once per umask.

mod common;

use std::process::Command;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use ipclab_bench::mechanisms::{find, posix_mq, sysv_mq};
use ipclab_bench::transport::ChannelConfig;

/// Set in the child: the umask (octal) to check under.
const CHILD: &str = "IPCLAB_QUEUE_MODES_UMASK";

#[test]
fn queues_are_0600_under_any_umask() {
    // 0: nothing taken away; 077: the usual private umask; 0277: takes the
    // owner's write bit, which `mq_open` alone would obey.
    for umask in ["0", "077", "0277"] {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "check_in_child", "--ignored", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(CHILD, umask)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "umask {umask}:\n{text}");
        assert!(
            text.contains(&format!("modes checked under umask {umask}")),
            "the check did not run:\n{text}"
        );
    }
}

#[test]
#[ignore = "runs in a child process of queues_are_0600_under_any_umask"]
fn check_in_child() {
    let Ok(umask) = std::env::var(CHILD) else {
        return;
    };
    let mask = u32::from_str_radix(&umask, 8).unwrap();
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(mask));

    let q = sysv_mq::SysvQueue::create().unwrap();
    assert_eq!(q.mode().unwrap(), 0o600, "System V queue, umask {umask}");
    drop(q); // IPC_RMID

    let (msgsize, maxmsg) = posix_mq::sizes_to_try()[0];
    let (rx, tx) = posix_mq::create_queue(msgsize, maxmsg).unwrap();
    assert_eq!(rx.mode().unwrap(), 0o600, "POSIX queue, umask {umask}");
    assert_eq!(tx.mode().unwrap(), 0o600, "POSIX queue, umask {umask}");

    // Mechanisms whose prepare makes a private directory: its mode and that
    // of everything in it. (The FIFOs go to $XDG_RUNTIME_DIR when set.)
    let mut dirs = vec![("fifo", 3)];
    if find("iceoryx2").is_some() {
        dirs.push(("iceoryx2", 1));
    }
    for (name, entries) in dirs {
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute() && p.is_dir() && name == "fifo")
            .unwrap_or_else(std::env::temp_dir);
        let private = || -> BTreeSet<PathBuf> {
            std::fs::read_dir(&base)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .filter(|p| common::is_ipclab_dir(&p.file_name().unwrap().to_string_lossy()))
                .collect()
        };
        let before = private();
        let config = ChannelConfig {
            size: 64,
            segment_size: None,
            segments: 1,
        };
        let prepared = find(name).unwrap().prepare(&config).unwrap();
        let made: Vec<PathBuf> = private().difference(&before).cloned().collect();
        let mode =
            |p: &PathBuf| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
        // Other tests may make such directories at the same time: only ours
        // count (the one with the FIFOs; iceoryx2's root is empty yet).
        let ours = |d: &&PathBuf| {
            let inside = std::fs::read_dir(d).map_or(0, |r| r.count());
            inside == entries - 1 && (name != "fifo" || d.join("c2s").exists())
        };
        let mut seen = 0;
        for dir in made.iter().filter(ours) {
            assert_eq!(mode(dir), 0o700, "{name}: {}, umask {umask}", dir.display());
            seen += 1;
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                assert_eq!(
                    mode(&e.path()),
                    0o600,
                    "{name}: {}, umask {umask}",
                    e.path().display()
                );
                seen += 1;
            }
        }
        assert!(seen >= entries, "{name}: {made:?}");
        drop(prepared);
    }
    println!("modes checked under umask {umask}");
}
