//! A pair split across hosts: the server side runs under `ipclab serve` on
//! one host, the client side under `ipclab run --remote` on another.
//!
//! This is one more topology (`harness::topology` places pairs on one
//! host's CPUs): each side's host is where its process runs, and what the
//! local pairs share through memory goes over a control connection
//! ([`control`]) instead:
//!
//! - the channel: a mechanism that can cross hosts ([`CrossHost`]) binds
//!   its server half on the server host and reports how to reach it; the
//!   client half connects to that;
//! - the measured window ([`window`]): the client announces its first
//!   measured message on the control connection;
//! - the server's report: sent back over the control connection when its
//!   side is done, so that the row has both sides (round trips are timed
//!   on the client, a stream's throughput by the server).
//!
//! Each host forks its side from a single-threaded process and watches it
//! with the same watchdog as a local cell (`harness::supervisor`): the
//! client host's cell supervisor ([`client`]), the server host's `ipclab
//! serve` ([`serve`]): a single-threaded event loop that lets clients in
//! ([`gate`]), answers every connection concurrently, and forks each
//! cell's process ([`served_cell`]), which forks the side. It handles one
//! run at a time and outlives any client.
//!
//! [`CrossHost`]: crate::transport::CrossHost

pub mod client;
pub mod control;
mod door;
pub mod gate;
pub mod serve;
pub mod served_cell;
pub mod window;

use std::io;

use serde::{Deserialize, Serialize};

use crate::transport::{Endpoint, Half, Pair};

/// Where the server side of a remote cell runs, and how to be let in.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RemoteSpec {
    /// `HOST:PORT` of `ipclab serve`.
    pub address: String,
    pub token: String,
    /// Names the run, the same for all its cells (32 hex digits).
    pub run: String,
}

/// One host's half as the [`Pair`] the side loop opens: either role opens
/// the half.
pub struct OneHalf(pub Box<dyn Half>);

impl Pair for OneHalf {
    fn server(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        self.0.open()
    }

    fn client(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        self.0.open()
    }
}
