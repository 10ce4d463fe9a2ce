//! System V semaphores: `semget`, `semtimedop`, `semctl`.
//!
//! One set of four semaphores, made in `prepare` with mode 0600 (System V
//! modes are not reduced by the umask) and a recorded key of ipclab's range
//! ([`crate::objects::registry`]; the sides use the id). `IPC_RMID` destroys a set at once,
//! waking its waiters with `EIDRM`, so only the guard removes it, after
//! both sides are reaped.
//!
//! No `SEM_UNDO`: it exists for locks, so that a process dying while it
//! holds one gives it back. Here units travel between processes: the
//! sender posts `filled` and the receiver takes it. With `SEM_UNDO` the
//! kernel would take back, when the sender exits, units the receiver has
//! not yet taken: a stream whose client finishes and exits first would lose
//! its last messages.

use std::io;
use std::mem::MaybeUninit;

use rustix::io::Errno;

use super::cleanup::{Cleanup, Object};
use super::names::{OWNER_ONLY, check_mode};
use super::region::Side;
use super::semaphores::{Sem, Semaphores, SyncArea, WAIT_SLICE, Waited};
use crate::machine::read_proc;
use crate::objects::registry::{self, Kind};
use crate::transport::Limit;

fn last_error(call: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{call}: {e}"))
}

/// `semctl(id, 0, IPC_STAT)`—The set's mode and size.
pub fn stat(id: i32) -> io::Result<libc::semid_ds> {
    let mut ds = MaybeUninit::<libc::semid_ds>::uninit();
    // SAFETY: IPC_STAT writes one `semid_ds` through the pointer passed as
    // the variadic `union semun` (whose `buf` member is that pointer).
    if unsafe { libc::semctl(id, 0, libc::IPC_STAT, ds.as_mut_ptr()) } != 0 {
        return Err(last_error("semctl(IPC_STAT)"));
    }
    // SAFETY: IPC_STAT succeeded and filled it.
    Ok(unsafe { ds.assume_init() })
}

/// `semctl(id, 0, IPC_RMID)`; a set already gone is no error.
pub fn remove(id: i32) -> io::Result<()> {
    // SAFETY: IPC_RMID reads no argument.
    if unsafe { libc::semctl(id, 0, libc::IPC_RMID) } != 0 {
        let e = io::Error::last_os_error();
        if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EIDRM)) {
            return Ok(());
        }
        return Err(io::Error::new(e.kind(), format!("semctl(IPC_RMID): {e}")));
    }
    Ok(())
}

/// A System V semaphore set of four.
pub struct SysvSem {
    id: i32,
}

pub struct SysvSemHandle {
    id: i32,
}

impl SysvSem {
    /// `semtimedop(id, {sem, delta, 0}, 1, timeout)`.
    fn op(&self, sem: Sem, delta: i16, timeout: Option<&libc::timespec>) -> io::Result<()> {
        let mut op = libc::sembuf {
            sem_num: sem.index() as u16,
            sem_op: delta,
            sem_flg: 0,
        };
        let timeout = timeout.map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: one valid `sembuf` and a valid (or null) timeout; libc
        // has no wrapper for semtimedop, so it is called by number.
        let r = unsafe {
            libc::syscall(
                libc::SYS_semtimedop,
                self.id,
                &mut op as *mut libc::sembuf,
                1usize,
                timeout,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Semaphores for SysvSem {
    type Handle = SysvSemHandle;

    fn create(
        initial: [u32; Sem::COUNT],
        _: SyncArea,
        cleanup: &mut Cleanup,
    ) -> io::Result<SysvSemHandle> {
        let (id, record) = registry::create_sysv(Kind::SysvSem, |key| {
            // SAFETY: plain system call with integer arguments.
            let id = unsafe {
                libc::semget(
                    key,
                    Sem::COUNT as i32,
                    libc::IPC_CREAT | libc::IPC_EXCL | OWNER_ONLY as i32,
                )
            };
            if id < 0 {
                return Err(last_error("semget"));
            }
            Ok(id)
        })?;
        cleanup.push(Object::SysvSem(id, record));
        check_mode(
            "System V semaphore set",
            u32::from(stat(id)?.sem_perm.mode),
            OWNER_ONLY,
        )?;
        let mut values = [0u16; Sem::COUNT];
        for (v, i) in values.iter_mut().zip(initial) {
            // SEMVMX is 32767; `Layout` allows at most 65536 segments.
            *v = u16::try_from(i)
                .ok()
                .filter(|&v| v <= 32767)
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{i} segments exceed SEMVMX (32767)"),
                    )
                })?;
        }
        // SAFETY: SETALL reads `Sem::COUNT` values through the pointer
        // passed as the variadic `union semun` (its `array` member).
        if unsafe { libc::semctl(id, 0, libc::SETALL, values.as_mut_ptr()) } != 0 {
            return Err(last_error("semctl(SETALL)"));
        }
        Ok(SysvSemHandle { id })
    }

    unsafe fn open(
        handle: &mut SysvSemHandle,
        _: SyncArea,
        _: Side,
        _: [u32; Sem::COUNT],
    ) -> io::Result<Self> {
        Ok(SysvSem { id: handle.id })
    }

    fn post(&mut self, sem: Sem, _: u32) -> io::Result<()> {
        self.op(sem, 1, None)
            .map_err(|e| io::Error::new(e.kind(), format!("semop(+1): {e}")))
    }

    fn wait(&mut self, sem: Sem) -> io::Result<Waited> {
        let timeout = libc::timespec {
            tv_sec: WAIT_SLICE.as_secs() as _,
            tv_nsec: WAIT_SLICE.subsec_nanos() as _,
        };
        match self.op(sem, -1, Some(&timeout)) {
            Ok(()) => Ok(Waited::Unit),
            Err(e) => match Errno::from_io_error(&e) {
                Some(Errno::AGAIN | Errno::INTR) => Ok(Waited::Nothing),
                _ => Err(io::Error::new(e.kind(), format!("semtimedop(-1): {e}"))),
            },
        }
    }

    fn interrupt(&mut self, sem: Sem) {
        // A spare unit wakes the peer; the ring then sees that we closed.
        let _ = self.op(sem, 1, None);
    }

    fn limits() -> Vec<Limit> {
        vec![Limit::new(
            "kernel.sem (SEMMSL SEMMNS SEMOPM SEMMNI)",
            read_proc("/proc/sys/kernel/sem").replace('\t', " "),
        )]
    }
}
