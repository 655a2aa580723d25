//! [`Scan`]: a range read that lends each key and value as `&[u8]` until its next step, as
//! LMDB's and RocksDB's cursors do, instead of handing out an owned [`crate::Slice`] pair (two
//! reference counts taken and given back per item). Its items are [`RawKeyVersion`]s: pointers
//! into the memtables and mapped segments that the scan's read view holds for its whole life.

use std::ptr::NonNull;
use std::sync::Arc;

use zverse_core::merge::Keyed;
use zverse_core::{Entry, Version};

use crate::error::Result;
use crate::memtable::Memtable;
use crate::read::{OwnedRange, RangeItem, ReadView, Reader};
use crate::segment_file::MappedFile;

/// One version of one key as pointers into the store: no reference count, no copy.
///
/// Made only by [`RangeItem::of_segment`] and [`RangeItem::of_memtable`] from bytes of a
/// mapped segment or of a memtable node that the [`Ends`] holding the item keeps alive through
/// its read view (every tier a range source reads is in that view's tier set); the type is
/// private to the crate and items never leave the [`Scan`] that read them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawKeyVersion {
    key: NonNull<[u8]>,
    version: Version,
    value: Option<NonNull<[u8]>>,
}

// SAFETY: the pointers are to immutable bytes (a mapped segment is never written while mapped;
// a memtable node is immutable once linked but for its links, which these do not cover), so
// sending them is sending `&[u8]`s, which are `Send`.
unsafe impl Send for RawKeyVersion {}

impl RawKeyVersion {
    fn of(entry: Entry<'_>) -> RawKeyVersion {
        RawKeyVersion {
            key: NonNull::from(entry.key),
            version: entry.version,
            value: entry.value.map(NonNull::from),
        }
    }
}

impl Keyed for RawKeyVersion {
    fn key(&self) -> &[u8] {
        // SAFETY: the key is in a mapped segment or a memtable node that the read view of the
        // `Ends` holding this item keeps alive (see `RawKeyVersion`), and items are only read
        // while their `Ends` lives.
        unsafe { self.key.as_ref() }
    }

    fn version(&self) -> Version {
        self.version
    }
}

/// The last key one end of a [`Scan`] read: its pointer (the bytes stay alive for the scan's
/// life), so remembering a key copies nothing.
#[derive(Debug, Default)]
pub(crate) struct KeyPointer(Option<NonNull<[u8]>>);

// SAFETY: as for `RawKeyVersion`: a pointer to immutable bytes.
unsafe impl Send for KeyPointer {}

impl RangeItem for RawKeyVersion {
    type KeyLast = KeyPointer;

    fn of_segment<F: MappedFile>(_segment: &Arc<F>, entry: Entry<'_>) -> RawKeyVersion {
        RawKeyVersion::of(entry)
    }

    fn of_memtable(_memtable: &Arc<Memtable>, entry: Entry<'_>) -> RawKeyVersion {
        RawKeyVersion::of(entry)
    }

    fn is_live(&self) -> bool {
        self.value.is_some()
    }

    fn last_key(last: &KeyPointer) -> Option<&[u8]> {
        // SAFETY: the pointer was a key of an item of the same `Ends`, whose view keeps it
        // alive as long as the `KeyPointer` (a field of that `Ends`).
        last.0.map(|key| unsafe { key.as_ref() })
    }

    fn remember(&self, last: &mut KeyPointer) {
        last.0 = Some(self.key);
    }
}

/// A range read whose keys and values are borrowed from the store until the next step: the
/// cursor `scan`, `scan_at` and [`Snapshot::scan`](crate::Snapshot::scan) return. It reads
/// what [`Db::range`](crate::Db::range) reads (each key's newest value at the read's version,
/// in key order, or in descending key order with [`Scan::next_back`]; the two ends meet
/// without repeating a key), with no reference count and no allocation per item.
///
/// ```
/// # fn main() -> zverse::Result<()> {
/// # let dir = tempfile::tempdir()?;
/// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
/// db.put(b"a", b"1")?;
/// db.put(b"b", b"2")?;
/// let mut scan = db.scan(..)?;
/// let mut keys = Vec::new();
/// while let Some(item) = scan.next() {
///     let (key, _value) = item?;
///     keys.push(key.to_vec());
/// }
/// assert_eq!(keys, [b"a".to_vec(), b"b".to_vec()]);
/// assert_eq!(db.scan(..)?.next_back().transpose()?, Some((&b"b"[..], &b"2"[..])));
/// # Ok(())
/// # }
/// ```
///
/// An item is borrowed from the scan, so it cannot be kept past the next step (copy what you
/// keep, or use [`Db::range`](crate::Db::range), whose items are owned):
///
/// ```compile_fail,E0499
/// # fn main() -> zverse::Result<()> {
/// # let dir = tempfile::tempdir()?;
/// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
/// let mut scan = db.scan(..)?;
/// let first = scan.next();
/// let second = scan.next(); // error[E0499]: `scan` is still borrowed by `first`
/// drop((first, second));
/// # Ok(())
/// # }
/// ```
pub struct Scan {
    reader: Reader<RawKeyVersion>,
}

impl Scan {
    /// A scan of `keys` at `view`'s version.
    pub(crate) fn new(view: &ReadView, keys: OwnedRange) -> Scan {
        Scan { reader: Reader::new(view, keys) }
    }

    /// The next key and its value in key order, borrowed until the next step; `None` once the
    /// range (or the other end) is reached. After an error, the scan yields nothing more.
    #[expect(clippy::should_implement_trait, reason = "a lending cursor: items borrow the scan")]
    pub fn next(&mut self) -> Option<Result<(&[u8], &[u8])>> {
        let item = self.reader.next_front()?;
        Some(item.map(|item| self.lend(item)).map_err(|error| *error))
    }

    /// The next key and its value in descending key order, borrowed until the next step.
    pub fn next_back(&mut self) -> Option<Result<(&[u8], &[u8])>> {
        let item = self.reader.next_back()?;
        Some(item.map(|item| self.lend(item)).map_err(|error| *error))
    }

    /// Calls `visit` with every key and value left, in key order; stops at the first error.
    pub fn for_each(mut self, mut visit: impl FnMut(&[u8], &[u8])) -> Result<()> {
        while let Some(item) = self.next() {
            let (key, value) = item?;
            visit(key, value);
        }
        Ok(())
    }

    /// `item`'s key and value for as long as `self` is borrowed: the borrow is what ties the
    /// bytes' lifetime to the scan's.
    #[expect(clippy::unused_self, reason = "the borrow of `self` bounds the lent bytes")]
    fn lend(&self, item: RawKeyVersion) -> (&[u8], &[u8]) {
        let value = item.value.expect("an end yields live versions only");
        // SAFETY: `item` came from `self.ends`, whose read view holds every memtable and
        // segment its sources read (see `RawKeyVersion`); the returned borrow of `self` keeps
        // that view alive and unchanged for as long as the bytes are used.
        unsafe { (item.key.as_ref(), value.as_ref()) }
    }
}

impl std::fmt::Debug for Scan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scan").field("reader", &self.reader).finish()
    }
}
