//! `ipc-channel` and `ipc-channel-shm`: the `ipc-channel` crate (Servo's
//! inter-process channels), used as its users do.
//!
//! On Linux an ipc-channel is a `SOCK_SEQPACKET` socket pair; both
//! channels (one each way) are made in `prepare`, before the fork, and each
//! side keeps its two ends (there is no need for an `IpcOneShotServer`,
//! which exists to hand a channel to a process that was exec'd).
//!
//! - `ipc-channel`: `IpcBytesSender::send(&[u8])` of a buffer the sender
//!   fills (kept from message to message, as a user would), and
//!   `IpcBytesReceiver::recv()`, which returns a fresh `Vec<u8>` that the
//!   receiver checks. A message larger than the socket takes goes through
//!   a dedicated channel that the library makes for it; that is inside one
//!   `recv`, so `rounds` is 1 per message.
//! - `ipc-channel-shm`: an `IpcSharedMemory` per message (a memfd the
//!   library creates and maps), filled in place by the sender, its
//!   descriptor sent through an `IpcSender<IpcSharedMemory>`; the receiver
//!   maps it and checks it in place.
//!
//! End of stream: `finish` drops the sender; the peer's `recv` then fails
//! with `Disconnected` once it has taken every message, which is
//! [`Received::Closed`]. A peer that dies closes its sockets too.

use std::io;

use ipc_channel::IpcError;
use ipc_channel::ipc::{
    self, IpcBytesReceiver, IpcBytesSender, IpcReceiver, IpcSender, IpcSharedMemory,
};

use crate::transport::{
    ChannelConfig, Check, Copies, Endpoint, Family, Fill, Info, Pair, Prepared, Received,
    Transport, protocol_error,
};

pub struct IpcChannel;
pub struct IpcChannelShm;

impl Transport for IpcChannel {
    fn info(&self) -> Info {
        Info {
            name: "ipc-channel",
            family: Family::Peer,
            sync: "kernel (blocking recvmsg)",
            summary: "the ipc-channel crate: IpcBytesSender/IpcBytesReceiver (SOCK_SEQPACKET, large messages through a dedicated channel)",
            polls: false,
            copies: Copies {
                count: None,
                why: "at least 2, into the kernel and out; the crate may copy again to reassemble a large message",
            },
        }
    }

    fn prepare(&self, _: &ChannelConfig) -> io::Result<Prepared> {
        Ok(Prepared::new(Channels {
            to_server: ipc::bytes_channel()?,
            to_client: ipc::bytes_channel()?,
        }))
    }
}

impl Transport for IpcChannelShm {
    fn info(&self) -> Info {
        Info {
            name: "ipc-channel-shm",
            family: Family::Peer,
            sync: "kernel (blocking recvmsg of a descriptor)",
            summary: "the ipc-channel crate: an IpcSharedMemory (memfd) per message, filled in place, sent over an IpcSender",
            polls: false,
            copies: Copies {
                count: Some(0),
                why: "a memfd per message, written and checked in place; only its descriptor travels",
            },
        }
    }

    fn prepare(&self, _: &ChannelConfig) -> io::Result<Prepared> {
        Ok(Prepared::new(Channels {
            to_server: ipc::channel::<IpcSharedMemory>()?,
            to_client: ipc::channel::<IpcSharedMemory>()?,
        }))
    }
}

/// Both channels, made before the fork: (sender, receiver) each.
struct Channels<S, R> {
    to_server: (S, R),
    to_client: (S, R),
}

impl Pair for Channels<IpcBytesSender, IpcBytesReceiver> {
    fn server(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        Ok(Box::new(Bytes::new(self.to_client.0, self.to_server.1)))
    }

    fn client(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        Ok(Box::new(Bytes::new(self.to_server.0, self.to_client.1)))
    }
}

impl Pair for Channels<IpcSender<IpcSharedMemory>, IpcReceiver<IpcSharedMemory>> {
    fn server(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        Ok(Box::new(Shm::new(self.to_client.0, self.to_server.1)))
    }

    fn client(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        Ok(Box::new(Shm::new(self.to_server.0, self.to_client.1)))
    }
}

/// What a failed `recv` means: the end of the stream, or an error.
fn received(e: IpcError) -> io::Result<Received> {
    match e {
        IpcError::Disconnected => Ok(Received::Closed),
        IpcError::Io(e) => Err(e),
        e => Err(protocol_error(format!("ipc-channel: {e}"))),
    }
}

fn wrong_length(got: usize, len: usize) -> io::Error {
    protocol_error(format!("a message of {got} bytes, expected {len}"))
}

fn finished() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "send after finish")
}

/// `ipc-channel`'s bytes channel.
struct Bytes {
    tx: Option<IpcBytesSender>,
    rx: IpcBytesReceiver,
    /// The sender's buffer, filled for every message.
    buf: Vec<u8>,
    received: u64,
}

impl Bytes {
    fn new(tx: IpcBytesSender, rx: IpcBytesReceiver) -> Self {
        Bytes {
            tx: Some(tx),
            rx,
            buf: Vec::new(),
            received: 0,
        }
    }
}

impl Endpoint for Bytes {
    fn send(&mut self, len: usize, fill: Fill<'_>) -> io::Result<()> {
        let tx = self.tx.as_ref().ok_or_else(finished)?;
        self.buf.resize(len, 0);
        fill(0, &mut self.buf);
        tx.send(&self.buf)
    }

    fn recv(&mut self, len: usize, check: Check<'_>) -> io::Result<Received> {
        let data = match self.rx.recv() {
            Ok(data) => data,
            Err(e) => return received(e),
        };
        if data.len() != len {
            return Err(wrong_length(data.len(), len));
        }
        check(0, &data);
        self.received += 1;
        Ok(Received::Message)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.tx = None;
        Ok(())
    }

    fn rounds(&self) -> u64 {
        self.received
    }
}

/// `ipc-channel-shm`: a shared-memory region per message.
struct Shm {
    tx: Option<IpcSender<IpcSharedMemory>>,
    rx: IpcReceiver<IpcSharedMemory>,
    received: u64,
}

impl Shm {
    fn new(tx: IpcSender<IpcSharedMemory>, rx: IpcReceiver<IpcSharedMemory>) -> Self {
        Shm {
            tx: Some(tx),
            rx,
            received: 0,
        }
    }
}

impl Endpoint for Shm {
    fn send(&mut self, len: usize, fill: Fill<'_>) -> io::Result<()> {
        let tx = self.tx.as_ref().ok_or_else(finished)?;
        let mut region = IpcSharedMemory::from_byte(0, len);
        // SAFETY: `region` was made just now and is neither cloned nor
        // sent yet: this is its only reader or writer (the condition of
        // `deref_mut`).
        fill(0, unsafe { region.deref_mut() });
        tx.send(region).map_err(|e| match e {
            IpcError::Io(e) => e,
            e => io::Error::other(format!("ipc-channel: {e}")),
        })
    }

    fn recv(&mut self, len: usize, check: Check<'_>) -> io::Result<Received> {
        let region = match self.rx.recv() {
            Ok(region) => region,
            Err(e) => return received(e),
        };
        if region.len() != len {
            return Err(wrong_length(region.len(), len));
        }
        check(0, &region);
        self.received += 1;
        Ok(Received::Message)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.tx = None;
        Ok(())
    }

    fn rounds(&self) -> u64 {
        self.received
    }
}
