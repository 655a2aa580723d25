//! The read path: every query is answered from one consistent view, a [`ReadView`]: the
//! tiers as they were when the read started, and a version at or below the visibility
//! watermark. Point reads take the newest hit across tiers; scans k-way merge one iterator
//! per tier (`zverse_core::merge`), in key order for `range_at` and `history`; `changes` reads
//! the tiers one after the other, each in its own order.

use std::cmp::Ordering;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::sync::atomic::{self, AtomicU64};

use zverse_core::merge::{FAN_IN_MAX, Keyed, MergeVec, Order, same_key};
use zverse_core::segment::history::{HistoryChanges, HistoryIter, HistoryRangeAt};
use zverse_core::segment::{KeyVersions, RangeAt};
use zverse_core::zkey::ZBox;
use zverse_core::{Entry, Version};

use crate::error::{Error, Result};
use crate::inner::Inner;
use crate::key_range::KeyRange;
use crate::locality::{Advised, ScanPurpose};
use crate::manifest::SegmentMeta;
use crate::memtable::{self, MemBytes, MemEntry, Memtable};
use crate::segment_file::{HistoryFile, MappedFile, SegmentFile};
use crate::slice::Slice;
use crate::tiers::{TiersRef, level_overlapping, level_segment};

/// One write that [`Db::changes`](crate::Db::changes) lists: the key, its version, and the
/// value written (`None` for a delete).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The key.
    pub key: Slice,
    /// The version the write got.
    pub version: Version,
    /// The value written, or `None` for a delete.
    pub value: Option<Slice>,
}

/// One version of one key, as the merges of the tiers yield it: `value` is `None` for a
/// tombstone.
#[derive(Clone, Debug)]
pub(crate) struct KeyVersion {
    pub key: Slice,
    pub version: Version,
    pub value: Option<Slice>,
}

impl Keyed for KeyVersion {
    fn key(&self) -> &[u8] {
        &self.key
    }

    fn version(&self) -> Version {
        self.version
    }
}

impl KeyVersion {
    fn from_memtable(entry: MemEntry) -> KeyVersion {
        KeyVersion {
            key: Slice::memtable(entry.key),
            version: entry.version,
            value: entry.value.map(Slice::memtable),
        }
    }

    fn from_segment<F: MappedFile>(segment: &Arc<F>, entry: Entry<'_>) -> KeyVersion {
        KeyVersion {
            key: Slice::mapped(segment, entry.key),
            version: entry.version,
            value: entry.value.map(|value| Slice::mapped(segment, value)),
        }
    }
}

/// The newest version of a key a point read found, as its tier holds it.
enum Found<'v> {
    Memtable(MemEntry),
    Current(&'v Arc<SegmentFile>, Entry<'v>),
    History(&'v Arc<HistoryFile>, Entry<'v>),
}

impl Found<'_> {
    fn version(&self) -> Version {
        match self {
            Found::Memtable(entry) => entry.version,
            Found::Current(_, entry) | Found::History(_, entry) => entry.version,
        }
    }

    fn into_key_version(self) -> KeyVersion {
        match self {
            Found::Memtable(entry) => KeyVersion::from_memtable(entry),
            Found::Current(segment, entry) => KeyVersion::from_segment(segment, entry),
            Found::History(segment, entry) => KeyVersion::from_segment(segment, entry),
        }
    }

    /// The value alone (`None`: a tombstone), without a reference to the key.
    fn into_value(self) -> Option<Slice> {
        match self {
            Found::Memtable(entry) => entry.value.map(Slice::memtable),
            Found::Current(segment, entry) => entry.value.map(|v| Slice::mapped(segment, v)),
            Found::History(segment, entry) => entry.value.map(|v| Slice::mapped(segment, v)),
        }
    }
}

/// What the sources of a range yield for one version of one key: built from an entry of a
/// segment or a memtable that the read's [`ReadView`] holds. [`Range`] reads owned
/// [`KeyVersion`]s; [`crate::Scan`] reads pointers that take no reference count
/// ([`crate::scan::RawKeyVersion`]).
pub(crate) trait RangeItem: Keyed + Sized + Send + 'static {
    /// What one end of a range keeps of the last key it read.
    type KeyLast: Default + Send + std::fmt::Debug;

    /// `entry`, bytes of `segment`'s mapping.
    fn of_segment<F: MappedFile>(segment: &Arc<F>, entry: Entry<'_>) -> Self;

    /// `entry`, bytes of a node of `memtable`.
    fn of_memtable(memtable: &Arc<Memtable>, entry: Entry<'_>) -> Self;

    /// Whether this version is a value (not a tombstone).
    fn is_live(&self) -> bool;

    /// The key `last` remembers, if any.
    fn last_key(last: &Self::KeyLast) -> Option<&[u8]>;

    /// Makes `last` remember this item's key.
    fn remember(&self, last: &mut Self::KeyLast);
}

impl RangeItem for KeyVersion {
    type KeyLast = KeyLast;

    fn of_segment<F: MappedFile>(segment: &Arc<F>, entry: Entry<'_>) -> KeyVersion {
        KeyVersion::from_segment(segment, entry)
    }

    fn of_memtable(memtable: &Arc<Memtable>, entry: Entry<'_>) -> KeyVersion {
        let bytes = |bytes| Slice::memtable(MemBytes::new(memtable, bytes));
        KeyVersion { key: bytes(entry.key), version: entry.version, value: entry.value.map(bytes) }
    }

    fn is_live(&self) -> bool {
        self.value.is_some()
    }

    fn last_key(last: &KeyLast) -> Option<&[u8]> {
        last.get()
    }

    fn remember(&self, last: &mut KeyLast) {
        last.set(&self.key);
    }
}

/// Key order, as [`zverse_core::merge::KeyOrder`] compares: keys of 8 bytes or more by their first 8 bytes as one
/// big-endian integer (one load each), the rest of the bytes only on a tie.
fn cmp_keys(a: &[u8], b: &[u8]) -> Ordering {
    if let (Some(a_head), Some(b_head)) = (a.first_chunk::<8>(), b.first_chunk::<8>()) {
        let heads = u64::from_be_bytes(*a_head).cmp(&u64::from_be_bytes(*b_head));
        if heads.is_ne() {
            return heads;
        }
    }
    a.cmp(b)
}

/// Key order (key ascending, version descending) over range items, by prefix first.
#[derive(Clone, Copy, Debug)]
struct KeyVersionOrder;

impl<T: Keyed> Order<T> for KeyVersionOrder {
    fn cmp(&self, a: &T, b: &T) -> Ordering {
        cmp_keys(a.key(), b.key()).then_with(|| b.version().cmp(&a.version()))
    }
}

/// A boxed per-tier source for a merge.
pub(crate) type Src<T> = Box<dyn Iterator<Item = Result<T>> + Send>;

/// A boxed per-tier source of owned versions.
type Source = Src<KeyVersion>;

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
        let tiers = inner.state.tiers_ref();
        Ok(ReadView { tiers, version: version.min(visible) })
    }

    /// The newest version of `key` at or below the view's version, tombstones included.
    pub(crate) fn get_entry(&self, key: &[u8]) -> Result<Option<KeyVersion>> {
        Ok(self.newest(key)?.map(Found::into_key_version))
    }

    /// [`ReadView::get_entry`], borrowed from the tier that holds it: a segment's entry costs
    /// no reference count until the caller takes what it needs of it.
    fn newest(&self, key: &[u8]) -> Result<Option<Found<'_>>> {
        let mut best: Option<Found<'_>> = None;
        let newer =
            |best: &Option<Found<'_>>, version| best.as_ref().is_none_or(|b| version > b.version());
        for memtable in self.tiers.memtables() {
            if let Some(entry) = memtable.get_at(key, self.version)
                && newer(&best, entry.version)
            {
                best = Some(Found::Memtable(entry));
            }
        }
        let levels = self.tiers.levels.iter().filter_map(|level| level_segment(level, key));
        for segment in self.tiers.segments.iter().chain(levels) {
            let meta = segment.meta();
            if meta.version_min > self.version || !newer(&best, meta.version_max) {
                continue; // Nothing in it can beat what was found.
            }
            let found =
                segment.get_at(key, self.version).map_err(|c| segment_corruption(segment, c))?;
            if let Some(entry) = found
                && newer(&best, entry.version)
            {
                best = Some(Found::Current(segment, entry));
            }
        }
        if !self.tiers.needs_history(self.version) {
            return Ok(best);
        }
        for segment in &self.tiers.history {
            let meta = segment.meta();
            if meta.version_min > self.version || !newer(&best, meta.version_max) {
                continue;
            }
            segment.count_read();
            let found = segment.segment().get_at(key, self.version);
            let found = found.map_err(|c| Error::corruption(segment.path(), 0, c))?;
            if let Some(entry) = found
                && newer(&best, entry.version)
            {
                best = Some(Found::History(segment, entry));
            }
        }
        Ok(best)
    }

    /// The value of `key` at the view's version; `None` if absent or deleted.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Slice>> {
        Ok(self.newest(key)?.and_then(Found::into_value))
    }

    /// Every version of `key` in `versions` (capped at the view's version), newest first,
    /// read lazily: each step reads one version from each tier it has not yet passed.
    pub(crate) fn history(
        &self,
        key: &[u8],
        versions: (Bound<Version>, Bound<Version>),
    ) -> History {
        let Some(version_max) = version_max(versions.1, self.version) else {
            return History { merged: Box::new(std::iter::empty()), version_min: versions.0 };
        };
        let mut sources: Vec<Source> = Vec::new();
        for memtable in self.tiers.memtables() {
            sources.push(Box::new(MemtableHistory::new(memtable, key, version_max)));
        }
        let levels = self.tiers.levels.iter().filter_map(|level| level_segment(level, key));
        for segment in self.tiers.segments.iter().chain(levels) {
            if !overlaps(segment.meta(), versions.0, version_max) {
                continue; // Nothing in it is inside the window.
            }
            sources.push(Box::new(SegmentHistory::open(segment, key, version_max)));
        }
        for segment in &self.tiers.history {
            if overlaps(segment.meta(), versions.0, version_max) {
                sources.push(Box::new(HistoryVersions::open(segment, key, version_max)));
            }
        }
        History { merged: merge(sources, KeyVersionOrder), version_min: versions.0 }
    }

    /// Every key in `keys` with its newest value at the view's version, in key order. Each
    /// end's merge is set up by its first read: a reverse walk never sets up the forward one.
    pub(crate) fn range(&self, keys: OwnedRange) -> Range {
        Range(Reader::new(self, keys))
    }

    /// The two ends of a range over `keys`, each set up by its first read.
    pub(crate) fn ends<T: RangeItem>(&self, keys: OwnedRange) -> Ends<T> {
        Ends {
            front: None,
            key_last: T::KeyLast::default(),
            back: None,
            key_last_back: T::KeyLast::default(),
            keys,
            done: false,
            view: self.clone(),
        }
    }

    /// [`ReadView::range`] in key order: what `Range::next` reads.
    fn range_fwd<T: RangeItem>(&self, keys: &OwnedRange) -> Src<T> {
        let mut sources: Vec<Src<T>> = Vec::new();
        // An empty memtable stays empty below the view's version (every version at or below
        // it was in the memtables when the view loaded them): no source for it.
        for memtable in self.tiers.memtables().filter(|memtable| !memtable.is_empty()) {
            sources.push(Box::new(MemtableRange::<T>::new(memtable, keys, self.version)));
        }
        for segment in &self.tiers.segments {
            sources.push(Box::new(SegmentRange::<T>::open(segment, keys, self.version)));
        }
        for level in &self.tiers.levels {
            let segments = level_overlapping(level, keys.bounds()).to_vec();
            if !segments.is_empty() {
                let level = LevelRange::<T>::new(segments, keys.clone(), self.version, false);
                sources.push(Box::new(level));
            }
        }
        self.history_range_sources(keys, false, &mut sources);
        merge(sources, KeyVersionOrder)
    }

    /// The segments a range over `keys` reads, in key order, when they are its only source:
    /// no memtable holds anything, history is not needed, and either one level-0 segment and
    /// no level meets `keys`, or no level-0 segment and one level does. `None` otherwise.
    pub(crate) fn single_source(&self, keys: &OwnedRange) -> Option<Vec<Arc<SegmentFile>>> {
        if self.tiers.memtables().any(|memtable| !memtable.is_empty()) {
            return None;
        }
        let history = self.tiers.history.iter();
        if self.tiers.needs_history(self.version)
            && history.clone().any(|segment| segment.meta().version_min <= self.version)
        {
            return None;
        }
        let mut levels =
            self.tiers.levels.iter().map(|level| level_overlapping(level, keys.bounds()));
        let mut levels = levels.by_ref().filter(|segments| !segments.is_empty());
        let level = levels.next();
        match (&self.tiers.segments[..], level, levels.next()) {
            ([], None, None) => Some(Vec::new()),
            ([segment], None, None) => Some(vec![Arc::clone(segment)]),
            ([], Some(level), None) => Some(level.to_vec()),
            _ => None,
        }
    }

    /// The history segments' sources of a range at the view's version, when it needs them.
    fn history_range_sources<T: RangeItem>(
        &self,
        keys: &OwnedRange,
        reverse: bool,
        sources: &mut Vec<Src<T>>,
    ) {
        if !self.tiers.needs_history(self.version) {
            return;
        }
        for segment in &self.tiers.history {
            if segment.meta().version_min <= self.version {
                let range = HistoryRange::<T>::open(segment, keys, self.version, reverse);
                sources.push(Box::new(range));
            }
        }
    }

    /// [`ReadView::range`] in descending key order: what `Range::next_back` reads.
    fn range_rev<T: RangeItem>(&self, keys: &OwnedRange) -> Src<T> {
        let mut sources: Vec<Src<T>> = Vec::new();
        for memtable in self.tiers.memtables().filter(|memtable| !memtable.is_empty()) {
            sources.push(Box::new(MemtableRangeRev::<T>::new(
                Arc::clone(memtable),
                keys.clone(),
                self.version,
            )));
        }
        for segment in &self.tiers.segments {
            sources.push(Box::new(SegmentRangeRev::<T>::open(segment, keys, self.version)));
        }
        for level in &self.tiers.levels {
            let mut segments = level_overlapping(level, keys.bounds()).to_vec();
            segments.reverse();
            if !segments.is_empty() {
                let level = LevelRange::<T>::new(segments, keys.clone(), self.version, true);
                sources.push(Box::new(level));
            }
        }
        self.history_range_sources(keys, true, &mut sources);
        merge(sources, KeyOrderRev)
    }

    /// Every version written to a key in `keys` within `versions` (capped at the view's
    /// version), each exactly once, tier by tier (see [`Changes`]): the tiers are read one
    /// after the other, each opened only when the one before it is done, so memory is that of
    /// one tier's reader and a caller that stops early opens no more.
    pub(crate) fn changes(
        &self,
        keys: &OwnedRange,
        versions: (Bound<Version>, Bound<Version>),
    ) -> Changes {
        self.changes_counted(keys, versions, &Arc::default())
    }

    /// [`ReadView::changes`], adding the bytes of the segment blocks it reads to `bytes_read`
    /// as each segment's scan ends.
    pub(crate) fn changes_counted(
        &self,
        keys: &OwnedRange,
        versions: (Bound<Version>, Bound<Version>),
        bytes_read: &Arc<AtomicU64>,
    ) -> Changes {
        let versions = cap_versions(versions, self.version);
        let mut tiers: Vec<OpenSource> = Vec::new();
        for memtable in self.tiers.memtables() {
            let (memtable, keys) = (Arc::clone(memtable), keys.clone());
            tiers.push(Box::new(move || {
                Box::new(memtable_changes(&memtable, &keys, versions).into_iter().map(Ok))
            }));
        }
        let version_max = version_max(versions.1, self.version);
        let in_window =
            |meta: &SegmentMeta| version_max.is_some_and(|max| overlaps(meta, versions.0, max));
        let levels =
            self.tiers.levels.iter().flat_map(|level| level_overlapping(level, keys.bounds()));
        for segment in self.tiers.segments.iter().chain(levels) {
            if in_window(segment.meta()) {
                let (segment, keys) = (Arc::clone(segment), keys.clone());
                let bytes_read = Arc::clone(bytes_read);
                tiers.push(Box::new(move || {
                    Box::new(SegmentChanges::open(&segment, keys, versions, bytes_read))
                }));
            }
        }
        for segment in &self.tiers.history {
            if in_window(segment.meta()) {
                let (segment, keys) = (Arc::clone(segment), keys.clone());
                let bytes_read = Arc::clone(bytes_read);
                tiers.push(Box::new(move || {
                    Box::new(HistoryChangesOf::open(segment, &keys, versions, bytes_read))
                }));
            }
        }
        let chained = Chained { tiers: tiers.into_iter(), open: None };
        Changes { merged: Box::new(chained), _view: self.clone() }
    }
}

/// Opens one tier's `changes` source when the chain reaches it.
type OpenSource = Box<dyn FnOnce() -> Source + Send>;

/// Tier sources read one after the other, each opened when the one before it is done.
struct Chained {
    tiers: std::vec::IntoIter<OpenSource>,
    open: Option<Source>,
}

impl Iterator for Chained {
    type Item = Result<KeyVersion>;

    fn next(&mut self) -> Option<Result<KeyVersion>> {
        loop {
            if let Some(found) = self.open.as_mut().and_then(Iterator::next) {
                return Some(found);
            }
            self.open = Some((self.tiers.next()?)());
        }
    }
}

/// Merges the tier sources in `order`, ties going to the earlier (newer) source. Past the
/// merge's fan-in the sources are merged in chunks first, which keeps that tie order.
fn merge<T, O>(mut sources: Vec<Src<T>>, order: O) -> Src<T>
where
    T: Send + 'static,
    O: Order<T> + Copy + Send + 'static,
{
    if sources.len() <= 1 {
        // Nothing to merge: the source itself, ended by its first error as a merge would be.
        let Some(source) = sources.pop() else {
            return Box::new(std::iter::empty());
        };
        return Box::new(EndAtError { source, done: false });
    }
    while sources.len() > FAN_IN_MAX {
        let mut chunks = Vec::with_capacity(sources.len().div_ceil(FAN_IN_MAX));
        let mut rest = sources.into_iter().peekable();
        while rest.peek().is_some() {
            let chunk: Vec<Src<T>> = rest.by_ref().take(FAN_IN_MAX).collect();
            chunks.push(merge_within_fan_in(chunk, order));
        }
        sources = chunks;
    }
    merge_within_fan_in(sources, order)
}

/// One source where a merge would have been: its items, until and including its first error.
struct EndAtError<T> {
    source: Src<T>,
    done: bool,
}

impl<T> Iterator for EndAtError<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        if self.done {
            return None;
        }
        let item = self.source.next();
        self.done = !matches!(item, Some(Ok(_)));
        item
    }
}

fn merge_within_fan_in<T, O>(sources: Vec<Src<T>>, order: O) -> Src<T>
where
    T: Send + 'static,
    O: Order<T> + Send + 'static,
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

/// The highest version a `versions` end bound admits at or below `cap`; `None` if none does.
fn version_max(end: Bound<Version>, cap: Version) -> Option<Version> {
    match end {
        Bound::Included(version) => Some(version.min(cap)),
        Bound::Excluded(version) => version.get().checked_sub(1).map(|v| Version::new(v).min(cap)),
        Bound::Unbounded => Some(cap),
    }
}

/// Whether the segment of `meta` can hold a version from `version_min` up to `version_max`.
fn overlaps(meta: &SegmentMeta, version_min: Bound<Version>, version_max: Version) -> bool {
    let above_min = match version_min {
        Bound::Included(min) => meta.version_max >= min,
        Bound::Excluded(min) => meta.version_max > min,
        Bound::Unbounded => true,
    };
    above_min && meta.version_min <= version_max
}

/// Key order reversed: key descending, then version descending (newest first), so that the
/// first item of each key in a reverse merge is still its newest version.
#[derive(Clone, Copy, Debug)]
struct KeyOrderRev;

impl<T: Keyed> Order<T> for KeyOrderRev {
    fn cmp(&self, a: &T, b: &T) -> Ordering {
        cmp_keys(b.key(), a.key()).then_with(|| b.version().cmp(&a.version()))
    }
}

/// A key range with owned bounds, so that iterators can outlive the caller's borrow.
#[derive(Clone, Debug)]
pub(crate) struct OwnedRange {
    pub start: Bound<Box<[u8]>>,
    pub end: Bound<Box<[u8]>>,
}

impl OwnedRange {
    /// The owned form of a `RangeBounds` over byte slices (the transaction API's ranges).
    pub(crate) fn new(keys: &(impl KeyRange + ?Sized)) -> OwnedRange {
        let own = |bound: Bound<&[u8]>| bound.map(Box::<[u8]>::from);
        OwnedRange { start: own(keys.start_key()), end: own(keys.end_key()) }
    }

    fn bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        (self.start.as_ref().map(AsRef::as_ref), self.end.as_ref().map(AsRef::as_ref))
    }
}

/// Entries a memtable walk steps over one link at a time before it seeks past the rest of
/// a key's versions (a key updated thousands of times, as a Zipfian workload's hot keys are,
/// costs one seek rather than a step per version; a key with a few versions, no seek).
const MEMTABLE_STEPS_BEFORE_SEEK: u32 = 8;

/// Newest version per key at or below a version, from one memtable, in key order: one cursor
/// walks the memtable, seeking only past long runs of versions it does not show.
struct MemtableRange<T> {
    memtable: Arc<Memtable>,
    cursor: memtable::Cursor,
    end: Bound<Box<[u8]>>,
    version: Version,
    /// The last key yielded: its older versions are passed over.
    key_last: KeyLast,
    /// Entries passed over since the last one yielded or sought.
    steps_skipped: u32,
    done: bool,
    item: PhantomData<fn() -> T>,
}

impl<T> MemtableRange<T> {
    fn new(memtable: &Arc<Memtable>, keys: &OwnedRange, version: Version) -> MemtableRange<T> {
        let (start, _) = keys.bounds();
        let cursor = memtable.cursor(key_start(start));
        MemtableRange {
            memtable: Arc::clone(memtable),
            cursor,
            end: keys.end.clone(),
            version,
            key_last: KeyLast::default(),
            steps_skipped: 0,
            done: false,
            item: PhantomData,
        }
    }
}

impl<T: RangeItem> Iterator for MemtableRange<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        while !self.done {
            let Some((key, version)) = self.cursor.peek() else {
                self.done = true;
                break;
            };
            if !key_in_end(key, self.end.as_ref().map(AsRef::as_ref)) {
                self.done = true;
                break;
            }
            // Newer than the view, or an older version of the key yielded last: not shown.
            let newer = version > self.version;
            if newer || self.key_last.get() == Some(key) {
                // One step, or after a run of them a seek: to the key's newest version at or
                // below the view (past the newer ones) or past the key (its older ones).
                self.steps_skipped += 1;
                if self.steps_skipped < MEMTABLE_STEPS_BEFORE_SEEK {
                    self.cursor.advance();
                    continue;
                }
                self.steps_skipped = 0;
                let key: Box<[u8]> = key.into();
                let position = if newer {
                    Bound::Included((&key[..], self.version))
                } else {
                    Bound::Excluded((&key[..], Version::ZERO))
                };
                self.cursor.seek(position);
                continue;
            }
            self.key_last.set(key);
            self.steps_skipped = 0;
            let item = T::of_memtable(&self.memtable, self.cursor.peek_entry()?);
            self.cursor.advance();
            return Some(Ok(item));
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

/// Newest version per key at or below a version, from one memtable, in descending key order.
struct MemtableRangeRev<T> {
    memtable: Arc<Memtable>,
    keys: OwnedRange,
    version: Version,
    /// The last key yielded: the walk resumes before all of its versions.
    key_last: Option<MemBytes>,
    done: bool,
    item: PhantomData<fn() -> T>,
}

impl<T> MemtableRangeRev<T> {
    fn new(memtable: Arc<Memtable>, keys: OwnedRange, version: Version) -> MemtableRangeRev<T> {
        let item = PhantomData;
        MemtableRangeRev { memtable, keys, version, key_last: None, done: false, item }
    }
}

impl<T: RangeItem> Iterator for MemtableRangeRev<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        let (start, end) = self.keys.bounds();
        while !self.done {
            // The last (oldest) entry of the previous key. In key order `(key, MAX)` is the
            // first possible entry of a key, so "before it" is the previous key.
            let last = match &self.key_last {
                Some(key) => {
                    self.memtable.prev_before(Bound::Excluded((&key[..], Version::MAX)), start)
                }
                None => self.memtable.prev_before(key_end(end), start),
            };
            let Some(last) = last else {
                self.done = true;
                break;
            };
            let found = self.memtable.get_at(&last.key, self.version);
            self.key_last = Some(last.key);
            if let Some(found) = found {
                let entry = Entry {
                    key: &found.key,
                    version: found.version,
                    value: found.value.as_deref(),
                };
                return Some(Ok(T::of_memtable(&self.memtable, entry)));
            }
        }
        None
    }
}

/// Where a backward key-order walk over a memtable starts, for a key range's end bound.
fn key_end(end: Bound<&[u8]>) -> Bound<(&[u8], Version)> {
    match end {
        Bound::Included(key) => Bound::Included((key, Version::ZERO)),
        Bound::Excluded(key) => Bound::Excluded((key, Version::MAX)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// One key's versions at or below a version, newest first, from one memtable: one seek, then
/// a cursor, so nothing is collected.
struct MemtableHistory {
    cursor: memtable::Cursor,
    key: Box<[u8]>,
    done: bool,
}

impl MemtableHistory {
    fn new(memtable: &Arc<Memtable>, key: &[u8], version: Version) -> MemtableHistory {
        let cursor = memtable.cursor(Bound::Included((key, version)));
        MemtableHistory { cursor, key: key.into(), done: false }
    }
}

impl Iterator for MemtableHistory {
    type Item = Result<KeyVersion>;

    fn next(&mut self) -> Option<Result<KeyVersion>> {
        if self.done {
            return None;
        }
        match self.cursor.next() {
            Some(entry) if entry.key[..] == self.key[..] => {
                Some(Ok(KeyVersion::from_memtable(entry)))
            }
            _ => {
                self.done = true;
                None
            }
        }
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

pub(crate) struct SegmentRange<T>(SegmentRangeCell, PhantomData<fn() -> T>);

impl<T> SegmentRange<T> {
    fn open(segment: &Arc<SegmentFile>, keys: &OwnedRange, version: Version) -> SegmentRange<T> {
        let cell = SegmentRangeCell::new(Arc::clone(segment), |segment| {
            // A key-order walk decodes every version of its keys, newer ones included. The
            // advice first: its first window is on its way while `range_at` binary-searches.
            let zbox = ZBox::covering(&keys.bounds(), &(..));
            let advice = segment.scan_advice(zbox.as_ref(), ScanPurpose::Query);
            Advised::new(segment.indexed_if_built().range_at(keys.bounds(), version), advice)
        });
        SegmentRange(cell, PhantomData)
    }
}

impl<T: RangeItem> Iterator for SegmentRange<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        self.0.with_dependent_mut(|segment, range| {
            range.next().map(|entry| match entry {
                Ok(entry) => Ok(T::of_segment(segment, entry)),
                Err(corruption) => Err(segment_corruption(segment, corruption)),
            })
        })
    }
}

self_cell::self_cell! {
    /// A segment's `range_at` iterator walked from the back, keeping its segment mapped. No
    /// locality advice: the advisor's read-ahead runs forwards.
    struct SegmentRangeRevCell {
        owner: Arc<SegmentFile>,
        #[not_covariant]
        dependent: RangeAt,
    }
}

struct SegmentRangeRev<T>(SegmentRangeRevCell, PhantomData<fn() -> T>);

impl<T> SegmentRangeRev<T> {
    fn open(segment: &Arc<SegmentFile>, keys: &OwnedRange, version: Version) -> SegmentRangeRev<T> {
        let cell = SegmentRangeRevCell::new(Arc::clone(segment), |segment| {
            segment.segment().range_at(keys.bounds(), version)
        });
        SegmentRangeRev(cell, PhantomData)
    }
}

impl<T: RangeItem> Iterator for SegmentRangeRev<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        self.0.with_dependent_mut(|segment, range| {
            range.next_back().map(|entry| match entry {
                Ok(entry) => Ok(T::of_segment(segment, entry)),
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
        dependent: KeyVersions,
    }
}

struct SegmentHistory(SegmentHistoryCell);

impl SegmentHistory {
    fn open(segment: &Arc<SegmentFile>, key: &[u8], version: Version) -> SegmentHistory {
        let cell = SegmentHistoryCell::new(Arc::clone(segment), |segment| {
            segment.segment().history_at(key, version)
        });
        SegmentHistory(cell)
    }
}

impl Iterator for SegmentHistory {
    type Item = Result<KeyVersion>;

    fn next(&mut self) -> Option<Result<KeyVersion>> {
        self.0.with_dependent_mut(|segment, history| {
            history.next().map(|entry| match entry {
                Ok(entry) => Ok(KeyVersion::from_segment(segment, entry)),
                Err(corruption) => Err(segment_corruption(segment, corruption)),
            })
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

/// A segment's `changes` iterator, and the counter its blocks' bytes go to when it ends.
struct SegmentChanges(SegmentChangesCell, Arc<AtomicU64>);

impl SegmentChanges {
    fn open(
        segment: &Arc<SegmentFile>,
        keys: OwnedRange,
        versions: (Bound<Version>, Bound<Version>),
        bytes_read: Arc<AtomicU64>,
    ) -> SegmentChanges {
        let owner = ChangesOwner { segment: Arc::clone(segment), keys };
        let cell = SegmentChangesCell::new(owner, |owner| {
            let zbox = ZBox::covering(&owner.keys.bounds(), &versions);
            let advice = owner.segment.scan_advice(zbox.as_ref(), ScanPurpose::Query);
            Advised::new(owner.segment.segment().changes(owner.keys.bounds(), versions), advice)
        });
        SegmentChanges(cell, bytes_read)
    }
}

impl Drop for SegmentChanges {
    fn drop(&mut self) {
        let bytes = self.0.with_dependent(|_, changes| changes.inner().stats().blocks.bytes_read);
        self.1.fetch_add(bytes, atomic::Ordering::Relaxed);
    }
}

impl Iterator for SegmentChanges {
    type Item = Result<KeyVersion>;

    fn next(&mut self) -> Option<Result<KeyVersion>> {
        self.0.with_dependent_mut(|owner, changes| {
            changes.next().map(|entry| match entry {
                Ok(entry) => Ok(KeyVersion::from_segment(&owner.segment, entry)),
                Err(corruption) => Err(segment_corruption(&owner.segment, corruption)),
            })
        })
    }
}

/// One current level's segments that meet a range, read one after the other (each opened
/// when the one before it is done), in key order or, `reverse`, in descending key order.
struct LevelRange<T> {
    segments: std::vec::IntoIter<Arc<SegmentFile>>,
    keys: OwnedRange,
    version: Version,
    reverse: bool,
    open: Option<Src<T>>,
}

impl<T> LevelRange<T> {
    /// `segments` in the order to read them.
    fn new(
        segments: Vec<Arc<SegmentFile>>,
        keys: OwnedRange,
        version: Version,
        reverse: bool,
    ) -> LevelRange<T> {
        LevelRange { segments: segments.into_iter(), keys, version, reverse, open: None }
    }
}

impl<T: RangeItem> Iterator for LevelRange<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        loop {
            if let Some(item) = self.open.as_mut().and_then(Iterator::next) {
                return Some(item);
            }
            let segment = self.segments.next()?;
            self.open = Some(if self.reverse {
                Box::new(SegmentRangeRev::<T>::open(&segment, &self.keys, self.version))
            } else {
                Box::new(SegmentRange::<T>::open(&segment, &self.keys, self.version))
            });
        }
    }
}

/// A range read from its one source ([`ReadView::single_source`]): the segments one after the
/// other, each key's newest version at the view's version yielded as it comes (a level holds
/// one version per key and its segments are disjoint, so no key repeats), tombstones passed
/// over: no merge, no check against the key before, no boxed source.
pub(crate) struct DirectRange<T> {
    segments: std::vec::IntoIter<Arc<SegmentFile>>,
    keys: OwnedRange,
    version: Version,
    open: Option<SegmentRange<T>>,
    done: bool,
    /// Holds every segment the items point into.
    view: ReadView,
}

impl<T: RangeItem> DirectRange<T> {
    /// `segments`, the view's single source for `keys`, in key order.
    pub(crate) fn new(
        view: &ReadView,
        segments: Vec<Arc<SegmentFile>>,
        keys: OwnedRange,
    ) -> DirectRange<T> {
        let segments = segments.into_iter();
        let version = view.version;
        DirectRange { segments, keys, version, open: None, done: false, view: view.clone() }
    }

    /// The next live item in key order; nothing more after an error.
    pub(crate) fn next_live(&mut self) -> Option<Result<T>> {
        while !self.done {
            let Some(open) = &mut self.open else {
                let segment = self.segments.next()?;
                self.open = Some(SegmentRange::open(&segment, &self.keys, self.version));
                continue;
            };
            match open.next() {
                Some(Ok(item)) if item.is_live() => return Some(Ok(item)),
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    self.done = true;
                    return Some(Err(error));
                }
                None => self.open = None,
            }
        }
        None
    }

    /// The range's keys.
    pub(crate) fn keys(&self) -> &OwnedRange {
        &self.keys
    }

    /// The view it reads.
    pub(crate) fn view(&self) -> &ReadView {
        &self.view
    }
}

self_cell::self_cell! {
    /// A history segment's `range_at` iterator, keeping its segment mapped.
    struct HistoryRangeCell {
        owner: Arc<HistoryFile>,
        #[not_covariant]
        dependent: HistoryRangeAt,
    }
}

/// A history segment's keys in a range at a version, either way.
struct HistoryRange<T> {
    cell: HistoryRangeCell,
    reverse: bool,
    item: PhantomData<fn() -> T>,
}

impl<T> HistoryRange<T> {
    fn open(
        segment: &Arc<HistoryFile>,
        keys: &OwnedRange,
        version: Version,
        reverse: bool,
    ) -> HistoryRange<T> {
        segment.count_read();
        let cell = HistoryRangeCell::new(Arc::clone(segment), |segment| {
            segment.segment().range_at(keys.bounds(), version)
        });
        HistoryRange { cell, reverse, item: PhantomData }
    }
}

impl<T: RangeItem> Iterator for HistoryRange<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        let reverse = self.reverse;
        self.cell.with_dependent_mut(|segment, range| {
            let entry = if reverse { range.next_back() } else { range.next() };
            entry.map(|entry| match entry {
                Ok(entry) => Ok(T::of_segment(segment, entry)),
                Err(corruption) => Err(Error::corruption(segment.path(), 0, corruption)),
            })
        })
    }
}

self_cell::self_cell! {
    /// A history segment's versions of one key, keeping its segment mapped.
    struct HistoryVersionsCell {
        owner: Arc<HistoryFile>,
        #[not_covariant]
        dependent: HistoryIter,
    }
}

/// A history segment's versions of one key at or below a version, newest first.
struct HistoryVersions(HistoryVersionsCell);

impl HistoryVersions {
    fn open(segment: &Arc<HistoryFile>, key: &[u8], version: Version) -> HistoryVersions {
        segment.count_read();
        HistoryVersions(HistoryVersionsCell::new(Arc::clone(segment), |segment| {
            segment.segment().history_at(key, version)
        }))
    }
}

impl Iterator for HistoryVersions {
    type Item = Result<KeyVersion>;

    fn next(&mut self) -> Option<Result<KeyVersion>> {
        self.0.with_dependent_mut(|segment, versions| {
            versions.next().map(|entry| match entry {
                Ok(entry) => Ok(KeyVersion::from_segment(segment, entry)),
                Err(corruption) => Err(Error::corruption(segment.path(), 0, corruption)),
            })
        })
    }
}

self_cell::self_cell! {
    /// A history segment's `changes` iterator, keeping its segment mapped.
    struct HistoryChangesCell {
        owner: Arc<HistoryFile>,
        #[covariant]
        dependent: HistoryChanges,
    }
}

/// A history segment's entries in a box, in the segment's own (rank-space Z) order, streamed.
/// With the counter its blocks' bytes go to when it ends.
struct HistoryChangesOf(HistoryChangesCell, Arc<AtomicU64>);

impl HistoryChangesOf {
    fn open(
        segment: Arc<HistoryFile>,
        keys: &OwnedRange,
        versions: (Bound<Version>, Bound<Version>),
        bytes_read: Arc<AtomicU64>,
    ) -> HistoryChangesOf {
        segment.count_read();
        let cell = HistoryChangesCell::new(segment, |segment| {
            segment.segment().changes(keys.bounds(), versions)
        });
        HistoryChangesOf(cell, bytes_read)
    }
}

impl Drop for HistoryChangesOf {
    fn drop(&mut self) {
        let bytes = self.0.with_dependent(|_, changes| changes.stats().bytes_read);
        self.1.fetch_add(bytes, atomic::Ordering::Relaxed);
    }
}

impl Iterator for HistoryChangesOf {
    type Item = Result<KeyVersion>;

    fn next(&mut self) -> Option<Result<KeyVersion>> {
        self.0.with_dependent_mut(|segment, changes| {
            changes.next().map(|entry| match entry {
                Ok(entry) => Ok(KeyVersion::from_segment(segment, entry)),
                Err(corruption) => Err(Error::corruption(segment.path(), 0, corruption)),
            })
        })
    }
}

/// A memtable's entries in a key range and a version range, collected (memtables are bounded
/// by `memtable_bytes_max`, so collecting them is bounded too).
fn memtable_changes(
    memtable: &Arc<Memtable>,
    keys: &OwnedRange,
    versions: (Bound<Version>, Bound<Version>),
) -> Vec<KeyVersion> {
    let (start, end) = keys.bounds();
    let mut found = Vec::new();
    walk_memtable(memtable, key_start(start), end, |entry| {
        if versions.contains(&entry.version) {
            found.push(KeyVersion::from_memtable(entry));
        }
    });
    found
}

/// The iterator `range`, `range_at`, `prefix` and `prefix_at` return: `(key, value)` in key
/// order, or in descending key order from the back (`.rev()`, `next_back`, `last`). The two
/// ends can be mixed; they meet without repeating a key.
pub struct Range(Reader<KeyVersion>);

/// How a range is read, over items `T`: forwards from its one source with no merge
/// ([`DirectRange`]) until the first step from the back, or through both ends' merges
/// ([`Ends`]). What [`Range`] and [`crate::Scan`] read. After an error, nothing more, from
/// either end.
pub(crate) struct Reader<T: RangeItem> {
    mode: Mode<T>,
    failed: bool,
}

enum Mode<T: RangeItem> {
    Direct {
        range: DirectRange<T>,
        /// The last key `next_front` yielded.
        key_last: T::KeyLast,
    },
    Ends(Ends<T>),
}

impl<T: RangeItem> Reader<T> {
    /// A reader of `keys` at `view`'s version.
    pub(crate) fn new(view: &ReadView, keys: OwnedRange) -> Reader<T> {
        let mode = match view.single_source(&keys) {
            Some(segments) => {
                let range = DirectRange::new(view, segments, keys);
                Mode::Direct { range, key_last: T::KeyLast::default() }
            }
            None => Mode::Ends(view.ends(keys)),
        };
        Reader { mode, failed: false }
    }

    /// The next live item in key order.
    pub(crate) fn next_front(&mut self) -> Option<Result<T>> {
        if self.failed {
            return None;
        }
        let item = match &mut self.mode {
            Mode::Direct { range, key_last } => {
                let item = range.next_live();
                if let Some(Ok(item)) = &item {
                    item.remember(key_last);
                }
                item
            }
            Mode::Ends(ends) => ends.next_front(),
        }?;
        self.failed = item.is_err();
        Some(item)
    }

    /// The next live item in descending key order. The first one after a direct read switches
    /// to both ends' merges over the keys after the last one read.
    pub(crate) fn next_back(&mut self) -> Option<Result<T>> {
        if self.failed {
            return None;
        }
        if let Mode::Direct { range, key_last } = &self.mode {
            let mut keys = range.keys().clone();
            if let Some(key) = T::last_key(key_last) {
                keys.start = Bound::Excluded(key.into());
            }
            self.mode = Mode::Ends(range.view().ends(keys));
        }
        let Mode::Ends(ends) = &mut self.mode else { unreachable!("set just above") };
        let item = ends.next_back()?;
        self.failed = item.is_err();
        Some(item)
    }
}

impl<T: RangeItem> std::fmt::Debug for Reader<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = f.debug_struct("Reader");
        match &self.mode {
            Mode::Direct { key_last, .. } => out.field("direct_key_last", key_last),
            Mode::Ends(ends) => out.field("ends", ends),
        };
        out.field("failed", &self.failed).finish()
    }
}

/// The two ends of a range, over items `T`: what [`Range`] and [`crate::Scan`] read. Each
/// yields each key's newest live version at the view's version, once.
pub(crate) struct Ends<T: RangeItem> {
    /// The forward merge, set up by the first `next`.
    front: Option<Src<T>>,
    /// The last key read from the front, deleted or not.
    key_last: T::KeyLast,
    /// The reverse merge, set up by the first `next_back`.
    back: Option<Src<T>>,
    /// The last key read from the back, deleted or not.
    key_last_back: T::KeyLast,
    keys: OwnedRange,
    /// The ends met.
    done: bool,
    /// Holds every tier the items point into.
    view: ReadView,
}

impl<T: RangeItem> Ends<T> {
    /// Takes `item` as the next key from one end, unless it repeats `key_last` (an older
    /// version of the key just read) or reached `key_other`, the other end's last key.
    fn take(
        item: T,
        key_last: &mut T::KeyLast,
        key_other: Option<&[u8]>,
        reached: impl Fn(&[u8], &[u8]) -> bool,
    ) -> Step<T> {
        // The first item of a key is its newest version across tiers; the rest are older.
        if T::last_key(key_last).is_some_and(|last| same_key(last, item.key())) {
            return Step::Skip;
        }
        if key_other.is_some_and(|other| reached(item.key(), other)) {
            return Step::Met;
        }
        item.remember(key_last);
        if item.is_live() { Step::Yield(item) } else { Step::Skip }
    }

    /// The next live item in key order.
    pub(crate) fn next_front(&mut self) -> Option<Result<T>> {
        let front = self.front.get_or_insert_with(|| self.view.range_fwd(&self.keys));
        while !self.done {
            let item = match front.next()? {
                Ok(item) => item,
                Err(error) => {
                    self.done = true; // Neither end reads past a damaged source.
                    return Some(Err(error));
                }
            };
            let other = T::last_key(&self.key_last_back);
            match Ends::take(item, &mut self.key_last, other, |key, back| key >= back) {
                Step::Skip => {}
                Step::Met => self.done = true,
                Step::Yield(item) => return Some(Ok(item)),
            }
        }
        None
    }

    /// The next live item in descending key order.
    pub(crate) fn next_back(&mut self) -> Option<Result<T>> {
        let back = self.back.get_or_insert_with(|| self.view.range_rev(&self.keys));
        while !self.done {
            let item = match back.next()? {
                Ok(item) => item,
                Err(error) => {
                    self.done = true;
                    return Some(Err(error));
                }
            };
            let other = T::last_key(&self.key_last);
            match Ends::take(item, &mut self.key_last_back, other, |key, front| key <= front) {
                Step::Skip => {}
                Step::Met => self.done = true,
                Step::Yield(item) => return Some(Ok(item)),
            }
        }
        None
    }
}

impl<T: RangeItem> std::fmt::Debug for Ends<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ends")
            .field("key_last", &self.key_last)
            .field("key_last_back", &self.key_last_back)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// The last key one end of a [`Range`] read: a copy in a buffer the end reuses, so that
/// remembering a key costs a copy of its bytes, not a reference count taken and given back
/// per item.
#[derive(Debug, Default)]
pub(crate) struct KeyLast {
    bytes: Vec<u8>,
    is_set: bool,
}

impl KeyLast {
    fn get(&self) -> Option<&[u8]> {
        self.is_set.then_some(&self.bytes[..])
    }

    fn set(&mut self, key: &[u8]) {
        self.bytes.clear();
        self.bytes.extend_from_slice(key);
        self.is_set = true;
    }
}

/// What one item of a merge means to an end of a range.
enum Step<T> {
    Skip,
    Met,
    Yield(T),
}

/// A live version as `Range` yields it.
fn key_value(item: KeyVersion) -> (Slice, Slice) {
    let value = item.value.expect("an end yields live versions only");
    (item.key, value)
}

impl Iterator for Range {
    type Item = Result<(Slice, Slice)>;

    fn next(&mut self) -> Option<Result<(Slice, Slice)>> {
        Some(self.0.next_front()?.map(key_value))
    }
}

impl DoubleEndedIterator for Range {
    fn next_back(&mut self) -> Option<Result<(Slice, Slice)>> {
        Some(self.0.next_back()?.map(key_value))
    }
}

impl std::fmt::Debug for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Range").field(&self.0).finish()
    }
}

/// The iterator `history` and `history_range` return: a key's versions, newest first, as
/// `(version, value)` with `None` for a delete. Lazy: it reads a version when asked for one,
/// so `.take(n)` reads about `n`, whatever the length of the history.
pub struct History {
    merged: Source,
    /// Versions below this bound end the walk.
    version_min: Bound<Version>,
}

impl Iterator for History {
    type Item = Result<(Version, Option<Slice>)>;

    fn next(&mut self) -> Option<Result<(Version, Option<Slice>)>> {
        let change = match self.merged.next()? {
            Ok(change) => change,
            Err(error) => return Some(Err(error)),
        };
        let above = match self.version_min {
            Bound::Included(min) => change.version >= min,
            Bound::Excluded(min) => change.version > min,
            Bound::Unbounded => true,
        };
        if !above {
            self.merged = Box::new(std::iter::empty());
            return None;
        }
        Some(Ok((change.version, change.value)))
    }
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History").field("version_min", &self.version_min).finish_non_exhaustive()
    }
}

/// The iterator `Db::changes` returns: every version written to the keys in the window,
/// each exactly once, tier by tier (memtables, then the newest segments, the current levels and
/// history), each tier in its own order: no order across the whole answer is promised. Tiers
/// are opened as the iterator reaches them, so it holds one tier's reader at a time.
pub struct Changes {
    merged: Source,
    _view: ReadView,
}

impl Iterator for Changes {
    type Item = Result<Change>;

    fn next(&mut self) -> Option<Result<Change>> {
        let KeyVersion { key, version, value, .. } = match self.merged.next()? {
            Ok(found) => found,
            Err(error) => return Some(Err(error)),
        };
        Some(Ok(Change { key, version, value }))
    }
}

impl std::fmt::Debug for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changes").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use zverse_core::merge::KeyOrder;

    use super::*;

    fn item(key: &[u8], version: u64) -> KeyVersion {
        KeyVersion { key: Slice::from(key), version: Version::new(version), value: None }
    }

    /// Every key of up to 9 bytes over {0x00, 0x01, 0xff}, in lengths that straddle the 8-byte
    /// prefix: zero bytes and short keys are where a zero-padded prefix could go wrong.
    fn keys() -> Vec<Vec<u8>> {
        let mut keys = vec![Vec::new()];
        let mut last = vec![Vec::new()];
        for _ in 0..9 {
            last = last
                .iter()
                .flat_map(|key: &Vec<u8>| {
                    [0x00, 0x01, 0xff].map(|byte| [&key[..], &[byte]].concat())
                })
                .collect();
            keys.extend(last.iter().filter(|key| key.len() >= 6).cloned());
        }
        keys
    }

    #[test]
    fn prefix_orders_agree_with_key_order() {
        let keys = keys();
        let items: Vec<KeyVersion> = keys.iter().map(|key| item(key, 7)).collect();
        let mut reference: Vec<&KeyVersion> = items.iter().collect();
        reference.sort_by(|a, b| Order::cmp(&KeyOrder, a, b));
        let mut sorted: Vec<&KeyVersion> = items.iter().collect();
        sorted.sort_by(|a, b| KeyVersionOrder.cmp(a, b));
        let bytes =
            |items: &[&KeyVersion]| items.iter().map(|i| i.key.to_vec()).collect::<Vec<_>>();
        assert_eq!(bytes(&sorted), bytes(&reference));
        sorted.sort_by(|a, b| KeyOrderRev.cmp(a, b));
        reference.reverse();
        assert_eq!(bytes(&sorted), bytes(&reference));
    }

    #[test]
    fn prefix_orders_put_newer_versions_first() {
        for key in [&b""[..], b"\0", b"12345678", b"123456789"] {
            let (newer, older) = (item(key, 9), item(key, 3));
            assert_eq!(KeyVersionOrder.cmp(&newer, &older), Ordering::Less);
            assert_eq!(KeyOrderRev.cmp(&newer, &older), Ordering::Less);
        }
    }

    #[test]
    fn one_source_ends_at_its_first_error_as_a_merge_does() {
        let error = || Error::Corruption { file: "x".into(), offset: 0, what: "test".into() };
        let items = vec![Ok(item(b"a", 1)), Err(error()), Ok(item(b"b", 1))];
        let source: Source = Box::new(items.into_iter());
        let got: Vec<bool> = merge(vec![source], KeyVersionOrder).map(|i| i.is_ok()).collect();
        assert_eq!(got, [true, false], "the item after the error is not read");
        assert_eq!(merge(Vec::<Source>::new(), KeyVersionOrder).count(), 0);
    }
}
