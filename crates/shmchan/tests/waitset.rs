//! `WaitSet` between real processes: one server thread over the receivers
//! of many client processes (closed-loop round trips, every payload
//! checked, every answer to the right client, nothing lost or twice), a
//! client killed with `kill -9` reported while the others go on, senders
//! waiting for room, the set's descriptor under tokio, and the refusals.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{
    Noise, WATCHDOG, check_message, child_env, child_role, length, message, reap, signal, spawn,
};
use rustix::process::Signal;
use shmchan::waitset::{Backend, FUTEX_WAITV_MAX};
use shmchan::{Error, Listener, Options, Receiver, Sender, Wait, WaitSet};

/// An abstract name no other test or run uses.
fn fresh_name(test: &str) -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    format!("shmchan-test-{test}-{:016x}", u64::from_le_bytes(b))
}

/// A ring small enough that the longer requests go in rounds.
const RING: usize = 16 << 10;

/// Message `seq` of client `me`: numbered apart from every other client's.
fn id(me: u64, seq: u64) -> u64 {
    me * 1_000_000 + seq
}

/// The client side of the round-trip tests: `rounds` requests, each
/// answered (an echo) before the next goes; then it closes.
fn client(rounds: u64) {
    let me: u64 = child_env("SHMCHAN_ME").parse().unwrap();
    let mut conn = Options::new()
        .wait(Wait::Block)
        .capacity(RING)
        .connect_abstract(child_env("SHMCHAN_NAME"))
        .unwrap();
    for seq in 0..rounds {
        let len = length(seq);
        conn.sender().send(&message(id(me, seq), len)).unwrap();
        let reply = conn
            .receiver()
            .recv_timeout(WATCHDOG)
            .expect("watchdog: the answer");
        check_message(&reply, id(me, seq), len);
    }
}

/// One client's state in the server.
struct Client {
    me: u64,
    tx: Sender,
    next: u64,
}

/// Spawns `clients` children of `test` and accepts them; returns the
/// children and the set of their receivers, keyed by client number.
fn start(
    test: &str,
    clients: usize,
    backend: Backend,
) -> (Vec<std::process::Child>, WaitSet<u64>, HashMap<u64, Client>) {
    let name = fresh_name("waitset");
    let listener = Options::new().capacity(RING).bind_abstract(&name).unwrap();
    let mut children = Vec::new();
    let mut set = WaitSet::with_backend(backend).policy(Wait::Block);
    let mut state = HashMap::new();
    for i in 0..clients {
        let me = i.to_string();
        children.push(spawn(
            test,
            "client",
            &[("SHMCHAN_NAME", &name), ("SHMCHAN_ME", &me)],
            None,
        ));
    }
    for _ in 0..clients {
        let conn = listener.accept().unwrap();
        let pid = conn.peer().pid;
        let me = children.iter().position(|c| c.id() == pid).unwrap() as u64;
        let (tx, rx) = conn.into_split();
        set.add(me, rx).unwrap();
        state.insert(me, Client { me, tx, next: 0 });
    }
    (children, set, state)
}

/// Serves every request of the set's clients until each has closed (or
/// died, for `victim`): checks each request's number and content, and
/// answers it on that client's own channel. Returns the clients seen
/// gone (`PeerGone`).
fn serve(set: &mut WaitSet<u64>, state: &mut HashMap<u64, Client>, rounds: u64) -> Vec<u64> {
    let mut ready = Vec::new();
    let mut gone = Vec::new();
    while !set.is_empty() {
        set.wait(&mut ready, Some(WATCHDOG))
            .expect("watchdog: the wait set");
        assert!(!ready.is_empty());
        for &key in &ready {
            let rx: &mut Receiver = set.receiver(key).unwrap();
            let c = state.get_mut(&key).unwrap();
            match rx.try_recv() {
                Ok(req) => {
                    assert!(c.next < rounds, "client {}: a request too many", c.me);
                    check_message(&req, id(c.me, c.next), length(c.next));
                    c.next += 1;
                    c.tx.send(&req).unwrap();
                }
                Err(Error::Empty) => {} // part of a long request: wait again
                Err(Error::Closed) => {
                    assert_eq!(c.next, rounds, "client {} closed early", c.me);
                    set.remove::<Receiver>(key).unwrap();
                }
                Err(Error::PeerGone) => {
                    gone.push(key);
                    set.remove::<Receiver>(key).unwrap();
                }
                Err(e) => panic!("client {}: {e}", c.me),
            }
        }
    }
    gone
}

fn serve_many(test: &str, clients: usize, rounds: u64, backend: Backend) {
    if child_role().is_some() {
        client(rounds);
        return;
    }
    let (children, mut set, mut state) = start(test, clients, backend);
    let gone = serve(&mut set, &mut state, rounds);
    assert!(gone.is_empty(), "clients {gone:?} died");
    for c in state.values() {
        assert_eq!(c.next, rounds, "client {}", c.me);
    }
    for mut child in children {
        assert!(reap(&mut child).success());
    }
}

/// 64 client processes, each 40 closed-loop round trips (a tenth of them
/// longer than the ring), served by one thread sleeping in one
/// `futex_waitv`.
#[test]
fn one_server_thread_answers_64_client_processes() {
    serve_many(
        "one_server_thread_answers_64_client_processes",
        64,
        40,
        Backend::Futex,
    );
}

/// The same over the bells under epoll, with 16 clients.
#[test]
fn one_server_thread_answers_16_client_processes_on_the_bells() {
    serve_many(
        "one_server_thread_answers_16_client_processes_on_the_bells",
        16,
        40,
        Backend::Epoll,
    );
}

/// Client 0 is killed (`kill -9`) after its 5th request, which the
/// server leaves unanswered; the set reports it ready and its receive
/// says `PeerGone`, while the seven others finish every round trip.
fn a_killed_client_is_reported(test: &str, backend: Backend) {
    const ROUNDS: u64 = 30;
    if child_role().is_some() {
        client(ROUNDS);
        return;
    }
    let (mut children, mut set, mut state) = start(test, 8, backend);
    let mut ready = Vec::new();
    let mut gone = Vec::new();
    let mut killed = false;
    while !set.is_empty() {
        set.wait(&mut ready, Some(WATCHDOG))
            .expect("watchdog: the wait set");
        for &key in &ready {
            let rx: &mut Receiver = set.receiver(key).unwrap();
            let c = state.get_mut(&key).unwrap();
            match rx.try_recv() {
                Ok(req) => {
                    assert!(!(killed && key == 0), "a request from the dead");
                    check_message(&req, id(c.me, c.next), length(c.next));
                    c.next += 1;
                    if key == 0 && c.next == 5 {
                        signal(&children[0], Signal::KILL);
                        killed = true;
                    } else {
                        c.tx.send(&req).unwrap();
                    }
                }
                Err(Error::Empty) => {}
                Err(Error::Closed) => {
                    assert_eq!(c.next, ROUNDS, "client {} closed early", c.me);
                    set.remove::<Receiver>(key).unwrap();
                }
                Err(Error::PeerGone) => {
                    gone.push(key);
                    set.remove::<Receiver>(key).unwrap();
                }
                Err(e) => panic!("client {}: {e}", c.me),
            }
        }
    }
    assert_eq!(gone, [0], "the killed client, and it alone, is gone");
    assert!(!reap(&mut children[0]).success());
    for child in &mut children[1..] {
        assert!(reap(child).success());
    }
    for c in state.values().filter(|c| c.me != 0) {
        assert_eq!(c.next, ROUNDS);
    }
}

#[test]
fn a_killed_client_is_reported_and_the_rest_go_on() {
    a_killed_client_is_reported(
        "a_killed_client_is_reported_and_the_rest_go_on",
        Backend::Futex,
    );
}

#[test]
fn a_killed_client_is_reported_on_the_bells() {
    a_killed_client_is_reported("a_killed_client_is_reported_on_the_bells", Backend::Epoll);
}

/// The parent sends to four reader processes through a wait set of
/// senders waiting for room: it fills each ring, waits, and sends more
/// to whichever has room, until each has every message; each reader
/// checks every message in order.
#[test]
fn senders_waiting_for_room_are_woken() {
    const READERS: usize = 4;
    const EACH: u64 = 400;
    const LEN: usize = 700;
    if child_role().is_some() {
        let mut conn = Options::new()
            .wait(Wait::Block)
            .capacity(4096)
            .connect_abstract(child_env("SHMCHAN_NAME"))
            .unwrap();
        let me: u64 = child_env("SHMCHAN_ME").parse().unwrap();
        for seq in 0..EACH {
            let got = conn.receiver().recv_timeout(WATCHDOG).expect("watchdog");
            check_message(&got, id(me, seq), LEN);
        }
        assert!(matches!(
            conn.receiver().recv_timeout(WATCHDOG),
            Err(Error::Closed)
        ));
        return;
    }
    let name = fresh_name("room");
    let listener = Options::new().capacity(4096).bind_abstract(&name).unwrap();
    let mut children: Vec<_> = (0..READERS)
        .map(|i| {
            let me = i.to_string();
            spawn(
                "senders_waiting_for_room_are_woken",
                "reader",
                &[("SHMCHAN_NAME", &name), ("SHMCHAN_ME", &me)],
                None,
            )
        })
        .collect();
    let mut set = WaitSet::new().policy(Wait::Block);
    let mut next = HashMap::new();
    let mut keep = Vec::new();
    for _ in 0..READERS {
        let conn = listener.accept().unwrap();
        let me = children
            .iter()
            .position(|c| c.id() == conn.peer().pid)
            .unwrap() as u64;
        let (tx, rx) = conn.into_split();
        keep.push(rx);
        // More than fits: refused, and the sender given back.
        let err = set.add_sender(me, tx, 10_000).unwrap_err();
        assert!(matches!(err.error(), Error::TooLarge { .. }), "{err}");
        set.add_sender(me, err.into_end(), LEN).unwrap();
        next.insert(me, 0u64);
    }
    let mut ready = Vec::new();
    let mut waits_with_a_full_ring = 0;
    while !set.is_empty() {
        set.wait(&mut ready, Some(WATCHDOG)).expect("watchdog");
        for &key in &ready {
            let seq = next.get_mut(&key).unwrap();
            let tx: &mut Sender = set.sender(key).unwrap();
            let mut sent_here = 0;
            while *seq < EACH {
                match tx.try_send(message(id(key, *seq), LEN)) {
                    Ok(()) => {
                        *seq += 1;
                        sent_here += 1;
                    }
                    Err(e) if e.is_full() => break,
                    Err(e) => panic!("reader {key}: {e:?}"),
                }
            }
            // Ready meant room for one message at least.
            assert!(sent_here > 0 || *seq == EACH, "ready with no room");
            if *seq < EACH {
                waits_with_a_full_ring += 1;
            } else {
                drop(set.remove::<Sender>(key).unwrap()); // closes it
            }
        }
    }
    assert!(waits_with_a_full_ring > READERS, "the rings never filled");
    for child in &mut children {
        assert!(reap(child).success());
    }
}

/// The set's descriptor in tokio (`AsyncFd` over it): four client
/// processes' round trips, served by one task.
#[test]
fn the_descriptor_serves_clients_under_tokio() {
    const ROUNDS: u64 = 50;
    let test = "the_descriptor_serves_clients_under_tokio";
    if child_role().is_some() {
        client(ROUNDS);
        return;
    }
    let (children, mut set, mut state) = start(test, 4, Backend::Futex);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // A duplicate: the same epoll instance, owned by the `AsyncFd`
        // (deprecated since tokio 1.54 for descriptors that may close under
        // the registration; an owned one cannot).
        let dup = set.ready_fd().unwrap().try_clone_to_owned().unwrap();
        #[allow(deprecated)]
        let afd =
            tokio::io::unix::AsyncFd::with_interest(dup, tokio::io::Interest::READABLE).unwrap();
        let mut ready = Vec::new();
        let mut woken = 0u64;
        while !set.is_empty() {
            if set.arm().unwrap() {
                let mut guard = tokio::time::timeout(WATCHDOG, afd.readable())
                    .await
                    .expect("watchdog: the set's descriptor")
                    .unwrap();
                guard.clear_ready();
                woken += 1;
            }
            set.try_wait(&mut ready).unwrap();
            for &key in &ready {
                let rx: &mut Receiver = set.receiver(key).unwrap();
                let c = state.get_mut(&key).unwrap();
                match rx.try_recv() {
                    Ok(req) => {
                        check_message(&req, id(c.me, c.next), length(c.next));
                        c.next += 1;
                        c.tx.send(&req).unwrap();
                    }
                    Err(Error::Empty) => {}
                    Err(Error::Closed) => {
                        assert_eq!(c.next, ROUNDS);
                        set.remove::<Receiver>(key).unwrap();
                    }
                    Err(e) => panic!("client {}: {e}", c.me),
                }
            }
        }
        assert!(woken > 0, "the descriptor never woke the task");
    });
    for mut child in children {
        assert!(reap(&mut child).success());
    }
}

/// Two ends of anonymous channels (no bell).
fn pair() -> (Sender, Receiver) {
    let opts = Options::new().capacity(4096);
    let fd = opts.create_anonymous().unwrap();
    let tx = opts.sender_from_fd(fd.try_clone().unwrap()).unwrap();
    (tx, opts.receiver_from_fd(fd).unwrap())
}

/// Bad input is an error that says so, never a hang or a panic.
#[test]
fn bad_registrations_and_waits_are_errors() {
    let mut set: WaitSet<u32> = WaitSet::new();
    let mut ready = Vec::new();
    let err = set.wait(&mut ready, None).unwrap_err();
    assert!(err.to_string().contains("empty wait set"), "{err}");
    assert!(matches!(
        set.wait(&mut ready, Some(Duration::from_millis(1))),
        Err(Error::Timeout)
    ));
    let mut peers = Vec::new();
    for key in 0..FUTEX_WAITV_MAX as u32 {
        let (tx, rx) = pair();
        set.add(key, rx).unwrap();
        peers.push(tx);
    }
    let (_tx, rx) = pair();
    let err = set.add(0, rx).unwrap_err();
    assert!(err.to_string().contains("already"), "{err}");
    let err = set.add(999, err.into_end()).unwrap_err();
    assert!(err.to_string().contains("128"), "{err}");
    // Nothing ready: a wait times out; a send makes its key ready.
    assert!(matches!(
        set.wait(&mut ready, Some(Duration::from_millis(5))),
        Err(Error::Timeout)
    ));
    peers[77].send(b"x").unwrap();
    // While an end is ready, waits make no system call to sleep.
    let slept = set.sleeps();
    for _ in 0..1000 {
        assert_eq!(set.wait(&mut ready, Some(WATCHDOG)).unwrap(), 1);
        assert_eq!(ready, [77]);
    }
    assert_eq!(set.sleeps(), slept, "a wait slept with an end ready");
    // The wrong type: nothing, and the end stays.
    assert!(set.get_mut::<Sender>(77).is_none());
    assert!(set.remove::<Sender>(77).is_none());
    assert_eq!(
        set.remove::<Receiver>(77).unwrap().try_recv().unwrap(),
        b"x"
    );
    assert_eq!(set.len(), FUTEX_WAITV_MAX - 1);
    // No bells: no descriptor for an event loop, no epoll set.
    assert!(set.ready_fd().is_err());
    assert!(set.arm().is_err());
    let mut on_bells: WaitSet<u32> = WaitSet::with_backend(Backend::Epoll);
    let (_tx, rx) = pair();
    let err = on_bells.add(1, rx).unwrap_err();
    assert!(err.to_string().contains("bell"), "{err}");
    // A closed peer makes its end ready at once.
    drop(peers.remove(3));
    set.wait(&mut ready, Some(WATCHDOG)).unwrap();
    assert_eq!(ready, [3]);
    assert!(matches!(
        set.receiver(3).unwrap().try_recv(),
        Err(Error::Closed)
    ));
}

/// A listener-made pair in one process: the listener's thread is only
/// the handshake's other side (the ends are used here).
#[test]
fn a_sender_ready_for_room_and_a_dead_listener_end() {
    let name = fresh_name("room1");
    let listener = Listener::bind_abstract(&name).unwrap();
    let t = std::thread::spawn(move || listener.accept().unwrap());
    let conn = shmchan::connect_abstract(&name).unwrap();
    let other = t.join().unwrap();
    let (tx, _rx) = conn.into_split();
    let mut set = WaitSet::new();
    set.add_sender(1u8, tx, 100).unwrap();
    let mut ready = Vec::new();
    // An empty ring has room.
    assert_eq!(set.wait(&mut ready, Some(WATCHDOG)).unwrap(), 1);
    drop(other); // the receiver closes: still ready, and the send says so
    set.wait(&mut ready, Some(WATCHDOG)).unwrap();
    let err = set.sender(1).unwrap().try_send(b"late").unwrap_err();
    assert!(err.is_disconnected(), "{err:?}");
}

/// A reader process that reads nothing is killed while the parent's
/// sender waits for room in the set: the set returns the sender ready
/// and its send says `PeerGone`.
fn a_killed_reader_is_reported(test: &str, backend: Backend) {
    if child_role().is_some() {
        let _conn = Options::new()
            .capacity(4096)
            .connect_abstract(child_env("SHMCHAN_NAME"))
            .unwrap();
        loop {
            std::thread::sleep(Duration::from_secs(1)); // until killed
        }
    }
    let name = fresh_name("deadreader");
    let listener = Options::new().capacity(4096).bind_abstract(&name).unwrap();
    let mut child = spawn(test, "reader", &[("SHMCHAN_NAME", &name)], None);
    let (mut tx, _rx) = listener.accept().unwrap().into_split();
    let msg = [5u8; 500];
    while tx.try_send(&msg[..]).is_ok() {}
    let mut set = WaitSet::with_backend(backend).policy(Wait::Block);
    set.add_sender(0u8, tx, msg.len()).unwrap();
    let mut ready = Vec::new();
    assert!(matches!(
        set.wait(&mut ready, Some(Duration::ZERO)),
        Err(Error::Timeout)
    ));
    signal(&child, Signal::KILL);
    assert!(!reap(&mut child).success());
    set.wait(&mut ready, Some(WATCHDOG))
        .expect("watchdog: the dead reader");
    assert_eq!(ready, [0]);
    let err = set.sender(0).unwrap().try_send(&msg[..]).unwrap_err();
    assert!(
        matches!(err, shmchan::TrySendError::Failed(Error::PeerGone, _)),
        "{err:?}"
    );
}

#[test]
fn a_killed_reader_wakes_its_waiting_sender() {
    a_killed_reader_is_reported("a_killed_reader_wakes_its_waiting_sender", Backend::Futex);
}

#[test]
fn a_killed_reader_wakes_its_waiting_sender_on_the_bells() {
    a_killed_reader_is_reported(
        "a_killed_reader_wakes_its_waiting_sender_on_the_bells",
        Backend::Epoll,
    );
}

/// `AsyncWaitSet`: the same round trips of four client processes, served
/// by one task awaiting the set.
#[test]
fn an_async_wait_set_serves_clients() {
    const ROUNDS: u64 = 50;
    if child_role().is_some() {
        client(ROUNDS);
        return;
    }
    let (children, set, mut state) = start("an_async_wait_set_serves_clients", 4, Backend::Futex);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut set = shmchan::tokio::AsyncWaitSet::new(set).unwrap();
        let mut ready = Vec::new();
        while !set.get_ref().is_empty() {
            tokio::time::timeout(WATCHDOG, set.wait(&mut ready))
                .await
                .expect("watchdog: the async wait set")
                .unwrap();
            for &key in &ready {
                let rx: &mut Receiver = set.get_mut().receiver(key).unwrap();
                let c = state.get_mut(&key).unwrap();
                match rx.try_recv() {
                    Ok(req) => {
                        check_message(&req, id(c.me, c.next), length(c.next));
                        c.next += 1;
                        c.tx.send(&req).unwrap();
                    }
                    Err(Error::Empty) => {}
                    Err(Error::Closed) => {
                        assert_eq!(c.next, ROUNDS);
                        set.get_mut().remove::<Receiver>(key).unwrap();
                    }
                    Err(e) => panic!("client {}: {e}", c.me),
                }
            }
        }
        assert!(set.wait(&mut ready).await.is_err(), "an empty set");
    });
    for mut child in children {
        assert!(reap(&mut child).success());
    }
}

/// Clients killed with `kill -9` at random moments (a message half
/// written, a reply on its way): each is reported gone or had finished,
/// every request it made before is answered once and in order, nothing
/// of a half-written one arrives, and every other client finishes.
fn random_kills(test: &str, rounds_of_kills: usize) {
    const CLIENTS: usize = 12;
    const VICTIMS: usize = 4;
    const ROUNDS: u64 = 200;
    if child_role().is_some() {
        client(ROUNDS);
        return;
    }
    let mut noise = Noise::seeded();
    let mut killed_mid_way = 0;
    for _ in 0..rounds_of_kills {
        let backend = if noise.below(2) == 0 {
            Backend::Futex
        } else {
            Backend::Epoll
        };
        let (mut children, mut set, mut state) = start(test, CLIENTS, backend);
        let mut victims: Vec<u64> = Vec::new();
        while victims.len() < VICTIMS {
            let v = noise.below(CLIENTS as u64);
            if !victims.contains(&v) {
                victims.push(v);
            }
        }
        let pids: Vec<(u32, u64)> = victims
            .iter()
            .map(|&v| (children[v as usize].id(), noise.below(3_000)))
            .collect();
        let killer = std::thread::spawn(move || {
            for (pid, micros) in pids {
                std::thread::sleep(Duration::from_micros(micros));
                let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
                // A child that finished is a zombie until reaped: no error.
                rustix::process::kill_process(pid, Signal::KILL).unwrap();
            }
        });
        let mut ready = Vec::new();
        let mut gone = Vec::new();
        while !set.is_empty() {
            set.wait(&mut ready, Some(WATCHDOG))
                .expect("watchdog: the wait set");
            for &key in &ready {
                let rx: &mut Receiver = set.receiver(key).unwrap();
                let c = state.get_mut(&key).unwrap();
                match rx.try_recv() {
                    Ok(req) => {
                        assert!(c.next < ROUNDS, "client {}: a request too many", c.me);
                        check_message(&req, id(c.me, c.next), length(c.next));
                        c.next += 1;
                        let sent = c.tx.send(&req);
                        assert!(sent.is_ok() || victims.contains(&key), "{sent:?}");
                    }
                    Err(Error::Empty) => {}
                    Err(Error::Closed) => {
                        assert_eq!(c.next, ROUNDS, "client {} closed early", c.me);
                        set.remove::<Receiver>(key).unwrap();
                    }
                    Err(Error::PeerGone) => {
                        gone.push(key);
                        set.remove::<Receiver>(key).unwrap();
                    }
                    Err(e) => panic!("client {}: {e}", c.me),
                }
            }
        }
        killer.join().unwrap();
        killed_mid_way += gone.len();
        for key in &gone {
            assert!(
                victims.contains(key),
                "client {key} was not killed but is gone"
            );
        }
        for (i, child) in children.iter_mut().enumerate() {
            let ok = reap(child).success();
            assert!(ok || victims.contains(&(i as u64)), "client {i} failed");
        }
    }
    eprintln!("{killed_mid_way} clients killed before their last request");
}

#[test]
fn clients_killed_at_random_moments_are_reported_and_the_rest_finish() {
    random_kills(
        "clients_killed_at_random_moments_are_reported_and_the_rest_finish",
        2,
    );
}

#[test]
#[ignore = "long: 50 rounds of random kills"]
fn clients_killed_at_random_moments_many_rounds() {
    random_kills("clients_killed_at_random_moments_many_rounds", 50);
}

/// Hostile clients beside an honest one: one writes a `tail` past the
/// ring into the channel the server receives on, one keeps changing the
/// server's futex word and waking it. The set returns the first ready
/// and its receive says `Corrupt`; it never returns the second (it has
/// sent nothing), and the honest client's round trips all go through.
#[test]
fn hostile_clients_neither_break_nor_hang_the_set() {
    const ROUNDS: u64 = 100;
    let test = "hostile_clients_neither_break_nor_hang_the_set";
    if let Some(role) = child_role() {
        if role == "client" {
            client(ROUNDS);
            return;
        }
        let mut conn = Options::new()
            .capacity(RING)
            .connect_abstract(child_env("SHMCHAN_NAME"))
            .unwrap();
        let (base, _) = common::map_whole(std::os::fd::AsFd::as_fd(conn.sender()));
        if role == "scribbler" {
            // `tail` (offset 128): past anything the ring holds.
            let bad = 1u64 << 40;
            common::poke(
                std::os::fd::AsFd::as_fd(conn.sender()),
                128,
                &bad.to_le_bytes(),
            );
        } else {
            // The receiver's `wakes` word (offset 512 + 4), bumped and
            // woken without end, until the server closes.
            // SAFETY: the word lies in our shared mapping of the header,
            // 4-byte aligned, and is only used atomically.
            let wakes = unsafe { &*base.add(516).cast::<std::sync::atomic::AtomicU32>() };
            loop {
                for _ in 0..1000 {
                    wakes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let _ = rustix::thread::futex::wake(
                        wakes,
                        rustix::thread::futex::Flags::empty(),
                        1,
                    );
                }
                if matches!(conn.receiver().try_recv(), Err(Error::Closed)) {
                    break;
                }
            }
        }
        // Until the server closes (or kills us).
        let _ = conn.receiver().recv_timeout(WATCHDOG);
        return;
    }
    let name = fresh_name("hostile");
    let listener = Options::new().capacity(RING).bind_abstract(&name).unwrap();
    let roles = ["client", "scribbler", "waker"];
    let mut children: Vec<_> = roles
        .iter()
        .map(|r| {
            spawn(
                test,
                r,
                &[("SHMCHAN_NAME", &name), ("SHMCHAN_ME", "0")],
                None,
            )
        })
        .collect();
    let mut set = WaitSet::new().policy(Wait::Block);
    let mut txs = HashMap::new();
    for _ in 0..roles.len() {
        let conn = listener.accept().unwrap();
        let who = children
            .iter()
            .position(|c| c.id() == conn.peer().pid)
            .unwrap();
        let (tx, rx) = conn.into_split();
        set.add(roles[who], rx).unwrap();
        txs.insert(roles[who], tx);
    }
    let mut ready = Vec::new();
    let (mut next, mut corrupt, mut done) = (0u64, false, false);
    while !done || !corrupt {
        set.wait(&mut ready, Some(WATCHDOG)).expect("watchdog");
        for &key in &ready {
            let rx: &mut Receiver = set.receiver(key).unwrap();
            let got = rx.try_recv();
            match (key, got) {
                ("client", Ok(req)) => {
                    check_message(&req, id(0, next), length(next));
                    next += 1;
                    txs.get_mut("client").unwrap().send(&req).unwrap();
                }
                ("client", Err(Error::Closed)) => {
                    assert_eq!(next, ROUNDS);
                    done = true;
                    set.remove::<Receiver>(key).unwrap();
                }
                ("scribbler", Err(Error::Corrupt(_))) => {
                    corrupt = true;
                    set.remove::<Receiver>(key).unwrap();
                }
                (_, Err(Error::Empty)) => {}
                (key, other) => panic!("{key}: {other:?}"),
            }
        }
    }
    drop(set); // closes the waker's channel: it stops
    drop(txs);
    for child in &mut children {
        assert!(reap(child).success());
    }
}

/// `wait_any` as it was before it became a wait set: a receiver whose
/// sender process died is returned at once, whatever the timeout (its
/// bell hung up), even `Some(ZERO)`. A caller that polls `wait_any` with
/// timeouts shorter than `PEER_CHECK` must see the death too, not time
/// out for ever.
#[test]
fn wait_any_returns_a_dead_sender_at_once() {
    if child_role().is_some() {
        let _conn = Options::new()
            .capacity(4096)
            .connect_abstract(child_env("SHMCHAN_NAME"))
            .unwrap();
        loop {
            std::thread::sleep(Duration::from_secs(1)); // until killed
        }
    }
    let name = fresh_name("anydead");
    let listener = Options::new().capacity(4096).bind_abstract(&name).unwrap();
    let mut child = spawn(
        "wait_any_returns_a_dead_sender_at_once",
        "sender",
        &[("SHMCHAN_NAME", &name)],
        None,
    );
    let (_tx, mut rx) = listener.accept().unwrap().into_split();
    assert!(matches!(
        shmchan::wait_any(&mut [&mut rx], Some(Duration::ZERO)),
        Err(Error::Timeout)
    ));
    signal(&child, Signal::KILL);
    assert!(!reap(&mut child).success());
    assert_eq!(
        shmchan::wait_any(&mut [&mut rx], Some(Duration::ZERO)).unwrap(),
        0,
        "the dead sender's receiver is ready at once"
    );
    assert!(matches!(rx.try_recv(), Err(Error::PeerGone)));
}
