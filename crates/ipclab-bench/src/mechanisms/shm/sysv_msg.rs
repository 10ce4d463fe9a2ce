//! Buffer ids through a System V message queue: `msgget` (a recorded key
//! of ipclab's range, [`crate::objects::registry`]), `msgsnd`, `msgrcv`.
//!
//! The data stays in the segment; the queue carries only "buffer N is
//! ready" and "buffer N is free again" (the seed's "P1 writes to shared
//! memory, sends message to queue; P2 receives message from queue, then
//! reads from shared memory"). One queue holds all four semaphores: the
//! message type (1 to 4) says which, the 4-byte text is the buffer id, and
//! `msgrcv` with that type takes the oldest of its kind. The queue's 16 KiB
//! default (`kernel.msgmnb`) holds the 2 × `segments` ids in flight for up
//! to 2048 segments. `msgrcv` has no timeout: a closing side sends
//! [`CLOSED`] to wake its peer. `IPC_RMID` destroys a queue at once, so
//! the guard removes it after both sides are reaped.
//!
//! A peer killed outright sends nothing, and a queue cannot be polled. So
//! each side's [`WakeTimer`] interrupts a blocked `msgrcv` every
//! [`TICK`](crate::mechanisms::wake_timer::TICK); the `EINTR` comes back as
//! [`Waited::Nothing`], and the ring looks at its lifeline as after any
//! empty wait. Sends never block (`IPC_NOWAIT`).

use std::io;
use std::mem::MaybeUninit;

use rustix::io::Errno;

use super::cleanup::{Cleanup, Object};
use super::names::{OWNER_ONLY, check_mode};
use super::region::Side;
use super::semaphores::{CLOSED, Sem, Semaphores, SyncArea, Waited};
use crate::machine::read_proc;
use crate::mechanisms::wake_timer::WakeTimer;
use crate::objects::registry::{self, Kind};
use crate::transport::{Limit, protocol_error};

fn last_error(call: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{call}: {e}"))
}

/// A message of the queue: its type, then a buffer id.
#[repr(C)]
struct Message {
    mtype: libc::c_long,
    id: u32,
}

const TEXT: usize = size_of::<u32>();

/// `msgctl(id, IPC_STAT)`—The queue's mode and limits.
pub fn stat(id: i32) -> io::Result<libc::msqid_ds> {
    let mut ds = MaybeUninit::<libc::msqid_ds>::uninit();
    // SAFETY: IPC_STAT writes one `msqid_ds`.
    if unsafe { libc::msgctl(id, libc::IPC_STAT, ds.as_mut_ptr()) } != 0 {
        return Err(last_error("msgctl(IPC_STAT)"));
    }
    // SAFETY: IPC_STAT succeeded and filled it.
    Ok(unsafe { ds.assume_init() })
}

/// `msgctl(id, IPC_RMID)`; a queue already gone is no error.
pub fn remove(id: i32) -> io::Result<()> {
    // SAFETY: IPC_RMID reads no buffer.
    if unsafe { libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()) } != 0 {
        let e = io::Error::last_os_error();
        if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EIDRM)) {
            return Ok(());
        }
        return Err(io::Error::new(e.kind(), format!("msgctl(IPC_RMID): {e}")));
    }
    Ok(())
}

/// The message type of `sem`: types start at 1.
fn mtype(sem: Sem) -> libc::c_long {
    sem.index() as libc::c_long + 1
}

/// `msgsnd(id, {mtype(sem), slot}, 4, IPC_NOWAIT)`: never blocks; a full
/// queue is an error (it cannot fill while both sides keep the protocol).
fn send(id: i32, sem: Sem, slot: u32) -> io::Result<()> {
    let msg = Message {
        mtype: mtype(sem),
        id: slot,
    };
    // SAFETY: `msg` is a `long` type followed by `TEXT` bytes of text.
    let r = unsafe { libc::msgsnd(id, (&msg as *const Message).cast(), TEXT, libc::IPC_NOWAIT) };
    if r != 0 {
        return Err(last_error("msgsnd"));
    }
    Ok(())
}

/// Message queue "semaphores": posting sends the buffer id.
pub struct SysvMsg {
    id: i32,
    /// Interrupts a blocked `msgrcv`, so that the ring looks whether the
    /// peer lives.
    _wake: WakeTimer,
}

pub struct SysvMsgHandle {
    id: i32,
}

impl Semaphores for SysvMsg {
    type Handle = SysvMsgHandle;

    fn create(
        initial: [u32; Sem::COUNT],
        _: SyncArea,
        cleanup: &mut Cleanup,
    ) -> io::Result<SysvMsgHandle> {
        let (id, record) = registry::create_sysv(Kind::SysvMsg, |key| {
            // SAFETY: plain system call with integer arguments.
            let id =
                unsafe { libc::msgget(key, libc::IPC_CREAT | libc::IPC_EXCL | OWNER_ONLY as i32) };
            if id < 0 {
                return Err(last_error("msgget"));
            }
            Ok(id)
        })?;
        cleanup.push(Object::SysvMsg(id, record));
        let ds = stat(id)?;
        check_mode(
            "System V message queue",
            u32::from(ds.msg_perm.mode),
            OWNER_ONLY,
        )?;
        let in_flight: u64 = initial.iter().map(|&n| u64::from(n)).sum::<u64>() + Sem::COUNT as u64;
        let room = ds.msg_qbytes as u64 / TEXT as u64;
        if in_flight > room {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{in_flight} buffer ids do not fit a queue of {} bytes (kernel.msgmnb)",
                    ds.msg_qbytes
                ),
            ));
        }
        // The free buffers: ids 0..n of each direction, in ring order.
        for sem in Sem::all() {
            for slot in 0..initial[sem.index()] {
                send(id, sem, slot)?;
            }
        }
        Ok(SysvMsgHandle { id })
    }

    unsafe fn open(
        handle: &mut SysvMsgHandle,
        _: SyncArea,
        _: Side,
        _: [u32; Sem::COUNT],
    ) -> io::Result<Self> {
        // Opened in the side's process, on the thread that waits.
        Ok(SysvMsg {
            id: handle.id,
            _wake: WakeTimer::start()?,
        })
    }

    fn post(&mut self, sem: Sem, slot: u32) -> io::Result<()> {
        send(self.id, sem, slot)
    }

    fn wait(&mut self, sem: Sem) -> io::Result<Waited> {
        let mut msg = Message { mtype: 0, id: 0 };
        // SAFETY: `msg` has room for a `long` and `TEXT` bytes.
        let n = unsafe {
            libc::msgrcv(
                self.id,
                (&mut msg as *mut Message).cast(),
                TEXT,
                mtype(sem),
                0,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match Errno::from_io_error(&e) {
                // The wake timer's tick: the ring looks at its lifeline.
                Some(Errno::INTR) => Ok(Waited::Nothing),
                _ => Err(io::Error::new(e.kind(), format!("msgrcv: {e}"))),
            };
        }
        if n as usize != TEXT || msg.mtype != mtype(sem) {
            return Err(protocol_error(format!(
                "a message of type {} with {n} bytes on the queue",
                msg.mtype
            )));
        }
        Ok(Waited::Slot(msg.id))
    }

    fn interrupt(&mut self, sem: Sem) {
        let _ = send(self.id, sem, CLOSED);
    }

    fn limits() -> Vec<Limit> {
        ["msgmnb", "msgmax", "msgmni"]
            .iter()
            .map(|k| {
                Limit::new(
                    format!("kernel.{k}"),
                    read_proc(&format!("/proc/sys/kernel/{k}")),
                )
            })
            .collect()
    }
}
