//! A full `/dev/shm` is reported as a full file system, not as a peer's
//! truncation: both raise `SIGBUS` on a shared mapping, and the sides'
//! handler tells them apart (`harness/sigbus.rs`). Mechanisms that
//! allocate their memory up front (`fallocate`) fail before the fork with
//! `ENOSPC` instead.
//!
//! The run gets a private 8 MiB tmpfs on `/dev/shm` in a mount namespace of
//! its own (the real `/dev/shm` is never filled); the namespace and its
//! tmpfs die with the run. Without mount namespaces (no privilege) the test
//! is skipped with the reason printed.

mod common;

use std::os::unix::process::CommandExt;
use std::process::Command;

/// In the child between fork and exec: a mount namespace of its own, no
/// propagation to the real mounts, and an 8 MiB tmpfs on `/dev/shm`.
fn private_small_dev_shm() -> std::io::Result<()> {
    // SAFETY: unshare and mount are async-signal-safe system calls; the
    // arguments are static C strings; nothing is allocated.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0
            || libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            || libc::mount(
                c"tmpfs".as_ptr(),
                c"/dev/shm".as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                c"size=8m,mode=1777".as_ptr().cast(),
            ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[test]
fn a_full_dev_shm_is_reported_as_full_not_as_truncation() {
    let before = common::ipc_objects();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ipclab"));
    // 4 MiB messages: iceoryx2's data segments are 16 MiB each, and the
    // ring mechanisms' regions as large; the tmpfs holds 8 MiB.
    cmd.args([
        "run",
        "-m",
        "iceoryx2,iceoryx2-event,posix-shm-sem,shm-futex",
    ])
    .args(["-s", "4M", "-p", "pingpong,stream", "--iterations", "20"])
    // Only a watchdog: the cells fail long before it.
    .args(["--timeout", "10s", "--no-limits"]);
    // SAFETY: `private_small_dev_shm` makes only async-signal-safe system
    // calls.
    unsafe {
        cmd.pre_exec(private_small_dev_shm);
    }
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) => {
            println!("skipped: no private mount namespace with a tmpfs ({e})");
            return;
        }
    };
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let line = |name: &str, pattern: &str| {
        text.lines()
            .find(|l| l.contains(&format!("] {name} {pattern} 4 MiB")))
            .unwrap_or_else(|| panic!("no line for {name} {pattern}: {text}"))
            .to_string()
    };
    for pattern in ["pingpong", "stream"] {
        for name in ["iceoryx2", "iceoryx2-event"] {
            let line = line(name, pattern);
            assert!(
                line.contains(
                    "the file system backing the shared memory (e.g. /dev/shm) is full: \
                     the kernel could not allocate a page (ENOSPC; SIGBUS; "
                ),
                "{line}"
            );
            assert!(!line.contains("truncated"), "{line}");
            assert!(!line.contains("timed out"), "{line}");
        }
        for name in ["posix-shm-sem", "shm-futex"] {
            let line = line(name, pattern);
            assert!(line.contains("No space left on device"), "{line}");
            assert!(!line.contains("truncated"), "{line}");
        }
    }
    assert_eq!(common::new_objects(&before), Vec::<String>::new());
}
