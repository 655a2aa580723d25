//! [`Snapshot`] (a pinned version) and [`Reads`], the one implementation of every read:
//! `Db`'s read methods (in `db.rs`) read with no cap on the version, a `Snapshot` caps every
//! read at its own.

use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use zverse_core::Version;

use crate::error::{Error, Result};
use crate::inner::Inner;
use crate::key_range::{KeyRange, prefix_bounds};
use crate::options::Retention;
use crate::pins::Pin;
use crate::read::{Changes, History, OwnedRange, Range, ReadView};
use crate::scan::Scan;
use crate::slice::Slice;

/// A key and its value, as `first` and `last` return them.
pub type KeyValue = (Slice, Slice);

fn version_bounds(versions: &impl RangeBounds<Version>) -> (Bound<Version>, Bound<Version>) {
    (versions.start_bound().cloned(), versions.end_bound().cloned())
}

/// A view at `version` (capped at the watermark), refused below the retention horizon.
pub(crate) fn exact_view(inner: &Arc<Inner>, version: Version) -> Result<ReadView> {
    let view = ReadView::new(inner, version)?;
    if !inner.is_exact(version) {
        inner.check_horizon(view.version)?;
    }
    Ok(view)
}

/// The value of `key` as of `version`. Below the horizon, a read that finds a retained version
/// at or above `horizon_found` is still exact and answered; any other is refused.
///
/// The horizon is checked against the version asked for, not the view's (capped at the
/// watermark): no version lies between the two, so the view answers a read at a version at
/// or above the horizon exactly even when the watermark is below it, as it is after a
/// tombstone that was the newest write is dropped at the bottom (the horizon goes one past
/// it, so that `changes` from the horizon stays complete): `Db::horizon` is always readable.
pub(crate) fn get_exact(inner: &Arc<Inner>, key: &[u8], version: Version) -> Result<Option<Slice>> {
    let view = ReadView::new(inner, version)?;
    if inner.is_exact(version) || inner.is_exact(view.version) {
        return view.get(key);
    }
    match view.get_entry(key)? {
        Some(found) if view.version >= inner.state.horizon_found() => Ok(found.value),
        _ => Err(Error::BelowHorizon { version: view.version, horizon: inner.horizon() }),
    }
}

/// Refuses a version window (`changes`, `history_range`) that starts below the retention
/// horizon: compaction may have dropped versions inside it. A window with no lower bound lists
/// what retention kept.
fn check_window(inner: &Inner, versions: &impl RangeBounds<Version>) -> Result<()> {
    let first = match versions.start_bound() {
        Bound::Included(&version) => version,
        Bound::Excluded(&version) => Version::new(version.get().saturating_add(1)),
        Bound::Unbounded => return Ok(()),
    };
    let horizon = inner.horizon();
    if first < horizon {
        return Err(Error::BelowHorizon { version: first, horizon });
    }
    Ok(())
}

/// Every read, once: at a version capped at `cap`, with the retention horizon checked (a read
/// as of a version below [`Db::horizon`] is refused, except at a version a live snapshot pins).
#[derive(Clone, Copy)]
pub(crate) struct Reads<'a> {
    inner: &'a Arc<Inner>,
    cap: Version,
}

impl<'a> Reads<'a> {
    /// Reads of the latest state (no cap), as `Db` does.
    pub(crate) fn latest(inner: &'a Arc<Inner>) -> Reads<'a> {
        Reads { inner, cap: Version::MAX }
    }

    fn view(self, version: Version) -> Result<ReadView> {
        exact_view(self.inner, version.min(self.cap))
    }

    pub(crate) fn get_at(self, key: &[u8], version: Version) -> Result<Option<Slice>> {
        get_exact(self.inner, key, version.min(self.cap))
    }

    pub(crate) fn history_range(
        self,
        key: &[u8],
        versions: &impl RangeBounds<Version>,
    ) -> Result<History> {
        let view = self.view(self.cap)?;
        check_window(self.inner, versions)?;
        let history = view.history(key, version_bounds(versions));
        // Compaction may hold more than `count` versions of a key between merges; a read
        // shows what the retention promises.
        Ok(match self.inner.options.retention {
            Retention::Versions(count) => history.newest(count.max(1) as usize),
            _ => history,
        })
    }

    pub(crate) fn range_at(
        self,
        keys: &(impl KeyRange + ?Sized),
        version: Version,
    ) -> Result<Range> {
        let view = self.view(version)?;
        self.inner.advisor.query_started();
        Ok(view.range(OwnedRange::new(keys)))
    }

    pub(crate) fn scan_at(self, keys: &(impl KeyRange + ?Sized), version: Version) -> Result<Scan> {
        let view = self.view(version)?;
        self.inner.advisor.query_started();
        Ok(Scan::new(&view, OwnedRange::new(keys)))
    }

    pub(crate) fn prefix_at(self, prefix: &[u8], version: Version) -> Result<Range> {
        self.range_at(&prefix_bounds(prefix), version)
    }

    pub(crate) fn first_at(self, version: Version) -> Result<Option<KeyValue>> {
        self.range_at(&.., version)?.next().transpose()
    }

    pub(crate) fn last_at(self, version: Version) -> Result<Option<KeyValue>> {
        self.range_at(&.., version)?.next_back().transpose()
    }

    pub(crate) fn changes(
        self,
        keys: &(impl KeyRange + ?Sized),
        versions: &impl RangeBounds<Version>,
    ) -> Result<Changes> {
        let view = self.view(self.cap)?;
        check_window(self.inner, versions)?;
        self.inner.advisor.query_started();
        let bytes_read = &self.inner.counters.changes_bytes_read;
        Ok(view.changes_counted(&OwnedRange::new(keys), version_bounds(versions), bytes_read))
    }
}

/// A pinned version of the database. Reads through it never change: the version is at or
/// below the visibility watermark, so no write in flight can land below it, and compaction
/// keeps every version it needs while the snapshot lives. It has every read of
/// [`Db`](crate::Db), capped at its version. `Send` and `Sync`; it keeps the database's state
/// alive but not its directory lock: after [`Db::close`](crate::Db::close) its reads fail
/// with [`Error::Closed`](crate::Error).
#[derive(Debug)]
pub struct Snapshot {
    inner: Arc<Inner>,
    /// The version this snapshot reads at, pinned.
    pin: Pin,
}

impl Snapshot {
    pub(crate) fn new(inner: &Arc<Inner>) -> Snapshot {
        // The watermark is read under the pin's lock: compaction reads the pins under the
        // same lock, so it either sees this pin or ran before the version was chosen.
        let pin = inner.pins.pin(|| inner.visible_version());
        Snapshot { inner: Arc::clone(inner), pin }
    }

    fn reads(&self) -> Reads<'_> {
        Reads { inner: &self.inner, cap: self.pin.version }
    }

    /// The snapshot's version: every write at or below it, nothing above.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let v1 = db.put(b"k", b"v")?;
    /// assert_eq!(db.snapshot().version(), v1);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn version(&self) -> Version {
        self.pin.version
    }

    /// The value of `key` at the snapshot.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let snapshot = db.snapshot();
    /// db.put(b"k", b"v")?;
    /// assert_eq!(snapshot.get(b"k")?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(&self, key: &[u8]) -> Result<Option<Slice>> {
        self.reads().get_at(key, self.pin.version)
    }

    /// The value of `key` as of `version` (at most the snapshot's).
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let v1 = db.put(b"k", b"1")?;
    /// db.put(b"k", b"2")?;
    /// let snapshot = db.snapshot();
    /// assert_eq!(snapshot.get_at(b"k", v1)?.as_deref(), Some(&b"1"[..]));
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_at(&self, key: &[u8], version: Version) -> Result<Option<Slice>> {
        self.reads().get_at(key, version)
    }

    /// Every version of `key` up to the snapshot, newest first (lazy).
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// db.put(b"k", b"1")?;
    /// let snapshot = db.snapshot();
    /// db.put(b"k", b"2")?;
    /// assert_eq!(snapshot.history(b"k")?.count(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn history(&self, key: &[u8]) -> Result<History> {
        self.reads().history_range(key, &..)
    }

    /// The versions of `key` within `versions`, up to the snapshot, newest first (lazy).
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let v1 = db.put(b"k", b"1")?;
    /// db.put(b"k", b"2")?;
    /// let snapshot = db.snapshot();
    /// db.put(b"k", b"3")?;
    /// assert_eq!(snapshot.history_range(b"k", v1..)?.count(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn history_range(
        &self,
        key: &[u8],
        versions: impl RangeBounds<Version>,
    ) -> Result<History> {
        self.reads().history_range(key, &versions)
    }

    /// The value of every key in `keys` at the snapshot, in key order (`.rev()`: descending).
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// db.put(b"a", b"1")?;
    /// let snapshot = db.snapshot();
    /// db.put(b"b", b"2")?;
    /// assert_eq!(snapshot.range("a"..="z")?.count(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn range(&self, keys: impl KeyRange) -> Result<Range> {
        self.reads().range_at(&keys, self.pin.version)
    }

    /// The value of every key in `keys` as of `version` (at most the snapshot's).
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let v1 = db.put(b"a", b"1")?;
    /// db.put(b"b", b"2")?;
    /// let snapshot = db.snapshot();
    /// assert_eq!(snapshot.range_at(.., v1)?.count(), 1);
    /// assert_eq!(snapshot.range_at(.., zverse::Version::MAX)?.count(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn range_at(&self, keys: impl KeyRange, version: Version) -> Result<Range> {
        self.reads().range_at(&keys, version)
    }

    /// [`Snapshot::range`] through a cursor that lends keys and values ([`Scan`]).
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// db.put(b"a", b"1")?;
    /// let snapshot = db.snapshot();
    /// db.put(b"b", b"2")?;
    /// let mut scan = snapshot.scan(..)?;
    /// assert_eq!(scan.next().transpose()?, Some((&b"a"[..], &b"1"[..])));
    /// assert!(scan.next().is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn scan(&self, keys: impl KeyRange) -> Result<Scan> {
        self.reads().scan_at(&keys, self.pin.version)
    }

    /// [`Snapshot::range_at`] through a cursor that lends keys and values ([`Scan`]).
    pub fn scan_at(&self, keys: impl KeyRange, version: Version) -> Result<Scan> {
        self.reads().scan_at(&keys, version)
    }

    /// Every key that starts with `prefix` at the snapshot, in key order.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// db.put(b"user:1", b"alice")?;
    /// let snapshot = db.snapshot();
    /// db.put(b"user:2", b"bob")?;
    /// assert_eq!(snapshot.prefix(b"user:")?.count(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn prefix(&self, prefix: &[u8]) -> Result<Range> {
        self.reads().prefix_at(prefix, self.pin.version)
    }

    /// Every key that starts with `prefix` as of `version` (at most the snapshot's).
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let v1 = db.put(b"user:1", b"alice")?;
    /// db.put(b"user:2", b"bob")?;
    /// assert_eq!(db.snapshot().prefix_at(b"user:", v1)?.count(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn prefix_at(&self, prefix: &[u8], version: Version) -> Result<Range> {
        self.reads().prefix_at(prefix, version)
    }

    /// The smallest key at the snapshot, with its value.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// db.put(b"b", b"2")?;
    /// let snapshot = db.snapshot();
    /// db.put(b"a", b"1")?;
    /// assert_eq!(&snapshot.first()?.unwrap().0[..], b"b");
    /// # Ok(())
    /// # }
    /// ```
    pub fn first(&self) -> Result<Option<KeyValue>> {
        self.reads().first_at(self.pin.version)
    }

    /// The largest key at the snapshot, with its value.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// db.put(b"a", b"1")?;
    /// let snapshot = db.snapshot();
    /// db.put(b"b", b"2")?;
    /// assert_eq!(&snapshot.last()?.unwrap().0[..], b"a");
    /// # Ok(())
    /// # }
    /// ```
    pub fn last(&self) -> Result<Option<KeyValue>> {
        self.reads().last_at(self.pin.version)
    }

    /// The smallest key as of `version` (at most the snapshot's).
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let v1 = db.put(b"b", b"2")?;
    /// db.put(b"a", b"1")?;
    /// assert_eq!(&db.snapshot().first_at(v1)?.unwrap().0[..], b"b");
    /// # Ok(())
    /// # }
    /// ```
    pub fn first_at(&self, version: Version) -> Result<Option<KeyValue>> {
        self.reads().first_at(version)
    }

    /// The largest key as of `version` (at most the snapshot's).
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let v1 = db.put(b"a", b"1")?;
    /// db.put(b"b", b"2")?;
    /// assert_eq!(&db.snapshot().last_at(v1)?.unwrap().0[..], b"a");
    /// # Ok(())
    /// # }
    /// ```
    pub fn last_at(&self, version: Version) -> Result<Option<KeyValue>> {
        self.reads().last_at(version)
    }

    /// Every version written to a key in `keys` within `versions`, up to the snapshot.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let v1 = db.put(b"a", b"1")?;
    /// let snapshot = db.snapshot();
    /// db.put(b"a", b"2")?;
    /// assert_eq!(snapshot.changes(.., v1..)?.count(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn changes(
        &self,
        keys: impl KeyRange,
        versions: impl RangeBounds<Version>,
    ) -> Result<Changes> {
        self.reads().changes(&keys, &versions)
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        let released = self.inner.pins.unpin(self.pin);
        // The pin may have kept history versions: history GC may drop them now.
        let pinned_max = self.inner.pinned_history_max.load(std::sync::atomic::Ordering::Acquire);
        if released && self.pin.version.get() < pinned_max {
            self.inner.request_compaction(crate::background::CompactionKind::Triggered);
        }
    }
}
