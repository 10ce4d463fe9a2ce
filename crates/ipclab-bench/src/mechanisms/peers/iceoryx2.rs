//! `iceoryx2` and `iceoryx2-event`: the iceoryx2 crate's zero-copy
//! publish-subscribe, one service each way, set up as its users do.
//!
//! Each side makes its own iceoryx2 node after the fork (iceoryx2 state
//! must not cross a fork). The server creates the services and its ports
//! first, then says so over a Unix socket pair made in `prepare` (the
//! *control* socket); the client opens them, makes its ports, connects
//! them and answers; the server connects its own and says so. Only then
//! does anyone publish: iceoryx2 silently drops a sample that finds a full
//! queue whose subscriber has not attached to the connection yet. After
//! that nobody writes to the control socket: its end of stream is
//! `finish` (or the peer's death).
//!
//! Services: `[u8]` slices of the message size, no history, one publisher
//! and one subscriber, a subscriber queue as deep as the other
//! shared-memory mechanisms' rings (`ChannelConfig::segments_for`), no
//! safe overflow (an overwritten sample would be a lost message), and
//! `RetryUntilDelivered` back-pressure: a publisher waits for room.
//!
//! Where iceoryx2 keeps its files: the root path (by default
//! `/tmp/iceoryx2/`) is a private directory `ipclab-<32 hex>` (mode 0700)
//! in the temporary directory, made in `prepare`; the prefix of its
//! `/dev/shm` objects (by default `iox2_`) is `iox2_<16 hex>_`; service
//! names are `ipclab-<pid>-<32 hex>/…`. iceoryx2 removes its files when the
//! last node lets go; the guard removes the directory and every
//! `/dev/shm/iox2_<16 hex>_*` that a killed side left. (The prefix is
//! shorter than 128 bits because iceoryx2's event sockets are named root +
//! prefix + a 30-odd-digit id, and a socket path has at most 108 bytes;
//! for the same reason the root's name carries no pid.) Root and prefix
//! are recorded in the registry ([`crate::objects::registry`]) before the
//! root is made, and the record goes after them: `ipclab ls` finds what a
//! killed supervisor left.

use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use iceoryx2::config::Config;
use iceoryx2::prelude::*;
use rustix::fs::{Mode, OFlags, fchmod, mkdir, open};
use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};

use super::iox2_end::{Iox2End, Ports};
use crate::mechanisms::exclusive::named_error;
use crate::mechanisms::shm::names::random_name;
use crate::mechanisms::shm::region::Side;
use crate::objects::marks::{PREFIX, random_hex};
use crate::objects::owned::{self, Identity};
use crate::objects::registry::{self, Kind, Record};
use crate::transport::{
    ChannelConfig, Copies, Endpoint, Family, HostileSender, Info, Pair, Prepared, Transport,
};

/// `iceoryx2` (`event: false`) or `iceoryx2-event`.
pub struct Iceoryx2 {
    pub event: bool,
}

const PRIVATE_DIR: u32 = 0o700;

impl Transport for Iceoryx2 {
    fn hostile_sender(&self) -> Option<HostileSender> {
        Some(HostileSender::Trusted(
            "samples are checked where they lie in the publisher's memory, which the publisher can still write",
        ))
    }

    fn info(&self) -> Info {
        if self.event {
            Info {
                name: "iceoryx2-event",
                family: Family::Peer,
                sync: "iceoryx2 event (notifier/listener)",
                summary: "the iceoryx2 crate: zero-copy publish-subscribe of [u8] samples; the receiver sleeps in an event listener, woken by a notifier",
                polls: false,
                copies: Copies {
                    count: Some(0),
                    why: "a loaned sample, written and checked in place",
                },
            }
        } else {
            Info {
                name: "iceoryx2",
                family: Family::Peer,
                sync: "busy-poll (subscriber.receive)",
                summary: "the iceoryx2 crate: zero-copy publish-subscribe of [u8] samples, written and checked in place; the receiver polls",
                polls: true,
                copies: Copies {
                    count: Some(0),
                    why: "a loaned sample, written and checked in place",
                },
            }
        }
    }

    fn prepare(&self, config: &ChannelConfig) -> io::Result<Prepared> {
        let depth = config.segments_for(config.size.max(1));
        let (server_control, client_control) = socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )?;
        let guard = Iox2Guard::new()?;
        let setup = Setup {
            root: guard.root.to_string_lossy().into_owned() + "/",
            prefix: guard.prefix.clone(),
            service: random_name()?,
            size: config.size,
            depth,
            event: self.event,
        };
        Ok(Prepared::with_guard(
            Iox2Pair {
                setup,
                server: server_control,
                client: client_control,
            },
            guard,
        ))
    }
}

/// What each side needs to make its node, services and ports.
pub struct Setup {
    /// iceoryx2's root path, ending in `/`.
    pub root: String,
    /// iceoryx2's prefix for `/dev/shm` objects and files.
    pub prefix: String,
    /// The random part of the service names.
    pub service: String,
    pub size: usize,
    /// Subscriber queue depth.
    pub depth: usize,
    pub event: bool,
}

impl Setup {
    /// The node configuration: everything under our root and prefix.
    pub fn config(&self) -> io::Result<Config> {
        let mut config = Config::default();
        config
            .global
            .set_root_path(&Path::new(self.root.as_bytes()).map_err(iox)?);
        config.global.prefix = FileName::new(self.prefix.as_bytes()).map_err(iox)?;
        Ok(config)
    }

    /// The bytes of a publisher's data segment: iceoryx2 preallocates
    /// `max_subscribers * (buffer + borrowed) + history + loaned` samples,
    /// here `1 * (depth + 1) + 0 + 1`.
    pub fn segment_bytes(&self) -> usize {
        self.size.max(1).saturating_mul(self.depth + 2)
    }

    /// The service carrying direction `dir` (0: client to server).
    pub fn name(&self, dir: usize, what: &str) -> io::Result<ServiceName> {
        let way = ["to-server", "to-client"][dir];
        ServiceName::new(&format!("{}/{way}/{what}", self.service)).map_err(iox)
    }
}

/// An iceoryx2 error as an `io::Error`.
pub fn iox(e: impl std::fmt::Debug) -> io::Error {
    io::Error::other(format!("iceoryx2: {e:?}"))
}

struct Iox2Pair {
    setup: Setup,
    server: OwnedFd,
    client: OwnedFd,
}

impl Pair for Iox2Pair {
    fn server(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        drop(self.client);
        let ports = Ports::make(&self.setup, Side::Server, &self.server)?;
        Ok(Box::new(Iox2End::new(ports, self.server, &self.setup)))
    }

    fn client(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        drop(self.server);
        let ports = Ports::make(&self.setup, Side::Client, &self.client)?;
        Ok(Box::new(Iox2End::new(ports, self.client, &self.setup)))
    }
}

/// The name of a cell's private iceoryx2 root: `ipclab-<32 hex>`, with no
/// pid (see the module's notes); the registry record names the creator.
pub(crate) fn root_name() -> io::Result<String> {
    Ok(format!("{PREFIX}{}", random_hex(16)?))
}

/// Kept by the supervisor: removes what iceoryx2 left of a cell.
pub(crate) struct Iox2Guard {
    pub(crate) root: PathBuf,
    /// The root directory made: only it is ever removed.
    id: Identity,
    pub(crate) prefix: String,
    record: Record,
}

impl Iox2Guard {
    fn new() -> io::Result<Iox2Guard> {
        // `ipclab-<32 hex>`: no room for a pid (see the module's notes).
        Iox2Guard::new_at(std::env::temp_dir().join(root_name()?))
    }

    /// The guard of a new private root directory at `root`, which must not
    /// exist: `mkdir` fails on any name there, a symlink included.
    pub(crate) fn new_at(root: PathBuf) -> io::Result<Iox2Guard> {
        let tag = random_hex(8)?;
        let prefix = format!("iox2_{tag}_");
        let record = registry::record(
            Kind::Iceoryx2,
            &tag,
            &[
                ("root", root.display().to_string()),
                ("prefix", prefix.clone()),
            ],
        )?;
        if let Err(e) = mkdir(&root, Mode::from_raw_mode(PRIVATE_DIR)) {
            let _ = record.remove();
            return Err(named_error(
                &format!("creating the directory {}", root.display()),
                e,
            ));
        }
        // Ours, just made, in a sticky (or private) directory: nobody else
        // can have replaced it yet.
        let guard = Iox2Guard {
            id: Identity::of_ours(&root)?,
            root,
            prefix,
            record,
        };
        let fd = open(
            &guard.root,
            OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            named_error(
                &format!("opening the directory {}", guard.root.display()),
                e,
            )
        })?;
        // The umask may have taken bits from mkdir's mode; fchmod's stays.
        if Identity::of(&fd)? != guard.id {
            return Err(io::Error::other(format!(
                "{} was replaced after it was made",
                guard.root.display()
            )));
        }
        fchmod(&fd, Mode::from_raw_mode(PRIVATE_DIR))?;
        Ok(guard)
    }
}

impl Drop for Iox2Guard {
    fn drop(&mut self) {
        // Only the root we made, and only files of ours: another user's
        // object under either name is left alone.
        let _ = owned::remove_tree_if(&self.root, self.id);
        let _ = owned::remove_files_starting_with(std::path::Path::new("/dev/shm"), &self.prefix);
        if std::fs::symlink_metadata(&self.root).is_err() {
            let _ = self.record.remove();
        }
    }
}
