//! The two memfds under a broadcast: made and sealed by the publisher,
//! checked and mapped by each subscriber.
//!
//! Both are `memfd_create` objects of mode 0600, sealed against resizing.
//! The data object is mapped read-write by the publisher and then sealed
//! with `F_SEAL_FUTURE_WRITE`: from then on nobody can map it writable or
//! `write` it, so a subscriber (which refuses a data object without that
//! seal) maps it read-only and cannot change what the others read. Each
//! side holds an OFD lock on a byte of the control object (byte 0: the
//! publisher; byte 1 + i: subscriber slot i), which the kernel drops when
//! the process dies: taking a slot is taking its lock.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

use rustix::fs::{Mode, OFlags, SealFlags};
use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};

use super::Policy;
use super::area::{Area, Parts};
use super::layout::{
    CONTROL_MAGIC, Control, DATA_MAGIC, DataHeader, ENTRY_ALIGN, ENTRY_HEADER, Geometry, HEADER,
    MAX_DATA, MAX_RING, MAX_SUBSCRIBERS, POLICY_BLOCK, POLICY_OVERWRITE, SLOT, Slot, VERSION,
};
use crate::error::Error;
use crate::liveness;
use crate::sync::Ordering::{Acquire, Relaxed, Release};

/// The smallest control object: two pages, so that a channel's opener
/// handed one maps it and names what it is rather than its size.
const MIN_CONTROL: u64 = 2 * HEADER;

/// A shared mapping, unmapped on drop. (`segment.rs` has its own,
/// read-write only; this one takes the protection.)
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: plain memory, usable from any thread; the atomics in it
// synchronise whoever shares it.
unsafe impl Send for Mapping {}

impl Mapping {
    /// `mmap(NULL, len, prot, MAP_SHARED, fd, 0)`.
    fn new(fd: BorrowedFd<'_>, len: u64, writable: bool) -> Result<Mapping, Error> {
        let len = usize::try_from(len).map_err(|_| Error::BadLayout("too large".into()))?;
        let prot = if writable {
            ProtFlags::READ | ProtFlags::WRITE
        } else {
            ProtFlags::READ
        };
        // SAFETY: a new mapping at an address the kernel picks overlaps
        // no memory Rust knows about.
        let ptr =
            unsafe { rustix::mm::mmap(std::ptr::null_mut(), len, prot, MapFlags::SHARED, fd, 0)? };
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(Error::Io(Errno::NOMEM.into()))?;
        Ok(Mapping { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: we mapped exactly this range; the `Area`s into it are
        // owned by the end that owns this mapping, and go first.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Both objects mapped.
pub(crate) struct Mapped {
    ctl: Mapping,
    data: Mapping,
    pub(crate) geo: Geometry,
    pub(crate) policy: Policy,
}

impl Mapped {
    /// The protocol's view of this memory. The mapping must outlive it.
    pub(crate) fn area(&self) -> Area {
        let ctl = self.ctl.ptr;
        let data = self.data.ptr;
        // SAFETY: the sizes were made or checked against the geometry
        // (`create`, `check_data`): the control object holds the header
        // and `slots` slots, the data object the header and `ring`
        // entries of `entry` bytes; both are page-aligned, so aligned for
        // every type here. They live as long as `self`, which the
        // Publisher or Subscriber owns with its Area.
        unsafe {
            Area::new(Parts {
                data: data.cast::<DataHeader>(),
                ctl: ctl.cast::<Control>(),
                slots: ctl.add(HEADER as usize).cast::<Slot>(),
                entries: data.add(HEADER as usize),
                stride: self.geo.entry as usize,
                payload: ENTRY_HEADER as usize,
                ring: self.geo.ring,
                max_message: self.geo.max_message(),
                slots_len: self.geo.slots,
            })
        }
    }
}

/// What `create` makes: the mapped objects, the publisher's own control
/// descriptor (which holds byte 0's lock), and the two descriptors it
/// hands to subscribers (another open file description of the control
/// object, so that sharing it shares no lock; the sealed data object).
pub(crate) struct Made {
    pub(crate) mapped: Mapped,
    pub(crate) own: OwnedFd,
    pub(crate) control: OwnedFd,
    pub(crate) data: OwnedFd,
}

fn memfd(name: &str, size: u64) -> Result<OwnedFd, Error> {
    use rustix::fs::{MemfdFlags, memfd_create};
    let fd = memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
    // `memfd_create` applies the umask; set the mode itself.
    rustix::fs::fchmod(&fd, Mode::RUSR | Mode::WUSR)?;
    rustix::fs::ftruncate(&fd, size)?;
    Ok(fd)
}

/// Makes, initialises and seals both objects, and takes the publisher's
/// lock.
pub(crate) fn create(geo: Geometry, policy: Policy) -> Result<Made, Error> {
    use rustix::fs::fcntl_add_seals;
    let control_size = geo.control_size().max(MIN_CONTROL);
    let own = memfd("shmchan-broadcast", control_size)?;
    let data = memfd("shmchan-broadcast-data", geo.data_size())?;
    liveness::lock_byte(own.as_fd(), 0)?;
    let ctl_map = Mapping::new(own.as_fd(), control_size, true)?;
    let data_map = Mapping::new(data.as_fd(), geo.data_size(), true)?;
    // The publisher's writable mapping exists: from now on nobody gets
    // another (subscribers map read-only), nobody resizes, nobody unseals.
    fcntl_add_seals(
        &data,
        SealFlags::SHRINK | SealFlags::GROW | SealFlags::FUTURE_WRITE | SealFlags::SEAL,
    )?;
    fcntl_add_seals(&own, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?;
    let mapped = Mapped {
        ctl: ctl_map,
        data: data_map,
        geo,
        policy,
    };
    let area = mapped.area();
    let d = area.data();
    // Relaxed: published by the Release store of the version.
    d.magic.store(DATA_MAGIC, Relaxed);
    d.policy.store(
        match policy {
            Policy::Block => POLICY_BLOCK,
            Policy::Overwrite => POLICY_OVERWRITE,
        },
        Relaxed,
    );
    d.ring.store(geo.ring, Relaxed);
    d.entry.store(geo.entry, Relaxed);
    d.slots.store(geo.slots, Relaxed);
    d.control_size.store(control_size, Relaxed);
    d.data_size.store(geo.data_size(), Relaxed);
    let c = area.control();
    c.magic.store(CONTROL_MAGIC, Relaxed);
    c.header_size.store(HEADER as u32, Relaxed);
    // Release: pairs with the Acquire loads in `check_control` and
    // `check_data`: an opener that sees the version sees every field.
    d.version.store(VERSION, Release);
    c.version.store(VERSION, Release);
    let control = reopen(own.as_fd())?;
    Ok(Made {
        mapped,
        own,
        control,
        data,
    })
}

/// `open("/proc/self/fd/N", O_RDWR)`: a new open file description of the
/// same object, whose locks are its own.
fn reopen(fd: BorrowedFd<'_>) -> Result<OwnedFd, Error> {
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    Ok(rustix::fs::open(
        path.as_str(),
        OFlags::RDWR | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// What a subscriber gets from `open`: the mapped objects and its own
/// control descriptor (for its slot's lock, and to watch the publisher's).
pub(crate) struct Opened {
    pub(crate) mapped: Mapped,
    pub(crate) own: OwnedFd,
}

/// Checks and maps the objects behind passed descriptors, for a
/// subscriber. Both are closed: the control object is reopened as an open
/// file description of our own (keeping the sender's would share its
/// locks), the data object is only mapped.
pub(crate) fn open(control: OwnedFd, data: OwnedFd) -> Result<Opened, Error> {
    let me = rustix::process::geteuid().as_raw();
    check_fd(control.as_fd(), me, false, "control")?;
    let own = reopen(control.as_fd())?;
    drop(control);
    let ctl_size = size_of_fd(own.as_fd())?;
    // What a channel's segment can be too: its header says which it is.
    if !(MIN_CONTROL..=crate::layout::HEADER_SIZE as u64 + crate::layout::MAX_CAPACITY as u64)
        .contains(&ctl_size)
    {
        return Err(Error::BadLayout(format!(
            "a control object of {ctl_size} bytes"
        )));
    }
    let ctl_map = Mapping::new(own.as_fd(), ctl_size, true)?;
    // SAFETY: the mapping is at least a page, page-aligned; every field
    // of the header is atomic, so any bytes are a valid header.
    check_control(unsafe { ctl_map.ptr.cast::<Control>().as_ref() })?;
    if ctl_size > HEADER + SLOT * u64::from(MAX_SUBSCRIBERS) {
        return Err(Error::BadLayout(format!(
            "a control object of {ctl_size} bytes"
        )));
    }
    check_fd(data.as_fd(), me, true, "data")?;
    let data_size = size_of_fd(data.as_fd())?;
    if !(2 * HEADER..=HEADER + MAX_DATA).contains(&data_size) {
        return Err(Error::BadLayout(format!(
            "a data object of {data_size} bytes"
        )));
    }
    let data_map = Mapping::new(data.as_fd(), data_size, false)?;
    drop(data);
    // SAFETY: as above, for the data object.
    let (geo, policy) = check_data(unsafe { data_map.ptr.cast::<DataHeader>().as_ref() })?;
    if geo.data_size() != data_size || geo.control_size().max(MIN_CONTROL) != ctl_size {
        return Err(Error::BadLayout(format!(
            "objects of {ctl_size} and {data_size} bytes for {geo:?}"
        )));
    }
    Ok(Opened {
        mapped: Mapped {
            ctl: ctl_map,
            data: data_map,
            geo,
            policy,
        },
        own,
    })
}

fn size_of_fd(fd: BorrowedFd<'_>) -> Result<u64, Error> {
    let st = rustix::fs::fstat(fd)?;
    Ok(u64::try_from(st.st_size).unwrap_or(0))
}

/// A passed descriptor: ours, closed to others, sealed against resizing
/// (and, the data object, against writable mappings); the control object
/// open read-write.
fn check_fd(fd: BorrowedFd<'_>, owner: u32, data: bool, what: &str) -> Result<(), Error> {
    use rustix::fs::{fcntl_get_seals, fcntl_getfl};
    let st = rustix::fs::fstat(fd)?;
    if st.st_uid != owner {
        return Err(Error::Untrusted(format!(
            "the {what} object is owned by uid {}, not {owner}",
            st.st_uid
        )));
    }
    if st.st_mode & 0o077 != 0 {
        return Err(Error::Untrusted(format!(
            "the {what} object's mode {:o} lets others in",
            st.st_mode & 0o777
        )));
    }
    if !data && fcntl_getfl(fd)? & OFlags::RWMODE != OFlags::RDWR {
        return Err(Error::Untrusted(format!(
            "the {what} descriptor is not open read-write"
        )));
    }
    let mut need = SealFlags::SHRINK | SealFlags::GROW;
    if data {
        need |= SealFlags::FUTURE_WRITE;
    }
    match fcntl_get_seals(fd) {
        Ok(seals) if seals.contains(need) => Ok(()),
        Ok(_) | Err(Errno::INVAL) => Err(Error::Untrusted(format!(
            "the {what} object is not sealed against {}",
            if data {
                "resizing and writing"
            } else {
                "resizing"
            }
        ))),
        Err(e) => Err(e.into()),
    }
}

fn check_version(magic: u64, version: u32, want: u64, what: &str) -> Result<(), Error> {
    if version == 0 {
        return Err(Error::NotInitialised);
    }
    if magic == crate::layout::MAGIC {
        return Err(Error::BadLayout(
            "a shmchan channel, not a broadcast: join it with Options::receiver_from_fd".into(),
        ));
    }
    if magic != want {
        return Err(Error::BadLayout(format!(
            "not a shmchan broadcast {what} object (wrong magic)"
        )));
    }
    if version != VERSION {
        return Err(Error::VersionMismatch {
            found: version,
            expected: VERSION,
        });
    }
    Ok(())
}

fn check_control(c: &Control) -> Result<(), Error> {
    // Acquire: pairs with the Release store in `create`.
    let version = c.version.load(Acquire);
    // Relaxed: ordered by the Acquire above; each read once.
    check_version(c.magic.load(Relaxed), version, CONTROL_MAGIC, "control")?;
    if u64::from(c.header_size.load(Relaxed)) != HEADER {
        return Err(Error::BadLayout("the control header's size".into()));
    }
    Ok(())
}

/// The geometry and policy in a data header, checked. The data object is
/// read-only for every subscriber: only the publisher wrote it.
fn check_data(d: &DataHeader) -> Result<(Geometry, Policy), Error> {
    // Acquire: pairs with the Release store in `create`.
    let version = d.version.load(Acquire);
    check_version(d.magic.load(Relaxed), version, DATA_MAGIC, "data")?;
    // Relaxed: ordered by the Acquire above; each read once.
    let policy = match d.policy.load(Relaxed) {
        POLICY_BLOCK => Policy::Block,
        POLICY_OVERWRITE => Policy::Overwrite,
        _ => return Err(Error::BadLayout("an unknown policy".into())),
    };
    let (ring, entry, slots) = (
        d.ring.load(Relaxed),
        d.entry.load(Relaxed),
        d.slots.load(Relaxed),
    );
    let ok = ring.is_power_of_two()
        && (2..=MAX_RING).contains(&ring)
        && entry % ENTRY_ALIGN == 0
        && entry > ENTRY_HEADER
        && entry.checked_mul(ring).is_some_and(|b| b <= MAX_DATA)
        && (1..=MAX_SUBSCRIBERS).contains(&slots);
    if !ok {
        return Err(Error::BadLayout(format!(
            "a ring of {ring} entries of {entry} bytes, {slots} slots"
        )));
    }
    Ok((Geometry { ring, entry, slots }, policy))
}

/// Takes the first free subscriber slot: its lock, on our own open file
/// description. `TooManySubscribers` when every slot is held.
pub(crate) fn take_slot(own: BorrowedFd<'_>, slots: u32) -> Result<usize, Error> {
    for i in 0..slots {
        match liveness::lock_byte(own, 1 + u64::from(i)) {
            Ok(()) => return Ok(i as usize),
            Err(Error::Taken) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::TooManySubscribers { slots })
}

/// Whether the publisher holds its lock (it lives).
pub(crate) fn publisher_alive(own: BorrowedFd<'_>) -> Result<bool, Error> {
    liveness::byte_held(own, 0)
}

/// Whether the subscriber of slot `slot` holds its lock (it lives).
pub(crate) fn subscriber_alive(own: BorrowedFd<'_>, slot: usize) -> Result<bool, Error> {
    liveness::byte_held(own, 1 + slot as u64)
}
