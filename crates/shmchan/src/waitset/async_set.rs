//! A [`WaitSet`] that awaits (feature `tokio`): its epoll descriptor
//! under tokio's [`AsyncFd`], as the async ends await their bells.

use std::os::fd::OwnedFd;

use ::tokio::io::Interest;
use ::tokio::io::unix::AsyncFd;

use super::WaitSet;
use crate::error::Error;

/// A [`WaitSet`] whose wait is a future: [`wait`](Self::wait) takes what
/// is ready at once (no system call), and otherwise arms the set on its
/// ends' bells and awaits its descriptor. Every end must have a bell
/// (made through a connection). Reach the set, to add, remove and use its
/// ends, with [`get_mut`](Self::get_mut).
///
/// The future is cancel-safe: dropped, it has taken nothing (the ends
/// stay announced until the next wait, which costs the peers at most one
/// ring each).
pub struct AsyncWaitSet<K> {
    set: WaitSet<K>,
    fd: AsyncFd<OwnedFd>,
}

impl<K: Copy + Eq> AsyncWaitSet<K> {
    /// Wraps `set`; must be called inside a tokio runtime with IO enabled.
    /// Fails when an end of the set has no bell.
    pub fn new(mut set: WaitSet<K>) -> Result<AsyncWaitSet<K>, Error> {
        ::tokio::runtime::Handle::try_current().map_err(|e| {
            Error::Io(std::io::Error::other(format!(
                "shmchan's AsyncWaitSet must be made inside a tokio runtime: {e}"
            )))
        })?;
        let dup = rustix::io::fcntl_dupfd_cloexec(set.ready_fd()?, 0)?;
        // Deprecated since tokio 1.54 for descriptors that may change or
        // close under the registration; an `OwnedFd` owned by the
        // `AsyncFd` cannot (as in `tokio.rs`).
        #[allow(deprecated)]
        let fd = AsyncFd::with_interest(dup, Interest::READABLE)?;
        Ok(AsyncWaitSet { set, fd })
    }

    /// Waits until at least one end is ready and puts their keys in
    /// `ready` (cleared first); returns how many. As
    /// [`WaitSet::wait`], without a timeout (wrap it in
    /// `tokio::time::timeout`); an empty set is an error.
    pub async fn wait(&mut self, ready: &mut Vec<K>) -> Result<usize, Error> {
        if self.set.is_empty() {
            return Err(super::invalid("an empty wait set would wait for ever"));
        }
        loop {
            if self.set.try_wait(ready)? > 0 {
                return Ok(ready.len());
            }
            if !self.set.arm()? {
                continue;
            }
            let mut guard = self.fd.readable().await?;
            // Cleared before the look that follows: a ring after it makes
            // the descriptor readable again.
            guard.clear_ready();
        }
    }

    /// The set.
    pub fn get_ref(&self) -> &WaitSet<K> {
        &self.set
    }

    /// The set, to add, reach and remove ends. An end added must have a
    /// bell.
    pub fn get_mut(&mut self) -> &mut WaitSet<K> {
        &mut self.set
    }

    /// The set, no longer registered with the runtime.
    pub fn into_inner(self) -> WaitSet<K> {
        self.set
    }
}
