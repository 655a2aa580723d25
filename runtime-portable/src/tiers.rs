//! [`Tiers`]: what a read consults, newest first: the active memtable, the sealed memtables
//! waiting for their flush, and the segments. Immutable once built; every change (rotation,
//! flush, compaction) builds a new `Tiers` and swaps it in, so a reader that took one keeps a
//! consistent view, and the segments in it alive, for as long as it reads.

use std::sync::Arc;

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
