//! Running cells in real, separate processes.
//!
//! The `ipclab` process never forks: for every cell it starts a supervisor
//! (`ipclab __cell`, see [`supervisor`]) and reads back one JSON line. The
//! supervisor forks the two sides ([`sides`]) and watches them.

pub mod cell;
pub mod clock;
mod fault;
mod kernel_limits;
pub mod pace;
pub mod remote;
pub mod scribbler;
mod side_panics;
pub mod sides;
pub mod sigbus;
mod sigbus_cause;
pub mod spec;
mod start;
pub mod supervisor;
pub mod topology;
pub mod window;
