//! An echo server that serves every client from one thread: the
//! receivers of all connections are in one `shmchan::WaitSet`, and an
//! event loop waits with `poll(2)` on the listener (new clients) and on
//! the set's descriptor (requests) together.
//!
//! ```text
//! cargo run -p shmchan --example waitset_server -- /tmp/echo.sock
//! cargo run -p shmchan --example rendezvous_client -- /tmp/echo.sock hello world
//! ```
//!
//! Given a number after the path, it serves that many clients, waits for
//! them to leave and exits. A client that dies is reported and dropped;
//! the others go on.

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::process::ExitCode;

use rustix::event::{PollFd, PollFlags, poll};
use shmchan::{Error, Listener, Receiver, Sender, WaitSet};

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
    let listener = match Listener::bind(path).and_then(|l| {
        l.set_nonblocking(true)?;
        Ok(l)
    }) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("error: binding {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    eprintln!("listening on {}", path.display());
    match serve(&listener, clients) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The event loop: accepts clients while fewer than `clients` came, and
/// answers every request; returns once every client that came has left.
fn serve(listener: &Listener, clients: usize) -> Result<(), Error> {
    // Under each client's number: its receiver in the set, its sender and
    // pid here.
    let mut set: WaitSet<usize> = WaitSet::new();
    let mut replies: Vec<Option<(Sender, u32)>> = Vec::new();
    let mut ready = Vec::new();
    let mut came = 0;
    while came < clients || !set.is_empty() {
        // Announce the ends asleep on their bells, then sleep on both
        // descriptors: a ring of any client's bell, or a new client.
        if set.is_empty() || set.arm()? {
            let mut fds = vec![PollFd::new(listener, PollFlags::IN)];
            if !set.is_empty() {
                fds.push(PollFd::from_borrowed_fd(set.ready_fd()?, PollFlags::IN));
            }
            if came == clients {
                fds.remove(0);
            }
            match poll(&mut fds, None) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if came < clients {
            came += accept(listener, &mut set, &mut replies);
        }
        set.try_wait(&mut ready)?;
        for &key in &ready {
            let rx: &mut Receiver = set.receiver(key).expect("in the set");
            let (tx, pid) = replies[key].as_mut().expect("a client's sender");
            let end = match rx.try_recv() {
                Ok(msg) => match tx.send(&msg) {
                    Ok(()) => continue,
                    Err(e) => e,
                },
                // Part of a long message: it comes whole later.
                Err(e) if e.is_would_block() => continue,
                Err(e) => e,
            };
            match end {
                Error::Closed => eprintln!("pid {pid} left"),
                e => eprintln!("pid {pid}: {e}"),
            }
            set.remove::<Receiver>(key);
            replies[key] = None;
        }
    }
    Ok(())
}

/// Accepts the clients that wait; returns how many came.
fn accept(
    listener: &Listener,
    set: &mut WaitSet<usize>,
    replies: &mut Vec<Option<(Sender, u32)>>,
) -> usize {
    let mut came = 0;
    loop {
        match listener.accept() {
            Ok(conn) => {
                let peer = conn.peer();
                eprintln!("pid {} (uid {}) connected", peer.pid, peer.uid);
                let (tx, rx) = conn.into_split();
                let key = replies
                    .iter()
                    .position(Option::is_none)
                    .unwrap_or(replies.len());
                if key == replies.len() {
                    replies.push(None);
                }
                match set.add(key, rx) {
                    Ok(()) => replies[key] = Some((tx, peer.pid)),
                    // More clients than the set holds: this one is closed.
                    Err(e) => eprintln!("pid {}: not served: {e}", peer.pid),
                }
                came += 1;
            }
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => return came,
            // A client that failed its handshake, or was refused.
            Err(e) => eprintln!("a client was not served: {e}"),
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: waitset_server SOCKET-PATH [CLIENTS]");
    ExitCode::from(2)
}
