//! [`Options`]: how a database is opened. The defaults are right for most users.

use std::time::Duration;

/// When a write is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// A write returns after its log append is synced (fdatasync). Concurrent writers share
    /// one sync (group commit). No reader ever sees a write that a crash could still lose.
    Sync,
    /// Writes are synced in the background at most this long after they return; a crash can
    /// lose that window. Until the sync (or until 64 KiB of log are waiting) the log's newest
    /// frames are held in the process's memory, so a killed process, like a crashed machine,
    /// loses that window. Periods below [`Durability::PERIOD_MIN`] (1 ms) are raised to it, so
    /// that `Periodic(Duration::ZERO)` does not keep a core busy while the database is idle.
    Periodic(Duration),
    /// The log is never synced by ZVerse (the OS writes it back when it likes); a crash can
    /// lose any write not yet in a segment. The log's newest frames, up to 64 KiB, are held in
    /// the process's memory until a flush, `close` or the next 64 KiB, so a killed process
    /// loses them too. For bulk loads and caches.
    None,
}

impl Durability {
    /// The shortest period of [`Durability::Periodic`]; shorter ones are raised to it.
    pub const PERIOD_MIN: Duration = Duration::from_millis(1);
}

/// Which old versions compaction keeps. Whatever the rule, versions pinned by a live snapshot
/// are kept, and for every key the newest version at or below the horizon is kept, so every
/// as-of read at or after the horizon stays exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Retention {
    /// Every version, forever.
    All,
    /// Versions written within this long before now (and each key's newest before that).
    /// Older ones go as compaction reaches them: a history segment once everything in it has
    /// a newer version past the horizon, whole.
    Duration(Duration),
    /// The newest this many versions of each key (at least 1). Compaction may keep more for
    /// a while: a history merge sees only the versions of the segments it merges.
    Versions(u32),
}

/// How to open a database: a builder, `Options::default().durability(Durability::Sync)`.
///
/// ```
/// # fn main() -> zverse::Result<()> {
/// # let dir = tempfile::tempdir()?;
/// use zverse::{Db, Durability, Options, Retention};
/// let options = Options::default()
///     .durability(Durability::Sync)
///     .retention(Retention::All)
///     .memtable_bytes_max(16 << 20);
/// let db = Db::open(dir.path(), options)?;
/// # drop(db);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Options {
    pub(crate) durability: Durability,
    pub(crate) retention: Retention,
    pub(crate) memtable_bytes_max: u64,
    pub(crate) segment_block_bytes: u32,
    pub(crate) compaction_trigger_segments: u32,
    pub(crate) compaction_fan_in: u32,
    pub(crate) segment_bytes_target: u64,
    pub(crate) level_base_bytes: u64,
    pub(crate) level_size_ratio: u32,
    pub(crate) memory_bytes_max: u64,
    pub(crate) write_slowdown_segments: u32,
    pub(crate) write_stop_segments: u32,
    pub(crate) create_if_missing: bool,
    pub(crate) locality_advisor: bool,
    pub(crate) log_preallocation_bytes: u64,
    pub(crate) read_only: bool,
    pub(crate) version_ahead_max: Duration,
    /// `None`: [`Options::fence_keys_budget_bytes`] derives it from `memory_bytes_max`.
    pub(crate) fence_keys_bytes_max: Option<u64>,
    pub(crate) transaction_bytes_max: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            durability: Durability::Sync,
            retention: Retention::All,
            memtable_bytes_max: 64 << 20,
            segment_block_bytes: 4 << 10,
            compaction_trigger_segments: 8,
            compaction_fan_in: 8,
            segment_bytes_target: 256 << 20,
            level_base_bytes: 512 << 20,
            level_size_ratio: 10,
            memory_bytes_max: 1 << 30,
            write_slowdown_segments: 20,
            write_stop_segments: 36,
            create_if_missing: true,
            locality_advisor: true,
            log_preallocation_bytes: 1 << 20,
            read_only: false,
            version_ahead_max: Duration::from_secs(60 * 60),
            fence_keys_bytes_max: None,
            transaction_bytes_max: 64 << 20,
        }
    }
}

impl Options {
    /// When writes are durable. Default: [`Durability::Sync`]. A `Periodic` period below
    /// [`Durability::PERIOD_MIN`] is raised to it.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// use std::time::Duration;
    /// use zverse::{Db, Durability, Options};
    /// let periodic = Durability::Periodic(Duration::from_millis(100));
    /// let options = Options::default().durability(periodic);
    /// let db = Db::open(dir.path(), options)?;
    /// db.put(b"k", b"v")?; // returns before the sync; synced within 100 ms
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Options {
        self.durability = match durability {
            Durability::Periodic(period) => {
                Durability::Periodic(period.max(Durability::PERIOD_MIN))
            }
            other => other,
        };
        self
    }

    /// Which old versions compaction keeps. Default: [`Retention::All`].
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// use std::time::Duration;
    /// use zverse::{Db, Options, Retention};
    /// let db = Db::open(dir.path(), Options::default().retention(Retention::Versions(2)))?;
    /// for value in [b"1", b"2", b"3"] {
    ///     db.put(b"k", value)?;
    /// }
    /// db.compact()?;
    /// assert_eq!(db.history(b"k")?.count(), 2);
    /// # let _ = Options::default().retention(Retention::Duration(Duration::from_secs(86_400)));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn retention(mut self, retention: Retention) -> Options {
        self.retention = retention;
        self
    }

    /// Bytes of writes the memtable collects before it is flushed to a segment. Default 64 MiB;
    /// at least 4 KiB.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// let options = zverse::Options::default().memtable_bytes_max(4 << 10);
    /// let db = zverse::Db::open(dir.path(), options)?;
    /// for index in 0..100_u32 {
    ///     db.put(&index.to_be_bytes(), &[0; 100])?;
    /// }
    /// db.flush()?; // waits for the flushes the full memtables started
    /// assert!(db.stats().flushes >= 2);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn memtable_bytes_max(mut self, bytes: u64) -> Options {
        self.memtable_bytes_max = bytes.max(4 << 10);
        self
    }

    /// Target size of a segment data block. Default 4 KiB; between 256 bytes and 1 MiB.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// let options = zverse::Options::default().segment_block_bytes(16 << 10);
    /// let db = zverse::Db::open(dir.path(), options)?;
    /// # drop(db);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn segment_block_bytes(mut self, bytes: u32) -> Options {
        self.segment_block_bytes = bytes.clamp(256, 1 << 20);
        self
    }

    /// Number of level-0 segments (flush outputs) at which background compaction merges all
    /// of them (at most 63, the merge's fan-in limit less one) into level 1. Default 8; at
    /// least 2.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// let options = zverse::Options::default().compaction_trigger_segments(4);
    /// let db = zverse::Db::open(dir.path(), options)?;
    /// # drop(db);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn compaction_trigger_segments(mut self, count: u32) -> Options {
        self.compaction_trigger_segments = count.max(2);
        self
    }

    /// The most history segments one history merge takes (a level-0 step takes every level-0
    /// segment, at most 63; a level step one segment and what it meets below). Default 8;
    /// between 2 and 64.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// let options = zverse::Options::default().compaction_fan_in(4);
    /// let db = zverse::Db::open(dir.path(), options)?;
    /// # drop(db);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn compaction_fan_in(mut self, count: u32) -> Options {
        self.compaction_fan_in = count.clamp(2, zverse_core::merge::FAN_IN_MAX as u32);
        self
    }

    /// The size at which flushes and compactions start a new segment file: no segment's data
    /// blocks exceed it by more than one block (a current level's segment splits only between
    /// keys; a history segment's builder holds at most this much). Default 256 MiB; between
    /// 4 KiB and 1 GiB (the format's limit is 4 GiB).
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// let options = zverse::Options::default().segment_bytes_target(64 << 20);
    /// let db = zverse::Db::open(dir.path(), options)?;
    /// # drop(db);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn segment_bytes_target(mut self, bytes: u64) -> Options {
        self.segment_bytes_target = bytes.clamp(4 << 10, 1 << 30);
        self
    }

    /// The size of level 1 at which compaction moves a segment of it to level 2; level `n`'s
    /// target is this times `level_size_ratio^(n-1)`. Default 512 MiB (the eight 64 MiB
    /// memtables level 0 holds at the compaction trigger: level 0 merges into a level 1 of
    /// about its own size, as RocksDB sizes its base level); at least 4 KiB.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// let options = zverse::Options::default().level_base_bytes(64 << 20);
    /// let db = zverse::Db::open(dir.path(), options)?;
    /// # drop(db);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn level_base_bytes(mut self, bytes: u64) -> Options {
        self.level_base_bytes = bytes.max(4 << 10);
        self
    }

    /// How much larger each current level is than the one above it. Default 10 (write
    /// amplification about the ratio per level, space about 1.1x of the data in the current
    /// levels); between 2 and 100.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// let options = zverse::Options::default().level_size_ratio(8);
    /// let db = zverse::Db::open(dir.path(), options)?;
    /// # drop(db);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn level_size_ratio(mut self, ratio: u32) -> Options {
        self.level_size_ratio = ratio.clamp(2, 100);
        self
    }

    /// The size at which current level `level` (1 and down) passes its target.
    pub(crate) fn level_bytes_target(&self, level: u8) -> u64 {
        let exponent = u32::from(level.saturating_sub(1));
        let factor = u64::from(self.level_size_ratio).saturating_pow(exponent);
        self.level_base_bytes.saturating_mul(factor)
    }

    /// The memory the engine's own buffers may take, from which the other limits derive: the
    /// memtables (active and sealed) take at most half (but two memtables always: writers
    /// stall while that many are full), and each segment being written (one flush and one
    /// compaction at a time) keeps at most an eighth as metadata before it is split, and the
    /// fence keys take at most a sixteenth (unless `fence_keys_bytes_max` says otherwise). Mapped
    /// segment pages (the page cache) are not counted: the kernel reclaims them. Default 1 GiB;
    /// at least 1 MiB.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// let options = zverse::Options::default().memory_bytes_max(256 << 20);
    /// let db = zverse::Db::open(dir.path(), options)?;
    /// # drop(db);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn memory_bytes_max(mut self, bytes: u64) -> Options {
        self.memory_bytes_max = bytes.max(1 << 20);
        self
    }

    /// Number of level-0 segments at which each write is delayed by 1 ms, so that compaction
    /// catches up. Default 20; never below `compaction_trigger_segments`.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// let options = zverse::Options::default().write_slowdown_segments(16);
    /// let db = zverse::Db::open(dir.path(), options)?;
    /// # drop(db);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn write_slowdown_segments(mut self, count: u32) -> Options {
        self.write_slowdown_segments = count.max(2);
        self
    }

    /// Number of level-0 segments at which writes wait for compaction (or fail, if compaction
    /// is failing). Default 36; at least the slowdown count plus
    /// `compaction_fan_in`.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// let options = zverse::Options::default();
    /// let options = options.write_slowdown_segments(16).write_stop_segments(32);
    /// let db = zverse::Db::open(dir.path(), options)?;
    /// # drop(db);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn write_stop_segments(mut self, count: u32) -> Options {
        self.write_stop_segments = count.max(2);
        self
    }

    /// Memtables (active and sealed) at which writers wait for a flush: half of
    /// `memory_bytes_max` over `memtable_bytes_max`, at least 2.
    pub(crate) fn memtable_limit(&self) -> usize {
        let limit = self.memory_bytes_max / 2 / self.memtable_bytes_max.max(1);
        usize::try_from(limit).unwrap_or(usize::MAX).max(2)
    }

    /// Bytes of metadata a segment being written may hold before it is split.
    pub(crate) fn segment_metadata_bytes_max(&self) -> u64 {
        (self.memory_bytes_max / 8).max(64 << 10)
    }

    /// The open segment count at which writes slow down: never below the compaction trigger.
    pub(crate) fn write_slowdown_segment_count(&self) -> usize {
        self.write_slowdown_segments.max(self.compaction_trigger_segments) as usize
    }

    /// The open segment count at which writers stop: at least one compaction step above the
    /// slowdown count.
    pub(crate) fn write_stop_segment_count(&self) -> usize {
        let above_slowdown = self.write_slowdown_segment_count() + self.compaction_fan_in as usize;
        (self.write_stop_segments as usize).max(above_slowdown)
    }

    /// Whether `open` creates a missing directory. Default `true`.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// let missing = dir.path().join("missing");
    /// let options = zverse::Options::default().create_if_missing(false);
    /// assert!(zverse::Db::open(&missing, options).is_err());
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn create_if_missing(mut self, create: bool) -> Options {
        self.create_if_missing = create;
        self
    }

    /// Whether reads give the kernel madvise hints about segment pages: `MADV_RANDOM` on every
    /// segment from its open (point reads; the metadata the open checks is `MADV_WILLNEED`),
    /// `MADV_SEQUENTIAL` + `MADV_WILLNEED` a window ahead of scans and compaction, inside the
    /// Z-range they read, and `MADV_COLD` on segments compaction retired. Default `true`.
    /// Off, no advice is given at all and segments keep the kernel's default read-ahead
    /// (`Stats::locality` still counts pages touched).
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// let options = zverse::Options::default().locality_advisor(false);
    /// let db = zverse::Db::open(dir.path(), options)?;
    /// # drop(db);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn locality_advisor(mut self, enabled: bool) -> Options {
        self.locality_advisor = enabled;
        self
    }

    /// In [`Durability::Sync`] mode, how far ahead of its appends the log is filled with zeros
    /// (in whole pages), so that a commit's `fdatasync` writes data only, not a new file size
    /// and extent (the append limit against the overwrite limit: docs/io.md). Costs one write
    /// of this many zeros each time the appends reach the filled length. Default 1 MiB, and
    /// never more than [`Options::memtable_bytes_max`] (a log rotates with its memtable); 0
    /// turns it off. Other durability modes never fill ahead.
    ///
    /// ```
    /// use zverse::{Durability, Options};
    /// // Synced commits into a log zero-filled 4 MiB ahead of its appends.
    /// let options = Options::default()
    ///     .durability(Durability::Sync)
    ///     .log_preallocation_bytes(4 << 20);
    /// # let _ = options;
    /// ```
    #[must_use]
    pub fn log_preallocation_bytes(mut self, bytes: u64) -> Options {
        self.log_preallocation_bytes = bytes;
        self
    }

    /// The zero-fill ahead the log gets under these options: never more than a memtable's
    /// worth, as the log rotates when its memtable is full.
    pub(crate) fn log_fill_ahead_bytes(&self) -> u64 {
        if self.durability == Durability::Sync {
            self.log_preallocation_bytes.min(self.memtable_bytes_max)
        } else {
            0
        }
    }

    /// Memory for the fence keys of all open segments: the key index sampled in memory (a key
    /// and 20 bytes per 16 or more entries, plus 4 bytes per data block; at most 1/32 of each
    /// segment file), so that a point read searches memory, then decodes at most 4 entries of
    /// one segment's key index. About 20 MiB per GiB of segments at 16-byte keys, 100-byte
    /// values and 4 KiB blocks; built by a segment's first point read. A segment opened
    /// when the budget is spent searches the on-disk fences (8-byte key prefixes) instead.
    /// A segment builds them only when a point read finds its on-disk prefix fences too wide
    /// (more than 64 entries to search: keys that share their first 8 bytes); with distinct
    /// prefixes the on-disk fences narrow a search to 32 entries, which measured faster than
    /// the fence keys, so those segments spend nothing. Default 1/16 of
    /// [`Options::memory_bytes_max`] (64 MiB); 0 turns them off.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// let options = zverse::Options::default().fence_keys_bytes_max(64 << 20);
    /// let db = zverse::Db::open(dir.path(), options)?;
    /// db.put(b"/*ns*db*tb*1", b"record")?;
    /// db.flush()?; // the segment's first point read builds its fence keys
    /// assert_eq!(db.get(b"/*ns*db*tb*1")?.as_deref(), Some(&b"record"[..]));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn fence_keys_bytes_max(mut self, bytes: u64) -> Options {
        self.fence_keys_bytes_max = Some(bytes);
        self
    }

    /// The fence keys' budget: `fence_keys_bytes_max` if set, else 1/16 of
    /// `memory_bytes_max`.
    pub(crate) fn fence_keys_budget_bytes(&self) -> u64 {
        self.fence_keys_bytes_max.unwrap_or(self.memory_bytes_max / 16)
    }

    /// The most bytes one transaction tracks until it commits: its write set (keys and
    /// values), and under `Isolation::Serializable` its read set (keys) and scanned ranges
    /// (their bounds). An operation that would pass it fails with
    /// [`Error::TransactionTooLarge`](crate::Error::TransactionTooLarge). Default 64 MiB; at
    /// least 4 KiB.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// use zverse::{Db, Error, Options};
    /// let db = Db::open(dir.path(), Options::default().transaction_bytes_max(4 << 10))?;
    /// let mut tx = db.transaction();
    /// let too_large = tx.set(b"k", &[0; 8 << 10]);
    /// assert!(matches!(too_large, Err(Error::TransactionTooLarge { .. })));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn transaction_bytes_max(mut self, bytes: u64) -> Options {
        self.transaction_bytes_max = bytes.max(4 << 10);
        self
    }

    /// Opens the database for reading only. Default `false`. A read-only open takes no lock,
    /// creates, writes, syncs and deletes nothing (recovery replays the logs into memory
    /// only), so it works on a read-only directory, as another user, and while another
    /// process has the database open for writing. Its view is the database as of the open:
    /// writes made afterwards, by anyone, are not seen (open again to see them), nor are the
    /// newest writes a writer under [`Durability::Periodic`] or `None` still holds in its
    /// memory (at most 64 KiB of log, or one period). Every write,
    /// `flush` and `compact` fails with [`crate::Error::OpenedReadOnly`]. The directory and
    /// its `MANIFEST` must exist.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// use zverse::{Db, Error, Options};
    /// let writer = Db::open(dir.path(), Options::default())?;
    /// writer.put(b"k", b"v")?;
    /// let reader = Db::open(dir.path(), Options::default().read_only(true))?;
    /// assert_eq!(reader.get(b"k")?.as_deref(), Some(&b"v"[..]));
    /// assert!(matches!(reader.put(b"k", b"w"), Err(Error::OpenedReadOnly)));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn read_only(mut self, read_only: bool) -> Options {
        self.read_only = read_only;
        self
    }

    /// How far past the wall clock `Batch::commit_at` may set a version. Default one hour.
    /// A version beyond now plus this is refused with [`crate::Error::VersionTooFarAhead`]
    /// and nothing is written: every later write gets a version above the newest one, so one
    /// far-future version (a wrong clock, a wrong number, `u64::MAX`) would stamp every write
    /// after it with that future time, and could exhaust the versions.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// use std::time::{Duration, SystemTime};
    /// use zverse::{Db, Error, Options, Version};
    /// let db = Db::open(dir.path(), Options::default().version_ahead_max(Duration::from_secs(60)))?;
    /// let in_an_hour = Version::from_system_time(SystemTime::now() + Duration::from_secs(3600));
    /// let refused = db.batch().put(b"k", b"v").commit_at(in_an_hour);
    /// assert!(matches!(refused, Err(Error::VersionTooFarAhead { .. })));
    /// assert_eq!(db.get(b"k")?, None); // nothing written
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn version_ahead_max(mut self, ahead: Duration) -> Options {
        self.version_ahead_max = ahead;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periodic_periods_below_the_minimum_are_raised_to_it() {
        for (asked, got) in [
            (Duration::ZERO, Durability::PERIOD_MIN),
            (Duration::from_nanos(1), Durability::PERIOD_MIN),
            (Duration::from_millis(5), Duration::from_millis(5)),
        ] {
            let options = Options::default().durability(Durability::Periodic(asked));
            assert_eq!(options.durability, Durability::Periodic(got), "{asked:?}");
        }
        assert_eq!(Options::default().durability(Durability::None).durability, Durability::None);
    }
}
