//! How a side waits for its peer: spin, then yield, then sleep on a futex,
//! as the [`Wait`] policy says; and how the other side wakes it.
//!
//! # No lost wake-up
//!
//! Each side has two words in the header ([`Waiter`]), each with a single
//! writer: `epoch`, written by the side itself, is odd while it sleeps or
//! is about to; `wakes`, written by the peer, is the futex word.
//!
//! A side about to sleep loads `wakes`, stores an odd `epoch`, runs a
//! SeqCst fence, then looks at the peer's index once more; only if there is
//! still nothing does it call `futex_wait(wakes, value loaded)`. A side that
//! publishes stores its index, runs a SeqCst fence, then loads the peer's
//! `epoch` (see [`notify`]). The two fences are ordered one way or the
//! other (Dekker's pattern): either the sleeper sees the new index and does
//! not sleep, or the publisher sees the odd epoch, adds one to `wakes` and
//! calls `futex_wake`. The sleeper loaded `wakes` before storing its epoch
//! (Acquire, against the publisher's Release), so the value it sleeps on is
//! the old one: the kernel, which compares the word under its own lock,
//! either finds it changed and returns at once, or has the sleeper queued
//! when the wake comes. `loom_tests.rs` checks this with loom.
//!
//! A publisher makes the `futex_wake` system call only when it sees an odd
//! epoch it has not woken yet: on a busy channel nobody sleeps and no
//! system call is made. A sleep never lasts longer than a [`Watch`]'s
//! slice, so that a sleeper notices a dead peer or a deadline even when
//! nobody wakes it.
//!
//! # Waiting on a bell
//!
//! A side that waits in an event loop or an async runtime ([`arm`]) takes
//! an odd epoch the same way, but first sets its `bell` word, and the
//! publisher that sees the odd epoch rings the side's bell (a byte on a
//! socket, see `bell.rs`) instead of the futex. The epoch is stored with
//! Release and loaded with Acquire, so a publisher that sees the odd epoch
//! also sees the `bell` word set before it. A futex sleep clears the word
//! before its own odd epoch, so each wait is woken the way it waits.

use std::time::Duration;

use crate::bell::Bell;
use crate::error::Error;
use crate::layout::Waiter;
use crate::sync::{self, Ordering, fence};

/// How a blocked call waits for the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Busy-poll: the fastest answer, one CPU fully used while waiting.
    /// Meant for sides pinned to CPUs of their own.
    Spin,
    /// Sleep on a futex at once: no CPU used while waiting, a system call
    /// on each side for each hand-over.
    Block,
    /// Poll `spin` times, then yield the CPU a few times, then sleep on a
    /// futex.
    Adaptive {
        /// Polls before the first yield.
        spin: u32,
    },
}

impl Default for Wait {
    fn default() -> Self {
        Wait::Adaptive { spin: 2_000 }
    }
}

/// `sched_yield` calls between spinning and sleeping ([`Wait::Adaptive`]).
pub(crate) const YIELDS: u32 = 8;
/// Spins between two looks at the clock.
pub(crate) const CHECK_EVERY: u32 = 64;

/// What ends a wait other than the condition: a deadline, a dead peer.
pub(crate) trait Watch {
    /// Whether the deadline has passed (cheap: no system call).
    fn expired(&self) -> bool;
    /// `Err(Timeout)` past the deadline, `Err(PeerGone)` when the peer died;
    /// called every few dozen spins and after every sleep.
    fn check(&mut self) -> Result<(), Error>;
    /// How long one futex sleep may last; `None`: until woken.
    fn slice(&self) -> Option<Duration>;
}

/// A wait that only the condition ends (loom tests).
#[cfg(loom)]
pub(crate) struct Forever;

#[cfg(loom)]
impl Watch for Forever {
    fn expired(&self) -> bool {
        false
    }
    fn check(&mut self) -> Result<(), Error> {
        Ok(())
    }
    fn slice(&self) -> Option<Duration> {
        None
    }
}

/// The phases of a wait before it sleeps: polls `ready` as `policy` says
/// (for ever under `Spin`), then yields a few times (`Adaptive`); true as
/// soon as `ready` is. Shared by the channel's and the broadcast's waits,
/// which differ only in how they sleep.
pub(crate) fn spin_then_yield(
    policy: Wait,
    ready: &mut dyn FnMut() -> Result<bool, Error>,
    watch: &mut dyn Watch,
) -> Result<bool, Error> {
    let (spins, yields) = match policy {
        Wait::Spin => (u32::MAX, 0),
        Wait::Block => (0, 0),
        Wait::Adaptive { spin } => (spin, YIELDS),
    };
    let mut i = 0u32;
    while policy == Wait::Spin || i < spins {
        if ready()? {
            return Ok(true);
        }
        sync::spin_hint();
        i = i.wrapping_add(1);
        if i % CHECK_EVERY == 0 {
            watch.check()?;
        }
    }
    for _ in 0..yields {
        if ready()? {
            return Ok(true);
        }
        sync::yield_now();
        watch.check()?;
    }
    Ok(false)
}

/// Waits until `ready` returns true. `me` is this side's [`Waiter`].
pub(crate) fn wait_until(
    policy: Wait,
    me: &Waiter,
    ready: &mut dyn FnMut() -> Result<bool, Error>,
    watch: &mut dyn Watch,
) -> Result<(), Error> {
    if spin_then_yield(policy, ready, watch)? {
        return Ok(());
    }
    // Relaxed: we are the only writer of our epoch and of our bell word.
    let mut epoch = me.epoch.load(Ordering::Relaxed);
    if me.bell.load(Ordering::Relaxed) != 0 {
        // Relaxed: published by the Release store of the epoch below. We
        // sleep on the futex now: the peer must wake that, not the bell.
        me.bell.store(0, Ordering::Relaxed);
    }
    loop {
        let asleep = epoch.wrapping_add(1) | 1;
        epoch = asleep.wrapping_add(1);
        // Acquire: pairs with the Release increment in `notify`: a value
        // loaded here was stored before the waker saw our odd epoch, so a
        // wake meant for this sleep changes the word after this load.
        let wakes = me.wakes.load(Ordering::Acquire);
        // Release: pairs with the Acquire load of the epoch in `notify`
        // (the bell word above is seen with it); the fence below orders it
        // against our look at the peer's index.
        me.epoch.store(asleep, Ordering::Release);
        // SeqCst fence: pairs with the fence in `notify` on the other side.
        // Either its index store is visible to `ready` below, or our odd
        // epoch is visible to its load and it wakes us.
        fence(Ordering::SeqCst);
        let ready = ready();
        if !matches!(ready, Ok(false)) {
            // Relaxed: only spares the peer a wake-up it need not make.
            me.epoch.store(epoch, Ordering::Relaxed);
            return ready.map(|_| ());
        }
        sync::futex_wait(&me.wakes, wakes, watch.slice());
        // Relaxed: as above.
        me.epoch.store(epoch, Ordering::Relaxed);
        watch.check()?;
    }
}

/// Says that this side is about to wait on its bell rather than on the
/// futex (see the module docs): takes a new odd epoch with the bell word
/// set, then looks once more. `Ok(true)`: nothing is ready, wait until the
/// bell's descriptor is readable (the peer rings it when it publishes).
/// `Ok(false)`: `ready` is already true, do not wait.
pub(crate) fn arm(
    me: &Waiter,
    ready: &mut dyn FnMut() -> Result<bool, Error>,
) -> Result<bool, Error> {
    // Relaxed: we are the only writer of our epoch and of our bell word.
    let epoch = me.epoch.load(Ordering::Relaxed);
    // A new odd value every time: the peer rings once per epoch, and the
    // ring of the last one may have been drained already.
    let asleep = epoch.wrapping_add(1) | 1;
    // Relaxed: published by the Release store of the epoch below.
    me.bell.store(1, Ordering::Relaxed);
    // Release: pairs with the Acquire load of the epoch in `notify`: a
    // peer that sees this odd epoch sees the bell word set above.
    me.epoch.store(asleep, Ordering::Release);
    // SeqCst fence: pairs with the fence in `notify`, as in `wait_until`:
    // either `ready` below sees the peer's index, or the peer sees our odd
    // epoch and rings.
    fence(Ordering::SeqCst);
    match ready() {
        Ok(false) => Ok(true),
        other => {
            // Relaxed: only spares the peer a ring it need not make.
            me.epoch.store(asleep.wrapping_add(1), Ordering::Relaxed);
            other.map(|_| false)
        }
    }
}

/// Wakes the peer if it said it sleeps. Call after storing the index the
/// peer waits on. `woken` is the last epoch this side woke, kept by the
/// caller: a sleep is woken once, however many publications follow.
/// `bell` is the peer's bell, if the channel has one: rung instead of the
/// futex when the peer waits on it.
pub(crate) fn notify(peer: &Waiter, woken: &mut u32, bell: Option<&Bell>) {
    // SeqCst fence: pairs with the fence in `wait_until` and `arm` on the
    // other side (see the module docs): orders our index store before the
    // epoch load.
    fence(Ordering::SeqCst);
    // Acquire: pairs with the Release store of the epoch in `wait_until`
    // and `arm`: seeing an odd epoch, we see the bell word stored before it.
    let epoch = peer.epoch.load(Ordering::Acquire);
    if epoch & 1 == 1 && epoch != *woken {
        *woken = epoch;
        // Release: pairs with the Acquire load of `wakes` in `wait_until`.
        peer.wakes.fetch_add(1, Ordering::Release);
        // Relaxed: ordered by the Acquire load of the epoch above.
        match bell {
            Some(bell) if peer.bell.load(Ordering::Relaxed) != 0 => bell.ring(),
            _ => sync::futex_wake(&peer.wakes),
        }
    }
}

/// The first half of a sleep over many channels (`waitset`): says that
/// this side is about to sleep, as `wait_until` and [`arm`] do, but runs
/// no fence and looks at nothing: the caller announces every end of its
/// set, runs one SeqCst fence (the partner of the fence in [`notify`],
/// for all of them at once), then looks at each, and sleeps only if none
/// is ready. `bell`: the peer must ring the bell rather than the futex.
/// Returns the value of `wakes` to sleep on. Undo it with [`awake`].
pub(crate) fn announce(me: &Waiter, bell: bool) -> u32 {
    // Relaxed: we are the only writer of our epoch and of our bell word.
    let epoch = me.epoch.load(Ordering::Relaxed);
    let asleep = epoch.wrapping_add(1) | 1;
    if bell {
        // Relaxed: published by the Release store of the epoch below.
        me.bell.store(1, Ordering::Relaxed);
    } else if me.bell.load(Ordering::Relaxed) != 0 {
        // Relaxed: as above; the peer must wake the futex, not the bell.
        me.bell.store(0, Ordering::Relaxed);
    }
    // Acquire: pairs with the Release increment in `notify`, as in
    // `wait_until`: a wake meant for this sleep changes the word after
    // this load.
    let wakes = me.wakes.load(Ordering::Acquire);
    // Release: pairs with the Acquire load of the epoch in `notify` (the
    // bell word above is seen with it). The caller's SeqCst fence orders
    // it before its looks at the peers' indices.
    me.epoch.store(asleep, Ordering::Release);
    wakes
}

/// Ends a sleep begun with [`announce`]: the epoch is even again, so the
/// peer makes no more wake-up calls for it.
pub(crate) fn awake(me: &Waiter) {
    // Relaxed: we are the only writer; only spares the peer a wake-up.
    let epoch = me.epoch.load(Ordering::Relaxed);
    if epoch & 1 == 1 {
        me.epoch.store(epoch.wrapping_add(1), Ordering::Relaxed);
    }
}
