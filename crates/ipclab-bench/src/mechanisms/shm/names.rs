//! Unguessable names and owner-only modes for the objects a channel makes.
//!
//! Every named object is `ipclab-<pid>-<32 hex digits>`
//! ([`crate::objects::marks`]): 128 random bits from `getrandom`, so nobody
//! can plant the name before us, and the prefix and creator pid let
//! `ipclab ls`/`clean` (and the leak tests) find what ipclab left behind. Modes are set
//! with `fchmod` (or `chmod`) after creation: the mode given to `open` is
//! reduced by the umask, `fchmod`'s is not.

use std::io;

/// Every name ipclab gives a shared-memory object starts with this.
pub const PREFIX: &str = "ipclab-";

/// The owner-only mode of every object a channel creates.
pub const OWNER_ONLY: u32 = 0o600;

pub use crate::objects::marks::{random_name, random_posix_name};

/// Where Linux keeps the POSIX shared memory object `name` (`/NAME`).
pub fn shm_path(name: &str) -> String {
    format!("/dev/shm/{}", name.trim_start_matches('/'))
}

/// Where glibc keeps the named semaphore `name` (`/NAME`).
pub fn sem_path(name: &str) -> String {
    format!("/dev/shm/sem.{}", name.trim_start_matches('/'))
}

/// An error unless the permission bits of `mode` are exactly `want`.
///
/// Creation sets the mode with `fchmod`, so this only fails on a bug or a
/// file system that ignores modes; it runs in debug builds (the tests).
pub fn check_mode(what: &str, mode: u32, want: u32) -> io::Result<()> {
    if cfg!(debug_assertions) && mode & 0o777 != want {
        return Err(io::Error::other(format!(
            "{what} has mode {:o}, expected {want:o}",
            mode & 0o777
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefixed_and_distinct() {
        let (a, b) = (random_posix_name().unwrap(), random_posix_name().unwrap());
        assert!(a.starts_with("/ipclab-") && a.len() > 1 + PREFIX.len() + 33);
        assert_ne!(a, b);
    }
}
