//! A side whose shared memory is truncated under it fails with a report
//! instead of dying by `SIGBUS`.
//!
//! A file or POSIX shared memory object that a peer (or anyone with the
//! same user id) shrinks makes the next access to the lost pages raise
//! `SIGBUS`. A memfd is sealed against that and a System V segment cannot
//! be resized, but named objects can. So every side installs, before it
//! touches the channel, a `SIGBUS` handler that writes a report made in
//! advance into the side's report memfd and ends the process: the cell then
//! fails with "shared memory truncated under us (SIGBUS)".
//!
//! The handler does only async-signal-safe things: atomic loads, `pwrite`,
//! `ftruncate` and `_exit`. It never returns (returning would run the
//! faulting access again).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicUsize, Ordering};

/// The report memfd (raw: the handler cannot borrow).
static REPORT_FD: AtomicI32 = AtomicI32::new(-1);
/// The prepared report: a leaked buffer, never freed.
static REPORT: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static REPORT_LEN: AtomicUsize = AtomicUsize::new(0);

/// On `SIGBUS`, writes `report` (the whole content the supervisor will
/// read) into `fd` and exits with status 1. `fd` must stay open for the
/// life of the process.
pub fn report_on_sigbus(fd: BorrowedFd<'_>, report: Vec<u8>) -> io::Result<()> {
    let report: &'static [u8] = Box::leak(report.into_boxed_slice());
    REPORT_FD.store(fd.as_raw_fd(), Ordering::Relaxed);
    REPORT_LEN.store(report.len(), Ordering::Relaxed);
    // Release: pairs with the Acquire load in `on_sigbus`, which then sees
    // the descriptor and length stored above.
    REPORT.store(report.as_ptr().cast_mut(), Ordering::Release);

    // rustix has no `sigaction`, hence libc.
    // SAFETY: an all-zero `sigaction` is a valid value (no flags, empty
    // mask, SIG_DFL) that we then fill in.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_sigbus as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: `action.sa_mask` is a valid sigset_t to initialise.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: `action` is initialised and `on_sigbus` is an extern "C"
    // function that only makes async-signal-safe calls.
    if unsafe { libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

extern "C" fn on_sigbus(_: libc::c_int) {
    // Acquire: pairs with the Release store in `report_on_sigbus`.
    let ptr = REPORT.load(Ordering::Acquire);
    if !ptr.is_null() {
        let len = REPORT_LEN.load(Ordering::Relaxed);
        let fd = REPORT_FD.load(Ordering::Relaxed);
        // SAFETY: `ptr` and `len` describe a leaked buffer that lives as
        // long as the process; `pwrite` and `ftruncate` are
        // async-signal-safe and at worst fail on a bad descriptor.
        unsafe {
            let written = libc::pwrite(fd, ptr.cast(), len, 0);
            if written >= 0 {
                libc::ftruncate(fd, written as libc::off_t);
            }
        }
    }
    // SAFETY: `_exit` is async-signal-safe and ends the process at once.
    unsafe { libc::_exit(1) }
}
