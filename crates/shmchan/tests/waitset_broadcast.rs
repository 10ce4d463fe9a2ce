//! Broadcast subscribers in a `WaitSet`: two publisher processes, one
//! subscriber of each in the parent's set; every message in order, then
//! each close.

mod common;

use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::{WATCHDOG, child_role, reap, spawn, stdin_socket};
use shmchan::broadcast::{Options, Policy, Subscriber};
use shmchan::{Error, Wait, WaitSet};

const MESSAGES: u64 = 300;

#[test]
fn subscribers_of_two_publisher_processes_in_one_wait_set() {
    if child_role().is_some() {
        let sock = stdin_socket();
        let mut p = Options::new()
            .capacity(16)
            .message_size(64)
            .policy(Policy::Block)
            .create_publisher()
            .unwrap();
        p.send_to(&sock).unwrap();
        let end = Instant::now() + WATCHDOG;
        while p.subscribers() < 1 {
            assert!(Instant::now() < end, "watchdog: nobody joined");
            std::thread::sleep(Duration::from_millis(1));
        }
        for seq in 0..MESSAGES {
            p.send_timeout(&seq.to_le_bytes(), WATCHDOG).unwrap();
            if seq % 50 == 0 {
                std::thread::sleep(Duration::from_millis(2)); // the set sleeps
            }
        }
        return;
    }
    let test = "subscribers_of_two_publisher_processes_in_one_wait_set";
    let mut set = WaitSet::new().policy(Wait::Block);
    let mut children = Vec::new();
    for key in 0..2u8 {
        let (here, there) = UnixStream::pair().unwrap();
        children.push(spawn(test, "publisher", &[], Some(there.into())));
        let sub = Options::new().recv_subscriber(&here).unwrap();
        set.add(key, sub).unwrap();
    }
    let mut next = [0u64; 2];
    let mut ready = Vec::new();
    while !set.is_empty() {
        set.wait(&mut ready, Some(WATCHDOG)).expect("watchdog");
        for &key in &ready {
            let sub: &mut Subscriber = set.get_mut(key).unwrap();
            match sub.try_recv() {
                Ok(m) => {
                    assert_eq!(m, next[key as usize].to_le_bytes());
                    next[key as usize] += 1;
                }
                Err(Error::Empty) => {}
                Err(Error::Closed) => {
                    assert_eq!(next[key as usize], MESSAGES);
                    set.remove::<Subscriber>(key).unwrap();
                }
                Err(e) => panic!("publisher {key}: {e}"),
            }
        }
    }
    assert!(
        set.sleeps() > 0,
        "the set never slept on the broadcast word"
    );
    for mut c in children {
        assert!(reap(&mut c).success());
    }
}
