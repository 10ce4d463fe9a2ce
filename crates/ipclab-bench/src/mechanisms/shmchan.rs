//! `shmchan-spin`, `shmchan-block`, `shmchan-adaptive`: the shmchan
//! library, one channel each way, with each of its wait policies, the
//! receiver copying every message out (safe with a hostile sender);
//! `shmchan-loan-spin`, `shmchan-loan-block`, `shmchan-loan-adaptive`: the
//! same with the
//! in-place receive (`Receiver::recv_in_place`), which checks each message
//! where it lies in the ring and trusts the sender not to write it after
//! publishing: the price of hostile-safety is the difference.
//!
//! The supervisor makes two anonymous segments (sealed memfds, no names:
//! nothing to clean up) before the fork; each side joins them with its
//! own open file description, so that each holds its own lock and sees the
//! other's death. Sending uses a loan (the payload is written in place in
//! the ring) or, for messages longer than a loan can be, `send_with`
//! (written in place in rounds); receiving copies each message out once,
//! into a local buffer, and checks it there, or (the `loan` rows) checks
//! it in place: a message of one record (up to a quarter of the ring, so
//! every size here with the default ring) is never copied.

use std::io;
use std::os::fd::OwnedFd;

use ::shmchan::{Error, Options, Receiver, Sender, Wait};

use crate::mechanisms::shm::region::Mapping;
use crate::transport::{
    ChannelConfig, Check, Copies, Endpoint, Family, Fill, HostileSender, Info, Limit, Pair,
    Prepared, Received, SharedMemory, Transport, protocol_error,
};

/// The ring for messages of `size` bytes, sized as iceoryx2's data
/// segment is (`peers::iceoryx2`): as many messages in flight as the other
/// shared-memory mechanisms keep (`ChannelConfig::segments_for`: about
/// 4 MiB worth, 4 to 64), each a record of its payload and a 16-byte
/// header, rounded up to a power of two, at least shmchan's smallest ring
/// and at most 1 GiB. So each shmchan policy is compared with the peer on
/// the same memory: at 64 B an 8 KiB ring that stays in the cache rather
/// than 256 KiB that does not, at 4 MiB 16 MiB (a message is one record,
/// lent or copied whole).
pub(super) fn ring_for(config: &ChannelConfig) -> usize {
    let record = config.size.saturating_add(16).next_multiple_of(16);
    // At least four: a record is at most a quarter of the ring, and a
    // message of one record is lent (and received in place) whole.
    let in_flight = config.segments_for(config.size.max(1)).max(4);
    record
        .saturating_mul(in_flight)
        .clamp(::shmchan::MIN_CAPACITY, ::shmchan::MAX_CAPACITY)
        .next_power_of_two()
}

/// How a side receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Receive {
    /// `recv_into` a local buffer, checked there.
    Copy,
    /// `recv_in_place`, checked where it lies.
    InPlace,
}

pub struct ShmChan {
    name: &'static str,
    wait: Wait,
    sync: &'static str,
    summary: &'static str,
    polls: bool,
    receive: Receive,
}

pub static SPIN: ShmChan = ShmChan {
    name: "shmchan-spin",
    wait: Wait::Spin,
    sync: "busy-poll",
    summary: "the shmchan library, spinning: ring of records in a sealed memfd, one each way",
    polls: true,
    receive: Receive::Copy,
};

pub static BLOCK: ShmChan = ShmChan {
    name: "shmchan-block",
    wait: Wait::Block,
    sync: "futex (woken only when asleep)",
    summary: "the shmchan library, sleeping on a futex at once",
    polls: false,
    receive: Receive::Copy,
};

pub static ADAPTIVE: ShmChan = ShmChan {
    name: "shmchan-adaptive",
    wait: Wait::Adaptive { spin: 2_000 },
    sync: "spin, yield, then futex",
    summary: "the shmchan library, spinning 2000 times, yielding, then sleeping on a futex",
    polls: true,
    receive: Receive::Copy,
};

pub static LOAN_SPIN: ShmChan = ShmChan {
    name: "shmchan-loan-spin",
    wait: Wait::Spin,
    sync: "busy-poll",
    summary: "the shmchan library, spinning, receiving in place (recv_in_place): no copy, trusts the sender",
    polls: true,
    receive: Receive::InPlace,
};

pub static LOAN_BLOCK: ShmChan = ShmChan {
    name: "shmchan-loan-block",
    wait: Wait::Block,
    sync: "futex (woken only when asleep)",
    summary: "the shmchan library, sleeping on a futex at once, receiving in place (recv_in_place): no copy, trusts the sender",
    polls: false,
    receive: Receive::InPlace,
};

pub static LOAN_ADAPTIVE: ShmChan = ShmChan {
    name: "shmchan-loan-adaptive",
    wait: Wait::Adaptive { spin: 2_000 },
    sync: "spin, yield, then futex",
    summary: "the shmchan library, adaptive wait, receiving in place (recv_in_place): no copy, trusts the sender",
    polls: true,
    receive: Receive::InPlace,
};

impl Transport for ShmChan {
    fn shares_memory(&self) -> bool {
        true
    }

    fn info(&self) -> Info {
        Info {
            name: self.name,
            family: Family::SharedMemory,
            sync: self.sync,
            summary: self.summary,
            polls: self.polls,
            copies: match self.receive {
                Receive::Copy => Copies {
                    count: Some(1),
                    why: "written in place (a loan); the receiver copies out before checking (safe with a hostile sender)",
                },
                Receive::InPlace => Copies {
                    count: Some(0),
                    why: "written in place (a loan), checked in place (recv_in_place); a message longer than a quarter of the ring would be copied once",
                },
            },
        }
    }

    fn hostile_sender(&self) -> Option<HostileSender> {
        Some(match self.receive {
            Receive::Copy => HostileSender::Safe(
                "every message is copied out of the ring before it is looked at",
            ),
            Receive::InPlace => HostileSender::Trusted(
                "messages are checked where they lie: a sender that writes one after publishing changes what the receiver checked (bounds still hold: no read outside the message)",
            ),
        })
    }

    fn limits(&self) -> Vec<Limit> {
        vec![Limit::new(
            "ring each way (--segment-size sets it)",
            "as iceoryx2's segment: the messages in flight (about 4 MiB worth, 4 to 64) as records, rounded up to a power of two",
        )]
    }

    fn prepare(&self, config: &ChannelConfig) -> io::Result<Prepared> {
        let opts = Options::new().capacity(config.segment_size.unwrap_or_else(|| ring_for(config)));
        // Memfds: they die with the last process that holds them.
        Ok(Prepared::new(Segments {
            to_server: opts.create_anonymous()?,
            to_client: opts.create_anonymous()?,
            wait: self.wait,
            receive: self.receive,
        }))
    }
}

struct Segments {
    to_server: OwnedFd,
    to_client: OwnedFd,
    wait: Wait,
    receive: Receive,
}

impl Pair for Segments {
    fn server(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        let opts = Options::new().wait(self.wait);
        let rx = opts.receiver_from_fd(self.to_server)?;
        let tx = opts.sender_from_fd(self.to_client)?;
        Ok(Box::new(Side::new(tx, rx, self.receive)))
    }

    fn client(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        let opts = Options::new().wait(self.wait);
        let tx = opts.sender_from_fd(self.to_server)?;
        let rx = opts.receiver_from_fd(self.to_client)?;
        Ok(Box::new(Side::new(tx, rx, self.receive)))
    }

    fn shared_memory(&mut self) -> io::Result<Vec<SharedMemory>> {
        [&self.to_server, &self.to_client]
            .into_iter()
            .map(|fd| {
                let len = rustix::fs::fstat(fd)?.st_size as usize;
                Ok(SharedMemory {
                    map: Mapping::shared_fd(fd, len)?,
                    // shmchan's header page: indices, flags, waiter words.
                    control: shmchan::HEADER_SIZE.min(len),
                })
            })
            .collect()
    }
}

/// One side: its sending end (gone after `finish`) and receiving end.
struct Side {
    tx: Option<Sender>,
    rx: Receiver,
    buf: Vec<u8>,
    receive: Receive,
}

impl Side {
    fn new(tx: Sender, rx: Receiver, receive: Receive) -> Side {
        Side {
            tx: Some(tx),
            rx,
            buf: Vec::new(),
            receive,
        }
    }

    /// Receives in place and checks the message where it lies.
    fn recv_in_place(&mut self, len: usize, check: Check<'_>) -> io::Result<Received> {
        match self.rx.recv_in_place() {
            Ok(msg) if msg.len() == len => {
                check(0, &msg);
                Ok(Received::Message)
            }
            Ok(msg) => Err(wrong_length(msg.len(), len)),
            Err(Error::Closed) => Ok(Received::Closed),
            Err(e) => Err(e.into()),
        }
    }
}

pub(super) fn wrong_length(got: usize, want: usize) -> io::Error {
    protocol_error(format!("a message of {got} bytes, expected {want}"))
}

impl Endpoint for Side {
    fn send(&mut self, len: usize, fill: Fill<'_>) -> io::Result<()> {
        let tx = self
            .tx
            .as_mut()
            .ok_or_else(|| protocol_error("send after finish"))?;
        if len <= tx.max_loan() {
            let mut loan = tx.loan(len)?;
            fill(0, &mut loan);
            loan.commit();
        } else {
            tx.send_with(len, |offset, piece| fill(offset, piece))?;
        }
        Ok(())
    }

    fn recv(&mut self, len: usize, check: Check<'_>) -> io::Result<Received> {
        if self.receive == Receive::InPlace {
            return self.recv_in_place(len, check);
        }
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        match self.rx.recv_into(&mut self.buf[..len]) {
            Ok(n) if n == len => {
                check(0, &self.buf[..len]);
                Ok(Received::Message)
            }
            Ok(n) => Err(wrong_length(n, len)),
            Err(Error::Closed) => Ok(Received::Closed),
            Err(e) => Err(e.into()),
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        // Dropping the sender closes the channel: the peer's receiver gets
        // every message sent before, then `Closed`.
        self.tx = None;
        Ok(())
    }

    fn rounds(&self) -> u64 {
        self.rx.chunks()
    }
}
