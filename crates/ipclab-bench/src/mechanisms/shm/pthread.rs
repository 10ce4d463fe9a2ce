//! Semaphores built from a pthread mutex and condition variable in the
//! segment, shared between processes (`PTHREAD_PROCESS_SHARED`).
//!
//! The mutexes are robust (`PTHREAD_MUTEX_ROBUST`): if a side dies holding
//! one, the next `lock` returns `EOWNERDEAD` instead of blocking forever.
//! The critical sections only read or write one counter, so the state is
//! consistent whatever the point of death: we call
//! `pthread_mutex_consistent` and go on (the ring then sees the peer's
//! state). `ENOTRECOVERABLE` is an error. Condition variables use
//! `CLOCK_MONOTONIC`, so waits time out after [`WAIT_SLICE`] whatever the
//! wall clock does.

use std::cell::UnsafeCell;
use std::io;

use rustix::time::{ClockId, clock_gettime};

use super::cleanup::Cleanup;
use super::region::Side;
use super::semaphores::{BLOCK, Sem, Semaphores, SyncArea, WAIT_SLICE, Waited};

/// A counting semaphore: a count guarded by a mutex, a condition to wait on.
#[repr(C)]
struct CondSem {
    mutex: UnsafeCell<libc::pthread_mutex_t>,
    cond: UnsafeCell<libc::pthread_cond_t>,
    count: UnsafeCell<u32>,
}

const _: () = assert!(size_of::<CondSem>() <= BLOCK);

fn check(call: &str, r: libc::c_int) -> io::Result<()> {
    if r != 0 {
        let e = io::Error::from_raw_os_error(r);
        return Err(io::Error::new(e.kind(), format!("{call}: {e}")));
    }
    Ok(())
}

/// # Safety
/// `area` must be live for the returned lifetime.
unsafe fn cond_sem<'a>(area: SyncArea, sem: Sem) -> &'a CondSem {
    // SAFETY: the block is `BLOCK` bytes, aligned to 128, inside the live
    // area; every field is behind `UnsafeCell` and only used through the
    // pthread calls or under the mutex.
    unsafe { &*area.block(sem).cast::<CondSem>() }
}

/// Initialises one semaphore in place (in `prepare`).
fn init(c: &CondSem, value: u32) -> io::Result<()> {
    // SAFETY: the attribute objects are initialised before use and
    // destroyed after; the mutex and condition live in the shared segment
    // and are initialised exactly once, before any side maps it.
    unsafe {
        let mut ma = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        check(
            "pthread_mutexattr_init",
            libc::pthread_mutexattr_init(ma.as_mut_ptr()),
        )?;
        let r = (|| {
            check(
                "pthread_mutexattr_setpshared",
                libc::pthread_mutexattr_setpshared(ma.as_mut_ptr(), libc::PTHREAD_PROCESS_SHARED),
            )?;
            check(
                "pthread_mutexattr_setrobust",
                libc::pthread_mutexattr_setrobust(ma.as_mut_ptr(), libc::PTHREAD_MUTEX_ROBUST),
            )?;
            check(
                "pthread_mutex_init",
                libc::pthread_mutex_init(c.mutex.get(), ma.as_ptr()),
            )
        })();
        libc::pthread_mutexattr_destroy(ma.as_mut_ptr());
        r?;

        let mut ca = std::mem::MaybeUninit::<libc::pthread_condattr_t>::uninit();
        check(
            "pthread_condattr_init",
            libc::pthread_condattr_init(ca.as_mut_ptr()),
        )?;
        let r = (|| {
            check(
                "pthread_condattr_setpshared",
                libc::pthread_condattr_setpshared(ca.as_mut_ptr(), libc::PTHREAD_PROCESS_SHARED),
            )?;
            check(
                "pthread_condattr_setclock",
                libc::pthread_condattr_setclock(ca.as_mut_ptr(), libc::CLOCK_MONOTONIC),
            )?;
            check(
                "pthread_cond_init",
                libc::pthread_cond_init(c.cond.get(), ca.as_ptr()),
            )
        })();
        libc::pthread_condattr_destroy(ca.as_mut_ptr());
        r?;
        *c.count.get() = value;
    }
    Ok(())
}

/// Whether a lock (or a wait's relock) succeeded, making a dead owner's
/// mutex consistent again.
fn locked(c: &CondSem, r: libc::c_int) -> io::Result<()> {
    match r {
        0 => Ok(()),
        libc::EOWNERDEAD => {
            // SAFETY: we own the mutex (EOWNERDEAD hands it to us).
            check("pthread_mutex_consistent", unsafe {
                libc::pthread_mutex_consistent(c.mutex.get())
            })
        }
        r => check("pthread_mutex_lock", r),
    }
}

fn lock(c: &CondSem) -> io::Result<()> {
    // SAFETY: an initialised process-shared mutex in the live segment.
    locked(c, unsafe { libc::pthread_mutex_lock(c.mutex.get()) })
}

fn unlock(c: &CondSem) {
    // SAFETY: called only while this thread holds the mutex.
    unsafe { libc::pthread_mutex_unlock(c.mutex.get()) };
}

/// Mutex + condition variable semaphores in the segment.
pub struct PthreadCond {
    area: SyncArea,
}

impl PthreadCond {
    fn sem(&self, sem: Sem) -> &CondSem {
        // SAFETY: `open`'s caller keeps the area mapped while `self` lives.
        unsafe { cond_sem(self.area, sem) }
    }
}

impl Semaphores for PthreadCond {
    type Handle = ();

    fn create(initial: [u32; Sem::COUNT], area: SyncArea, _: &mut Cleanup) -> io::Result<()> {
        for sem in Sem::all() {
            // SAFETY: the area is live during `create`.
            init(unsafe { cond_sem(area, sem) }, initial[sem.index()])?;
        }
        Ok(())
    }

    unsafe fn open(_: &mut (), area: SyncArea, _: Side, _: [u32; Sem::COUNT]) -> io::Result<Self> {
        Ok(PthreadCond { area })
    }

    fn post(&mut self, sem: Sem, _: u32) -> io::Result<()> {
        let c = self.sem(sem);
        lock(c)?;
        // SAFETY: the count is only touched under the mutex, which we hold.
        unsafe { *c.count.get() = (*c.count.get()).wrapping_add(1) };
        unlock(c);
        // SAFETY: an initialised process-shared condition variable.
        check("pthread_cond_signal", unsafe {
            libc::pthread_cond_signal(c.cond.get())
        })
    }

    fn wait(&mut self, sem: Sem) -> io::Result<Waited> {
        let c = self.sem(sem);
        let now = clock_gettime(ClockId::Monotonic);
        let ns = now.tv_nsec as i64 + WAIT_SLICE.subsec_nanos() as i64;
        let deadline = libc::timespec {
            tv_sec: (now.tv_sec + WAIT_SLICE.as_secs() as i64 + ns / 1_000_000_000) as _,
            tv_nsec: (ns % 1_000_000_000) as _,
        };
        lock(c)?;
        let result = loop {
            // SAFETY: we hold the mutex.
            let count = unsafe { *c.count.get() };
            if count > 0 {
                // SAFETY: we hold the mutex.
                unsafe { *c.count.get() = count - 1 };
                break Ok(Waited::Unit);
            }
            // SAFETY: we hold the mutex; the wait releases and retakes it.
            let r = unsafe { libc::pthread_cond_timedwait(c.cond.get(), c.mutex.get(), &deadline) };
            match r {
                0 => {}
                libc::ETIMEDOUT => break Ok(Waited::Nothing),
                // EOWNERDEAD: ours again, made consistent. Anything else
                // (ENOTRECOVERABLE) leaves the mutex not ours: no unlock.
                r => locked(c, r)?,
            }
        };
        unlock(c);
        result
    }

    fn interrupt(&mut self, sem: Sem) {
        // SAFETY: an initialised process-shared condition variable.
        unsafe { libc::pthread_cond_broadcast(self.sem(sem).cond.get()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mechanisms::shm::region::Mapping;

    /// A process that dies holding a semaphore's mutex does not block the
    /// other side: its next lock gets EOWNERDEAD, makes the mutex
    /// consistent and goes on.
    #[test]
    fn a_peer_dying_with_the_mutex_held_does_not_block() {
        let map = Mapping::shared_anonymous(Sem::COUNT * BLOCK).unwrap();
        // SAFETY: the mapping is `Sem::COUNT * BLOCK` bytes, page-aligned,
        // and outlives every use below.
        let area = unsafe { SyncArea::new(map.as_ptr()) };
        PthreadCond::create([0; Sem::COUNT], area, &mut Cleanup::default()).unwrap();
        let sem = Sem::filled(0);
        // SAFETY: the child only locks the mutex and exits, both calls a
        // forked child of a multi-threaded process may make (no allocation,
        // no lock another thread could hold).
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                // SAFETY: an initialised process-shared mutex; `_exit`
                // leaves it locked on purpose.
                unsafe {
                    let r = libc::pthread_mutex_lock(cond_sem(area, sem).mutex.get());
                    libc::_exit(r)
                }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
        // SAFETY: `map` lives until the end of the test.
        let mut sync =
            unsafe { PthreadCond::open(&mut (), area, Side::Client, [0; Sem::COUNT]) }.unwrap();
        sync.post(sem, 0).unwrap();
        assert_eq!(sync.wait(sem).unwrap(), Waited::Unit);
        assert_eq!(sync.wait(sem).unwrap(), Waited::Nothing);
    }
}
