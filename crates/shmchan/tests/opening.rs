//! Making and joining channels: every refusal has a typed error, and no
//! name is left in /dev/shm.

mod common;

use std::os::fd::{AsRawFd, OwnedFd};

use common::in_dev_shm;
use rustix::fs::{Mode, OFlags};
use shmchan::{Error, Options};

fn name(tag: &str) -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    format!("/shmchan-test-{tag}-{}", u64::from_le_bytes(b))
}

/// Plants an object of `size` bytes under `name`, as a stranger would.
fn plant(name: &str, size: u64, mode: u32) -> OwnedFd {
    let flags = rustix::shm::OFlags::CREATE | rustix::shm::OFlags::EXCL | rustix::shm::OFlags::RDWR;
    let fd = rustix::shm::open(name, flags, Mode::from_raw_mode(mode)).unwrap();
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).unwrap();
    rustix::fs::ftruncate(&fd, size).unwrap();
    fd
}

/// Opens the object called `name` directly (a second open file description).
fn open_raw(name: &str) -> OwnedFd {
    rustix::shm::open(name, rustix::shm::OFlags::RDWR, Mode::empty()).unwrap()
}

#[test]
fn a_missing_name_does_not_exist() {
    let err = Options::new().open_receiver(&name("missing")).unwrap_err();
    assert!(matches!(err, Error::DoesNotExist), "{err}");
}

#[test]
fn a_taken_name_already_exists() {
    let n = name("taken");
    let _planted = plant(&n, 0, 0o600);
    let err = Options::new().create_sender_named(&n).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists), "{err}");
    rustix::shm::unlink(n.as_str()).unwrap();
}

#[test]
fn a_planted_symlink_is_refused() {
    let n = name("symlink");
    let path = format!("/dev/shm{n}");
    std::os::unix::fs::symlink("/dev/null", &path).unwrap();
    assert!(matches!(
        Options::new().create_sender_named(&n),
        Err(Error::AlreadyExists)
    ));
    assert!(matches!(
        Options::new().open_receiver(&n),
        Err(Error::Untrusted(_))
    ));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn an_object_not_set_up_yet_is_not_initialised() {
    let n = name("uninit");
    let fd = plant(&n, 0, 0o600);
    assert!(matches!(
        Options::new().open_receiver(&n),
        Err(Error::NotInitialised)
    ));
    rustix::fs::ftruncate(&fd, 8192).unwrap();
    assert!(matches!(
        Options::new().open_receiver(&n),
        Err(Error::NotInitialised)
    ));
    rustix::shm::unlink(n.as_str()).unwrap();
}

#[test]
fn a_foreign_object_is_a_bad_layout() {
    let n = name("foreign");
    let fd = plant(&n, 8192, 0o600);
    common::poke(&fd, 0, b"not ours\x01\x00\x00\x00");
    let err = Options::new().open_receiver(&n).unwrap_err();
    assert!(matches!(err, Error::BadLayout(_)), "{err}");
    rustix::shm::unlink(n.as_str()).unwrap();
}

#[test]
fn another_layout_version_is_a_mismatch() {
    let tx = Options::new().create_sender().unwrap();
    let n = tx.name().unwrap().to_owned();
    common::poke(open_raw(&n), 8, &99u32.to_le_bytes());
    match Options::new().open_receiver(&n) {
        Err(Error::VersionMismatch { found: 99, .. }) => {}
        other => panic!("{other:?}"),
    }
    drop(tx);
    assert!(!in_dev_shm(&n), "the creator removes a name nobody opened");
}

#[test]
fn an_object_others_may_open_is_untrusted() {
    let tx = Options::new().create_sender().unwrap();
    let n = tx.name().unwrap().to_owned();
    rustix::fs::fchmod(open_raw(&n), Mode::from_raw_mode(0o644)).unwrap();
    let err = Options::new().open_receiver(&n).unwrap_err();
    assert!(matches!(err, Error::Untrusted(_)), "{err}");
}

#[test]
fn each_side_attaches_once() {
    let opts = Options::new();
    let fd = opts.create_anonymous().unwrap();
    let tx = opts.sender_from_fd(fd.try_clone().unwrap()).unwrap();
    // Held: the lock says so.
    assert!(matches!(
        opts.sender_from_fd(fd.try_clone().unwrap()),
        Err(Error::Taken)
    ));
    drop(tx);
    // Released but used: the flag says so.
    assert!(matches!(
        opts.sender_from_fd(fd.try_clone().unwrap()),
        Err(Error::Taken)
    ));
    assert!(opts.receiver_from_fd(fd).is_ok());
}

#[test]
fn a_passed_descriptor_must_be_sealed_and_read_write() {
    let opts = Options::new();
    let unsealed = rustix::fs::memfd_create("plain", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    rustix::fs::ftruncate(&unsealed, 8192).unwrap();
    assert!(matches!(
        opts.receiver_from_fd(unsealed),
        Err(Error::Untrusted(_))
    ));
    let fd = opts.create_anonymous().unwrap();
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let read_only = rustix::fs::open(
        path.as_str(),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap();
    assert!(matches!(
        opts.receiver_from_fd(read_only),
        Err(Error::Untrusted(_))
    ));
    assert!(opts.receiver_from_fd(fd).is_ok());
}

/// An anonymous segment is sealed: a holder of its descriptor (the peer)
/// can neither shrink it under the other's mapping (`SIGBUS`) nor grow it,
/// nor lift or add seals. Also after a side has attached to it.
#[test]
fn a_peer_cannot_truncate_an_anonymous_segment() {
    use rustix::fs::{SealFlags, fcntl_add_seals, fcntl_get_seals, fstat, ftruncate};
    use rustix::io::Errno;
    let opts = Options::new();
    let fd = opts.create_anonymous().unwrap();
    let peer = fd.try_clone().unwrap();
    let receiver = opts.receiver_from_fd(fd).unwrap();
    let size = fstat(&peer).unwrap().st_size as u64;
    assert_eq!(ftruncate(&peer, 0), Err(Errno::PERM));
    assert_eq!(ftruncate(&peer, size / 2), Err(Errno::PERM));
    assert_eq!(ftruncate(&peer, size * 2), Err(Errno::PERM));
    assert_eq!(fcntl_add_seals(&peer, SealFlags::WRITE), Err(Errno::PERM));
    assert!(fcntl_get_seals(&peer).unwrap().contains(SealFlags::SEAL));
    assert_eq!(fstat(&peer).unwrap().st_size as u64, size);
    drop(receiver);
}

#[test]
fn names_shm_open_cannot_take_are_invalid() {
    for bad in ["no-slash", "/a/b", "/"] {
        assert!(matches!(
            Options::new().create_sender_named(bad),
            Err(Error::InvalidName(_))
        ));
    }
}

#[test]
fn both_ends_by_name_leave_nothing_behind() {
    let n = name("both");
    let mut rx = Options::new().create_receiver_named(&n).unwrap();
    assert!(in_dev_shm(&n));
    let mut tx = Options::new().open_sender(&n).unwrap();
    assert!(!in_dev_shm(&n), "the opener removes the name");
    tx.send(b"hello").unwrap();
    assert_eq!(rx.try_recv().unwrap(), b"hello");
    drop(tx);
    assert!(matches!(rx.try_recv(), Err(Error::Closed)));
}
