//! How subscribers sleep, and how one publish wakes them all: one futex
//! word, the control header's `bell`, for every subscriber.
//!
//! # No lost wake-up, one system call at most per publish
//!
//! Bit 0 of the bell says that somebody sleeps or is about to. A
//! subscriber about to sleep sets it (`fetch_or`, which returns the word
//! it then sleeps on), runs a SeqCst fence, and looks at the publisher's
//! `tail` once more; only if there is still nothing does it call
//! `futex_wait(bell, word with bit 0)`. The publisher stores `tail`, runs a
//! SeqCst fence, then loads the bell (see [`ring`]). The two fences are
//! ordered one way or the other (Dekker's pattern): either the subscriber
//! sees the new `tail` and does not sleep, or the publisher sees bit 0 and
//! adds one to the bell (which clears bit 0 and changes the word) and
//! calls `FUTEX_WAKE` for all. The kernel compares the word under its
//! bucket lock, so a sleeper either finds it changed and returns at once,
//! or is queued when the wake comes. `loom_tests.rs` checks this with
//! loom.
//!
//! Whatever the number of sleepers, a publish makes one `FUTEX_WAKE` (or
//! none when bit 0 is clear: nobody sleeps, the usual case on a busy
//! broadcast). A sleeper whose sleep ended by a timeout leaves bit 0 set:
//! one wake-up too many for the next publish, never one too few.
//!
//! A hostile subscriber can write the bell: setting bit 0 costs the
//! publisher a system call per publish (as an honest sleeper does);
//! clearing it makes other sleepers wake at their slice's end instead of
//! at once ([`PEER_CHECK`](crate::PEER_CHECK) at most). Neither can make a
//! wait last past its deadline.

use crate::error::Error;
use crate::sync::{self, AtomicU32, Ordering, fence};
use crate::wait::{Wait, Watch, spin_then_yield};

/// Bit 0 of the bell: somebody sleeps or is about to.
const ASLEEP: u32 = 1;

/// Waits until `ready` returns true: spins, yields, then sleeps on `bell`
/// as `policy` says.
pub(crate) fn wait_until(
    policy: Wait,
    bell: &AtomicU32,
    ready: &mut dyn FnMut() -> Result<bool, Error>,
    watch: &mut dyn Watch,
) -> Result<(), Error> {
    if spin_then_yield(policy, ready, watch)? {
        return Ok(());
    }
    loop {
        let Some(word) = arm(bell, ready)? else {
            return Ok(());
        };
        sync::futex_wait(bell, word, watch.slice());
        watch.check()?;
    }
}

/// Says that this subscriber is about to sleep on `bell`, then looks once
/// more: `Ok(None)` when `ready` is true (do not sleep), `Ok(Some(word))`
/// when nothing is ready: sleep on `bell` while it holds `word` (a
/// `futex_wait`, or a `futex_waitv` entry of a wait set), and look again
/// when woken.
pub(crate) fn arm(
    bell: &AtomicU32,
    ready: &mut dyn FnMut() -> Result<bool, Error>,
) -> Result<Option<u32>, Error> {
    // SeqCst: the read-modify-write is ordered before the fence below; its
    // result is the word the kernel will compare, so a publisher's change
    // after it makes the sleep return at once.
    let word = bell.fetch_or(ASLEEP, Ordering::SeqCst) | ASLEEP;
    // SeqCst fence: pairs with the fence in `ring` (SYNC POINT with the
    // publisher's `tail` store before it): either `ready` below sees the
    // new `tail`, or the publisher's load of the bell sees bit 0.
    fence(Ordering::SeqCst);
    Ok(if ready()? { None } else { Some(word) })
}

/// Wakes every sleeping subscriber, if any sleeps: call after storing
/// `tail` (or the closed flag). One system call when bit 0 is set, none
/// otherwise. `force` wakes whatever the bit says (a close: rare, and it
/// must reach even a sleeper whose bit a hostile peer cleared as soon as
/// possible).
pub(crate) fn ring(bell: &AtomicU32, force: bool) {
    // SeqCst fence: pairs with the fence in `arm` (see the module docs).
    fence(Ordering::SeqCst);
    // Relaxed: ordered after our `tail` store by the fence above; nothing
    // else travels with the bell.
    let word = bell.load(Ordering::Relaxed);
    if word & ASLEEP != 0 || force {
        // Adding one to a word with bit 0 set clears the bit and changes
        // the rest; two changes a clear word and keeps it clear. Either
        // way every sleeper's word is stale now. (Only the publisher
        // clears the bit.)
        let add = if word & ASLEEP != 0 { 1 } else { 2 };
        // Release: pairs with the SeqCst `fetch_or` in `arm`: a subscriber
        // whose next `arm` reads this increment sees our `tail` store.
        bell.fetch_add(add, Ordering::Release);
        sync::futex_wake_all(bell);
    }
}
