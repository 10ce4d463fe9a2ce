//! A client of `rendezvous_server`: connects, sends each argument as a
//! message, and prints what comes back.
//!
//! ```text
//! cargo run -p shmchan --example rendezvous_client -- /tmp/echo.sock hello world
//! ```

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: rendezvous_client SOCKET-PATH [MESSAGE...]");
        return ExitCode::from(2);
    };
    match run(&path, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}: {e}", path.to_string_lossy());
            ExitCode::FAILURE
        }
    }
}

fn run(
    path: &std::ffi::OsStr,
    messages: impl Iterator<Item = std::ffi::OsString>,
) -> Result<(), shmchan::Error> {
    let mut conn = shmchan::connect(path)?;
    let peer = conn.peer();
    eprintln!("connected to pid {} (uid {})", peer.pid, peer.uid);
    for msg in messages {
        conn.sender().send(msg.as_encoded_bytes())?;
        let back = conn.receiver().recv()?;
        println!("{}", String::from_utf8_lossy(&back));
    }
    Ok(())
}
