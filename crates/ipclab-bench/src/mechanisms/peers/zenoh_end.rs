//! One side of a zenoh channel: a zenoh session in peer mode, a publisher
//! of this side's messages and a subscriber to the other side's, on keys
//! no other channel uses (`ipclab/<32 hex>/to-server/*`,
//! `ipclab/<32 hex>/to-client/*`).
//!
//! Under each side's prefix, `m` carries messages, `hello` opens the
//! channel and `end` closes it:
//!
//! - Opening: a publication reaches only the subscribers a session knows
//!   of, and a new session learns of its peer's a moment after it
//!   connects. So the client publishes `hello` every [`HELLO_EVERY`] until
//!   one comes back; the server answers each with one. Each session has
//!   declared its subscriber before its first `hello`, on the same link,
//!   so by the time a `hello` arrives the route for messages both ways is
//!   known. Later `hello`s are skipped.
//! - Closing: `finish` publishes `end`; the receiver answers it with an
//!   `end` of its own and reports [`Received::Closed`]; `finish` waits for
//!   that answer (or its peer's exit), so that the session is not closed
//!   with the last messages still queued.
//! - A dead peer: zenoh keeps waiting for a peer that died (it may come
//!   back), so every wait is sliced and looks at a [`Lifeline`] between
//!   slices.
//!
//! Every message is published reliably (zenoh's default) with
//! `CongestionControl::Block`:
//! a full queue makes the publisher wait, never drops a message.

use std::io;
use std::time::{Duration, Instant};

use zenoh::Wait;
use zenoh::handlers::FifoChannelHandler;
use zenoh::pubsub::{Publisher, Subscriber};
use zenoh::qos::CongestionControl;
use zenoh::sample::Sample;
use zenoh::{Config, Session};

use crate::mechanisms::lifeline::{Lifeline, WAIT_SLICE};
use crate::transport::{Check, Endpoint, Fill, Received, protocol_error};

/// How often the client says hello until the server answers.
const HELLO_EVERY: Duration = Duration::from_millis(20);

/// How this side's session finds the other.
pub enum Link {
    /// Listens on this zenoh endpoint (`tcp/ADDR:PORT`); the server.
    Listen(String),
    /// Connects to it; the client.
    Connect(String),
}

fn zerr(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("zenoh: {what}: {e}"))
}

/// zenoh's own configuration, but for where it listens and connects: no
/// scouting (nothing on the network but the one link), and shared memory
/// as `shm` says.
pub fn config(link: &Link, shm: bool) -> io::Result<Config> {
    let mut c = Config::default();
    let set = |c: &mut Config, key: &str, value: String| {
        c.insert_json5(key, &value)
            .map_err(|e| zerr(&format!("config {key}"), e))
    };
    set(&mut c, "mode", "\"peer\"".into())?;
    set(&mut c, "scouting/multicast/enabled", "false".into())?;
    set(&mut c, "scouting/gossip/enabled", "false".into())?;
    let (listen, connect) = match link {
        Link::Listen(e) => (format!("[\"{e}\"]"), "[]".to_string()),
        Link::Connect(e) => ("[]".to_string(), format!("[\"{e}\"]")),
    };
    set(&mut c, "listen/endpoints", listen)?;
    set(&mut c, "connect/endpoints", connect)?;
    set(&mut c, "transport/shared_memory/enabled", shm.to_string())?;
    Ok(c)
}

pub struct ZenohEnd {
    // Dropped in this order: the ports, then the session.
    publisher: Publisher<'static>,
    control: Publisher<'static>,
    subscriber: Subscriber<FifoChannelHandler<Sample>>,
    session: Session,
    /// The peer's prefix, `.../to-server` or `.../to-client`.
    theirs: String,
    life: Lifeline,
    rounds: u64,
    finished: bool,
}

impl ZenohEnd {
    /// Opens the session and the channel; `key` is the channel's prefix
    /// (`ipclab/<32 hex>`).
    pub fn open(link: Link, key: &str, shm: bool, life: Lifeline) -> io::Result<ZenohEnd> {
        let server = matches!(link, Link::Listen(_));
        let session = zenoh::open(config(&link, shm)?)
            .wait()
            .map_err(|e| zerr("opening the session", e))?;
        let (ours, theirs) = if server {
            (format!("{key}/to-client"), format!("{key}/to-server"))
        } else {
            (format!("{key}/to-server"), format!("{key}/to-client"))
        };
        let subscriber = session
            .declare_subscriber(format!("{theirs}/*"))
            .wait()
            .map_err(|e| zerr("subscribing", e))?;
        let port = |suffix: &str| {
            session
                .declare_publisher(format!("{ours}/{suffix}"))
                .congestion_control(CongestionControl::Block)
                .wait()
                .map_err(|e| zerr("declaring a publisher", e))
        };
        let publisher = port("m")?;
        let control = port("ctl")?;
        let mut end = ZenohEnd {
            publisher,
            control,
            subscriber,
            session,
            theirs,
            life,
            rounds: 0,
            finished: false,
        };
        end.hello(server)?;
        Ok(end)
    }

    fn say(&self, word: &'static str) -> io::Result<()> {
        self.control
            .put(word)
            .wait()
            .map_err(|e| zerr(&format!("publishing {word}"), e))
    }

    /// What the next sample is: `Some` of it, or `None` after `wait`
    /// without one.
    fn next(&self, wait: Duration) -> io::Result<Option<Sample>> {
        self.subscriber
            .recv_timeout(wait)
            .map_err(|e| zerr("receiving", e))
    }

    fn is(&self, sample: &Sample, suffix: &str) -> bool {
        let key = sample.key_expr().as_str();
        key.strip_prefix(self.theirs.as_str())
            .and_then(|k| k.strip_prefix('/'))
            == Some(suffix)
    }

    fn word(sample: &Sample) -> Vec<u8> {
        sample.payload().to_bytes().into_owned()
    }

    /// The opening handshake (see the module's documentation).
    fn hello(&mut self, server: bool) -> io::Result<()> {
        let mut last = Instant::now() - HELLO_EVERY;
        loop {
            if !server && last.elapsed() >= HELLO_EVERY {
                self.say("hello")?;
                last = Instant::now();
            }
            let wait = if server { WAIT_SLICE } else { HELLO_EVERY };
            match self.next(wait)? {
                Some(s) if self.is(&s, "ctl") && Self::word(&s) == b"hello" => {
                    if server {
                        self.say("hello")?;
                    }
                    return Ok(());
                }
                Some(s) => {
                    return Err(protocol_error(format!(
                        "zenoh: {} before the channel was open",
                        s.key_expr()
                    )));
                }
                None => self.life.check("the peer's hello")?,
            }
        }
    }
}

impl Endpoint for ZenohEnd {
    fn send(&mut self, len: usize, fill: Fill<'_>) -> io::Result<()> {
        if self.finished {
            return Err(protocol_error("send after finish"));
        }
        // A fresh buffer per message, handed to zenoh without a copy (it
        // keeps it until sent), as a user of `put` does.
        let mut buf = vec![0u8; len];
        fill(0, &mut buf);
        self.publisher
            .put(buf)
            .wait()
            .map_err(|e| zerr("publishing a message", e))
    }

    fn recv(&mut self, len: usize, check: Check<'_>) -> io::Result<Received> {
        loop {
            let Some(sample) = self.next(WAIT_SLICE)? else {
                self.life.check("a message")?;
                continue;
            };
            if self.is(&sample, "m") {
                let bytes = sample.payload().to_bytes();
                if bytes.len() != len {
                    return Err(protocol_error(format!(
                        "zenoh: a message of {} bytes, expected {len}",
                        bytes.len()
                    )));
                }
                check(0, &bytes);
                self.rounds += 1;
                return Ok(Received::Message);
            }
            match Self::word(&sample).as_slice() {
                // A late hello of the opening.
                b"hello" => {}
                b"end" => {
                    self.say("end")?;
                    return Ok(Received::Closed);
                }
                other => {
                    return Err(protocol_error(format!(
                        "zenoh: unexpected {} ({} bytes)",
                        sample.key_expr(),
                        other.len()
                    )));
                }
            }
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        self.say("end")?;
        loop {
            match self.next(WAIT_SLICE)? {
                Some(s) if Self::word(&s) == b"end" => return Ok(()),
                // Late hellos; no message may follow our end.
                Some(s) if self.is(&s, "ctl") => {}
                Some(s) => {
                    return Err(protocol_error(format!(
                        "zenoh: {} after this side finished",
                        s.key_expr()
                    )));
                }
                // The peer took everything and closed first.
                None if self.life.peer_gone()? => return Ok(()),
                None => {}
            }
        }
    }

    fn rounds(&self) -> u64 {
        self.rounds
    }
}

impl Drop for ZenohEnd {
    fn drop(&mut self) {
        let _ = self.session.close().wait();
    }
}
