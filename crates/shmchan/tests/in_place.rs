//! The in-place receive with two real processes: a stream checked where
//! it lies (long messages copied, short ones lent), and the receiver's
//! read-only view of the data area.

mod common;

use std::os::unix::net::UnixStream;

use common::{WATCHDOG, check_message, child_role, length, message, reap, spawn, stdin_socket};
use shmchan::{Error, Options, Wait};

const MESSAGES: u64 = 3000;

/// The child sends numbered messages, with loans and copies, a tenth of
/// them longer than the 4 KiB ring; the parent checks each in place.
#[test]
fn a_stream_received_in_place() {
    if child_role().is_some() {
        let sock = stdin_socket();
        let opts = Options::new().wait(Wait::Adaptive { spin: 100 });
        let mut tx = opts
            .sender_from_fd(shmchan::recv_fd(&sock).unwrap())
            .unwrap();
        for seq in 0..MESSAGES {
            let msg = message(seq, length(seq));
            if seq % 2 == 0 && msg.len() <= tx.max_loan() {
                let mut loan = tx.loan(msg.len()).unwrap();
                loan.copy_from_slice(&msg);
                loan.commit();
            } else {
                tx.send(&msg).unwrap();
            }
        }
        return;
    }
    let opts = Options::new()
        .capacity(4096)
        .wait(Wait::Adaptive { spin: 100 });
    let fd = opts.create_anonymous().unwrap();
    let (ours, theirs) = UnixStream::pair().unwrap();
    shmchan::send_fd(&ours, &fd).unwrap();
    let mut rx = opts.receiver_from_fd(fd).unwrap();
    let mut child = spawn(
        "a_stream_received_in_place",
        "sender",
        &[],
        Some(theirs.into()),
    );
    let (mut lent, mut copied) = (0, 0);
    for seq in 0..MESSAGES {
        let got = if seq % 3 == 0 {
            rx.recv_in_place_timeout(WATCHDOG).unwrap()
        } else {
            rx.recv_in_place().unwrap()
        };
        let len = length(seq);
        check_message(&got, seq, len);
        // Up to a quarter of the ring (one record) a message lies in one
        // piece whoever sent it; longer ones may have gone in rounds.
        if len <= 4096 / 4 {
            assert!(got.in_place(), "message {seq} of {len} bytes was copied");
        }
        if got.in_place() {
            lent += 1
        } else {
            copied += 1
        }
    }
    assert!(matches!(
        rx.recv_in_place_timeout(WATCHDOG),
        Err(Error::Closed)
    ));
    assert!(reap(&mut child).success());
    eprintln!("{lent} lent in place, {copied} copied");
    assert!(lent > 0 && copied > 0);
}

/// The receiver maps the data area read-only: a write through a lent
/// message's address kills the writer with SIGSEGV instead of changing
/// the sender's memory.
#[test]
fn the_receiver_cannot_write_the_data_area() {
    if child_role().is_some() {
        let opts = Options::new();
        let fd = opts.create_anonymous().unwrap();
        let mut tx = opts.sender_from_fd(fd.try_clone().unwrap()).unwrap();
        let mut rx = opts.receiver_from_fd(fd).unwrap();
        tx.send(b"read-only here").unwrap();
        let got = rx.recv_in_place().unwrap();
        assert!(got.in_place());
        let at = got.as_ptr().cast_mut();
        // SAFETY: none: this write must fault (the point of the test).
        unsafe { at.write_volatile(b'X') };
        std::process::exit(0);
    }
    let mut child = spawn(
        "the_receiver_cannot_write_the_data_area",
        "writer",
        &[],
        None,
    );
    let status = reap(&mut child);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc_sigsegv()), "{status:?}");
}

fn libc_sigsegv() -> i32 {
    rustix::process::Signal::SEGV.as_raw()
}

/// The hostile-safe accessors between two processes: the child writes
/// each message into a loan with `Loan::write_at`, in pieces, and never
/// derefs it; the parent copies each one out with `InPlace::copy_to` or
/// `InPlace::to_vec`, lent or not. Out-of-range calls are `TooLarge` and
/// change nothing.
#[test]
fn hostile_safe_loans_and_copies() {
    const SENT: u64 = 500;
    if child_role().is_some() {
        let sock = stdin_socket();
        let opts = Options::new().wait(Wait::Adaptive { spin: 100 });
        let mut tx = opts
            .sender_from_fd(shmchan::recv_fd(&sock).unwrap())
            .unwrap();
        for seq in 0..SENT {
            let msg = message(seq, length(seq) % tx.max_loan());
            let mut loan = tx.loan(msg.len()).unwrap();
            assert_eq!(loan.len(), msg.len());
            let beyond = loan.write_at(msg.len() - 7, &msg[..8]);
            assert!(matches!(beyond, Err(Error::TooLarge { .. })), "{beyond:?}");
            assert!(loan.write_at(usize::MAX, &[1]).is_err());
            // Back to front, in uneven pieces.
            let cut = msg.len() / 3;
            loan.write_at(cut, &msg[cut..]).unwrap();
            loan.write_at(0, &msg[..cut]).unwrap();
            loan.commit();
        }
        // Longer than the ring: received by copy, not in place.
        tx.send(&message(SENT, 10_000)).unwrap();
        return;
    }
    let opts = Options::new().capacity(4096);
    let fd = opts.create_anonymous().unwrap();
    let (ours, theirs) = UnixStream::pair().unwrap();
    shmchan::send_fd(&ours, &fd).unwrap();
    let mut rx = opts.receiver_from_fd(fd).unwrap();
    let mut child = spawn(
        "hostile_safe_loans_and_copies",
        "sender",
        &[],
        Some(theirs.into()),
    );
    let mut buf = vec![0u8; 16 << 10];
    for seq in 0..=SENT {
        let len = if seq == SENT {
            10_000
        } else {
            length(seq) % 4080
        };
        let got = rx.recv_in_place_timeout(WATCHDOG).unwrap();
        assert_eq!(got.in_place(), seq < SENT);
        assert_eq!(got.len(), len.max(8));
        let short = got.copy_to(&mut buf[..got.len() - 1]);
        assert!(matches!(short, Err(Error::TooLarge { .. })), "{short:?}");
        if seq % 2 == 0 {
            let n = got.copy_to(&mut buf).unwrap();
            check_message(&buf[..n], seq, len);
        } else {
            check_message(&got.to_vec(), seq, len);
        }
    }
    drop(rx);
    assert!(reap(&mut child).success());
}
