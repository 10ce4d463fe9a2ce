//! `tcp-zerocopy`: the `tcp` connection ([`Loopback`]) with `SO_ZEROCOPY`
//! on both sockets and every frame sent with `MSG_ZEROCOPY`
//! ([`zerocopy`](super::zerocopy)), received like `tcp`.
//!
//! A zerocopy send leaves the kernel pointing at the sender's buffer, so a
//! buffer is written again only after the kernel's completion for it has
//! arrived on the error queue: each side keeps a small pool of frame
//! buffers and, before filling the next one, waits (`poll` for `POLLERR`)
//! until the completion of that buffer's previous send is in.
//!
//! The kernel docs put the break-even of `MSG_ZEROCOPY` at about 10 KB and
//! say that a looped packet is copied anyway; ipclab uses it for every size
//! so that the row shows the price (page pinning, notifications, the extra
//! `recvmsg` and wake-ups), and `ipclab list` shows whether this kernel
//! copied a probe send over loopback.

use std::io;
use std::os::fd::OwnedFd;

use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketFlags, SocketType, socket_with};

use super::framed::{frame, payload, read_exact, recv_frame};
use super::tcp::{Loopback, tcp_limits};
use super::zerocopy::{self, Completions, Ids};
use crate::machine::read_proc;
use crate::transport::{
    ChannelConfig, Check, Copies, Endpoint, Family, Fill, Info, Limit, Pair, Prepared, Received,
    Transport, protocol_error,
};

pub struct TcpZerocopy;

/// Frame bytes the pool of one side holds at most when sized automatically.
const POOL_BYTES: usize = ChannelConfig::AUTO_IN_FLIGHT;

impl Transport for TcpZerocopy {
    fn info(&self) -> Info {
        Info {
            name: "tcp-zerocopy",
            family: Family::MessagePassing,
            sync: "kernel (blocking read; poll POLLERR for completions)",
            summary: "TCP over 127.0.0.1 with SO_ZEROCOPY, every send MSG_ZEROCOPY; completions from the error queue",
            polls: false,
            copies: Copies {
                count: Some(2),
                why: "on loopback the kernel copies the pinned sender pages when the segment loops back (SO_EE_CODE_ZEROCOPY_COPIED), then read() copies out",
            },
        }
    }

    fn limits(&self) -> Vec<Limit> {
        let mut limits = tcp_limits();
        limits.push(Limit::new(
            "net.core.optmem_max (notifications)",
            read_proc("/proc/sys/net/core/optmem_max"),
        ));
        limits.push(Limit::new(
            "RLIMIT_MEMLOCK (pinned pages)",
            super::address_space::memlock_text(),
        ));
        limits.push(Limit::new(
            "loopback MSG_ZEROCOPY probe",
            match probe_loopback() {
                Ok(c) => format!(
                    "{} of {} sends copied by the kernel (SO_EE_CODE_ZEROCOPY_COPIED)",
                    c.copied, c.completed
                ),
                Err(e) => format!("failed ({e})"),
            },
        ));
        limits
    }

    fn available(&self) -> Result<(), String> {
        let sock = socket_with(
            AddressFamily::INET,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| format!("no TCP socket: {e}"))?;
        zerocopy::enable(&sock).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOPROTOOPT) => {
                "the kernel refuses SO_ZEROCOPY (ENOPROTOOPT: before Linux 4.14)".to_string()
            }
            _ => format!("setsockopt(SO_ZEROCOPY): {e}"),
        })
    }

    fn prepare(&self, config: &ChannelConfig) -> io::Result<Prepared> {
        Ok(Prepared::new(Ends {
            loopback: Loopback::new()?,
            config: config.clone(),
        }))
    }
}

struct Ends {
    loopback: Loopback,
    config: ChannelConfig,
}

impl Pair for Ends {
    fn server(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        let sock = self.loopback.accept()?;
        Ok(Box::new(ZerocopyStream::new(sock, &self.config)?))
    }

    fn client(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        let sock = self.loopback.connect()?;
        Ok(Box::new(ZerocopyStream::new(sock, &self.config)?))
    }
}

/// A frame buffer of the pool and the sends that still read from it.
#[derive(Default)]
struct Slot {
    buf: Vec<u8>,
    /// Send numbers of its last frame not yet reported complete.
    pending: u64,
    sent: Ids,
}

/// `pending` of the slot being sent, counted down by completions that
/// arrive during its send (see `send`).
const IN_SEND: u64 = u64::MAX / 2;

/// Subtracts a completed range from every slot it covers.
fn settle(pool: &mut [Slot], done: &Ids) {
    for slot in pool {
        let lo = slot.sent.start.max(done.start);
        let hi = slot.sent.end.min(done.end);
        slot.pending -= hi.saturating_sub(lo);
    }
}

/// One side: sends from a pool of buffers with `MSG_ZEROCOPY`, receives
/// length-prefixed frames like [`FramedStream`](super::framed::FramedStream).
struct ZerocopyStream {
    sock: OwnedFd,
    pool: Vec<Slot>,
    next_slot: usize,
    completions: Completions,
    rx_buf: Vec<u8>,
    finished: bool,
    rounds: u64,
}

impl ZerocopyStream {
    fn new(sock: OwnedFd, config: &ChannelConfig) -> io::Result<Self> {
        zerocopy::enable(&sock)?;
        let slots = match config.segments {
            0 => (POOL_BYTES / (config.size + 8)).clamp(2, 8),
            n => n,
        };
        Ok(ZerocopyStream {
            sock,
            pool: (0..slots).map(|_| Slot::default()).collect(),
            next_slot: 0,
            completions: Completions::default(),
            rx_buf: Vec::new(),
            finished: false,
            rounds: 0,
        })
    }

    /// Waits until the kernel is done with every buffer in `slots` (an
    /// index range of the pool).
    fn wait_for(&mut self, slots: std::ops::Range<usize>) -> io::Result<()> {
        let pool = &mut self.pool;
        let mut on_done = |done: Ids, _copied: bool| settle(pool, &done);
        self.completions.drain(&self.sock, &mut on_done)?;
        while self.pool[slots.clone()].iter().any(|s| s.pending > 0) {
            if self.completions.in_flight() == 0 {
                // Nothing left for the kernel to report: waiting would be
                // for ever.
                return Err(io::Error::other(
                    "MSG_ZEROCOPY accounting: a buffer waits for completions the kernel has all reported",
                ));
            }
            let pool = &mut self.pool;
            let mut on_done = |done: Ids, _copied: bool| settle(pool, &done);
            self.completions.wait(&self.sock, &mut on_done)?;
        }
        Ok(())
    }
}

impl Endpoint for ZerocopyStream {
    fn send(&mut self, len: usize, fill: Fill<'_>) -> io::Result<()> {
        if self.finished {
            return Err(protocol_error("send after finish"));
        }
        let i = self.next_slot;
        self.next_slot = (i + 1) % self.pool.len();
        self.wait_for(i..i + 1)?;
        // Out of the pool while it is sent: completions that arrive during
        // the send settle the pool's slots, this one's included.
        let mut buf = std::mem::take(&mut self.pool[i].buf);
        let frame = frame(&mut buf, len);
        fill(0, payload(frame));
        let start = self.completions.next();
        // While it is sent, this slot owns every number from `start` on, so
        // that a completion arriving inside `send_all` (waiting on ENOBUFS)
        // for an earlier piece of this frame is credited to it: counted
        // down from `IN_SEND`, then turned into what is still pending.
        self.pool[i].sent = start..u64::MAX;
        self.pool[i].pending = IN_SEND;
        let pool = &mut self.pool;
        let mut on_done = |done: Ids, _copied: bool| settle(pool, &done);
        let result = self.completions.send_all(&self.sock, frame, &mut on_done);
        // Also after an error: the sends that went still read from `buf`.
        let slot = &mut self.pool[i];
        slot.buf = buf;
        let done_meanwhile = IN_SEND - slot.pending;
        slot.sent = start..self.completions.next();
        slot.pending = (slot.sent.end - slot.sent.start) - done_meanwhile;
        result.map(drop)
    }

    fn recv(&mut self, len: usize, check: Check<'_>) -> io::Result<Received> {
        let Some(calls) = recv_frame(&self.sock, &mut self.rx_buf, len, check)? else {
            return Ok(Received::Closed);
        };
        self.rounds += calls;
        Ok(Received::Message)
    }

    fn finish(&mut self) -> io::Result<()> {
        if !self.finished {
            self.finished = true;
            // The kernel is done with every buffer before the stream ends.
            self.wait_for(0..self.pool.len())?;
            match rustix::net::shutdown(&self.sock, rustix::net::Shutdown::Write) {
                Ok(()) | Err(Errno::NOTCONN) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn rounds(&self) -> u64 {
        self.rounds
    }
}

impl Drop for ZerocopyStream {
    fn drop(&mut self) {
        // A buffer the kernel may still read (a side that failed before
        // its completions came) is leaked, never handed back to the
        // allocator to be written while the kernel sends from it.
        for slot in std::mem::take(&mut self.pool) {
            if slot.pending > 0 {
                std::mem::forget(slot.buf);
            }
        }
    }
}

/// Sends one 16 KiB zerocopy message over a fresh loopback connection and
/// reads its completion: what this kernel does with `MSG_ZEROCOPY` on
/// loopback.
pub fn probe_loopback() -> io::Result<Completions> {
    let (server, client) = Loopback::new()?.connected()?;
    zerocopy::enable(&client)?;
    let message = vec![0x5a_u8; 16 << 10];
    let mut completions = Completions::default();
    completions.send_all(&client, &message, &mut |_, _| {})?;
    let mut got = vec![0_u8; message.len()];
    read_exact(&server, &mut got)?;
    if got != message {
        return Err(protocol_error("the probe message arrived changed"));
    }
    while completions.in_flight() > 0 {
        completions.wait(&client, &mut |_, _| {})?;
    }
    Ok(completions)
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    /// Runs `f` on a thread; fails instead of hanging if it takes minutes.
    fn watchdog<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || tx.send(f()));
        rx.recv_timeout(Duration::from_secs(120))
            .expect("watchdog: the test hung")
    }

    fn ends(segments: usize, size: usize) -> (ZerocopyStream, OwnedFd) {
        let (server, client) = Loopback::new().unwrap().connected().unwrap();
        let config = ChannelConfig {
            size,
            segment_size: None,
            segments,
        };
        (ZerocopyStream::new(client, &config).unwrap(), server)
    }

    #[test]
    fn a_completion_settles_the_slots_whose_sends_it_covers() {
        let mut pool: Vec<Slot> = [0..3, 3..4, 4..6]
            .into_iter()
            .map(|sent| Slot {
                buf: Vec::new(),
                pending: sent.end - sent.start,
                sent,
            })
            .collect();
        settle(&mut pool, &(2..5));
        let pending: Vec<u64> = pool.iter().map(|s| s.pending).collect();
        assert_eq!(pending, [2, 0, 1]);
        settle(&mut pool, &(0..2));
        settle(&mut pool, &(5..6));
        assert!(pool.iter().all(|s| s.pending == 0));
    }

    #[test]
    fn on_loopback_every_send_completes_and_the_kernel_copied_it() {
        let c = watchdog(|| probe_loopback().unwrap());
        assert!(c.completed >= 1 && c.in_flight() == 0, "{c:?}");
        // Documentation/networking/msg_zerocopy.rst, "Loopback".
        assert_eq!(c.copied, c.completed, "{c:?}");
    }

    #[test]
    fn messages_through_a_two_buffer_pool_arrive_whole_and_finish_waits_for_all() {
        const SIZE: usize = 100_000;
        const N: u8 = 40;
        watchdog(|| {
            let (mut client, server) = ends(2, SIZE);
            let reader = std::thread::spawn(move || {
                let mut ep = ZerocopyStream::new(
                    server,
                    &ChannelConfig {
                        size: SIZE,
                        segment_size: None,
                        segments: 2,
                    },
                )
                .unwrap();
                for i in 0..N {
                    // A slow reader keeps the sends queued in the kernel.
                    std::thread::sleep(Duration::from_millis(2));
                    let check = &mut |_, got: &[u8]| assert!(got.iter().all(|&b| b == i));
                    assert_eq!(ep.recv(SIZE, check).unwrap(), Received::Message);
                }
                assert_eq!(ep.recv(SIZE, &mut |_, _| {}).unwrap(), Received::Closed);
            });
            for i in 0..N {
                client.send(SIZE, &mut |_, buf| buf.fill(i)).unwrap();
            }
            client.finish().unwrap();
            let c = &client.completions;
            assert_eq!(c.in_flight(), 0, "{c:?}");
            assert!(client.pool.iter().all(|s| s.pending == 0));
            reader.join().unwrap();
        });
    }

    #[test]
    fn a_closed_peer_fails_the_sender_instead_of_hanging() {
        let err = watchdog(|| {
            let (mut client, server) = ends(2, 64 << 10);
            drop(server);
            (0..10_000)
                .find_map(|_| client.send(64 << 10, &mut |_, b| b.fill(1)).err())
                .expect("sends to a closed peer kept succeeding")
        });
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{err}"
        );
    }
}
