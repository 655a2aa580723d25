//! Entry points into private structures for the criterion benches (`benches/`). Not part of
//! the API: hidden from the docs, and free to change.

use std::ops::Bound;
use std::sync::Arc;

use zverse_core::Version;

use crate::memtable::Memtable;

/// One insert for [`BenchMemtable::insert_sorted`]: key, version, value (`None`: a tombstone).
pub type BenchOp<'a> = (&'a [u8], Version, Option<&'a [u8]>);

/// The engine's memtable, for `benches/benches/memtable.rs`.
#[derive(Debug)]
pub struct BenchMemtable(Arc<Memtable>);

impl Default for BenchMemtable {
    fn default() -> BenchMemtable {
        BenchMemtable(Arc::new(Memtable::new(1)))
    }
}

impl BenchMemtable {
    /// Inserts one version of one key (`None`: a tombstone).
    pub fn insert(&self, key: &[u8], version: Version, value: Option<&[u8]>) {
        self.0.insert(key, version, value);
    }

    /// Inserts `ops` (key, version, value), sorted by key ascending and version descending,
    /// searching for several at a time.
    pub fn insert_sorted(&self, ops: &[BenchOp<'_>]) {
        self.0.insert_sorted(ops);
    }

    /// The length of the value of the newest version of `key` at or below `version`.
    #[must_use]
    pub fn get_at(&self, key: &[u8], version: Version) -> Option<usize> {
        self.0.get_at(key, version).map(|entry| entry.value.map_or(0, |value| value.len()))
    }

    /// Walks `count` entries in key order from `key`; returns the bytes of their keys.
    #[must_use]
    pub fn scan(&self, key: &[u8], count: usize) -> usize {
        let from = Bound::Included((key, Version::MAX));
        self.0.cursor(from).take(count).map(|entry| entry.key.len()).sum()
    }

    /// Bytes of the arena's nodes.
    #[must_use]
    pub fn size_bytes(&self) -> u64 {
        self.0.size_bytes()
    }
}
