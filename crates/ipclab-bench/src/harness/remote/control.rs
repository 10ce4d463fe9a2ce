//! The control connection between `ipclab run --remote` (the client host)
//! and `ipclab serve` (the server host): JSON lines over TCP, one message a
//! line, each at most [`MAX_LINE`] bytes.
//!
//! ```text
//! client                                    server
//! hello {protocol, ipclab_version,
//!        schema, token, run}          ->
//!                                     <-    welcome {protocol, ipclab_version, schema}
//!                                           | refused {reason}
//! cell {spec}                         ->
//!                                     <-    ready {reach} | failed {error}
//!   (the client side connects the channel to `reach`; after its warm-up)
//! window {first_seq}                  ->
//!                                     <-    report {server} | failed {error}
//! ```
//!
//! One cell per connection: every cell's supervisor (`ipclab __cell`)
//! opens its own, so a supervisor that dies takes its connection with it
//! and the server sees the end at once. The `run` in `hello` ties a run's
//! cells together, so that the server refuses another run's while one is
//! going on. Both ends check `protocol`, `ipclab_version` and `schema` and
//! refuse a mismatch naming both; anything that is not such a line (a web
//! server, random bytes, a line too long) is refused as garbage.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use crate::harness::spec::{CellSpec, SideReport};

/// Version of this protocol; both ends must speak the same.
pub const PROTOCOL: u32 = 1;
/// The longest line either end accepts (a report with a full histogram
/// fits many times over).
pub const MAX_LINE: usize = 4 << 20;

/// This build's ipclab version.
pub fn ipclab_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// One message of the protocol.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Msg {
    Hello {
        protocol: u32,
        ipclab_version: String,
        schema: u32,
        token: String,
        /// Random, the same for every cell of one `ipclab run`.
        run: String,
    },
    Welcome {
        protocol: u32,
        ipclab_version: String,
        schema: u32,
    },
    Refused {
        reason: String,
    },
    Cell {
        spec: Box<CellSpec>,
    },
    /// How the client reaches the server's half (see `CrossHost::listen`).
    Ready {
        reach: serde_json::Value,
    },
    /// The client side's first measured message (`harness::window`).
    Window {
        first_seq: u64,
    },
    Report {
        server: Box<SideReport>,
    },
    Failed {
        error: String,
    },
    /// The run is over: the server is free for another.
    Done,
}

impl Msg {
    pub fn hello(token: &str, run: &str) -> Msg {
        Msg::Hello {
            protocol: PROTOCOL,
            ipclab_version: ipclab_version().into(),
            schema: crate::results::SCHEMA,
            token: token.into(),
            run: run.into(),
        }
    }

    pub fn welcome() -> Msg {
        Msg::Welcome {
            protocol: PROTOCOL,
            ipclab_version: ipclab_version().into(),
            schema: crate::results::SCHEMA,
        }
    }

    /// The line this message is sent as, newline included.
    pub fn line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).expect("a control message always serialises");
        line.push(b'\n');
        line
    }
}

/// Why a peer's `hello` or `welcome` does not match this build, if it does
/// not: one phrase naming both sides' versions.
pub fn mismatch(value: &serde_json::Value) -> Option<String> {
    let ours = (
        PROTOCOL as u64,
        ipclab_version(),
        crate::results::SCHEMA as u64,
    );
    let theirs = (
        value.get("protocol").and_then(|v| v.as_u64()),
        value.get("ipclab_version").and_then(|v| v.as_str()),
        value.get("schema").and_then(|v| v.as_u64()),
    );
    match theirs {
        (Some(p), Some(v), Some(s)) if (p, v, s) == ours => None,
        (p, v, s) => Some(format!(
            "ipclab {} (control protocol {}, schema {}) on the other end, ipclab {} (control \
             protocol {}, schema {}) here",
            v.unwrap_or("?"),
            p.map_or("?".into(), |p| p.to_string()),
            s.map_or("?".into(), |s| s.to_string()),
            ours.1,
            ours.0,
            ours.2
        )),
    }
}

/// The other end closed the connection between two lines: the error of
/// [`Conn::recv_value`] and [`Conn::recv`] then (see [`closed`]).
#[derive(Debug)]
pub struct Closed(String);

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Closed {}

/// Whether `e` says that the other end closed the connection between two
/// lines (rather than in the middle of one, or with garbage).
pub fn closed(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Closed>().is_some()
}

/// One end of a control connection.
pub struct Conn {
    stream: TcpStream,
    /// Bytes read past the last line taken.
    buf: Vec<u8>,
    /// Who the other end is, for messages.
    pub peer: String,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Conn {
        let peer = stream
            .peer_addr()
            .map_or_else(|_| "the peer".into(), |a| a.to_string());
        Conn {
            stream,
            buf: Vec::new(),
            peer,
        }
    }

    /// A connection accepted by `serve`'s loop (non-blocking there), with
    /// what it read past the last line taken, in blocking mode again.
    pub fn with_buffered(stream: TcpStream, buf: Vec<u8>) -> Conn {
        let _ = stream.set_nonblocking(false);
        let mut conn = Conn::new(stream);
        conn.buf = buf;
        conn
    }

    /// Connects to `address` (HOST:PORT) within `timeout`.
    pub fn connect(address: &str, timeout: Duration) -> Result<Conn> {
        let addrs: Vec<SocketAddr> = address
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {address}"))?
            .collect();
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    let mut conn = Conn::new(stream);
                    conn.peer = address.to_string();
                    return Ok(conn);
                }
                Err(e) => last = Some(e),
            }
        }
        let e = last.unwrap_or_else(|| io::Error::other("no address"));
        Err(match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => anyhow!(
                "cannot reach the server at {address}: no answer within {} s",
                timeout.as_secs_f64()
            ),
            _ => anyhow!("cannot reach the server at {address}: {e}"),
        })
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Sends one message, giving up after `timeout`.
    pub fn send(&mut self, msg: &Msg, timeout: Duration) -> Result<()> {
        self.stream.set_write_timeout(Some(nonzero(timeout)))?;
        self.stream
            .write_all(&msg.line())
            .with_context(|| format!("writing to the control connection with {}", self.peer))
    }

    /// The next line as JSON, waiting at most `timeout`. End of stream,
    /// a timeout, a line too long or one that is not JSON is an error
    /// naming it.
    pub fn recv_value(&mut self, timeout: Duration) -> Result<serde_json::Value> {
        let deadline = later(Instant::now(), timeout);
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                return serde_json::from_slice(&line).map_err(|_| {
                    anyhow!(
                        "garbage on the control connection with {}: {}",
                        self.peer,
                        shown(&line)
                    )
                });
            }
            if self.buf.len() > MAX_LINE {
                bail!(
                    "garbage on the control connection with {}: a line longer than {} bytes",
                    self.peer,
                    MAX_LINE
                );
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "no answer on the control connection with {} within {} s",
                    self.peer,
                    timeout.as_secs_f64()
                );
            }
            self.stream.set_read_timeout(Some(nonzero(left)))?;
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) if self.buf.is_empty() => {
                    return Err(anyhow!(Closed(format!(
                        "{} closed the control connection",
                        self.peer
                    ))));
                }
                Ok(0) => bail!(
                    "garbage on the control connection with {}: {} (no end of line before it closed)",
                    self.peer,
                    shown(&self.buf)
                ),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("reading the control connection with {}", self.peer)
                    });
                }
            }
        }
    }

    /// The next message, waiting at most `timeout`.
    pub fn recv(&mut self, timeout: Duration) -> Result<Msg> {
        let value = self.recv_value(timeout)?;
        serde_json::from_value(value.clone()).map_err(|e| {
            anyhow!(
                "garbage on the control connection with {}: {e}: {}",
                self.peer,
                shown(value.to_string().as_bytes())
            )
        })
    }
}

/// The start of a line, printable, for an error message.
pub fn shown(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(&line[..line.len().min(60)]);
    let text: String = text
        .trim_end()
        .chars()
        .map(|c| if c.is_control() { '.' } else { c })
        .collect();
    format!("'{text}'{}", if line.len() > 60 { "..." } else { "" })
}

/// `now + d`, or a year from now where `d` is past what an `Instant` can
/// hold (`--timeout 100000000h`).
pub fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 86_400))
}

fn nonzero(d: Duration) -> Duration {
    d.max(Duration::from_millis(1))
}

/// Client: opens a control connection to `address` and says hello; an
/// error (one line) for an unreachable server, a refusal (wrong token,
/// busy), another version, or something that is not an ipclab server.
pub fn handshake(address: &str, token: &str, run: &str, timeout: Duration) -> Result<Conn> {
    let mut conn = Conn::connect(address, timeout)?;
    conn.send(&Msg::hello(token, run), timeout)?;
    let value = conn
        .recv_value(timeout)
        .map_err(|e| anyhow!("{address} did not answer as an ipclab server: {e:#}"))?;
    match value.get("type").and_then(|t| t.as_str()) {
        Some("refused") => {
            let reason = value.get("reason").and_then(|r| r.as_str()).unwrap_or("?");
            bail!("the server at {address} refused: {reason}")
        }
        Some("welcome") => {
            if let Some(why) = mismatch(&value) {
                bail!("the server at {address} runs another version: {why}");
            }
            Ok(conn)
        }
        _ => bail!(
            "{address} did not answer as an ipclab server (it said {})",
            shown(value.to_string().as_bytes())
        ),
    }
}

/// Constant-time comparison of two tokens (no early exit on the first
/// differing byte).
pub fn same_token(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = (a.len() != b.len()) as u8;
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// 32 random hex digits (128 bits), for tokens and run names.
pub fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the kernel's random numbers");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "abcd"));
        assert!(!same_token("", "a"));
    }

    #[test]
    fn a_mismatch_names_both_versions() {
        let ours = serde_json::to_value(Msg::welcome()).unwrap();
        assert_eq!(mismatch(&ours), None);
        let mut other = ours.clone();
        other["ipclab_version"] = "9.9.9".into();
        let why = mismatch(&other).unwrap();
        assert!(
            why.contains("9.9.9") && why.contains(ipclab_version()),
            "{why}"
        );
        assert!(mismatch(&serde_json::json!({"type": "welcome"})).is_some());
    }

    #[test]
    fn messages_round_trip_as_one_line() {
        let line = Msg::Window { first_seq: 7 }.line();
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        let back: Msg = serde_json::from_slice(&line).unwrap();
        assert!(matches!(back, Msg::Window { first_seq: 7 }));
    }
}
