//! A timer signal that wakes a thread blocked in a call that has no
//! timeout, so that it can look whether its peer still lives.
//!
//! `msgrcv` and `msgsnd` on a System V message queue block until the queue
//! changes, and a queue does not tell that the process at its other end
//! died. A [`WakeTimer`] sends `SIGALRM` to the thread that made it every
//! [`TICK`]; the handler does nothing and is installed without
//! `SA_RESTART`, so a blocked call returns `EINTR`, and the endpoint looks
//! at its lifeline before it waits again. A call that does not block is
//! never slowed down: the timer costs one signal delivery per tick, about
//! ten a second, whatever the traffic.
//!
//! The signal goes to the thread that made the timer (`SIGEV_THREAD_ID`),
//! not to the whole process, so other threads' calls are never
//! interrupted; an endpoint holding one must block on that thread. Meant
//! for the side processes, which are single-threaded. The handler is
//! installed by the first live timer of the process and the previous
//! disposition restored when the last one goes.

use std::io;
use std::sync::Mutex;
use std::time::Duration;

/// How often a blocked call is interrupted.
pub const TICK: Duration = Duration::from_millis(100);

/// The signal the timer sends.
const SIGNAL: libc::c_int = libc::SIGALRM;

/// The handler's users in this process, and what was installed before.
struct Handler {
    users: usize,
    previous: Option<libc::sigaction>,
}

static HANDLER: Mutex<Handler> = Mutex::new(Handler {
    users: 0,
    previous: None,
});

/// Does nothing: the signal's only purpose is to interrupt a system call.
extern "C" fn on_tick(_: libc::c_int) {}

fn os_error(call: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{call}: {e}"))
}

/// Sets the disposition of [`SIGNAL`] to `handler`, with no flags (so no
/// `SA_RESTART`) and nothing else blocked while it runs; returns the one
/// it replaced.
fn set_handler(handler: libc::sighandler_t) -> io::Result<libc::sigaction> {
    // rustix has no `sigaction`, hence libc.
    // SAFETY: an all-zero `sigaction` is a valid value (no flags, empty
    // mask); the handler is set below.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler;
    // SAFETY: `sa_mask` is a valid sigset_t to write.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: an all-zero `sigaction` is a valid value for the kernel to
    // overwrite with the previous disposition.
    let mut previous: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to valid `sigaction`s for the call; the
    // handler is async-signal-safe (it does nothing).
    if unsafe { libc::sigaction(SIGNAL, &action, &mut previous) } != 0 {
        return Err(os_error("sigaction(SIGALRM)"));
    }
    Ok(previous)
}

/// Installs the no-op handler if this is its first user.
fn acquire_handler() -> io::Result<()> {
    let mut h = HANDLER.lock().unwrap_or_else(|e| e.into_inner());
    if h.users == 0 {
        h.previous = Some(set_handler(
            on_tick as extern "C" fn(libc::c_int) as libc::sighandler_t,
        )?);
    }
    h.users += 1;
    Ok(())
}

/// Restores the previous disposition when the last user goes.
fn release_handler() {
    let mut h = HANDLER.lock().unwrap_or_else(|e| e.into_inner());
    h.users -= 1;
    if h.users == 0 {
        // Ignoring the signal first discards a tick still pending (POSIX:
        // setting SIG_IGN discards pending instances), which the default
        // disposition would otherwise turn into the death of the process.
        let _ = set_handler(libc::SIG_IGN);
        if let Some(previous) = h.previous.take() {
            // SAFETY: `previous` is what sigaction returned earlier, so a
            // valid disposition to reinstall.
            unsafe { libc::sigaction(SIGNAL, &previous, std::ptr::null_mut()) };
        }
    }
}

/// A running interval timer that interrupts this thread every [`TICK`];
/// dropping it stops the timer and, for the last one, restores the
/// signal's previous disposition.
#[derive(Debug)]
pub struct WakeTimer {
    timer: libc::timer_t,
}

impl WakeTimer {
    /// Starts interrupting the calling thread's blocking calls with `EINTR`
    /// every [`TICK`].
    pub fn start() -> io::Result<Self> {
        acquire_handler()?;
        match Self::arm() {
            Ok(timer) => Ok(WakeTimer { timer }),
            Err(e) => {
                release_handler();
                Err(e)
            }
        }
    }

    fn arm() -> io::Result<libc::timer_t> {
        // SAFETY: an all-zero `sigevent` is a valid value; the fields that
        // matter are set below.
        let mut event: libc::sigevent = unsafe { std::mem::zeroed() };
        event.sigev_notify = libc::SIGEV_THREAD_ID;
        event.sigev_signo = SIGNAL;
        event.sigev_notify_thread_id = rustix::thread::gettid().as_raw_nonzero().get();
        let mut timer: libc::timer_t = std::ptr::null_mut();
        // SAFETY: `event` and `timer` are valid for the call; the kernel
        // reads the one and writes the other.
        if unsafe { libc::timer_create(libc::CLOCK_MONOTONIC, &mut event, &mut timer) } != 0 {
            return Err(os_error("timer_create"));
        }
        let tick = libc::timespec {
            tv_sec: TICK.as_secs() as _,
            tv_nsec: TICK.subsec_nanos() as _,
        };
        let spec = libc::itimerspec {
            it_interval: tick,
            it_value: tick,
        };
        // SAFETY: `timer` was just created; `spec` is valid for the call,
        // and the old value is not asked for.
        if unsafe { libc::timer_settime(timer, 0, &spec, std::ptr::null_mut()) } != 0 {
            let e = os_error("timer_settime");
            // SAFETY: `timer` is ours and deleted once.
            unsafe { libc::timer_delete(timer) };
            return Err(e);
        }
        Ok(timer)
    }
}

impl Drop for WakeTimer {
    fn drop(&mut self) {
        // SAFETY: the timer was created in `start` and is deleted only here;
        // no tick comes after this.
        unsafe { libc::timer_delete(self.timer) };
        release_handler();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A blocking call with no timeout of its own (`pause`) comes back with
    /// EINTR, and the process survives the timer's end.
    #[test]
    fn a_blocked_call_is_interrupted_and_the_timer_goes_cleanly() {
        let timer = WakeTimer::start().unwrap();
        let again = WakeTimer::start().unwrap();
        // SAFETY: `pause` takes no arguments.
        let r = unsafe { libc::pause() };
        assert_eq!(r, -1);
        assert_eq!(io::Error::last_os_error().raw_os_error(), Some(libc::EINTR));
        drop(timer);
        drop(again);
    }

    /// A server end whose client is gone (its lifeline end closed with the
    /// pair, no message ever sent): the blocked `msgrcv` is woken by the
    /// timer, and the receive fails with the peer's death instead of
    /// blocking forever.
    #[test]
    fn a_system_v_queue_end_notices_that_its_peer_is_gone() {
        let config = crate::transport::ChannelConfig {
            size: 12,
            segment_size: None,
            segments: 1,
        };
        for name in ["sysv-mq", "shm-mq"] {
            let prepared = crate::mechanisms::find(name)
                .unwrap()
                .prepare(&config)
                .unwrap();
            let mut ep = prepared.pair.server().unwrap();
            let e = ep.recv(12, &mut |_, _| {}).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{name}: {e}");
            assert!(e.to_string().contains("peer process"), "{name}: {e}");
            drop(ep);
            drop(prepared.guard);
        }
        // The queues' records went with the guards; the empty registry
        // directory goes too, as a supervisor's exit would remove it.
        crate::objects::registry::tidy();
    }
}
