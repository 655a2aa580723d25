//! The read API, on [`Db`] (latest or as of a version) and on [`Snapshot`] (a pinned version).

use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use zverse_core::Version;

use crate::db::{Db, Inner};
use crate::error::{Error, Result};
use crate::read::{Changes, OwnedRange, Range, ReadView};
use crate::value::Value;

/// A key's versions, newest first; a delete shows as `None`.
pub type History = std::vec::IntoIter<Result<(Version, Option<Value>)>>;

fn version_bounds(
    versions: &impl RangeBounds<Version>,
) -> (std::ops::Bound<Version>, std::ops::Bound<Version>) {
    (versions.start_bound().cloned(), versions.end_bound().cloned())
}

/// A view at `version` (capped at the watermark), refused below the retention horizon.
fn exact_view(inner: &Arc<Inner>, version: Version) -> Result<ReadView> {
    let view = ReadView::new(inner, version)?;
    inner.check_horizon(view.version)?;
    Ok(view)
}

/// The value of `key` as of `version`. Below the horizon, a read that finds a retained version
/// at or above `horizon_found` is still exact and answered; any other is refused.
fn get_exact(inner: &Arc<Inner>, key: &[u8], version: Version) -> Result<Option<Value>> {
    let view = ReadView::new(inner, version)?;
    if inner.is_exact(view.version) {
        return view.get(key);
    }
    match view.get_entry(key)? {
        Some(found) if view.version >= inner.horizon_found() => Ok(found.value),
        _ => Err(Error::BelowHorizon { version: view.version, horizon: inner.horizon() }),
    }
}

/// Refuses a `changes` window that starts below the retention horizon: compaction may have
/// dropped versions inside it. A window with no lower bound lists what retention kept.
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

impl Db {
    fn view(&self, version: Version) -> Result<ReadView> {
        exact_view(&self.inner, version)
    }

    /// The retention horizon: every read as of a version at or above it is exact, and every
    /// `changes` window starting at or above it is complete. Reads below it fail with
    /// [`Error::BelowHorizon`] (except through a snapshot, at its own version), since a
    /// compaction dropped versions they could need. `Version::ZERO` until a compaction drops
    /// a version; it never moves back, and survives reopening. It is the lowest such version
    /// over all keys; below it, `get_at` still answers when it finds a retained version of
    /// its key that no dropped version could have hidden, while `range_at` and `changes`
    /// (which cannot tell an absent key from a dropped one) are refused.
    #[must_use]
    pub fn horizon(&self) -> Version {
        self.inner.horizon()
    }

    /// The latest value of `key`, or `None` if it was never written or is deleted.
    pub fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        self.view(Version::MAX)?.get(key)
    }

    /// The value of `key` as of `version`: its newest version at or below `version`. Fails
    /// with [`Error::BelowHorizon`] below [`Db::horizon`].
    pub fn get_at(&self, key: &[u8], version: Version) -> Result<Option<Value>> {
        get_exact(&self.inner, key, version)
    }

    /// Every version of `key`, newest first; deletes show as `None`.
    pub fn history(&self, key: &[u8]) -> Result<History> {
        Ok(self.view(Version::MAX)?.history(key))
    }

    /// The latest value of every key in `keys`, in key order (deleted keys skipped).
    pub fn range<'k>(&self, keys: impl RangeBounds<&'k [u8]>) -> Result<Range> {
        let view = self.view(Version::MAX)?;
        self.inner.advisor.query_started();
        Ok(view.range(&OwnedRange::new(&keys)))
    }

    /// The value of every key in `keys` as of `version`, in key order.
    pub fn range_at<'k>(
        &self,
        keys: impl RangeBounds<&'k [u8]>,
        version: Version,
    ) -> Result<Range> {
        let view = self.view(version)?;
        self.inner.advisor.query_started();
        Ok(view.range(&OwnedRange::new(&keys)))
    }

    /// Every version written to a key in `keys` with its version in `versions`: the box
    /// query. In Z order: clustered by key prefix and time, not sorted by either.
    pub fn changes<'k>(
        &self,
        keys: impl RangeBounds<&'k [u8]>,
        versions: impl RangeBounds<Version>,
    ) -> Result<Changes> {
        let view = self.view(Version::MAX)?;
        check_window(&self.inner, &versions)?;
        self.inner.advisor.query_started();
        Ok(view.changes(&OwnedRange::new(&keys), version_bounds(&versions)))
    }

    /// A snapshot of the database as it is now: every read through it answers as of one
    /// version, forever, whatever is written or compacted meanwhile.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::new(&self.inner)
    }
}

/// A pinned version of the database. Reads through it never change: the version is at or
/// below the visibility watermark, so no write in flight can land below it, and compaction
/// keeps every version it needs while the snapshot lives.
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

    fn view(&self, version: Version) -> Result<ReadView> {
        exact_view(&self.inner, version.min(self.version))
    }

    /// The snapshot's version.
    #[must_use]
    pub fn version(&self) -> Version {
        self.version
    }

    /// The value of `key` at the snapshot.
    pub fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        self.view(self.version)?.get(key)
    }

    /// The value of `key` as of `version` (at most the snapshot's).
    pub fn get_at(&self, key: &[u8], version: Version) -> Result<Option<Value>> {
        get_exact(&self.inner, key, version.min(self.version))
    }

    /// Every version of `key` up to the snapshot, newest first.
    pub fn history(&self, key: &[u8]) -> Result<History> {
        Ok(self.view(self.version)?.history(key))
    }

    /// The value of every key in `keys` at the snapshot, in key order.
    pub fn range<'k>(&self, keys: impl RangeBounds<&'k [u8]>) -> Result<Range> {
        let view = self.view(self.version)?;
        self.inner.advisor.query_started();
        Ok(view.range(&OwnedRange::new(&keys)))
    }

    /// Every version written to a key in `keys` within `versions`, up to the snapshot.
    pub fn changes<'k>(
        &self,
        keys: impl RangeBounds<&'k [u8]>,
        versions: impl RangeBounds<Version>,
    ) -> Result<Changes> {
        let view = self.view(self.version)?;
        check_window(&self.inner, &versions)?;
        self.inner.advisor.query_started();
        Ok(view.changes(&OwnedRange::new(&keys), version_bounds(&versions)))
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
