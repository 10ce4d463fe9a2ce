//! A subscriber in a [`WaitSet`](crate::WaitSet): the wait set's
//! `Member` over the broadcast's one futex word (see `wake.rs`).

use std::any::Any;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;

use super::subscriber::Subscriber;
use crate::error::Error;
use crate::sync::{AtomicU32, Ordering};
use crate::waitset::{Member, Waitable, sealed};

impl sealed::Sealed for Subscriber {}
impl Waitable for Subscriber {}

impl Member for Subscriber {
    fn ready(&mut self, _room: usize) -> bool {
        Subscriber::ready(self)
    }

    fn announce(&mut self, _bell: bool) -> (NonNull<AtomicU32>, u32) {
        let bell = self.bell_word();
        // SeqCst: as in `wake::arm`, whose fence the wait set runs once
        // for all its ends after this (SYNC POINT with the fence in
        // `wake::ring`, after the publisher's `tail` store): either the
        // set's look sees the new `tail`, or the publisher sees bit 0.
        let word = bell.fetch_or(1, Ordering::SeqCst) | 1;
        (NonNull::from(bell), word)
    }

    fn finish(&mut self) {
        // Bit 0 is the publisher's to clear (its wake-up does); one left
        // set costs it one wake-up call at most.
    }

    fn bell_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    fn rung(&mut self) {}

    fn peer_dead(&mut self) -> Result<bool, Error> {
        self.publisher_dead()
    }

    fn as_any(&mut self) -> &mut dyn Any {
        self
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}
