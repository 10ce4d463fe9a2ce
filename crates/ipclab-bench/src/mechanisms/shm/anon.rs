//! An anonymous `MAP_SHARED` mapping made before the fork: both children
//! inherit it. No name, no descriptor, nothing to remove: the memory goes
//! with the last process that maps it.

use std::io;

use super::cleanup::Cleanup;
use super::region::{Init, Mapping, Region, Side};

/// Memory shared by inheritance.
pub struct ForkShared;

impl Region for ForkShared {
    type Handle = Option<Mapping>;

    fn create(len: usize, cleanup: &mut Cleanup, init: Init<'_>) -> io::Result<Option<Mapping>> {
        let map = Mapping::shared_anonymous(len)?;
        init(&map, cleanup)?;
        Ok(Some(map))
    }

    fn attach(handle: &mut Option<Mapping>, _: Side, _: usize) -> io::Result<Mapping> {
        handle
            .take()
            .ok_or_else(|| io::Error::other("the inherited mapping was taken twice"))
    }

    fn map_again(handle: &Option<Mapping>, _: usize) -> io::Result<Mapping> {
        handle
            .as_ref()
            .ok_or_else(|| io::Error::other("the inherited mapping was taken"))?
            .duplicate()
    }
}
