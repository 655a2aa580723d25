//! [`Batch`]: writes that commit together, at one version, all or nothing.

use zverse_core::Version;
use zverse_core::record::BatchBuilder;

use crate::db::Db;
use crate::error::{Error, Result};

/// Puts and deletes that commit as one record at one version: after a crash, all of them are
/// there or none. When a batch writes one key twice, the later write wins (there is one
/// version per key per batch). Build with [`Db::batch`], commit with [`Batch::commit`]; dropping an
/// uncommitted batch discards it.
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

    /// Adds a put of `value` under `key`.
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
    #[must_use]
    pub fn len(&self) -> usize {
        self.builder.op_count() as usize
    }

    /// Whether the batch holds no writes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Commits every write at one version and returns it. Fails, writing nothing, if any
    /// key or value was over its limit or the batch is over the record size limit.
    pub fn commit(self) -> Result<Version> {
        self.commit_with(None)
    }

    /// Commits at `version` instead of the clock's next: for restoring a dump or applying a
    /// replicated log, where the writes must keep the versions they had. `version` must be
    /// greater than every version the database has handed out, or the commit fails with
    /// [`Error::VersionNotAfter`] and writes nothing; later writes get versions above it.
    pub fn commit_at(self, version: Version) -> Result<Version> {
        self.commit_with(Some(version))
    }

    fn commit_with(self, version: Option<Version>) -> Result<Version> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let encoded = self.builder.finish(Version::ZERO);
        self.db.inner.commit(encoded, self.user_bytes, version)
    }
}
