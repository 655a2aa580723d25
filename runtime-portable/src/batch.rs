//! [`Batch`]: writes that commit together, at one version, all or nothing.

use zverse_core::Version;
use zverse_core::record::BatchBuilder;

use crate::db::Db;
use crate::error::{Error, Result};

/// Puts and deletes that commit as one record at one version: after a crash, all of them are
/// there or none. When a batch writes one key twice, the later write wins (there is one
/// version per key per batch). Build with [`Db::batch`], commit with [`Batch::commit`]; dropping
/// an uncommitted batch discards it. The calls chain, and a committed batch is empty again,
/// ready for the next writes.
///
/// ```
/// # fn main() -> zverse::Result<()> {
/// # let dir = tempfile::tempdir()?;
/// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
/// let version = db.batch().put(b"k1", b"v1").put(b"k2", b"v2").delete(b"k3").commit()?;
/// assert_eq!(db.get_at(b"k2", version)?.as_deref(), Some(&b"v2"[..]));
///
/// let mut batch = db.batch();
/// for index in 0..10_u8 {
///     batch.put(&[index], b"");
/// }
/// batch.commit()?;
/// assert_eq!(db.range(..)?.count(), 12);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use = "a batch does nothing until it is committed"]
pub struct Batch<'db> {
    db: &'db Db,
    builder: BatchBuilder,
    user_bytes: u64,
    /// The first refused input; reported by `commit`, so that building stays infallible.
    error: Option<Error>,
}

impl<'db> Batch<'db> {
    pub(crate) fn new(db: &'db Db) -> Batch<'db> {
        Batch { db, builder: BatchBuilder::new(), user_bytes: 0, error: None }
    }

    /// Adds a put of `value` under `key`. A key or value over its limit is reported by
    /// [`Batch::commit`], which then writes nothing.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let mut batch = db.batch();
    /// batch.put(b"k", b"v");
    /// batch.commit()?;
    /// assert!(db.get(b"k")?.is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> &mut Batch<'db> {
        if self.error.is_none() {
            match self.builder.put(key, value) {
                Ok(()) => self.user_bytes += (key.len() + value.len()) as u64,
                Err(limit) => self.error = Some(limit.into()),
            }
        }
        self
    }

    /// Adds a delete of `key`.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// db.put(b"old", b"v")?;
    /// db.batch().delete(b"old").put(b"new", b"v").commit()?;
    /// assert_eq!(db.get(b"old")?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn delete(&mut self, key: &[u8]) -> &mut Batch<'db> {
        if self.error.is_none() {
            match self.builder.delete(key) {
                Ok(()) => self.user_bytes += key.len() as u64,
                Err(limit) => self.error = Some(limit.into()),
            }
        }
        self
    }

    /// The number of writes in the batch.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let mut batch = db.batch();
    /// batch.put(b"a", b"1").delete(b"b");
    /// assert_eq!(batch.len(), 2);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.builder.op_count() as usize
    }

    /// Whether the batch holds no writes.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let mut batch = db.batch();
    /// assert!(batch.is_empty());
    /// batch.put(b"a", b"1");
    /// batch.commit()?;
    /// assert!(batch.is_empty(), "committing empties the batch");
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Commits every write at one version and returns it, leaving the batch empty. Fails,
    /// writing nothing, if any key or value was over its limit or the batch is over the
    /// record size limit; the batch is empty afterwards all the same.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let version = db.batch().put(b"a", b"1").put(b"b", b"2").commit()?;
    /// let history: Vec<_> = db.history(b"b")?.collect::<zverse::Result<_>>()?;
    /// assert_eq!(history[0].0, version, "both writes got the batch's version");
    ///
    /// let too_long = vec![0; 70_000];
    /// let refused = db.batch().put(b"c", b"3").put(&too_long, b"").commit();
    /// assert!(matches!(refused, Err(zverse::Error::KeyTooLarge { .. })));
    /// assert_eq!(db.get(b"c")?, None, "nothing of a refused batch is written");
    /// # Ok(())
    /// # }
    /// ```
    pub fn commit(&mut self) -> Result<Version> {
        self.commit_with(None)
    }

    /// Commits at `version` instead of the clock's next: for restoring a dump or applying a
    /// replicated log, where the writes must keep the versions they had. `version` must be
    /// greater than every version the database has handed out, or the commit fails with
    /// [`Error::VersionNotAfter`] and writes nothing; later writes get versions above it.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let last = db.put(b"a", b"1")?;
    /// let restored = zverse::Version::new(last.get() + 1_000);
    /// assert_eq!(db.batch().put(b"b", b"2").commit_at(restored)?, restored);
    /// let earlier = db.batch().put(b"c", b"3").commit_at(last);
    /// assert!(matches!(earlier, Err(zverse::Error::VersionNotAfter { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub fn commit_at(&mut self, version: Version) -> Result<Version> {
        self.commit_with(Some(version))
    }

    fn commit_with(&mut self, version: Option<Version>) -> Result<Version> {
        let builder = std::mem::replace(&mut self.builder, BatchBuilder::new());
        let user_bytes = std::mem::take(&mut self.user_bytes);
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        let encoded = builder.finish(Version::ZERO);
        self.db.inner.commit(encoded, user_bytes, version)
    }
}
