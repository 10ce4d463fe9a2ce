//! `pipe-sized`: the pipes of `pipe`, each grown with `F_SETPIPE_SZ` to hold
//! a whole frame (8-byte length and payload), so that a message that fits
//! goes in with one `write` and comes out with one `read` (the row's
//! `rounds`), instead of a pipe-full at a time. The growth stops at
//! `fs.pipe-max-size`, also for root (who may exceed it with
//! `CAP_SYS_RESOURCE`): a bigger message travels in rounds as with `pipe`.

use std::io;

use super::framed::PREFIX;
use super::pipe::{self, Pipes};
use crate::transport::{ChannelConfig, Copies, Family, Info, Limit, Prepared, Transport};

pub struct PipeSized;

impl Transport for PipeSized {
    fn info(&self) -> Info {
        Info {
            name: "pipe-sized",
            family: Family::MessagePassing,
            sync: "kernel (blocking read)",
            summary: "two anonymous pipes grown (F_SETPIPE_SZ) to hold a whole frame, up to fs.pipe-max-size (not past it, even as root); length-prefixed frames",
            polls: false,
            copies: Copies {
                count: Some(2),
                why: "write copies into the pipe's pages, read copies out: as pipe, in fewer rounds",
            },
        }
    }

    fn limits(&self) -> Vec<Limit> {
        pipe::limits()
    }

    fn prepare(&self, config: &ChannelConfig) -> io::Result<Prepared> {
        let pipes = Pipes::new()?;
        pipes.grow(PREFIX + config.size)?;
        Ok(Prepared::new(pipes))
    }
}
