//! Planted names: for every mechanism that creates a named object, a name
//! someone made first (a 0666 file with contents, a symlink to a file or a
//! directory of theirs) makes creation fail with `EEXIST` named in the
//! error, and the planted object is left exactly as it was. A name swapped
//! for a symlink after creation makes opening fail with `ELOOP`.
//!
//! Names are random in production; these tests call each mechanism's
//! creation function with a name of their own (real kernel objects).

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::fifo::FifoDir;
use super::posix_mq::create_queue_named;
use super::shm::cleanup::Cleanup;
use super::shm::file::MmapFile;
use super::shm::names::{random_name, sem_path, shm_path};
use super::shm::posix_sem;
use super::shm::posix_shm::PosixShm;
use super::shm::region::{Region, Side};

/// What the test puts at the name first.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// A regular file, mode 0666, with contents.
    File,
    /// A symlink to a file of the test's (mode 0644, with contents).
    LinkToFile,
    /// A symlink to an empty directory of the test's.
    LinkToDir,
}

const KINDS: [Kind; 3] = [Kind::File, Kind::LinkToFile, Kind::LinkToDir];
const CONTENTS: &str = "planted by someone else\n";

/// An object planted at `path`; removed (with its target) on drop.
struct Planted {
    path: PathBuf,
    kind: Kind,
    target: PathBuf,
}

impl Planted {
    fn new(path: &Path, kind: Kind) -> Planted {
        let target =
            std::env::temp_dir().join(format!("ipclab-test-target-{}", random_name().unwrap()));
        let planted = Planted {
            path: path.to_path_buf(),
            kind,
            target,
        };
        match kind {
            Kind::File => {
                std::fs::write(path, CONTENTS).unwrap();
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).unwrap();
            }
            Kind::LinkToFile => {
                std::fs::write(&planted.target, CONTENTS).unwrap();
                std::fs::set_permissions(&planted.target, std::fs::Permissions::from_mode(0o644))
                    .unwrap();
                std::os::unix::fs::symlink(&planted.target, path).unwrap();
            }
            Kind::LinkToDir => {
                std::fs::create_dir(&planted.target).unwrap();
                std::os::unix::fs::symlink(&planted.target, path).unwrap();
            }
        }
        planted
    }

    /// Asserts that the creation failed as it must and touched nothing.
    fn assert_refused<T>(&self, what: &str, result: io::Result<T>) {
        let at = format!("{what}, {:?} planted at {}", self.kind, self.path.display());
        let Err(e) = result else {
            panic!("{at}: creation succeeded");
        };
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{at}: {e}");
        let text = e.to_string();
        assert!(
            text.contains("EEXIST") && text.contains("never joins"),
            "{at}: {text}"
        );
        let meta = std::fs::symlink_metadata(&self.path).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        match self.kind {
            Kind::File => {
                assert!(meta.is_file(), "{at}");
                assert_eq!(mode(&self.path), 0o666, "{at}");
                assert_eq!(
                    std::fs::read_to_string(&self.path).unwrap(),
                    CONTENTS,
                    "{at}"
                );
            }
            Kind::LinkToFile => {
                assert_eq!(std::fs::read_link(&self.path).unwrap(), self.target, "{at}");
                assert_eq!(mode(&self.target), 0o644, "{at}");
                assert_eq!(
                    std::fs::read_to_string(&self.target).unwrap(),
                    CONTENTS,
                    "{at}"
                );
            }
            Kind::LinkToDir => {
                assert_eq!(std::fs::read_link(&self.path).unwrap(), self.target, "{at}");
                let inside = std::fs::read_dir(&self.target).unwrap().count();
                assert_eq!(
                    inside, 0,
                    "{at}: something was made in the planted directory"
                );
            }
        }
    }
}

impl Drop for Planted {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_file(&self.target);
        let _ = std::fs::remove_dir(&self.target);
    }
}

/// A fresh POSIX name (`/NAME`), whatever format production uses.
fn posix_name() -> String {
    format!("/{}", random_name().unwrap())
}

fn no_init() -> impl FnMut(&super::shm::region::Mapping, &mut Cleanup) -> io::Result<()> {
    |_, _| Ok(())
}

#[test]
fn posix_shm_refuses_a_planted_name() {
    for kind in KINDS {
        let name = posix_name();
        let planted = Planted::new(Path::new(&shm_path(&name)), kind);
        let mut cleanup = Cleanup::default();
        let got = PosixShm::create_named(name, 4096, &mut cleanup, &mut no_init());
        planted.assert_refused("posix shm", got);
        assert!(cleanup.objects().is_empty(), "{:?}", cleanup.objects());
    }
}

#[test]
fn posix_semaphores_refuse_a_planted_name() {
    for kind in KINDS {
        let name = posix_name();
        let planted = Planted::new(Path::new(&sem_path(&name)), kind);
        let mut cleanup = Cleanup::default();
        let got = posix_sem::create_named(&name, 0, &mut cleanup);
        planted.assert_refused("posix semaphore", got);
        assert!(cleanup.objects().is_empty(), "{:?}", cleanup.objects());
    }
}

#[test]
fn mmap_file_refuses_a_planted_directory_name() {
    for kind in KINDS {
        let dir = std::env::temp_dir().join(random_name().unwrap());
        let planted = Planted::new(&dir, kind);
        let mut cleanup = Cleanup::default();
        let got = MmapFile::create_in(dir, 4096, &mut cleanup, &mut no_init());
        planted.assert_refused("mmap-file directory", got);
        assert!(cleanup.objects().is_empty(), "{:?}", cleanup.objects());
    }
}

#[test]
fn fifo_refuses_a_planted_directory_name() {
    for kind in KINDS {
        let dir = std::env::temp_dir().join(random_name().unwrap());
        let planted = Planted::new(&dir, kind);
        planted.assert_refused("fifo directory", FifoDir::create_at(dir));
    }
}

#[cfg(feature = "peers")]
#[test]
fn iceoryx2_refuses_a_planted_root() {
    use super::peers::iceoryx2::Iox2Guard;
    for kind in KINDS {
        let dir = std::env::temp_dir().join(random_name().unwrap());
        let planted = Planted::new(&dir, kind);
        planted.assert_refused("iceoryx2 root", Iox2Guard::new_at(dir));
    }
}

/// A queue cannot be a symlink (the mqueue file system has none), so the
/// planted object is a queue of mode 0666 holding a message.
#[test]
fn posix_mq_refuses_a_planted_queue() {
    use nix::mqueue::{MQ_OFlag, MqAttr, mq_getattr, mq_open, mq_receive, mq_send, mq_unlink};
    use nix::sys::stat::Mode;

    let name = posix_name();
    let attr = MqAttr::new(0, 4, 64, 0);
    let planted = mq_open(
        name.as_str(),
        MQ_OFlag::O_CREAT | MQ_OFlag::O_EXCL | MQ_OFlag::O_RDWR | MQ_OFlag::O_NONBLOCK,
        Mode::from_bits_truncate(0o666),
        Some(&attr),
    )
    .unwrap();
    rustix::fs::fchmod(&planted, rustix::fs::Mode::from_raw_mode(0o666)).unwrap();
    mq_send(&planted, CONTENTS.as_bytes(), 0).unwrap();

    let got = create_queue_named(name.clone(), 64, 4);
    let Err(e) = got else {
        panic!("creation over a planted queue succeeded");
    };
    let unlinked = mq_unlink(name.as_str());
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
    assert!(e.to_string().contains("EEXIST"), "{e}");
    unlinked.expect("the planted queue was still there");
    let mode = rustix::fs::fstat(&planted).unwrap().st_mode & 0o7777;
    assert_eq!(mode, 0o666);
    assert_eq!(mq_getattr(&planted).unwrap().curmsgs(), 1);
    let mut buf = [0u8; 64];
    let mut prio = 0;
    let n = mq_receive(&planted, &mut buf, &mut prio).unwrap();
    assert_eq!(&buf[..n], CONTENTS.as_bytes());
}

/// After creation, a name replaced by a symlink is not followed: the side
/// that opens it gets `ELOOP`, named.
#[test]
fn a_name_swapped_for_a_symlink_is_not_followed() {
    let target = Planted::new(
        &std::env::temp_dir().join(format!("ipclab-test-{}", random_name().unwrap())),
        Kind::File,
    );
    let expect_eloop = |what: &str, got: io::Result<_>| {
        let e = got
            .err()
            .unwrap_or_else(|| panic!("{what}: followed the symlink"));
        assert!(e.to_string().contains("ELOOP"), "{what}: {e}");
    };

    let name = posix_name();
    let mut cleanup = Cleanup::default();
    let mut shm = PosixShm::create_named(name.clone(), 4096, &mut cleanup, &mut no_init()).unwrap();
    std::fs::remove_file(shm_path(&name)).unwrap();
    std::os::unix::fs::symlink(&target.path, shm_path(&name)).unwrap();
    expect_eloop("posix shm", PosixShm::attach(&mut shm, Side::Client, 4096));
    std::fs::remove_file(shm_path(&name)).unwrap();

    let dir = std::env::temp_dir().join(random_name().unwrap());
    let mut file = MmapFile::create_in(dir.clone(), 4096, &mut cleanup, &mut no_init()).unwrap();
    std::fs::remove_file(dir.join("ring")).unwrap();
    std::os::unix::fs::symlink(&target.path, dir.join("ring")).unwrap();
    expect_eloop("mmap-file", MmapFile::attach(&mut file, Side::Client, 4096));
    std::fs::remove_file(dir.join("ring")).unwrap();
    drop(cleanup);
    assert!(!dir.exists());
    target.assert_untouched_file();
}

impl Planted {
    fn assert_untouched_file(&self) {
        let mode = std::fs::metadata(&self.path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o666);
        assert_eq!(std::fs::read_to_string(&self.path).unwrap(), CONTENTS);
    }
}

/// A name removed by the sides (as after every attach) and planted again
/// by another user (uid 65534: needs root) before the supervisor's guard
/// runs: the guard leaves the planted object exactly as it was.
#[test]
fn a_name_planted_again_after_removal_is_left_alone() {
    use std::os::unix::fs::MetadataExt;
    if !rustix::process::geteuid().is_root() {
        println!("skipped: planting another user's objects needs root");
        return;
    }
    let replant = |path: &Path| {
        let planted = Planted::new(path, Kind::File);
        let nobody = Some(rustix::process::Uid::from_raw(65534));
        rustix::fs::chown(path, nobody, None).unwrap();
        let ino = std::fs::symlink_metadata(path).unwrap().ino();
        (planted, ino)
    };
    let check = |what: &str, (planted, ino): &(Planted, u64)| {
        let meta = std::fs::symlink_metadata(&planted.path)
            .unwrap_or_else(|e| panic!("{what}: the planted object was removed: {e}"));
        assert_eq!((meta.ino(), meta.uid()), (*ino, 65534), "{what}");
        planted.assert_untouched_file();
    };

    let name = posix_name();
    let mut cleanup = Cleanup::default();
    PosixShm::create_named(name.clone(), 4096, &mut cleanup, &mut no_init()).unwrap();
    std::fs::remove_file(shm_path(&name)).unwrap();
    let shm = replant(Path::new(&shm_path(&name)));
    let name = posix_name();
    posix_sem::create_named(&name, 0, &mut cleanup).unwrap();
    std::fs::remove_file(sem_path(&name)).unwrap();
    let sem = replant(Path::new(&sem_path(&name)));
    let dir = std::env::temp_dir().join(random_name().unwrap());
    MmapFile::create_in(dir.clone(), 4096, &mut cleanup, &mut no_init()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let file_dir = replant(&dir);
    drop(cleanup);
    check("posix shm", &shm);
    check("posix semaphore", &sem);
    check("mmap-file directory", &file_dir);

    let dir = std::env::temp_dir().join(random_name().unwrap());
    let (guard, _fd) = FifoDir::create_at(dir.clone()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let fifo_dir = replant(&dir);
    drop(guard);
    check("fifo directory", &fifo_dir);
}
