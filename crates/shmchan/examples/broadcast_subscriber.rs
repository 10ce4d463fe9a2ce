//! A broadcast subscriber: joins the publisher's rendezvous, receives
//! until the publisher closes, checks every message, and says how many
//! it received (and, under `--overwrite`, lost). See
//! `broadcast_publisher.rs`.

use std::process::ExitCode;

use shmchan::Error;
use shmchan::broadcast::Options;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path] = &args[..] else {
        eprintln!("usage: broadcast_subscriber SOCKET");
        return ExitCode::from(2);
    };
    match subscribe(path) {
        Ok((received, lost)) => {
            println!("received {received} messages, {lost} lost");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn subscribe(path: &str) -> Result<(u64, u64), Error> {
    let mut sub = Options::new().subscribe(path)?;
    let (mut next, mut received, mut lost) = (sub.position(), 0, 0);
    let mut buf = [0u8; 64];
    loop {
        match sub.recv_into(&mut buf) {
            Ok(64)
                if buf[..8] == next.to_le_bytes() && buf[8..].iter().all(|&b| b == next as u8) =>
            {
                next += 1;
                received += 1;
            }
            Ok(_) => return Err(Error::Corrupt("a message that was not published")),
            Err(Error::Lagged(n)) => {
                next += n;
                lost += n;
            }
            Err(Error::Closed) => return Ok((received, lost)),
            Err(e) => return Err(e),
        }
    }
}
