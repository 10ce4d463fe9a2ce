//! The rendezvous between real processes: connect/accept both ways,
//! credentials, restarted clients, dead and live listeners, and `kill -9`
//! of either side at random moments. Hostile peers and other users:
//! `rendezvous_hostile.rs`.
//!
//! The test binary runs itself again as the other side (see `common`);
//! every wait has a watchdog.

mod common;
#[path = "common/rendezvous.rs"]
mod rdv;

use std::time::Duration;

use common::{Noise, WATCHDOG, child_env, child_role, length, message, reap};
use rdv::{
    Peer, ROUNDS, SMALL_RING, TempDir, abstract_name, accept, bind, connect, listener_exchange,
    parent_pid, play_common, say_ready,
};
use shmchan::{Error, Listener, Options, SendTimeoutError};
use std::os::unix::fs::PermissionsExt;

/// Everything a child of these tests does, by role.
fn play(role: &str) {
    let addr = child_env("SHMCHAN_ADDR");
    if play_common(role, &addr) {
        return;
    }
    match role {
        "echo-listener" => echo_listener(&addr),
        "echo-client" => echo_client(&addr, false),
        "check-client" => echo_client(&addr, true),
        "send-and-go" => {
            let mut conn = connect(&Options::new(), &addr).unwrap();
            conn.sender().send(b"fire and forget").unwrap();
            // Gone at once: the listener may not have looked yet.
        }
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

/// A socket something listens on is never taken over, even with no lock
/// file beside it (another program's, or a listener whose lock file was
/// removed by hand): `bind` fails and leaves it; a dead socket is
/// reclaimed.
#[test]
fn bind_never_takes_over_a_live_socket() {
    let dir = TempDir::new("live");
    let path = dir.join("other.sock");
    let other = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let err = Listener::bind(&path).unwrap_err();
    assert!(
        matches!(&err, Error::Io(e) if e.kind() == std::io::ErrorKind::AddrInUse),
        "{err:?}"
    );
    assert!(path.exists(), "the live socket was removed");
    drop(other); // now nobody listens: the socket file is stale
    let listener = Listener::bind(&path).unwrap();
    drop(listener);
    assert!(dir.entries().is_empty(), "{:?}", dir.entries());
}

/// A client that sends and exits right after the handshake, perhaps
/// before the listener's `accept` has looked at its ends: `accept` still
/// succeeds (it attached; it is gone since), and the message arrives,
/// then `Closed`. (`accept` used to fail it for holding no lock.)
#[test]
fn a_client_that_sends_and_leaves_at_once_is_accepted() {
    const TEST: &str = "a_client_that_sends_and_leaves_at_once_is_accepted";
    if let Some(role) = child_role() {
        return play(&role);
    }
    let addr = abstract_name("leave");
    let listener = bind(&Options::new(), &addr).unwrap();
    for _ in 0..30 {
        let mut client = Peer::spawn(TEST, "send-and-go", &[("SHMCHAN_ADDR", &addr)]);
        let mut conn = accept(&listener).expect("a client that attached is accepted");
        let rx = conn.receiver();
        assert_eq!(rx.recv_timeout(WATCHDOG).unwrap(), b"fire and forget");
        assert!(matches!(rx.recv_timeout(WATCHDOG), Err(Error::Closed)));
        assert!(reap(&mut client.child).success());
    }
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

/// What is at a path and not a listener's is left alone: a regular file
/// (the bind fails, the file stays), a symbolic link planted as the lock
/// file, a lock file of another owner.
#[test]
fn what_is_not_a_listeners_is_left_alone() {
    let dir = TempDir::new("planted");
    let path = dir.join("s.sock");
    std::fs::write(&path, b"precious").unwrap();
    match Listener::bind(&path) {
        Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists, "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    std::fs::remove_file(&path).unwrap();
    let lock = dir.join("s.sock.lock");
    std::os::unix::fs::symlink("/dev/null", &lock).unwrap();
    let err = Listener::bind(&path).unwrap_err();
    // Said for what it is: a lock file that is a symbolic link (no
    // segment is involved).
    let text = err.to_string();
    assert!(
        matches!(&err, Error::Io(e) if e.kind() == std::io::ErrorKind::PermissionDenied)
            && text.contains(&format!("{} is a symbolic link", lock.display()))
            && !text.contains("segment"),
        "{text}"
    );
    std::fs::remove_file(&lock).unwrap();
    if rustix::process::geteuid().is_root() {
        std::fs::write(&lock, b"").unwrap();
        std::os::unix::fs::chown(&lock, Some(65534), Some(65534)).unwrap();
        let err = Listener::bind(&path).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(&err, Error::Io(e) if e.kind() == std::io::ErrorKind::PermissionDenied)
                && text.contains("belongs to uid 65534")
                && !text.contains("segment"),
            "{text}"
        );
        std::fs::remove_file(&lock).unwrap();
    }
    assert_eq!(dir.entries(), Vec::<String>::new(), "nothing made");
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
