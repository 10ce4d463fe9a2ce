//! A side that cannot map its shared memory under an address-space limit
//! (`ulimit -v`) fails at once with an error naming the limit; its peer
//! sees it go, and nothing is left behind.

mod common;

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::process::Command;

use rustix::process::{Resource, Rlimit, setrlimit};

/// The address-space limit of the runs, in KiB: room for ipclab itself
/// (about 10 MiB mapped) and one iceoryx2 data segment of 4 MiB samples
/// (16 MiB), not for the peer's second one. So the server creates its own
/// segment and fails to map the client's, the case that once left both
/// sides polling until the watchdog (iceoryx2 only warns about a connection
/// it cannot make).
const LIMIT_KIB: u64 = 34_000;

/// One iceoryx2 data segment of 4 MiB samples, in KiB.
const SEGMENT_KIB: u64 = 16 * 1024;

/// The run under an address-space limit of `kib` KiB: its status and
/// output.
fn run_limited(kib: u64) -> (std::process::Output, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ipclab"));
    cmd.args(["run", "-m", "iceoryx2,iceoryx2-event", "-s", "4M"])
        .args(["-p", "pingpong,stream", "--iterations", "20"])
        // Only a watchdog: the cells must fail long before it.
        .args(["--timeout", "10s", "--no-limits"]);
    let limit = Rlimit {
        current: Some(kib * 1024),
        maximum: Some(kib * 1024),
    };
    // SAFETY: the closure runs between fork and exec and makes one system
    // call (setrlimit), which is async-signal-safe; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || Ok(setrlimit(Resource::As, limit)?));
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out, text)
}

/// `ipclab ls --json`: the listed objects, as their JSON text.
fn listed() -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_ipclab"))
        .args(["ls", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|o| o.to_string())
        .collect()
}

#[test]
fn iceoryx2_under_an_address_space_limit_fails_at_once_naming_it() {
    let before = common::ipc_objects();
    let listed_before = listed();
    let (mut out, mut text) = run_limited(LIMIT_KIB);
    // A larger build (more of the binary mapped) leaves no room for even
    // this side's segment: the error says how much the side mapped before
    // it, and the limit then leaves room for one segment and half another.
    if text.contains("cannot map this side's data segment") {
        let mapped = text
            .split("this process maps ")
            .nth(1)
            .and_then(|t| t.split(" KiB").next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no mapped size in: {text}"));
        (out, text) = run_limited(mapped + SEGMENT_KIB + SEGMENT_KIB / 2);
    }
    let limit = text
        .split("ulimit -v, is ")
        .nth(1)
        .and_then(|t| t.split(" KiB").next())
        .unwrap_or("?")
        .to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    for name in ["iceoryx2", "iceoryx2-event"] {
        for pattern in ["pingpong", "stream"] {
            let line = text
                .lines()
                .find(|l| l.contains(&format!("] {name} {pattern} 4 MiB")))
                .unwrap_or_else(|| panic!("no line for {name} {pattern}: {text}"));
            assert!(
                line.contains(
                    "(server): opening the server end: iceoryx2: cannot map the peer's \
                     data segment of 16 MiB: out of memory (the address-space limit, \
                     ulimit -v, is "
                ) && line.contains(&format!("is {limit} KiB")),
                "{line}"
            );
            assert!(
                line.contains("(client): opening the client end: the peer went away"),
                "{line}"
            );
            assert!(!line.contains("timed out"), "{line}");
        }
    }
    assert_eq!(common::new_objects(&before), Vec::<String>::new());
    let new: Vec<String> = listed().difference(&listed_before).cloned().collect();
    assert_eq!(
        new,
        Vec::<String>::new(),
        "ipclab ls lists what the runs left"
    );
}
