//! The rendezvous with peers that break the protocol (on either side) and
//! with peers of another user, between real processes.
//!
//! The test binary runs itself again as the other side (see `common`);
//! every wait has a watchdog.

mod common;
#[path = "common/rendezvous.rs"]
mod rdv;

use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::{WATCHDOG, child_env, child_role, reap};
use rdv::{
    Peer, SMALL_RING, TempDir, abstract_name, accept, client_exchange, connect, linger,
    listener_exchange, parent_pid, play_common, say_ready, watchdog,
};
use rustix::process::Signal;
use shmchan::{Error, Options};

/// The handshake timeout of the tests with silent peers.
const SHORT_HANDSHAKE: Duration = Duration::from_millis(300);
/// A listener's handshake timeout longer than an honest client's own
/// (the default, 5 s), and shorter than the watchdog.
const LONG_HANDSHAKE: Duration = Duration::from_secs(12);
/// The user and group the cross-user tests become (`nobody`).
const NOBODY: u32 = 65534;

/// Everything a child of these tests does, by role.
fn play(role: &str) {
    let addr = child_env("SHMCHAN_ADDR");
    if play_common(role, &addr) {
        return;
    }
    match role {
        "junk-client" | "silent-client" | "version-client" | "closing-client" | "liar-client"
        | "stalling-client" => raw_client(role, &addr),
        "hostile-listener" => hostile_listener(&addr),
        "nobody-refused" | "nobody-refuses" | "nobody-admitted" => nobody(role, &addr),
        other => panic!("unknown role {other}"),
    }
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
    let hello = || {
        let mut hello = b"shmchRDV".to_vec();
        hello.extend(1u32.to_le_bytes());
        hello.extend(1u32.to_le_bytes());
        hello
    };
    match role {
        "junk-client" => send(b"GET / HTTP/1.0\r\n\r\n"),
        // A hello, then nothing: never reads the welcome, never ready.
        "stalling-client" => send(&hello()),
        "liar-client" => {
            // A hello, then "ready" without attaching anything.
            let mut hello = b"shmchRDV".to_vec();
            hello.extend(1u32.to_le_bytes());
            let mut ready = hello.clone();
            hello.extend(1u32.to_le_bytes());
            ready.extend(3u32.to_le_bytes());
            send(&hello);
            send(&ready);
        }
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

/// Clients that send garbage, another version, nothing at all, close at
/// once, or say "ready" without attaching: each makes one `accept` fail
/// with `Handshake` (the silent one after the handshake timeout; the other
/// version is told why), and the good client queued behind it is served
/// by another (before the silent one's failure, or after it: the two
/// handshakes run side by side).
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
        ("liar-client", "never attached"),
    ] {
        let mut bad = Peer::spawn(TEST, role, &[("SHMCHAN_ADDR", &addr)]);
        bad.ready(); // connected: first in the queue
        let mut good = Peer::spawn(
            TEST,
            "client",
            &[("SHMCHAN_ADDR", &addr), ("SHMCHAN_PARENT", &parent)],
        );
        let (mut served, mut failed) = (Vec::new(), Vec::new());
        for _ in 0..2 {
            match accept(&listener) {
                Ok(conn) => served.push(conn),
                Err(e) => failed.push(e),
            }
        }
        assert_eq!((served.len(), failed.len()), (1, 1), "{role}: {failed:?}");
        let (mut conn, err) = (served.pop().unwrap(), failed.pop().unwrap());
        assert!(
            matches!(&err, Error::Handshake(m) if m.contains(says)),
            "{role}: {err}"
        );
        assert_eq!(conn.peer().pid, good.pid());
        listener_exchange(&mut conn);
        assert!(reap(&mut good.child).success(), "{role}: the good client");
        if matches!(role, "junk-client" | "silent-client" | "liar-client") {
            bad.kill();
        } else {
            assert!(reap(&mut bad.child).success(), "{role}: its own checks");
        }
    }
}

/// A client that connects and says nothing, and one that says hello and
/// then stalls (never reads the welcome, never says ready), hold up no
/// one: an honest client that comes after them, with the default
/// handshake timeout, is served and exchanges while both are still in
/// their handshakes (whose timeout here is longer than its own: served
/// one at a time, it would have given up first). Each of the two makes
/// one `accept` fail once it is gone.
#[test]
fn a_silent_and_a_stalled_client_hold_up_no_honest_one() {
    const TEST: &str = "a_silent_and_a_stalled_client_hold_up_no_honest_one";
    if let Some(role) = child_role() {
        return play(&role);
    }
    let addr = abstract_name("slow");
    let listener = Options::new()
        .handshake_timeout(LONG_HANDSHAKE)
        .bind_abstract(&addr[1..])
        .unwrap();
    let mut silent = Peer::spawn(TEST, "silent-client", &[("SHMCHAN_ADDR", &addr)]);
    silent.ready(); // connected: first in the queue
    let mut stalled = Peer::spawn(TEST, "stalling-client", &[("SHMCHAN_ADDR", &addr)]);
    stalled.ready(); // connected and said hello: second
    let parent = parent_pid();
    let mut good = Peer::spawn(
        TEST,
        "client",
        &[("SHMCHAN_ADDR", &addr), ("SHMCHAN_PARENT", &parent)],
    );
    let mut conn = accept(&listener).unwrap();
    assert_eq!(conn.peer().pid, good.pid());
    listener_exchange(&mut conn);
    assert!(reap(&mut good.child).success(), "the honest client");
    silent.kill();
    stalled.kill();
    let mut why: Vec<String> = (0..2)
        .map(|_| match accept(&listener) {
            Err(Error::Handshake(m)) => m,
            other => panic!("{other:?}"),
        })
        .collect();
    why.sort();
    assert!(
        why[0].contains("closed the connection before a hello"),
        "{why:?}"
    );
    assert!(
        why[1].contains("closed the connection before ready"),
        "{why:?}"
    );
}

/// The same through a poll loop: a non-blocking listener's descriptor is
/// readable for every step of a handshake in progress (not only for a
/// new client), so a loop that waits on it serves the honest client while
/// the silent one waits, and hears of the silent one's deadline.
#[test]
fn a_poll_loop_serves_clients_as_they_speak() {
    const TEST: &str = "a_poll_loop_serves_clients_as_they_speak";
    if let Some(role) = child_role() {
        return play(&role);
    }
    use rustix::event::{PollFd, PollFlags, poll};
    let addr = abstract_name("poll");
    let listener = Options::new()
        .handshake_timeout(LONG_HANDSHAKE)
        .bind_abstract(&addr[1..])
        .unwrap();
    listener.set_nonblocking(true).unwrap();
    let _dog = watchdog("a poll loop");
    // Nothing to do yet: not readable, and accept does not wait.
    let mut fds = [PollFd::new(&listener, PollFlags::IN)];
    assert_eq!(
        poll(
            &mut fds,
            Some(&rustix::time::Timespec {
                tv_sec: 0,
                tv_nsec: 0
            })
        )
        .unwrap(),
        0
    );
    assert!(
        matches!(listener.accept(), Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock)
    );
    let mut silent = Peer::spawn(TEST, "silent-client", &[("SHMCHAN_ADDR", &addr)]);
    silent.ready();
    let parent = parent_pid();
    let mut good = Peer::spawn(
        TEST,
        "client",
        &[("SHMCHAN_ADDR", &addr), ("SHMCHAN_PARENT", &parent)],
    );
    let next = || loop {
        let mut fds = [PollFd::new(&listener, PollFlags::IN)];
        poll(&mut fds, None).unwrap();
        match listener.accept() {
            Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    };
    let mut conn = next().unwrap();
    assert_eq!(conn.peer().pid, good.pid());
    listener_exchange(&mut conn);
    assert!(reap(&mut good.child).success(), "the honest client");
    silent.kill();
    let err = next().unwrap_err();
    assert!(
        matches!(&err, Error::Handshake(m) if m.contains("before a hello")),
        "{err}"
    );
    // A deadline passing wakes the loop too.
    let short = Options::new()
        .handshake_timeout(SHORT_HANDSHAKE)
        .bind_abstract(format!("{}-short", &addr[1..]))
        .unwrap();
    short.set_nonblocking(true).unwrap();
    let short_addr = format!("{addr}-short");
    let mut silent = Peer::spawn(TEST, "silent-client", &[("SHMCHAN_ADDR", &short_addr)]);
    silent.ready();
    let err = loop {
        let mut fds = [PollFd::new(&short, PollFlags::IN)];
        poll(&mut fds, None).unwrap();
        match short.accept() {
            Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            other => break other.unwrap_err(),
        }
    };
    assert!(
        matches!(&err, Error::Handshake(m) if m.contains("within")),
        "{err}"
    );
    silent.kill();
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
