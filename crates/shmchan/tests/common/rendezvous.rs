//! Helpers for the rendezvous tests (`tests/rendezvous*.rs`, which
//! include this file as a module): peers with a line to say they are
//! ready, a watchdog, temporary directories, and the exchanges both sides
//! check.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Child;
use std::sync::mpsc;

use crate::common::{
    WATCHDOG, check_message, child_env, length, message, reap, signal, spawn, stdin_socket,
};
use rustix::process::Signal;
use shmchan::{Connection, Error, Listener, Options};

/// Messages each way in an exchange.
pub const ROUNDS: u64 = 100;
/// A ring small enough that the longer messages go in rounds.
pub const SMALL_RING: usize = 4096;

/// Aborts the whole test binary (its children die with it) if not
/// dropped within the watchdog's time.
pub struct Watchdog(#[allow(dead_code)] mpsc::Sender<()>);

pub fn watchdog(what: &'static str) -> Watchdog {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(WATCHDOG) {
            eprintln!("watchdog: {what} did not finish");
            std::process::abort();
        }
    });
    Watchdog(tx)
}

/// A directory of our own under the temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).unwrap();
        let dir = std::env::temp_dir().join(format!("shmchan-rdv-{tag}-{}", u64::from_le_bytes(b)));
        std::fs::create_dir(&dir).unwrap();
        // Searchable by others: the cross-user test's child connects here.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(dir)
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn entries(&self) -> Vec<String> {
        std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A made-up abstract name.
pub fn abstract_name(tag: &str) -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    format!("@shmchan-test-{tag}-{}", u64::from_le_bytes(b))
}

/// `addr` is a path, or `@name` for the abstract namespace.
pub fn bind(opts: &Options, addr: &str) -> Result<Listener, Error> {
    match addr.strip_prefix('@') {
        Some(name) => opts.bind_abstract(name),
        None => opts.bind(addr),
    }
}

pub fn connect(opts: &Options, addr: &str) -> Result<Connection, Error> {
    match addr.strip_prefix('@') {
        Some(name) => opts.connect_abstract(name),
        None => opts.connect(addr),
    }
}

/// A child with a socket for its standard input: it says when it is
/// ready (one byte), or passes a line.
pub struct Peer {
    pub child: Child,
    pub line: UnixStream,
}

impl Peer {
    pub fn spawn(test: &str, role: &str, env: &[(&str, &str)]) -> Peer {
        let (here, there) = UnixStream::pair().unwrap();
        here.set_read_timeout(Some(WATCHDOG)).unwrap();
        let child = spawn(test, role, env, Some(OwnedFd::from(there)));
        Peer { child, line: here }
    }

    /// Waits for the child's "ready" byte.
    pub fn ready(&mut self) {
        let mut b = [0u8; 1];
        self.line
            .read_exact(&mut b)
            .expect("watchdog: the child never said it was ready");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill(&mut self) {
        signal(&self.child, Signal::KILL);
        reap(&mut self.child);
    }
}

/// In a child: tells the parent it is ready.
pub fn say_ready() {
    stdin_socket().write_all(b"!").unwrap();
}

/// In a child: sleeps until killed (or the watchdog's time, then fails).
pub fn linger() -> ! {
    std::thread::sleep(WATCHDOG);
    panic!("never killed");
}

/// The client's half of an exchange: ROUNDS messages out, checked, then
/// ROUNDS in.
pub fn client_exchange(conn: &mut Connection) {
    for seq in 0..ROUNDS {
        conn.sender().send(&message(seq, length(seq))).unwrap();
    }
    for seq in 0..ROUNDS {
        let got = conn.receiver().recv_timeout(WATCHDOG).unwrap();
        check_message(&got, seq + ROUNDS, length(seq + ROUNDS));
    }
}

/// The listener's half.
pub fn listener_exchange(conn: &mut Connection) {
    for seq in 0..ROUNDS {
        let got = conn.receiver().recv_timeout(WATCHDOG).unwrap();
        check_message(&got, seq, length(seq));
    }
    for seq in ROUNDS..2 * ROUNDS {
        conn.sender().send(&message(seq, length(seq))).unwrap();
    }
}

/// `accept` under the watchdog.
pub fn accept(listener: &Listener) -> Result<Connection, Error> {
    let _dog = watchdog("accept");
    listener.accept()
}

/// The parent's pid, for a child to check its peer's credentials.
pub fn parent_pid() -> String {
    std::process::id().to_string()
}

/// The roles both test files' children play; false for another role.
pub fn play_common(role: &str, addr: &str) -> bool {
    match role {
        // Connects, checks the listener's credentials, exchanges, closes.
        "client" => {
            let mut conn = connect(&Options::new(), addr).unwrap();
            let me = rustix::process::geteuid().as_raw();
            assert_eq!(conn.peer().pid.to_string(), child_env("SHMCHAN_PARENT"));
            assert_eq!(conn.peer().uid, me);
            assert_eq!(conn.peer().gid, rustix::process::getegid().as_raw());
            client_exchange(&mut conn);
        }
        // Connects, sends one message, waits to be killed.
        "client-then-hang" => {
            let mut conn = connect(&Options::new(), addr).unwrap();
            conn.sender().send(b"before the kill").unwrap();
            linger();
        }
        // Binds, says so, waits to be killed.
        "listener" => {
            let _l = bind(&Options::new(), addr).unwrap();
            say_ready();
            linger();
        }
        _ => return false,
    }
    true
}
