//! The rendezvous between real processes: connect/accept, credentials,
//! restarted clients, dead listeners, hostile peers on either side, other
//! users, and `kill -9` of either side at random moments.
//!
//! The test binary runs itself again as the other side (see `common`);
//! every wait has a watchdog.

mod common;

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Child;
use std::sync::mpsc;
use std::time::Duration;

use common::{
    Noise, WATCHDOG, check_message, child_env, child_role, length, message, reap, signal, spawn,
};
use rustix::process::Signal;
use shmchan::{Connection, Error, Listener, Options, SendTimeoutError};

/// Messages each way in an exchange.
const ROUNDS: u64 = 100;
/// A ring small enough that the longer messages go in rounds.
const SMALL_RING: usize = 4096;
/// The handshake timeout of the tests with silent peers.
const SHORT_HANDSHAKE: Duration = Duration::from_millis(300);
/// The user and group the cross-user tests become (`nobody`).
const NOBODY: u32 = 65534;

// ---------------------------------------------------------------------
// Helpers

/// Aborts the whole test binary (its children die with it) if not
/// dropped within the watchdog's time.
struct Watchdog(#[allow(dead_code)] mpsc::Sender<()>);

fn watchdog(what: &'static str) -> Watchdog {
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
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).unwrap();
        let dir = std::env::temp_dir().join(format!("shmchan-rdv-{tag}-{}", u64::from_le_bytes(b)));
        std::fs::create_dir(&dir).unwrap();
        // Searchable by others: the cross-user test's child connects here.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(dir)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn entries(&self) -> Vec<String> {
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
fn abstract_name(tag: &str) -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    format!("@shmchan-test-{tag}-{}", u64::from_le_bytes(b))
}

/// `addr` is a path, or `@name` for the abstract namespace.
fn bind(opts: &Options, addr: &str) -> Result<Listener, Error> {
    match addr.strip_prefix('@') {
        Some(name) => opts.bind_abstract(name),
        None => opts.bind(addr),
    }
}

fn connect(opts: &Options, addr: &str) -> Result<Connection, Error> {
    match addr.strip_prefix('@') {
        Some(name) => opts.connect_abstract(name),
        None => opts.connect(addr),
    }
}

/// A child with a socket for its standard input: it says when it is
/// ready (one byte), or passes a line.
struct Peer {
    child: Child,
    line: UnixStream,
}

impl Peer {
    fn spawn(test: &str, role: &str, env: &[(&str, &str)]) -> Peer {
        let (here, there) = UnixStream::pair().unwrap();
        here.set_read_timeout(Some(WATCHDOG)).unwrap();
        let child = spawn(test, role, env, Some(OwnedFd::from(there)));
        Peer { child, line: here }
    }

    /// Waits for the child's "ready" byte.
    fn ready(&mut self) {
        let mut b = [0u8; 1];
        self.line
            .read_exact(&mut b)
            .expect("watchdog: the child never said it was ready");
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn kill(&mut self) {
        signal(&self.child, Signal::KILL);
        reap(&mut self.child);
    }
}

/// In a child: tells the parent it is ready.
fn say_ready() {
    common::stdin_socket().write_all(b"!").unwrap();
}

/// In a child: sleeps until killed (or the watchdog's time, then fails).
fn linger() -> ! {
    std::thread::sleep(WATCHDOG);
    panic!("never killed");
}

/// The client's half of an exchange: ROUNDS messages out, checked, then
/// ROUNDS in.
fn client_exchange(conn: &mut Connection) {
    for seq in 0..ROUNDS {
        conn.sender().send(&message(seq, length(seq))).unwrap();
    }
    for seq in 0..ROUNDS {
        let got = conn.receiver().recv_timeout(WATCHDOG).unwrap();
        check_message(&got, seq + ROUNDS, length(seq + ROUNDS));
    }
}

/// The listener's half.
fn listener_exchange(conn: &mut Connection) {
    for seq in 0..ROUNDS {
        let got = conn.receiver().recv_timeout(WATCHDOG).unwrap();
        check_message(&got, seq, length(seq));
    }
    for seq in ROUNDS..2 * ROUNDS {
        conn.sender().send(&message(seq, length(seq))).unwrap();
    }
}

/// `accept` under the watchdog.
fn accept(listener: &Listener) -> Result<Connection, Error> {
    let _dog = watchdog("accept");
    listener.accept()
}

/// The parent's pid, for a child to check its peer's credentials.
fn parent_pid() -> String {
    std::process::id().to_string()
}

// ---------------------------------------------------------------------
// The children

/// Everything a child of these tests does, by role.
fn play(role: &str) {
    let addr = child_env("SHMCHAN_ADDR");
    match role {
        // Connects, checks the listener's credentials, exchanges, closes.
        "client" => {
            let mut conn = connect(&Options::new(), &addr).unwrap();
            let me = rustix::process::geteuid().as_raw();
            assert_eq!(conn.peer().pid.to_string(), child_env("SHMCHAN_PARENT"));
            assert_eq!(conn.peer().uid, me);
            assert_eq!(conn.peer().gid, rustix::process::getegid().as_raw());
            client_exchange(&mut conn);
        }
        // Connects, sends one message, waits to be killed.
        "client-then-hang" => {
            let mut conn = connect(&Options::new(), &addr).unwrap();
            conn.sender().send(b"before the kill").unwrap();
            linger();
        }
        // Binds, says so, waits to be killed.
        "listener" => {
            let _l = bind(&Options::new(), &addr).unwrap();
            say_ready();
            linger();
        }
        // Raw sockets that do not follow the protocol.
        "junk-client" | "silent-client" | "version-client" | "closing-client" => {
            raw_client(role, &addr)
        }
        "hostile-listener" => hostile_listener(&addr),
        "nobody-refused" | "nobody-refuses" | "nobody-admitted" => nobody(role, &addr),
        "echo-listener" => echo_listener(&addr),
        "echo-client" => echo_client(&addr, false),
        "check-client" => echo_client(&addr, true),
        other => panic!("unknown role {other}"),
    }
}

// ---------------------------------------------------------------------
// Connect and accept

fn duplex(test: &str, addr: &str) {
    let opts = Options::new().capacity(SMALL_RING);
    let listener = bind(&opts, addr).unwrap();
    let parent = parent_pid();
    let mut client = Peer::spawn(
        test,
        "client",
        &[("SHMCHAN_ADDR", addr), ("SHMCHAN_PARENT", &parent)],
    );
    let mut conn = accept(&listener).unwrap();
    // The kernel's word on who connected.
    assert_eq!(conn.peer().pid, client.pid());
    assert_eq!(conn.peer().uid, rustix::process::geteuid().as_raw());
    assert_eq!(conn.peer().gid, rustix::process::getegid().as_raw());
    assert_eq!(conn.sender().capacity(), SMALL_RING);
    assert_eq!(conn.receiver().capacity(), SMALL_RING);
    listener_exchange(&mut conn);
    // The client drops its ends when done: both channels close.
    assert!(matches!(
        conn.receiver().recv_timeout(WATCHDOG),
        Err(Error::Closed)
    ));
    assert!(reap(&mut client.child).success(), "the client's checks");
}

/// Both ways over a path socket, payloads checked on both sides, and the
/// credentials each side gets are the other process's.
#[test]
fn duplex_exchange_over_a_path() {
    if let Some(role) = child_role() {
        return play(&role);
    }
    let dir = TempDir::new("duplex");
    let path = dir.join("s.sock");
    duplex("duplex_exchange_over_a_path", path.to_str().unwrap());
    // The listener dropped: its files went with it.
    assert_eq!(dir.entries(), Vec::<String>::new());
}

/// The same over an abstract name.
#[test]
fn duplex_exchange_over_an_abstract_name() {
    if let Some(role) = child_role() {
        return play(&role);
    }
    duplex(
        "duplex_exchange_over_an_abstract_name",
        &abstract_name("duplex"),
    );
}

/// A client killed with SIGKILL: the listener's ends of its connection
/// report `PeerGone` (receive and send), and a new client connects and
/// works over a new pair of channels.
#[test]
fn a_restarted_client_reconnects() {
    const TEST: &str = "a_restarted_client_reconnects";
    if let Some(role) = child_role() {
        return play(&role);
    }
    let dir = TempDir::new("restart");
    let path = dir.join("s.sock");
    let addr = path.to_str().unwrap();
    let listener = Options::new().capacity(SMALL_RING).bind(&path).unwrap();
    let mut first = Peer::spawn(TEST, "client-then-hang", &[("SHMCHAN_ADDR", addr)]);
    let mut old = accept(&listener).unwrap();
    assert_eq!(
        old.receiver().recv_timeout(WATCHDOG).unwrap(),
        b"before the kill"
    );
    first.kill();
    let err = old.receiver().recv_timeout(WATCHDOG).unwrap_err();
    assert!(matches!(err, Error::PeerGone), "{err}");
    // A sender notices when the ring is full.
    let err = loop {
        match old.sender().send_timeout(vec![0u8; 1000], WATCHDOG) {
            Ok(()) => continue,
            Err(SendTimeoutError::Failed(e, _)) => break e,
            Err(e) => panic!("{e}"),
        }
    };
    assert!(matches!(err, Error::PeerGone), "{err}");
    drop(old);
    let parent = parent_pid();
    let mut second = Peer::spawn(
        TEST,
        "client",
        &[("SHMCHAN_ADDR", addr), ("SHMCHAN_PARENT", &parent)],
    );
    let mut conn = accept(&listener).unwrap();
    assert_eq!(conn.peer().pid, second.pid());
    listener_exchange(&mut conn);
    assert!(reap(&mut second.child).success());
}

// ---------------------------------------------------------------------
// Binding: dead listeners, live ones

/// A live listener's path cannot be bound again (`AddrInUse`); once it is
/// killed, its files stay, a connect is refused, and the next bind
/// reclaims the path and serves.
#[test]
fn a_killed_listeners_path_is_reclaimed() {
    const TEST: &str = "a_killed_listeners_path_is_reclaimed";
    if let Some(role) = child_role() {
        return play(&role);
    }
    let dir = TempDir::new("reclaim");
    let path = dir.join("s.sock");
    let addr = path.to_str().unwrap();
    let mut owner = Peer::spawn(TEST, "listener", &[("SHMCHAN_ADDR", addr)]);
    owner.ready();
    let err = Listener::bind(&path).unwrap_err();
    match &err {
        Error::Io(e) => assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse, "{e}"),
        other => panic!("{other}"),
    }
    owner.kill();
    let mut left = dir.entries();
    left.sort();
    assert_eq!(left, ["s.sock", "s.sock.lock"], "a killed listener's files");
    match shmchan::connect(&path) {
        Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused),
        other => panic!("{other:?}"),
    }
    let listener = Listener::bind(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the socket file is ours alone");
    let parent = parent_pid();
    let mut client = Peer::spawn(
        TEST,
        "client",
        &[("SHMCHAN_ADDR", addr), ("SHMCHAN_PARENT", &parent)],
    );
    listener_exchange(&mut accept(&listener).unwrap());
    assert!(reap(&mut client.child).success());
    drop(listener);
    assert_eq!(dir.entries(), Vec::<String>::new());
}

/// An abstract name: a second bind while its listener lives fails with
/// `AddrInUse`; the name goes with the killed process.
#[test]
fn an_abstract_name_is_freed_by_its_listeners_death() {
    const TEST: &str = "an_abstract_name_is_freed_by_its_listeners_death";
    if let Some(role) = child_role() {
        return play(&role);
    }
    let addr = abstract_name("reclaim");
    let mut owner = Peer::spawn(TEST, "listener", &[("SHMCHAN_ADDR", &addr)]);
    owner.ready();
    match bind(&Options::new(), &addr) {
        Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse, "{e}"),
        other => panic!("{other:?}"),
    }
    owner.kill();
    bind(&Options::new(), &addr).unwrap();
}

// ---------------------------------------------------------------------
// Hostile peers

/// In a child: a raw socket that connects, breaks the protocol, and says
/// it is ready (so that it is first in the listener's queue).
fn raw_client(role: &str, addr: &str) {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let sock = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    let target = match addr.strip_prefix('@') {
        Some(name) => SocketAddrUnix::new_abstract_name(name.as_bytes()).unwrap(),
        None => SocketAddrUnix::new(addr).unwrap(),
    };
    rustix::net::connect(&sock, &target).unwrap();
    let send = |b: &[u8]| {
        rustix::net::send(&sock, b, rustix::net::SendFlags::NOSIGNAL).unwrap();
    };
    match role {
        "junk-client" => send(b"GET / HTTP/1.0\r\n\r\n"),
        "version-client" => {
            // A hello of protocol version 99: magic, version, kind 1.
            let mut hello = b"shmchRDV".to_vec();
            hello.extend(99u32.to_le_bytes());
            hello.extend(1u32.to_le_bytes());
            send(&hello);
        }
        _ => {}
    }
    say_ready();
    match role {
        "closing-client" => {}
        "version-client" => {
            // The listener says why it refuses: kind 4 (refuse), reason 2
            // (version), with its own version.
            let mut buf = [0u8; 64];
            let n = rustix::net::recv(&sock, &mut buf, rustix::net::RecvFlags::empty())
                .unwrap()
                .0;
            assert_eq!(n, 20, "a refusal");
            assert_eq!(&buf[..8], b"shmchRDV");
            assert_eq!(&buf[12..16], &4u32.to_le_bytes());
            assert_eq!(&buf[16..20], &2u32.to_le_bytes());
        }
        _ => linger(),
    }
}

/// Clients that send garbage, another version, nothing at all, or close
/// at once: each makes one `accept` fail with `Handshake` (the silent one
/// after the handshake timeout; the other version is told why), and the
/// good client queued behind it is served by the next `accept`.
#[test]
fn hostile_clients_fail_one_accept_each() {
    const TEST: &str = "hostile_clients_fail_one_accept_each";
    if let Some(role) = child_role() {
        return play(&role);
    }
    let addr = abstract_name("hostile");
    let listener = Options::new()
        .handshake_timeout(SHORT_HANDSHAKE)
        .bind_abstract(&addr[1..])
        .unwrap();
    let parent = parent_pid();
    for (role, says) in [
        ("junk-client", "magic"),
        ("version-client", "version 99"),
        ("closing-client", "closed"),
        ("silent-client", "within"),
    ] {
        let mut bad = Peer::spawn(TEST, role, &[("SHMCHAN_ADDR", &addr)]);
        bad.ready(); // connected: first in the queue
        let mut good = Peer::spawn(
            TEST,
            "client",
            &[("SHMCHAN_ADDR", &addr), ("SHMCHAN_PARENT", &parent)],
        );
        let err = accept(&listener).unwrap_err();
        assert!(
            matches!(&err, Error::Handshake(m) if m.contains(says)),
            "{role}: {err}"
        );
        let mut conn = accept(&listener).unwrap();
        assert_eq!(conn.peer().pid, good.pid());
        listener_exchange(&mut conn);
        assert!(reap(&mut good.child).success(), "{role}: the good client");
        if role == "junk-client" || role == "silent-client" {
            bad.kill();
        } else {
            assert!(reap(&mut bad.child).success(), "{role}: its own checks");
        }
    }
}

/// In a child: a listener that breaks the protocol, one way per
/// connection: silent, garbage, unsealed memfds, a wrong version.
fn hostile_listener(addr: &str) {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let sock = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    let name = addr.strip_prefix('@').unwrap();
    rustix::net::bind(
        &sock,
        &SocketAddrUnix::new_abstract_name(name.as_bytes()).unwrap(),
    )
    .unwrap();
    rustix::net::listen(&sock, 8).unwrap();
    say_ready();
    let head = |version: u32, kind: u32| {
        let mut b = b"shmchRDV".to_vec();
        b.extend(version.to_le_bytes());
        b.extend(kind.to_le_bytes());
        b
    };
    let mut kept = Vec::new();
    for way in ["silent", "garbage", "unsealed", "version"] {
        let conn = rustix::net::accept(&sock).unwrap();
        let mut hello = [0u8; 64];
        rustix::net::recv(&conn, &mut hello, rustix::net::RecvFlags::empty()).unwrap();
        let nosig = rustix::net::SendFlags::NOSIGNAL;
        match way {
            "silent" => {}
            "garbage" => {
                rustix::net::send(&conn, b"\xff\xfe garbage", nosig).unwrap();
            }
            "unsealed" => {
                // A welcome of the right shape with plain memfds.
                let mut welcome = head(1, 2);
                welcome.extend(4096u64.to_le_bytes());
                welcome.extend(4096u64.to_le_bytes());
                let mut fds: Vec<OwnedFd> = (0..2)
                    .map(|_| {
                        let fd = rustix::fs::memfd_create("plain", rustix::fs::MemfdFlags::CLOEXEC)
                            .unwrap();
                        rustix::fs::ftruncate(&fd, 8192).unwrap();
                        fd
                    })
                    .collect();
                // Real doorbells: only the memfds are wrong.
                for _ in 0..2 {
                    let (a, _b) = UnixStream::pair().unwrap();
                    fds.push(OwnedFd::from(a));
                }
                let borrowed: Vec<_> = fds.iter().map(std::os::fd::AsFd::as_fd).collect();
                let mut space =
                    [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
                let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
                assert!(control.push(rustix::net::SendAncillaryMessage::ScmRights(&borrowed)));
                rustix::net::sendmsg(
                    &conn,
                    &[std::io::IoSlice::new(&welcome)],
                    &mut control,
                    nosig,
                )
                .unwrap();
            }
            "version" => {
                let mut refuse = head(7, 4);
                refuse.extend(2u32.to_le_bytes());
                rustix::net::send(&conn, &refuse, nosig).unwrap();
            }
            _ => unreachable!(),
        }
        kept.push(conn);
    }
    linger();
}

/// A listener that says nothing, says garbage, passes memfds that are not
/// sealed, or speaks another version: each `connect` fails with a clear
/// error within the handshake timeout.
#[test]
fn a_hostile_listener_fails_the_connect() {
    const TEST: &str = "a_hostile_listener_fails_the_connect";
    if let Some(role) = child_role() {
        return play(&role);
    }
    let addr = abstract_name("hostile-listener");
    let mut server = Peer::spawn(TEST, "hostile-listener", &[("SHMCHAN_ADDR", &addr)]);
    server.ready();
    let opts = Options::new().handshake_timeout(SHORT_HANDSHAKE);
    let _dog = watchdog("connects to a hostile listener");
    let err = connect(&opts, &addr).unwrap_err();
    assert!(
        matches!(&err, Error::Handshake(m) if m.contains("within")),
        "silent: {err}"
    );
    let err = connect(&opts, &addr).unwrap_err();
    assert!(
        matches!(&err, Error::Handshake(m) if m.contains("magic")),
        "garbage: {err}"
    );
    let err = connect(&opts, &addr).unwrap_err();
    assert!(
        matches!(&err, Error::Untrusted(m) if m.contains("sealed")),
        "unsealed: {err}"
    );
    let err = connect(&opts, &addr).unwrap_err();
    assert!(
        matches!(&err, Error::Handshake(m) if m.contains("version 7")),
        "version: {err}"
    );
    server.kill();
}

// ---------------------------------------------------------------------
// Other users

/// In a child: becomes `nobody`, then connects as `role` says.
fn nobody(role: &str, addr: &str) {
    // SAFETY: plain system calls on integers; glibc applies setgid and
    // setuid to every thread of the process.
    unsafe {
        assert_eq!(libc::setgroups(0, std::ptr::null()), 0);
        assert_eq!(libc::setgid(NOBODY), 0);
        assert_eq!(libc::setuid(NOBODY), 0);
    }
    // A change of credentials clears the parent-death signal: again.
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL)).unwrap();
    match role {
        // We admit root, the listener does not admit us.
        "nobody-refused" => {
            let err = connect(&Options::new().allow_uid(0), addr).unwrap_err();
            assert!(
                matches!(&err, Error::Untrusted(m) if m.contains("does not admit our uid")),
                "{err}"
            );
        }
        // We do not admit root.
        "nobody-refuses" => {
            let err = connect(&Options::new(), addr).unwrap_err();
            assert!(
                matches!(&err, Error::Untrusted(m) if m.contains("uid 0")),
                "{err}"
            );
        }
        // Both admit each other: root's memfds, mapped and locked by us.
        "nobody-admitted" => {
            let mut conn = connect(&Options::new().allow_uid(0), addr).unwrap();
            assert_eq!(conn.peer().uid, 0);
            assert_eq!(conn.peer().pid.to_string(), child_env("SHMCHAN_PARENT"));
            client_exchange(&mut conn);
            say_ready();
            linger();
        }
        _ => unreachable!(),
    }
}

/// A client of another uid (a child that became `nobody`) is refused by
/// default, by the listener and by the client itself, and admitted with
/// `allow_uid` on both sides, over a path socket whose mode then lets it
/// connect. Its death is reported as for anyone (OFD locks on memfds of
/// another user).
#[test]
fn another_uid_is_refused_by_default_and_admitted_when_allowed() {
    const TEST: &str = "another_uid_is_refused_by_default_and_admitted_when_allowed";
    if let Some(role) = child_role() {
        return play(&role);
    }
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to become another user");
        return;
    }
    // An abstract name: no file mode, the credential check alone refuses.
    let addr = abstract_name("uid");
    let listener = Options::new()
        .handshake_timeout(SHORT_HANDSHAKE)
        .bind_abstract(&addr[1..])
        .unwrap();
    let mut refused = Peer::spawn(TEST, "nobody-refused", &[("SHMCHAN_ADDR", &addr)]);
    let err = accept(&listener).unwrap_err();
    assert!(
        matches!(&err, Error::Untrusted(m) if m.contains(&format!("uid {NOBODY}"))),
        "{err}"
    );
    assert!(
        reap(&mut refused.child).success(),
        "the refused client's checks"
    );
    // A listener that admits it, which the client (by default) refuses.
    let mut listener = listener;
    listener.allow_uid(NOBODY).unwrap();
    let mut refuses = Peer::spawn(TEST, "nobody-refuses", &[("SHMCHAN_ADDR", &addr)]);
    let err = accept(&listener).unwrap_err();
    assert!(
        matches!(&err, Error::Handshake(m) if m.contains("closed")),
        "{err}"
    );
    assert!(
        reap(&mut refuses.child).success(),
        "the refusing client's checks"
    );
    drop(listener);

    let dir = TempDir::new("uid");
    let path = dir.join("s.sock");
    let addr = path.to_str().unwrap();
    let listener = Options::new()
        .capacity(SMALL_RING)
        .allow_uid(NOBODY)
        .bind(&path)
        .unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o666, "others must be able to connect");
    let parent = parent_pid();
    let mut admitted = Peer::spawn(
        TEST,
        "nobody-admitted",
        &[("SHMCHAN_ADDR", addr), ("SHMCHAN_PARENT", &parent)],
    );
    let mut conn = accept(&listener).unwrap();
    assert_eq!(conn.peer().uid, NOBODY);
    assert_eq!(conn.peer().gid, NOBODY);
    assert_eq!(conn.peer().pid, admitted.pid());
    listener_exchange(&mut conn);
    admitted.ready();
    admitted.kill();
    let err = conn.receiver().recv_timeout(WATCHDOG).unwrap_err();
    assert!(matches!(err, Error::PeerGone), "{err}");
}

// ---------------------------------------------------------------------
// Kills at random moments

/// In a child: a listener that echoes every message of each connection
/// until the connection ends, then takes the next.
fn echo_listener(addr: &str) {
    let listener = bind(&Options::new().capacity(SMALL_RING), addr).unwrap();
    say_ready();
    for conn in listener.incoming() {
        let conn = match conn {
            Ok(conn) => conn,
            // A client killed in the handshake: the next one.
            Err(e) => {
                eprintln!("echo-listener: {e}");
                continue;
            }
        };
        let (mut tx, mut rx) = conn.into_split();
        let mut echoed = 0u64;
        let end = loop {
            match rx.recv() {
                Ok(msg) => match tx.send(&msg) {
                    Ok(()) => echoed += 1,
                    Err(e) => break e,
                },
                Err(e) => break e,
            }
        };
        eprintln!("echo-listener: {end} after {echoed} echoes");
    }
}

/// In a child: numbered messages out, each checked when it comes back.
/// A victim (`check: false`) echoes for ever and exits quietly when its
/// listener goes; a checker (`true`) must connect and do a few rounds.
fn echo_client(addr: &str, check: bool) {
    if !check {
        say_ready(); // about to connect
    }
    let mut conn = match connect(&Options::new(), addr) {
        Ok(conn) => conn,
        Err(e) if !check => return eprintln!("victim: {e}"),
        Err(e) => panic!("{e}"),
    };
    for seq in 0.. {
        if check && seq == ROUNDS {
            return;
        }
        let msg = message(seq, length(seq));
        if let Err(e) = conn.sender().send(&msg) {
            assert!(!check && matches!(e, Error::PeerGone), "{e}");
            return;
        }
        match conn.receiver().recv_timeout(WATCHDOG) {
            Ok(got) => assert!(got == msg, "echo {seq}"),
            Err(e) => {
                assert!(!check && matches!(e, Error::PeerGone), "{e}");
                return;
            }
        }
    }
}

/// Whether process `pid` exists (a zombie too) and is our child.
fn is_our_child(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "pid (comm) state ppid ...": comm may hold spaces, not ')'.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let ppid = after.split(' ').nth(1).unwrap();
    ppid == std::process::id().to_string()
}

/// What `/dev/shm` holds.
fn dev_shm() -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Kills a listener or a client (or both) with SIGKILL at random moments:
/// in the handshake, in the traffic. After each: a live listener still
/// serves a new client; a dead one's path is bound again by a new one
/// that serves. At the end: nothing new in /dev/shm, the path binds, no
/// process is left, the directory is empty.
#[test]
fn listeners_and_clients_killed_at_random_moments() {
    const TEST: &str = "listeners_and_clients_killed_at_random_moments";
    if let Some(role) = child_role() {
        return play(&role);
    }
    let shm_before = dev_shm();
    let mut noise = Noise::seeded();
    let dir = TempDir::new("chaos");
    let path = dir.join("s.sock");
    let addr = path.to_str().unwrap();
    let env = [("SHMCHAN_ADDR", addr)];
    let mut pids = vec![std::process::id()];
    let mut listener: Option<Peer> = None;
    for round in 0..20 {
        let mut server = listener.take().unwrap_or_else(|| {
            let mut l = Peer::spawn(TEST, "echo-listener", &env);
            l.ready();
            l
        });
        pids.push(server.pid());
        let mut client = Peer::spawn(TEST, "echo-client", &env);
        pids.push(client.pid());
        client.ready();
        // From the client's connect: half the rounds within the first
        // 1.5 ms (the handshake), the others up to 30 ms (the traffic).
        let within = if noise.below(2) == 0 { 1_500 } else { 30_000 };
        std::thread::sleep(Duration::from_micros(noise.below(within)));
        let victim = noise.below(3);
        if victim != 1 {
            client.kill();
        }
        if victim != 0 {
            server.kill();
        }
        if victim == 1 {
            // Its listener gone, the client ends by itself.
            reap(&mut client.child);
        }
        let mut server = if victim == 0 {
            server
        } else {
            // Reclaims the dead listener's path.
            let mut l = Peer::spawn(TEST, "echo-listener", &env);
            l.ready();
            pids.push(l.pid());
            l
        };
        let mut checker = Peer::spawn(TEST, "check-client", &env);
        pids.push(checker.pid());
        let ok = reap(&mut checker.child).success();
        assert!(
            ok,
            "round {round} (victim {victim}): a new client is served"
        );
        // Still alive?
        assert!(server.child.try_wait().unwrap().is_none());
        listener = Some(server);
    }
    if let Some(mut last) = listener {
        last.kill();
    }
    // The path binds again (reclaimed from the killed one), and the drop
    // leaves the directory empty.
    drop(Listener::bind(&path).unwrap());
    assert_eq!(dir.entries(), Vec::<String>::new());
    // Nothing in /dev/shm made by any of these processes (names carry
    // their creator's pid; the rendezvous makes no names at all).
    let new: Vec<_> = dev_shm()
        .into_iter()
        .filter(|n| !shm_before.contains(n))
        .filter(|n| pids.iter().any(|p| n.contains(&format!("-{p}-"))))
        .collect();
    assert!(new.is_empty(), "left in /dev/shm: {new:?}");
    // Every child is reaped: none of them is still our child (a pid the
    // system gave to another process since is not ours).
    for pid in &pids[1..] {
        assert!(!is_our_child(*pid), "process {pid} is left");
    }
}
