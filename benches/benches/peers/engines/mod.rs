//! One [`Engine`] per database under test, each opened as its maintainers recommend, with the
//! durability the workload asks for ([`Durability`]). Every engine answers the same calls on the
//! same bytes; versioned queries are offered only by the engines that keep versions
//! ([`Versioned`]): the others are "not supported", never emulated.

use std::path::Path;

mod fjall_engine;
mod lmdb_engine;
mod lmdb_temporal_engine;
mod redb_engine;
mod rocksdb_engine;
mod rocksdb_temporal_engine;
mod sled_engine;
mod surrealkv_engine;
mod zverse_engine;

/// Any engine's error, boxed: a benchmark reports it and stops.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A benchmark step's result.
pub type Res<T> = Result<T, BoxError>;

/// Whether a write returns before or after it is on stable storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// No sync on the write path: a crash can lose recent writes.
    None,
    /// Each write (or batch) returns after its data is synced to the device.
    Sync,
}

/// A database under test, opened in a directory of its own.
pub trait Engine: Send + Sync {
    /// One write, durable as the engine was opened.
    fn put(&self, key: &[u8], value: &[u8]) -> Res<()>;
    /// Every pair in one atomic write (a batch or a transaction).
    fn put_batch(&self, pairs: &[(&[u8], &[u8])]) -> Res<()>;
    /// The latest value's length, or `None` when the key is missing.
    fn get(&self, key: &[u8]) -> Res<Option<usize>>;
    /// Items in `[start, end)` (`end` `None`: to the last key), at most `limit`; returns the
    /// item count and the sum of value lengths (so no engine can skip reading values).
    fn scan(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Res<(usize, usize)>;
    /// Moves what is buffered in memory into the engine's files (a memtable flush), where the
    /// engine has such a step, then waits until its background flushes and compactions are
    /// idle (as a user waits with RocksDB's `WaitForCompact`), where it has them; returns what
    /// was done. The read rows run after it.
    fn settle(&self) -> Res<&'static str>;
    /// The engine's own full compaction, where it has one; returns what was done.
    fn compact(&mut self) -> Res<&'static str>;
    /// Write amplification as the engine itself reports it, with its definition.
    fn reported_write_amplification(&self) -> Option<(f64, &'static str)>;
    /// The versioned queries, for engines that keep versions.
    fn versioned(&self) -> Option<&dyn Versioned> {
        None
    }
    /// Writes and commit groups (one sync each in Sync mode) since open, where the engine
    /// counts them.
    fn commit_counts(&self) -> Option<CommitCounts> {
        None
    }
}

/// An engine's own count of writes and of the commit groups they shared.
#[derive(Clone, Copy, Debug)]
pub struct CommitCounts {
    pub records: u64,
    pub groups: u64,
}

/// The queries over versions: as-of reads, history, range at a version and changes in a
/// key x time box. Versions are the engine's own timestamps, taken from [`Versioned::put_batch_versioned`].
pub trait Versioned: Sync {
    /// Writes `pairs` as one batch and returns the version (timestamp) every write got.
    fn put_batch_versioned(&self, pairs: &[(&[u8], &[u8])]) -> Res<u64>;
    /// The length of `key`'s value as of `version`.
    fn get_at(&self, key: &[u8], version: u64) -> Res<Option<usize>>;
    /// The number of versions `key` has.
    fn history(&self, key: &[u8]) -> Res<usize>;
    /// Keys in `[start, end)` alive as of `version`, or `None` when the engine has no such query.
    fn range_at(&self, start: &[u8], end: &[u8], version: u64) -> Res<Option<usize>>;
    /// Versions written to keys in `[start, end)` (`None`: unbounded) with a version in
    /// `[version_first, version_last]`.
    fn changes(
        &self,
        start: Option<&[u8]>,
        end: Option<&[u8]>,
        version_first: u64,
        version_last: u64,
    ) -> Res<usize>;
    /// The bytes the engine's `changes` queries have read since open and the bytes of its
    /// database, where the engine counts them (ZVerse: `Stats::changes_bytes_read`).
    fn changes_bytes_read(&self) -> Option<(u64, u64)> {
        None
    }
}

/// An engine kind: how to open it, and what its settings are.
pub struct EngineKind {
    /// The name in the tables.
    pub name: &'static str,
    /// The crate and version the harness links.
    pub library: &'static str,
    /// Opens (creates) the engine in an empty directory. `versioned`: keep versions, for the
    /// versioned workloads (only engines that keep versions accept it).
    pub open: fn(&Path, Durability, bool) -> Res<Box<dyn Engine>>,
    /// The engine's configuration and what each durability means for it, exactly.
    pub settings: fn(Durability) -> String,
    /// Whether the engine keeps versions.
    pub has_versions: bool,
    /// Whether it runs the plain rows (fills, reads, scans, YCSB); the two-table anchors run
    /// the versioned rows only.
    pub plain: bool,
}

/// Every engine, ZVerse first, the two-table anchors for the versioned rows last.
pub fn kinds() -> Vec<EngineKind> {
    vec![
        zverse_engine::kind(),
        rocksdb_engine::kind(),
        lmdb_engine::kind(),
        redb_engine::kind(),
        fjall_engine::kind(),
        surrealkv_engine::kind(),
        sled_engine::kind(),
        lmdb_temporal_engine::kind(),
        rocksdb_temporal_engine::kind(),
    ]
}

/// The I/O backend `zverse_linux::open` picks on this machine.
pub fn zverse_backend() -> Res<&'static str> {
    zverse_engine::backend()
}

/// The error for a versioned open of an engine without versions.
fn no_versions(name: &str) -> BoxError {
    format!("{name} keeps no versions").into()
}
