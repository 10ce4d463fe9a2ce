//! `sysv-mq`: two System V message queues, one each way.
//!
//! Why two queues rather than one with `mtype` naming the direction: each
//! direction then has its own `kernel.msgmnb` bytes of room, so a side's
//! own unread messages can never take the space its peer needs to answer,
//! and `msgrcv` takes the oldest message (`msgtyp` 0, plain FIFO), which
//! leaves `mtype` free to tell data from the end marker.
//!
//! A message of `len` bytes goes as `ceil(len / chunk)` queue messages of
//! type [`DATA`] (one empty one for `len` 0), where `chunk` is the largest
//! message the kernel takes (`kernel.msgmax`, at most the queue's
//! `msg_qbytes`). Both sides get `chunk` from the supervisor, so the
//! receiver knows the size of every piece and rejects any other. The end of
//! the stream is an empty message of type [`END`]: a data message can
//! never be taken for it, and FIFO order puts it after every message sent
//! before it.
//!
//! The queues get keys of ipclab's range, recorded in the registry first
//! ([`crate::objects::registry`]) so that `ipclab ls` finds them (the sides
//! use the ids), and mode 0600 (System V modes ignore the umask). Removing one
//! (`IPC_RMID`) destroys it at once, even in use, so the supervisor's guard
//! removes them, after both sides are reaped.
//!
//! A queue does not notice that the process at its other end died, and
//! `msgrcv`/`msgsnd` have no timeout. A side that gives up (an error or a
//! panic drops its endpoint before the stream ended) removes both queues,
//! and its peer's `msgsnd`/`msgrcv` fails at once with `EIDRM`. A peer
//! killed outright removes nothing: each side holds one end of a
//! [`Lifeline`], which the kernel hangs up when the peer dies, and a
//! [`WakeTimer`] interrupts a blocked call every [`TICK`](super::wake_timer::TICK)
//! with `EINTR`; only then does the side look at its lifeline (one `poll`),
//! and, the peer gone, takes what it left in the queue (`IPC_NOWAIT`)
//! before it reports the peer's death. A call that does not block costs
//! nothing more.

use std::io;

use super::lifeline::{Lifeline, lifelines};
use super::pieces::{self, Kind, Pieces};
use super::wake_timer::WakeTimer;
use crate::machine::read_proc;
use crate::objects::registry::{self, Kind as RecordKind, Record};
use crate::transport::{
    ChannelConfig, Check, Copies, Endpoint, Family, Fill, Info, Limit, Pair, Prepared, Received,
    Transport, protocol_error,
};

/// `mtype` of a piece of a message.
const DATA: libc::c_long = 1;
/// `mtype` of the end-of-stream marker (an empty message).
const END: libc::c_long = 2;
/// `kernel.msgmax` when `/proc` does not say (the kernel's default).
const DEFAULT_MSGMAX: usize = 8192;

/// A System V message queue that this process created; dropping it removes
/// the queue (`IPC_RMID`), then its registry record.
#[derive(Debug)]
pub struct SysvQueue {
    id: QueueId,
    record: Record,
}

/// The id of a System V message queue, as the sides use it (they never
/// remove the queue).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueId(libc::c_int);

impl SysvQueue {
    /// A new private queue with mode 0600.
    pub fn create() -> io::Result<Self> {
        let (id, record) = registry::create_sysv(RecordKind::SysvMsg, |key| {
            // SAFETY: msgget takes no pointers.
            let id = unsafe { libc::msgget(key, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
            if id < 0 {
                let e = io::Error::last_os_error();
                let hint = match e.raw_os_error() {
                    Some(libc::ENOSPC) => format!(
                        " (a kernel limit: kernel.msgmni, {} queues, exist already)",
                        read_proc("/proc/sys/kernel/msgmni")
                    ),
                    _ => String::new(),
                };
                return Err(io::Error::new(e.kind(), format!("msgget: {e}{hint}")));
            }
            Ok(id)
        })?;
        Ok(SysvQueue {
            id: QueueId(id),
            record,
        })
    }

    pub fn id(&self) -> QueueId {
        self.id
    }

    /// The queue's `msgctl(IPC_STAT)` record.
    pub fn stat(&self) -> io::Result<libc::msqid_ds> {
        let mut ds = std::mem::MaybeUninit::<libc::msqid_ds>::uninit();
        // SAFETY: `ds` is valid for writes of one msqid_ds, which IPC_STAT
        // fills completely on success.
        let r = unsafe { libc::msgctl(self.id.0, libc::IPC_STAT, ds.as_mut_ptr()) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: msgctl succeeded, so the kernel wrote the whole record.
        Ok(unsafe { ds.assume_init() })
    }

    /// The permission bits of the queue (0600 when made here).
    pub fn mode(&self) -> io::Result<u32> {
        Ok(u32::from(self.stat()?.msg_perm.mode) & 0o777)
    }
}

impl Drop for SysvQueue {
    fn drop(&mut self) {
        self.id.remove();
        let _ = self.record.remove();
    }
}

impl QueueId {
    /// `IPC_RMID`: destroys the queue at once; whoever waits on it gets
    /// `EIDRM`. A queue already gone is fine.
    fn remove(self) {
        // SAFETY: IPC_RMID takes no buffer (a null pointer is allowed).
        unsafe { libc::msgctl(self.0, libc::IPC_RMID, std::ptr::null_mut()) };
    }
}

/// A buffer laid out as `struct msgbuf { long mtype; char mtext[]; }`.
///
/// The bytes live in a `Vec<u8>` a little longer than needed, and the
/// record starts at the first address aligned for a `long`, so no cast of
/// the buffer is ever needed.
struct MsgBuf {
    bytes: Vec<u8>,
    /// The most `mtext` bytes this buffer holds.
    cap: usize,
}

const MTYPE: usize = std::mem::size_of::<libc::c_long>();

impl MsgBuf {
    fn new(cap: usize) -> Self {
        MsgBuf {
            bytes: vec![0; MTYPE + cap + std::mem::align_of::<libc::c_long>()],
            cap,
        }
    }

    /// Where the record starts: `long`-aligned.
    fn start(&self) -> usize {
        self.bytes
            .as_ptr()
            .align_offset(std::mem::align_of::<libc::c_long>())
    }

    fn set_mtype(&mut self, mtype: libc::c_long) {
        let s = self.start();
        self.bytes[s..s + MTYPE].copy_from_slice(&mtype.to_ne_bytes());
    }

    fn mtype(&self) -> libc::c_long {
        let s = self.start();
        libc::c_long::from_ne_bytes(self.bytes[s..s + MTYPE].try_into().expect("MTYPE bytes"))
    }

    fn text(&self, len: usize) -> &[u8] {
        let s = self.start() + MTYPE;
        &self.bytes[s..s + len]
    }

    fn text_mut(&mut self, len: usize) -> &mut [u8] {
        let s = self.start() + MTYPE;
        &mut self.bytes[s..s + len]
    }

    /// Sends `mtype` with the first `len` text bytes. On EINTR (the wake
    /// timer's tick) fails if the peer died, else waits again.
    fn send(
        &mut self,
        q: QueueId,
        mtype: libc::c_long,
        len: usize,
        life: &Lifeline,
    ) -> io::Result<()> {
        assert!(len <= self.cap, "a piece never exceeds the buffer");
        self.set_mtype(mtype);
        let record = &self.bytes[self.start()..];
        loop {
            // SAFETY: `record` is a long-aligned `long` followed by at least
            // `len` bytes (`len <= cap`), all initialised and borrowed for
            // the call; msgsnd only reads them.
            let r = unsafe { libc::msgsnd(q.0, record.as_ptr().cast(), len, 0) };
            if r == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(queue_error("msgsnd", e));
            }
            // Nobody reads a dead peer's queue: this would block forever.
            life.check("room in the queue")?;
        }
    }

    /// Takes the oldest message (at most `cap` text bytes); returns its
    /// `mtype` and length. On EINTR (the wake timer's tick) looks at the
    /// lifeline: a dead peer's last messages are still taken, then its
    /// death is an error.
    fn recv(&mut self, q: QueueId, life: &Lifeline) -> io::Result<(libc::c_long, usize)> {
        let start = self.start();
        let cap = self.cap;
        let record = &mut self.bytes[start..];
        let mut flags = 0;
        loop {
            // SAFETY: `record` is long-aligned and holds a `long` plus `cap`
            // bytes, borrowed mutably for the call; msgrcv writes at most
            // that much (a longer message fails with E2BIG, no MSG_NOERROR).
            let r = unsafe { libc::msgrcv(q.0, record.as_mut_ptr().cast(), cap, 0, flags) };
            if r >= 0 {
                return Ok((self.mtype(), r as usize));
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                // The peer sent all it sent before its lifeline end closed:
                // one look without waiting finds whatever it left.
                Some(libc::EINTR) if life.peer_gone()? => flags = libc::IPC_NOWAIT,
                Some(libc::EINTR) => {}
                Some(libc::ENOMSG) if flags != 0 => return Err(peer_died("a message")),
                _ => return Err(queue_error("msgrcv", e)),
            }
        }
    }
}

fn peer_died(waiting_for: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        format!("the peer process went away while this side waited for {waiting_for}"),
    )
}

/// Names the call, and says what a removed queue means.
fn queue_error(call: &str, e: io::Error) -> io::Error {
    let hint = match e.raw_os_error() {
        Some(libc::EIDRM) | Some(libc::EINVAL) => {
            " (the queue was removed: the peer gave up, or the supervisor ended the cell)"
        }
        Some(libc::E2BIG) => " (the peer sent a piece larger than agreed)",
        _ => "",
    };
    io::Error::new(e.kind(), format!("{call}: {e}{hint}"))
}

pub struct SysvMq;

/// The ids both sides need; the queues themselves stay with the guard.
struct Queues {
    to_server: QueueId,
    to_client: QueueId,
    chunk: usize,
    /// The server's and the client's: each side keeps its own and closes
    /// the other's, so that the kernel tells it when the peer dies.
    lifelines: (Lifeline, Lifeline),
}

impl Transport for SysvMq {
    fn info(&self) -> Info {
        Info {
            name: "sysv-mq",
            family: Family::MessagePassing,
            sync: "kernel (blocking msgsnd/msgrcv)",
            summary: "two System V message queues (0600, keys recorded for ipclab ls), one each way; pieces of kernel.msgmax bytes",
            polls: false,
            copies: Copies::KERNEL,
        }
    }

    fn limits(&self) -> Vec<Limit> {
        vec![
            Limit::new(
                "kernel.msgmax (bytes per message)",
                read_proc("/proc/sys/kernel/msgmax"),
            ),
            Limit::new(
                "kernel.msgmnb (bytes per queue)",
                read_proc("/proc/sys/kernel/msgmnb"),
            ),
            Limit::new(
                "kernel.msgmni (queues)",
                read_proc("/proc/sys/kernel/msgmni"),
            ),
        ]
    }

    fn prepare(&self, _: &ChannelConfig) -> io::Result<Prepared> {
        let to_server = SysvQueue::create()?;
        let to_client = SysvQueue::create()?;
        let msgmax = read_proc("/proc/sys/kernel/msgmax")
            .parse()
            .unwrap_or(DEFAULT_MSGMAX);
        // A message larger than the queue's room could never be sent.
        let qbytes = to_server.stat()?.msg_qbytes as usize;
        let chunk = msgmax.min(qbytes).max(1);
        let pair = Queues {
            to_server: to_server.id(),
            to_client: to_client.id(),
            chunk,
            lifelines: lifelines()?,
        };
        Ok(Prepared::with_guard(pair, (to_server, to_client)))
    }
}

impl Pair for Queues {
    fn server(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        let (life, _) = self.lifelines;
        Ok(Box::new(QueueEnd::new(
            self.to_server,
            self.to_client,
            self.chunk,
            life,
        )?))
    }

    fn client(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        let (_, life) = self.lifelines;
        Ok(Box::new(QueueEnd::new(
            self.to_client,
            self.to_server,
            self.chunk,
            life,
        )?))
    }
}

/// One side: takes from `rx`, puts into `tx`.
struct QueueEnd {
    rx: QueueId,
    tx: QueueId,
    chunk: usize,
    buf: MsgBuf,
    rounds: u64,
    finished: bool,
    peer_finished: bool,
    /// Hung up by the kernel when the peer process dies.
    life: Lifeline,
    /// Interrupts a blocked `msgrcv`/`msgsnd` so that it looks at `life`.
    _wake: WakeTimer,
}

impl QueueEnd {
    /// Runs in the side's process, on the thread that will use it (the
    /// wake timer interrupts this thread).
    fn new(rx: QueueId, tx: QueueId, chunk: usize, life: Lifeline) -> io::Result<Self> {
        Ok(QueueEnd {
            rx,
            tx,
            chunk,
            buf: MsgBuf::new(chunk),
            rounds: 0,
            finished: false,
            peer_finished: false,
            life,
            _wake: WakeTimer::start()?,
        })
    }
}

impl Endpoint for QueueEnd {
    fn send(&mut self, len: usize, fill: Fill<'_>) -> io::Result<()> {
        if self.finished {
            return Err(protocol_error("send after finish"));
        }
        for (offset, n) in pieces::split(len, self.chunk) {
            fill(offset, self.buf.text_mut(n));
            self.buf.send(self.tx, DATA, n, &self.life)?;
        }
        Ok(())
    }

    fn recv(&mut self, len: usize, check: Check<'_>) -> io::Result<Received> {
        if self.peer_finished {
            return Ok(Received::Closed);
        }
        let mut pieces = Pieces::new(len, self.chunk);
        loop {
            let (mtype, n) = self.buf.recv(self.rx, &self.life)?;
            let Some(offset) = pieces.take(
                match mtype {
                    DATA => Kind::Data,
                    END => Kind::End,
                    other => Kind::Unknown(other),
                },
                n,
            )?
            else {
                self.peer_finished = true;
                return Ok(Received::Closed);
            };
            self.rounds += 1;
            check(offset, self.buf.text(n));
            if pieces.done() {
                return Ok(Received::Message);
            }
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        if !self.finished {
            self.finished = true;
            self.buf.send(self.tx, END, 0, &self.life)?;
        }
        Ok(())
    }

    fn rounds(&self) -> u64 {
        self.rounds
    }
}

impl Drop for QueueEnd {
    fn drop(&mut self) {
        // Dropped before the stream ended: this side gave up. Wake the peer
        // (EIDRM) rather than leave it blocked until the watchdog.
        if !self.finished && !self.peer_finished {
            self.rx.remove();
            self.tx.remove();
        }
    }
}
