//! The read API, on [`Db`] (latest or as of a version) and on [`Snapshot`] (a pinned version).
//! Both are thin doors onto one implementation, [`Reads`]: a `Db` reads with no cap on the
//! version, a `Snapshot` caps every read at its own.

use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use zverse_core::Version;

use crate::db::{Db, Inner};
use crate::error::{Error, Result};
use crate::key_range::{KeyRange, prefix_bounds};
use crate::read::{Changes, History, OwnedRange, Range, ReadView};
use crate::value::Value;

/// A key and its value, as `first` and `last` return them.
pub type KeyValue = (Value, Value);

fn version_bounds(versions: &impl RangeBounds<Version>) -> (Bound<Version>, Bound<Version>) {
    (versions.start_bound().cloned(), versions.end_bound().cloned())
}

/// A view at `version` (capped at the watermark), refused below the retention horizon.
pub(crate) fn exact_view(inner: &Arc<Inner>, version: Version) -> Result<ReadView> {
    let view = ReadView::new(inner, version)?;
    inner.check_horizon(view.version)?;
    Ok(view)
}

/// The value of `key` as of `version`. Below the horizon, a read that finds a retained version
/// at or above `horizon_found` is still exact and answered; any other is refused.
pub(crate) fn get_exact(inner: &Arc<Inner>, key: &[u8], version: Version) -> Result<Option<Value>> {
    let view = ReadView::new(inner, version)?;
    if inner.is_exact(view.version) {
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
struct Reads<'a> {
    inner: &'a Arc<Inner>,
    cap: Version,
}

impl Reads<'_> {
    fn view(self, version: Version) -> Result<ReadView> {
        exact_view(self.inner, version.min(self.cap))
    }

    fn get_at(self, key: &[u8], version: Version) -> Result<Option<Value>> {
        get_exact(self.inner, key, version.min(self.cap))
    }

    fn history_range(self, key: &[u8], versions: &impl RangeBounds<Version>) -> Result<History> {
        let view = self.view(self.cap)?;
        check_window(self.inner, versions)?;
        Ok(view.history(key, version_bounds(versions)))
    }

    fn range_at(self, keys: &(impl KeyRange + ?Sized), version: Version) -> Result<Range> {
        let view = self.view(version)?;
        self.inner.advisor.query_started();
        Ok(view.range(OwnedRange::new(keys)))
    }

    fn prefix_at(self, prefix: &[u8], version: Version) -> Result<Range> {
        self.range_at(&prefix_bounds(prefix), version)
    }

    fn first_at(self, version: Version) -> Result<Option<KeyValue>> {
        self.range_at(&.., version)?.next().transpose()
    }

    fn last_at(self, version: Version) -> Result<Option<KeyValue>> {
        self.range_at(&.., version)?.next_back().transpose()
    }

    fn changes(
        self,
        keys: &(impl KeyRange + ?Sized),
        versions: &impl RangeBounds<Version>,
    ) -> Result<Changes> {
        let view = self.view(self.cap)?;
        check_window(self.inner, versions)?;
        self.inner.advisor.query_started();
        Ok(view.changes(&OwnedRange::new(keys), version_bounds(versions)))
    }
}

impl Db {
    fn reads(&self) -> Reads<'_> {
        Reads { inner: &self.inner, cap: Version::MAX }
    }

    /// The retention horizon: every read as of a version at or above it is exact, and every
    /// `changes` or `history_range` window starting at or above it is complete. Reads below it
    /// fail with [`Error::BelowHorizon`](crate::Error::BelowHorizon) (except through a
    /// snapshot, at its own version), since a compaction dropped versions they could need.
    /// `Version::ZERO` until a compaction drops a version; it never moves back, and survives
    /// reopening. It is the lowest such version over all keys; below it, `get_at` still
    /// answers when it finds a retained version of its key that no dropped version could have
    /// hidden, while `range_at`, `prefix_at`, `first_at`, `last_at`, and `changes` and
    /// `history_range` windows starting below it (which cannot tell an absent key or version
    /// from a dropped one) are refused.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// db.put(b"k", b"v")?;
    /// // Nothing compacted away yet: every version can be read.
    /// assert_eq!(db.horizon(), zverse::Version::ZERO);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn horizon(&self) -> Version {
        self.inner.horizon()
    }

    /// The latest value of `key`, or `None` if it was never written or is deleted.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// db.put(b"user:1", b"alice")?;
    /// assert_eq!(db.get(b"user:1")?.as_deref(), Some(&b"alice"[..]));
    /// assert_eq!(db.get(b"user:2")?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        self.reads().get_at(key, Version::MAX)
    }

    /// The value of `key` as of `version`: its newest version at or below `version`. Fails
    /// with [`Error::BelowHorizon`](crate::Error::BelowHorizon) below [`Db::horizon`].
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let v1 = db.put(b"user:1", b"alice")?;
    /// let v2 = db.delete(b"user:1")?;
    /// assert_eq!(db.get_at(b"user:1", v1)?.as_deref(), Some(&b"alice"[..]));
    /// assert_eq!(db.get_at(b"user:1", v2)?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_at(&self, key: &[u8], version: Version) -> Result<Option<Value>> {
        self.reads().get_at(key, version)
    }

    /// Every version of `key`, newest first, as `(version, value)`; deletes show as `None`.
    /// Lazy: `.take(n)` reads about `n` versions, however long the history is.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let v1 = db.put(b"k", b"a")?;
    /// let v2 = db.delete(b"k")?;
    /// let versions: Vec<_> = db.history(b"k")?.collect::<zverse::Result<_>>()?;
    /// assert_eq!(versions, [(v2, None), (v1, Some(b"a".as_slice().into()))]);
    /// let newest = db.history(b"k")?.take(1).count();
    /// assert_eq!(newest, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn history(&self, key: &[u8]) -> Result<History> {
        self.reads().history_range(key, &..)
    }

    /// The versions of `key` within `versions`, newest first (lazy, as [`Db::history`]).
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let v1 = db.put(b"k", b"1")?;
    /// let v2 = db.put(b"k", b"2")?;
    /// let v3 = db.put(b"k", b"3")?;
    /// let window = db.history_range(b"k", v1..v3)?;
    /// let versions = window.map(|item| item.map(|(version, _)| version));
    /// let versions: Vec<_> = versions.collect::<zverse::Result<_>>()?;
    /// assert_eq!(versions, [v2, v1]);
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

    /// The latest value of every key in `keys`, in key order (deleted keys skipped); `.rev()`
    /// walks it in descending order. `keys` is any range of byte strings ([`KeyRange`]).
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// for key in ["a", "b", "c"] {
    ///     db.put(key.as_bytes(), b"")?;
    /// }
    /// let keys = |range: zverse::Range| -> zverse::Result<Vec<Vec<u8>>> {
    ///     range.map(|item| item.map(|(key, _)| key.to_vec())).collect()
    /// };
    /// assert_eq!(keys(db.range(b"a"..b"c")?)?, [b"a", b"b"]);
    /// assert_eq!(keys(db.range("b"..)?)?, [b"b", b"c"]);
    /// // The last key before "c":
    /// let (key, _) = db.range(..b"c")?.next_back().transpose()?.unwrap();
    /// assert_eq!(&key[..], b"b");
    /// # Ok(())
    /// # }
    /// ```
    pub fn range(&self, keys: impl KeyRange) -> Result<Range> {
        self.reads().range_at(&keys, Version::MAX)
    }

    /// The value of every key in `keys` as of `version`, in key order.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let v1 = db.put(b"a", b"1")?;
    /// db.put(b"b", b"2")?;
    /// assert_eq!(db.range_at(.., v1)?.count(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn range_at(&self, keys: impl KeyRange, version: Version) -> Result<Range> {
        self.reads().range_at(&keys, version)
    }

    /// The latest value of every key that starts with `prefix`, in key order.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// db.put(b"user:1", b"alice")?;
    /// db.put(b"user:2", b"bob")?;
    /// db.put(b"users", b"")?;
    /// assert_eq!(db.prefix(b"user:")?.count(), 2);
    /// let (last, _) = db.prefix(b"user:")?.next_back().transpose()?.unwrap();
    /// assert_eq!(&last[..], b"user:2");
    /// # Ok(())
    /// # }
    /// ```
    pub fn prefix(&self, prefix: &[u8]) -> Result<Range> {
        self.reads().prefix_at(prefix, Version::MAX)
    }

    /// Every key that starts with `prefix` as of `version`, in key order.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let v1 = db.put(b"user:1", b"alice")?;
    /// db.put(b"user:2", b"bob")?;
    /// assert_eq!(db.prefix_at(b"user:", v1)?.count(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn prefix_at(&self, prefix: &[u8], version: Version) -> Result<Range> {
        self.reads().prefix_at(prefix, version)
    }

    /// The smallest key and its latest value; `None` if every key is deleted.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// assert!(db.first()?.is_none());
    /// db.put(b"b", b"2")?;
    /// db.put(b"a", b"1")?;
    /// let (key, value) = db.first()?.unwrap();
    /// assert_eq!((&key[..], &value[..]), (&b"a"[..], &b"1"[..]));
    /// # Ok(())
    /// # }
    /// ```
    pub fn first(&self) -> Result<Option<KeyValue>> {
        self.reads().first_at(Version::MAX)
    }

    /// The largest key and its latest value. For the last key before `x`, walk a range from
    /// the back: `db.range(..x)?.next_back()`.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// db.put(b"a", b"1")?;
    /// db.put(b"b", b"2")?;
    /// assert_eq!(&db.last()?.unwrap().0[..], b"b");
    /// db.delete(b"b")?;
    /// assert_eq!(&db.last()?.unwrap().0[..], b"a");
    /// # Ok(())
    /// # }
    /// ```
    pub fn last(&self) -> Result<Option<KeyValue>> {
        self.reads().last_at(Version::MAX)
    }

    /// The smallest key as of `version`, with its value then.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let v1 = db.put(b"b", b"2")?;
    /// db.put(b"a", b"1")?;
    /// assert_eq!(&db.first_at(v1)?.unwrap().0[..], b"b");
    /// # Ok(())
    /// # }
    /// ```
    pub fn first_at(&self, version: Version) -> Result<Option<KeyValue>> {
        self.reads().first_at(version)
    }

    /// The largest key as of `version`, with its value then.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let v1 = db.put(b"a", b"1")?;
    /// db.put(b"b", b"2")?;
    /// assert_eq!(&db.last_at(v1)?.unwrap().0[..], b"a");
    /// # Ok(())
    /// # }
    /// ```
    pub fn last_at(&self, version: Version) -> Result<Option<KeyValue>> {
        self.reads().last_at(version)
    }

    /// Every version written to a key in `keys` with its version in `versions`: the box
    /// query. In Z order: clustered by key prefix and time, not sorted by either.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// db.put(b"a", b"old")?;
    /// let v1 = db.put(b"b", b"1")?;
    /// let v2 = db.delete(b"a")?;
    /// db.put(b"z", b"out of the key range")?;
    /// let changes: Vec<_> = db.changes(b"a"..b"m", v1..=v2)?.collect::<zverse::Result<_>>()?;
    /// assert_eq!(changes.len(), 2);
    /// assert!(changes.iter().any(|c| &c.key[..] == b"a" && c.version == v2 && c.value.is_none()));
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

    /// A snapshot of the database as it is now: every read through it answers as of one
    /// version, forever, whatever is written or compacted meanwhile.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// db.put(b"k", b"before")?;
    /// let snapshot = db.snapshot();
    /// db.put(b"k", b"after")?;
    /// db.compact()?;
    /// assert_eq!(snapshot.get(b"k")?.as_deref(), Some(&b"before"[..]));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::new(&self.inner)
    }
}

/// A pinned version of the database. Reads through it never change: the version is at or
/// below the visibility watermark, so no write in flight can land below it, and compaction
/// keeps every version it needs while the snapshot lives. It has every read of [`Db`], capped
/// at its version. `Send` and `Sync`; it keeps the database's state alive but not its
/// directory lock: after [`Db::close`] its reads fail with [`Error::Closed`](crate::Error).
#[derive(Debug)]
pub struct Snapshot {
    inner: Arc<Inner>,
    version: Version,
}

impl Snapshot {
    fn new(inner: &Arc<Inner>) -> Snapshot {
        // Pin under the lock, then read the watermark: compaction reads the pins under the
        // same lock, so it either sees this pin or ran before the version was chosen.
        let mut pins = inner.pins.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let version = inner.visible_version();
        *pins.entry(version).or_insert(0) += 1;
        Snapshot { inner: Arc::clone(inner), version }
    }

    fn reads(&self) -> Reads<'_> {
        Reads { inner: &self.inner, cap: self.version }
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
        self.version
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
    pub fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        self.reads().get_at(key, self.version)
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
    pub fn get_at(&self, key: &[u8], version: Version) -> Result<Option<Value>> {
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
        self.reads().range_at(&keys, self.version)
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
        self.reads().prefix_at(prefix, self.version)
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
        self.reads().first_at(self.version)
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
        self.reads().last_at(self.version)
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
        let mut pins = self.inner.pins.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = pins.get_mut(&self.version) {
            *count -= 1;
            if *count == 0 {
                pins.remove(&self.version);
            }
        }
    }
}
