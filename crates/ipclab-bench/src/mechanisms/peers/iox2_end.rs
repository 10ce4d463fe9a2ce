//! One side of an `iceoryx2` or `iceoryx2-event` channel: its node, its
//! services, its ports, and the send and receive loops (see `iceoryx2.rs`
//! for the set-up).
//!
//! Known window: iceoryx2 creates its global management segment mode 0666
//! (hard-coded, not configurable); `restrict_global_mgmt` makes it 0600 right
//! after the node exists, but a descriptor another user opened before that
//! fchmod keeps its access. The segment holds only a node counter.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};

use iceoryx2::port::listener::Listener;
use iceoryx2::port::notifier::Notifier;
use iceoryx2::port::publisher::{Publisher, PublisherCreateError};
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::port::update_connections::{ConnectionFailure, UpdateConnections};
use iceoryx2::port::{
    BackpressureAction, BackpressureInfo, DegradationAction, DegradationCause, DegradationInfo,
};
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::{event, publish_subscribe};
use rustix::event::{PollFd, PollFlags, poll};
use rustix::io::Errno;

use super::iceoryx2::{Setup, iox};
use crate::mechanisms::address_space::limit_note;
use crate::mechanisms::shm::region::Side;
use crate::mechanisms::shm::semaphores::WAIT_SLICE;
use crate::transport::{Check, Endpoint, Fill, Received, protocol_error};
use crate::units;

type Pubsub = publish_subscribe::PortFactory<ipc::Service, [u8], ()>;

/// Empty polls of the subscriber between looks at the control socket.
const POLLS: u32 = 1024;

/// A side's iceoryx2 objects. Field order is drop order: ports, then
/// services, then the node.
pub struct Ports {
    publisher: Option<Publisher<ipc::Service, [u8], ()>>,
    subscriber: Subscriber<ipc::Service, [u8], ()>,
    notifier: Option<Notifier<ipc::Service>>,
    listener: Option<Listener<ipc::Service>>,
    _services: (
        Pubsub,
        Pubsub,
        Option<[event::PortFactory<ipc::Service>; 2]>,
    ),
    _node: Node<ipc::Service>,
}

/// iceoryx2 makes its global management segment (a node counter,
/// `/dev/shm/<prefix>node.<version>.global_mgmt`) readable and writable by
/// every user (`enable_global_access(true)` is hard-coded in iceoryx2's
/// `GlobalManagementSegment::open_or_create`; no config setting turns it
/// off, and the umask does not apply). Both sides are the same user, so ours
/// is made 0600 as soon as the node exists.
///
/// Known window: from iceoryx2's creation of the segment until this fchmod
/// it is 0666, and a descriptor another user opens in that window keeps its
/// access. It holds only a node counter (no payload), under an unguessable
/// prefix.
///
/// Each candidate is opened non-blocking (a FIFO planted under the name
/// must not block us) and without following a symlink, and is changed only
/// if it is a regular file owned by us.
fn restrict_global_mgmt(prefix: &str) -> io::Result<()> {
    use rustix::fs::{FileType, Mode, OFlags, fchmod, fstat, open};
    for entry in std::fs::read_dir("/dev/shm")?.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(prefix) && name.ends_with(".global_mgmt")) {
            continue;
        }
        let fd = open(
            entry.path(),
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let stat = fstat(&fd)?;
        if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile
            && stat.st_uid == rustix::process::geteuid().as_raw()
        {
            fchmod(&fd, Mode::from_raw_mode(0o600))?;
        }
    }
    Ok(())
}

impl Ports {
    /// Makes this side's node, services and ports, in step with the peer
    /// over the control socket (server first).
    pub fn make(setup: &Setup, side: Side, control: &OwnedFd) -> io::Result<Ports> {
        set_log_level(LogLevel::Error);
        if side == Side::Client {
            expect(control, b'S')?;
        }
        let node = NodeBuilder::new()
            .config(&setup.config()?)
            .signal_handling_mode(SignalHandlingMode::Disabled)
            .create::<ipc::Service>()
            .map_err(iox)?;
        restrict_global_mgmt(&setup.prefix)?;
        let pubsub = |dir: usize| -> io::Result<Pubsub> {
            let builder = node
                .service_builder(&setup.name(dir, "data")?)
                .publish_subscribe::<[u8]>()
                .max_publishers(1)
                .max_subscribers(1)
                .history_size(0)
                .subscriber_max_buffer_size(setup.depth)
                .subscriber_max_borrowed_samples(1)
                .enable_safe_overflow(false);
            match side {
                Side::Server => builder.create().map_err(iox),
                Side::Client => builder.open().map_err(iox),
            }
        };
        let events = |dir: usize| -> io::Result<event::PortFactory<ipc::Service>> {
            let builder = node
                .service_builder(&setup.name(dir, "event")?)
                .event()
                .max_notifiers(1)
                .max_listeners(1);
            match side {
                Side::Server => builder.create().map_err(iox),
                Side::Client => builder.open().map_err(iox),
            }
        };
        let (tx, rx) = (pubsub(side.tx_dir())?, pubsub(side.rx_dir())?);
        let lifeline = control.try_clone()?;
        let publisher = tx
            .publisher_builder()
            .initial_max_slice_len(setup.size.max(1))
            .max_loaned_samples(1)
            .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
            // A full queue whose reader died would be waited on forever.
            .set_backpressure_handler(move |info: &BackpressureInfo| {
                if info.retries % 64 == 63 && peer_gone(&lifeline).unwrap_or(true) {
                    BackpressureAction::DiscardDataAndFail
                } else {
                    BackpressureAction::Retry
                }
            })
            .set_degradation_handler(fail_to_connect)
            .create()
            .map_err(|e| match e {
                PublisherCreateError::UnableToCreateDataSegment => {
                    segment_error(setup, "this side's", e)
                }
                e => iox(e),
            })?;
        let subscriber = rx
            .subscriber_builder()
            .buffer_size(setup.depth)
            .set_degradation_handler(fail_to_connect)
            .create()
            .map_err(iox)?;
        let (mut notifier, mut listener, mut event_services) = (None, None, None);
        if setup.event {
            let (tx_event, rx_event) = (events(side.tx_dir())?, events(side.rx_dir())?);
            notifier = Some(tx_event.notifier_builder().create().map_err(iox)?);
            listener = Some(rx_event.listener_builder().create().map_err(iox)?);
            event_services = Some([tx_event, rx_event]);
        }
        // A publisher drops samples that find a full queue whose reader
        // has not attached to the connection yet: both ends of both
        // connections are made before anyone sends. The client connects
        // its two ports once the server's exist, then the server its own,
        // and only then does the client start.
        let connect = || -> io::Result<()> {
            publisher.update_connections().map_err(iox)?;
            subscriber.update_connections().map_err(|e| match e {
                ConnectionFailure::UnableToMapSendersDataSegment(_) => {
                    segment_error(setup, "the peer's", e)
                }
                e => iox(e),
            })
        };
        match side {
            Side::Server => {
                say(control, b'S')?;
                expect(control, b'C')?;
                connect()?;
                say(control, b'R')?;
            }
            Side::Client => {
                connect()?;
                say(control, b'C')?;
                expect(control, b'R')?;
            }
        }
        Ok(Ports {
            publisher: Some(publisher),
            subscriber,
            notifier,
            listener,
            _services: (tx, rx, event_services),
            _node: node,
        })
    }
}

/// A connection that cannot be made (the peer's data segment cannot be
/// mapped, say) is an error from `update_connections`. iceoryx2's default
/// only logs a warning and leaves the port unconnected: the publisher then
/// sends to nobody and the subscriber polls forever.
fn fail_to_connect(_: DegradationCause, _: &DegradationInfo) -> DegradationAction {
    DegradationAction::DegradeAndFail
}

/// iceoryx2 reports a failed `mmap` of a data segment without its errno
/// (`UnableToCreateDataSegment`, `UnableToMapSendersDataSegment
/// (InternalError)`): names the segment, its size and, when it explains the
/// failure, the address-space limit.
fn segment_error(setup: &Setup, whose: &str, e: impl std::fmt::Debug) -> io::Error {
    let bytes = setup.segment_bytes();
    let size = units::size(bytes);
    match limit_note(bytes) {
        Some(note) => io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!("iceoryx2: cannot map {whose} data segment of {size}: {note} [{e:?}]"),
        ),
        None => io::Error::other(format!(
            "iceoryx2: cannot map {whose} data segment of {size}: {e:?}"
        )),
    }
}

fn say(control: &OwnedFd, byte: u8) -> io::Result<()> {
    rustix::io::write(control, &[byte])?;
    Ok(())
}

fn expect(control: &OwnedFd, byte: u8) -> io::Result<()> {
    let mut got = [0u8];
    loop {
        match rustix::io::read(control, &mut got) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "the peer went away while setting up iceoryx2",
                ));
            }
            Ok(_) if got[0] == byte => return Ok(()),
            Ok(_) => return Err(protocol_error("unexpected byte on the control socket")),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Whether the peer closed its control socket (finished or died): nobody
/// writes to it after the set-up, so readable means end of stream.
fn peer_gone(control: impl AsFd) -> io::Result<bool> {
    let mut fds = [PollFd::new(&control, PollFlags::IN)];
    match poll(&mut fds, Some(&rustix::time::Timespec::default())) {
        Ok(_) => Ok(!fds[0].revents().is_empty()),
        Err(Errno::INTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

pub struct Iox2End {
    // Field order is drop order: the ports (holding a copy of the control
    // socket in the publisher) go first.
    ports: Ports,
    control: Option<OwnedFd>,
    size: usize,
    received: u64,
}

impl Iox2End {
    pub fn new(ports: Ports, control: OwnedFd, setup: &Setup) -> Self {
        Iox2End {
            ports,
            control: Some(control),
            size: setup.size,
            received: 0,
        }
    }

    fn check_len(&self, len: usize) -> io::Result<()> {
        if len != self.size {
            return Err(protocol_error(format!(
                "this channel carries messages of {} bytes, asked for {len}",
                self.size
            )));
        }
        Ok(())
    }

    fn peer_done(&self) -> io::Result<bool> {
        match &self.control {
            Some(control) => peer_gone(control),
            None => Err(protocol_error("receive after finish")),
        }
    }

    /// One receive: checks a sample if there is one.
    fn take(&mut self, len: usize, check: Check<'_>) -> io::Result<bool> {
        let Some(sample) = self.ports.subscriber.receive().map_err(iox)? else {
            return Ok(false);
        };
        let payload = sample.payload();
        if payload.len() != len {
            return Err(protocol_error(format!(
                "a sample of {} bytes, expected {len}",
                payload.len()
            )));
        }
        check(0, payload);
        self.received += 1;
        Ok(true)
    }
}

impl Endpoint for Iox2End {
    fn send(&mut self, len: usize, fill: Fill<'_>) -> io::Result<()> {
        self.check_len(len)?;
        let publisher = self
            .ports
            .publisher
            .as_ref()
            .ok_or_else(|| io::Error::new(io::ErrorKind::BrokenPipe, "send after finish"))?;
        let mut sample = publisher.loan_slice_uninit(len).map_err(iox)?;
        let payload: *mut [MaybeUninit<u8>] = sample.payload_mut();
        // SAFETY: the slice lies in iceoryx2's data segment, shared memory
        // that the kernel zero-filled when it was made and that holds only
        // whole bytes since: every byte is initialised as far as this
        // process can tell, so viewing it as `[u8]` is sound. `fill`
        // writes all of it before `assume_init` below.
        let bytes = unsafe { &mut *(payload as *mut [u8]) };
        fill(0, bytes);
        // SAFETY: every element was written by `fill` just above.
        let sample = unsafe { sample.assume_init() };
        let delivered = sample.send().map_err(|e| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!("iceoryx2: {e:?} (the peer went away?)"),
            )
        })?;
        // Both ends were connected before anyone sent (see `Ports::make`):
        // a sample that reached no subscriber is a lost message.
        if delivered == 0 {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "iceoryx2: the sample reached no subscriber (the peer went away?)",
            ));
        }
        if let Some(notifier) = &self.ports.notifier {
            notifier.notify().map_err(iox)?;
        }
        Ok(())
    }

    fn recv(&mut self, len: usize, check: Check<'_>) -> io::Result<Received> {
        self.check_len(len)?;
        let mut idle: u32 = 0;
        let mut woke = false;
        loop {
            if self.take(len, check)? {
                return Ok(Received::Message);
            }
            let look = match self.ports.listener {
                Some(_) => woke,
                None => {
                    idle = idle.wrapping_add(1);
                    idle.is_multiple_of(POLLS)
                }
            };
            if look && self.peer_done()? {
                // Whatever the peer sent before closing is visible now.
                return Ok(if self.take(len, check)? {
                    Received::Message
                } else {
                    Received::Closed
                });
            }
            match &self.ports.listener {
                Some(listener) => {
                    listener.timed_wait(|_| {}, WAIT_SLICE).map_err(iox)?;
                    woke = true;
                }
                None => std::hint::spin_loop(),
            }
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        // The publisher holds a copy of the control socket: it goes first,
        // then our end, then a wake-up for a peer asleep in its listener.
        self.ports.publisher = None;
        self.control = None;
        if let Some(notifier) = self.ports.notifier.take() {
            notifier.notify().map_err(iox)?;
        }
        Ok(())
    }

    fn rounds(&self) -> u64 {
        self.received
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use iceoryx2::prelude::*;

    use super::restrict_global_mgmt;
    use crate::mechanisms::peers::iceoryx2::{Iox2Guard, Setup, root_name};
    use crate::mechanisms::shm::names::random_name;

    /// Everything a node and a service put in /dev/shm is 0600 once the
    /// global management segment (0666 by iceoryx2's choice) is restricted.
    #[test]
    fn a_nodes_objects_in_dev_shm_are_owner_only() {
        let guard = Iox2Guard::new_at(std::env::temp_dir().join(root_name().unwrap())).unwrap();
        let setup = Setup {
            root: guard.root.to_string_lossy().into_owned() + "/",
            prefix: guard.prefix.clone(),
            service: random_name().unwrap(),
            size: 64,
            depth: 2,
            event: false,
        };
        let node = NodeBuilder::new()
            .config(&setup.config().unwrap())
            .signal_handling_mode(SignalHandlingMode::Disabled)
            .create::<ipc::Service>()
            .unwrap();
        restrict_global_mgmt(&setup.prefix).unwrap();
        let service = node
            .service_builder(&setup.name(0, "data").unwrap())
            .publish_subscribe::<[u8]>()
            .create()
            .unwrap();
        let _publisher = service
            .publisher_builder()
            .initial_max_slice_len(64)
            .create()
            .unwrap();
        let mut seen = 0;
        for e in std::fs::read_dir("/dev/shm").unwrap().flatten() {
            if e.file_name().to_string_lossy().starts_with(&setup.prefix) {
                let mode = e.metadata().unwrap().permissions().mode() & 0o7777;
                assert_eq!(mode, 0o600, "{}", e.path().display());
                seen += 1;
            }
        }
        assert!(seen >= 2, "only {seen} iceoryx2 objects in /dev/shm");
    }
}
