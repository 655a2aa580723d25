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
    /// Started on the first write, in the thread's spare buffer ([`take_spare_buffer`]).
    builder: Option<BatchBuilder>,
    user_bytes: u64,
    /// The first refused input; reported by `commit`, so that building stays infallible.
    error: Option<Error>,
}

impl<'db> Batch<'db> {
    pub(crate) fn new(db: &'db Db) -> Batch<'db> {
        Batch { db, builder: None, user_bytes: 0, error: None }
    }

    fn builder(&mut self) -> &mut BatchBuilder {
        self.builder.get_or_insert_with(|| BatchBuilder::in_buffer(take_spare_buffer()))
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
            match self.builder().put(key, value) {
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
            match self.builder().delete(key) {
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
        self.builder.as_ref().map_or(0, |builder| builder.op_count() as usize)
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
        let builder = self.builder.take();
        let user_bytes = std::mem::take(&mut self.user_bytes);
        if let Some(error) = self.error.take() {
            if let Some(builder) = builder {
                keep_spare_buffer(builder.into_buffer());
            }
            return Err(error);
        }
        let builder = builder.unwrap_or_else(|| BatchBuilder::in_buffer(take_spare_buffer()));
        let mut record = builder.finish(Version::ZERO);
        let committed = self.db.inner.commit(&mut record, user_bytes, version);
        // The staged write's previous buffer (or, if the commit stopped before staging, the
        // record's own), for the thread's next batch.
        keep_spare_buffer(record);
        committed
    }
}

// Each thread's spare batch buffer: a batch builds in it, and a commit hands it the buffer the
// staged write held before, so that a thread committing batches of one size allocates none
// after its first. (A dropped, uncommitted batch frees its buffer: a `Drop` would make every
// batch's borrow of the database last to the end of its scope. Not under loom, whose models
// build their own.)
#[cfg(not(loom))]
std::thread_local! {
    static SPARE_BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// This thread's spare batch buffer (empty, without capacity, if it has none).
fn take_spare_buffer() -> Vec<u8> {
    #[cfg(not(loom))]
    return SPARE_BUFFER.take();
    #[cfg(loom)]
    Vec::new()
}

/// Keeps `buffer` as this thread's spare batch buffer if it is larger than the one kept and
/// at most [`crate::commit::SPARE_RECORD_BYTES_MAX`].
fn keep_spare_buffer(buffer: Vec<u8>) {
    #[cfg(not(loom))]
    if buffer.capacity() <= crate::commit::SPARE_RECORD_BYTES_MAX {
        SPARE_BUFFER.with(|spare| {
            let kept = spare.take();
            spare.set(if kept.capacity() >= buffer.capacity() { kept } else { buffer });
        });
    }
    #[cfg(loom)]
    drop(buffer);
}

#[cfg(all(test, not(loom)))]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use crate::{Db, Error, Options};

    /// The thread's spare buffer carries no write from one batch into the next: not from a
    /// dropped batch, a refused one, or a committed one.
    #[test]
    fn a_reused_buffer_carries_no_write_into_the_next_batch() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), Options::default()).unwrap();
        let mut dropped = db.batch();
        dropped.put(b"dropped", b"v");
        drop(dropped);
        let mut refused = db.batch();
        refused.put(b"refused", b"v").put(&vec![0; 70_000], b"");
        assert!(matches!(refused.commit(), Err(Error::KeyTooLarge { .. })));
        assert!(refused.is_empty());
        refused.put(b"after", b"1");
        let version = refused.commit().unwrap();
        let mut next = db.batch();
        assert!(next.is_empty());
        next.put(b"next", b"2");
        assert_eq!(next.len(), 1);
        next.commit().unwrap();
        let keys: Vec<Vec<u8>> =
            db.range(..).unwrap().map(|item| item.unwrap().0.to_vec()).collect();
        assert_eq!(keys, [b"after".to_vec(), b"next".to_vec()]);
        assert_eq!(db.history(b"after").unwrap().next().unwrap().unwrap().0, version);
    }
}
