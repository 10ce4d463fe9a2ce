//! Waiting in event loops and async runtimes, between real processes over
//! a rendezvous: tokio ends both ways with every byte checked, a killed
//! peer waking an async receive, a cancelled send, and `wait_any` over
//! several clients.

mod common;

use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::{
    WATCHDOG, check_message, child_env, child_role, length, message, reap, signal, spawn,
    stdin_socket,
};
use shmchan::tokio::{AsyncReceiver, AsyncSender};
use shmchan::{Error, Listener, Options, Wait};

const MESSAGES: u64 = 2000;

/// An abstract name no other test or run uses.
fn fresh_name(test: &str) -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    format!("shmchan-test-{test}-{:016x}", u64::from_le_bytes(b))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Awaits `f` under the watchdog: a hang fails the test.
async fn watched<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WATCHDOG, f)
        .await
        .expect("watchdog: an await did not finish")
}

/// The child connects and echoes every message back with tokio; the
/// parent sends with tokio too (a tenth of the messages longer than the
/// 4 KiB rings, so they go in rounds) and checks every echo, in order.
#[test]
fn tokio_ends_echo_every_message_between_processes() {
    if child_role().is_some() {
        runtime().block_on(async {
            let conn = Options::new()
                .wait(Wait::Block)
                .connect_abstract(child_env("SHMCHAN_NAME"))
                .unwrap();
            let (tx, rx) = conn.into_split();
            let (mut tx, mut rx) = (
                AsyncSender::new(tx).unwrap(),
                AsyncReceiver::new(rx).unwrap(),
            );
            loop {
                match watched(rx.recv()).await {
                    Ok(msg) => watched(tx.send(&msg)).await.unwrap(),
                    Err(Error::Closed) => return,
                    Err(e) => panic!("echo: {e}"),
                }
            }
        });
        return;
    }
    let name = fresh_name("echo");
    let listener = Options::new()
        .capacity(4096)
        .wait(Wait::Block)
        .bind_abstract(&name)
        .unwrap();
    let mut child = spawn(
        "tokio_ends_echo_every_message_between_processes",
        "echo",
        &[("SHMCHAN_NAME", &name)],
        None,
    );
    let (tx, rx) = listener.accept().unwrap().into_split();
    runtime().block_on(async {
        let (mut tx, mut rx) = (
            AsyncSender::new(tx).unwrap(),
            AsyncReceiver::new(rx).unwrap(),
        );
        // Sending and receiving as two concurrent futures on one thread:
        // each side finds its ring full or empty in turn and must be woken
        // by the other's bell.
        let sending = async {
            for seq in 0..MESSAGES {
                watched(tx.send(&message(seq, length(seq)))).await.unwrap();
            }
            tx
        };
        let receiving = async {
            let mut buf = vec![0u8; 32 << 10];
            for seq in 0..MESSAGES {
                if seq % 2 == 0 {
                    let got = watched(rx.recv()).await.unwrap();
                    check_message(&got, seq, length(seq));
                } else {
                    let n = watched(rx.recv_into(&mut buf)).await.unwrap();
                    check_message(&buf[..n], seq, length(seq));
                }
            }
        };
        let (tx, ()) = tokio::join!(sending, receiving);
        drop(tx); // closes: the child's recv is Closed, and it exits
        assert!(matches!(watched(rx.recv()).await, Err(Error::Closed)));
    });
    assert!(reap(&mut child).success());
}

/// The child connects, sends three messages and stops; the parent kills
/// it with SIGKILL while its async receive waits. The receive gets the
/// three messages, then `PeerGone` (the bell hangs up at the death).
#[test]
fn a_killed_sender_wakes_an_async_receive_with_peer_gone() {
    if child_role().is_some() {
        let mut conn = Options::new()
            .connect_abstract(child_env("SHMCHAN_NAME"))
            .unwrap();
        for seq in 0..3 {
            conn.sender().send(&message(seq, 100)).unwrap();
        }
        // Wait for the parent's kill (with the parent's death as a limit).
        let _ = conn.receiver().recv();
        std::thread::sleep(WATCHDOG);
        return;
    }
    let name = fresh_name("killed");
    let listener = Listener::bind_abstract(&name).unwrap();
    let mut child = spawn(
        "a_killed_sender_wakes_an_async_receive_with_peer_gone",
        "sender",
        &[("SHMCHAN_NAME", &name)],
        None,
    );
    let (_tx, rx) = listener.accept().unwrap().into_split();
    runtime().block_on(async {
        let mut rx = AsyncReceiver::new(rx).unwrap();
        for seq in 0..3 {
            check_message(&watched(rx.recv()).await.unwrap(), seq, 100);
        }
        let pending = rx.recv();
        tokio::pin!(pending);
        // Not ready before the kill (nothing more was sent)...
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut pending)
                .await
                .is_err()
        );
        signal(&child, rustix::process::Signal::KILL);
        // ... and woken by it.
        assert!(matches!(watched(pending).await, Err(Error::PeerGone)));
    });
    assert!(!reap(&mut child).success());
}

/// A send of a message longer than the ring, dropped (cancelled) while
/// the ring is full: the receiver never sees any of it, and the next
/// message arrives whole.
#[test]
fn a_cancelled_async_send_leaves_nothing_behind() {
    if child_role().is_some() {
        let mut conn = Options::new()
            .wait(Wait::Block)
            .connect_abstract(child_env("SHMCHAN_NAME"))
            .unwrap();
        // Read only when told (a byte on standard input): the parent's
        // long send finds the ring full and is cancelled before that.
        let mut go = [0u8; 1];
        std::io::Read::read_exact(&mut stdin_socket(), &mut go).unwrap();
        let rx = conn.receiver();
        assert_eq!(rx.recv_timeout(WATCHDOG).unwrap(), b"before");
        check_message(&rx.recv_timeout(WATCHDOG).unwrap(), 7, 3000);
        assert!(matches!(rx.recv_timeout(WATCHDOG), Err(Error::Closed)));
        return;
    }
    let name = fresh_name("cancel");
    let listener = Options::new()
        .capacity(4096)
        .wait(Wait::Block)
        .bind_abstract(&name)
        .unwrap();
    let (mut here, there) = UnixStream::pair().unwrap();
    let mut child = spawn(
        "a_cancelled_async_send_leaves_nothing_behind",
        "receiver",
        &[("SHMCHAN_NAME", &name)],
        Some(there.into()),
    );
    let (tx, _rx) = listener.accept().unwrap().into_split();
    runtime().block_on(async {
        let mut tx = AsyncSender::new(tx).unwrap();
        watched(tx.send(b"before")).await.unwrap();
        // 64 KiB through a 4 KiB ring nobody reads yet: the first rounds
        // go out, then the send waits for room, and is dropped.
        let long = vec![0xEE; 64 << 10];
        let cancelled = tokio::time::timeout(Duration::from_millis(20), tx.send(&long)).await;
        assert!(cancelled.is_err(), "the long send cannot finish unread");
        // Now let the child read; the next message waits for room.
        std::io::Write::write_all(&mut here, b"g").unwrap();
        watched(tx.send(&message(7, 3000))).await.unwrap();
    });
    assert!(reap(&mut child).success());
}

/// Three children connect and each sends its own numbered messages at its
/// own pace; the parent waits on the three receivers with `wait_any` and
/// checks each sequence, then each close.
#[test]
fn wait_any_serves_several_clients() {
    const CLIENTS: usize = 3;
    const EACH: u64 = 300;
    if let Some(role) = child_role() {
        let me: u64 = role.parse().unwrap();
        let mut conn = Options::new()
            .connect_abstract(child_env("SHMCHAN_NAME"))
            .unwrap();
        for seq in 0..EACH {
            conn.sender()
                .send(&message(me * 1_000_000 + seq, length(seq)))
                .unwrap();
            if seq % (10 + me * 7) == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        return;
    }
    let name = fresh_name("any");
    let listener = Listener::bind_abstract(&name).unwrap();
    let mut children = Vec::new();
    let mut rxs = Vec::new();
    for i in 0..CLIENTS {
        children.push(spawn(
            "wait_any_serves_several_clients",
            &i.to_string(),
            &[("SHMCHAN_NAME", &name)],
            None,
        ));
        let conn = listener.accept().unwrap();
        // Which child is which: by pid.
        let who = children
            .iter()
            .position(|c| c.id() == conn.peer().pid)
            .unwrap();
        let (_tx, rx) = conn.into_split();
        rxs.push((who as u64, rx, 0u64, false));
    }
    let mut open = CLIENTS;
    while open > 0 {
        let mut refs: Vec<&mut shmchan::Receiver> =
            rxs.iter_mut().map(|(_, rx, _, _)| rx).collect();
        let i = shmchan::wait_any(&mut refs, Some(WATCHDOG)).expect("watchdog: wait_any");
        let (who, rx, next, closed) = &mut rxs[i];
        assert!(!*closed);
        match rx.try_recv() {
            Ok(got) => {
                check_message(&got, *who * 1_000_000 + *next, length(*next));
                *next += 1;
            }
            Err(Error::Empty) => {} // part of a long message: wait again
            Err(Error::Closed) => {
                assert_eq!(*next, EACH, "client {who} closed early");
                *closed = true;
                open -= 1;
                // A closed receiver stays ready: take it out of the set.
                let (_, rx, _, _) = rxs.remove(i);
                drop(rx);
            }
            Err(e) => panic!("client {who}: {e}"),
        }
    }
    for mut child in children {
        assert!(reap(&mut child).success());
    }
}

/// The futures can be spawned on a multi-threaded runtime: they are
/// `Send` (checked at compile time; nothing runs).
#[test]
fn the_async_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    #[allow(dead_code, clippy::diverging_sub_expression)]
    fn check(tx: &mut AsyncSender, rx: &mut AsyncReceiver) {
        send(&tx.send(b""));
        send(&tx.send_with(0, |_, _| {}));
        send(&tx.loan(0));
        send(&rx.recv());
        send(&rx.recv_into(&mut []));
        send(&rx.recv_in_place());
    }
    let _ = check;
}

/// Made outside a tokio runtime, the async ends say so (tokio itself would
/// panic); a channel without a bell is refused too.
#[test]
fn async_ends_outside_a_runtime_or_without_a_bell_are_errors() {
    if child_role().is_some() {
        // Connects, then waits for the parent to close its end.
        let mut conn = Options::new()
            .connect_abstract(child_env("SHMCHAN_NAME"))
            .unwrap();
        let _ = conn.receiver().recv_timeout(WATCHDOG);
        return;
    }
    let name = fresh_name("outside");
    let listener = Listener::bind_abstract(&name).unwrap();
    let mut child = spawn(
        "async_ends_outside_a_runtime_or_without_a_bell_are_errors",
        "client",
        &[("SHMCHAN_NAME", &name)],
        None,
    );
    let (tx, rx) = listener.accept().unwrap().into_split();
    let err = AsyncReceiver::new(rx).err().expect("outside a runtime");
    assert!(err.to_string().contains("inside a tokio runtime"), "{err}");
    assert!(AsyncSender::new(tx).is_err());
    let opts = Options::new();
    let fd = opts.create_anonymous().unwrap();
    let rx = opts.receiver_from_fd(fd).unwrap();
    runtime().block_on(async {
        let err = AsyncReceiver::new(rx).err().expect("no bell");
        assert!(err.to_string().contains("no bell"), "{err}");
    });
    assert!(reap(&mut child).success());
}
