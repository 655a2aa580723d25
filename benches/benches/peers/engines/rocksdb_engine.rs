//! RocksDB 7.8 (Debian's librocksdb, through the `rocksdb` 0.20 bindings), configured as the
//! RocksDB wiki's "Setup Options and Basic Tuning" page recommends for a new database.

use std::path::Path;

use rocksdb::{BlockBasedOptions, Cache, DB, Options, WriteBatch, WriteOptions};

use super::{Durability, Engine, EngineKind, Res};

pub fn kind() -> EngineKind {
    EngineKind {
        name: "RocksDB",
        library: "rocksdb 0.20.1 crate on Debian librocksdb 7.8.3 (shared library)",
        open,
        settings,
        has_versions: false,
        plain: true,
    }
}

const BLOCK_CACHE_BYTES: usize = 256 << 20;

pub(super) fn settings(durability: Durability) -> String {
    let mode = match durability {
        Durability::None => "WriteOptions::sync=false (WAL written, not synced)",
        Durability::Sync => "WriteOptions::sync=true (WAL fsynced per write group)",
    };
    format!(
        "increase_parallelism(nproc), level_compaction_dynamic_level_bytes, bytes_per_sync 1 MiB, \
         block-based table: 256 MiB LRU block cache, 10-bit Bloom filter, \
         cache_index_and_filter_blocks + pin L0, format_version 5; default compression \
         (Snappy, values are incompressible); {mode}"
    )
}

fn open(path: &Path, durability: Durability, versioned: bool) -> Res<Box<dyn Engine>> {
    if versioned {
        return Err(super::no_versions("RocksDB"));
    }
    let db = DB::open(&options()?, path)?;
    Ok(Box::new(RocksEngine { db, write_options: write_options(durability) }))
}

/// The options of [`settings`] (also `RocksDB-temporal`'s).
pub(super) fn options() -> Res<Options> {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&Cache::new_lru_cache(BLOCK_CACHE_BYTES)?);
    table.set_bloom_filter(10.0, false);
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    table.set_format_version(5);
    let mut options = Options::default();
    options.create_if_missing(true);
    let parallelism = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    options.increase_parallelism(i32::try_from(parallelism)?);
    options.set_level_compaction_dynamic_level_bytes(true);
    options.set_bytes_per_sync(1 << 20);
    options.set_block_based_table_factory(&table);
    Ok(options)
}

/// The write options of [`settings`] for `durability`.
pub(super) fn write_options(durability: Durability) -> WriteOptions {
    let mut write_options = WriteOptions::default();
    write_options.set_sync(durability == Durability::Sync);
    write_options
}

struct RocksEngine {
    db: DB,
    write_options: WriteOptions,
}

impl Engine for RocksEngine {
    fn put(&self, key: &[u8], value: &[u8]) -> Res<()> {
        self.db.put_opt(key, value, &self.write_options)?;
        Ok(())
    }

    fn put_batch(&self, pairs: &[(&[u8], &[u8])]) -> Res<()> {
        let mut batch = WriteBatch::default();
        for (key, value) in pairs {
            batch.put(key, value);
        }
        self.db.write_opt(batch, &self.write_options)?;
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Res<Option<usize>> {
        Ok(self.db.get_pinned(key)?.map(|value| value.len()))
    }

    fn scan(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Res<(usize, usize)> {
        let mut iterator = self.db.raw_iterator();
        iterator.seek(start);
        let (mut count, mut bytes) = (0, 0);
        while count < limit {
            let (Some(key), Some(value)) = (iterator.key(), iterator.value()) else { break };
            if end.is_some_and(|end| key >= end) {
                break;
            }
            count += 1;
            bytes += value.len();
            iterator.next();
        }
        iterator.status()?;
        Ok((count, bytes))
    }

    fn settle(&self) -> Res<&'static str> {
        self.db.flush()?;
        wait_for_compact(&self.db, None)?;
        Ok(WAIT_FOR_COMPACT)
    }

    fn compact(&mut self) -> Res<&'static str> {
        self.db.flush()?;
        self.db.compact_range::<&[u8], &[u8]>(None, None);
        Ok("flush() + compact_range(all)")
    }

    fn reported_write_amplification(&self) -> Option<(f64, &'static str)> {
        let stats = self.db.property_value("rocksdb.stats").ok()??;
        let w_amp = parse_sum_w_amp(&stats)?;
        Some((w_amp, "rocksdb.stats Sum W-Amp: flush + compaction bytes written / bytes flushed"))
    }
}

/// The W-Amp column of the "Sum" row of RocksDB's compaction stats table. The row writes the
/// Size column as two fields ("9.97 MB"), the header as one.
fn parse_sum_w_amp(stats: &str) -> Option<f64> {
    let header = stats.lines().find(|line| line.trim_start().starts_with("Level"))?;
    let column = header.split_whitespace().position(|name| name == "W-Amp")?;
    let size_column = header.split_whitespace().position(|name| name == "Size")?;
    let sum = stats.lines().find(|line| line.trim_start().starts_with("Sum"))?;
    let mut fields: Vec<&str> = sum.split_whitespace().collect();
    if fields.get(size_column + 1).is_some_and(|unit| unit.ends_with('B')) {
        fields.remove(size_column + 1);
    }
    fields.get(column)?.parse().ok()
}

/// What [`wait_for_compact`] does, for the notes.
pub(super) const WAIT_FOR_COMPACT: &str = "flush(), then poll until no flush or compaction is \
     pending or running (the rocksdb 0.20 crate has no wait_for_compact; RocksDB 7.8's C API \
     neither)";

/// Waits until `cf` (the default column family when `None`) has no flush or compaction pending
/// or running, polling RocksDB's properties every 10 ms, as `WaitForCompact` would; gives up
/// after 10 minutes.
pub(super) fn wait_for_compact(db: &DB, cf: Option<&rocksdb::ColumnFamily>) -> Res<()> {
    const PROPERTIES: [&str; 4] = [
        "rocksdb.mem-table-flush-pending",
        "rocksdb.compaction-pending",
        "rocksdb.num-running-flushes",
        "rocksdb.num-running-compactions",
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while std::time::Instant::now() < deadline {
        let mut busy = false;
        for property in PROPERTIES {
            let value = match cf {
                Some(cf) => db.property_int_value_cf(cf, property)?,
                None => db.property_int_value(property)?,
            };
            busy |= value.ok_or(property)? > 0;
        }
        if !busy {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Err("RocksDB compactions still running after 10 minutes".into())
}
