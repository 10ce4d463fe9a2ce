//! An echo server over a shmchan rendezvous: it listens on a Unix socket
//! path, and every client that connects gets a pair of channels of its
//! own, served by a thread that sends each message back.
//!
//! ```text
//! cargo run -p shmchan --example rendezvous_server -- /tmp/echo.sock
//! cargo run -p shmchan --example rendezvous_client -- /tmp/echo.sock hello world
//! ```
//!
//! Given a number after the path, it serves that many clients, waits for
//! them to leave and exits. Kill it (even with `kill -9`) and start it
//! again: the new one reclaims the path. Restart a client as often as you
//! like: each run is a new connection.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use shmchan::{Connection, Error, Listener};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let (path, clients) = match &args[..] {
        [path] => (Path::new(path), usize::MAX),
        [path, n] => match n.to_str().and_then(|n| n.parse().ok()) {
            Some(n) => (Path::new(path), n),
            None => return usage(),
        },
        _ => return usage(),
    };
    let listener = match Listener::bind(path) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("error: binding {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    eprintln!("listening on {}", path.display());
    // A thread per client; the scope waits for them all to leave.
    std::thread::scope(|scope| {
        let mut served = 0;
        while served < clients {
            match listener.accept() {
                Ok(conn) => {
                    served += 1;
                    scope.spawn(move || echo(conn));
                }
                // A client that failed its handshake, or was refused: the
                // next one.
                Err(e) => eprintln!("a client was not served: {e}"),
            }
        }
    });
    // Returning drops the listener, which removes the socket file.
    ExitCode::SUCCESS
}

/// Sends every message back, until the client leaves.
fn echo(conn: Connection) {
    let peer = conn.peer();
    eprintln!("pid {} (uid {}) connected", peer.pid, peer.uid);
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
}

fn usage() -> ExitCode {
    eprintln!("usage: rendezvous_server SOCKET-PATH [CLIENTS]");
    ExitCode::from(2)
}
