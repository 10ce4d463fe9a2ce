//! Naming the kernel limit behind a failure to start a cell's pairs.
//!
//! With many pairs a cell can run out of what the kernel allows one user or
//! the whole machine: open files, processes, queues. The mechanisms name
//! their own limits where they make the object (`msgget`, `mq_open`); this
//! adds the limits of the harness's own calls (`fork`, descriptors), with
//! their values, so that the cell's error says what to raise.

use std::io;

use rustix::process::{Resource, getrlimit};

/// `e` with the limit its errno points to, when it points to one and the
/// message does not name it already.
pub fn name_the_limit(e: anyhow::Error) -> anyhow::Error {
    let text = format!("{e:#}");
    let limit = match errno_of(&e) {
        Some(libc::EMFILE) if !text.contains("RLIMIT") => Some(format!(
            "open files per process: RLIMIT_NOFILE (ulimit -n) is {}",
            soft(Resource::Nofile)
        )),
        Some(libc::ENFILE) => Some(format!(
            "open files on the machine: fs.file-max is {}",
            proc_value("/proc/sys/fs/file-max")
        )),
        Some(libc::EAGAIN) if text.contains("fork") => Some(format!(
            "processes per user: RLIMIT_NPROC (ulimit -u) is {}",
            soft(Resource::Nproc)
        )),
        _ => None,
    };
    match limit {
        Some(limit) => e.context(format!("a kernel limit was reached ({limit})")),
        None => e,
    }
}

/// The errno at the root of `e`, if any.
fn errno_of(e: &anyhow::Error) -> Option<i32> {
    e.chain().find_map(|cause| {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return io.raw_os_error();
        }
        if let Some(errno) = cause.downcast_ref::<nix::errno::Errno>() {
            return Some(*errno as i32);
        }
        cause
            .downcast_ref::<rustix::io::Errno>()
            .map(|e| e.raw_os_error())
    })
}

fn soft(resource: Resource) -> String {
    match getrlimit(resource).current {
        Some(n) => n.to_string(),
        None => "unlimited".into(),
    }
}

fn proc_value(path: &str) -> String {
    std::fs::read_to_string(path).map_or_else(|_| "unknown".into(), |s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exhausted_descriptor_table_names_its_limit() {
        let e = anyhow::Error::from(io::Error::from_raw_os_error(libc::EMFILE)).context("pipe2");
        let line = format!("{:#}", name_the_limit(e));
        assert!(line.contains("RLIMIT_NOFILE (ulimit -n) is "), "{line}");
        let e = anyhow::Error::from(nix::errno::Errno::EAGAIN).context("fork");
        assert!(format!("{:#}", name_the_limit(e)).contains("RLIMIT_NPROC"));
        let other = anyhow::Error::from(io::Error::from_raw_os_error(libc::EINVAL));
        assert_eq!(
            format!("{:#}", name_the_limit(other)),
            "Invalid argument (os error 22)"
        );
    }
}
