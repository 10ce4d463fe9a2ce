//! Fault injection for the kill tests (`tests/kill.rs`): the supervisor
//! signals one side at a chosen moment, so that its peer meets a dead or
//! frozen process at an arbitrary instruction of a transfer.
//!
//! - `IPCLAB_FAULT_KILL=<server|client>:<delay_us>[:<mechanism>]`: SIGKILL
//!   that side `delay_us` microseconds after both sides were forked;
//! - `IPCLAB_FAULT_STOP=<server|client>:<delay_us>[:<mechanism>]`: SIGSTOP
//!   it instead (the cell then ends by its `--timeout`).
//!
//! With a mechanism named, cells of other mechanisms (the limits measured
//! in every run, say) are left alone. For tests only: not in `--help`, and
//! inert when unset.

use anyhow::{Result, bail};
use rustix::process::Signal;

/// One planned signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub signal: Signal,
    /// Whether the server (else the client) gets it.
    pub server: bool,
    pub delay_ns: u64,
}

impl Fault {
    /// The fault the environment asks for in a cell of `mechanism`, if any.
    pub fn from_env(mechanism: &str) -> Result<Option<Fault>> {
        let mut found = None;
        for (var, signal) in [
            ("IPCLAB_FAULT_KILL", Signal::KILL),
            ("IPCLAB_FAULT_STOP", Signal::STOP),
        ] {
            let Ok(value) = std::env::var(var) else {
                continue;
            };
            if let Some(fault) = parse(&value, signal, mechanism)
                .map_err(|why| anyhow::anyhow!("{var}={value}: {why}"))?
            {
                if found.is_some() {
                    bail!("IPCLAB_FAULT_KILL and IPCLAB_FAULT_STOP both apply to {mechanism}");
                }
                found = Some(fault);
            }
        }
        Ok(found)
    }

    pub fn side(&self) -> &'static str {
        if self.server { "server" } else { "client" }
    }

    /// What the supervisor did, for the cell's error.
    pub fn describe(&self) -> String {
        let what = if self.signal == Signal::KILL {
            "killed (SIGKILL)"
        } else {
            "stopped (SIGSTOP)"
        };
        format!(
            "fault injection: the {} was {what} {} µs after the fork",
            self.side(),
            self.delay_ns / 1000
        )
    }
}

fn parse(value: &str, signal: Signal, mechanism: &str) -> Result<Option<Fault>, String> {
    let mut parts = value.split(':');
    let server = match parts.next() {
        Some("server") => true,
        Some("client") => false,
        _ => return Err("expected <server|client>:<delay_us>[:<mechanism>]".into()),
    };
    let delay_us: u64 = parts
        .next()
        .and_then(|d| d.parse().ok())
        .ok_or("the delay is a whole number of microseconds")?;
    match parts.next() {
        Some(only) if only != mechanism => return Ok(None),
        _ => {}
    }
    if parts.next().is_some() {
        return Err("too many fields".into());
    }
    Ok(Some(Fault {
        signal,
        server,
        delay_ns: delay_us.saturating_mul(1000),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_side_delay_and_mechanism() {
        assert_eq!(
            parse("client:1500", Signal::KILL, "pipe").unwrap(),
            Some(Fault {
                signal: Signal::KILL,
                server: false,
                delay_ns: 1_500_000
            })
        );
        assert!(
            parse("server:0:pipe", Signal::STOP, "pipe")
                .unwrap()
                .is_some_and(|f| f.server)
        );
        assert_eq!(parse("server:0:fifo", Signal::STOP, "pipe").unwrap(), None);
        for bad in ["", "both:1", "server", "server:x", "server:1:pipe:extra"] {
            assert!(parse(bad, Signal::KILL, "pipe").is_err(), "{bad}");
        }
    }
}
