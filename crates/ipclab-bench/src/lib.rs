//! The measuring library behind `ipclab`.
//!
//! - [`transport`]: the one trait every mechanism implements;
//! - [`mechanisms`]: one module per mechanism, and the registry;
//! - [`objects`]: marks on every IPC object, `ipclab ls` and `ipclab clean`;
//! - [`payload`]: the bytes every message carries and their check;
//! - [`harness`]: processes, pinning, clocks, and the patterns;
//! - [`suite`]: a whole run, cell by cell;
//! - [`seed`]: the blog post's experiment (`ipclab seed`);
//! - [`torture`]: long runs under faults (`ipclab torture`);
//! - [`report`]: tables, JSON, CSV and Markdown files, plots and pages;
//! - [`pooled`]: rows from repetitions, with [`interval`]s;
//! - [`vs_limit`]: each row against the floor measured in the same run.

#![warn(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

pub mod harness;
pub mod interval;
pub mod list;
pub mod machine;
pub mod mechanisms;
pub mod objects;
pub mod payload;
pub mod pooled;
pub mod report;
pub mod results;
pub mod row;
pub mod seed;
pub mod stats;
pub mod suite;
pub mod torture;
pub mod transport;
pub mod units;
pub mod vs_limit;
