//! `posix-mq`: two POSIX message queues, one each way.
//!
//! Both queues are made and opened in `prepare`, before the fork, and their
//! names are unlinked before `prepare` returns: the sides inherit the
//! descriptors, so neither ever needs the name, and the name exists only
//! for the few microseconds between `mq_open` and `mq_unlink` (a failure in
//! between unlinks it through [`QueueName`]'s `Drop`). Nothing is left for
//! a guard to remove. Each queue is created read-only (`O_CREAT|O_EXCL`,
//! name `/ipclab-<pid>-<32 hex>`, mode fixed to 0600 with `fchmod` on the queue
//! descriptor whatever the umask) and opened a second time write-only, so
//! each side holds exactly the one end it uses in each direction.
//!
//! Queues get the largest size this machine allows without privilege
//! (`fs.mqueue.msgsize_max` bytes per message, `fs.mqueue.msg_max`
//! messages); a larger message goes in pieces of `mq_msgsize` bytes. Data
//! travels at priority [`DATA_PRIO`]; the end of the stream is an empty
//! message at the lower priority [`END_PRIO`], which the queue delivers only
//! after every data message already in it.
//!
//! A queue does not notice that the process at its other end died, so each
//! side first sends its pid ([`HELLO_PRIO`]), holds a pidfd of its peer, and
//! blocks with `mq_timedsend`/`mq_timedreceive`: after [`PATIENCE_NS`]
//! without progress it checks the pidfd, and a dead peer is an error.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::mqueue::{MQ_OFlag, MqAttr, MqdT, mq_attr_member_t, mq_close, mq_getattr, mq_open};
use nix::mqueue::{mq_receive, mq_send, mq_timedreceive, mq_unlink};
use nix::sys::stat::Mode;
use nix::sys::time::TimeSpec;
use rustix::event::{PollFd, PollFlags};

use super::exclusive::named_error;
use super::pieces::{self, Kind, Pieces};
use crate::machine::read_proc;
use crate::objects::marks;
use crate::objects::registry::{self, Kind as RecordKind, Record};
use crate::transport::{
    ChannelConfig, Check, Copies, Endpoint, Family, Fill, Info, Limit, Pair, Prepared, Received,
    Transport, protocol_error,
};

/// Priority of data pieces.
const DATA_PRIO: u32 = 1;
/// Priority of the end marker: lower, so it never overtakes data.
const END_PRIO: u32 = 0;
/// Priority of the first message each way: the sender's pid.
const HELLO_PRIO: u32 = 2;
/// How long a side waits on a queue before it checks that its peer lives.
const PATIENCE_NS: i64 = 250_000_000;

/// The process at the other end, as a pidfd (readable once it exits).
struct Peer {
    pid: i32,
    pidfd: OwnedFd,
}

impl Peer {
    /// `Err` once the peer has exited.
    fn check_alive(&self) -> io::Result<()> {
        let mut fds = [PollFd::new(&self.pidfd, PollFlags::IN)];
        let zero = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        match rustix::event::poll(&mut fds, Some(&zero)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => Ok(()),
            Ok(_) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!("the peer (pid {}) died", self.pid),
            )),
            Err(e) => Err(e.into()),
        }
    }
}

/// [`PATIENCE_NS`] from now on `CLOCK_REALTIME`, which the timed queue
/// calls take.
fn deadline() -> libc::timespec {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    let nsec = now.tv_nsec + PATIENCE_NS;
    libc::timespec {
        tv_sec: (now.tv_sec + nsec / 1_000_000_000) as libc::time_t,
        tv_nsec: (nsec % 1_000_000_000) as _,
    }
}

fn mq_error(call: &str, e: Errno) -> io::Error {
    io::Error::new(io::Error::from(e).kind(), format!("{call}: {e}"))
}

/// An open message-queue descriptor, closed on drop (nix's `MqdT` is not).
#[derive(Debug)]
pub struct PosixQueue(Option<MqdT>);

impl PosixQueue {
    fn mqd(&self) -> &MqdT {
        self.0.as_ref().expect("only Drop takes the descriptor")
    }

    /// The permission bits of the queue (0600 when made here).
    pub fn mode(&self) -> io::Result<u32> {
        Ok(rustix::fs::fstat(self)?.st_mode & 0o777)
    }

    /// The queue's `mq_msgsize` and `mq_maxmsg`.
    pub fn sizes(&self) -> io::Result<(usize, usize)> {
        let attr = mq_getattr(self.mqd())?;
        Ok((attr.msgsize() as usize, attr.maxmsg() as usize))
    }

    /// Sends one message; retries on EINTR, and checks that `peer` lives
    /// whenever the queue stays full for [`PATIENCE_NS`].
    fn send(&self, msg: &[u8], prio: u32, peer: &Peer) -> io::Result<()> {
        loop {
            let until = deadline();
            // SAFETY: `msg` is valid for `msg.len()` bytes and `until` for
            // one timespec during the call; the descriptor is open (owned
            // by `self`). nix has no mq_timedsend.
            let r = unsafe {
                libc::mq_timedsend(
                    self.mqd().as_raw_fd(),
                    msg.as_ptr().cast(),
                    msg.len(),
                    prio,
                    &until,
                )
            };
            match Errno::result(r) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => {}
                Err(Errno::ETIMEDOUT) => peer.check_alive()?,
                Err(e) => return Err(mq_error("mq_timedsend", e)),
            }
        }
    }

    /// Takes the first message of the highest priority; returns its length
    /// and priority. `buf` must hold `mq_msgsize` bytes. Retries on EINTR;
    /// with a `peer`, checks that it lives whenever the queue stays empty
    /// for [`PATIENCE_NS`].
    fn recv(&self, buf: &mut [u8], peer: Option<&Peer>) -> io::Result<(usize, u32)> {
        let mut prio = 0;
        loop {
            let got = match peer {
                None => mq_receive(self.mqd(), buf, &mut prio),
                Some(_) => {
                    let until = TimeSpec::from(deadline());
                    mq_timedreceive(self.mqd(), buf, &mut prio, &until)
                }
            };
            match got {
                Ok(n) => return Ok((n, prio)),
                Err(Errno::EINTR) => {}
                Err(Errno::ETIMEDOUT) if peer.is_some() => {
                    peer.expect("checked").check_alive()?;
                }
                Err(e) => return Err(mq_error("mq_receive", e)),
            }
        }
    }
}

impl AsFd for PosixQueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // On Linux an mqd_t is a file descriptor.
        self.mqd().as_fd()
    }
}

impl Drop for PosixQueue {
    fn drop(&mut self) {
        if let Some(q) = self.0.take() {
            let _ = mq_close(q);
        }
    }
}

/// A fresh queue name, `/ipclab-<pid>-<32 hex>`, recorded in the registry
/// before the queue is made (`/dev/mqueue` is not always mounted, so names
/// cannot always be listed), unlinked on drop once a queue was made under
/// it (unless [`QueueName::unlink`] did it already), its record removed
/// after.
struct QueueName {
    name: String,
    linked: bool,
    record: Record,
}

impl QueueName {
    /// Records `name` (`/NAME`); no queue is made yet.
    fn new(name: String) -> io::Result<Self> {
        let record = registry::record(RecordKind::PosixMq, &name[1..], &[("name", name.clone())])?;
        Ok(QueueName {
            name,
            linked: false,
            record,
        })
    }

    fn unlink(&mut self) -> io::Result<()> {
        if self.linked {
            self.linked = false;
            mq_unlink(self.name.as_str()).map_err(|e| mq_error("mq_unlink", e))?;
        }
        self.record.remove()
    }
}

impl Drop for QueueName {
    fn drop(&mut self) {
        // On an error the queue may still be there: its record stays, for
        // `ipclab clean`.
        let _ = self.unlink();
    }
}

/// The two ends of a new, already unlinked queue of `maxmsg` messages of
/// `msgsize` bytes: `(receive, send)`.
///
/// The attributes are always given: nix 0.31's `mq_open` without them
/// leaves out the mode argument too, and glibc then reads the mode from
/// whatever is on the stack (nix-rust/nix#2752).
pub fn create_queue(msgsize: usize, maxmsg: usize) -> io::Result<(PosixQueue, PosixQueue)> {
    create_queue_named(marks::random_posix_name()?, msgsize, maxmsg)
}

/// [`create_queue`] under a given name (`/NAME`), which must not exist:
/// `O_EXCL` fails on any queue already there, and the name is then left
/// alone.
pub(crate) fn create_queue_named(
    name: String,
    msgsize: usize,
    maxmsg: usize,
) -> io::Result<(PosixQueue, PosixQueue)> {
    let mut name = QueueName::new(name)?;
    let attr = MqAttr::new(
        0,
        maxmsg as mq_attr_member_t,
        msgsize as mq_attr_member_t,
        0,
    );
    let flags = MQ_OFlag::O_CREAT | MQ_OFlag::O_EXCL | MQ_OFlag::O_RDONLY | MQ_OFlag::O_CLOEXEC;
    let rx = mq_open(
        name.name.as_str(),
        flags,
        Mode::from_bits_truncate(0o600),
        Some(&attr),
    )
    .map_err(|e| match e {
        Errno::EEXIST => named_error(&format!("creating the queue {} (mq_open)", name.name), e),
        _ => open_error(e, Some(&attr)),
    })?;
    name.linked = true;
    let rx = PosixQueue(Some(rx));
    // The umask may have taken bits away: set the mode exactly.
    rustix::fs::fchmod(&rx, rustix::fs::Mode::from_raw_mode(0o600))?;
    let tx = mq_open(
        name.name.as_str(),
        MQ_OFlag::O_WRONLY | MQ_OFlag::O_CLOEXEC,
        Mode::empty(),
        None,
    )
    .map_err(|e| open_error(e, None))?;
    let tx = PosixQueue(Some(tx));
    name.unlink()?;
    Ok((rx, tx))
}

fn open_error(e: Errno, attr: Option<&MqAttr>) -> io::Error {
    let hint = match e {
        Errno::EMFILE => {
            let limit = |r| {
                rustix::process::getrlimit(r)
                    .current
                    .map_or("unlimited".to_string(), |n| n.to_string())
            };
            format!(
                " (a kernel limit: RLIMIT_MSGQUEUE (ulimit -q), {} bytes of queues per user, or \
                 RLIMIT_NOFILE (ulimit -n), {} open files)",
                limit(rustix::process::Resource::Msgqueue),
                limit(rustix::process::Resource::Nofile)
            )
        }
        Errno::ENOSPC => format!(
            " (a kernel limit: fs.mqueue.queues_max, {} queues, exist already)",
            read_proc("/proc/sys/fs/mqueue/queues_max")
        ),
        Errno::EINVAL => attr.map_or(String::new(), |a| {
            format!(
                " (mq_maxmsg {} / mq_msgsize {} refused)",
                a.maxmsg(),
                a.msgsize()
            )
        }),
        Errno::ENOSYS => " (kernel without POSIX message queues)".to_string(),
        _ => String::new(),
    };
    io::Error::new(io::Error::from(e).kind(), format!("mq_open: {e}{hint}"))
}

/// Queue sizes `(msgsize, maxmsg)` to try, best first: the largest this
/// machine allows without privilege, then its defaults (the kernel's own
/// when `/proc` does not say).
pub fn sizes_to_try() -> [(usize, usize); 2] {
    let read = |name: &str| {
        read_proc(&format!("/proc/sys/fs/mqueue/{name}"))
            .parse()
            .ok()
    };
    [
        (
            read("msgsize_max").unwrap_or(8192),
            read("msg_max").unwrap_or(10),
        ),
        (
            read("msgsize_default").unwrap_or(8192),
            read("msg_default").unwrap_or(10),
        ),
    ]
}

pub struct PosixMq;

struct Queues {
    to_server: (PosixQueue, PosixQueue),
    to_client: (PosixQueue, PosixQueue),
    /// Bytes per piece, the same both ways.
    chunk: usize,
}

impl Transport for PosixMq {
    fn info(&self) -> Info {
        Info {
            name: "posix-mq",
            family: Family::MessagePassing,
            sync: "kernel (blocking mq_send/mq_receive)",
            summary: "two POSIX message queues (/ipclab-<hex>, 0600, unlinked before the fork), one each way; pieces of mq_msgsize bytes",
            polls: false,
            copies: Copies::KERNEL,
        }
    }

    fn limits(&self) -> Vec<Limit> {
        let rlimit = rustix::process::getrlimit(rustix::process::Resource::Msgqueue);
        vec![
            Limit::new(
                "fs.mqueue.msgsize_max (bytes per message)",
                read_proc("/proc/sys/fs/mqueue/msgsize_max"),
            ),
            Limit::new(
                "fs.mqueue.msg_max (messages per queue)",
                read_proc("/proc/sys/fs/mqueue/msg_max"),
            ),
            Limit::new(
                "fs.mqueue.queues_max (queues)",
                read_proc("/proc/sys/fs/mqueue/queues_max"),
            ),
            Limit::new(
                "RLIMIT_MSGQUEUE (bytes per user)",
                rlimit
                    .current
                    .map_or("unlimited".to_string(), |b| b.to_string()),
            ),
        ]
    }

    fn prepare(&self, _: &ChannelConfig) -> io::Result<Prepared> {
        let [(msgsize, maxmsg), (default_size, default_max)] = sizes_to_try();
        let make = || match create_queue(msgsize, maxmsg) {
            // EINVAL (kept as InvalidInput): the limits changed under us.
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                create_queue(default_size, default_max)
            }
            other => other,
        };
        let to_server = make()?;
        let to_client = make()?;
        let chunk = to_server.0.sizes()?.0.min(to_client.0.sizes()?.0);
        if chunk == 0 {
            return Err(protocol_error("a message queue with mq_msgsize 0"));
        }
        Ok(Prepared::new(Queues {
            to_server,
            to_client,
            chunk,
        }))
    }
}

impl Pair for Queues {
    fn server(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        QueueEnd::open(self.to_server.0, self.to_client.1, self.chunk)
    }

    fn client(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        QueueEnd::open(self.to_client.0, self.to_server.1, self.chunk)
    }
}

/// One side: receives from `rx`, sends into `tx`.
struct QueueEnd {
    rx: PosixQueue,
    tx: PosixQueue,
    peer: Peer,
    chunk: usize,
    /// `mq_msgsize` of `rx` bytes, as `mq_receive` requires.
    buf: Vec<u8>,
    rounds: u64,
    finished: bool,
    peer_finished: bool,
}

impl QueueEnd {
    fn open(rx: PosixQueue, tx: PosixQueue, chunk: usize) -> io::Result<Box<dyn Endpoint>> {
        let (msgsize, _) = rx.sizes()?;
        let mut buf = vec![0; msgsize.max(chunk)];
        // Pids first, each way; the queues are empty, so this never blocks
        // (and a peer that dies before its hello is the supervisor's to
        // catch).
        let me = rustix::process::getpid().as_raw_nonzero().get();
        let sent = mq_send(tx.mqd(), &me.to_le_bytes(), HELLO_PRIO);
        sent.map_err(|e| mq_error("mq_send", e))?;
        let (n, prio) = rx.recv(&mut buf, None)?;
        let pid = match (prio, <[u8; 4]>::try_from(&buf[..n])) {
            (HELLO_PRIO, Ok(bytes)) => i32::from_le_bytes(bytes),
            _ => {
                return Err(protocol_error(format!(
                    "expected a hello, got {n} bytes at priority {prio}"
                )));
            }
        };
        let pidfd = rustix::process::Pid::from_raw(pid)
            .ok_or_else(|| protocol_error(format!("the peer says its pid is {pid}")))
            .and_then(|p| {
                rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).map_err(|e| {
                    io::Error::new(io::Error::from(e).kind(), format!("pidfd_open({pid}): {e}"))
                })
            })?;
        Ok(Box::new(QueueEnd {
            rx,
            tx,
            peer: Peer { pid, pidfd },
            chunk,
            buf,
            rounds: 0,
            finished: false,
            peer_finished: false,
        }))
    }
}

impl Endpoint for QueueEnd {
    fn send(&mut self, len: usize, fill: Fill<'_>) -> io::Result<()> {
        if self.finished {
            return Err(protocol_error("send after finish"));
        }
        for (offset, n) in pieces::split(len, self.chunk) {
            let piece = &mut self.buf[..n];
            fill(offset, piece);
            self.tx.send(piece, DATA_PRIO, &self.peer)?;
        }
        Ok(())
    }

    fn recv(&mut self, len: usize, check: Check<'_>) -> io::Result<Received> {
        if self.peer_finished {
            return Ok(Received::Closed);
        }
        let mut pieces = Pieces::new(len, self.chunk);
        loop {
            let (n, prio) = self.rx.recv(&mut self.buf, Some(&self.peer))?;
            let Some(offset) = pieces.take(
                match prio {
                    DATA_PRIO => Kind::Data,
                    END_PRIO => Kind::End,
                    other => Kind::Unknown(other as i64),
                },
                n,
            )?
            else {
                self.peer_finished = true;
                return Ok(Received::Closed);
            };
            self.rounds += 1;
            check(offset, &self.buf[..n]);
            if pieces.done() {
                return Ok(Received::Message);
            }
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        if !self.finished {
            self.finished = true;
            self.tx.send(&[], END_PRIO, &self.peer)?;
        }
        Ok(())
    }

    fn rounds(&self) -> u64 {
        self.rounds
    }
}
