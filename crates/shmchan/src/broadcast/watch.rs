//! What ends a broadcast's wait other than the condition: the caller's
//! deadline, and (for a subscriber) the publisher's death, looked at every
//! [`PEER_CHECK`] of waiting.

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use super::shm;
use crate::error::Error;
use crate::liveness::PEER_CHECK;
use crate::wait::Watch;

pub(crate) struct Watcher<'a> {
    deadline: Option<Instant>,
    next_check: Option<Instant>,
    /// The control descriptor whose byte 0 the publisher locks; `None`:
    /// the publisher's own wait, which has no peer to watch here.
    publisher: Option<BorrowedFd<'a>>,
}

impl<'a> Watcher<'a> {
    pub(crate) fn new(timeout: Option<Duration>, publisher: Option<BorrowedFd<'a>>) -> Watcher<'a> {
        Watcher {
            deadline: timeout.and_then(|t| Instant::now().checked_add(t)),
            next_check: None,
            publisher,
        }
    }
}

impl Watch for Watcher<'_> {
    fn expired(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn check(&mut self) -> Result<(), Error> {
        let now = Instant::now();
        if self.deadline.is_some_and(|d| now >= d) {
            return Err(Error::Timeout);
        }
        let Some(fd) = self.publisher else {
            return Ok(());
        };
        match self.next_check {
            None => self.next_check = Some(now + PEER_CHECK),
            Some(at) if now >= at => {
                if !shm::publisher_alive(fd)? {
                    return Err(Error::PeerGone);
                }
                self.next_check = Some(now + PEER_CHECK);
            }
            Some(_) => {}
        }
        Ok(())
    }

    fn slice(&self) -> Option<Duration> {
        let left = self
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()));
        Some(left.map_or(PEER_CHECK, |d| d.min(PEER_CHECK)))
    }
}

/// A rate limit for looks that cost a system call: at most one per
/// [`PEER_CHECK`].
#[derive(Debug, Default)]
pub(crate) struct Every {
    next: Option<Instant>,
}

impl Every {
    /// Whether a look is due now; a first call says no and starts the clock
    /// when `delay_first`, yes otherwise.
    pub(crate) fn due(&mut self, delay_first: bool) -> bool {
        let now = Instant::now();
        match self.next {
            None if delay_first => {
                self.next = now.checked_add(PEER_CHECK);
                false
            }
            Some(at) if now < at => false,
            _ => {
                self.next = now.checked_add(PEER_CHECK);
                true
            }
        }
    }
}
