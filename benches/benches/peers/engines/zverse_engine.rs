//! ZVerse through `zverse_linux::open`: the Auto backend (io_uring where the kernel allows it),
//! which is what a Linux user gets. Default options but for the durability.

use std::ops::Bound;
use std::path::Path;

use zverse::{Db, Durability as ZDurability, Options, Version};

use super::{CommitCounts, Durability, Engine, EngineKind, Res, Versioned};

pub fn kind() -> EngineKind {
    EngineKind {
        name: "ZVerse",
        library: "zverse (this tree), zverse_linux::open (Backend::Auto)",
        open,
        settings,
        has_versions: true,
        plain: true,
    }
}

fn settings(durability: Durability) -> String {
    let mode = match durability {
        Durability::None => "Durability::None (log written 64 KiB at a time, never synced)",
        Durability::Sync => "Durability::Sync (each write returns after its group's fdatasync)",
    };
    format!("Options::default() (64 MiB memtable, 4 KiB blocks, Retention::All), {mode}")
}

fn open(path: &Path, durability: Durability, _versioned: bool) -> Res<Box<dyn Engine>> {
    let durability = match durability {
        Durability::None => ZDurability::None,
        Durability::Sync => ZDurability::Sync,
    };
    let db = zverse_linux::open(path, Options::default().durability(durability))?;
    Ok(Box::new(ZverseEngine { db }))
}

/// The backend `zverse_linux::open` picks here, from a throwaway database.
pub fn backend() -> Res<&'static str> {
    let dir = tempfile::tempdir()?;
    let db = zverse_linux::open(dir.path(), Options::default())?;
    let backend = db.stats().io_backend;
    db.close()?;
    Ok(backend)
}

struct ZverseEngine {
    db: Db,
}

impl Engine for ZverseEngine {
    fn put(&self, key: &[u8], value: &[u8]) -> Res<()> {
        self.db.put(key, value)?;
        Ok(())
    }

    fn put_batch(&self, pairs: &[(&[u8], &[u8])]) -> Res<()> {
        self.put_batch_versioned(pairs)?;
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Res<Option<usize>> {
        Ok(self.db.get(key)?.map(|value| value.len()))
    }

    /// Through `Db::scan`, the cursor that lends its items, as the LMDB engine reads through
    /// its cursor.
    fn scan(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Res<(usize, usize)> {
        let end = end.map_or(Bound::Unbounded, Bound::Excluded);
        let mut scan = self.db.scan((Bound::Included(start), end))?;
        let (mut count, mut bytes) = (0, 0);
        while count < limit {
            let Some(item) = scan.next() else { break };
            let (_key, value) = item?;
            count += 1;
            bytes += value.len();
        }
        Ok((count, bytes))
    }

    fn settle(&self) -> Res<&'static str> {
        self.db.flush()?;
        self.db.wait_for_compact()?;
        Ok("flush() + wait_for_compact()")
    }

    fn compact(&mut self) -> Res<&'static str> {
        self.db.flush()?;
        self.db.compact()?;
        Ok("flush() + compact()")
    }

    fn reported_write_amplification(&self) -> Option<(f64, &'static str)> {
        Some((
            self.db.stats().write_amplification,
            "stats().write_amplification: log + segment bytes written / key+value bytes",
        ))
    }

    fn versioned(&self) -> Option<&dyn Versioned> {
        Some(self)
    }

    fn commit_counts(&self) -> Option<CommitCounts> {
        let stats = self.db.stats();
        Some(CommitCounts { records: stats.commit_records, groups: stats.commit_groups })
    }
}

impl Versioned for ZverseEngine {
    fn put_batch_versioned(&self, pairs: &[(&[u8], &[u8])]) -> Res<u64> {
        let mut batch = self.db.batch();
        for (key, value) in pairs {
            batch.put(key, value);
        }
        Ok(batch.commit()?.get())
    }

    fn get_at(&self, key: &[u8], version: u64) -> Res<Option<usize>> {
        Ok(self.db.get_at(key, Version::new(version))?.map(|value| value.len()))
    }

    fn history(&self, key: &[u8]) -> Res<usize> {
        let mut count = 0;
        for item in self.db.history(key)? {
            item?;
            count += 1;
        }
        Ok(count)
    }

    fn range_at(&self, start: &[u8], end: &[u8], version: u64) -> Res<Option<usize>> {
        let mut count = 0;
        for item in self.db.range_at(start..end, Version::new(version))? {
            item?;
            count += 1;
        }
        Ok(Some(count))
    }

    fn changes(
        &self,
        start: Option<&[u8]>,
        end: Option<&[u8]>,
        version_first: u64,
        version_last: u64,
    ) -> Res<usize> {
        let versions = Version::new(version_first)..=Version::new(version_last);
        let changes = match (start, end) {
            (Some(start), Some(end)) => self.db.changes(start..end, versions)?,
            (Some(start), None) => self.db.changes(start.., versions)?,
            (None, Some(end)) => self.db.changes(..end, versions)?,
            (None, None) => self.db.changes(.., versions)?,
        };
        let mut count = 0;
        for change in changes {
            change?;
            count += 1;
        }
        Ok(count)
    }

    /// `Stats::changes_bytes_read` (the data blocks `changes` read) and the segments' bytes.
    fn changes_bytes_read(&self) -> Option<(u64, u64)> {
        let stats = self.db.stats();
        Some((stats.changes_bytes_read, stats.segment_bytes))
    }
}
