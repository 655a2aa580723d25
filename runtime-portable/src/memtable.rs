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

    /// Every entry from `start` on, in key order: a cursor that steps along the skiplist's
    /// bottom level instead of seeking from the top for every entry.
    pub(crate) fn iter_from(
        &self,
        start: Bound<(&[u8], Version)>,
    ) -> impl Iterator<Item = MemEntry> + Send + '_ {
        let own = |(key, version): (&[u8], Version)| MemKey {
            key: Arc::from(key),
            version: Reverse(version),
        };
        let start = match start {
            Bound::Included(position) => Bound::Included(own(position)),
            Bound::Excluded(position) => Bound::Excluded(own(position)),
            Bound::Unbounded => Bound::Unbounded,
        };
        self.map.range((start, Bound::Unbounded)).map(|entry| to_entry(&entry))
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
    fn iter_from_walks_key_order_from_its_start() {
        let memtable = filled();
        let walk = |start| -> Vec<(Vec<u8>, u64)> {
            memtable.iter_from(start).map(|e| (e.key.to_vec(), e.version.get())).collect()
        };
        let all = walk(Bound::Unbounded);
        assert_eq!(all.len(), 5);
        assert_eq!(all[0], (b"a".to_vec(), 30));
        assert_eq!(walk(Bound::Included((b"a", v(25))))[0], (b"a".to_vec(), 20));
        assert_eq!(walk(Bound::Excluded((b"a", v(20))))[0], (b"a".to_vec(), 10));
        assert_eq!(walk(Bound::Excluded((b"a", Version::ZERO)))[0], (b"ab".to_vec(), 15));
        assert_eq!(walk(Bound::Included((b"b", v(4)))), []);
    }
}
