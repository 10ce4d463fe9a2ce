//! A peer that truncates the shared file or POSIX shared memory object
//! under the sides (fault `IPCLAB_FAULT_TRUNCATE=<µs>`: a process holding
//! the object shrinks it to 0 bytes after that delay) cannot crash them:
//! each side reports the `SIGBUS` instead of dying by it, the run fails
//! with that clear error, and nothing is left behind. (A memfd is sealed
//! against truncation, a System V segment cannot be truncated.)

mod common;

use assert_cmd::Command;

#[test]
fn a_truncated_region_fails_the_cell_with_a_clear_error() {
    let before = common::ipc_objects();
    for name in ["mmap-file", "posix-shm-sem"] {
        let out = Command::cargo_bin("ipclab")
            .unwrap()
            .args(["run", "-m", name, "-s", "4K", "-p", "pingpong,stream"])
            // Runs until the truncation; the timeout is only a watchdog.
            .args(["--iterations", "1000000000", "--timeout", "30s"])
            .args(["--warmup", "0ms", "--placement", "unpinned", "--no-limits"])
            .env("IPCLAB_FAULT_TRUNCATE", "100000")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {text}");
        for pattern in ["pingpong", "stream"] {
            assert!(
                text.contains(&format!(
                    "{name} {pattern} size 4096 (server): shared memory truncated under us (SIGBUS)"
                )) || text.contains(&format!(
                    "{name} {pattern} size 4096 (client): shared memory truncated under us (SIGBUS)"
                )),
                "{name} {pattern}: {text}"
            );
        }
        assert!(!text.contains("died without a report"), "{name}: {text}");
        assert!(!text.contains("panicked"), "{name}: {text}");
    }
    assert_eq!(common::new_objects(&before), Vec::<String>::new());
}
