//! `fifo`: two named pipes (`mkfifo`), one each way, opened by name after
//! the fork; length-prefixed frames ([`FramedStream`]).
//!
//! `prepare` makes a private directory `ipclab-<pid>-<32 hex>` (128 random bits,
//! mode 0700 set with `fchmod`) under `$XDG_RUNTIME_DIR`, or the temporary
//! directory when that is unset, and in it the FIFOs `c2s` and `s2c` (mode
//! 0600, also set with `fchmod`). Each side opens both relative to the
//! directory's descriptor, in an order that cannot deadlock: an `open` of a
//! FIFO blocks until the other end is opened too, so the server opens `c2s`
//! for reading then `s2c` for writing, and the client opens `c2s` for
//! writing then `s2c` for reading. When the server's second `open` returns,
//! both sides hold both FIFOs: the server removes them and the directory at
//! once. The guard removes them too, when a side died before that.

use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{CWD, Mode, OFlags, fchmod, mkdirat, mkfifoat, open, openat};
use rustix::io::Errno;

use super::exclusive::named_error;
use super::framed::FramedStream;
use crate::machine::read_proc;
use crate::objects::owned::{self, Identity};
use crate::transport::{
    ChannelConfig, Copies, Endpoint, Family, Info, Limit, Pair, Prepared, Transport,
};

pub struct Fifo;

const TO_SERVER: &str = "c2s";
const TO_CLIENT: &str = "s2c";

/// Where the private directories go.
fn base_dir() -> PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute() && p.is_dir())
        .unwrap_or_else(std::env::temp_dir)
}

/// A new name `ipclab-<pid>-<32 hex>`.
fn random_name() -> io::Result<OsString> {
    Ok(crate::objects::marks::random_name()?.into())
}

/// The private directory; removes its FIFOs and itself when dropped, if
/// still there (and still the directory made).
pub(crate) struct FifoDir {
    path: PathBuf,
    id: Identity,
}

impl FifoDir {
    /// Creates the directory at `path` (`mkdir` fails if the name exists,
    /// even as a symlink) and opens it without following a symlink.
    pub(crate) fn create_at(path: PathBuf) -> io::Result<(FifoDir, OwnedFd)> {
        mkdirat(CWD, &path, Mode::RWXU)
            .map_err(|e| named_error(&format!("creating the directory {}", path.display()), e))?;
        // Ours, just made, in a sticky (or private) directory: nobody else
        // can have replaced it yet.
        let dir = FifoDir {
            id: Identity::of_ours(&path)?,
            path,
        };
        let fd = open(
            &dir.path,
            OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| named_error(&format!("opening the directory {}", dir.path.display()), e))?;
        if Identity::of(&fd)? != dir.id {
            return Err(io::Error::other(format!(
                "{} was replaced",
                dir.path.display()
            )));
        }
        // The umask may have taken bits away: set the mode exactly.
        fchmod(&fd, Mode::RWXU)?;
        Ok((dir, fd))
    }
}

impl Drop for FifoDir {
    fn drop(&mut self) {
        // Errors are ignored: the usual one is ENOENT (the server already
        // removed everything), and a destructor cannot report.
        let _ = remove(&self.path, self.id);
    }
}

/// Removes both FIFOs, then the directory, if `dir` still leads to the
/// directory made (`id`); a missing one is no error.
fn remove(dir: &Path, id: Identity) -> io::Result<()> {
    owned::remove_dir_if(dir, id, &[TO_SERVER, TO_CLIENT])
}

/// Makes FIFO `name` in `dir`, mode 0600.
fn make_fifo(dir: &OwnedFd, name: &str) -> io::Result<()> {
    mkfifoat(dir, name, Mode::RUSR | Mode::WUSR)
        .map_err(|e| named_error(&format!("creating the FIFO {name}"), e))?;
    // A non-blocking read-only open of a FIFO returns at once, writer or not.
    let fd = openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    fchmod(&fd, Mode::RUSR | Mode::WUSR)?;
    Ok(())
}

/// Opens FIFO `name` in `dir`; blocks until the other end is opened.
fn open_fifo(dir: &OwnedFd, name: &str, access: OFlags) -> io::Result<OwnedFd> {
    loop {
        match openat(
            dir,
            name,
            access | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Err(Errno::INTR) => {}
            other => return Ok(other?),
        }
    }
}

struct Ends {
    dir: OwnedFd,
    path: PathBuf,
    id: Identity,
}

impl Transport for Fifo {
    fn info(&self) -> Info {
        Info {
            name: "fifo",
            family: Family::MessagePassing,
            sync: "kernel (blocking read)",
            summary: "two named pipes (mkfifo) in a private 0700 directory; length-prefixed frames",
            polls: false,
            copies: Copies::KERNEL,
        }
    }

    fn limits(&self) -> Vec<Limit> {
        let pipe_buffer = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .and_then(|(r, _w)| rustix::pipe::fcntl_getpipe_size(&r));
        vec![
            Limit::new(
                "pipe buffer (default)",
                pipe_buffer.map_or_else(|e| format!("unknown ({e})"), |b| format!("{b} bytes")),
            ),
            Limit::new("fs.pipe-max-size", read_proc("/proc/sys/fs/pipe-max-size")),
            Limit::new("directory", base_dir().display().to_string()),
        ]
    }

    fn prepare(&self, _: &ChannelConfig) -> io::Result<Prepared> {
        let (guard, dir) = FifoDir::create_at(base_dir().join(random_name()?))?;
        make_fifo(&dir, TO_SERVER)?;
        make_fifo(&dir, TO_CLIENT)?;
        let (path, id) = (guard.path.clone(), guard.id);
        Ok(Prepared::with_guard(Ends { dir, path, id }, guard))
    }
}

impl Pair for Ends {
    fn server(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        let rx = open_fifo(&self.dir, TO_SERVER, OFlags::RDONLY)?;
        let tx = open_fifo(&self.dir, TO_CLIENT, OFlags::WRONLY)?;
        // Both sides hold both FIFOs now: the names have done their job.
        remove(&self.path, self.id)?;
        Ok(Box::new(FramedStream::new(rx, tx)))
    }

    fn client(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        let tx = open_fifo(&self.dir, TO_SERVER, OFlags::WRONLY)?;
        let rx = open_fifo(&self.dir, TO_CLIENT, OFlags::RDONLY)?;
        Ok(Box::new(FramedStream::new(rx, tx)))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    use std::path::Path;

    use super::{Fifo, FifoDir, TO_CLIENT, TO_SERVER};
    use crate::transport::{ChannelConfig, Transport};

    /// Nobody ever opens the FIFOs (both sides died at once): the guard
    /// alone must leave nothing behind.
    #[test]
    fn private_modes_and_the_guard_cleans_up() {
        let config = ChannelConfig {
            size: 1,
            segment_size: None,
            segments: 1,
        };
        let prepared = Fifo.prepare(&config).unwrap();
        let dir = prepared
            .guard
            .downcast_ref::<FifoDir>()
            .unwrap()
            .path
            .clone();
        let name = dir.file_name().unwrap().to_str().unwrap();
        assert_eq!(
            crate::objects::marks::parse(name),
            Some((
                crate::objects::marks::Maker::Ipclab,
                std::process::id() as i32
            ))
        );
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&dir), 0o700);
        for name in [TO_SERVER, TO_CLIENT] {
            let fifo = dir.join(name);
            assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
            assert_eq!(mode(&fifo), 0o600);
        }
        drop(prepared);
        assert!(!dir.exists());
    }
}
