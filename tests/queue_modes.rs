//! Message queues are made with mode 0600, whatever the umask.
//!
//! The umask belongs to the whole process and tests run as threads of one
//! process, so the check runs in a fresh copy of this test binary that runs
//! nothing else ([`check_in_child`]), once per umask.

use std::process::Command;

use ipclab_bench::mechanisms::{posix_mq, sysv_mq};

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
    println!("modes checked under umask {umask}");
}
