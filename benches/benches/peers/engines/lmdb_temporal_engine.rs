//! `LMDB-temporal`: versions built by hand on LMDB (heed), the way a user without a versioned
//! engine would: a key-major and a time-major database in one environment, both written in one
//! write transaction per batch (`zverse_benches::temporal` has the layout). It runs the
//! versioned rows only.

use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use heed::types::Bytes;
use heed::{Database, Env, RoTxn};
use zverse_benches::temporal::{self, Plan};

use super::{Durability, Engine, EngineKind, Res, Versioned};

pub fn kind() -> EngineKind {
    EngineKind {
        name: "LMDB-temporal",
        library: "heed 0.22.1, two databases (key-major, time-major) in one environment",
        open,
        settings,
        has_versions: true,
        plain: false,
    }
}

fn settings(durability: Durability) -> String {
    format!(
        "{}; databases `key_major` (key ‖ !version) and `time_major` (version ‖ key), one write \
         transaction per batch writing both; as-of one get_greater_than_or_equal_to, history one \
         prefix_iter, changes a range of the cheaper database with a filter",
        super::lmdb_engine::settings(durability)
    )
}

fn open(path: &Path, durability: Durability, _versioned: bool) -> Res<Box<dyn Engine>> {
    let env = super::lmdb_engine::open_env(path, durability)?;
    let mut txn = env.write_txn()?;
    let key_major = env.create_database(&mut txn, Some("key_major"))?;
    let time_major = env.create_database(&mut txn, Some("time_major"))?;
    txn.commit()?;
    let version_latest = AtomicU64::new(0);
    Ok(Box::new(LmdbTemporal { env, key_major, time_major, version_latest }))
}

struct LmdbTemporal {
    env: Env,
    key_major: Database<Bytes, Bytes>,
    time_major: Database<Bytes, Bytes>,
    /// The newest batch's version; the next batch takes the one after (under the write lock).
    version_latest: AtomicU64,
}

impl LmdbTemporal {
    /// Calls `found(key, value length)` for each key in `[start, end)` as of `version`, in key
    /// order, until `limit` keys: one seek to each key's newest version at or below `version`,
    /// and one past its older versions.
    fn visit_at(
        &self,
        txn: &RoTxn,
        (start, end): (&[u8], Option<&[u8]>),
        version: u64,
        limit: usize,
        found: &mut dyn FnMut(usize),
    ) -> Res<usize> {
        let key_len = start.len();
        let mut seek = temporal::key_major(start, version);
        let mut count = 0;
        while count < limit {
            let Some((entry, value)) = self.key_major.get_greater_than_or_equal_to(txn, &seek)?
            else {
                break;
            };
            let Some((key, entry_version)) = temporal::split_key_major(entry, key_len) else {
                seek = temporal::after_key(&entry[..key_len.min(entry.len())]);
                continue;
            };
            if end.is_some_and(|end| key >= end) {
                break;
            }
            if entry_version <= version {
                found(value.len());
                count += 1;
                seek = temporal::after_key(key);
            } else {
                seek = temporal::key_major(key, version);
            }
        }
        Ok(count)
    }

    /// The first and last keys written (two seeks), or `None` when the database is empty.
    fn key_bounds(&self, txn: &RoTxn) -> Res<Option<(Vec<u8>, Vec<u8>)>> {
        let (Some((first, _)), Some((last, _))) =
            (self.key_major.first(txn)?, self.key_major.last(txn)?)
        else {
            return Ok(None);
        };
        let strip =
            |entry: &[u8]| entry[..entry.len().saturating_sub(temporal::VERSION_LEN)].to_vec();
        Ok(Some((strip(first), strip(last))))
    }
}

impl Engine for LmdbTemporal {
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
        let txn = self.env.read_txn()?;
        let mut bytes = 0;
        let count = self.visit_at(&txn, (start, end), u64::MAX, limit, &mut |len| bytes += len)?;
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

    fn versioned(&self) -> Option<&dyn Versioned> {
        Some(self)
    }
}

impl Versioned for LmdbTemporal {
    fn put_batch_versioned(&self, pairs: &[(&[u8], &[u8])]) -> Res<u64> {
        let mut txn = self.env.write_txn()?;
        // The write transaction is the only writer: the counter cannot move meanwhile.
        let version = self.version_latest.load(Ordering::Acquire) + 1;
        for (key, value) in pairs {
            self.key_major.put(&mut txn, &temporal::key_major(key, version), value)?;
            self.time_major.put(&mut txn, &temporal::time_major(version, key), value)?;
        }
        txn.commit()?;
        self.version_latest.store(version, Ordering::Release);
        Ok(version)
    }

    fn get_at(&self, key: &[u8], version: u64) -> Res<Option<usize>> {
        let txn = self.env.read_txn()?;
        let seek = temporal::key_major(key, version);
        let Some((entry, value)) = self.key_major.get_greater_than_or_equal_to(&txn, &seek)? else {
            return Ok(None);
        };
        let same_key = temporal::split_key_major(entry, key.len()).is_some_and(|(k, _)| k == key);
        Ok(same_key.then_some(value.len()))
    }

    fn history(&self, key: &[u8]) -> Res<usize> {
        let txn = self.env.read_txn()?;
        let mut count = 0;
        for item in self.key_major.prefix_iter(&txn, key)? {
            let (entry, _value) = item?;
            count += usize::from(entry.len() == key.len() + temporal::VERSION_LEN);
        }
        Ok(count)
    }

    fn range_at(&self, start: &[u8], end: &[u8], version: u64) -> Res<Option<usize>> {
        let txn = self.env.read_txn()?;
        Ok(Some(self.visit_at(&txn, (start, Some(end)), version, usize::MAX, &mut |_| {})?))
    }

    fn changes(
        &self,
        start: Option<&[u8]>,
        end: Option<&[u8]>,
        version_first: u64,
        version_last: u64,
    ) -> Res<usize> {
        let txn = self.env.read_txn()?;
        let Some((key_first, key_last)) = self.key_bounds(&txn)? else { return Ok(0) };
        let version_latest = self.version_latest.load(Ordering::Acquire);
        let window = (version_first, version_last);
        let plan = temporal::plan(start, end, window, (&key_first, &key_last), version_latest);
        let mut count = 0;
        match plan {
            Plan::TimeMajor => {
                let from = version_first.to_be_bytes();
                let bounds = (Bound::Included(&from[..]), Bound::Unbounded);
                for item in self.time_major.range(&txn, &bounds)? {
                    let (entry, _value) = item?;
                    let version = u64::from_be_bytes(entry[..temporal::VERSION_LEN].try_into()?);
                    if version > version_last {
                        break;
                    }
                    let key = temporal::time_major_key(entry).ok_or("short time-major entry")?;
                    count += usize::from(temporal::in_range(key, start, end));
                }
            }
            Plan::KeyMajor => {
                let lower = start.map_or(Bound::Unbounded, Bound::Included);
                let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
                for item in self.key_major.range(&txn, &(lower, upper))? {
                    let (entry, _value) = item?;
                    let Some((_key, version)) = temporal::split_key_major(entry, key_first.len())
                    else {
                        continue;
                    };
                    count += usize::from((version_first..=version_last).contains(&version));
                }
            }
        }
        Ok(count)
    }
}
