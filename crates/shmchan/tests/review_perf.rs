//! Review: a `try_recv_into` that finds a long message half-arrived copies
//! what arrived out of the caller's buffer and back on every call
//! (`Sink::suspend`/`resume`); `AsyncReceiver::recv_into` makes up to
//! `tries` + 1 such calls per stall.
use std::time::{Duration, Instant};

#[test]
fn review_polling_a_half_arrived_message_into_a_buffer_is_cheap() {
    let opts = shmchan::Options::new().capacity(1 << 20);
    let fd = opts.create_anonymous().unwrap();
    let mut tx = opts.sender_from_fd(fd.try_clone().unwrap()).unwrap();
    let mut rx = opts.receiver_from_fd(fd).unwrap();
    let len = 32 << 20;
    let t = std::thread::spawn(move || {
        tx.send_with(len, |off, piece| {
            if off >= 16 << 20 && off < (16 << 20) + piece.len() {
                std::thread::sleep(Duration::from_secs(3));
            }
            piece.fill(1);
        })
        .unwrap();
    });
    let mut buf = vec![0u8; len];
    // Let the first 16 MiB arrive.
    let start = Instant::now();
    let mut polls = 0u32;
    let mut stalled_at = None;
    loop {
        match rx.try_recv_into(&mut buf) {
            Err(shmchan::Error::Empty) => {}
            other => break other.map(|_| ()).unwrap(),
        }
        polls += 1;
        if start.elapsed() > Duration::from_millis(500) && stalled_at.is_none() {
            stalled_at = Some(Instant::now());
            polls = 0;
        }
        if let Some(s) = stalled_at {
            if s.elapsed() > Duration::from_millis(1000) {
                break;
            }
        }
    }
    eprintln!("polls in 1 s with ~16 MiB half-arrived: {polls}");
    assert!(polls >= 2000, "2000 polls (one default spin) take more than a second: {polls}");
    t.join().unwrap();
}
