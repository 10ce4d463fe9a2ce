//! The atomics, the futex and the busy-wait hints of the protocol, in one
//! place so that loom can replace them (`RUSTFLAGS="--cfg loom"`, see
//! `loom_tests.rs`).
//!
//! Outside loom these are the std types, which have the size and layout of
//! the integers they hold, so a [`Header`](crate::layout::Header) can sit in
//! shared memory. Under loom they are loom's model types and the protocol
//! runs on a header on the heap; the futex becomes a model of the kernel's
//! (compare and queue under one lock, wake everyone queued).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

use std::time::Duration;

/// One step of a busy wait.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Gives the CPU to another runnable thread, if any.
#[inline]
pub(crate) fn yield_now() {
    #[cfg(not(loom))]
    std::thread::yield_now();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// `futex(word, FUTEX_WAIT, expected, timeout)`: sleeps while `*word ==
/// expected`, until woken or `timeout` passes.
///
/// Every outcome (woken, `EAGAIN` because the word had already changed,
/// `ETIMEDOUT`, `EINTR`) means the same to the caller: look again.
#[cfg(not(loom))]
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    use rustix::thread::futex;
    let timeout = timeout.map(|d| futex::Timespec {
        tv_sec: d.as_secs().try_into().unwrap_or(i64::MAX),
        tv_nsec: d.subsec_nanos().into(),
    });
    // Not `PRIVATE`: the word lives in memory shared with another process.
    let _ = futex::wait(word, futex::Flags::empty(), expected, timeout.as_ref());
}

/// `futex(word, FUTEX_WAKE, 1)`: wakes the one side that may sleep on `word`.
#[cfg(not(loom))]
pub(crate) fn futex_wake(word: &AtomicU32) {
    use rustix::thread::futex;
    // Not `PRIVATE`, as in `futex_wait`. A failure cannot happen for a valid
    // address; if it did, the sleeper still wakes at its timeout.
    let _ = futex::wake(word, futex::Flags::empty(), 1);
}

/// `futex(word, FUTEX_WAKE, INT_MAX)`: wakes every process that sleeps on
/// `word` (a broadcast's subscribers share one word), in one system call.
#[cfg(not(loom))]
pub(crate) fn futex_wake_all(word: &AtomicU32) {
    use rustix::thread::futex;
    // Not `PRIVATE`, as in `futex_wait`; a failure leaves the sleepers to
    // wake at their timeout.
    let _ = futex::wake(word, futex::Flags::empty(), i32::MAX as u32);
}

#[cfg(all(loom, test))]
pub(crate) use model_futex::futex_waitv;
#[cfg(loom)]
pub(crate) use model_futex::{futex_wait, futex_wake, futex_wake_all};

/// A model of the kernel futex for loom: the kernel compares the word and
/// queues the waiter under one hash-bucket lock, and a wake takes the same
/// lock; a mutex and a condition variable do the same. Timeouts are left
/// out on purpose: a waiter that nobody wakes stays asleep, so a lost
/// wake-up shows up as a deadlock that loom reports.
#[cfg(loom)]
mod model_futex {
    use super::{AtomicU32, Duration, Ordering};
    use loom::sync::{Condvar, Mutex};

    loom::lazy_static! {
        static ref KERNEL: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());
    }

    pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, _timeout: Option<Duration>) {
        let guard = KERNEL.0.lock().unwrap();
        // SeqCst: the kernel reads the word after a full barrier.
        if word.load(Ordering::SeqCst) == expected {
            drop(KERNEL.1.wait(guard).unwrap());
        }
    }

    /// `futex_waitv` (the wait set's model test): sleeps while every word
    /// holds its value, checked
    /// under the same lock as `futex_wait`'s (the kernel queues the waiter
    /// on every word's bucket before it compares them).
    #[cfg(test)]
    pub(crate) fn futex_waitv(words: &[(&AtomicU32, u32)]) {
        let guard = KERNEL.0.lock().unwrap();
        // SeqCst: as in `futex_wait`.
        if words.iter().all(|(w, v)| w.load(Ordering::SeqCst) == *v) {
            drop(KERNEL.1.wait(guard).unwrap());
        }
    }

    pub(crate) fn futex_wake(_word: &AtomicU32) {
        let _guard = KERNEL.0.lock().unwrap();
        KERNEL.1.notify_all();
    }

    /// The model wakes every waiter anyway.
    pub(crate) fn futex_wake_all(word: &AtomicU32) {
        futex_wake(word)
    }
}
