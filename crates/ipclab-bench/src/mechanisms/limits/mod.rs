//! The floors every run measures beside the mechanisms (family `limit`):
//! how fast this machine, on this placement, can possibly hand a message
//! from one process to another.
//!
//! | limit | what | cells |
//! |---|---|---|
//! | `limit-spin` | two processes ping-pong one shared cache line by spinning | pingpong, size 0 |
//! | `limit-futex` | the same word with bare `FUTEX_WAIT`/`FUTEX_WAKE`, no spinning | pingpong, size 0 |
//! | `limit-copy` | the writer fills SIZE bytes in shared memory, the reader checks all of them; the simplest spinning ring | pingpong and stream, every size |
//! | `limit-bare` | the minimal C ping-pong in Rust: a sequence word per direction, the payload copied into one slot and out of it | pingpong, every size |
//!
//! They are [`Transport`]s run by the same supervisor, in the same forked
//! and pinned processes, as every mechanism, but they are not in the
//! registry: the suite adds their cells to every run (`--no-limits` leaves
//! them out), and `vs_limit` matches each row to them (see
//! `crate::vs_limit`). `limit-spin` and `limit-futex` carry no payload, so
//! they refuse any size but 0; `limit-copy` carries and verifies the
//! payload like any mechanism and passes the conformance suite, as does
//! `limit-bare`, against which `vs_bare` sets every pingpong row.
//!
//! All three live in an anonymous `MAP_SHARED` mapping made before the
//! fork: no name, nothing that can outlive the processes.

mod bare;
mod copy;
mod shared;
mod turn;

use crate::transport::{Copies, Family, Info, Transport};

pub const SPIN: &str = "limit-spin";
pub const FUTEX: &str = "limit-futex";
pub const COPY: &str = "limit-copy";
pub const BARE: &str = "limit-bare";

pub static LIMIT_SPIN: turn::Turn = turn::Turn {
    info: Info {
        name: SPIN,
        family: Family::Limit,
        sync: "busy-poll (one cache line)",
        summary: "floor of any shared-memory round trip: one cache line ping-ponged by spinning; size 0 only",
        polls: true,
        copies: Copies {
            count: Some(0),
            why: "no payload: a counter that moves",
        },
    },
    futex: false,
};

pub static LIMIT_FUTEX: turn::Turn = turn::Turn {
    info: Info {
        name: FUTEX,
        family: Family::Limit,
        sync: "futex wait/wake (no spinning)",
        summary: "floor of any round trip that sleeps: bare FUTEX_WAIT/FUTEX_WAKE on one word; size 0 only",
        polls: false,
        copies: Copies {
            count: Some(0),
            why: "no payload: a counter that moves",
        },
    },
    futex: true,
};

pub static LIMIT_COPY: copy::Copy = copy::Copy;

pub static LIMIT_BARE: bare::Bare = bare::Bare;

/// Every limit, in the order the suite runs them.
pub static LIMITS: &[&dyn Transport] = &[&LIMIT_SPIN, &LIMIT_FUTEX, &LIMIT_BARE, &LIMIT_COPY];

/// The limits that carry a payload of any size, for the conformance suite.
pub static CONFORMING: &[&dyn Transport] = &[&LIMIT_BARE, &LIMIT_COPY];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::ChannelConfig;

    /// A server end whose client never came: its lifeline is hung up (the
    /// client's end closed with the pair), so waiting ends in an error.
    #[test]
    fn a_side_whose_peer_is_gone_gets_an_error_not_a_hang() {
        for t in LIMITS {
            let config = ChannelConfig {
                size: 0,
                segment_size: None,
                segments: 0,
            };
            let mut ep = t.prepare(&config).unwrap().pair.server().unwrap();
            let e = ep.recv(0, &mut |_, _| {}).unwrap_err();
            assert_eq!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset,
                "{}",
                t.info().name
            );
        }
    }
}
