//! Panics in a side's threads, reported rather than printed.
//!
//! A peer library runs threads of its own in a side (zenoh's runtime, for
//! one), and a thread that panics there (under a tight `ulimit -u`: "OS
//! can't spawn worker thread") printed its message and backtrace to the
//! terminal, mid-run, and left the side hung until the cell's watchdog.
//! The side installs [`install`]'s hook instead: the first panic of any
//! thread is kept, printed nowhere, and written at once as the side's
//! report; a panic of a thread other than the side's own (whose panics
//! `catch_unwind` reports), or a second one (a panic while unwinding,
//! which would abort), then ends the side at once (`_exit(1)`), so that
//! the cell fails with that one line rather than a hang or an abort.

use std::os::fd::{BorrowedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::sync::{Mutex, PoisonError};

/// Makes the side's report (JSON) out of a panic's line.
pub type MakeReport = Box<dyn Fn(&str) -> Vec<u8> + Send + Sync>;

struct State {
    first: Option<String>,
    /// The report's memfd and how to fill it.
    report: Option<(RawFd, MakeReport)>,
}

static STATE: Mutex<State> = Mutex::new(State {
    first: None,
    report: None,
});

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Replaces the report in `fd` (the side's memfd) with `json`, whole.
fn write(fd: RawFd, json: &[u8]) {
    // SAFETY: `fd` is the side's report memfd, open for the side's whole
    // life (it is closed only by `_exit`); borrowed for these two calls.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let _ = rustix::fs::ftruncate(borrowed, 0);
    if let Ok(file) = borrowed.try_clone_to_owned().map(std::fs::File::from) {
        let _ = file.write_all_at(json, 0);
    }
}

/// Keeps the first panic of this process's threads (`thread 'NAME'
/// panicked at FILE:LINE: MESSAGE`) instead of printing it, writes
/// `make(that line)` as the report in `report` (the side's memfd), and
/// ends the process for a panic that `catch_unwind` on the main thread
/// will not see.
pub fn install(report: RawFd, make: MakeReport) {
    state().report = Some((report, make));
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
        let line = format!("thread '{name}' panicked{at}: {}", what.replace('\n', " "));
        let mut st = state();
        let again = st.first.is_some();
        if !again {
            if let Some((fd, make)) = &st.report {
                write(*fd, &make(&line));
            }
            st.first = Some(line);
        }
        // Another thread's panic, or the main thread's second (a panic
        // while unwinding from the first, which would abort).
        if name != "main" || again {
            // SAFETY: `_exit` ends the process at once; the report is
            // written, nothing else of ours needs to run.
            unsafe { libc::_exit(1) }
        }
    }));
}

/// The first panic kept, if any thread panicked.
pub fn first() -> Option<String> {
    state().first.clone()
}

/// Writes the side's final report (replacing one a panic wrote).
pub fn write_report(json: &[u8]) {
    let st = state();
    if let Some((fd, _)) = &st.report {
        write(*fd, json);
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Seek};

    #[test]
    fn a_panic_of_another_thread_ends_the_side_with_its_report() {
        let memfd = rustix::fs::memfd_create("report", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        // In a forked child: the hook is process-wide, the test harness's
        // own must stay in this process.
        // SAFETY: the child only installs the hook, spawns a thread that
        // panics (which ends the child) and exits; it never returns into
        // the test harness.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                use std::os::fd::AsRawFd;
                super::install(
                    memfd.as_raw_fd(),
                    Box::new(|line| format!("{{\"error\":{line:?}}}").into_bytes()),
                );
                let _ = std::thread::Builder::new()
                    .name("peer-runtime".into())
                    .spawn(|| panic!("OS can't spawn worker thread"))
                    .unwrap()
                    .join();
                // SAFETY: ends the child at once (not reached).
                unsafe { libc::_exit(0) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 1));
                let mut file = std::fs::File::from(memfd);
                file.rewind().unwrap();
                let mut text = String::new();
                file.read_to_string(&mut text).unwrap();
                assert!(
                    text.starts_with("{\"error\":\"thread 'peer-runtime' panicked at ")
                        && text.ends_with(": OS can't spawn worker thread\"}"),
                    "{text}"
                );
            }
        }
    }
}
