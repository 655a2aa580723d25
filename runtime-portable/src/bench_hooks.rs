//! Entry points into private structures for the criterion benches (`benches/`). Not part of
//! the API: hidden from the docs, and free to change.

use std::ops::Bound;
use std::sync::Arc;

use zverse_core::{Entry, Version};

use crate::memtable::Memtable;

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

    /// Inserts `pairs` at `version`, sorted here by key as the commit leader sorts a group
    /// (stable: the later of two equal keys wins), with one finger search after another.
    pub fn insert_batch(&self, pairs: &mut [(&[u8], &[u8])], version: Version) {
        pairs.sort_by(|a, b| a.0.cmp(b.0));
        let entries: Vec<Entry<'_>> =
            pairs.iter().map(|(key, value)| Entry { key, version, value: Some(value) }).collect();
        self.0.insert_sorted(&entries);
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
