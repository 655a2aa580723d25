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
    /// lose that window.
    Periodic(Duration),
    /// The log is never synced by ZVerse (the OS writes it back when it likes); a crash can
    /// lose any write not yet in a segment. For bulk loads and caches.
    None,
}

/// Which old versions compaction keeps. Whatever the rule, versions pinned by a live snapshot
/// are kept, and for every key the newest version at or below the horizon is kept, so every
/// as-of read at or after the horizon stays exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Retention {
    /// Every version, forever.
    All,
    /// Versions written within this long before now.
    Duration(Duration),
    /// The newest this many versions of each key (at least 1).
    Versions(u32),
}

/// How to open a database: a builder, `Options::default().durability(Durability::Sync)`.
#[derive(Clone, Debug)]
pub struct Options {
    pub(crate) durability: Durability,
    pub(crate) retention: Retention,
    pub(crate) memtable_bytes_max: u64,
    pub(crate) segment_block_bytes: u32,
    pub(crate) compaction_trigger_segments: u32,
    pub(crate) create_if_missing: bool,
    pub(crate) locality_advisor: bool,
    pub(crate) log_preallocation_bytes: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            durability: Durability::Sync,
            retention: Retention::All,
            memtable_bytes_max: 64 << 20,
            segment_block_bytes: 4 << 10,
            compaction_trigger_segments: 8,
            create_if_missing: true,
            locality_advisor: true,
            log_preallocation_bytes: 1 << 20,
        }
    }
}

impl Options {
    /// When writes are durable. Default: [`Durability::Sync`].
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Options {
        self.durability = durability;
        self
    }

    /// Which old versions compaction keeps. Default: [`Retention::All`].
    #[must_use]
    pub fn retention(mut self, retention: Retention) -> Options {
        self.retention = retention;
        self
    }

    /// Bytes of writes the memtable collects before it is flushed to a segment. Default 64 MiB;
    /// at least 4 KiB.
    #[must_use]
    pub fn memtable_bytes_max(mut self, bytes: u64) -> Options {
        self.memtable_bytes_max = bytes.max(4 << 10);
        self
    }

    /// Target size of a segment data block. Default 4 KiB; between 256 bytes and 1 MiB.
    #[must_use]
    pub fn segment_block_bytes(mut self, bytes: u32) -> Options {
        self.segment_block_bytes = bytes.clamp(256, 1 << 20);
        self
    }

    /// Number of segments at which background compaction merges them. Default 8; at least 2.
    #[must_use]
    pub fn compaction_trigger_segments(mut self, count: u32) -> Options {
        self.compaction_trigger_segments = count.max(2);
        self
    }

    /// Whether `open` creates a missing directory. Default `true`.
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
}
