//! A fresh channel is as ready as a warm one: its pages are allocated when
//! it is made (none is found and zeroed on a first touch in the middle of
//! a send), and each end's mapping is populated when it attaches (no page
//! fault on the first lap of the ring).

mod common;

use shmchan::Options;

const CAPACITY: usize = 1 << 20;
const PAGE: usize = 4096;

/// Pages of `len` bytes at `base` that are in memory (`mincore`).
fn resident_pages(base: *mut u8, len: usize) -> usize {
    let mut vec = vec![0u8; len.div_ceil(PAGE)];
    // SAFETY: `base .. base + len` is one mapping of ours, page-aligned;
    // `vec` has a byte per page.
    let r = unsafe { libc::mincore(base.cast(), len, vec.as_mut_ptr()) };
    assert_eq!(r, 0, "mincore: {}", std::io::Error::last_os_error());
    vec.iter().filter(|&&b| b & 1 != 0).count()
}

#[test]
fn every_page_of_a_new_segment_is_allocated_when_it_is_made() {
    let fd = Options::new()
        .capacity(CAPACITY)
        .create_anonymous()
        .unwrap();
    let (base, len) = common::map_whole(&fd);
    assert!(len >= CAPACITY, "{len}");
    // Nobody has touched the data area: what is resident was allocated
    // by the creation itself.
    assert_eq!(resident_pages(base, len), len / PAGE);
    // SAFETY: our own mapping, no longer used.
    unsafe { rustix::mm::munmap(base.cast(), len).unwrap() };
}

/// The resident bytes (`Rss:`) of this process's mapping of `path`.
fn rss_of(path: &str) -> usize {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut lines = smaps.lines();
    while let Some(line) = lines.next() {
        if line.ends_with(path) {
            for l in lines.by_ref() {
                if let Some(kb) = l.strip_prefix("Rss:") {
                    let kb = kb.trim().trim_end_matches("kB").trim();
                    return kb.parse::<usize>().unwrap() * 1024;
                }
            }
        }
    }
    panic!("no mapping of {path} in /proc/self/smaps");
}

/// The resident bytes of every mapping of `path`.
fn rss_all(path: &str) -> Vec<usize> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut out = Vec::new();
    let mut lines = smaps.lines();
    while let Some(line) = lines.next() {
        if line.ends_with(path) {
            for l in lines.by_ref() {
                if let Some(kb) = l.strip_prefix("Rss:") {
                    let kb = kb.trim().trim_end_matches("kB").trim();
                    out.push(kb.parse::<usize>().unwrap() * 1024);
                    break;
                }
            }
        }
    }
    out
}

#[test]
fn each_end_maps_every_page_when_it_attaches() {
    let tx = Options::new().capacity(CAPACITY).create_sender().unwrap();
    let name = tx.name().unwrap().to_owned();
    let path = format!("/dev/shm/{}", name.trim_start_matches('/'));
    // Nothing sent yet: the sender's mapping is whole already.
    assert!(rss_of(&path) >= CAPACITY, "sender: {}", rss_of(&path));
    let rx = Options::new().open_receiver(&name).unwrap();
    // The name is gone now: the receiver's mapping shows as deleted.
    let deleted = format!("{path} (deleted)");
    // The sender's mapping, and the receiver's in two (its data area is
    // read-only): every page of both.
    let all = rss_all(&deleted);
    let whole = shmchan::HEADER_SIZE + CAPACITY;
    assert_eq!(all.iter().sum::<usize>(), 2 * whole, "{all:?}");
    drop((tx, rx));
}
