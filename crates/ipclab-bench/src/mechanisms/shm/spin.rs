//! Semaphores as counters in the segment that the waiter polls: no system
//! call on the data path, a CPU burnt while waiting.

use std::io;
use std::sync::atomic::Ordering;

use super::cleanup::Cleanup;
use super::futex::{Local, init_counters};
use super::region::Side;
use super::semaphores::{Sem, Semaphores, SyncArea, Waited};

/// Polls between looks at whether the peer closed (a load of a flag in
/// the segment, no system call).
const SPINS: u32 = 1 << 14;

/// Busy-polling on counters in the segment.
pub struct Spin(Local);

impl Semaphores for Spin {
    type Handle = ();

    fn create(initial: [u32; Sem::COUNT], area: SyncArea, _: &mut Cleanup) -> io::Result<()> {
        init_counters(initial, area);
        Ok(())
    }

    unsafe fn open(
        _: &mut (),
        area: SyncArea,
        _: Side,
        initial: [u32; Sem::COUNT],
    ) -> io::Result<Self> {
        Ok(Spin(Local::new(area, initial)))
    }

    fn post(&mut self, sem: Sem, _: u32) -> io::Result<()> {
        let value = self.0.next_post(sem);
        // Release: pairs with the Acquire load in `wait`.
        self.0.counter(sem).posted.store(value, Ordering::Release);
        Ok(())
    }

    fn wait(&mut self, sem: Sem) -> io::Result<Waited> {
        for _ in 0..SPINS {
            // Acquire: pairs with the Release store in `post`.
            let seen = self.0.counter(sem).posted.load(Ordering::Acquire);
            if self.0.take_if(sem, seen) {
                return Ok(Waited::Unit);
            }
            std::hint::spin_loop();
        }
        Ok(Waited::Nothing)
    }
}
