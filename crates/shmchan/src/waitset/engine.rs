//! The wait itself, over any list of [`Member`]s: the owned ends of a
//! [`WaitSet`](super::WaitSet), or the borrowed receivers of
//! [`wait_any`](crate::wait_any).

use std::time::{Duration, Instant};

use super::member::Member;
use super::sleep::{Poller, Slept, Words};
use crate::error::Error;
use crate::liveness::PEER_CHECK;
use crate::ready::no_bell;
use crate::sync::{self, Ordering, fence};
use crate::wait::Wait;

/// `sched_yield` calls between spinning and sleeping (as `wait.rs`).
const YIELDS: u32 = 8;
/// The longest sleep while an end without a bell is waited on through
/// epoll (only where the kernel has no `futex_waitv`): such an end cannot
/// wake epoll, so it is looked at this often.
const BELL_LESS_SLICE: Duration = Duration::from_millis(1);

/// A list of ends, by slot; a slot may be empty (a removed end).
pub(crate) trait Ends {
    /// Slots, empty ones included.
    fn slots(&self) -> usize;
    /// The end in slot `i` and the room it waits for (senders).
    fn end(&mut self, i: usize) -> Option<(&mut dyn Member, usize)>;
}

/// How a set sleeps when nothing is ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Backend {
    /// `futex_waitv` over the ends' futex words (Linux 5.16 and later; on
    /// older kernels the set falls back to [`Epoll`](Backend::Epoll) by
    /// itself). The peers wake it with `FUTEX_WAKE`, their cheapest
    /// wake-up. At most [`FUTEX_WAITV_MAX`](super::FUTEX_WAITV_MAX) ends;
    /// ends without a bell are welcome.
    #[default]
    Futex,
    /// epoll over the ends' bells: every end must have one (made through a
    /// connection); no limit but the descriptors'. The peers ring the bell
    /// (a byte on a socket) instead of the futex.
    Epoll,
}

/// The state of a set's waits, kept from call to call.
#[derive(Default)]
pub(crate) struct Engine {
    pub(crate) backend: Backend,
    pub(crate) policy: Wait,
    words: Words,
    /// Made when first needed: the epoll backend, the set's descriptor,
    /// or the fallback of a kernel without `futex_waitv`.
    pub(crate) poller: Option<Poller>,
    /// Every end is announced asleep (an `arm` that returned `true`, or
    /// a sleep in progress): `finish` them before anything else.
    announced: bool,
    /// When the ends' peers are next looked at (`None`: not yet).
    next_look: Option<Instant>,
    /// The kernel has no `futex_waitv`: sleep on the bells.
    no_waitv: bool,
    /// System calls made to sleep (`futex_waitv`, `futex_wait`,
    /// `epoll_wait`), for `WaitSet::sleeps`.
    pub(crate) sleeps: u64,
}

impl Engine {
    pub(crate) fn new(backend: Backend, policy: Wait) -> Engine {
        Engine {
            backend,
            policy,
            ..Engine::default()
        }
    }

    /// As on a kernel before Linux 5.16 (the fallback's tests).
    #[cfg(test)]
    pub(crate) fn pretend_no_waitv(&mut self) {
        self.no_waitv = true;
    }

    fn on_bells(&self) -> bool {
        self.backend == Backend::Epoll || self.no_waitv
    }

    /// Makes the poller if there is none, with every end's bell in it.
    /// `need_bells`: an end without a bell is an error (the set's
    /// descriptor, the epoll backend).
    pub(crate) fn poller(&mut self, ends: &mut dyn Ends, need_bells: bool) -> Result<(), Error> {
        if need_bells {
            for i in 0..ends.slots() {
                if let Some((end, _)) = ends.end(i) {
                    if end.bell_fd().is_none() {
                        return Err(no_bell());
                    }
                }
            }
        }
        if self.poller.is_some() {
            return Ok(());
        }
        let poller = Poller::new()?;
        for i in 0..ends.slots() {
            if let Some(bell) = ends.end(i).and_then(|(end, _)| end.bell_fd()) {
                poller.add(bell, i)?;
            }
        }
        self.poller = Some(poller);
        Ok(())
    }

    /// Ends the sleep every end was announced for.
    pub(crate) fn finish(&mut self, ends: &mut dyn Ends) {
        if !std::mem::take(&mut self.announced) {
            return;
        }
        for i in 0..ends.slots() {
            if let Some((end, _)) = ends.end(i) {
                end.finish();
            }
        }
    }

    /// Puts the slot of every ready end in `ready`; returns how many.
    fn scan(ends: &mut dyn Ends, ready: &mut Vec<usize>) -> usize {
        ready.clear();
        for i in 0..ends.slots() {
            if let Some((end, room)) = ends.end(i) {
                if end.ready(room) {
                    ready.push(i);
                }
            }
        }
        ready.len()
    }

    /// Every [`PEER_CHECK`], looks whether each end's peer died (one
    /// system call per end); a dead one becomes ready. The first look
    /// comes a `PEER_CHECK` after the set's first wait.
    fn look(&mut self, ends: &mut dyn Ends, now: Instant) -> Result<(), Error> {
        match self.next_look {
            Some(at) if now < at => return Ok(()),
            Some(_) => {
                for i in 0..ends.slots() {
                    if let Some((end, _)) = ends.end(i) {
                        end.peer_dead()?;
                    }
                }
            }
            None => {}
        }
        self.next_look = now.checked_add(PEER_CHECK);
        Ok(())
    }

    /// Announces every end asleep, then runs the fence, then looks once
    /// more: whether any end is ready after all (then they are finished
    /// again). Fills `words` for a futex sleep.
    fn announce(&mut self, ends: &mut dyn Ends, ready: &mut Vec<usize>, bell: bool) -> bool {
        self.words.clear();
        for i in 0..ends.slots() {
            if let Some((end, _)) = ends.end(i) {
                let (word, expected) = end.announce(bell);
                self.words.push(word, expected);
            }
        }
        self.announced = true;
        // SeqCst fence: pairs with the fence in `wait::notify` of every
        // peer, for all ends at once (Dekker's pattern, see `wait.rs`):
        // either the scan below sees a peer's index, or that peer sees our
        // odd epoch and wakes us.
        fence(Ordering::SeqCst);
        if Self::scan(ends, ready) > 0 {
            self.finish(ends);
            return true;
        }
        false
    }

    /// Waits until an end is ready (their slots in `ready`), or
    /// `Err(Timeout)` after `timeout`.
    pub(crate) fn wait(
        &mut self,
        ends: &mut dyn Ends,
        ready: &mut Vec<usize>,
        timeout: Option<Duration>,
    ) -> Result<(), Error> {
        self.finish(ends);
        let start = Instant::now();
        let deadline = timeout.and_then(|t| start.checked_add(t));
        let (spins, yields) = match self.policy {
            Wait::Spin => (u32::MAX, 0),
            Wait::Block => (0, 0),
            // `spin` looks at an end in all, as a channel's own wait
            // makes `spin` looks at its peer's index: a set of many ends
            // spins as long as one channel does, not `spin` times longer.
            Wait::Adaptive { spin } => {
                let ends = u32::try_from(ends.slots()).unwrap_or(u32::MAX).max(1);
                (spin / ends, YIELDS)
            }
        };
        let mut round = 0u32;
        let mut now = start;
        loop {
            self.look(ends, now)?;
            if Self::scan(ends, ready) > 0 {
                return Ok(());
            }
            if deadline.is_some_and(|d| now >= d) {
                return Err(Error::Timeout);
            }
            if round < spins {
                round = round.saturating_add(1);
                sync::spin_hint();
                now = Instant::now();
                continue;
            }
            if round - spins < yields {
                round += 1;
                sync::yield_now();
                now = Instant::now();
                continue;
            }
            let bell = self.on_bells();
            if self.announce(ends, ready, bell) {
                return Ok(());
            }
            now = Instant::now();
            let mut slice = self
                .next_look
                .map_or(PEER_CHECK, |at| at.saturating_duration_since(now));
            if let Some(d) = deadline {
                slice = slice.min(d.saturating_duration_since(now));
            }
            self.sleep(ends, slice, bell)?;
            self.finish(ends);
            now = Instant::now();
        }
    }

    fn sleep(&mut self, ends: &mut dyn Ends, slice: Duration, bell: bool) -> Result<(), Error> {
        self.sleeps += 1;
        if !bell {
            return match self.words.sleep(slice)? {
                Slept::Again => Ok(()),
                Slept::NoWaitv => {
                    // Before Linux 5.16: the bells from now on. This sleep
                    // was announced on the futex: look again at once.
                    self.no_waitv = true;
                    self.poller(ends, false)
                }
            };
        }
        self.poller(ends, self.backend == Backend::Epoll)?;
        let mut bell_less = false;
        for i in 0..ends.slots() {
            if let Some((end, _)) = ends.end(i) {
                bell_less |= end.bell_fd().is_none();
            }
        }
        let slice = if bell_less {
            slice.min(BELL_LESS_SLICE)
        } else {
            slice
        };
        let poller = self.poller.as_mut().expect("made above");
        poller.poll(slice, |slot| {
            if let Some((end, _)) = ends.end(slot) {
                end.rung();
            }
        })
    }

    /// Prepares a wait on the poller's descriptor (see `WaitSet::arm`):
    /// `Ok(true)`: nothing is ready, every end is announced on its bell.
    pub(crate) fn arm(
        &mut self,
        ends: &mut dyn Ends,
        ready: &mut Vec<usize>,
    ) -> Result<bool, Error> {
        self.finish(ends);
        self.poller(ends, true)?;
        let poller = self.poller.as_mut().expect("made above");
        poller.poll(Duration::ZERO, |slot| {
            if let Some((end, _)) = ends.end(slot) {
                end.rung();
            }
        })?;
        self.look(ends, Instant::now())?;
        if Self::scan(ends, ready) > 0 || self.announce(ends, ready, true) {
            return Ok(false);
        }
        Ok(true)
    }

    /// The ends ready now, never sleeping (after the set's descriptor was
    /// readable, say).
    pub(crate) fn try_wait(
        &mut self,
        ends: &mut dyn Ends,
        ready: &mut Vec<usize>,
    ) -> Result<(), Error> {
        self.finish(ends);
        self.look(ends, Instant::now())?;
        Self::scan(ends, ready);
        Ok(())
    }
}
