//! zenoh's shared-memory segments, `/dev/shm/<id>.zenoh`, found and
//! removed after their cell is gone however it ended.
//!
//! zenoh names them itself (`zenoh-shm`: `shm_open("<id>.zenoh",
//! O_CREAT|O_EXCL, 0600)` with a random `u64` or `u32` id, then a shared
//! `flock` on the segment for as long as a process uses it, then
//! `ftruncate`), in the cell's sides, whenever its transport wants one: the
//! names cannot be recorded before they exist. What is recorded instead,
//! in `prepare`, before either side exists, is a registry record
//! ([`Kind::Zenoh`](super::registry::Kind::Zenoh)) with the time
//! (`since_ns`, `CLOCK_REALTIME_COARSE`, the clock tmpfs stamps files
//! with), and each side adds its pid to it before it opens its zenoh
//! session. A cell's segments are then the `<decimal>.zenoh` regular files
//! of our uid changed since that time (zenoh's `ftruncate` right after
//! making one stamps it), and the record is alive while its supervisor or
//! either side is.
//!
//! A segment is *held* while a process has it locked (an exclusive
//! `flock` fails: zenoh's own test for a dangling segment, which every
//! zenoh process applies to every `*.zenoh` file it can open, at its start
//! and at its exit), or while it is empty and younger than [`MAKING`]
//! (made, not yet locked). Only a segment nobody holds is ever removed,
//! and only by name and identity while we hold its exclusive lock
//! ourselves (a zenoh process that opens it meanwhile takes a shared lock
//! and so fails). A held segment belongs to a live process, which, when
//! no live record covers it, is another program's: it is not ours to list.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{FileType, FlockOperation, Mode, OFlags, flock, fstat, openat};
use rustix::io::Errno;

use super::owned::{self, Identity};

/// Where zenoh makes its segments.
pub const SHM_DIR: &str = "/dev/shm";

/// An empty segment younger than this may be one zenoh is making (its
/// lock comes just after `shm_open`): held.
const MAKING_NS: u64 = 2_000_000_000;

/// One `*.zenoh` segment of ours, as found.
#[derive(Debug, Clone)]
pub struct Segment {
    /// The file's name in [`SHM_DIR`].
    pub name: String,
    pub id: Identity,
    pub size: u64,
    /// Its last change (`ctime`), in ns since the epoch.
    pub changed_ns: u64,
    /// Whether a live process holds it (see the module's notes).
    pub held: bool,
}

/// Whether `name` has exactly the shape of zenoh's segment names: a
/// `u64` as `format!("{id}.zenoh")` writes it.
pub fn is_segment_name(name: &str) -> bool {
    name.strip_suffix(".zenoh")
        .and_then(|id| Some((id, id.parse::<u64>().ok()?)))
        .is_some_and(|(id, n)| n.to_string() == id)
}

/// The time tmpfs stamps a file changed now with, or an earlier one
/// (`CLOCK_REALTIME_COARSE`, in ns since the epoch): a segment made after
/// this call has a `ctime` at least this.
pub fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
    (t.tv_sec.max(0) as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec.max(0) as u64)
}

fn shm_dir() -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        SHM_DIR,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens segment `name` in `dir` if it is a regular file of ours (never
/// following a symlink, never waiting on a FIFO).
fn open_ours(dir: &OwnedFd, name: &str) -> io::Result<Option<(OwnedFd, rustix::fs::Stat)>> {
    let fd = match openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        // Gone, a symlink, or someone else's 0600 file.
        Err(Errno::NOENT | Errno::LOOP | Errno::ACCESS) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let st = fstat(&fd)?;
    let regular = FileType::from_raw_mode(st.st_mode) == FileType::RegularFile;
    Ok((regular && owned::ours(&st)).then_some((fd, st)))
}

/// Whether a live process holds the segment open as `fd`: its exclusive
/// lock cannot be had (taken here, it is kept until `fd` closes), or it
/// is still being made.
fn held(fd: &OwnedFd, st: &rustix::fs::Stat) -> bool {
    if flock(fd.as_fd(), FlockOperation::NonBlockingLockExclusive).is_err() {
        return true;
    }
    st.st_size == 0 && now_ns().saturating_sub(changed_ns(st)) < MAKING_NS
}

fn changed_ns(st: &rustix::fs::Stat) -> u64 {
    // Unsigned here, signed on some targets.
    #[allow(clippy::unnecessary_cast)]
    let nsec = st.st_ctime_nsec as u64;
    (st.st_ctime.max(0) as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(nsec)
}

/// Every zenoh segment of ours in [`SHM_DIR`].
pub fn segments() -> io::Result<Vec<Segment>> {
    let dir = shm_dir()?;
    let mut names = Vec::new();
    for entry in std::fs::read_dir(SHM_DIR)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_segment_name(&name) {
            names.push(name);
        }
    }
    let mut out = Vec::new();
    for name in names {
        let Some((fd, st)) = open_ours(&dir, &name)? else {
            continue;
        };
        out.push(Segment {
            id: Identity::from_stat(&st),
            size: st.st_size.max(0) as u64,
            changed_ns: changed_ns(&st),
            held: held(&fd, &st),
            name,
        });
    }
    Ok(out)
}

/// Removes segment `name` if it is still the object `id`, ours, and held
/// by nobody (checked again now, under our own exclusive lock). `false`:
/// left alone, because a live process holds it.
pub fn remove_if_dangling(name: &str, id: Identity) -> io::Result<bool> {
    let dir = shm_dir()?;
    let Some((fd, st)) = open_ours(&dir, name)? else {
        return Ok(true);
    };
    if Identity::from_stat(&st) != id {
        // Someone made another segment under the name: not what we listed.
        return Ok(true);
    }
    if held(&fd, &st) {
        return Ok(false);
    }
    // Still holding the exclusive lock, taken in `held`.
    owned::remove_at_if(&dir, Path::new(name), id, false)?;
    drop(fd);
    Ok(true)
}

/// Removes every dangling segment of ours changed at or after `since_ns`
/// (a cell's guard, once both sides are reaped).
pub fn remove_dangling_since(since_ns: u64) {
    let Ok(found) = segments() else {
        return;
    };
    for s in found.iter().filter(|s| !s.held && s.changed_ns >= since_ns) {
        let _ = remove_if_dangling(&s.name, s.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_zenohs_names_are_taken_for_segments() {
        for good in ["0.zenoh", "1.zenoh", "18446744073709551615.zenoh"] {
            assert!(is_segment_name(good), "{good}");
        }
        for bad in [
            ".zenoh",
            "0042.zenoh",
            "x.zenoh",
            "-1.zenoh",
            "+1.zenoh",
            "18446744073709551616.zenoh",
            "1.zenoh.tmp",
            "1.Zenoh",
            "ipclab-1-0123.zenoh",
        ] {
            assert!(!is_segment_name(bad), "{bad}");
        }
    }

    /// A segment someone holds (a shared lock, as zenoh takes) is never
    /// removed; once let go, it is.
    #[test]
    fn a_held_segment_is_left_and_a_dangling_one_removed() {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).unwrap();
        let name = format!("{}.zenoh", u64::from_le_bytes(b));
        let path = Path::new(SHM_DIR).join(&name);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        file.set_len(4096).unwrap();
        flock(&file, FlockOperation::NonBlockingLockShared).unwrap();
        let found = segments().unwrap();
        let s = found.iter().find(|s| s.name == name).cloned();
        let kept = s.as_ref().map(|s| remove_if_dangling(&s.name, s.id));
        let still = path.exists();
        drop(file);
        let removed = s.as_ref().map(|s| remove_if_dangling(&s.name, s.id));
        let gone = !path.exists();
        let _ = std::fs::remove_file(&path);
        let s = s.expect("listed");
        assert!(s.held && s.size == 4096, "{s:?}");
        assert!(matches!(kept, Some(Ok(false))) && still);
        assert!(matches!(removed, Some(Ok(true))) && gone);
    }
}
