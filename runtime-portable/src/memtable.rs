//! The memtable: the newest writes, in an ordered concurrent map.
//!
//! Entries are ordered by key ascending, then version descending (the key order of a segment's
//! key index), so `get_at` is one O(log n) seek, and `history` and `range_at` are ordered
//! walks. Z order, which segments need, is produced when the memtable is flushed (a sort of
//! the flushed entries).
//!
//! One writer at a time inserts (the commit leader); readers never block and never see a
//! half-inserted entry (crossbeam-skiplist). Readers filter by version, so an entry above the
//! visibility watermark is invisible until the watermark passes it.

use std::borrow::Borrow;
use std::cmp::{Ordering, Reverse};
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use crossbeam_skiplist::SkipMap;
use zverse_core::Version;

/// Bytes of bookkeeping counted per entry on top of its key and value, so that many tiny
/// entries still fill the memtable (skiplist node, `Arc` headers, tower pointers).
const ENTRY_OVERHEAD_BYTES: u64 = 64;

/// A stored entry's value: the bytes, or `None` for a tombstone.
pub(crate) type StoredValue = Option<Arc<[u8]>>;

/// One version of one key, as the memtable returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MemEntry {
    pub key: Arc<[u8]>,
    pub version: Version,
    pub value: StoredValue,
}

/// The memtable's key: (key ascending, version descending).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct MemKey {
    key: Arc<[u8]>,
    version: Reverse<Version>,
}

/// A (key, version) pair compared like a [`MemKey`] without owning the key, so that lookups
/// do not allocate (the `Borrow<dyn Trait>` idiom).
trait KeyVersion {
    fn key(&self) -> &[u8];
    fn version(&self) -> Reverse<Version>;
}

impl KeyVersion for MemKey {
    fn key(&self) -> &[u8] {
        &self.key
    }
    fn version(&self) -> Reverse<Version> {
        self.version
    }
}

impl KeyVersion for (&[u8], Reverse<Version>) {
    fn key(&self) -> &[u8] {
        self.0
    }
    fn version(&self) -> Reverse<Version> {
        self.1
    }
}

impl<'a> Borrow<dyn KeyVersion + 'a> for MemKey {
    fn borrow(&self) -> &(dyn KeyVersion + 'a) {
        self
    }
}

impl PartialEq for dyn KeyVersion + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for dyn KeyVersion + '_ {}

impl PartialOrd for dyn KeyVersion + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for dyn KeyVersion + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(other.key()).then_with(|| self.version().cmp(&other.version()))
    }
}

/// The memtable. Shared by `Arc` between the writer, readers and the flush.
#[derive(Debug)]
pub(crate) struct Memtable {
    map: SkipMap<MemKey, StoredValue>,
    /// The first log file holding this memtable's records: once the memtable is in a segment,
    /// every log before the next memtable's first log can go.
    log_number_first: u64,
    size_bytes: AtomicU64,
    /// The last version of a record applied to this memtable, whether or not it wrote an entry
    /// (an empty batch has a version too): the flush records it, so that no version is ever
    /// handed out twice.
    version_last: AtomicU64,
}

impl Memtable {
    /// An empty memtable whose records go to log `log_number_first` onwards.
    pub(crate) fn new(log_number_first: u64) -> Memtable {
        Memtable {
            map: SkipMap::new(),
            log_number_first,
            size_bytes: AtomicU64::new(0),
            version_last: AtomicU64::new(0),
        }
    }

    pub(crate) fn log_number_first(&self) -> u64 {
        self.log_number_first
    }

    /// Inserts one version of one key. Only the commit leader calls this.
    pub(crate) fn insert(&self, key: &[u8], version: Version, value: Option<&[u8]>) {
        let size = key.len() as u64 + value.map_or(0, |v| v.len() as u64) + ENTRY_OVERHEAD_BYTES;
        let entry = self.map.insert(
            MemKey { key: Arc::from(key), version: Reverse(version) },
            value.map(Arc::from),
        );
        debug_assert_eq!(entry.key().key.as_ref(), key);
        self.size_bytes.fetch_add(size, AtomicOrdering::Relaxed);
    }

    /// Notes that every record up to `version` is applied to this memtable.
    pub(crate) fn cover(&self, version: Version) {
        self.version_last.fetch_max(version.get(), AtomicOrdering::Relaxed);
    }

    /// The last version of a record applied to this memtable (`ZERO` if none).
    pub(crate) fn version_last(&self) -> Version {
        Version::new(self.version_last.load(AtomicOrdering::Relaxed))
    }

    /// Bytes of the keys and values inserted so far.
    pub(crate) fn payload_bytes(&self) -> u64 {
        self.size_bytes() - ENTRY_OVERHEAD_BYTES * self.entry_count() as u64
    }

    /// Bytes of keys, values and bookkeeping inserted so far.
    pub(crate) fn size_bytes(&self) -> u64 {
        self.size_bytes.load(AtomicOrdering::Relaxed)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub(crate) fn entry_count(&self) -> usize {
        self.map.len()
    }

    /// The newest version of `key` at or below `version`, tombstones included.
    pub(crate) fn get_at(&self, key: &[u8], version: Version) -> Option<MemEntry> {
        let start: &dyn KeyVersion = &(key, Reverse(version));
        let found = self.map.lower_bound(Bound::Included(start))?;
        (found.key().key.as_ref() == key).then(|| to_entry(&found))
    }

    /// The first entry after `position` in key order (or the first entry at all), whose key
    /// is in bounds of `end`. A resumable cursor step: each call is one O(log n) seek, so
    /// iterators need not borrow the memtable.
    pub(crate) fn next_after(
        &self,
        position: Bound<(&[u8], Version)>,
        end: Bound<&[u8]>,
    ) -> Option<MemEntry> {
        let found = match position {
            Bound::Unbounded => self.map.front()?,
            Bound::Included((key, version)) => {
                let start: &dyn KeyVersion = &(key, Reverse(version));
                self.map.lower_bound(Bound::Included(start))?
            }
            Bound::Excluded((key, version)) => {
                let start: &dyn KeyVersion = &(key, Reverse(version));
                self.map.lower_bound(Bound::Excluded(start))?
            }
        };
        let in_range = match end {
            Bound::Unbounded => true,
            Bound::Included(end) => found.key().key.as_ref() <= end,
            Bound::Excluded(end) => found.key().key.as_ref() < end,
        };
        in_range.then(|| to_entry(&found))
    }

    /// The last entry before `position` in key order (or the last entry at all), whose key
    /// is in bounds of `start`: [`Memtable::next_after`] walking backwards.
    pub(crate) fn prev_before(
        &self,
        position: Bound<(&[u8], Version)>,
        start: Bound<&[u8]>,
    ) -> Option<MemEntry> {
        let found = match position {
            Bound::Unbounded => self.map.back()?,
            Bound::Included((key, version)) => {
                let end: &dyn KeyVersion = &(key, Reverse(version));
                self.map.upper_bound(Bound::Included(end))?
            }
            Bound::Excluded((key, version)) => {
                let end: &dyn KeyVersion = &(key, Reverse(version));
                self.map.upper_bound(Bound::Excluded(end))?
            }
        };
        let in_range = match start {
            Bound::Unbounded => true,
            Bound::Included(start) => found.key().key.as_ref() >= start,
            Bound::Excluded(start) => found.key().key.as_ref() > start,
        };
        in_range.then(|| to_entry(&found))
    }

    /// Every entry, in key order (for the flush, which sorts them into Z order).
    pub(crate) fn entries(&self) -> impl Iterator<Item = MemEntry> + '_ {
        self.map.iter().map(|entry| to_entry(&entry))
    }
}

fn to_entry(entry: &crossbeam_skiplist::map::Entry<'_, MemKey, StoredValue>) -> MemEntry {
    MemEntry {
        key: Arc::clone(&entry.key().key),
        version: entry.key().version.0,
        value: entry.value().clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(raw: u64) -> Version {
        Version::new(raw)
    }

    fn filled() -> Memtable {
        let memtable = Memtable::new(1);
        memtable.insert(b"a", v(10), Some(b"a10"));
        memtable.insert(b"a", v(20), None);
        memtable.insert(b"a", v(30), Some(b"a30"));
        memtable.insert(b"ab", v(15), Some(b"ab15"));
        memtable.insert(b"b", v(5), Some(b"b5"));
        memtable
    }

    #[test]
    fn get_at_finds_the_newest_version_at_or_below() {
        let memtable = filled();
        let value_at = |key: &[u8], at| {
            memtable.get_at(key, v(at)).map(|e| (e.version.get(), e.value.map(|b| b.to_vec())))
        };
        assert_eq!(value_at(b"a", 9), None);
        assert_eq!(value_at(b"a", 10), Some((10, Some(b"a10".to_vec()))));
        assert_eq!(value_at(b"a", 25), Some((20, None)));
        assert_eq!(value_at(b"a", u64::MAX), Some((30, Some(b"a30".to_vec()))));
        assert_eq!(value_at(b"", u64::MAX), None);
        assert_eq!(value_at(b"aa", u64::MAX), None);
        assert_eq!(value_at(b"ab", 15), Some((15, Some(b"ab15".to_vec()))));
    }

    #[test]
    fn cursor_walks_key_order_within_bounds() {
        let memtable = filled();
        let mut walked = Vec::new();
        let mut next = memtable.next_after(Bound::Unbounded, Bound::Excluded(b"b"));
        while let Some(entry) = next {
            walked.push((entry.key.to_vec(), entry.version.get()));
            next = memtable.next_after(
                Bound::Excluded((&entry.key[..], entry.version)),
                Bound::Excluded(b"b"),
            );
        }
        let expected = [(b"a".to_vec(), 30), (b"a".to_vec(), 20), (b"a".to_vec(), 10)];
        assert_eq!(walked[..3], expected);
        assert_eq!(walked[3], (b"ab".to_vec(), 15));
        assert_eq!(walked.len(), 4);
        assert_eq!(memtable.entry_count(), 5);
        assert!(memtable.size_bytes() > 5 * ENTRY_OVERHEAD_BYTES);
    }

    #[test]
    fn backward_cursor_walks_key_order_in_reverse_within_bounds() {
        let memtable = filled();
        let mut walked = Vec::new();
        let start = Bound::Excluded(&b"a"[..]);
        let mut prev = memtable.prev_before(Bound::Unbounded, start);
        while let Some(entry) = prev {
            walked.push((entry.key.to_vec(), entry.version.get()));
            prev = memtable.prev_before(Bound::Excluded((&entry.key[..], entry.version)), start);
        }
        assert_eq!(walked, [(b"b".to_vec(), 5), (b"ab".to_vec(), 15)]);
        let before_ab = Bound::Excluded((&b"ab"[..], Version::MAX));
        let last_of_a = memtable.prev_before(before_ab, Bound::Unbounded).map(|e| e.version);
        assert_eq!(last_of_a, Some(v(10)), "the oldest version of the key before");
    }
}
