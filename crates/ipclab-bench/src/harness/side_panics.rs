//! Panics in a side's threads, kept rather than printed.
//!
//! A peer library runs threads of its own in a side (zenoh's runtime, for
//! one), and a thread that panics there (under a tight `ulimit -u`: "failed
//! to spawn thread") would print its message to the terminal, mid-run,
//! while the side goes on to fail (or not) on its own. The side installs
//! [`install`]'s hook instead: the first panic of any thread is kept, not
//! printed, and the side's report carries it ([`first`]): one error line
//! for the cell, which fails on it.

use std::sync::{Mutex, PoisonError};

static FIRST: Mutex<Option<String>> = Mutex::new(None);

/// Keeps the first panic of this process's threads (`thread 'NAME'
/// panicked at FILE:LINE: MESSAGE`) instead of printing it.
pub fn install() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("unnamed");
        let payload = info.payload();
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        let at = info
            .location()
            .map_or(String::new(), |l| format!(" at {}:{}", l.file(), l.line()));
        // One line, whatever the message holds.
        let what = what.replace('\n', " ");
        let mut first = FIRST.lock().unwrap_or_else(PoisonError::into_inner);
        first.get_or_insert_with(|| format!("thread '{name}' panicked{at}: {what}"));
    }));
}

/// The first panic kept, if any thread panicked.
pub fn first() -> Option<String> {
    FIRST.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_panic_of_another_thread_is_kept_not_lost() {
        // In a forked child: the hook is process-wide, the test harness's
        // own must stay in this process.
        // SAFETY: the child only spawns a thread, panics in it and exits
        // with `_exit`; it never returns into the test harness.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                super::install();
                let _ = std::thread::Builder::new()
                    .name("peer-runtime".into())
                    .spawn(|| panic!("failed to spawn thread"))
                    .unwrap()
                    .join();
                let ok = super::first().is_some_and(|f| {
                    f.starts_with("thread 'peer-runtime' panicked at ")
                        && f.ends_with(": failed to spawn thread")
                });
                // SAFETY: ends the child at once.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
    }
}
