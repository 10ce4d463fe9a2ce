//! A regular file mapped `MAP_SHARED` by both sides.
//!
//! `prepare` makes a private directory `ipclab-<pid>-<32 hex>` (mode 0700) in
//! the temporary directory (`$TMPDIR` or `/tmp`), and in it the file
//! `ring` with `O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600 set with `fchmod`,
//! sized and allocated. Each side opens the path and maps it; once both
//! have, the file and the directory are removed (the pages live on in the
//! mappings).

use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use rustix::fs::{Mode, OFlags, fchmod, mkdir, open};

use super::cleanup::{Cleanup, Object};
use super::names::{OWNER_ONLY, check_mode, random_name};
use super::region::{
    Init, Mapping, Region, Side, check_file, fault_truncate_later, size_and_allocate,
};
use crate::mechanisms::exclusive::named_error;
use crate::objects::owned::{self, Identity};
use crate::transport::Limit;

const PRIVATE_DIR: u32 = 0o700;

/// A file in a private directory, opened by path.
pub struct MmapFile;

/// The paths, and the objects made there: only they are ever removed.
pub struct MmapFileHandle {
    dir: PathBuf,
    dir_id: Identity,
    file: PathBuf,
    file_id: Identity,
}

impl Region for MmapFile {
    type Handle = MmapFileHandle;

    fn create(len: usize, cleanup: &mut Cleanup, init: Init<'_>) -> io::Result<MmapFileHandle> {
        MmapFile::create_in(
            std::env::temp_dir().join(random_name()?),
            len,
            cleanup,
            init,
        )
    }

    fn attach(handle: &mut MmapFileHandle, side: Side, len: usize) -> io::Result<Mapping> {
        let fd = open_checked(handle, len)?;
        fault_truncate_later(&fd, side)?;
        Mapping::shared_fd(&fd, len)
    }

    fn map_again(handle: &MmapFileHandle, len: usize) -> io::Result<Mapping> {
        Mapping::shared_fd(&open_checked(handle, len)?, len)
    }

    fn unlink(handle: &MmapFileHandle) -> io::Result<()> {
        owned::remove_if(&handle.file, handle.file_id, false)?;
        owned::remove_if(&handle.dir, handle.dir_id, true)
    }

    fn limits() -> Vec<Limit> {
        vec![Limit::new(
            "file directory",
            std::env::temp_dir().display().to_string(),
        )]
    }
}

impl MmapFile {
    /// [`Region::create`] with the private directory at `dir`, which must
    /// not exist: `mkdir` fails on any existing name, a symlink included.
    pub(crate) fn create_in(
        dir: PathBuf,
        len: usize,
        cleanup: &mut Cleanup,
        init: Init<'_>,
    ) -> io::Result<MmapFileHandle> {
        mkdir(&dir, Mode::from_raw_mode(PRIVATE_DIR))
            .map_err(|e| named_error(&format!("creating the directory {}", dir.display()), e))?;
        // Ours, just made, in a sticky (or private) directory: nobody else
        // can have replaced it yet.
        let dir_id = Identity::of_ours(&dir)?;
        cleanup.push(Object::Dir(dir.clone(), dir_id));
        let dir_fd = open(
            &dir,
            OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| named_error(&format!("opening the directory {}", dir.display()), e))?;
        if Identity::of(&dir_fd)? != dir_id {
            return Err(io::Error::other(format!("{} was replaced", dir.display())));
        }
        fchmod(&dir_fd, Mode::from_raw_mode(PRIVATE_DIR))?;
        check_mode(
            "the private directory",
            rustix::fs::fstat(&dir_fd)?.st_mode,
            PRIVATE_DIR,
        )?;
        let file = dir.join("ring");
        let fd = rustix::fs::openat(
            &dir_fd,
            "ring",
            OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(OWNER_ONLY),
        )
        .map_err(|e| named_error(&format!("creating {}", file.display()), e))?;
        let file_id = Identity::of(&fd)?;
        cleanup.push(Object::File(file.clone(), file_id));
        fchmod(&fd, Mode::from_raw_mode(OWNER_ONLY))?;
        size_and_allocate(&fd, len)?;
        init(&Mapping::shared_fd(&fd, len)?, cleanup)?;
        Ok(MmapFileHandle {
            dir,
            dir_id,
            file,
            file_id,
        })
    }
}

/// Opens the channel's file (never through a symlink) and checks it.
fn open_checked(handle: &MmapFileHandle, len: usize) -> io::Result<OwnedFd> {
    let fd = open(
        &handle.file,
        OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| named_error(&format!("opening {}", handle.file.display()), e))?;
    check_file("the mapped file", &fd, len)?;
    Ok(fd)
}
