//! The bells, played by one process holding both ends (the two-process
//! tests are in `tests/ready.rs`): a ring only when the peer armed, one
//! per arming, and a hang-up when the peer's end goes.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec, poll};

use crate::bell::Bell;
use crate::{Error, Options, Receiver, Sender, Wait, wait_any};

fn belled(capacity: usize) -> (Sender, Receiver) {
    let opts = Options::new().capacity(capacity).wait(Wait::Block);
    let fd = opts.create_anonymous().unwrap();
    let (a, b) = crate::bell::pair().unwrap();
    let tx = opts.sender_from_fd(fd.try_clone().unwrap()).unwrap();
    let rx = opts.receiver_from_fd(fd).unwrap();
    (with_bell_tx(tx, a), with_bell_rx(rx, b))
}

fn with_bell_tx(mut tx: Sender, fd: OwnedFd) -> Sender {
    let ring = tx.core.ring_for_tests();
    tx.core = crate::producer::Producer::with_bell(ring, Some(Bell { fd }));
    tx
}

fn with_bell_rx(mut rx: Receiver, fd: OwnedFd) -> Receiver {
    rx.core = crate::consumer::Consumer::with_bell(*rx.core.ring(), Some(Bell { fd }));
    rx
}

/// Whether `fd` is readable now.
fn readable(fd: impl AsFd) -> bool {
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    poll(&mut fds, Some(&zero)).unwrap() == 1
}

#[test]
fn a_busy_channel_rings_nothing_and_an_armed_one_rings_once() {
    let (mut tx, mut rx) = belled(4096);
    // Nobody armed: messages go with no ring.
    for i in 0..10u8 {
        tx.send(&[i; 8]).unwrap();
    }
    assert!(
        !readable(rx.ready_fd().unwrap()),
        "rang with nobody waiting"
    );
    // Something is there: arming says so and asks for no wait.
    assert!(!rx.arm().unwrap());
    for i in 0..10u8 {
        assert_eq!(rx.try_recv().unwrap(), [i; 8]);
    }
    assert!(matches!(rx.try_recv(), Err(Error::Empty)));
    assert!(rx.arm().unwrap(), "nothing there: wait");
    assert!(!readable(rx.ready_fd().unwrap()));
    tx.send(b"one").unwrap();
    tx.send(b"two").unwrap();
    assert!(
        readable(rx.ready_fd().unwrap()),
        "armed, and a message came"
    );
    // One ring per arming: the second message added none.
    assert!(!rx.arm().unwrap());
    assert!(!readable(rx.ready_fd().unwrap()), "the ring was read");
    assert_eq!(rx.try_recv().unwrap(), b"one");
    assert_eq!(rx.try_recv().unwrap(), b"two");
}

#[test]
fn an_armed_sender_is_rung_when_room_is_made() {
    let (mut tx, mut rx) = belled(4096);
    let msg = [7u8; 1000];
    while tx.try_send(&msg[..]).is_ok() {}
    assert!(tx.arm(msg.len()).unwrap(), "full: wait");
    assert!(!readable(tx.ready_fd().unwrap()));
    rx.try_recv().unwrap();
    assert!(readable(tx.ready_fd().unwrap()), "room was made");
    assert!(!tx.arm(msg.len()).unwrap());
    tx.try_send(&msg[..]).unwrap();
}

#[test]
fn a_closed_or_gone_peer_makes_the_bell_readable() {
    let (tx, mut rx) = belled(4096);
    assert!(rx.arm().unwrap());
    drop(tx);
    assert!(readable(rx.ready_fd().unwrap()));
    assert!(!rx.arm().unwrap());
    assert!(matches!(rx.try_recv(), Err(Error::Closed)));

    let (mut tx, rx) = belled(4096);
    tx.send(b"x").unwrap();
    assert!(!tx.arm(1).unwrap());
    drop(rx);
    assert!(readable(tx.ready_fd().unwrap()));
    assert!(matches!(tx.arm(1), Err(Error::Closed)));
}

#[test]
fn a_sender_whose_bell_hung_up_without_closing_is_gone() {
    // The sender's process died: its bell end closed, the close flag was
    // never set. Messages it sent still arrive, then PeerGone.
    let (mut tx, mut rx) = belled(4096);
    tx.send(b"last words").unwrap();
    let ring = tx.core.ring_for_tests();
    let bell = std::mem::replace(
        &mut tx.core,
        crate::producer::Producer::with_bell(ring, None),
    );
    drop(bell); // the bell end goes; the Sender (and its close) stays
    assert!(!rx.arm().unwrap());
    assert_eq!(rx.try_recv().unwrap(), b"last words");
    assert!(matches!(rx.try_recv(), Err(Error::PeerGone)));
    std::mem::forget(tx); // no close: it "died"
}

#[test]
fn wait_any_returns_the_receiver_with_a_message() {
    let (mut tx0, mut rx0) = belled(4096);
    let (mut tx1, mut rx1) = belled(4096);
    let short = Some(Duration::from_millis(10));
    assert!(matches!(
        wait_any(&mut [&mut rx0, &mut rx1], short),
        Err(Error::Timeout)
    ));
    tx1.send(b"to one").unwrap();
    assert_eq!(wait_any(&mut [&mut rx0, &mut rx1], None).unwrap(), 1);
    assert_eq!(rx1.try_recv().unwrap(), b"to one");
    tx0.send(b"to zero").unwrap();
    assert_eq!(wait_any(&mut [&mut rx0, &mut rx1], None).unwrap(), 0);
    assert_eq!(rx0.try_recv().unwrap(), b"to zero");
}

/// A peer that dies (or closes) with rings unread in its own end leaves
/// `ECONNRESET` on ours, once, before the end of file: `drain` takes it
/// for the hang-up it is (an edge-triggered poller, mio or epoll
/// `EPOLLET`, reports a hang-up once: missed, it never comes again).
#[test]
fn a_peer_gone_with_rings_unread_is_seen_hung_up() {
    let (a, b) = crate::bell::pair().unwrap();
    let ours = Bell { fd: a };
    ours.ring(); // the peer armed; we rang; it died before reading
    drop(b);
    assert!(readable(ours.as_fd()));
    assert!(
        ours.drain(),
        "hang-up missed (ECONNRESET taken for no news)"
    );
}

/// The same at the `Receiver` level: a sender process that died with a
/// ring unread (it had armed, the receiver made room) is seen gone by the
/// first `arm` after the hang-up.
#[test]
fn an_armed_sender_that_died_unrung_is_seen_gone_by_one_arm() {
    let (mut tx, mut rx) = belled(4096);
    let msg = [7u8; 1000];
    while tx.try_send(&msg[..]).is_ok() {}
    assert!(tx.arm(msg.len()).unwrap());
    rx.try_recv().unwrap(); // rings the sender's bell
    // The sender dies without reading its bell: no close flag.
    let ring = tx.core.ring_for_tests();
    drop(std::mem::replace(
        &mut tx.core,
        crate::producer::Producer::with_bell(ring, None),
    ));
    std::mem::forget(tx);
    while rx.try_recv().is_ok() {}
    // Edge-triggered: one event, one `arm`: it must not ask to wait.
    assert!(!rx.arm().unwrap(), "arm says wait on a dead sender's bell");
}

/// An async loan longer than the room left before the end of the ring
/// goes as the blocking one does: a `Pad` to the end, then, once the
/// receiver has taken the `Pad`, the record at the start. (Waiting for
/// both at once asked for more than the ring: it never completed.)
#[cfg(feature = "tokio")]
#[test]
fn an_async_loan_of_most_of_the_ring_completes() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut tx, mut rx) = belled(4096);
        // tail at 2048, ring empty.
        tx.send(&[1u8; 1008]).unwrap();
        tx.send(&[2u8; 1008]).unwrap();
        rx.try_recv().unwrap();
        rx.try_recv().unwrap();
        let mut tx = crate::tokio::AsyncSender::new(tx).unwrap();
        let mut rx = crate::tokio::AsyncReceiver::new(rx).unwrap();
        let sending = async {
            let mut loan = tx.loan(3000).await?;
            loan.fill(3);
            loan.commit();
            Ok::<_, Error>(())
        };
        let got = tokio::time::timeout(Duration::from_secs(20), async {
            tokio::join!(sending, rx.recv())
        })
        .await
        .expect("watchdog: the loan or the receive did not finish");
        got.0.unwrap();
        assert_eq!(got.1.unwrap(), vec![3u8; 3000]);
    });
}

/// More receivers than one `futex_waitv` takes: `wait_any` waits on their
/// bells with `poll(2)`, and still finds the one with a message.
#[test]
fn wait_any_over_more_than_128_receivers() {
    let mut pairs: Vec<(Sender, Receiver)> = (0..130).map(|_| belled(4096)).collect();
    pairs[129].0.send(b"last").unwrap();
    let mut rxs: Vec<&mut Receiver> = pairs.iter_mut().map(|(_, rx)| rx).collect();
    assert_eq!(
        wait_any(&mut rxs, Some(Duration::from_secs(20))).unwrap(),
        129
    );
    assert!(matches!(
        wait_any(&mut rxs[..128], Some(Duration::from_millis(5))),
        Err(Error::Timeout)
    ));
}
