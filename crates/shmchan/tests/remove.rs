//! `shmchan::remove`: a stale name (its creator killed before any peer
//! came) is removed; anything else is refused with a clear error.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use common::{WATCHDOG, child_role, in_dev_shm, reap, signal, spawn};
use rustix::fs::Mode;
use rustix::process::Signal;
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

/// Unlinks a planted name on drop, also when a check panicked first.
struct Unlink(String);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = rustix::shm::unlink(self.0.as_str());
    }
}

/// A creator (a child) makes a channel, tells its name, and is killed
/// before any peer came: its name stays. `remove` refuses it while the
/// creator lives (`InUse`), removes it once it is dead, and then finds
/// nothing (`DoesNotExist`).
#[test]
fn a_killed_creators_name_is_removed() {
    if child_role().is_some() {
        let tx = Options::new().create_sender().unwrap();
        let mut line = common::stdin_socket();
        writeln!(line, "{}", tx.name().unwrap()).unwrap();
        std::thread::sleep(WATCHDOG);
        panic!("never killed");
    }
    let (here, there) = UnixStream::pair().unwrap();
    here.set_read_timeout(Some(WATCHDOG)).unwrap();
    let mut child = spawn(
        "a_killed_creators_name_is_removed",
        "creator",
        &[],
        Some(OwnedFd::from(there)),
    );
    let mut name = String::new();
    BufReader::new(&here)
        .read_line(&mut name)
        .expect("watchdog: the creator never told its name");
    let name = name.trim_end().to_owned();
    let _unlink = Unlink(name.clone());
    assert!(in_dev_shm(&name));
    assert!(matches!(shmchan::remove(&name), Err(Error::InUse)));
    assert!(in_dev_shm(&name), "a live creator's name stays");
    signal(&child, Signal::KILL);
    reap(&mut child);
    assert!(in_dev_shm(&name), "a killed creator leaves its name");
    shmchan::remove(&name).unwrap();
    assert!(!in_dev_shm(&name));
    assert!(matches!(shmchan::remove(&name), Err(Error::DoesNotExist)));
    // The name can be made again.
    drop(Options::new().create_receiver_named(&name).unwrap());
}

/// A channel whose creator (here, this process) holds it is in use.
#[test]
fn a_held_channel_is_in_use() {
    let n = name("held");
    let rx = Options::new().create_receiver_named(&n).unwrap();
    assert!(matches!(shmchan::remove(&n), Err(Error::InUse)));
    drop(rx);
    assert!(!in_dev_shm(&n), "the creator's drop removed it");
}

/// Objects that are not stale shmchan channels of ours are left alone.
#[test]
fn what_is_not_a_stale_channel_is_refused() {
    // Not a shmchan segment.
    let n = name("foreign");
    let _unlink = Unlink(n.clone());
    let fd = plant(&n, 8192, 0o600);
    common::poke(&fd, 0, b"not ours");
    let err = shmchan::remove(&n).unwrap_err();
    assert!(matches!(err, Error::BadLayout(_)), "{err}");
    // Too small to be one.
    rustix::fs::ftruncate(&fd, 100).unwrap();
    let err = shmchan::remove(&n).unwrap_err();
    assert!(matches!(err, Error::BadLayout(_)), "{err}");
    // Being set up (or a stranger's empty object).
    rustix::fs::ftruncate(&fd, 0).unwrap();
    let err = shmchan::remove(&n).unwrap_err();
    assert!(matches!(err, Error::NotInitialised), "{err}");
    // Open to others.
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o644)).unwrap();
    let err = shmchan::remove(&n).unwrap_err();
    assert!(matches!(err, Error::Untrusted(_)), "{err}");
    assert!(in_dev_shm(&n), "refused objects stay");
    // A symbolic link.
    let n = name("symlink");
    let _unlink = Unlink(n.clone());
    let path = format!("/dev/shm{n}");
    std::os::unix::fs::symlink("/dev/null", &path).unwrap();
    let err = shmchan::remove(&n).unwrap_err();
    assert!(matches!(err, Error::Untrusted(_)), "{err}");
    std::fs::remove_file(&path).unwrap();
    // Missing, and names shm_open cannot take.
    assert!(matches!(
        shmchan::remove(&name("missing")),
        Err(Error::DoesNotExist)
    ));
    for bad in ["no-slash", "/a/b", "/"] {
        assert!(matches!(shmchan::remove(bad), Err(Error::InvalidName(_))));
    }
}

/// A segment whose ends both closed without removing the name cannot
/// normally exist (the opener removes it); one made by hand (an object
/// with a valid header that nobody holds, as a creator killed at the
/// wrong moment leaves) is removed.
#[test]
fn a_valid_segment_nobody_holds_is_removed() {
    // A creator's segment, its name kept past the creator by a hard link
    // made while it lived (the drop removes only the original name).
    let tx = Options::new().create_sender().unwrap();
    let made = tx.name().unwrap().to_owned();
    let n = name("linked");
    let _unlink = Unlink(n.clone());
    std::fs::hard_link(format!("/dev/shm{made}"), format!("/dev/shm{n}")).unwrap();
    assert!(matches!(shmchan::remove(&n), Err(Error::InUse)));
    drop(tx);
    assert!(!in_dev_shm(&made));
    assert!(in_dev_shm(&n));
    shmchan::remove(&n).unwrap();
    assert!(!in_dev_shm(&n));
}
