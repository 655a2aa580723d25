//! redb: one table of raw bytes, one write transaction per write (or batch) and one read
//! transaction per read, with redb's default builder (1 GiB cache).

use std::path::Path;

use redb::{Database, ReadableDatabase, TableDefinition};

use super::{Durability, Engine, EngineKind, Res};

pub fn kind() -> EngineKind {
    EngineKind {
        name: "redb",
        library: "redb 4.5.0",
        open,
        settings,
        has_versions: false,
        plain: true,
    }
}

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("bench");

fn settings(durability: Durability) -> String {
    let mode = match durability {
        Durability::None => "Durability::None per commit (no fsync)",
        Durability::Sync => "Durability::Immediate per commit (fsync before commit returns)",
    };
    format!("Database::create (default 1 GiB cache); {mode}")
}

fn open(path: &Path, durability: Durability, versioned: bool) -> Res<Box<dyn Engine>> {
    if versioned {
        return Err(super::no_versions("redb"));
    }
    let db = Database::create(path.join("bench.redb"))?;
    let txn = db.begin_write()?;
    txn.open_table(TABLE)?;
    txn.commit()?;
    let durability = match durability {
        Durability::None => redb::Durability::None,
        Durability::Sync => redb::Durability::Immediate,
    };
    Ok(Box::new(RedbEngine { db, durability }))
}

struct RedbEngine {
    db: Database,
    durability: redb::Durability,
}

impl RedbEngine {
    fn write(&self, pairs: &[(&[u8], &[u8])]) -> Res<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(self.durability)?;
        {
            let mut table = txn.open_table(TABLE)?;
            for (key, value) in pairs {
                table.insert(*key, *value)?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}

impl Engine for RedbEngine {
    fn put(&self, key: &[u8], value: &[u8]) -> Res<()> {
        self.write(&[(key, value)])
    }

    fn put_batch(&self, pairs: &[(&[u8], &[u8])]) -> Res<()> {
        self.write(pairs)
    }

    fn get(&self, key: &[u8]) -> Res<Option<usize>> {
        let table = self.db.begin_read()?.open_table(TABLE)?;
        Ok(table.get(key)?.map(|value| value.value().len()))
    }

    fn scan(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Res<(usize, usize)> {
        let table = self.db.begin_read()?.open_table(TABLE)?;
        let range = match end {
            Some(end) => table.range(start..end)?,
            None => table.range(start..)?,
        };
        let (mut count, mut bytes) = (0, 0);
        for item in range.take(limit) {
            let (_key, value) = item?;
            count += 1;
            bytes += value.value().len();
        }
        Ok((count, bytes))
    }

    fn settle(&self) -> Res<&'static str> {
        // Non-durable commits stay in redb's own memory until a durable one writes them out.
        self.db.begin_write()?.commit()?;
        Ok("an empty Durability::Immediate commit (redb keeps non-durable commits in memory)")
    }

    fn compact(&mut self) -> Res<&'static str> {
        // Compaction needs the last commit to be durable: an empty Immediate commit first.
        let txn = self.db.begin_write()?;
        txn.commit()?;
        while self.db.compact()? {}
        Ok("an empty durable commit, then compact() until it returns false")
    }

    fn reported_write_amplification(&self) -> Option<(f64, &'static str)> {
        None
    }
}
