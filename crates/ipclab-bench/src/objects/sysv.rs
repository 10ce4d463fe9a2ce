//! System V objects as the kernel lists them (`/proc/sysvipc/{shm,sem,msg}`),
//! and their checked removal.

use std::io;
use std::mem::MaybeUninit;

use super::registry::Kind;

/// One row of `/proc/sysvipc/<table>`.
#[derive(Debug, Clone)]
pub struct Row {
    pub key: i32,
    pub id: i32,
    /// The creator's uid.
    pub cuid: u32,
    /// The creating process (segments only).
    pub cpid: Option<i32>,
    /// Seconds since the epoch of the last change (the creation, for
    /// objects nobody `IPC_SET`).
    pub ctime: u64,
    /// Bytes (segment), semaphores (set) or bytes queued (queue).
    pub size: u64,
}

fn table(kind: Kind) -> (&'static str, &'static str, &'static str) {
    match kind {
        Kind::SysvShm => ("/proc/sysvipc/shm", "shmid", "size"),
        Kind::SysvSem => ("/proc/sysvipc/sem", "semid", "nsems"),
        _ => ("/proc/sysvipc/msg", "msqid", "cbytes"),
    }
}

/// Every row of the table of `kind` (none if the kernel has no table).
pub fn rows(kind: Kind) -> Vec<Row> {
    let (file, id_col, size_col) = table(kind);
    let Ok(text) = std::fs::read_to_string(file) else {
        return Vec::new();
    };
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (Some(key), Some(id), Some(cuid), Some(ctime), Some(size)) = (
        col("key"),
        col(id_col),
        col("cuid"),
        col("ctime"),
        col(size_col),
    ) else {
        return Vec::new();
    };
    let cpid = col("cpid");
    lines
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            Some(Row {
                key: f.get(key)?.parse().ok()?,
                id: f.get(id)?.parse().ok()?,
                cuid: f.get(cuid)?.parse().ok()?,
                cpid: cpid.and_then(|c| f.get(c)?.parse().ok()),
                ctime: f.get(ctime)?.parse().ok()?,
                size: f.get(size)?.parse().ok()?,
            })
        })
        .collect()
}

/// `IPC_STAT` of object `id` of `kind`: its key, creator uid and (for a
/// segment) creator pid.
fn stat(kind: Kind, id: i32) -> io::Result<(i32, u32, Option<i32>)> {
    let fail = || Err(io::Error::last_os_error());
    match kind {
        Kind::SysvShm => {
            let mut ds = MaybeUninit::<libc::shmid_ds>::uninit();
            // SAFETY: IPC_STAT fills the writable `shmid_ds`.
            if unsafe { libc::shmctl(id, libc::IPC_STAT, ds.as_mut_ptr()) } != 0 {
                return fail();
            }
            // SAFETY: IPC_STAT succeeded, so every field is written.
            let ds = unsafe { ds.assume_init() };
            Ok((ds.shm_perm.__key, ds.shm_perm.cuid, Some(ds.shm_cpid)))
        }
        Kind::SysvSem => {
            let mut ds = MaybeUninit::<libc::semid_ds>::uninit();
            // SAFETY: IPC_STAT writes one `semid_ds` through the pointer
            // passed as the variadic `union semun` (its `buf` member).
            if unsafe { libc::semctl(id, 0, libc::IPC_STAT, ds.as_mut_ptr()) } != 0 {
                return fail();
            }
            // SAFETY: IPC_STAT succeeded, so every field is written.
            let ds = unsafe { ds.assume_init() };
            Ok((ds.sem_perm.__key, ds.sem_perm.cuid, None))
        }
        _ => {
            let mut ds = MaybeUninit::<libc::msqid_ds>::uninit();
            // SAFETY: IPC_STAT fills the writable `msqid_ds`.
            if unsafe { libc::msgctl(id, libc::IPC_STAT, ds.as_mut_ptr()) } != 0 {
                return fail();
            }
            // SAFETY: IPC_STAT succeeded, so every field is written.
            let ds = unsafe { ds.assume_init() };
            Ok((ds.msg_perm.__key, ds.msg_perm.cuid, None))
        }
    }
}

/// Removes object `id` of `kind` (`IPC_RMID`) if it is still the one that
/// was listed: same key, same creator uid, and for a segment the same
/// creator pid. One already gone is no error.
pub fn remove_checked(
    kind: Kind,
    id: i32,
    key: i32,
    cuid: u32,
    cpid: Option<i32>,
) -> io::Result<()> {
    let gone = |e: &io::Error| matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EIDRM));
    match stat(kind, id) {
        Ok((k, u, p)) if k == key && u == cuid && (cpid.is_none() || p == cpid) => {}
        Ok(_) => return Ok(()),
        Err(e) if gone(&e) => return Ok(()),
        Err(e) => return Err(e),
    }
    // SAFETY: IPC_RMID reads no buffer (a null pointer is allowed).
    let r = unsafe {
        match kind {
            Kind::SysvShm => libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()),
            Kind::SysvSem => libc::semctl(id, 0, libc::IPC_RMID),
            _ => libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()),
        }
    };
    match io::Error::last_os_error() {
        e if r != 0 && !gone(&e) => Err(e),
        _ => Ok(()),
    }
}
