//! What the limits share: an anonymous `MAP_SHARED` mapping made before the
//! fork (inherited by both sides, named nowhere), a [`Lifeline`] per side
//! so that a spinning side notices a peer killed outright, and the spin
//! loop.

use std::io;
use std::os::fd::AsFd;

use crate::mechanisms::lifeline::{Lifeline, lifelines};
use crate::mechanisms::shm::region::{Mapping, Side};
use crate::transport::SharedMemory;

/// Polls between looks at the lifeline (one `poll` system call, so a few
/// microseconds of spinning per look: nothing on the measured path).
const SPINS: u32 = 1 << 14;

/// The mapping and both lifelines, before each side takes its own.
pub struct SharedPair {
    map: Mapping,
    server: Lifeline,
    client: Lifeline,
}

impl SharedPair {
    /// `len` bytes of zeroed shared memory, aligned to a page.
    pub fn new(len: usize) -> io::Result<SharedPair> {
        let (server, client) = lifelines()?;
        Ok(SharedPair {
            map: Mapping::shared_anonymous(len.max(1))?,
            server,
            client,
        })
    }

    /// A second mapping of the memory, for fault injection; its first
    /// `control` bytes hold the counters.
    pub fn shared_memory(&self, control: usize) -> io::Result<Vec<SharedMemory>> {
        Ok(vec![SharedMemory {
            map: self.map.duplicate()?,
            control,
        }])
    }

    /// This side's share; the peer's lifeline end is closed here, so that
    /// only the peer's death (or its endpoint's drop) hangs up ours.
    pub fn take(self, side: Side) -> Shared {
        let lifeline = match side {
            Side::Server => self.server,
            Side::Client => self.client,
        };
        Shared {
            map: self.map,
            lifeline,
            side,
        }
    }
}

/// One side's share of a limit's channel.
pub struct Shared {
    pub map: Mapping,
    lifeline: Lifeline,
    pub side: Side,
}

impl Shared {
    /// Spins until `ready` returns a value; an error if the peer process
    /// died meanwhile.
    pub fn spin<T>(&self, what: &str, mut ready: impl FnMut() -> Option<T>) -> io::Result<T> {
        loop {
            for _ in 0..SPINS {
                if let Some(v) = ready() {
                    return Ok(v);
                }
                std::hint::spin_loop();
            }
            self.lifeline.check(what)?;
        }
    }

    /// After a bounded sleep: an error if the peer process died.
    pub fn check_peer(&self, what: &str) -> io::Result<()> {
        self.lifeline.check(what)
    }

    /// This side's end of the lifeline, for a watchdog that waits on it.
    pub fn lifeline_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.lifeline.as_fd()
    }
}

/// A size-0 endpoint's refusal of a payload.
pub fn no_payload(name: &str, len: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{name} carries no payload: it measures size 0 only, not {len} bytes"),
    )
}

/// Sending to a peer that has closed.
pub fn peer_gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the peer closed the channel")
}
