//! The examples a newcomer copies first (`examples/rendezvous_server.rs`
//! and `examples/rendezvous_client.rs`), run the way the README runs them:
//! the server and each client as processes of their own, the example
//! binaries `cargo test` builds. Every wait has a watchdog that kills the
//! server; nothing is left in the temporary directory.

mod common;
#[path = "common/rendezvous.rs"]
mod rdv;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::sync::{OnceLock, mpsc};

use common::{WATCHDOG, reap};
use rdv::TempDir;

/// The example binary `name`, in `target/<profile>/examples/`. `cargo
/// test` builds the examples, but `cargo test --test examples` alone does
/// not, and would find stale ones: so they are built here, once (a no-op
/// when they are fresh).
fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        // target/<profile>/deps/examples-<hash> -> target/<profile>/
        let profile = exe.parent().unwrap().parent().unwrap();
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args(["build", "--quiet", "-p", "shmchan"]);
        cargo.args([
            "--example",
            "rendezvous_server",
            "--example",
            "rendezvous_client",
            "--example",
            "waitset_server",
            "--example",
            "broadcast_publisher",
            "--example",
            "broadcast_subscriber",
        ]);
        if profile.ends_with("release") {
            cargo.arg("--release");
        }
        let status = cargo.status().expect("running cargo build");
        assert!(status.success(), "cargo build of the examples: {status}");
        profile.join("examples")
    });
    let bin = dir.join(name);
    assert!(bin.exists(), "{} not found", bin.display());
    bin
}

/// A running example server, killed and reaped on drop if it is still
/// there (a failed assertion leaves no process behind).
struct Server {
    child: Child,
    /// Its standard error, line by line, from a reader thread.
    lines: mpsc::Receiver<String>,
}

impl Server {
    fn start(args: &[&OsStr]) -> Server {
        Self::start_example("rendezvous_server", args)
    }

    fn start_example(name: &str, args: &[&OsStr]) -> Server {
        let mut child = Command::new(example(name))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let lines = read_lines(child.stderr.take().unwrap());
        Server { child, lines }
    }

    /// The server's next line of standard error, within the watchdog.
    fn next_line(&mut self) -> String {
        match self.lines.recv_timeout(WATCHDOG) {
            Ok(line) => line,
            Err(e) => panic!("watchdog: no line from the server ({e})"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn read_lines(stderr: ChildStderr) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Runs the example `name` with `args` to its end, within the watchdog.
fn run(name: &str, args: &[&OsStr]) -> Output {
    let mut child = Command::new(example(name))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {name}: {e}"));
    // Its few lines fit in the pipes: it never blocks on them.
    reap(&mut child);
    child.wait_with_output().unwrap()
}

#[test]
fn the_echo_server_answers_each_client_then_leaves_nothing() {
    let dir = TempDir::new("examples");
    let path = dir.join("echo.sock");
    // Two clients, then the server exits.
    let mut server = Server::start(&[path.as_os_str(), "2".as_ref()]);
    assert_eq!(
        server.next_line(),
        format!("listening on {}", path.display())
    );

    let first = run(
        "rendezvous_client",
        &[path.as_os_str(), "hello".as_ref(), "shmchan".as_ref()],
    );
    assert!(first.status.success(), "{first:?}");
    assert_eq!(String::from_utf8_lossy(&first.stdout), "hello\nshmchan\n");
    let connected = String::from_utf8_lossy(&first.stderr);
    assert!(
        connected.starts_with(&format!("connected to pid {}", server.child.id())),
        "{connected}"
    );
    assert!(server.next_line().ends_with("connected"));
    assert!(server.next_line().ends_with("left"));

    // No messages given: the client's own two.
    let second = run("rendezvous_client", &[path.as_os_str()]);
    assert!(second.status.success(), "{second:?}");
    assert_eq!(String::from_utf8_lossy(&second.stdout), "hello\nworld\n");

    let status = reap(&mut server.child);
    assert!(status.success(), "the server: {status}");
    // The listener removed its socket and lock files as it exited.
    assert_eq!(dir.entries(), Vec::<String>::new());
}

/// The one-thread server over a `WaitSet`: three clients at once, each
/// answered on its own connection; then it exits, leaving nothing.
#[test]
fn the_waitset_server_answers_clients_at_once_then_leaves_nothing() {
    let dir = TempDir::new("examples-waitset");
    let path = dir.join("echo.sock");
    let mut server = Server::start_example("waitset_server", &[path.as_os_str(), "3".as_ref()]);
    assert_eq!(
        server.next_line(),
        format!("listening on {}", path.display())
    );
    let words = ["one", "two", "three"];
    let clients: Vec<Child> = words
        .iter()
        .map(|w| {
            Command::new(example("rendezvous_client"))
                .args([path.as_os_str(), w.as_ref(), "and".as_ref(), w.as_ref()])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (mut client, w) in clients.into_iter().zip(words) {
        reap(&mut client);
        let out = client.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{w}\nand\n{w}\n")
        );
    }
    let mut lines: Vec<String> = (0..6).map(|_| server.next_line()).collect();
    lines.sort();
    assert_eq!(
        lines.iter().filter(|l| l.ends_with(" left")).count(),
        3,
        "{lines:?}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.contains(") connected")).count(),
        3,
        "{lines:?}"
    );
    let status = reap(&mut server.child);
    assert!(status.success(), "the server: {status}");
    assert_eq!(dir.entries(), Vec::<String>::new());
    let usage = run("waitset_server", &[]);
    assert_eq!(usage.status.code(), Some(2), "{usage:?}");
}

#[test]
fn the_examples_refuse_bad_arguments_with_one_line() {
    let server = run("rendezvous_server", &[]);
    let count = run(
        "rendezvous_server",
        &["/tmp/x.sock".as_ref(), "many".as_ref()],
    );
    let client = run("rendezvous_client", &[]);
    for out in [&server, &count, &client] {
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("usage: ") && err.lines().count() == 1,
            "{err}"
        );
    }
    // Nobody listens there: one error line, exit status 1.
    let dir = TempDir::new("examples-nobody");
    let path = dir.join("nobody.sock");
    let lonely = run("rendezvous_client", &[path.as_os_str()]);
    assert_eq!(lonely.status.code(), Some(1));
    let err = String::from_utf8_lossy(&lonely.stderr);
    assert!(
        err.starts_with("error: ") && err.lines().count() == 1,
        "{err}"
    );
}

/// The broadcast examples as four processes: a publisher and three
/// subscribers, each of which gets every message (the default, lossless
/// policy); the socket file is gone afterwards.
#[test]
fn the_broadcast_examples_deliver_every_message_to_every_subscriber() {
    let dir = TempDir::new("examples-broadcast");
    let path = dir.join("ticks.sock");
    let mut publisher = Command::new(example("broadcast_publisher"))
        .args([path.as_os_str(), "3".as_ref(), "20000".as_ref()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting broadcast_publisher");
    let lines = read_lines(publisher.stderr.take().unwrap());
    let line = lines.recv_timeout(WATCHDOG).expect("watchdog: no line");
    assert_eq!(line, format!("listening on {}", path.display()));
    let subs: Vec<Child> = (0..3)
        .map(|_| {
            Command::new(example("broadcast_subscriber"))
                .arg(&path)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("starting broadcast_subscriber")
        })
        .collect();
    for mut sub in subs {
        reap(&mut sub);
        let out = sub.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "received 20000 messages, 0 lost\n"
        );
    }
    assert!(reap(&mut publisher).success());
    assert_eq!(dir.entries(), Vec::<String>::new());
}

/// The README's code blocks, in order: each fence's info string and body.
fn readme_blocks() -> Vec<(String, String)> {
    let readme = include_str!("../README.md");
    let mut blocks = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        let Some(info) = line.strip_prefix("```") else {
            continue;
        };
        let mut body = String::new();
        for line in lines.by_ref() {
            if line == "```" {
                break;
            }
            body.push_str(line);
            body.push('\n');
        }
        blocks.push((info.to_owned(), body));
    }
    blocks
}

/// The first code a reader of the README sees is the two examples, as
/// they are; and the README holds no other Rust code (which nothing would
/// compile).
#[test]
fn the_readme_starts_with_the_examples_as_they_are() {
    let server = include_str!("../examples/rendezvous_server.rs");
    let client = include_str!("../examples/rendezvous_client.rs");
    let blocks = readme_blocks();
    assert!(blocks.len() >= 2, "the README has too few code blocks");
    assert_eq!(blocks[0].0, "rust", "the README's first code block");
    assert!(
        blocks[0].1 == server,
        "README's first block is not examples/rendezvous_server.rs"
    );
    assert_eq!(blocks[1].0, "rust", "the README's second code block");
    assert!(
        blocks[1].1 == client,
        "README's second block is not examples/rendezvous_client.rs"
    );
    for (info, _) in &blocks[2..] {
        assert_ne!(
            info, "rust",
            "a Rust block in the README that no test compiles"
        );
    }
}
