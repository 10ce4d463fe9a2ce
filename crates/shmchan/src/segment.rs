//! The shared-memory object under a channel: made by name (`shm_open`) or
//! without one (`memfd_create`), mapped, checked, and held by one side.
//!
//! The creator sets the object up with owner-only permissions and writes
//! the header's version last (Release); an opener checks owner, mode, size
//! and header (Acquire on the version) before it uses anything, and names
//! what is wrong. Each side takes an OFD lock on a byte of its own (see
//! `liveness.rs`), which the kernel drops when the process dies.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

use rustix::fs::{Mode, OFlags, SealFlags};
use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};

use crate::error::Error;
use crate::layout::{
    HEADER_SIZE, Header, MAGIC, MAX_CAPACITY, MIN_CAPACITY, Role, VERSION, segment_size,
};
use crate::liveness;
use crate::ring::Ring;
use crate::sync::Ordering::{Acquire, Relaxed, Release};

/// The prefix of the names shmchan makes up: `/shmchan-<pid>-<32 hex>`.
pub const NAME_PREFIX: &str = "/shmchan-";

/// A shared mapping, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a mapping is plain memory, usable from any thread; whoever
// shares it across threads synchronises through the atomics in it.
unsafe impl Send for Mapping {}

impl Mapping {
    /// `mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)`.
    fn new(fd: BorrowedFd<'_>, len: usize) -> Result<Mapping, Error> {
        // SAFETY: a new mapping at an address the kernel picks cannot
        // overlap memory that Rust knows about.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )?
        };
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(Error::Io(Errno::NOMEM.into()))?;
        Ok(Mapping { ptr, len })
    }

    fn header(&self) -> &Header {
        // SAFETY: the mapping is at least HEADER_SIZE bytes (checked by
        // every caller of `new`), page-aligned (so aligned for Header), and
        // all-zero or initialised: every bit pattern is a valid Header of
        // atomics. The peer writes it only through atomics.
        unsafe { self.ptr.cast::<Header>().as_ref() }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: we mapped exactly this range, and every `Ring` into it
        // is owned by the side that owns this mapping and goes first.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// A mapped segment with one side's lock held.
pub(crate) struct Segment {
    map: Mapping,
    /// Our own open file description: it holds our lock, and closing it
    /// (or dying) releases the lock.
    fd: OwnedFd,
    role: Role,
    capacity: u64,
    /// The name of the object, if it has one.
    name: Option<String>,
    /// Whether we made the name and must remove it if no peer comes.
    owns_name: bool,
    /// Whether the peer has been seen attached (kept, so that a peer that
    /// clears its flag cannot hide its death).
    peer_seen: std::cell::Cell<bool>,
}

impl Segment {
    /// `shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600)`, set up, and held
    /// as `role`. `None` makes up a name of 128 random bits.
    pub(crate) fn create_named(
        name: Option<&str>,
        capacity: usize,
        role: Role,
    ) -> Result<Segment, Error> {
        let name = match name {
            Some(name) => {
                check_name(name)?;
                name.to_owned()
            }
            None => random_name()?,
        };
        let mode = Mode::RUSR | Mode::WUSR;
        let flags = rustix::shm::OFlags::CREATE | rustix::shm::OFlags::EXCL;
        let fd = match rustix::shm::open(name.as_str(), flags | rustix::shm::OFlags::RDWR, mode) {
            Ok(fd) => fd,
            Err(Errno::EXIST) => return Err(Error::AlreadyExists),
            Err(e) => return Err(e.into()),
        };
        // From here on the name is ours: remove it again if anything fails.
        let mut seg = match Self::set_up(fd, capacity, role) {
            Ok(seg) => seg,
            Err(e) => {
                let _ = rustix::shm::unlink(name.as_str());
                return Err(e);
            }
        };
        seg.name = Some(name);
        seg.owns_name = true;
        Ok(seg)
    }

    /// `memfd_create`, set up and sealed against resizing; no side holds it
    /// yet. Hand it to each side's [`from_fd`](Self::from_fd).
    pub(crate) fn create_anonymous(capacity: usize) -> Result<OwnedFd, Error> {
        use rustix::fs::{MemfdFlags, fcntl_add_seals, memfd_create};
        let fd = memfd_create("shmchan", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
        let map = initialise(fd.as_fd(), capacity)?;
        // A peer must not be able to shrink the object under our mapping
        // (SIGBUS) or grow it; and nobody may lift the seals.
        fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?;
        publish_version(map.header());
        Ok(fd)
    }

    /// Initialises the new object behind `fd` and takes `role` in it.
    fn set_up(fd: OwnedFd, capacity: usize, role: Role) -> Result<Segment, Error> {
        // Locked before anything else: `remove` takes an object nobody
        // holds for a stale one, which one being set up is not.
        liveness::lock_role(fd.as_fd(), role)?;
        let map = initialise(fd.as_fd(), capacity)?;
        protect(&map, role, capacity as u64)?;
        populate(&map, role);
        let seg = Segment {
            map,
            fd,
            role,
            capacity: capacity as u64,
            name: None,
            owns_name: false,
            peer_seen: Default::default(),
        };
        seg.mark_attached();
        publish_version(seg.map.header());
        Ok(seg)
    }

    /// Opens the segment called `name` as `role`, then removes the name:
    /// both sides are attached, nobody else needs to find it.
    pub(crate) fn open_named(name: &str, role: Role) -> Result<Segment, Error> {
        check_name(name)?;
        // What `shm_open` does, plus O_NOFOLLOW: a planted symlink fails.
        let path = format!("/dev/shm{name}");
        let flags = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rustix::fs::open(path.as_str(), flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Err(Error::DoesNotExist),
            Err(Errno::LOOP) => return Err(Error::Untrusted("the name is a symbolic link".into())),
            Err(e) => return Err(e.into()),
        };
        let mut seg = Self::attach(fd, role, rustix::process::geteuid().as_raw())?;
        // Attached first, so that the creator can tell our death from our
        // absence; if we die before the unlink, the creator's drop unlinks.
        seg.mark_attached();
        // Only while the name still leads to what we opened: never remove
        // an object someone else put there since.
        if names_us(name, seg.fd.as_fd()) {
            match rustix::shm::unlink(name) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
        seg.name = Some(name.to_owned());
        Ok(seg)
    }

    /// Takes `role` in the segment behind `fd` (a descriptor received from
    /// the creator). The descriptor is checked, reopened as an open file
    /// description of our own (for our lock), and closed: keeping the
    /// peer's would keep the peer's lock alive after its death.
    pub(crate) fn from_fd(fd: OwnedFd, role: Role) -> Result<Segment, Error> {
        check_passed(fd.as_fd())?;
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let own = rustix::fs::open(path.as_str(), OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())?;
        drop(fd);
        let seg = Self::attach(own, role, rustix::process::geteuid().as_raw())?;
        seg.mark_attached();
        Ok(seg)
    }

    /// Takes `role` in the segment behind `fd`, an open file description
    /// that the sender made for us alone and no longer holds (the
    /// rendezvous handshake passes such), owned by `owner` (the uid the
    /// socket's `SO_PEERCRED` reported). The same checks as
    /// [`from_fd`](Self::from_fd), but no reopening: `/proc/self/fd/N`
    /// of another user's 0600 memfd cannot be opened, and needs not be,
    /// since nobody else holds this open file description to keep our
    /// lock alive after our death.
    pub(crate) fn adopt_fd(fd: OwnedFd, role: Role, owner: u32) -> Result<Segment, Error> {
        check_passed(fd.as_fd())?;
        let seg = Self::attach(fd, role, owner)?;
        seg.mark_attached();
        Ok(seg)
    }

    /// Checks and maps an existing object and takes `role`'s lock.
    fn attach(fd: OwnedFd, role: Role, owner: u32) -> Result<Segment, Error> {
        let st = rustix::fs::fstat(&fd)?;
        check_owner(&st, owner)?;
        let size = checked_size(&st)?;
        let map = Mapping::new(fd.as_fd(), size as usize)?;
        let capacity = validate(map.header(), size)?;
        liveness::lock_role(fd.as_fd(), role)?;
        protect(&map, role, capacity)?;
        populate(&map, role);
        // Relaxed: the lock above makes us the only holder now; the flag
        // says whether somebody held this side before (each side attaches
        // once: its indices start at zero).
        if map.header().attached[role.index()].load(Relaxed) != 0 {
            return Err(Error::Taken);
        }
        Ok(Segment {
            map,
            fd,
            role,
            capacity,
            name: None,
            owns_name: false,
            peer_seen: Default::default(),
        })
    }

    fn mark_attached(&self) {
        // Release: pairs with the Acquire load in `peer_attached`; nothing
        // but the flag itself travels with it (the lock is kernel state).
        self.map.header().attached[self.role.index()].store(1, Release);
    }

    fn peer_attached(&self) -> bool {
        if !self.peer_seen.get() {
            // Acquire: pairs with the Release store in `mark_attached`.
            let flag = self.map.header().attached[self.role.peer().index()].load(Acquire);
            self.peer_seen.set(flag != 0);
        }
        self.peer_seen.get()
    }

    /// Whether the peer attached and has died since: its lock is gone.
    /// That it attached we know from its flag, or from having seen its lock
    /// held: a peer that clears its flag cannot hide its death from a side
    /// that waited while it lived.
    /// Whether the peer attached: it holds its lock now, or it set its
    /// flag (and may have closed or died since, which the ends report as
    /// usual: [`peer_gone`](Self::peer_gone) is true once the flag is set
    /// and the lock gone).
    pub(crate) fn peer_came(&self) -> Result<bool, Error> {
        Ok(liveness::role_held(self.fd.as_fd(), self.role.peer())? || self.peer_attached())
    }

    pub(crate) fn peer_gone(&self) -> Result<bool, Error> {
        if liveness::role_held(self.fd.as_fd(), self.role.peer())? {
            self.peer_seen.set(true);
            return Ok(false);
        }
        Ok(self.peer_attached())
    }

    /// The ring in this mapping. The segment must outlive it.
    pub(crate) fn ring(&self) -> Ring {
        let base = self.map.ptr;
        // SAFETY: the data area starts HEADER_SIZE bytes in, within the
        // mapping (`attach` and `initialise` check the size).
        let data = unsafe { base.add(HEADER_SIZE) };
        // SAFETY: header and data area lie in our mapping, which lives as
        // long as this segment; the caller keeps the ring no longer (the
        // Sender and Receiver own both). The capacity is a checked power of
        // two of at least MIN_CAPACITY.
        unsafe { Ring::new(base.cast(), data, self.capacity) }
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // The opener removes the name when it attaches; if none came, or it
        // died before it could, the creator does, so that nothing is left
        // in /dev/shm. Only if the name still means our object: after the
        // opener's unlink, someone may have made a new one under it.
        if let (true, Some(name)) = (self.owns_name, &self.name) {
            if names_us(name, self.fd.as_fd()) {
                let _ = rustix::shm::unlink(name.as_str());
            }
        }
    }
}

/// `shm_unlink(name)` of a stale channel: one whose creator was killed
/// before any peer attached (the only case in which a name outlives both
/// sides; see the crate's Guarantees), so that the name can be made again.
///
/// Removes the name only if the object is a shmchan segment
/// ([`Error::BadLayout`] or [`Error::VersionMismatch`] otherwise), owned by
/// our effective uid and closed to others ([`Error::Untrusted`]), and if no
/// live process holds either end of it ([`Error::InUse`]: asked of the
/// kernel through the ends' OFD locks, not guessed from a pid). An object
/// of size 0 is a channel being made right now ([`Error::NotInitialised`]).
/// A missing name is [`Error::DoesNotExist`].
///
/// ```
/// # fn main() -> Result<(), shmchan::Error> {
/// let tx = shmchan::Options::new().create_sender()?;
/// let name = tx.name().unwrap().to_owned();
/// // While its creator lives, the name is not stale.
/// assert!(matches!(shmchan::remove(&name), Err(shmchan::Error::InUse)));
/// # drop(tx);
/// # Ok(()) }
/// ```
pub fn remove(name: &str) -> Result<(), Error> {
    check_name(name)?;
    let path = format!("/dev/shm{name}");
    let flags = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = match rustix::fs::open(path.as_str(), flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Err(Error::DoesNotExist),
        Err(Errno::LOOP) => return Err(Error::Untrusted("the name is a symbolic link".into())),
        Err(e) => return Err(e.into()),
    };
    let st = rustix::fs::fstat(&fd)?;
    check_owner(&st, rustix::process::geteuid().as_raw())?;
    // Each end holds its byte from before it sets anything up (`set_up`,
    // `attach`) until its process closes it or dies.
    if liveness::role_held(fd.as_fd(), Role::Sender)?
        || liveness::role_held(fd.as_fd(), Role::Receiver)?
    {
        return Err(Error::InUse);
    }
    // Empty: between `shm_open` and the creator's lock, or a stranger's.
    let size = checked_size(&st)?;
    let map = Mapping::new(fd.as_fd(), size as usize)?;
    match validate(map.header(), size) {
        Ok(_) => {}
        // A creator killed while it set the segment up: ours if the magic
        // was written (Relaxed: nobody writes it any more).
        Err(Error::NotInitialised) if map.header().magic.load(Relaxed) == MAGIC => {}
        Err(Error::NotInitialised) => {
            return Err(Error::BadLayout(
                "not a shmchan segment (wrong magic)".into(),
            ));
        }
        Err(e) => return Err(e),
    }
    drop(map);
    // Only while the name still leads to what we checked.
    if !names_us(name, fd.as_fd()) {
        return Err(Error::DoesNotExist);
    }
    match rustix::shm::unlink(name) {
        Ok(()) => Ok(()),
        Err(Errno::NOENT) => Err(Error::DoesNotExist),
        Err(e) => Err(e.into()),
    }
}

/// A passed descriptor must be open read-write (we map it so) and sealed
/// against resizing (else its holder can shrink it under our mapping).
fn check_passed(fd: BorrowedFd<'_>) -> Result<(), Error> {
    use rustix::fs::{fcntl_get_seals, fcntl_getfl};
    if fcntl_getfl(fd)? & OFlags::RWMODE != OFlags::RDWR {
        return Err(Error::Untrusted(
            "the descriptor is not open read-write".into(),
        ));
    }
    let need = SealFlags::SHRINK | SealFlags::GROW;
    match fcntl_get_seals(fd) {
        Ok(seals) if seals.contains(need) => Ok(()),
        Ok(_) | Err(Errno::INVAL) => Err(Error::Untrusted(
            "the object is not sealed against resizing".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Whether `/dev/shm/NAME` is the object open as `fd`.
fn names_us(name: &str, fd: BorrowedFd<'_>) -> bool {
    let path = format!("/dev/shm{name}");
    match (rustix::fs::lstat(path.as_str()), rustix::fs::fstat(fd)) {
        (Ok(a), Ok(b)) => (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino),
        _ => false,
    }
}

/// `mprotect(data area, PROT_READ)` for the receiver: it never writes the
/// data area, so it cannot write the sender's memory by mistake, and a
/// message it reads in place (`InPlace`) is read-only on this side. The
/// header stays writable (`head`, flags, waiter words).
fn protect(map: &Mapping, role: Role, capacity: u64) -> Result<(), Error> {
    if role != Role::Receiver {
        return Ok(());
    }
    debug_assert!(HEADER_SIZE as u64 + capacity <= map.len as u64);
    // Where pages are larger than the header (64 KiB on some arm64
    // kernels) the protection starts at the first whole page of data.
    // SAFETY: `sysconf` only reads a constant of the system.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(0);
    let start = HEADER_SIZE.next_multiple_of(page.max(1));
    let end = map.len;
    if page == 0 || start >= end {
        return Ok(());
    }
    // SAFETY: `start..end` lies within our mapping and starts on a page
    // boundary (the mapping is page-aligned); nothing of ours writes to the
    // data area on the receiving side.
    unsafe {
        rustix::mm::mprotect(
            map.ptr.as_ptr().add(start).cast(),
            end - start,
            rustix::mm::MprotectFlags::READ,
        )?;
    }
    Ok(())
}

/// Sizes, zeroes and maps a new object and writes its header, all but the
/// version.
fn initialise(fd: BorrowedFd<'_>, capacity: usize) -> Result<Mapping, Error> {
    // `shm_open` and `memfd_create` apply the umask; set the mode itself.
    rustix::fs::fchmod(fd, Mode::RUSR | Mode::WUSR)?;
    let size = segment_size(capacity);
    rustix::fs::ftruncate(fd, size as u64)?;
    allocate(fd, size)?;
    let map = Mapping::new(fd, size)?;
    // `fallocate` on tmpfs reserves the pages but leaves zeroing them to
    // the first fault: touch them all now, through this mapping.
    populate(&map, Role::Sender);
    let h = map.header();
    // Relaxed: published by the Release store of the version.
    h.magic.store(MAGIC, Relaxed);
    h.header_size.store(HEADER_SIZE as u32, Relaxed);
    h.capacity.store(capacity as u64, Relaxed);
    h.segment_size.store(size as u64, Relaxed);
    Ok(map)
}

/// Allocates every page of the new object now (`fallocate`), so that no
/// message waits for the kernel to find and zero a page of the ring, and a
/// ring the system has no memory for fails here, not with `SIGBUS` in the
/// middle of a send. A file system without `fallocate` leaves it to the
/// first touch, as before.
fn allocate(fd: BorrowedFd<'_>, size: usize) -> Result<(), Error> {
    use rustix::fs::{FallocateFlags, fallocate};
    match fallocate(fd, FallocateFlags::empty(), 0, size as u64) {
        Ok(()) | Err(Errno::OPNOTSUPP | Errno::NOSYS) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Maps every page of our mapping into this process now
/// (`MADV_POPULATE_WRITE`, and `_READ` for the receiver's read-only data
/// area), so that the first lap of a fresh ring takes no page faults and
/// runs as fast as a warm one. Changes no byte. A hint: a kernel before
/// 5.14 refuses it, and the pages are then mapped on first touch.
fn populate(map: &Mapping, role: Role) {
    use rustix::mm::{Advice, madvise};
    let base = map.ptr.as_ptr();
    let (writable, readable) = match role {
        Role::Sender => (map.len, 0),
        // `protect` made the data area read-only on this side.
        Role::Receiver => (HEADER_SIZE.min(map.len), map.len - HEADER_SIZE.min(map.len)),
    };
    // SAFETY: both ranges lie within our mapping; populating changes which
    // pages are mapped, never their contents.
    unsafe {
        let _ = madvise(base.cast(), writable, Advice::LinuxPopulateWrite);
        if readable > 0 {
            let _ = madvise(
                base.add(writable).cast(),
                readable,
                Advice::LinuxPopulateRead,
            );
        }
    }
}

fn publish_version(h: &Header) {
    // Release: pairs with the Acquire load in `validate`: an opener that
    // sees the version sees every field written before it.
    h.version.store(VERSION, Release);
}

/// Checks a header against the object's size; returns the capacity.
fn validate(h: &Header, size: u64) -> Result<u64, Error> {
    // Acquire: pairs with the Release store in `publish_version`.
    let version = h.version.load(Acquire);
    if version == 0 {
        return Err(Error::NotInitialised);
    }
    // Relaxed: ordered by the Acquire above; each read once.
    let magic = h.magic.load(Relaxed);
    if crate::broadcast::is_broadcast_magic(magic) {
        return Err(Error::BadLayout(
            "a shmchan broadcast, not a channel: join it with shmchan::broadcast".into(),
        ));
    }
    if magic != MAGIC {
        return Err(Error::BadLayout(
            "not a shmchan segment (wrong magic)".into(),
        ));
    }
    if version != VERSION {
        return Err(Error::VersionMismatch {
            found: version,
            expected: VERSION,
        });
    }
    let header_size = h.header_size.load(Relaxed);
    let capacity = h.capacity.load(Relaxed);
    let segment = h.segment_size.load(Relaxed);
    let fits = (MIN_CAPACITY as u64..=MAX_CAPACITY as u64).contains(&capacity);
    if header_size as usize != HEADER_SIZE
        || !capacity.is_power_of_two()
        || !fits
        || Some(segment) != capacity.checked_add(HEADER_SIZE as u64)
        || segment != size
    {
        return Err(Error::BadLayout(format!(
            "header size {header_size}, capacity {capacity}, segment {segment}, object {size}"
        )));
    }
    Ok(capacity)
}

/// `/shmchan-<pid>-<32 hex>`: the creating process, so that tools (such as
/// `ipclab ls`) can tell whether a leftover name's creator is alive, and
/// 128 bits from the OS's random source.
fn random_name() -> Result<String, Error> {
    let mut bits = [0u8; 16];
    getrandom::fill(&mut bits).map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
    let hex: String = bits.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{NAME_PREFIX}{}-{hex}", std::process::id()))
}

/// A POSIX shared-memory name: `/`, then 1 to 254 bytes without `/` or NUL.
fn check_name(name: &str) -> Result<(), Error> {
    let rest = name
        .strip_prefix('/')
        .ok_or_else(|| Error::InvalidName(format!("{name:?} does not start with '/'")))?;
    if rest.is_empty() || rest.len() > 254 || rest == "." || rest == ".." {
        return Err(Error::InvalidName(format!("{name:?} has a bad length")));
    }
    if rest.contains(['/', '\0']) {
        return Err(Error::InvalidName(format!("{name:?} holds '/' or NUL")));
    }
    Ok(())
}

/// The object's size, if a segment can have it: `NotInitialised` while
/// it is empty (its creator has not sized it yet).
fn checked_size(st: &rustix::fs::Stat) -> Result<u64, Error> {
    let size = u64::try_from(st.st_size).unwrap_or(0);
    if size == 0 {
        return Err(Error::NotInitialised);
    }
    if size < segment_size(MIN_CAPACITY) as u64 || size > segment_size(MAX_CAPACITY) as u64 {
        return Err(Error::BadLayout(format!("a size of {size} bytes")));
    }
    Ok(size)
}

/// An object we may use belongs to `owner` and lets nobody else in.
fn check_owner(st: &rustix::fs::Stat, owner: u32) -> Result<(), Error> {
    if st.st_uid != owner {
        return Err(Error::Untrusted(format!(
            "owned by uid {}, not {owner}",
            st.st_uid
        )));
    }
    if st.st_mode & 0o077 != 0 {
        return Err(Error::Untrusted(format!(
            "mode {:o} lets others in",
            st.st_mode & 0o777
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_names_are_128_random_bits() {
        let (a, b) = (random_name().unwrap(), random_name().unwrap());
        assert_ne!(a, b);
        let pid = std::process::id().to_string();
        assert_eq!(a.len(), NAME_PREFIX.len() + pid.len() + 1 + 32);
        assert!(a[NAME_PREFIX.len()..].starts_with(&format!("{pid}-")));
        assert!(check_name(&a).is_ok());
    }

    #[test]
    fn bad_names_are_refused() {
        for name in ["", "/", "x", "/a/b", "/..", "/a\0b"] {
            assert!(
                matches!(check_name(name), Err(Error::InvalidName(_))),
                "{name:?}"
            );
        }
    }
}
