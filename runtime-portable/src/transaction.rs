//! [`Transaction`]: optimistic transactions at snapshot isolation or serializable, with the
//! operations SurrealDB's key-value layer uses (`docs/surrealdb.md` maps them one by one).
//!
//! A transaction reads at its start version (a pinned [`Snapshot`]) plus its own writes, which
//! it buffers in a write set. `commit` sends the write set as one batch record through the
//! group commit with a [`ConflictCheck`]; the commit leader runs the check just before it
//! assigns the record's version, when every earlier group is in the memtable and the earlier
//! records of the same group are in the group's frame, and refuses the record with
//! [`Error::Conflict`] if anything it covers was written after the start. Validation and
//! version assignment are therefore one step: no write, from a transaction or from a plain
//! `put`, can slip between them.
//!
//! - [`Isolation::Snapshot`] checks the write set (first committer wins).
//! - [`Isolation::Serializable`] also checks the read set (point reads) and the scanned ranges
//!   (so a phantom insert conflicts too): backward validation, so the committed transactions
//!   are equivalent to running them one by one in commit order.
//!
//! The read set and scanned ranges live in the transaction until it commits or is dropped,
//! and cost their key bytes; with the write set they are bounded by
//! `Options::transaction_bytes_max` (an operation that would pass it fails with
//! [`Error::TransactionTooLarge`] and closes the transaction).

use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::fmt;
use std::iter::Peekable;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use zverse_core::record::{self, BatchBuilder};
use zverse_core::{Version, limits};

use crate::db::Db;
use crate::error::{Error, Result};
use crate::inner::Inner;
use crate::key_range::KeyRange;
use crate::options::Retention;
use crate::read::{OwnedRange, Range, ReadView};
use crate::slice::Slice;
use crate::snapshot::{Snapshot, exact_view, get_exact};

/// How `Db::update` retries: at most this many attempts, each lost to a write committed
/// between its read and its commit. Every lost attempt means another writer committed, so the
/// database makes progress; the bound only keeps one caller from waiting forever.
pub const UPDATE_ATTEMPTS_MAX: u32 = 1024;

/// The longest pause between two attempts of [`Db::update`], in microseconds.
const BACK_OFF_MICROS_MAX: u64 = 1_000;

/// The pause after lost attempt number `attempt` (from 0) of [`Db::update`]: a yield for the
/// first, then sleeps doubling from 2 µs up to [`BACK_OFF_MICROS_MAX`].
fn back_off(attempt: u32) {
    if attempt == 0 {
        std::thread::yield_now();
        return;
    }
    let micros = 1u64.checked_shl(attempt).unwrap_or(u64::MAX).min(BACK_OFF_MICROS_MAX);
    std::thread::sleep(std::time::Duration::from_micros(micros));
}

/// Keys `Transaction::delr` reads at a time, so that its memory is the write set's alone.
const DELR_CHUNK_LEN: usize = 1024;

/// What a transaction validates at commit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Isolation {
    /// Reads see the start snapshot; commit fails if another transaction committed a write to
    /// a key this one writes after it started (first committer wins). Write skew is possible.
    #[default]
    Snapshot,
    /// Snapshot isolation plus: commit fails if a key this one read, or a key in a range it
    /// scanned, was written after it started. Serializable in commit order.
    Serializable,
}

/// Why a commit was refused. Nothing of the transaction was written.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Conflict {
    /// `key` was written after the transaction started: at `version`, or (`None`) by a write
    /// ahead of it in the same commit group.
    Key {
        /// The key.
        key: Vec<u8>,
        /// The version of the newer write, when it already had one.
        version: Option<Version>,
    },
    /// `key`, in a range the transaction scanned, was written after it started.
    Range {
        /// The scanned range's start.
        start: Bound<Vec<u8>>,
        /// The scanned range's end.
        end: Bound<Vec<u8>>,
        /// The key written in it.
        key: Vec<u8>,
        /// The version of that write, when it already had one.
        version: Option<Version>,
    },
    /// The transaction started before the retention horizon: the versions that would show a
    /// conflict may be gone, so it cannot be validated.
    Expired {
        /// The transaction's start version.
        start: Version,
        /// The retention horizon at commit.
        horizon: Version,
    },
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Conflict::Key { key, .. } => {
                write!(f, "key {} was written after the start", key.escape_ascii())
            }
            Conflict::Range { key, .. } => write!(
                f,
                "key {} in a scanned range was written after the start",
                key.escape_ascii()
            ),
            Conflict::Expired { start, horizon } => {
                write!(f, "start version {start} is below the retention horizon {horizon}")
            }
        }
    }
}

/// What the commit leader checks before it gives a transaction's record its version: nothing
/// in `keys` or `ranges` was written after `start`.
#[derive(Debug)]
pub(crate) struct ConflictCheck {
    start: Version,
    /// Sorted, no duplicates.
    keys: Vec<Arc<[u8]>>,
    ranges: Vec<OwnedRange>,
}

impl ConflictCheck {
    /// The check of `Db::update` and `Db::compare_and_swap`: `key` unchanged since `start`.
    fn key(start: Version, key: &[u8]) -> ConflictCheck {
        ConflictCheck { start, keys: vec![Arc::from(key)], ranges: Vec::new() }
    }

    /// The conflict a write of `key` ahead of this one in its commit group makes, if any.
    fn touched_by(&self, key: &[u8]) -> Option<Conflict> {
        if self.keys.binary_search_by(|k| (**k).cmp(key)).is_ok() {
            return Some(Conflict::Key { key: key.to_vec(), version: None });
        }
        let range = self.ranges.iter().find(|range| range_contains(range, key))?;
        Some(range_conflict(range, key, None))
    }
}

fn range_contains(range: &OwnedRange, key: &[u8]) -> bool {
    let bounds: (Bound<&[u8]>, Bound<&[u8]>) = (bound_ref(&range.start), bound_ref(&range.end));
    bounds.contains(key)
}

fn bound_ref(bound: &Bound<Box<[u8]>>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(key) => Bound::Included(key),
        Bound::Excluded(key) => Bound::Excluded(key),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Whether `BTreeMap::range` would refuse the bounds (it panics on them): start above end, or
/// both excluded and equal. Such a range holds no key.
fn is_inverted((start, end): (Bound<&[u8]>, Bound<&[u8]>)) -> bool {
    match (start, end) {
        (Bound::Excluded(s), Bound::Excluded(e)) => s >= e,
        (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) => s > e,
        _ => false,
    }
}

fn bound_vec(bound: &Bound<Box<[u8]>>) -> Bound<Vec<u8>> {
    bound_ref(bound).map(<[u8]>::to_vec)
}

fn bound_len(bound: &Bound<Box<[u8]>>) -> u64 {
    match bound {
        Bound::Included(key) | Bound::Excluded(key) => key.len() as u64,
        Bound::Unbounded => 0,
    }
}

fn range_conflict(range: &OwnedRange, key: &[u8], version: Option<Version>) -> Conflict {
    Conflict::Range {
        start: bound_vec(&range.start),
        end: bound_vec(&range.end),
        key: key.to_vec(),
        version,
    }
}

/// Buckets of [`RecentWrites`]: 32 KiB, whatever the database holds.
const RECENT_WRITE_BUCKET_COUNT: usize = 4096;

/// The newest version written to each bucket of keys (by a hash) since the database opened:
/// the commit leader records every applied write, and [`Inner::validate`] skips the read of a
/// checked key whose bucket holds nothing above the transaction's start (no write of the key
/// can be newer). A bucket above the start (the key, or another key of its bucket, was
/// written) falls back to the read. Only the leader writes or reads it, so `Relaxed`.
///
/// Writes before the open are all at or below the watermark at open, which every
/// transaction's start is at or above: an empty bucket (0) is exact.
#[derive(Debug)]
pub(crate) struct RecentWrites {
    buckets: Box<[AtomicU64]>,
}

impl Default for RecentWrites {
    fn default() -> RecentWrites {
        RecentWrites {
            buckets: (0..RECENT_WRITE_BUCKET_COUNT).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl RecentWrites {
    fn bucket(&self, key: &[u8]) -> &AtomicU64 {
        // The hash's low bits choose the bucket; the count is a power of two.
        let hash = zverse_core::checksum::checksum_with_seed(key, RECENT_WRITES_SEED);
        &self.buckets[(hash as usize) & (RECENT_WRITE_BUCKET_COUNT - 1)]
    }

    /// Records a write of `key` at `version` (the leader applies versions in ascending order).
    pub(crate) fn record(&self, key: &[u8], version: Version) {
        self.bucket(key).store(version.get(), Ordering::Relaxed);
    }

    /// Whether `key` may have been written after `start`.
    fn maybe_after(&self, key: &[u8], start: Version) -> bool {
        self.bucket(key).load(Ordering::Relaxed) > start.get()
    }
}

/// The seed of [`RecentWrites`]' hash (any constant: the buckets are not persisted).
const RECENT_WRITES_SEED: u64 = 0x7265_6365_6e74;

impl Inner {
    /// Runs `check` in the commit leader, before the version of the record it guards is
    /// assigned. `frame` holds the records of the same group accepted so far, at `starts`.
    pub(crate) fn validate(
        &self,
        check: &ConflictCheck,
        frame: &[u8],
        starts: &[usize],
    ) -> Result<()> {
        self.check_retention(check.start)?;
        for &start in starts {
            let bytes = frame.get(start..).expect("a record start lies inside its frame");
            let (record, _) =
                record::decode_from(bytes).expect("a record this database encoded decodes");
            if let Some(conflict) = record.entries().find_map(|entry| check.touched_by(entry.key)) {
                return Err(Error::Conflict(conflict));
            }
        }
        // The leader applied every earlier group: the watermark covers all of them.
        let view = ReadView { version: self.visible_version(), tiers: self.state.tiers_ref() };
        for key in &check.keys {
            if !self.recent_writes.maybe_after(key, check.start) {
                continue;
            }
            if let Some(newest) = view.get_entry(key)?
                && newest.version > check.start
            {
                let conflict = Conflict::Key { key: key.to_vec(), version: Some(newest.version) };
                return Err(Error::Conflict(conflict));
            }
        }
        let after_start = (Bound::Excluded(check.start), Bound::Unbounded);
        for range in &check.ranges {
            if let Some(change) = view.changes(range, after_start).next() {
                let change = change?;
                let conflict = range_conflict(range, &change.key, Some(change.version));
                return Err(Error::Conflict(conflict));
            }
        }
        Ok(())
    }

    /// Refuses a check whose start lies below the retention horizon: compaction may have
    /// dropped the writes that would conflict with it.
    fn check_retention(&self, start: Version) -> Result<()> {
        let Retention::Duration(age) = self.options.retention else { return Ok(()) };
        let horizon = SystemTime::now().checked_sub(age).unwrap_or(SystemTime::UNIX_EPOCH);
        let horizon = Version::from_system_time(horizon);
        if start < horizon {
            return Err(Error::Conflict(Conflict::Expired { start, horizon }));
        }
        Ok(())
    }
}

/// A write in the write set: the value, or `None` for a delete.
type Write = Option<Arc<[u8]>>;

/// An optimistic transaction: reads at its start snapshot plus its own writes, commits its
/// writes as one batch at one version, or fails with [`Error::Conflict`] and writes nothing.
///
/// Reads take an optional version: `Some(v)` reads the database as of `v` (committed data
/// only, neither the transaction's own writes nor tracked for conflicts: history at or below
/// the watermark never changes). Dropping a transaction cancels it.
///
/// ```
/// # fn main() -> zverse::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// use zverse::{Db, Isolation, Options};
///
/// let db = Db::open(dir.path(), Options::default())?;
/// db.put(b"counter", b"41")?;
/// let mut tx = db.transaction_with(Isolation::Serializable);
/// let current = tx.get(b"counter", None)?.expect("written above");
/// let next = std::str::from_utf8(&current).unwrap().parse::<u64>().unwrap() + 1;
/// tx.set(b"counter", next.to_string().as_bytes())?;
/// assert_eq!(tx.get(b"counter", None)?.as_deref(), Some(&b"42"[..])); // its own write
/// assert_eq!(db.get(b"counter")?.as_deref(), Some(&b"41"[..])); // not yet committed
/// tx.commit()?;
/// assert_eq!(db.get(b"counter")?.as_deref(), Some(&b"42"[..]));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Transaction<'db> {
    db: &'db Db,
    snapshot: Snapshot,
    isolation: Isolation,
    writeable: bool,
    closed: bool,
    version_wanted: Option<Version>,
    writes: BTreeMap<Arc<[u8]>, Write>,
    /// Point reads answered from the snapshot (`Serializable` only).
    reads: BTreeSet<Arc<[u8]>>,
    /// Ranges read from the snapshot (`Serializable` only).
    scans: Vec<OwnedRange>,
    /// Bytes of `writes`, `reads` and `scans` added so far.
    tracked_bytes: u64,
    /// Per write since the oldest live savepoint: the key and its previous entry.
    undo: Vec<(Arc<[u8]>, Option<Write>)>,
    /// Each savepoint's position in `undo`, oldest first.
    savepoints: Vec<usize>,
}

/// [`Db::get_versioned`].
pub(crate) fn get_versioned(
    inner: &Arc<Inner>,
    key: &[u8],
) -> Result<Option<(Version, Option<Slice>)>> {
    let view = ReadView::new(inner, Version::MAX)?;
    Ok(view.get_entry(key)?.map(|change| (change.version, change.value)))
}

/// [`Db::update`].
pub(crate) fn update(
    inner: &Arc<Inner>,
    key: &[u8],
    mut f: impl FnMut(Option<&[u8]>) -> Option<Vec<u8>>,
) -> Result<Version> {
    for attempt in 0..UPDATE_ATTEMPTS_MAX {
        let view = ReadView::new(inner, Version::MAX)?;
        let current = view.get_entry(key)?.and_then(|change| change.value);
        let next = f(current.as_deref());
        match write_checked(inner, key, next.as_deref(), ConflictCheck::key(view.version, key)) {
            Err(Error::Conflict(Conflict::Key { .. })) => back_off(attempt),
            outcome => return outcome,
        }
    }
    Err(Error::RetriesExhausted { attempts: UPDATE_ATTEMPTS_MAX })
}

/// [`Db::compare_and_swap`].
pub(crate) fn compare_and_swap(
    inner: &Arc<Inner>,
    key: &[u8],
    expected: Option<Version>,
    new: Option<&[u8]>,
) -> Result<Version> {
    let view = ReadView::new(inner, Version::MAX)?;
    let current = view.get_entry(key)?.map(|change| change.version);
    if current != expected {
        return Err(Error::Conflict(Conflict::Key { key: key.to_vec(), version: current }));
    }
    write_checked(inner, key, new, ConflictCheck::key(view.version, key))
}

fn write_checked(
    inner: &Inner,
    key: &[u8],
    value: Option<&[u8]>,
    check: ConflictCheck,
) -> Result<Version> {
    let user_bytes = (key.len() + value.map_or(0, <[u8]>::len)) as u64;
    inner.commit_checked(user_bytes, None, check, |builder| {
        match value {
            Some(value) => builder.put(key, value)?,
            None => builder.delete(key)?,
        }
        Ok(())
    })
}

impl<'db> Transaction<'db> {
    pub(crate) fn new(db: &'db Db, isolation: Isolation, writes: Writes) -> Transaction<'db> {
        Transaction {
            db,
            snapshot: db.snapshot(),
            isolation,
            writeable: writes == Writes::Allowed,
            closed: false,
            version_wanted: None,
            writes: BTreeMap::new(),
            reads: BTreeSet::new(),
            scans: Vec::new(),
            tracked_bytes: 0,
            undo: Vec::new(),
            savepoints: Vec::new(),
        }
    }

    /// The version the transaction reads at.
    #[must_use]
    pub fn start_version(&self) -> Version {
        self.snapshot.version()
    }

    /// The transaction's isolation level.
    #[must_use]
    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// Whether it was committed or cancelled (every call but these two then fails with
    /// [`Error::TransactionClosed`]).
    #[must_use]
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// Whether it may write (`false` for [`Db::read_transaction`]).
    #[must_use]
    pub fn writeable(&self) -> bool {
        self.writeable
    }

    fn check_open(&self) -> Result<()> {
        if self.closed {
            return Err(Error::TransactionClosed);
        }
        Ok(())
    }

    fn check_writeable(&self) -> Result<()> {
        self.check_open()?;
        if !self.writeable {
            return Err(Error::TransactionReadOnly);
        }
        Ok(())
    }

    /// Counts `bytes` more against `Options::transaction_bytes_max`; past it, closes the
    /// transaction and fails.
    fn track_bytes(&mut self, bytes: u64) -> Result<()> {
        let bytes_max = self.db.inner.options.transaction_bytes_max;
        let total = self.tracked_bytes.saturating_add(bytes);
        if total > bytes_max {
            self.cancel_quietly();
            return Err(Error::TransactionTooLarge { bytes: total, bytes_max });
        }
        self.tracked_bytes = total;
        Ok(())
    }

    fn tracks_reads(&self) -> bool {
        self.writeable && self.isolation == Isolation::Serializable
    }

    fn track_read(&mut self, key: &[u8]) -> Result<()> {
        if self.tracks_reads() && !self.reads.contains(key) {
            self.track_bytes(key.len() as u64)?;
            self.reads.insert(Arc::from(key));
        }
        Ok(())
    }

    fn track_scan(&mut self, range: OwnedRange) -> Result<()> {
        // An inverted range holds no key: nothing to track.
        if self.tracks_reads() && !is_inverted((bound_ref(&range.start), bound_ref(&range.end))) {
            self.track_bytes(bound_len(&range.start) + bound_len(&range.end))?;
            self.scans.push(range);
        }
        Ok(())
    }

    /// The start snapshot, or the database as of `Some(version)`: refused below the retention
    /// horizon, as every read as of a version is (the start is pinned, so always answered).
    fn view(&self, version: Option<Version>) -> Result<ReadView> {
        let start = self.snapshot.version();
        exact_view(&self.db.inner, version.unwrap_or(start))
    }

    /// Whether `key` has a value (see [`Transaction::get`]).
    pub fn exists(&mut self, key: &[u8], version: Option<Version>) -> Result<bool> {
        Ok(self.get(key, version)?.is_some())
    }

    /// The value of `key`: the transaction's own write if it has one, else the start
    /// snapshot's; or, with `Some(version)`, the database's as of `version`.
    pub fn get(&mut self, key: &[u8], version: Option<Version>) -> Result<Option<Slice>> {
        self.check_open()?;
        if let Some(version) = version {
            return get_exact(&self.db.inner, key, version);
        }
        if let Some(own) = self.writes.get(key) {
            return Ok(own.clone().map(Slice::shared));
        }
        self.track_read(key)?;
        self.view(None)?.get(key)
    }

    /// The values of `keys`, in order (see [`Transaction::get`]).
    pub fn getm(&mut self, keys: &[&[u8]], version: Option<Version>) -> Result<Vec<Option<Slice>>> {
        keys.iter().map(|key| self.get(key, version)).collect()
    }

    /// Up to `limit` keys of `keys` with their values, in key order (see
    /// [`Transaction::scan`]).
    pub fn getr(
        &mut self,
        keys: impl KeyRange,
        limit: usize,
        version: Option<Version>,
    ) -> Result<Vec<(Slice, Slice)>> {
        self.scan(keys, limit, version)
    }

    /// Up to `limit` keys of `keys` with their values, ascending: the start snapshot merged
    /// with the transaction's own writes, or the database as of `Some(version)`. Memory
    /// O(`limit`).
    pub fn scan(
        &mut self,
        keys: impl KeyRange,
        limit: usize,
        version: Option<Version>,
    ) -> Result<Vec<(Slice, Slice)>> {
        self.scan_in(OwnedRange::new(&keys), limit, version, ScanDirection::Ascending)
    }

    /// [`Transaction::scan`], descending from the end of `keys`. Reads the range forward and
    /// keeps the last `limit` entries: memory O(`limit`), time O(range).
    pub fn scanr(
        &mut self,
        keys: impl KeyRange,
        limit: usize,
        version: Option<Version>,
    ) -> Result<Vec<(Slice, Slice)>> {
        self.scan_in(OwnedRange::new(&keys), limit, version, ScanDirection::Descending)
    }

    /// The keys of [`Transaction::scan`].
    pub fn keys(
        &mut self,
        keys: impl KeyRange,
        limit: usize,
        version: Option<Version>,
    ) -> Result<Vec<Slice>> {
        Ok(self.scan(keys, limit, version)?.into_iter().map(|(key, _)| key).collect())
    }

    /// The keys of [`Transaction::scanr`].
    pub fn keysr(
        &mut self,
        keys: impl KeyRange,
        limit: usize,
        version: Option<Version>,
    ) -> Result<Vec<Slice>> {
        Ok(self.scanr(keys, limit, version)?.into_iter().map(|(key, _)| key).collect())
    }

    fn scan_in(
        &mut self,
        keys: OwnedRange,
        limit: usize,
        version: Option<Version>,
        order: ScanDirection,
    ) -> Result<Vec<(Slice, Slice)>> {
        self.check_open()?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (found, truncated) = self.read_range(&keys, limit, version, order)?;
        if version.is_none() {
            self.track_scan(scanned_range(keys, &found, truncated, order))?;
        }
        let mut found: Vec<_> = found.into();
        if order == ScanDirection::Descending {
            found.reverse();
        }
        Ok(found)
    }

    /// Up to `limit` live pairs of `keys` (the first ones, or descending the last ones, in
    /// key order), untracked; and whether the limit left any out.
    fn read_range(
        &self,
        keys: &OwnedRange,
        limit: usize,
        version: Option<Version>,
        order: ScanDirection,
    ) -> Result<(VecDeque<(Slice, Slice)>, bool)> {
        let view = self.view(version)?;
        let committed = view.range(keys.clone()).peekable();
        let empty = BTreeMap::new();
        let bounds = (bound_ref(&keys.start), bound_ref(&keys.end));
        let own = if version.is_some() || is_inverted(bounds) { &empty } else { &self.writes };
        let own = own.range::<[u8], _>(bounds);
        collect_limited(&mut Merged { committed, own: own.peekable() }, limit, order)
    }

    /// Every committed version of every key in `keys` up to the start (or `Some(version)`),
    /// key ascending then newest first, as `(key, version, value)` (`None` for a delete): at
    /// most `limit` of them. Memory O(`limit`); time O(versions in the range).
    pub fn scan_all_versions(
        &mut self,
        keys: impl KeyRange,
        limit: usize,
        version: Option<Version>,
    ) -> Result<Vec<(Slice, Version, Option<Slice>)>> {
        self.check_open()?;
        let view = self.view(version)?;
        let mut smallest: BinaryHeap<KeyOrdered> = BinaryHeap::new();
        for change in view.changes(&OwnedRange::new(&keys), (Bound::Unbounded, Bound::Unbounded)) {
            smallest.push(KeyOrdered(change?));
            if smallest.len() > limit {
                smallest.pop();
            }
        }
        let sorted = smallest.into_sorted_vec();
        Ok(sorted.into_iter().map(|KeyOrdered(c)| (c.key, c.version, c.value)).collect())
    }

    /// Writes `value` under `key` (insert or replace).
    pub fn set(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.write(key, Some(value))
    }

    /// Inserts `value` under `key` if the key has no value; else fails with
    /// [`Error::KeyExists`] and changes nothing.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.check_writeable()?;
        if self.get(key, None)?.is_some() {
            return Err(Error::KeyExists { key: key.to_vec() });
        }
        self.write(key, Some(value))
    }

    /// Writes `value` under `key` if its current value is `expected` (`None`: absent); else
    /// fails with [`Error::ConditionNotMet`] and changes nothing.
    pub fn putc(&mut self, key: &[u8], value: &[u8], expected: Option<&[u8]>) -> Result<()> {
        self.check_condition(key, expected)?;
        self.write(key, Some(value))
    }

    /// Deletes `key`.
    pub fn del(&mut self, key: &[u8]) -> Result<()> {
        self.write(key, None)
    }

    /// Deletes `key` if its current value is `expected` (`None`: absent); else fails with
    /// [`Error::ConditionNotMet`] and changes nothing.
    pub fn delc(&mut self, key: &[u8], expected: Option<&[u8]>) -> Result<()> {
        self.check_condition(key, expected)?;
        self.write(key, None)
    }

    /// Deletes every key in `keys` that has a value for this transaction. Under
    /// `Serializable` the range counts as scanned (a concurrent insert into it conflicts).
    pub fn delr(&mut self, keys: impl KeyRange) -> Result<()> {
        self.check_writeable()?;
        let keys = OwnedRange::new(&keys);
        let mut rest = keys.clone();
        loop {
            let (found, more) =
                self.read_range(&rest, DELR_CHUNK_LEN, None, ScanDirection::Ascending)?;
            for (key, _) in &found {
                self.write(key, None)?;
            }
            match found.back() {
                Some((last, _)) if more => rest.start = Bound::Excluded(Box::from(&last[..])),
                _ => break,
            }
        }
        self.track_scan(keys)
    }

    fn check_condition(&mut self, key: &[u8], expected: Option<&[u8]>) -> Result<()> {
        self.check_writeable()?;
        if self.get(key, None)?.as_deref() != expected {
            return Err(Error::ConditionNotMet { key: key.to_vec() });
        }
        Ok(())
    }

    fn write(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        self.check_writeable()?;
        limits::check_key(key)?;
        if let Some(value) = value {
            limits::check_value(value)?;
        }
        self.track_bytes((key.len() + value.map_or(0, <[u8]>::len)) as u64)?;
        let key: Arc<[u8]> = Arc::from(key);
        let previous = self.writes.insert(Arc::clone(&key), value.map(Arc::from));
        if !self.savepoints.is_empty() {
            self.undo.push((key, previous));
        }
        Ok(())
    }

    /// Sets a savepoint: [`Transaction::rollback_to_savepoint`] undoes the writes made after
    /// it. Savepoints nest.
    pub fn set_savepoint(&mut self) -> Result<()> {
        self.check_open()?;
        self.savepoints.push(self.undo.len());
        Ok(())
    }

    /// Undoes every write made since the newest savepoint and removes it. Reads made since
    /// stay tracked (under `Serializable` they may still conflict).
    pub fn rollback_to_savepoint(&mut self) -> Result<()> {
        self.check_open()?;
        let mark = self.savepoints.pop().ok_or(Error::NoSavepoint)?;
        while self.undo.len() > mark {
            let Some((key, previous)) = self.undo.pop() else { break };
            match previous {
                Some(write) => self.writes.insert(key, write),
                None => self.writes.remove(&key),
            };
        }
        if self.savepoints.is_empty() {
            self.undo.clear();
        }
        Ok(())
    }

    /// Removes the newest savepoint, keeping the writes made since it.
    pub fn release_savepoint(&mut self) -> Result<()> {
        self.check_open()?;
        self.savepoints.pop().ok_or(Error::NoSavepoint)?;
        if self.savepoints.is_empty() {
            self.undo.clear();
        }
        Ok(())
    }

    /// Commits the transaction's writes at `version` instead of the clock's next (an HLC
    /// timestamp from elsewhere: a replica, an import). It must be above every version the
    /// database has handed out, or the commit fails with [`Error::VersionNotAfter`].
    pub fn commit_at(&mut self, version: Version) -> Result<Option<Version>> {
        self.version_wanted = Some(version);
        self.commit()
    }

    /// Commits every write at one version and returns it (`None` if the transaction wrote
    /// nothing: then nothing is validated, and it never conflicts). Fails with
    /// [`Error::Conflict`], writing nothing, if validation fails. The transaction is closed
    /// afterwards, whatever the outcome.
    pub fn commit(&mut self) -> Result<Option<Version>> {
        self.check_open()?;
        self.closed = true;
        let writes = std::mem::take(&mut self.writes);
        if writes.is_empty() {
            return Ok(None);
        }
        let user_bytes = writes
            .iter()
            .map(|(key, value)| (key.len() + value.as_deref().map_or(0, <[u8]>::len)) as u64)
            .sum();
        let check = self.conflict_check(writes.keys().cloned());
        let build = |builder: &mut BatchBuilder| {
            for (key, value) in &writes {
                match value {
                    Some(value) => builder.put(key, value)?,
                    None => builder.delete(key)?,
                }
            }
            Ok(())
        };
        self.db.inner.commit_checked(user_bytes, self.version_wanted, check, build).map(Some)
    }

    fn conflict_check(
        &mut self,
        written: impl ExactSizeIterator<Item = Arc<[u8]>>,
    ) -> ConflictCheck {
        let serializable = self.isolation == Isolation::Serializable;
        // One allocation: room for the read set too, which Serializable adds.
        let read_count = if serializable { self.reads.len() } else { 0 };
        let mut keys = Vec::with_capacity(written.len().saturating_add(read_count));
        keys.extend(written);
        if serializable {
            keys.extend(std::mem::take(&mut self.reads));
            keys.sort_unstable();
            keys.dedup();
        }
        let ranges = std::mem::take(&mut self.scans);
        ConflictCheck { start: self.snapshot.version(), keys, ranges }
    }

    /// Discards every write and closes the transaction.
    pub fn cancel(&mut self) -> Result<()> {
        self.check_open()?;
        self.cancel_quietly();
        Ok(())
    }

    fn cancel_quietly(&mut self) {
        self.closed = true;
        self.writes.clear();
        self.reads.clear();
        self.scans.clear();
        self.undo.clear();
        self.savepoints.clear();
    }
}

/// The range a scan read, for the read set: all of `keys`, or, when the limit cut it short,
/// up to the last key returned (ascending) or from it (descending).
fn scanned_range(
    keys: OwnedRange,
    found: &VecDeque<(Slice, Slice)>,
    truncated: bool,
    order: ScanDirection,
) -> OwnedRange {
    let edge = match order {
        ScanDirection::Ascending => found.back(),
        ScanDirection::Descending => found.front(),
    };
    match edge {
        Some((key, _)) if truncated => {
            let edge = Bound::Included(Box::from(&key[..]));
            match order {
                ScanDirection::Ascending => OwnedRange { start: keys.start, end: edge },
                ScanDirection::Descending => OwnedRange { start: edge, end: keys.end },
            }
        }
        _ => keys,
    }
}

/// Up to `limit` live entries of `merged`: the first ones, or descending the last ones.
/// Also whether the limit left any out.
fn collect_limited(
    merged: &mut Merged<'_>,
    limit: usize,
    order: ScanDirection,
) -> Result<(VecDeque<(Slice, Slice)>, bool)> {
    let mut found = VecDeque::new();
    let mut truncated = false;
    while let Some((key, value)) = merged.next_entry()? {
        let Some(value) = value else { continue }; // the transaction deleted it
        if order == ScanDirection::Ascending && found.len() == limit {
            return Ok((found, true));
        }
        found.push_back((key, value));
        if order == ScanDirection::Descending && found.len() > limit {
            found.pop_front();
            truncated = true;
        }
    }
    Ok((found, truncated))
}

/// Which way a transaction's scan returns keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ScanDirection {
    Ascending,
    Descending,
}

/// Whether a transaction may write ([`Db::read_transaction`] refuses writes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Writes {
    Allowed,
    Refused,
}

/// The snapshot's entries merged with the write set's, in key order; the write set wins.
struct Merged<'t> {
    committed: Peekable<Range>,
    own: Peekable<std::collections::btree_map::Range<'t, Arc<[u8]>, Write>>,
}

impl Merged<'_> {
    /// The next key with its value for the transaction (`None`: deleted by it).
    fn next_entry(&mut self) -> Result<Option<(Slice, Option<Slice>)>> {
        let order = match (self.committed.peek(), self.own.peek()) {
            (None, None) => return Ok(None),
            (Some(Err(_)), _) | (Some(Ok(_)), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(Ok((committed, _))), Some((own, _))) => (**committed).cmp(&***own),
        };
        if order.is_le()
            && let Some(item) = self.committed.next()
        {
            let (key, value) = item?;
            if order.is_lt() {
                return Ok(Some((key, Some(value))));
            }
        }
        Ok(self
            .own
            .next()
            .map(|(key, write)| (Slice::shared(Arc::clone(key)), write.clone().map(Slice::shared))))
    }
}

/// A change ordered by key ascending, then version descending (a max-heap of these keeps the
/// smallest by popping the largest).
struct KeyOrdered(crate::read::Change);

impl PartialEq for KeyOrdered {
    fn eq(&self, other: &KeyOrdered) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for KeyOrdered {}

impl PartialOrd for KeyOrdered {
    fn partial_cmp(&self, other: &KeyOrdered) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for KeyOrdered {
    fn cmp(&self, other: &KeyOrdered) -> std::cmp::Ordering {
        (*self.0.key).cmp(&*other.0.key).then(other.0.version.cmp(&self.0.version))
    }
}

#[cfg(all(test, not(loom)))]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use crate::options::{Durability, Options};

    fn open(dir: &std::path::Path) -> Db {
        Db::open(dir, Options::default().durability(Durability::None)).unwrap()
    }

    /// Two distinct keys in one bucket of [`RecentWrites`].
    fn keys_sharing_a_bucket(db: &Db) -> (Vec<u8>, Vec<u8>) {
        let recent = &db.inner.recent_writes;
        let first = b"key/0".to_vec();
        let other = (1..100_000_u32)
            .map(|i| format!("key/{i}").into_bytes())
            .find(|key| std::ptr::eq(recent.bucket(&first), recent.bucket(key)))
            .expect("4,096 buckets: a collision within 100,000 keys");
        (first, other)
    }

    /// A write of another key of the same bucket sends the check to the exact read, which
    /// finds no conflict; a write of the key itself still conflicts.
    #[test]
    fn the_recent_writes_shortcut_falls_back_to_an_exact_read() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        let (key, neighbour) = keys_sharing_a_bucket(&db);
        let mut tx = db.transaction();
        tx.set(&key, b"tx").unwrap();
        db.put(&neighbour, b"other").unwrap();
        assert!(db.inner.recent_writes.maybe_after(&key, tx.start_version()));
        tx.commit().unwrap();

        let mut tx = db.transaction();
        tx.set(&key, b"tx").unwrap();
        db.put(&key, b"plain").unwrap();
        let outcome = tx.commit();
        assert!(matches!(outcome, Err(Error::Conflict(Conflict::Key { .. }))), "{outcome:?}");
    }

    /// After a reopen the buckets are empty, and writes from before the open are below every
    /// transaction's start: no conflict, and a write after the start still conflicts.
    #[test]
    fn the_recent_writes_shortcut_is_exact_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = open(dir.path());
            db.put(b"k", b"1").unwrap();
            db.close().unwrap();
        }
        let db = open(dir.path());
        let mut tx = db.transaction_with(Isolation::Serializable);
        assert_eq!(tx.get(b"k", None).unwrap().as_deref(), Some(&b"1"[..]));
        tx.set(b"k", b"2").unwrap();
        tx.commit().unwrap();

        let mut tx = db.transaction_with(Isolation::Serializable);
        let _ = tx.get(b"k", None).unwrap();
        tx.set(b"other", b"x").unwrap();
        db.put(b"k", b"3").unwrap();
        assert!(matches!(tx.commit(), Err(Error::Conflict(Conflict::Key { .. }))));
    }
}
