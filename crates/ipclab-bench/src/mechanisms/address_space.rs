//! The memory limits of this process. The address-space limit
//! (`RLIMIT_AS`, `ulimit -v`) is named when a mapping fails for want of
//! room: a bare "Cannot allocate memory" does not say that the limit, not
//! the machine, ran out. `RLIMIT_MEMLOCK` bounds pinned and registered
//! pages (io_uring buffers, MSG_ZEROCOPY sends).

use std::io;

use rustix::process::{Resource, getrlimit};

/// The address-space limit in bytes, if there is one.
fn limit() -> Option<u64> {
    getrlimit(Resource::As).current
}

/// The soft `RLIMIT_MEMLOCK` in bytes (pinned and registered pages count
/// against it); `None` when unlimited.
pub fn memlock() -> Option<u64> {
    getrlimit(Resource::Memlock).current
}

/// [`memlock`] for `ipclab list`: `N bytes` or `unlimited`.
pub fn memlock_text() -> String {
    memlock().map_or("unlimited".into(), |b| format!("{b} bytes"))
}

/// This process's address space in bytes (`VmSize` of `/proc/self/status`).
fn in_use() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmSize:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// "out of memory (the address-space limit, ulimit -v, is … KiB; this
/// process maps … KiB already)" when mapping `bytes` more would pass the
/// limit; `None` when there is no limit or it leaves room.
pub fn limit_note(bytes: usize) -> Option<String> {
    let limit = limit()?;
    let used = in_use()?;
    if used.saturating_add(bytes as u64) <= limit {
        return None;
    }
    Some(format!(
        "out of memory (the address-space limit, ulimit -v, is {} KiB; this process maps {} KiB already)",
        limit / 1024,
        used / 1024
    ))
}

/// The error of a failed mapping of `bytes` for `what`: names the
/// address-space limit when it explains an `ENOMEM`.
pub fn map_error(what: &str, bytes: usize, e: impl Into<io::Error>) -> io::Error {
    let e: io::Error = e.into();
    // In KiB, the unit of `ulimit -v` and of the note.
    let size = format!("{} KiB", bytes.div_ceil(1024));
    match limit_note(bytes) {
        Some(note) if e.raw_os_error() == Some(libc::ENOMEM) => io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!("cannot map {what} of {size}: {note}"),
        ),
        _ => io::Error::new(e.kind(), format!("cannot map {what} of {size}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a limit nothing is blamed on it, and the error keeps the
    /// size and the cause.
    #[test]
    fn no_limit_no_note() {
        if limit().is_some() {
            eprintln!("skipped: this test process runs under an address-space limit");
            return;
        }
        assert_eq!(limit_note(1 << 40), None);
        let e = map_error("the ring", 4 << 20, rustix::io::Errno::NOMEM);
        assert!(
            e.to_string()
                .starts_with("cannot map the ring of 4096 KiB: "),
            "{e}"
        );
    }
}
