//! [`Tiers`]: what a read consults, newest first: the active memtable, the sealed memtables
//! waiting for their flush, and the segments. Immutable once built; every change (rotation,
//! flush, compaction) builds a new `Tiers` and swaps it in, so a reader that took one keeps a
//! consistent view, and the segments in it alive, for as long as it reads.
//!
//! [`TierSet`] holds the current `Tiers` RCU-style: readers load it without a lock
//! (`arc-swap`: a load is a few atomic operations on thread-local debt slots, no shared
//! counter written), and writers, one at a time under [`TierSet::lock`], publish a
//! replacement when their guard drops.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwap;

use crate::memtable::Memtable;
use crate::segment_file::SegmentFile;

#[derive(Debug)]
pub(crate) struct Tiers {
    pub active: Arc<Memtable>,
    /// Newest first.
    pub sealed: Vec<Arc<Memtable>>,
    /// Newest first.
    pub segments: Vec<Arc<SegmentFile>>,
}

impl Tiers {
    /// The memtables, newest first.
    pub(crate) fn memtables(&self) -> impl Iterator<Item = &Arc<Memtable>> {
        std::iter::once(&self.active).chain(&self.sealed)
    }
}

/// The current tiers: loaded by readers without a lock, replaced by one writer at a time.
#[derive(Debug)]
pub(crate) struct TierSet {
    current: ArcSwap<Tiers>,
    /// Serializes the writers (rotation, flush, compaction), which read, then replace.
    update: Mutex<()>,
}

/// A loaded `Tiers`: derefs to `Arc<Tiers>`; cheap to take, meant for one read.
pub(crate) type TiersRef = arc_swap::Guard<Arc<Tiers>>;

impl TierSet {
    pub(crate) fn new(tiers: Tiers) -> TierSet {
        TierSet { current: ArcSwap::from_pointee(tiers), update: Mutex::new(()) }
    }

    /// The tiers as they are now, without a lock and without touching a shared counter.
    pub(crate) fn load(&self) -> TiersRef {
        self.current.load()
    }

    /// The tiers as they are now, as an owned `Arc` (for iterators that outlive the call).
    pub(crate) fn load_full(&self) -> Arc<Tiers> {
        self.current.load_full()
    }

    /// Exclusive access for a writer: assign a new `Arc<Tiers>` through the guard; readers
    /// see it from the moment the guard drops.
    pub(crate) fn lock(&self) -> TiersGuard<'_> {
        let update = self.update.lock().unwrap_or_else(PoisonError::into_inner);
        let tiers = self.current.load_full();
        TiersGuard { set: self, _update: update, tiers }
    }
}

/// A writer's hold on the [`TierSet`]; publishes what it holds when dropped.
pub(crate) struct TiersGuard<'a> {
    set: &'a TierSet,
    _update: MutexGuard<'a, ()>,
    tiers: Arc<Tiers>,
}

impl Deref for TiersGuard<'_> {
    type Target = Arc<Tiers>;

    fn deref(&self) -> &Arc<Tiers> {
        &self.tiers
    }
}

impl DerefMut for TiersGuard<'_> {
    fn deref_mut(&mut self) -> &mut Arc<Tiers> {
        &mut self.tiers
    }
}

impl Drop for TiersGuard<'_> {
    fn drop(&mut self) {
        // Still under `update`: no other writer can publish in between.
        if !Arc::ptr_eq(&self.set.current.load(), &self.tiers) {
            self.set.current.store(Arc::clone(&self.tiers));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiers(log_number_first: u64) -> Tiers {
        Tiers {
            active: Arc::new(Memtable::new(log_number_first)),
            sealed: vec![],
            segments: vec![],
        }
    }

    #[test]
    fn readers_see_a_replacement_once_the_writer_lets_go() {
        let set = TierSet::new(tiers(1));
        let before = set.load_full();
        {
            let mut guard = set.lock();
            *guard = Arc::new(tiers(2));
            assert_eq!(set.load().active.log_number_first(), 1, "not published yet");
        }
        assert_eq!(set.load().active.log_number_first(), 2);
        assert_eq!(before.active.log_number_first(), 1, "an old reader keeps its tiers");
        drop(set.lock());
        assert_eq!(set.load_full().active.log_number_first(), 2, "an unchanged guard keeps it");
    }
}
