//! The registry: every mechanism ipclab measures, one module each.
//!
//! Adding a mechanism is a module that implements [`Transport`] and one line
//! in [`REGISTRY`]; the conformance suite (`tests/conformance.rs`) then runs
//! it through every pattern and size.

use crate::transport::{Family, Transport};

pub mod address_space;
mod cma;
pub mod exclusive;
mod fifo;
pub mod framed;
pub(crate) mod inet;
pub(crate) mod lifeline;
pub mod limits;
#[cfg(feature = "peers")]
mod peers;
mod pieces;
mod pipe;
mod pipe_sized;
#[cfg(test)]
mod planted_tests;
pub mod posix_mq;
mod records;
pub mod shm;
mod shmchan;
mod shmchan_async;
pub mod sysv_mq;
mod tcp;
mod tcp_remote;
mod tcp_zerocopy;
mod udp;
mod udp_flow;
mod udp_remote;
mod unix_dgram;
mod unix_seqpacket;
mod unix_stream;
pub mod uring;
mod vmsplice;
mod wake_timer;
mod zerocopy;

/// Every mechanism, in the order tables list them.
pub static REGISTRY: &[&dyn Transport] = &[
    // Message passing: the kernel copies every message.
    &pipe::Pipe,
    &pipe_sized::PipeSized,
    &vmsplice::Vmsplice,
    &fifo::Fifo,
    &unix_stream::UnixStream,
    &unix_seqpacket::UnixSeqpacket,
    &unix_dgram::UnixDgram,
    &tcp::Tcp,
    &tcp_zerocopy::TcpZerocopy,
    &udp::Udp,
    &sysv_mq::SysvMq,
    &posix_mq::PosixMq,
    &uring::IO_URING,
    &uring::IO_URING_SQPOLL,
    // Shared memory: both sides map the same pages.
    &shm::SYSV_SHM,
    &shm::POSIX_SHM_SEM,
    &shm::SHM_PTHREAD,
    &shm::SHM_FUTEX,
    &shm::SHM_SPIN,
    &shm::SHM_MQ,
    &shm::SHM_EVENTFD,
    &shm::MMAP_FILE,
    &shm::MEMFD,
    &shm::FORK_SHARED,
    // Memory-based: the reader copies straight out of the writer's memory.
    &cma::Cma,
    // Shared memory: the shmchan library with each of its wait policies,
    // copying each message out (safe with a hostile sender) or checking it
    // in place (trusting the sender).
    &self::shmchan::SPIN,
    &self::shmchan::BLOCK,
    &self::shmchan::ADAPTIVE,
    &self::shmchan::LOAN_SPIN,
    &self::shmchan::LOAN_BLOCK,
    &self::shmchan::LOAN_ADAPTIVE,
    // The same rings through the rendezvous, waited on by tokio.
    &shmchan_async::ASYNC,
    // Peers: libraries a user would otherwise pick (feature `peers`).
    #[cfg(feature = "peers")]
    &peers::ICEORYX2,
    #[cfg(feature = "peers")]
    &peers::ICEORYX2_EVENT,
    #[cfg(feature = "peers")]
    &peers::IPC_CHANNEL,
    #[cfg(feature = "peers")]
    &peers::IPC_CHANNEL_SHM,
    #[cfg(feature = "peers")]
    &peers::ZENOH,
    #[cfg(feature = "peers")]
    &peers::ZENOH_TCP,
];

/// The mechanism (or limit, see [`limits`]) called `name`.
pub fn find(name: &str) -> Option<&'static dyn Transport> {
    REGISTRY
        .iter()
        .chain(limits::LIMITS)
        .copied()
        .find(|t| t.info().name == name)
}

/// A mechanism of the registry (not a limit) called `name`.
fn registered(name: &str) -> Option<&'static dyn Transport> {
    REGISTRY.iter().copied().find(|t| t.info().name == name)
}

/// Names every mechanism, for error messages.
pub fn known_names() -> String {
    REGISTRY
        .iter()
        .map(|t| t.info().name)
        .collect::<Vec<_>>()
        .join(", ")
}

const LIMITS_ALWAYS: &str = "the limits (limit-spin, limit-futex, limit-bare, limit-copy) are measured in every run; --no-limits leaves them out";

/// Resolves a comma-separated list of names and groups (`message-passing`,
/// `shared-memory`, `peer`, `all`), keeping registry order and dropping
/// repeats. The limits are no mechanisms to choose: every run has them.
pub fn select(list: &str) -> Result<Vec<&'static dyn Transport>, String> {
    let group = |family: Option<Family>| -> Vec<&'static dyn Transport> {
        REGISTRY
            .iter()
            .copied()
            .filter(|t| family.is_none_or(|f| t.info().family == f))
            .collect()
    };
    let mut chosen = select_words(list, |word| {
        Ok(match word {
            "all" => group(None),
            "message-passing" => group(Some(Family::MessagePassing)),
            "shared-memory" => group(Some(Family::SharedMemory)),
            "limit" | "limits" => return Err(LIMITS_ALWAYS.into()),
            name if limits::LIMITS.iter().any(|t| t.info().name == name) => {
                return Err(format!("'{name}' is a limit: {LIMITS_ALWAYS}"));
            }
            "peer" | "peers" => group(Some(Family::Peer)),
            name => vec![registered(name).ok_or_else(|| {
                format!(
                    "unknown mechanism '{name}' (known: {}; groups: all, message-passing, shared-memory, peer)",
                    known_names()
                )
            })?],
        })
    })?;
    let order = |t: &&dyn Transport| REGISTRY.iter().position(|r| r.info().name == t.info().name);
    chosen.sort_by_key(order);
    Ok(chosen)
}

/// The transports a comma-separated `list` names, in order, each once:
/// `resolve` turns one word (a name or a group) into transports. An empty
/// list is an error.
pub fn select_words(
    list: &str,
    mut resolve: impl FnMut(&str) -> Result<Vec<&'static dyn Transport>, String>,
) -> Result<Vec<&'static dyn Transport>, String> {
    let mut chosen: Vec<&'static dyn Transport> = Vec::new();
    for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        for t in resolve(word)? {
            if !chosen.iter().any(|c| c.info().name == t.info().name) {
                chosen.push(t);
            }
        }
    }
    if chosen.is_empty() {
        return Err("no mechanism given".into());
    }
    Ok(chosen)
}
