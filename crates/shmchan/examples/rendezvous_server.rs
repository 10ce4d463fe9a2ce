//! An echo server over a shmchan rendezvous: every client that connects
//! gets its own pair of channels, served by a thread of its own.
//!
//! ```text
//! cargo run -p shmchan --example rendezvous_server -- /tmp/echo.sock
//! cargo run -p shmchan --example rendezvous_client -- /tmp/echo.sock hello world
//! ```
//!
//! Kill the server (even with `kill -9`) and start it again: the new one
//! reclaims the path. Restart a client as often as you like: each run is a
//! new connection.

use std::process::ExitCode;

use shmchan::{Error, Listener};

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: rendezvous_server SOCKET-PATH");
        return ExitCode::from(2);
    };
    let listener = match Listener::bind(&path) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("error: binding {}: {e}", path.to_string_lossy());
            return ExitCode::FAILURE;
        }
    };
    eprintln!("listening on {}", path.to_string_lossy());
    for conn in listener.incoming() {
        let conn = match conn {
            Ok(conn) => conn,
            // One client that failed its handshake (or was refused): the
            // next one.
            Err(e) => {
                eprintln!("a client was not served: {e}");
                continue;
            }
        };
        let peer = conn.peer();
        eprintln!("pid {} (uid {}) connected", peer.pid, peer.uid);
        std::thread::spawn(move || {
            let (mut tx, mut rx) = conn.into_split();
            let end = loop {
                match rx.recv() {
                    Ok(msg) => {
                        if let Err(e) = tx.send(&msg) {
                            break e;
                        }
                    }
                    Err(e) => break e,
                }
            };
            match end {
                Error::Closed => eprintln!("pid {} left", peer.pid),
                e => eprintln!("pid {}: {e}", peer.pid),
            }
        });
    }
    unreachable!("incoming never ends")
}
