//! `RocksDB-temporal`: versions built by hand on RocksDB, the way a user without a versioned
//! engine would: a key-major and a time-major column family, both written in one `WriteBatch`
//! per batch (`zverse_benches::temporal` has the layout), with the harness's RocksDB options. It
//! runs the versioned rows only.

use std::path::Path;
use std::sync::Mutex;

use rocksdb::{ColumnFamily, DB, DBRawIterator, ReadOptions, WriteBatch, WriteOptions};
use zverse_benches::temporal::{self, Plan};

use super::{Durability, Engine, EngineKind, Res, Versioned};

pub fn kind() -> EngineKind {
    EngineKind {
        name: "RocksDB-temporal",
        library: "rocksdb 0.20.1 on librocksdb 7.8.3, two column families (key-major, time-major)",
        open,
        settings,
        has_versions: true,
        plain: false,
    }
}

const KEY_MAJOR: &str = "key_major";
const TIME_MAJOR: &str = "time_major";

fn settings(durability: Durability) -> String {
    format!(
        "{}; column families `key_major` (key ‖ !version) and `time_major` (version ‖ key), one \
         WriteBatch per batch writing both; as-of one iterator seek, history one prefix scan, \
         changes a scan of the cheaper column family with a filter",
        super::rocksdb_engine::settings(durability)
    )
}

fn open(path: &Path, durability: Durability, _versioned: bool) -> Res<Box<dyn Engine>> {
    let mut options = super::rocksdb_engine::options()?;
    options.create_missing_column_families(true);
    let db = DB::open_cf(&options, path, [KEY_MAJOR, TIME_MAJOR])?;
    let write_options = super::rocksdb_engine::write_options(durability);
    Ok(Box::new(RocksTemporal { db, write_options, version_latest: Mutex::new(0) }))
}

struct RocksTemporal {
    db: DB,
    write_options: WriteOptions,
    /// The newest batch's version, held while a batch is written so that versions commit in
    /// order.
    version_latest: Mutex<u64>,
}

impl RocksTemporal {
    fn cf(&self, name: &str) -> Res<&ColumnFamily> {
        Ok(self.db.cf_handle(name).ok_or("a column family is missing")?)
    }

    fn flush_both(&self) -> Res<()> {
        self.db.flush_cf(self.cf(KEY_MAJOR)?)?;
        self.db.flush_cf(self.cf(TIME_MAJOR)?)?;
        Ok(())
    }

    fn iterator(&self, name: &str, upper: Option<Vec<u8>>) -> Res<DBRawIterator<'_>> {
        let mut read_options = ReadOptions::default();
        if let Some(upper) = upper {
            read_options.set_iterate_upper_bound(upper);
        }
        Ok(self.db.raw_iterator_cf_opt(self.cf(name)?, read_options))
    }

    fn version_latest(&self) -> u64 {
        *self.version_latest.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Calls `found(value length)` for each key in `[start, end)` as of `version`, in key
    /// order, until `limit` keys: one seek to each key's newest version at or below `version`,
    /// and one past its older versions.
    fn visit_at(
        &self,
        (start, end): (&[u8], Option<&[u8]>),
        version: u64,
        limit: usize,
        found: &mut dyn FnMut(usize),
    ) -> Res<usize> {
        let key_len = start.len();
        let mut iterator = self.iterator(KEY_MAJOR, end.map(<[u8]>::to_vec))?;
        iterator.seek(temporal::key_major(start, version));
        let mut count = 0;
        while count < limit {
            let (Some(entry), Some(value)) = (iterator.key(), iterator.value()) else { break };
            let Some((key, entry_version)) = temporal::split_key_major(entry, key_len) else {
                iterator.next();
                continue;
            };
            if entry_version <= version {
                found(value.len());
                count += 1;
                let after = temporal::after_key(key);
                iterator.seek(after);
            } else {
                let seek = temporal::key_major(key, version);
                iterator.seek(seek);
            }
        }
        iterator.status()?;
        Ok(count)
    }

    /// The first and last keys written (two seeks), or `None` when the table is empty.
    fn key_bounds(&self) -> Res<Option<(Vec<u8>, Vec<u8>)>> {
        let mut iterator = self.iterator(KEY_MAJOR, None)?;
        iterator.seek_to_first();
        let Some(first) = iterator.key().map(<[u8]>::to_vec) else { return Ok(None) };
        iterator.seek_to_last();
        let Some(last) = iterator.key().map(<[u8]>::to_vec) else { return Ok(None) };
        iterator.status()?;
        let strip = |mut entry: Vec<u8>| {
            entry.truncate(entry.len().saturating_sub(temporal::VERSION_LEN));
            entry
        };
        Ok(Some((strip(first), strip(last))))
    }
}

impl Engine for RocksTemporal {
    fn put(&self, key: &[u8], value: &[u8]) -> Res<()> {
        self.put_batch_versioned(&[(key, value)])?;
        Ok(())
    }

    fn put_batch(&self, pairs: &[(&[u8], &[u8])]) -> Res<()> {
        self.put_batch_versioned(pairs)?;
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Res<Option<usize>> {
        self.get_at(key, u64::MAX)
    }

    fn scan(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Res<(usize, usize)> {
        let mut bytes = 0;
        let count = self.visit_at((start, end), u64::MAX, limit, &mut |len| bytes += len)?;
        Ok((count, bytes))
    }

    fn settle(&self) -> Res<&'static str> {
        self.flush_both()?;
        for name in [KEY_MAJOR, TIME_MAJOR] {
            super::rocksdb_engine::wait_for_compact(&self.db, Some(self.cf(name)?))?;
        }
        Ok("flush_cf(both), then poll each until no flush or compaction is pending or running")
    }

    fn compact(&mut self) -> Res<&'static str> {
        self.flush_both()?;
        for name in [KEY_MAJOR, TIME_MAJOR] {
            self.db.compact_range_cf::<&[u8], &[u8]>(self.cf(name)?, None, None);
        }
        Ok("flush_cf + compact_range_cf(all), both")
    }

    fn reported_write_amplification(&self) -> Option<(f64, &'static str)> {
        None
    }

    fn versioned(&self) -> Option<&dyn Versioned> {
        Some(self)
    }
}

impl Versioned for RocksTemporal {
    fn put_batch_versioned(&self, pairs: &[(&[u8], &[u8])]) -> Res<u64> {
        let mut latest = self.version_latest.lock().map_err(|_| "a writer panicked")?;
        let version = *latest + 1;
        let (key_major, time_major) = (self.cf(KEY_MAJOR)?, self.cf(TIME_MAJOR)?);
        let mut batch = WriteBatch::default();
        for (key, value) in pairs {
            batch.put_cf(key_major, temporal::key_major(key, version), value);
            batch.put_cf(time_major, temporal::time_major(version, key), value);
        }
        self.db.write_opt(batch, &self.write_options)?;
        *latest = version;
        Ok(version)
    }

    fn get_at(&self, key: &[u8], version: u64) -> Res<Option<usize>> {
        let mut iterator = self.iterator(KEY_MAJOR, Some(temporal::after_key(key)))?;
        iterator.seek(temporal::key_major(key, version));
        let found = match (iterator.key(), iterator.value()) {
            (Some(entry), Some(value)) => temporal::split_key_major(entry, key.len())
                .is_some_and(|(k, _)| k == key)
                .then_some(value.len()),
            _ => None,
        };
        iterator.status()?;
        Ok(found)
    }

    fn history(&self, key: &[u8]) -> Res<usize> {
        let mut iterator = self.iterator(KEY_MAJOR, Some(temporal::after_key(key)))?;
        iterator.seek(key);
        let mut count = 0;
        while let Some(entry) = iterator.key() {
            count += usize::from(entry.len() == key.len() + temporal::VERSION_LEN);
            iterator.next();
        }
        iterator.status()?;
        Ok(count)
    }

    fn range_at(&self, start: &[u8], end: &[u8], version: u64) -> Res<Option<usize>> {
        Ok(Some(self.visit_at((start, Some(end)), version, usize::MAX, &mut |_| {})?))
    }

    fn changes(
        &self,
        start: Option<&[u8]>,
        end: Option<&[u8]>,
        version_first: u64,
        version_last: u64,
    ) -> Res<usize> {
        let Some((key_first, key_last)) = self.key_bounds()? else { return Ok(0) };
        let window = (version_first, version_last);
        let bounds = (key_first.as_slice(), key_last.as_slice());
        let mut count = 0;
        match temporal::plan(start, end, window, bounds, self.version_latest()) {
            Plan::TimeMajor => {
                let upper = version_last.checked_add(1).map(|v| v.to_be_bytes().to_vec());
                let mut iterator = self.iterator(TIME_MAJOR, upper)?;
                iterator.seek(version_first.to_be_bytes());
                while let Some(entry) = iterator.key() {
                    let key = temporal::time_major_key(entry).ok_or("short time-major entry")?;
                    count += usize::from(temporal::in_range(key, start, end));
                    iterator.next();
                }
                iterator.status()?;
            }
            Plan::KeyMajor => {
                let mut iterator = self.iterator(KEY_MAJOR, end.map(<[u8]>::to_vec))?;
                match start {
                    Some(start) => iterator.seek(start),
                    None => iterator.seek_to_first(),
                }
                while let Some(entry) = iterator.key() {
                    if let Some((_key, version)) = temporal::split_key_major(entry, key_first.len())
                    {
                        count += usize::from((version_first..=version_last).contains(&version));
                    }
                    iterator.next();
                }
                iterator.status()?;
            }
        }
        Ok(count)
    }
}
