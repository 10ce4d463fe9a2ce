//! A broadcast publisher: binds a rendezvous at a Unix socket path, waits
//! for a number of subscribers, publishes numbered messages to all of
//! them at once, and closes.
//!
//! ```text
//! cargo run -p shmchan --example broadcast_publisher -- /tmp/ticks.sock 3 100000
//! cargo run -p shmchan --example broadcast_subscriber -- /tmp/ticks.sock   # three times
//! ```
//!
//! `--overwrite` (last) makes it never wait for a slow subscriber, which
//! then reports how many messages it lost; by default it waits for the
//! slowest (lossless).

use std::process::ExitCode;
use std::time::Duration;

use shmchan::broadcast::{Listener, Options, Policy};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (path, subscribers, messages, policy) = match &args[..] {
        [path, n, m, rest @ ..] if rest.len() <= 1 => {
            let policy = match rest.first().map(String::as_str) {
                None => Policy::Block,
                Some("--overwrite") => Policy::Overwrite,
                Some(_) => return usage(),
            };
            match (n.parse::<usize>(), m.parse::<u64>()) {
                (Ok(n), Ok(m)) if n > 0 => (path, n, m, policy),
                _ => return usage(),
            }
        }
        _ => return usage(),
    };
    match publish(path, subscribers, messages, policy) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn publish(
    path: &str,
    subscribers: usize,
    messages: u64,
    policy: Policy,
) -> Result<(), shmchan::Error> {
    let mut publisher = Options::new()
        .capacity(1024)
        .message_size(64)
        .policy(policy)
        .create_publisher()?;
    let listener = Listener::bind(&publisher, path)?;
    eprintln!("listening on {path}");
    for _ in 0..subscribers {
        let peer = listener.accept()?;
        eprintln!("pid {} subscribed", peer.pid);
    }
    // Each has its descriptors; wait until each took its slot.
    while publisher.subscribers() < subscribers {
        std::thread::sleep(Duration::from_millis(1));
    }
    for seq in 0..messages {
        // Written in place, in the ring every subscriber reads: no copy.
        let mut msg = publisher.loan(64)?;
        msg[..8].copy_from_slice(&seq.to_le_bytes());
        msg[8..].fill(seq as u8);
        msg.commit();
    }
    eprintln!("published {messages}");
    Ok(()) // dropping the publisher closes the broadcast
}

fn usage() -> ExitCode {
    eprintln!("usage: broadcast_publisher SOCKET SUBSCRIBERS MESSAGES [--overwrite]");
    ExitCode::from(2)
}
