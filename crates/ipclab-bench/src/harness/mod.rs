//! Running cells in real, separate processes.
//!
//! The `ipclab` process never forks: for every cell it starts a supervisor
//! (`ipclab __cell`, see [`supervisor`]) and reads back one JSON line. The
//! supervisor forks the two sides ([`sides`]) and watches them.

pub mod cell;
pub mod clock;
pub mod fault;
pub mod sides;
pub mod spec;
pub mod supervisor;
