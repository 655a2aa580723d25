//! fjall 3: one database with one keyspace, default options (its README's basic usage).

use std::path::Path;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::{Durability, Engine, EngineKind, Res};

pub fn kind() -> EngineKind {
    EngineKind {
        name: "fjall",
        library: "fjall 3.1.13",
        open,
        settings,
        has_versions: false,
        plain: true,
    }
}

fn settings(durability: Durability) -> String {
    let mode = match durability {
        Durability::None => "writes go to the journal in OS buffers (fjall's default), no persist",
        Durability::Sync => "persist(PersistMode::SyncData) after each write or batch",
    };
    format!("Database::builder(path).open(), KeyspaceCreateOptions::default; {mode}")
}

fn open(path: &Path, durability: Durability, versioned: bool) -> Res<Box<dyn Engine>> {
    if versioned {
        return Err(super::no_versions("fjall"));
    }
    let db = Database::builder(path).open()?;
    let keyspace = db.keyspace("bench", KeyspaceCreateOptions::default)?;
    Ok(Box::new(FjallEngine { db, keyspace, durability }))
}

struct FjallEngine {
    db: Database,
    keyspace: Keyspace,
    durability: Durability,
}

impl FjallEngine {
    /// Polls every 10 ms until fjall has been idle (nothing queued, sealed or compacting) for
    /// 200 ms, so that a compaction it schedules after a flush is seen; gives up after
    /// 10 minutes.
    fn wait_for_compact(&self) -> Res<()> {
        const IDLE_POLLS: u32 = 20;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
        let mut idle_polls = 0;
        while idle_polls < IDLE_POLLS {
            if std::time::Instant::now() > deadline {
                return Err("fjall compactions still running after 10 minutes".into());
            }
            let idle = self.db.outstanding_flushes() == 0
                && self.db.active_compactions() == 0
                && self.keyspace.sealed_memtable_count() == 0;
            idle_polls = if idle { idle_polls + 1 } else { 0 };
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Ok(())
    }
}

impl FjallEngine {
    fn persist(&self) -> Res<()> {
        if self.durability == Durability::Sync {
            self.db.persist(PersistMode::SyncData)?;
        }
        Ok(())
    }
}

impl Engine for FjallEngine {
    fn put(&self, key: &[u8], value: &[u8]) -> Res<()> {
        self.keyspace.insert(key, value)?;
        self.persist()
    }

    fn put_batch(&self, pairs: &[(&[u8], &[u8])]) -> Res<()> {
        let mut batch = self.db.batch();
        for (key, value) in pairs {
            batch.insert(&self.keyspace, *key, *value);
        }
        batch.commit()?;
        self.persist()
    }

    fn get(&self, key: &[u8]) -> Res<Option<usize>> {
        Ok(self.keyspace.get(key)?.map(|value| value.len()))
    }

    fn scan(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Res<(usize, usize)> {
        let range = match end {
            Some(end) => self.keyspace.range(start..end),
            None => self.keyspace.range(start..),
        };
        let (mut count, mut bytes) = (0, 0);
        for guard in range.take(limit) {
            let (_key, value) = guard.into_inner()?;
            count += 1;
            bytes += value.len();
        }
        Ok((count, bytes))
    }

    fn settle(&self) -> Res<&'static str> {
        self.keyspace.rotate_memtable_and_wait()?;
        self.wait_for_compact()?;
        Ok("rotate_memtable_and_wait(), then poll until no flush is queued, no memtable sealed \
            and no compaction runs for 200 ms (fjall 3.1 has no wait call; its counters \
            outstanding_flushes and active_compactions are doc(hidden))")
    }

    fn compact(&mut self) -> Res<&'static str> {
        self.keyspace.rotate_memtable_and_wait()?;
        self.keyspace.major_compact()?;
        Ok("rotate_memtable_and_wait() + major_compact()")
    }

    fn reported_write_amplification(&self) -> Option<(f64, &'static str)> {
        None
    }
}
