//! Errors from making or opening a named object, said plainly.
//!
//! Every named object ipclab makes is created exclusively (`O_CREAT|O_EXCL`,
//! `mkdir`, `mkfifo`) and opened without following symlinks
//! (`O_NOFOLLOW`), so a name that someone planted first (a 0666 file, a
//! symlink to somebody's file) makes creation fail instead of being joined.
//! This module words that failure so that a user sees what happened: the
//! errno's symbol (`EEXIST`, `ELOOP`), its description, and what it means.

use std::io;

/// `what` (e.g. `creating /dev/shm/NAME`) failed with `e`: an error whose
/// message names the errno symbol and, for `EEXIST` and `ELOOP`, says that
/// ipclab refused the object. The error kind is kept.
pub fn named_error(what: &str, e: impl Into<io::Error>) -> io::Error {
    let e: io::Error = e.into();
    let Some(code) = e.raw_os_error() else {
        return io::Error::new(e.kind(), format!("{what}: {e}"));
    };
    let errno = nix::errno::Errno::from_raw(code);
    let why = match code {
        libc::EEXIST => {
            "; the name exists already (planted by someone else?) and ipclab never joins \
             an object it did not create"
        }
        libc::ELOOP => "; the name is a symbolic link and ipclab does not follow links",
        _ => "",
    };
    io::Error::new(
        e.kind(),
        format!("{what}: {errno:?} ({}){why}", errno.desc()),
    )
}

#[cfg(test)]
mod tests {
    use super::named_error;

    #[test]
    fn the_errno_is_named() {
        let e = named_error("creating /x", rustix::io::Errno::EXIST);
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        let text = e.to_string();
        assert!(
            text.starts_with("creating /x: EEXIST (File exists); "),
            "{text}"
        );
        let e = named_error("opening /x", std::io::Error::from_raw_os_error(libc::ELOOP));
        assert!(e.to_string().contains("ELOOP"), "{e}");
        let e = named_error("x", std::io::Error::other("plain"));
        assert_eq!(e.to_string(), "x: plain");
    }
}
