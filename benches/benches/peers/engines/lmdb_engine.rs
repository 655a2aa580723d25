//! LMDB through heed: one unnamed database of raw bytes, one write transaction per write (or
//! batch) and one read transaction per read, as heed's documentation uses it.

use std::ops::Bound;
use std::path::Path;

use heed::types::Bytes;
use heed::{Database, Env, EnvFlags, EnvOpenOptions};

use super::{Durability, Engine, EngineKind, Res};

pub fn kind() -> EngineKind {
    EngineKind {
        name: "LMDB",
        library: "heed 0.22.1 (LMDB 0.9.x bundled by lmdb-master-sys)",
        open,
        settings,
        has_versions: false,
        plain: true,
    }
}

/// The map size: an upper bound on the file, reserved as address space only.
const MAP_BYTES: usize = 16 << 30;

pub(super) fn settings(durability: Durability) -> String {
    let mode = match durability {
        Durability::None => "EnvFlags::NO_SYNC (pages written at commit, never synced)",
        Durability::Sync => "default flags (fdatasync at each commit)",
    };
    format!("map size 16 GiB, no WRITE_MAP; {mode}")
}

fn open(path: &Path, durability: Durability, versioned: bool) -> Res<Box<dyn Engine>> {
    if versioned {
        return Err(super::no_versions("LMDB"));
    }
    let env = open_env(path, durability)?;
    let mut txn = env.write_txn()?;
    let db: Database<Bytes, Bytes> = env.create_database(&mut txn, None)?;
    txn.commit()?;
    Ok(Box::new(LmdbEngine { env, db }))
}

/// The environment of [`settings`] (also `LMDB-temporal`'s), in the fresh directory `path`,
/// with room for two named databases.
pub(super) fn open_env(path: &Path, durability: Durability) -> Res<Env> {
    let mut options = EnvOpenOptions::new();
    options.map_size(MAP_BYTES);
    if durability == Durability::None {
        // SAFETY: NO_SYNC only gives up durability across an OS crash, which is what the
        // `None` workloads ask of every engine; it cannot corrupt memory.
        unsafe { options.flags(EnvFlags::NO_SYNC) };
    }
    options.max_dbs(2);
    // SAFETY: the directory is fresh and private to this process, opened once, and nothing
    // else maps or modifies its files while the environment is open.
    Ok(unsafe { options.open(path)? })
}

struct LmdbEngine {
    env: Env,
    db: Database<Bytes, Bytes>,
}

impl Engine for LmdbEngine {
    fn put(&self, key: &[u8], value: &[u8]) -> Res<()> {
        let mut txn = self.env.write_txn()?;
        self.db.put(&mut txn, key, value)?;
        txn.commit()?;
        Ok(())
    }

    fn put_batch(&self, pairs: &[(&[u8], &[u8])]) -> Res<()> {
        let mut txn = self.env.write_txn()?;
        for (key, value) in pairs {
            self.db.put(&mut txn, key, value)?;
        }
        txn.commit()?;
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Res<Option<usize>> {
        let txn = self.env.read_txn()?;
        Ok(self.db.get(&txn, key)?.map(<[u8]>::len))
    }

    fn scan(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Res<(usize, usize)> {
        let txn = self.env.read_txn()?;
        let end = end.map_or(Bound::Unbounded, Bound::Excluded);
        let (mut count, mut bytes) = (0, 0);
        for item in self.db.range(&txn, &(Bound::Included(start), end))?.take(limit) {
            let (_key, value) = item?;
            count += 1;
            bytes += value.len();
        }
        Ok((count, bytes))
    }

    fn settle(&self) -> Res<&'static str> {
        Ok("nothing (a B+tree written in place at each commit)")
    }

    fn compact(&mut self) -> Res<&'static str> {
        Ok("none (LMDB has no in-place compaction; free pages are reused)")
    }

    fn reported_write_amplification(&self) -> Option<(f64, &'static str)> {
        None
    }
}
