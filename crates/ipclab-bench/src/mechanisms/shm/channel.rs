//! A shared-memory mechanism is a [`Region`] kind plus a [`Semaphores`]
//! kind: [`Shm`] puts them together as one [`Transport`].

use std::io;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;

use super::cleanup::Cleanup;
use super::layout::Layout;
use super::region::{Region, Side};
use super::ring::Ring;
use super::semaphores::Semaphores;
use crate::mechanisms::lifeline::{Lifeline, lifelines};
use crate::transport::{
    ChannelConfig, Endpoint, Info, Limit, Pair, Prepared, SharedMemory, Transport,
};

/// The mechanism made of region kind `R` and synchronisation kind `S`.
pub struct Shm<R, S> {
    info: Info,
    kinds: PhantomData<fn() -> (R, S)>,
}

impl<R, S> Shm<R, S> {
    pub const fn new(info: Info) -> Self {
        Shm {
            info,
            kinds: PhantomData,
        }
    }
}

impl<R: Region, S: Semaphores> Transport for Shm<R, S> {
    fn shares_memory(&self) -> bool {
        true
    }

    fn info(&self) -> Info {
        self.info.clone()
    }

    fn limits(&self) -> Vec<Limit> {
        let mut limits = R::limits();
        limits.extend(S::limits());
        limits
    }

    fn prepare(&self, config: &ChannelConfig) -> io::Result<Prepared> {
        let layout = Layout::new(config)?;
        // Dropped on any error below: removes what was made so far.
        let mut cleanup = Cleanup::default();
        let mut sync = None;
        let region = R::create(layout.len, &mut cleanup, &mut |map, cleanup| {
            layout.init(map);
            sync = Some(S::create(
                layout.initial_counts(),
                layout.sync_area(map),
                cleanup,
            )?);
            Ok(())
        })?;
        let sync = sync.ok_or_else(|| io::Error::other("the region was never initialised"))?;
        Ok(Prepared::with_guard(
            ShmPair::<R, S> {
                region,
                sync,
                layout,
                lifelines: lifelines()?,
            },
            cleanup,
        ))
    }
}

struct ShmPair<R: Region, S: Semaphores> {
    region: R::Handle,
    sync: S::Handle,
    layout: Layout,
    /// The server's and the client's: each side keeps its own and closes
    /// the other's, so that the kernel tells it when the peer dies.
    lifelines: (Lifeline, Lifeline),
}

impl<R: Region, S: Semaphores> ShmPair<R, S> {
    fn open(self, side: Side) -> io::Result<Box<dyn Endpoint>> {
        let ShmPair {
            mut region,
            mut sync,
            layout,
            lifelines,
        } = self;
        let lifeline = match side {
            Side::Server => lifelines.0,
            Side::Client => lifelines.1,
        };
        let map = R::attach(&mut region, side, layout.len)?;
        layout.check(&map)?;
        // SAFETY: the ring owns `map` and drops it after the semaphores.
        let semaphores = unsafe {
            S::open(
                &mut sync,
                layout.sync_area(&map),
                side,
                layout.initial_counts(),
            )?
        };
        let ring = Ring::new(semaphores, map, layout, side, lifeline);
        // AcqRel: pairs with the other side's increment; whoever counts
        // second knows that both have opened every object, so the names can
        // go now (the memory lives until both unmap it).
        if ring.lifecycle().attached.fetch_add(1, Ordering::AcqRel) == 1 {
            R::unlink(&region)?;
            S::unlink(&sync)?;
        }
        Ok(Box::new(ring))
    }
}

impl<R: Region, S: Semaphores> Pair for ShmPair<R, S> {
    fn server(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        (*self).open(Side::Server)
    }

    fn client(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        (*self).open(Side::Client)
    }

    fn shared_memory(&mut self) -> io::Result<Vec<SharedMemory>> {
        Ok(vec![SharedMemory {
            map: R::map_again(&self.region, self.layout.len)?,
            control: self.layout.control_len(),
        }])
    }
}
