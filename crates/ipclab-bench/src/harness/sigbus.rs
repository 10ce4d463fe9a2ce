//! A side whose shared memory faults (`SIGBUS`) fails with a report
//! instead of dying by the signal, and the report says why.
//!
//! A file or POSIX shared memory object that a peer (or anyone with the
//! same user id) shrinks makes the next access to the lost pages raise
//! `SIGBUS`; so does a page that a full file system (a tmpfs such as
//! `/dev/shm`) cannot allocate. So every side installs, before it touches
//! the channel, a `SIGBUS` handler that writes a report made in advance
//! into the side's report memfd and ends the process. The handler tells
//! the two causes apart from the faulting address ([`sigbus_cause`]):
//! "shared memory truncated under us (SIGBUS)", "the file system backing
//! the shared memory (e.g. /dev/shm) is full …", or both possibilities when
//! it cannot tell.
//!
//! The handler does only async-signal-safe things: atomic loads, system
//! calls into stack buffers (`open`, `read`, `fstat`, `fstatfs`), `pwrite`,
//! `ftruncate` and `_exit`. It never returns (returning would run the
//! faulting access again).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicPtr, Ordering};

use super::sigbus_cause::{self, Cause};

/// What a peer's truncation makes the side report.
pub const TRUNCATED: &str = "shared memory truncated under us (SIGBUS)";
/// What a full file system makes the side report; [`FREE`] stands for
/// the free KiB.
pub const FULL: &str = "the file system backing the shared memory (e.g. /dev/shm) is full: \
     the kernel could not allocate a page (ENOSPC; SIGBUS; @@FREE@@ KiB free now)";
/// What the side reports when the handler cannot tell.
pub const EITHER: &str = "shared memory truncated under us, or the file system backing it \
     (e.g. /dev/shm) is full (SIGBUS)";
/// The placeholder in [`FULL`].
pub const FREE: &str = "@@FREE@@";

/// The prepared reports, leaked: they live as long as the process.
struct Reports {
    fd: i32,
    truncated: &'static [u8],
    either: &'static [u8],
    /// The full-file-system report before and after the free KiB.
    full: (&'static [u8], &'static [u8]),
}

static REPORTS: AtomicPtr<Reports> = AtomicPtr::new(std::ptr::null_mut());

fn leak(v: Vec<u8>) -> &'static [u8] {
    Box::leak(v.into_boxed_slice())
}

/// On `SIGBUS`, writes `report(cause)` (the whole content the supervisor
/// will read; `cause` is [`TRUNCATED`], [`FULL`] or [`EITHER`]) into `fd`
/// and exits with status 1. The reports are made now; `fd` must stay open
/// for the life of the process.
pub fn report_on_sigbus(fd: BorrowedFd<'_>, report: impl Fn(&str) -> Vec<u8>) -> io::Result<()> {
    let full = report(FULL);
    let split = full
        .windows(FREE.len())
        .position(|w| w == FREE.as_bytes())
        .ok_or_else(|| io::Error::other("the SIGBUS report lost its placeholder"))?;
    let reports = Reports {
        fd: fd.as_raw_fd(),
        truncated: leak(report(TRUNCATED)),
        either: leak(report(EITHER)),
        full: (
            leak(full[..split].to_vec()),
            leak(full[split + FREE.len()..].to_vec()),
        ),
    };
    // Release: pairs with the Acquire load in `on_sigbus`, which then sees
    // the reports written above.
    REPORTS.store(Box::leak(Box::new(reports)), Ordering::Release);

    // rustix has no `sigaction`, hence libc.
    // SAFETY: an all-zero `sigaction` is a valid value (no flags, empty
    // mask, SIG_DFL) that we then fill in.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_sigbus
        as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
        as libc::sighandler_t;
    action.sa_flags = libc::SA_SIGINFO;
    // SAFETY: `action.sa_mask` is a valid sigset_t to initialise.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: `action` is initialised and `on_sigbus` is an extern "C"
    // function that only makes async-signal-safe calls.
    if unsafe { libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

extern "C" fn on_sigbus(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // Acquire: pairs with the Release store in `report_on_sigbus`.
    let reports = REPORTS.load(Ordering::Acquire);
    if !reports.is_null() {
        // SAFETY: a non-null pointer is the leaked `Reports`, never freed.
        let reports = unsafe { &*reports };
        // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo_t;
        // for SIGBUS `si_addr` is the faulting address.
        let addr = unsafe { (*info).si_addr() } as usize;
        let mut digits = [0u8; 20];
        let pieces: [&[u8]; 3] = match sigbus_cause::cause(addr) {
            Cause::Truncated => [reports.truncated, &[], &[]],
            Cause::Full { free_kib } => [
                reports.full.0,
                match free_kib {
                    Some(kib) => sigbus_cause::decimal(&mut digits, kib),
                    None => b"?",
                },
                reports.full.1,
            ],
            Cause::Unknown => [reports.either, &[], &[]],
        };
        let mut at = 0;
        for piece in pieces {
            let mut done = 0;
            while done < piece.len() {
                let rest = &piece[done..];
                // SAFETY: `rest` is a live slice (leaked or on this stack);
                // `pwrite` is async-signal-safe and at worst fails on a bad
                // descriptor.
                let written = unsafe {
                    libc::pwrite(
                        reports.fd,
                        rest.as_ptr().cast(),
                        rest.len(),
                        at as libc::off_t,
                    )
                };
                match written {
                    n if n > 0 => {
                        done += n as usize;
                        at += n as usize;
                    }
                    // Interrupted: again. Anything else: give up on the report.
                    -1 if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => {}
                    _ => break,
                }
            }
        }
        // SAFETY: `ftruncate` is async-signal-safe; it cuts whatever a
        // longer earlier content left after the report.
        unsafe { libc::ftruncate(reports.fd, at as libc::off_t) };
    }
    // SAFETY: `_exit` is async-signal-safe and ends the process at once.
    unsafe { libc::_exit(1) }
}
