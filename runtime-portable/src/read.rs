//! The read path: every query is answered from one consistent view, a [`ReadView`]: the
//! tiers as they were when the read started, and a version at or below the visibility
//! watermark. Point reads take the newest hit across tiers; scans k-way merge one iterator
//! per tier (`zverse_core::merge`), in key order for `range_at` and `history`, in Z order for
//! `changes`.

use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use zverse_core::merge::{FAN_IN_MAX, KeyOrder, Keyed, MergeVec, Order, ZOrder};
use zverse_core::segment::{History, RangeAt};
use zverse_core::zkey::ZBox;
use zverse_core::{Entry, Version};

use crate::db::Inner;
use crate::error::{Error, Result};
use crate::locality::{Advised, ScanPurpose};
use crate::memtable::{self, MemBytes, MemEntry, Memtable};
use crate::segment_file::SegmentFile;
use crate::tiers::TiersRef;
use crate::value::Value;

/// One version of one key, as reads yield it: `value` is `None` for a tombstone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The key.
    pub key: Value,
    /// The version the write got.
    pub version: Version,
    /// The value written, or `None` for a delete.
    pub value: Option<Value>,
}

impl Keyed for Change {
    fn key(&self) -> &[u8] {
        &self.key
    }

    fn version(&self) -> Version {
        self.version
    }
}

impl Change {
    fn from_memtable(entry: MemEntry) -> Change {
        Change {
            key: Value::memtable(entry.key),
            version: entry.version,
            value: entry.value.map(Value::memtable),
        }
    }

    fn from_segment(segment: &Arc<SegmentFile>, entry: Entry<'_>) -> Change {
        Change {
            key: Value::mapped(segment, entry.key),
            version: entry.version,
            value: entry.value.map(|value| Value::mapped(segment, value)),
        }
    }
}

/// A boxed per-tier source of changes for a merge.
type Source = Box<dyn Iterator<Item = Result<Change>> + Send>;

/// What a read sees: a set of tiers and a version.
#[derive(Debug)]
pub(crate) struct ReadView {
    /// Loaded without a lock; a point read never writes a shared reference count.
    pub tiers: TiersRef,
    pub version: Version,
}

impl Clone for ReadView {
    /// An owned copy, for an iterator that outlives the read that opened it.
    fn clone(&self) -> ReadView {
        ReadView { tiers: TiersRef::from_inner(Arc::clone(&self.tiers)), version: self.version }
    }
}

impl ReadView {
    /// A view at `version`, capped at the visibility watermark.
    pub(crate) fn new(inner: &Arc<Inner>, version: Version) -> Result<ReadView> {
        inner.check_open()?;
        // The watermark first: every version at or below it is in a memtable of the tiers
        // loaded after it, or in a segment they hold.
        let visible = inner.visible_version();
        let tiers = inner.tiers.load();
        Ok(ReadView { tiers, version: version.min(visible) })
    }

    /// The newest version of `key` at or below the view's version, tombstones included.
    pub(crate) fn get_entry(&self, key: &[u8]) -> Result<Option<Change>> {
        let mut best: Option<Change> = None;
        let newer =
            |best: &Option<Change>, version| best.as_ref().is_none_or(|b| version > b.version);
        for memtable in self.tiers.memtables() {
            if let Some(entry) = memtable.get_at(key, self.version)
                && newer(&best, entry.version)
            {
                best = Some(Change::from_memtable(entry));
            }
        }
        for segment in &self.tiers.segments {
            let meta = segment.meta();
            if meta.version_min > self.version || !newer(&best, meta.version_max) {
                continue; // Nothing in it can beat what was found.
            }
            let found = segment
                .indexed()
                .get_at(key, self.version)
                .map_err(|c| segment_corruption(segment, c))?;
            if let Some(entry) = found
                && newer(&best, entry.version)
            {
                best = Some(Change::from_segment(segment, entry));
            }
        }
        Ok(best)
    }

    /// The value of `key` at the view's version; `None` if absent or deleted.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        Ok(self.get_entry(key)?.and_then(|change| change.value))
    }

    /// Every visible version of `key`, newest first.
    pub(crate) fn history(&self, key: &[u8]) -> crate::History {
        let mut sources: Vec<Source> = Vec::new();
        for memtable in self.tiers.memtables() {
            let mut versions = Vec::new();
            let from = Bound::Included((key, self.version));
            walk_memtable(memtable, from, Bound::Included(key), |entry| {
                versions.push(Ok(Change::from_memtable(entry)));
            });
            sources.push(Box::new(versions.into_iter()));
        }
        for segment in &self.tiers.segments {
            sources.push(Box::new(SegmentHistory::open(segment, key, self.version)));
        }
        let merged = merge(sources, KeyOrder);
        let versions: Vec<_> = merged.map(|item| item.map(|c| (c.version, c.value))).collect();
        versions.into_iter()
    }

    /// Every key in `keys` with its newest value at the view's version, in key order.
    pub(crate) fn range(&self, keys: &OwnedRange) -> Range {
        let mut sources: Vec<Source> = Vec::new();
        for memtable in self.tiers.memtables() {
            sources.push(Box::new(MemtableRange::new(memtable, keys, self.version)));
        }
        for segment in &self.tiers.segments {
            sources.push(Box::new(SegmentRange::open(segment, keys, self.version)));
        }
        Range { merged: merge(sources, KeyOrder), key_last: None, _view: self.clone() }
    }

    /// Every version written to a key in `keys` within `versions` (capped at the view's
    /// version), in Z order.
    pub(crate) fn changes(
        &self,
        keys: &OwnedRange,
        versions: (Bound<Version>, Bound<Version>),
    ) -> Changes {
        let versions = cap_versions(versions, self.version);
        let mut sources: Vec<Source> = Vec::new();
        for memtable in self.tiers.memtables() {
            sources.push(Box::new(memtable_changes(memtable, keys, versions).into_iter().map(Ok)));
        }
        for segment in &self.tiers.segments {
            sources.push(Box::new(SegmentChanges::open(segment, keys.clone(), versions)));
        }
        Changes { merged: merge(sources, ZOrder), _view: self.clone() }
    }
}

/// Merges the tier sources in `order`, ties going to the earlier (newer) source. Past the
/// merge's fan-in the sources are merged in chunks first, which keeps that tie order.
fn merge<O>(mut sources: Vec<Source>, order: O) -> Source
where
    O: Order<Change> + Copy + Send + 'static,
{
    while sources.len() > FAN_IN_MAX {
        let mut chunks = Vec::with_capacity(sources.len().div_ceil(FAN_IN_MAX));
        let mut rest = sources.into_iter().peekable();
        while rest.peek().is_some() {
            let chunk: Vec<Source> = rest.by_ref().take(FAN_IN_MAX).collect();
            chunks.push(merge_within_fan_in(chunk, order));
        }
        sources = chunks;
    }
    merge_within_fan_in(sources, order)
}

fn merge_within_fan_in<O>(sources: Vec<Source>, order: O) -> Source
where
    O: Order<Change> + Send + 'static,
{
    let merged = MergeVec::from_sources(sources, order);
    Box::new(merged.expect("sources are chunked to the fan-in limit"))
}

fn segment_corruption(segment: &SegmentFile, corruption: zverse_core::Corruption) -> Error {
    Error::corruption(segment.path(), 0, corruption)
}

fn cap_versions(
    (start, end): (Bound<Version>, Bound<Version>),
    cap: Version,
) -> (Bound<Version>, Bound<Version>) {
    let end = match end {
        Bound::Included(v) => Bound::Included(v.min(cap)),
        Bound::Excluded(v) if v > cap => Bound::Included(cap),
        Bound::Excluded(v) => Bound::Excluded(v),
        Bound::Unbounded => Bound::Included(cap),
    };
    (start, end)
}

/// A key range with owned bounds, so that iterators can outlive the caller's borrow.
#[derive(Clone, Debug)]
pub(crate) struct OwnedRange {
    pub start: Bound<Box<[u8]>>,
    pub end: Bound<Box<[u8]>>,
}

impl OwnedRange {
    pub(crate) fn new<'k>(keys: &impl RangeBounds<&'k [u8]>) -> OwnedRange {
        let own = |bound: Bound<&&[u8]>| bound.map(|key| Box::<[u8]>::from(*key));
        OwnedRange { start: own(keys.start_bound()), end: own(keys.end_bound()) }
    }

    fn bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        (self.start.as_ref().map(AsRef::as_ref), self.end.as_ref().map(AsRef::as_ref))
    }
}

/// Newest version per key at or below a version, from one memtable, in key order: one cursor
/// walks the memtable (no seek per key).
struct MemtableRange {
    cursor: memtable::Cursor,
    end: Bound<Box<[u8]>>,
    version: Version,
    /// The last key yielded: its older versions are passed over.
    key_last: Option<MemBytes>,
    done: bool,
}

impl MemtableRange {
    fn new(memtable: &Arc<Memtable>, keys: &OwnedRange, version: Version) -> MemtableRange {
        let (start, _) = keys.bounds();
        let cursor = memtable.cursor(key_start(start));
        MemtableRange { cursor, end: keys.end.clone(), version, key_last: None, done: false }
    }
}

impl Iterator for MemtableRange {
    type Item = Result<Change>;

    fn next(&mut self) -> Option<Result<Change>> {
        while !self.done {
            let Some(entry) = self.cursor.next() else {
                self.done = true;
                break;
            };
            if !key_in_end(&entry.key, self.end.as_ref().map(AsRef::as_ref)) {
                self.done = true;
                break;
            }
            // Newer than the view, or an older version of the key yielded last: not shown.
            if entry.version > self.version || self.key_last.as_ref() == Some(&entry.key) {
                continue;
            }
            self.key_last = Some(entry.key.clone());
            return Some(Ok(Change::from_memtable(entry)));
        }
        None
    }
}

/// Whether `key` is inside the end bound `end`.
fn key_in_end(key: &[u8], end: Bound<&[u8]>) -> bool {
    match end {
        Bound::Included(end) => key <= end,
        Bound::Excluded(end) => key < end,
        Bound::Unbounded => true,
    }
}

/// Where a key-order walk over a memtable starts, for a key range's start bound.
fn key_start(start: Bound<&[u8]>) -> Bound<(&[u8], Version)> {
    match start {
        Bound::Included(key) => Bound::Included((key, Version::MAX)),
        Bound::Excluded(key) => Bound::Excluded((key, Version::ZERO)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Calls `f` with every entry of `memtable` from `from` on, in key order, while keys are in
/// `end`: one seek, then a cursor.
fn walk_memtable(
    memtable: &Arc<Memtable>,
    from: Bound<(&[u8], Version)>,
    end: Bound<&[u8]>,
    f: impl FnMut(MemEntry),
) {
    memtable.cursor(from).take_while(|entry| key_in_end(&entry.key, end)).for_each(f);
}

/// A segment's `range_at` iterator, feeding the locality advisor.
type AdvisedRangeAt<'a> = Advised<'a, RangeAt<'a>>;

self_cell::self_cell! {
    /// A segment's `range_at` iterator, keeping its segment mapped.
    struct SegmentRangeCell {
        owner: Arc<SegmentFile>,
        #[not_covariant]
        dependent: AdvisedRangeAt,
    }
}

struct SegmentRange(SegmentRangeCell);

impl SegmentRange {
    fn open(segment: &Arc<SegmentFile>, keys: &OwnedRange, version: Version) -> SegmentRange {
        SegmentRange(SegmentRangeCell::new(Arc::clone(segment), |segment| {
            // A key-order walk decodes every version of its keys, newer ones included. The
            // advice first: its first window is on its way while `range_at` binary-searches.
            let zbox = ZBox::covering(&keys.bounds(), &(..));
            let advice = segment.scan_advice(zbox.as_ref(), ScanPurpose::Query);
            Advised::new(segment.indexed_if_built().range_at(keys.bounds(), version), advice)
        }))
    }
}

impl Iterator for SegmentRange {
    type Item = Result<Change>;

    fn next(&mut self) -> Option<Result<Change>> {
        self.0.with_dependent_mut(|segment, range| {
            range.next().map(|entry| match entry {
                Ok(entry) => Ok(Change::from_segment(segment, entry)),
                Err(corruption) => Err(segment_corruption(segment, corruption)),
            })
        })
    }
}

self_cell::self_cell! {
    /// A segment's `history` iterator, keeping its segment mapped.
    struct SegmentHistoryCell {
        owner: Arc<SegmentFile>,
        #[not_covariant]
        dependent: History,
    }
}

struct SegmentHistory {
    cell: SegmentHistoryCell,
    version: Version,
}

impl SegmentHistory {
    fn open(segment: &Arc<SegmentFile>, key: &[u8], version: Version) -> SegmentHistory {
        let cell =
            SegmentHistoryCell::new(Arc::clone(segment), |segment| segment.segment().history(key));
        SegmentHistory { cell, version }
    }
}

impl Iterator for SegmentHistory {
    type Item = Result<Change>;

    fn next(&mut self) -> Option<Result<Change>> {
        let version = self.version;
        self.cell.with_dependent_mut(|segment, history| {
            loop {
                match history.next()? {
                    Ok(entry) if entry.version > version => {}
                    Ok(entry) => return Some(Ok(Change::from_segment(segment, entry))),
                    Err(corruption) => return Some(Err(segment_corruption(segment, corruption))),
                }
            }
        })
    }
}

/// A segment's `changes` iterator, whose key bounds live as long as the segment borrow,
/// feeding the locality advisor.
type SegmentChangesIter<'a> = Advised<'a, zverse_core::segment::Changes<'a, 'a>>;

/// What a segment's `changes` borrows: the segment and the key bounds.
struct ChangesOwner {
    segment: Arc<SegmentFile>,
    keys: OwnedRange,
}

self_cell::self_cell! {
    /// A segment's `changes` iterator, keeping its segment mapped and its key bounds alive.
    struct SegmentChangesCell {
        owner: ChangesOwner,
        #[not_covariant]
        dependent: SegmentChangesIter,
    }
}

struct SegmentChanges(SegmentChangesCell);

impl SegmentChanges {
    fn open(
        segment: &Arc<SegmentFile>,
        keys: OwnedRange,
        versions: (Bound<Version>, Bound<Version>),
    ) -> SegmentChanges {
        let owner = ChangesOwner { segment: Arc::clone(segment), keys };
        SegmentChanges(SegmentChangesCell::new(owner, |owner| {
            let zbox = ZBox::covering(&owner.keys.bounds(), &versions);
            let advice = owner.segment.scan_advice(zbox.as_ref(), ScanPurpose::Query);
            Advised::new(owner.segment.segment().changes(owner.keys.bounds(), versions), advice)
        }))
    }
}

impl Iterator for SegmentChanges {
    type Item = Result<Change>;

    fn next(&mut self) -> Option<Result<Change>> {
        self.0.with_dependent_mut(|owner, changes| {
            changes.next().map(|entry| match entry {
                Ok(entry) => Ok(Change::from_segment(&owner.segment, entry)),
                Err(corruption) => Err(segment_corruption(&owner.segment, corruption)),
            })
        })
    }
}

/// A memtable's entries in a key range and a version range, sorted into Z order. Memtables
/// are bounded (`memtable_bytes_max`), so collecting them is bounded too.
fn memtable_changes(
    memtable: &Arc<Memtable>,
    keys: &OwnedRange,
    versions: (Bound<Version>, Bound<Version>),
) -> Vec<Change> {
    let (start, end) = keys.bounds();
    let mut found = Vec::new();
    walk_memtable(memtable, key_start(start), end, |entry| {
        if versions.contains(&entry.version) {
            found.push(Change::from_memtable(entry));
        }
    });
    found.sort_unstable_by(|a, b| zverse_core::zkey::cmp_z(&a.key, a.version, &b.key, b.version));
    found
}

/// The iterator `Db::range` and `Db::range_at` return: `(key, value)` in key order.
pub struct Range {
    merged: Source,
    key_last: Option<Value>,
    _view: ReadView,
}

impl Iterator for Range {
    type Item = Result<(Value, Value)>;

    fn next(&mut self) -> Option<Result<(Value, Value)>> {
        loop {
            let change = match self.merged.next()? {
                Ok(change) => change,
                Err(error) => return Some(Err(error)),
            };
            // The first item of a key is its newest version across tiers; the rest are older.
            if self.key_last.as_ref().is_some_and(|last| *last == change.key) {
                continue;
            }
            self.key_last = Some(change.key.clone());
            if let Some(value) = change.value {
                return Some(Ok((change.key, value)));
            }
        }
    }
}

impl std::fmt::Debug for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Range").field("key_last", &self.key_last).finish_non_exhaustive()
    }
}

/// The iterator `Db::changes` returns: every version written to the keys in the window,
/// in Z order (clustered by key prefix and time).
pub struct Changes {
    merged: Source,
    _view: ReadView,
}

impl Iterator for Changes {
    type Item = Result<Change>;

    fn next(&mut self) -> Option<Result<Change>> {
        self.merged.next()
    }
}

impl std::fmt::Debug for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changes").finish_non_exhaustive()
    }
}
