//! [`Tiers`]: what a read consults, newest first: the active memtable, the sealed memtables
//! waiting for their flush, the level-0 segments (flush outputs), the current levels (one
//! sorted run of key-disjoint segments each, one version per key) and the history segments
//! (versions compaction demoted). Immutable once built; every change (rotation,
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
use zverse_core::Version;

use crate::memtable::Memtable;
use crate::segment_file::{HistoryFile, SegmentFile};

#[derive(Debug)]
pub(crate) struct Tiers {
    pub active: Arc<Memtable>,
    /// Newest first.
    pub sealed: Vec<Arc<Memtable>>,
    /// Level 0, newest first.
    pub segments: Vec<Arc<SegmentFile>>,
    /// Levels 1 and down (`levels[0]` is level 1), each sorted by key with disjoint key
    /// bounds; empty levels at the end are dropped.
    pub levels: Vec<Vec<Arc<SegmentFile>>>,
    /// History segments, newest first.
    pub history: Vec<Arc<HistoryFile>>,
    /// The newest version in a current segment (level 0 included).
    version_max_current: Version,
}

impl Tiers {
    pub(crate) fn new(
        active: Arc<Memtable>,
        sealed: Vec<Arc<Memtable>>,
        segments: Vec<Arc<SegmentFile>>,
        mut levels: Vec<Vec<Arc<SegmentFile>>>,
        history: Vec<Arc<HistoryFile>>,
    ) -> Tiers {
        while levels.last().is_some_and(Vec::is_empty) {
            levels.pop();
        }
        let current = segments.iter().chain(levels.iter().flatten());
        let version_max_current =
            current.map(|s| s.meta().version_max).max().unwrap_or(Version::ZERO);
        Tiers { active, sealed, segments, levels, history, version_max_current }
    }

    /// Memtables only (no segment yet).
    #[cfg(test)]
    pub(crate) fn with_memtables(active: Arc<Memtable>, sealed: Vec<Arc<Memtable>>) -> Tiers {
        Tiers::new(active, sealed, Vec::new(), Vec::new(), Vec::new())
    }

    /// These tiers with other memtables.
    pub(crate) fn with_memtables_of(
        &self,
        active: Arc<Memtable>,
        sealed: Vec<Arc<Memtable>>,
    ) -> Tiers {
        Tiers {
            active,
            sealed,
            segments: self.segments.clone(),
            levels: self.levels.clone(),
            history: self.history.clone(),
            version_max_current: self.version_max_current,
        }
    }

    /// Whether a read as of `version` must consult history: some current segment holds a
    /// version above it. Every history version of a key has a newer version of that key in a
    /// current segment (compaction demotes a version only below one it writes to a current
    /// level, and never drops a key's newest while history may hold older ones), so a read at
    /// or above every current segment's newest finds each key's newest version, and the right
    /// one, without history.
    pub(crate) fn needs_history(&self, version: Version) -> bool {
        !self.history.is_empty() && version < self.version_max_current
    }

    /// The newest version in a current segment: at or above every history version's next
    /// newer version (see [`Tiers::needs_history`]).
    pub(crate) fn version_max_current(&self) -> Version {
        self.version_max_current
    }

    /// The memtables, newest first.
    pub(crate) fn memtables(&self) -> impl Iterator<Item = &Arc<Memtable>> {
        std::iter::once(&self.active).chain(&self.sealed)
    }

    /// Every current segment: level 0, then each level in key order.
    pub(crate) fn current(&self) -> impl Iterator<Item = &Arc<SegmentFile>> {
        self.segments.iter().chain(self.levels.iter().flatten())
    }
}

/// The segment of `level` (sorted, disjoint) whose key bounds hold `key`, if any.
pub(crate) fn level_segment<'a>(
    level: &'a [Arc<SegmentFile>],
    key: &[u8],
) -> Option<&'a Arc<SegmentFile>> {
    let index = level.partition_point(|segment| segment.key_last() < key);
    level.get(index).filter(|segment| segment.covers(key))
}

/// The segments of `level` (sorted, disjoint) whose key bounds meet `keys`.
pub(crate) fn level_overlapping<'a>(
    level: &'a [Arc<SegmentFile>],
    keys: (std::ops::Bound<&[u8]>, std::ops::Bound<&[u8]>),
) -> &'a [Arc<SegmentFile>] {
    use std::ops::Bound;
    let start = match keys.0 {
        Bound::Included(key) => level.partition_point(|s| s.key_last() < key),
        Bound::Excluded(key) => level.partition_point(|s| s.key_last() <= key),
        Bound::Unbounded => 0,
    };
    let end = match keys.1 {
        Bound::Included(key) => level.partition_point(|s| s.key_first() <= key),
        Bound::Excluded(key) => level.partition_point(|s| s.key_first() < key),
        Bound::Unbounded => level.len(),
    };
    level.get(start..end.max(start)).unwrap_or_default()
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
        Tiers::with_memtables(Arc::new(Memtable::new(log_number_first)), vec![])
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
