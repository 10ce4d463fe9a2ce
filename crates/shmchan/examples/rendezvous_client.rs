//! A client of `rendezvous_server`: connects, sends each message given
//! after the path ("hello" and "world" if none), and prints each answer.
//!
//! ```text
//! cargo run -p shmchan --example rendezvous_client -- /tmp/echo.sock hello world
//! ```

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: rendezvous_client SOCKET-PATH [MESSAGE...]");
        return ExitCode::from(2);
    };
    let mut messages: Vec<OsString> = args.collect();
    if messages.is_empty() {
        messages = vec!["hello".into(), "world".into()];
    }
    match run(Path::new(&path), &messages) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}: {e}", path.to_string_lossy());
            ExitCode::FAILURE
        }
    }
}

fn run(path: &Path, messages: &[OsString]) -> Result<(), shmchan::Error> {
    let mut conn = shmchan::connect(path)?;
    let peer = conn.peer();
    eprintln!("connected to pid {} (uid {})", peer.pid, peer.uid);
    for msg in messages {
        conn.sender().send(msg.as_encoded_bytes())?;
        let answer = conn.receiver().recv()?;
        println!("{}", String::from_utf8_lossy(&answer));
    }
    // Dropping the connection closes both channels: the server's thread
    // gets `Closed`.
    Ok(())
}
