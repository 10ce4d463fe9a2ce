//! The registry: every mechanism ipclab measures, one module each.
//!
//! Adding a mechanism is a module that implements [`Transport`] and one line
//! in [`REGISTRY`]; the conformance suite (`tests/conformance.rs`) then runs
//! it through every pattern and size.

use crate::transport::{Family, Transport};

pub mod framed;
mod pipe;
mod shmchan;

/// Every mechanism, in the order tables list them.
pub static REGISTRY: &[&dyn Transport] = &[
    // Message passing: the kernel copies every message.
    &pipe::Pipe,
    // Shared memory: the shmchan library with each of its wait policies.
    &self::shmchan::SPIN,
    &self::shmchan::BLOCK,
    &self::shmchan::ADAPTIVE,
];

/// The mechanism called `name`.
pub fn find(name: &str) -> Option<&'static dyn Transport> {
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

/// Resolves a comma-separated list of names and groups (`message-passing`,
/// `shared-memory`, `limit`, `peer`, `all`), keeping registry order and
/// dropping repeats.
pub fn select(list: &str) -> Result<Vec<&'static dyn Transport>, String> {
    let mut chosen: Vec<&'static dyn Transport> = Vec::new();
    for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let group = |family: Option<Family>| -> Vec<&'static dyn Transport> {
            REGISTRY
                .iter()
                .copied()
                .filter(|t| family.is_none_or(|f| t.info().family == f))
                .collect()
        };
        let add = match word {
            "all" => group(None),
            "message-passing" => group(Some(Family::MessagePassing)),
            "shared-memory" => group(Some(Family::SharedMemory)),
            "limit" | "limits" => group(Some(Family::Limit)),
            "peer" | "peers" => group(Some(Family::Peer)),
            name => vec![find(name).ok_or_else(|| {
                format!(
                    "unknown mechanism '{name}' (known: {}; groups: all, message-passing, shared-memory, limit, peer)",
                    known_names()
                )
            })?],
        };
        for t in add {
            if !chosen.iter().any(|c| c.info().name == t.info().name) {
                chosen.push(t);
            }
        }
    }
    if chosen.is_empty() {
        return Err("no mechanism given".into());
    }
    let order = |t: &&dyn Transport| REGISTRY.iter().position(|r| r.info().name == t.info().name);
    chosen.sort_by_key(order);
    Ok(chosen)
}
