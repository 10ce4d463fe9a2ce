//! Why a shared mapping raised `SIGBUS`, found from inside the signal
//! handler: only system calls, stack buffers and no locks (nothing here
//! allocates).
//!
//! An access to a page of a shared file mapping faults with `SIGBUS` when
//! the page lies past the end of the file (someone truncated it) or when
//! the file system cannot allocate the page (a full tmpfs such as
//! `/dev/shm`: `ENOSPC`). The faulting address names the mapping in
//! `/proc/self/maps`; `/proc/self/map_files/<start>-<end>` opens its file,
//! and the file's size tells the two apart: a file that still covers the
//! faulting offset was not truncated. Opening `map_files` takes
//! `CAP_CHECKPOINT_RESTORE` or `CAP_SYS_ADMIN` (Linux 5.9 on); without it
//! the path that `maps` names is opened instead (never following a link),
//! and used only if it is still the mapped file (the inode `maps` gives).

use std::ffi::CStr;

use rustix::fs::{Mode, OFlags, fstat, fstatfs, open};

/// What the handler could tell.
#[derive(Debug, PartialEq, Eq)]
pub enum Cause {
    /// The file ends at or before the faulting offset.
    Truncated,
    /// The file covers the offset: its file system could not allocate the
    /// page. `free_kib`: what `fstatfs` says is free now, if it answered.
    Full { free_kib: Option<u64> },
    /// No file mapping holds the address, or `/proc` did not answer.
    Unknown,
}

/// The longest path kept from a line of `/proc/self/maps`.
const PATH_MAX: usize = 256;

/// One line of `/proc/self/maps`: `start-end perms offset dev inode path`.
#[derive(Debug, PartialEq, Eq)]
struct Area {
    start: usize,
    end: usize,
    offset: u64,
    inode: u64,
    /// The path and its length (0 when none, or too long to keep).
    path: [u8; PATH_MAX],
    path_len: usize,
}

/// The cause of a `SIGBUS` at `addr`.
pub fn cause(addr: usize) -> Cause {
    let Some(area) = area_of(addr) else {
        return Cause::Unknown;
    };
    // "/proc/self/map_files/" + two 16-digit numbers, '-' and NUL.
    let mut path = [0u8; 64];
    let mut n = put(&mut path, 0, b"/proc/self/map_files/");
    n = put_hex(&mut path, n, area.start as u64);
    n = put(&mut path, n, b"-");
    n = put_hex(&mut path, n, area.end as u64);
    let Ok(path) = CStr::from_bytes_with_nul(&path[..=n]) else {
        return Cause::Unknown;
    };
    let fd = match open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()) {
        Ok(fd) => fd,
        Err(_) => match by_path(&area) {
            Some(fd) => fd,
            None => return Cause::Unknown,
        },
    };
    let Ok(stat) = fstat(&fd) else {
        return Cause::Unknown;
    };
    let at = area.offset + (addr - area.start) as u64;
    if (stat.st_size as u64) <= at {
        return Cause::Truncated;
    }
    let free_kib = fstatfs(&fd)
        .ok()
        .map(|s| s.f_bavail.saturating_mul(s.f_bsize as u64) / 1024);
    Cause::Full { free_kib }
}

/// The mapped file opened by the path `maps` names, if it is still the
/// same file (same inode) and not deleted.
fn by_path(area: &Area) -> Option<rustix::fd::OwnedFd> {
    let path = &area.path[..area.path_len];
    if path.first() != Some(&b'/') || path.ends_with(b" (deleted)") {
        return None;
    }
    let mut buf = [0u8; PATH_MAX + 1];
    buf[..path.len()].copy_from_slice(path);
    let c = CStr::from_bytes_with_nul(&buf[..=path.len()]).ok()?;
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = open(c, flags, Mode::empty()).ok()?;
    (fstat(&fd).ok()?.st_ino == area.inode).then_some(fd)
}

/// The mapping of `/proc/self/maps` that holds `addr`, read in pieces
/// into stack buffers.
fn area_of(addr: usize) -> Option<Area> {
    let fd = open(
        c"/proc/self/maps",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let mut chunk = [0u8; 4096];
    // A line longer than this loses its path (then only `map_files` helps).
    let mut line = [0u8; 96 + PATH_MAX];
    let mut len = 0;
    loop {
        let got = match rustix::io::read(&fd, &mut chunk) {
            Ok(0) => return None,
            Ok(got) => got,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return None,
        };
        for &b in &chunk[..got] {
            if b != b'\n' {
                if len < line.len() {
                    line[len] = b;
                    len += 1;
                }
                continue;
            }
            if let Some(area) = parse(&line[..len])
                && area.start <= addr
                && addr < area.end
            {
                return Some(area);
            }
            len = 0;
        }
    }
}

/// `start-end perms offset dev inode   path`: hexadecimal but the
/// decimal inode; the path may be missing.
fn parse(line: &[u8]) -> Option<Area> {
    let (start, rest) = hex(line, b'-')?;
    let (end, rest) = hex(rest, b' ')?;
    let perms = rest.iter().position(|&b| b == b' ')?;
    let (offset, rest) = hex(&rest[perms + 1..], b' ')?;
    let dev = rest.iter().position(|&b| b == b' ')?;
    let rest = &rest[dev + 1..];
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let mut inode: u64 = 0;
    for &b in &rest[..digits] {
        inode = inode.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    let tail = &rest[digits..];
    let skip = tail.iter().take_while(|&&b| b == b' ').count();
    let name = &tail[skip..];
    let mut path = [0u8; PATH_MAX];
    let path_len = if name.len() <= PATH_MAX {
        name.len()
    } else {
        0
    };
    path[..path_len].copy_from_slice(&name[..path_len]);
    Some(Area {
        start: start as usize,
        end: end as usize,
        offset,
        inode,
        path,
        path_len,
    })
}

/// A hexadecimal number ended by `stop`, and what follows `stop`.
fn hex(s: &[u8], stop: u8) -> Option<(u64, &[u8])> {
    let mut value: u64 = 0;
    for (i, &b) in s.iter().enumerate() {
        if b == stop && i > 0 {
            return Some((value, &s[i + 1..]));
        }
        let digit = (b as char).to_digit(16)?;
        value = value.checked_mul(16)?.checked_add(u64::from(digit))?;
    }
    None
}

/// Copies `s` into `buf` at `at` (as much as fits); the new end.
fn put(buf: &mut [u8], at: usize, s: &[u8]) -> usize {
    let n = s.len().min(buf.len().saturating_sub(at + 1));
    buf[at..at + n].copy_from_slice(&s[..n]);
    at + n
}

/// `v` in lowercase hexadecimal without leading zeros, as the kernel
/// writes it in `/proc/self/maps` and `map_files`.
fn put_hex(buf: &mut [u8], at: usize, v: u64) -> usize {
    let mut digits = [0u8; 16];
    let mut n = 0;
    let mut v = v;
    loop {
        digits[15 - n] = b"0123456789abcdef"[(v % 16) as usize];
        n += 1;
        v /= 16;
        if v == 0 {
            break;
        }
    }
    put(buf, at, &digits[16 - n..])
}

/// `v` in decimal, into `buf`; the digits written.
pub fn decimal(buf: &mut [u8; 20], v: u64) -> &[u8] {
    let mut n = 0;
    let mut v = v;
    loop {
        buf[19 - n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[20 - n..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::fs::OpenOptionsExt;

    use crate::mechanisms::shm::region::Mapping;

    #[test]
    fn parses_a_maps_line() {
        let line = b"7f3a1c000000-7f3a1d000000 rw-s 00001000 00:1a 42   /dev/shm/x";
        let area = parse(line).unwrap();
        assert_eq!(
            (area.start, area.end, area.offset, area.inode),
            (0x7f3a1c000000, 0x7f3a1d000000, 0x1000, 42)
        );
        assert_eq!(&area.path[..area.path_len], b"/dev/shm/x");
        let anon = parse(b"7f3a1c000000-7f3a1d000000 rw-p 00000000 00:00 0").unwrap();
        assert_eq!((anon.inode, anon.path_len), (0, 0));
        assert_eq!(parse(b"garbage"), None);
        let mut buf = [0u8; 20];
        assert_eq!(decimal(&mut buf, 0), b"0");
        assert_eq!(decimal(&mut buf, u64::MAX), b"18446744073709551615");
        let mut path = [0u8; 64];
        let n = put_hex(&mut path, 0, 0xabc0);
        assert_eq!(&path[..n], b"abc0");
    }

    /// A mapping of a file that covers the address is not truncated; once
    /// the file is shortened, it is; an address in no file is unknown.
    #[test]
    fn tells_a_truncated_file_from_a_whole_one() {
        let (mut file, _name) = tempfile_in_tmp();
        file.write_all(&[1u8; 8192]).unwrap();
        let map = Mapping::shared_fd(file.as_fd(), 8192).unwrap();
        let addr = map.as_ptr() as usize + 4096;
        // The way without `map_files` (a process without
        // CAP_CHECKPOINT_RESTORE): the named file, checked by inode.
        let area = area_of(addr).expect("the mapping is in /proc/self/maps");
        assert!(
            by_path(&area).is_some(),
            "{:?}",
            &area.path[..area.path_len]
        );
        assert!(
            matches!(cause(addr), Cause::Full { .. }),
            "{:?}",
            cause(addr)
        );
        file.set_len(4096).unwrap();
        assert_eq!(cause(addr), Cause::Truncated);
        let local = 0u8;
        assert_eq!(cause(&local as *const u8 as usize), Cause::Unknown);
    }

    /// A file's name, removed however the test ends.
    struct Name(std::path::PathBuf);

    impl Drop for Name {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// A new file, still named (so that its path in `/proc/self/maps`
    /// leads to it), and the guard of its name.
    fn tempfile_in_tmp() -> (std::fs::File, Name) {
        let path = std::env::temp_dir().join(format!(
            "ipclab-sigbus-test-{}",
            crate::objects::marks::random_hex(16).unwrap()
        ));
        let file = std::fs::OpenOptions::new()
            .mode(0o600)
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        (file, Name(path))
    }
}
