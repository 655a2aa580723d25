//! sled 0.34 (the stable release; 1.0 is an alpha), default configuration but for the
//! periodic flush, which durability decides.

use std::path::Path;

use super::{Durability, Engine, EngineKind, Res};

pub fn kind() -> EngineKind {
    EngineKind {
        name: "sled",
        library: "sled 0.34.7",
        open,
        settings,
        has_versions: false,
        plain: true,
    }
}

fn settings(durability: Durability) -> String {
    let mode = match durability {
        Durability::None => "flush_every_ms(None): never synced by sled",
        Durability::Sync => "flush() (fsync) after each write or batch",
    };
    format!("Config::new() defaults (1 GiB cache); {mode}")
}

fn open(path: &Path, durability: Durability, versioned: bool) -> Res<Box<dyn Engine>> {
    if versioned {
        return Err(super::no_versions("sled"));
    }
    let mut config = sled::Config::new().path(path);
    if durability == Durability::None {
        config = config.flush_every_ms(None);
    }
    Ok(Box::new(SledEngine { db: config.open()?, durability }))
}

struct SledEngine {
    db: sled::Db,
    durability: Durability,
}

impl SledEngine {
    fn persist(&self) -> Res<()> {
        if self.durability == Durability::Sync {
            self.db.flush()?;
        }
        Ok(())
    }
}

impl Engine for SledEngine {
    fn put(&self, key: &[u8], value: &[u8]) -> Res<()> {
        self.db.insert(key, value)?;
        self.persist()
    }

    fn put_batch(&self, pairs: &[(&[u8], &[u8])]) -> Res<()> {
        let mut batch = sled::Batch::default();
        for (key, value) in pairs {
            batch.insert(*key, *value);
        }
        self.db.apply_batch(batch)?;
        self.persist()
    }

    fn get(&self, key: &[u8]) -> Res<Option<usize>> {
        Ok(self.db.get(key)?.map(|value| value.len()))
    }

    fn scan(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Res<(usize, usize)> {
        let range = match end {
            Some(end) => self.db.range(start..end),
            None => self.db.range(start..),
        };
        let (mut count, mut bytes) = (0, 0);
        for item in range.take(limit) {
            let (_key, value) = item?;
            count += 1;
            bytes += value.len();
        }
        Ok((count, bytes))
    }

    fn settle(&self) -> Res<&'static str> {
        self.db.flush()?;
        Ok("flush()")
    }

    fn compact(&mut self) -> Res<&'static str> {
        self.db.flush()?;
        Ok("flush() (sled has no compaction call; its page cache rewrites segments itself)")
    }

    fn reported_write_amplification(&self) -> Option<(f64, &'static str)> {
        None
    }
}
