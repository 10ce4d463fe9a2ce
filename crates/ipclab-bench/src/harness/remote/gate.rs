//! `ipclab serve`'s door: the token of a `hello`, checked before anything
//! else is said, and a delay that grows with each wrong token from the
//! same address.
//!
//! A wrong token is answered `wrong token` and nothing more (no version,
//! no hint). The n-th wrong token in a row from one address (an IPv6
//! address counts by its /64, where one host may hold many) makes the
//! next hello from there wait [`delay`]`(n)` before its token is checked:
//! 100 ms, doubling, at most [`MAX_DELAY`]. The refusal says so, so that a
//! client that mistyped knows when to try again. The wait holds only that
//! address's hellos; the server goes on with everyone else. A right token
//! clears the address's count, as does [`FORGET`] without a wrong one.
//!
//! The log gets the 1st, 2nd, 4th, 8th... wrong token of an address (with
//! the count), not a line per try: guessing at one try per
//! [`MAX_DELAY`] writes a few lines a day.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::control::same_token;

/// The wait after the first wrong token.
pub const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest wait between two checked tokens from one address.
pub const MAX_DELAY: Duration = Duration::from_secs(10);
/// An address's count of wrong tokens is forgotten after this long without
/// another.
pub const FORGET: Duration = Duration::from_secs(600);
/// Addresses remembered at most (the ones quiet longest go first).
const MAX_ADDRESSES: usize = 4096;

/// The wait after `wrong` wrong tokens in a row.
pub fn delay(wrong: u32) -> Duration {
    let shift = wrong.saturating_sub(1).min(16);
    FIRST_DELAY.saturating_mul(1 << shift).min(MAX_DELAY)
}

/// What a hello's first field says.
pub enum Verdict {
    /// The right token: the rest of the hello may be looked at.
    Let,
    /// A wrong token, the `count`-th in a row from this address; the next
    /// is checked `delay` after this one.
    Wrong { count: u32, delay: Duration },
    /// Not a hello with a token at all (nothing was tried).
    Garbage(String),
}

impl Verdict {
    /// The refusal sent for a wrong token: no version, no hint, the count
    /// and the wait.
    pub fn wrong_reason(count: u32, delay: Duration) -> String {
        format!(
            "wrong token ({count} in a row from this address; the next is checked {} s after \
             this one)",
            delay.as_secs_f64()
        )
    }
}

/// One address's wrong tokens.
struct Strikes {
    wrong: u32,
    /// The next token from there is checked no earlier than this.
    next: Instant,
    /// The last wrong token.
    last: Instant,
}

/// The token and each address's wrong tries.
pub struct Gate {
    token: String,
    addresses: HashMap<IpAddr, Strikes>,
}

impl Gate {
    pub fn new(token: &str) -> Gate {
        Gate {
            token: token.to_string(),
            addresses: HashMap::new(),
        }
    }

    /// When a hello from `ip` may have its token checked: `None` for now.
    pub fn turn(&self, ip: IpAddr, now: Instant) -> Option<Instant> {
        self.addresses
            .get(&key(ip))
            .map(|s| s.next)
            .filter(|&next| next > now)
    }

    /// Checks the token of `hello` (a JSON line from `ip`, whose turn it
    /// is), and nothing else. A wrong one is counted and, at the 1st,
    /// 2nd, 4th... of an address, logged.
    pub fn check(&mut self, ip: IpAddr, hello: &serde_json::Value, now: Instant) -> Verdict {
        if hello.get("type").and_then(|t| t.as_str()) != Some("hello") {
            return Verdict::Garbage(format!(
                "garbage on the control connection: expected hello, got {}",
                super::control::shown(hello.to_string().as_bytes())
            ));
        }
        let Some(token) = hello.get("token").and_then(|t| t.as_str()) else {
            return Verdict::Garbage(
                "garbage on the control connection: a hello without a token".into(),
            );
        };
        let key = key(ip);
        if same_token(token, &self.token) {
            self.addresses.remove(&key);
            return Verdict::Let;
        }
        self.forget(now);
        let strikes = self.addresses.entry(key).or_insert(Strikes {
            wrong: 0,
            next: now,
            last: now,
        });
        // Quiet for `FORGET`: a new count, whether or not `forget` ran
        // (it prunes only when the map is full).
        if now.saturating_duration_since(strikes.last) >= FORGET {
            strikes.wrong = 0;
        }
        strikes.wrong = strikes.wrong.saturating_add(1);
        strikes.last = now;
        let wait = delay(strikes.wrong);
        strikes.next = now + wait;
        let count = strikes.wrong;
        if count.is_power_of_two() {
            eprintln!(
                "serve: {ip}: refused: {} (logged at the 1st, 2nd, 4th, 8th... of an address)",
                Verdict::wrong_reason(count, wait)
            );
        }
        Verdict::Wrong { count, delay: wait }
    }

    /// Drops the addresses quiet for [`FORGET`], and the quietest ones
    /// beyond [`MAX_ADDRESSES`].
    fn forget(&mut self, now: Instant) {
        if self.addresses.len() < MAX_ADDRESSES {
            return;
        }
        self.addresses
            .retain(|_, s| now.saturating_duration_since(s.last) < FORGET);
        while self.addresses.len() >= MAX_ADDRESSES {
            let Some(quietest) = self
                .addresses
                .iter()
                .min_by_key(|(_, s)| s.last)
                .map(|(k, _)| *k)
            else {
                break;
            };
            self.addresses.remove(&quietest);
        }
    }
}

/// The address wrong tries are counted by: IPv4 (also mapped into IPv6)
/// as it is, IPv6 by its /64.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::V6(s.into())
            }
        },
    }
}

/// Counts the kinds of unauthenticated failures (silent, garbage, pushed
/// out) and says when one is worth a log line: the 1st, 2nd, 4th, 8th...
/// of its kind.
#[derive(Default)]
pub struct Tally(HashMap<&'static str, u64>);

impl Tally {
    /// Counts one of `kind`; `Some(count)` when it is to be logged.
    pub fn note(&mut self, kind: &'static str) -> Option<u64> {
        let n = self.0.entry(kind).or_insert(0);
        *n += 1;
        n.is_power_of_two().then_some(*n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(token: &str) -> serde_json::Value {
        serde_json::json!({"type": "hello", "token": token})
    }

    #[test]
    fn the_delay_doubles_up_to_its_cap() {
        assert_eq!(delay(1), FIRST_DELAY);
        assert_eq!(delay(2), FIRST_DELAY * 2);
        assert_eq!(delay(5), FIRST_DELAY * 16);
        assert_eq!(delay(40), MAX_DELAY);
        assert_eq!(delay(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn wrong_tokens_count_per_address_and_a_right_one_clears() {
        let mut gate = Gate::new("0123456789abcdef");
        let (a, b): (IpAddr, IpAddr) =
            ("198.18.0.1".parse().unwrap(), "198.18.0.2".parse().unwrap());
        let now = Instant::now();
        for n in 1..=3 {
            match gate.check(a, &hello("nope"), now) {
                Verdict::Wrong { count, delay: d } => assert_eq!((count, d), (n, delay(n))),
                _ => panic!("a wrong token let in"),
            }
        }
        assert!(gate.turn(a, now).is_some(), "a waits");
        assert!(gate.turn(b, now).is_none(), "b does not");
        assert!(matches!(
            gate.check(a, &hello("0123456789abcdef"), now),
            Verdict::Let
        ));
        assert!(gate.turn(a, now).is_none(), "cleared");
        assert!(matches!(
            gate.check(a, &serde_json::json!({"type": "hello"}), now),
            Verdict::Garbage(_)
        ));
    }

    /// The module's promise: an address's count is forgotten after
    /// `FORGET` without a wrong token, even while fewer than
    /// `MAX_ADDRESSES` are remembered (a typo a day later starts at 1,
    /// with the shortest wait, not where yesterday's left off).
    #[test]
    fn a_count_is_forgotten_after_forget() {
        let mut gate = Gate::new("0123456789abcdef");
        let a: IpAddr = "198.18.0.1".parse().unwrap();
        let now = Instant::now();
        for _ in 0..6 {
            gate.check(a, &hello("nope"), now);
        }
        let later = now + FORGET + Duration::from_secs(1);
        match gate.check(a, &hello("nope"), later) {
            Verdict::Wrong { count, delay: d } => assert_eq!((count, d), (1, FIRST_DELAY)),
            _ => panic!("a wrong token let in"),
        }
    }

    #[test]
    fn an_ipv6_host_counts_by_its_64() {
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let other: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(key(one), key(other));
        let mapped: IpAddr = "::ffff:198.18.0.1".parse().unwrap();
        assert_eq!(key(mapped), "198.18.0.1".parse::<IpAddr>().unwrap());
    }
}
