//! Writing the files a run leaves (exports, plots, `index.html`): only
//! ever a regular file, whole, through a temporary file and a rename.
//!
//! Whatever is at the path must be nothing or a regular file: a symbolic
//! link is refused (never written through, never replaced), and so is a
//! directory, a FIFO, a socket or a device node, before anything runs and
//! again at every write. The temporary file is `.ipclab-<32 hex>.tmp` in the
//! same folder (128 random bits: nobody can plant it in advance), created
//! with `O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600, and removed if anything
//! fails. The rename is `RENAME_NOREPLACE` onto nothing, or
//! `RENAME_EXCHANGE` with the old file, which is then looked at and
//! swapped back if it is not a regular file: something planted between
//! the check and the rename is never replaced. (A file system without
//! those flags gets a plain rename after the check.)

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

/// What is at a path now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Nothing,
    Regular,
}

/// The folder of `path`, open for the `*at` calls, and the file's name in
/// it.
struct Place<'a> {
    path: &'a Path,
    dir: OwnedFd,
    name: &'a std::ffi::OsStr,
}

impl<'a> Place<'a> {
    fn open(path: &'a Path) -> Result<Self> {
        let name = path
            .file_name()
            .ok_or_else(|| anyhow!("cannot write {}: it names no file", path.display()))?;
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let dir = rustix::fs::openat(
            CWD,
            parent,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| anyhow!("cannot write {}: {}: {e}", path.display(), parent.display()))?;
        Ok(Place { path, dir, name })
    }

    /// `lstat` of the target: nothing, a regular file, or an error naming
    /// what else is there.
    fn target(&self) -> Result<Target> {
        let st = match rustix::fs::statat(&self.dir, self.name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => return Ok(Target::Nothing),
            Err(e) => bail!("cannot write {}: {e}", self.path.display()),
            Ok(st) => st,
        };
        let what = match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => return Ok(Target::Regular),
            FileType::Directory => "it is a directory",
            FileType::Symlink => {
                "it is a symbolic link (ipclab does not write through links: name the file itself)"
            }
            FileType::Fifo => "it is a FIFO, not a regular file",
            FileType::Socket => "it is a socket, not a regular file",
            FileType::CharacterDevice | FileType::BlockDevice => {
                "it is a device node, not a regular file"
            }
            FileType::Unknown => "it is not a regular file",
        };
        bail!("cannot write {}: {what}", self.path.display())
    }
}

/// A temporary file in the target's folder, removed when dropped unless
/// it was renamed into place.
struct Temp<'a> {
    place: &'a Place<'a>,
    name: String,
    file: Option<File>,
    renamed: bool,
}

impl<'a> Temp<'a> {
    fn create(place: &'a Place<'a>) -> Result<Self> {
        let fail = |e: &dyn std::fmt::Display| {
            anyhow!(
                "cannot write {} (no temporary file can be made beside it: {e})",
                place.path.display()
            )
        };
        let name = format!(
            ".ipclab-{}.tmp",
            crate::objects::marks::random_hex(16).map_err(|e| fail(&e))?
        );
        let fd = rustix::fs::openat(
            &place.dir,
            &name,
            OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| fail(&e))?;
        let temp = Temp {
            place,
            name,
            file: Some(File::from(fd)),
            renamed: false,
        };
        // 0600 whatever the umask (which may only have narrowed it).
        if let Some(f) = &temp.file {
            rustix::fs::fchmod(f, Mode::from_raw_mode(0o600)).map_err(|e| fail(&e))?;
        }
        Ok(temp)
    }

    /// Renames the temporary file over the target, which must still be
    /// nothing or a regular file; see the module's documentation.
    fn rename_into_place(mut self) -> Result<()> {
        drop(self.file.take());
        let (dir, path) = (&self.place.dir, self.place.path);
        let cannot = |e: Errno| anyhow!("cannot write {}: {e}", path.display());
        // Twice at most: a file that appears between the check and a
        // RENAME_NOREPLACE is looked at again.
        for _ in 0..2 {
            let flags = match self.place.target()? {
                Target::Nothing => RenameFlags::NOREPLACE,
                Target::Regular => RenameFlags::EXCHANGE,
            };
            match rustix::fs::renameat_with(dir, &self.name, dir, self.place.name, flags) {
                Ok(()) if flags == RenameFlags::NOREPLACE => {
                    self.renamed = true;
                    return Ok(());
                }
                Ok(()) => return self.undo_unless_regular(),
                Err(Errno::EXIST) => continue,
                // A file system without renameat2's flags.
                Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {
                    rustix::fs::renameat(dir, &self.name, dir, self.place.name).map_err(cannot)?;
                    self.renamed = true;
                    return Ok(());
                }
                Err(e) => return Err(cannot(e)),
            }
        }
        bail!("cannot write {}: it keeps changing", path.display())
    }

    /// After a `RENAME_EXCHANGE`, the old object has the temporary name: a
    /// regular file is left for Drop to remove; anything else (planted
    /// since the check) is swapped back and refused.
    fn undo_unless_regular(&self) -> Result<()> {
        let (dir, path) = (&self.place.dir, self.place.path);
        let cannot = |e: Errno| anyhow!("cannot write {}: {e}", path.display());
        let old = rustix::fs::statat(dir, &self.name, AtFlags::SYMLINK_NOFOLLOW).map_err(cannot)?;
        if FileType::from_raw_mode(old.st_mode) == FileType::RegularFile {
            return Ok(());
        }
        rustix::fs::renameat_with(dir, &self.name, dir, self.place.name, RenameFlags::EXCHANGE)
            .map_err(cannot)?;
        // The target is back as it was: say what it is.
        self.place.target()?;
        bail!("cannot write {}: it changed meanwhile", path.display())
    }
}

impl Drop for Temp<'_> {
    fn drop(&mut self) {
        if !self.renamed {
            // Nothing more can be done about a failure here.
            let _ = rustix::fs::unlinkat(&self.place.dir, &self.name, AtFlags::empty());
        }
    }
}

/// Checks, before a run, that `path` can be written: nothing or a regular
/// file is there and a temporary file can be made beside it (and is
/// removed at once).
pub fn check_writable(path: &Path) -> Result<()> {
    let place = Place::open(path)?;
    place.target()?;
    Temp::create(&place).map(drop)
}

/// Writes `content` to `path` whole (see the module's documentation).
pub fn write_atomically(path: &Path, content: &[u8]) -> Result<()> {
    let place = Place::open(path)?;
    place.target()?;
    let mut temp = Temp::create(&place)?;
    temp.file
        .as_mut()
        .expect("a new temporary file is open")
        .write_all(content)
        .with_context(|| format!("cannot write {}", path.display()))?;
    temp.rename_into_place()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(std::path::PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            let d =
                std::env::temp_dir().join(format!("ipclab-files-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            Dir(d)
        }
        fn names(&self) -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(&self.0)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_new_file_and_a_regular_file_are_written_whole_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let d = Dir::new("new");
        let p = d.0.join("out.json");
        write_atomically(&p, b"one").unwrap();
        write_atomically(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(d.names(), ["out.json"]);
    }

    /// What a write finds at the path when it comes (after the check
    /// before the run): refused, left as it was, no temporary file left.
    #[test]
    fn a_write_onto_a_fifo_or_a_link_made_since_the_check_is_refused() {
        use std::os::unix::fs::MetadataExt;
        let d = Dir::new("late");
        let (fifo, link) = (d.0.join("fifo"), d.0.join("link"));
        check_writable(&fifo).unwrap();
        check_writable(&link).unwrap();
        rustix::fs::mkfifoat(CWD, &fifo, Mode::from_raw_mode(0o600)).unwrap();
        std::fs::write(d.0.join("target"), "keep").unwrap();
        std::os::unix::fs::symlink("target", &link).unwrap();
        let names = d.names();
        for (p, what) in [(&fifo, "a FIFO"), (&link, "a symbolic link")] {
            let ino = std::fs::symlink_metadata(p).unwrap().ino();
            let e = write_atomically(p, b"data").unwrap_err().to_string();
            assert!(e.contains(what), "{e}");
            assert_eq!(std::fs::symlink_metadata(p).unwrap().ino(), ino);
        }
        assert_eq!(d.names(), names);
        assert_eq!(std::fs::read(d.0.join("target")).unwrap(), b"keep");
    }

    #[test]
    fn a_path_without_a_folder_or_a_name_is_one_error() {
        assert!(
            write_atomically(Path::new("/nonexistent-dir/x"), b"")
                .unwrap_err()
                .to_string()
                .starts_with("cannot write /nonexistent-dir/x")
        );
        assert!(check_writable(Path::new("/")).is_err());
    }
}
