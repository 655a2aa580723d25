//! SurrealKV 1.2: `TreeBuilder` defaults (its README's quick start), one transaction per write
//! (or batch) and per read. Commits are async: each is driven by `block_on` on a tokio runtime
//! the engine owns (the README runs it under `#[tokio::main]`). Versioned workloads open the
//! tree with `with_versioning(true, 0)` (keep every version); the others without versioning.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use surrealkv::{HistoryOptions, LSMIterator, Mode, Tree, TreeBuilder};
use tokio::runtime::Runtime;

use super::{Durability, Engine, EngineKind, Res, Versioned};

pub fn kind() -> EngineKind {
    EngineKind {
        name: "SurrealKV",
        library: "surrealkv 1.2.0 (default features off: no encryption)",
        open,
        settings,
        has_versions: true,
        plain: true,
    }
}

/// An upper bound above every 16-byte key, for scans to the end.
const KEY_END: [u8; 17] = [0xFF; 17];
/// A lower bound at or below every non-empty key (SurrealKV refuses an empty key).
const KEY_START: [u8; 1] = [0x00];

fn settings(durability: Durability) -> String {
    let mode = match durability {
        Durability::None => "Durability::Eventual (WAL in OS buffers, no fsync; the default)",
        Durability::Sync => "Durability::Immediate (WAL synced before commit returns)",
    };
    format!(
        "TreeBuilder defaults, versioning off (versioned workloads: with_versioning(true, 0), \
         writes with set_at(harness timestamp)); {mode}"
    )
}

fn open(path: &Path, durability: Durability, versioned: bool) -> Res<Box<dyn Engine>> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let tree = {
        let _context = runtime.enter();
        TreeBuilder::new().with_path(path.to_path_buf()).with_versioning(versioned, 0).build()?
    };
    let durability = match durability {
        Durability::None => surrealkv::Durability::Eventual,
        Durability::Sync => surrealkv::Durability::Immediate,
    };
    Ok(Box::new(SurrealEngine {
        tree: Some(tree),
        runtime,
        durability,
        versioned,
        timestamp_last: AtomicU64::new(0),
    }))
}

struct SurrealEngine {
    /// `Some` until drop closes it.
    tree: Option<Tree>,
    runtime: Runtime,
    durability: surrealkv::Durability,
    versioned: bool,
    /// The last timestamp `put_batch_versioned` gave (Unix nanoseconds, strictly increasing).
    timestamp_last: AtomicU64,
}

impl SurrealEngine {
    fn tree(&self) -> &Tree {
        self.tree.as_ref().expect("the tree is open until drop")
    }

    fn write(&self, pairs: &[(&[u8], &[u8])], timestamp: Option<u64>) -> Res<()> {
        let mut txn = self.tree().begin()?;
        txn.set_durability(self.durability);
        for (key, value) in pairs {
            match timestamp {
                Some(timestamp) => txn.set_at(*key, *value, timestamp)?,
                None => txn.set(*key, *value)?,
            }
        }
        self.runtime.block_on(txn.commit())?;
        Ok(())
    }

    /// The next write timestamp: now in Unix nanoseconds, or one past the last if not later.
    fn timestamp_next(&self) -> Res<u64> {
        let now = u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos())?;
        let previous = self
            .timestamp_last
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| Some(now.max(last + 1)))
            .unwrap_or_else(|last| last);
        Ok(now.max(previous + 1))
    }
}

impl Drop for SurrealEngine {
    fn drop(&mut self) {
        if let Some(tree) = self.tree.take()
            && let Err(error) = self.runtime.block_on(tree.close())
        {
            eprintln!("SurrealKV close failed: {error}");
        }
    }
}

/// Walks `iterator` from its first item, at most `limit` items; returns the count and the sum of
/// value lengths.
fn walk(iterator: &mut impl LSMIterator, limit: usize) -> Res<(usize, usize)> {
    let (mut count, mut bytes) = (0, 0);
    iterator.seek_first()?;
    while iterator.valid() && count < limit {
        count += 1;
        bytes += iterator.value()?.len();
        iterator.next()?;
    }
    Ok((count, bytes))
}

impl Engine for SurrealEngine {
    fn put(&self, key: &[u8], value: &[u8]) -> Res<()> {
        self.write(&[(key, value)], None)
    }

    fn put_batch(&self, pairs: &[(&[u8], &[u8])]) -> Res<()> {
        self.write(pairs, None)
    }

    fn get(&self, key: &[u8]) -> Res<Option<usize>> {
        let txn = self.tree().begin_with_mode(Mode::ReadOnly)?;
        Ok(txn.get(key)?.map(|value| value.len()))
    }

    fn scan(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Res<(usize, usize)> {
        let txn = self.tree().begin_with_mode(Mode::ReadOnly)?;
        let mut range = txn.range(start, end.unwrap_or(&KEY_END))?;
        walk(&mut range, limit)
    }

    fn settle(&self) -> Res<&'static str> {
        Ok("nothing (no memtable flush call in the public API)")
    }

    fn compact(&mut self) -> Res<&'static str> {
        let options = surrealkv::CompactRangeOptions::default();
        self.tree().compact_range(None, None, &options)?;
        Ok("compact_range(all, flush_memtable, to the last level)")
    }

    fn reported_write_amplification(&self) -> Option<(f64, &'static str)> {
        None
    }

    fn versioned(&self) -> Option<&dyn Versioned> {
        if self.versioned { Some(self) } else { None }
    }
}

impl Versioned for SurrealEngine {
    fn put_batch_versioned(&self, pairs: &[(&[u8], &[u8])]) -> Res<u64> {
        let timestamp = self.timestamp_next()?;
        self.write(pairs, Some(timestamp))?;
        Ok(timestamp)
    }

    fn get_at(&self, key: &[u8], version: u64) -> Res<Option<usize>> {
        let txn = self.tree().begin_with_mode(Mode::ReadOnly)?;
        Ok(txn.get_at(key, version)?.map(|value| value.len()))
    }

    fn history(&self, key: &[u8]) -> Res<usize> {
        let txn = self.tree().begin_with_mode(Mode::ReadOnly)?;
        let mut end = key.to_vec();
        end.push(0);
        let mut history = txn.history(key, end.as_slice())?;
        Ok(walk(&mut history, usize::MAX)?.0)
    }

    fn range_at(&self, _start: &[u8], _end: &[u8], _version: u64) -> Res<Option<usize>> {
        Ok(None)
    }

    fn changes(
        &self,
        start: Option<&[u8]>,
        end: Option<&[u8]>,
        version_first: u64,
        version_last: u64,
    ) -> Res<usize> {
        let txn = self.tree().begin_with_mode(Mode::ReadOnly)?;
        let options = HistoryOptions::new().with_ts_range(version_first, version_last);
        let mut history = txn.history_with_options(
            start.unwrap_or(&KEY_START),
            end.unwrap_or(&KEY_END),
            &options,
        )?;
        Ok(walk(&mut history, usize::MAX)?.0)
    }
}
