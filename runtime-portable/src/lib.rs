//! ZVerse: an embedded, versioned key-value store.
//!
//! Every write gets a [`Version`] (a hybrid-logical-clock timestamp in microseconds), and
//! every version stays readable until retention drops it: read the latest value, a value as
//! of any version, a key's whole history, a key range as of a version (forwards or
//! backwards), or every change to a key range within a time window.
//!
//! ```
//! # fn main() -> zverse::Result<()> {
//! # let dir = tempfile::tempdir()?;
//! use zverse::{Db, Options};
//!
//! let db = Db::open(dir.path(), Options::default())?;
//! let v1 = db.put(b"user:1", b"alice")?;
//! let v2 = db.put(b"user:1", b"alicia")?;
//! db.batch().put(b"user:2", b"bob").put(b"user:3", b"carol").commit()?;
//! assert_eq!(db.get(b"user:1")?.as_deref(), Some(&b"alicia"[..]));
//! assert_eq!(db.get_at(b"user:1", v1)?.as_deref(), Some(&b"alice"[..]));
//! assert_eq!(db.prefix(b"user:")?.count(), 3);
//! let (last, _) = db.range("user:".."user:3")?.next_back().transpose()?.unwrap();
//! assert_eq!(&last[..], b"user:2");
//! let changed: Vec<_> = db.changes(.., v1..=v2)?.collect::<Result<_, _>>()?;
//! assert_eq!(changed.len(), 2);
//! # Ok(())
//! # }
//! ```
//!
//! # Reads
//! [`Db`] reads the latest data or data as of a version (`get_at`, `range_at`, `prefix_at`,
//! `first_at`, `last_at`); a [`Snapshot`] has the same reads, pinned at one version. Key
//! ranges are written as in std ([`KeyRange`]: `b"a"..b"b"`, `"a"..="z"`, `vec..`, `..`).
//! [`Range`] is a `DoubleEndedIterator` (`.rev()` walks keys in descending order);
//! [`History`] reads lazily, newest first. Iterators yield `Result`: a checksum can fail
//! mid-scan. [`Scan`] (`Db::scan`, `scan_at`, `Snapshot::scan`) reads what a [`Range`] reads
//! through a cursor that lends each key and value as `&[u8]` until its next step, as LMDB's
//! and RocksDB's cursors do: no reference count and no allocation per item, for scans whose
//! items are used and dropped at once; `Range`'s owned [`Slice`]s can be kept.
//!
//! # Limits
//! - A key is 0 to 65,535 bytes ([`zverse_core::limits::KEY_LEN_MAX`]); a value 0 to 64 MiB
//!   ([`zverse_core::limits::VALUE_LEN_MAX`]). A batch, encoded, is at most 128 MiB
//!   ([`zverse_core::record::RECORD_LEN_MAX`]). Oversized input fails with
//!   [`Error::KeyTooLarge`], [`Error::ValueTooLarge`] or [`Error::BatchTooLarge`] and writes
//!   nothing.
//! - Versions are `u64` microseconds, strictly increasing across the database and restarts.
//!
//! # Threads
//! [`Db`], [`Snapshot`] and [`Slice`] are `Send` and `Sync`: share one `Db` between threads by
//! reference or in an `Arc`. The iterators ([`Range`], [`History`], [`Changes`]) and the
//! [`Scan`] cursor are `Send`.
//! - A write (`put`, `delete`, [`Batch::commit`]) blocks until its record is in the log and
//!   the memtable (and synced, under [`Durability::Sync`]). Concurrent writers share one log
//!   append and one sync (group commit): one of them does the I/O for all.
//! - Reads never wait for writers, flushes or compaction: they take the current set of tiers
//!   (a short lock to clone an `Arc`) and read a lock-free memtable and immutable segments.
//! - Each open `Db` runs two background threads: `zverse-flush` (memtable flushes and, under
//!   [`Durability::Periodic`], the periodic sync) and `zverse-compaction`. [`Db::flush`] and
//!   [`Db::compact`] block until they have done what was asked. Writers slow down, then wait,
//!   while full memtables or small segments pile up (see [`Options::write_stop_segments`]).
//! - The background work reports through the [`log`](https://docs.rs/log) crate: open,
//!   flushes, compactions and write stalls (`info`, with sizes and durations), a failed
//!   compaction (`warn`), and the turn to read-only after a failed write or sync (`error`,
//!   once). Silent unless the application installs a logger.
//!
//! # What the durability modes cost
//! - [`Durability::Sync`] (the default): a write returns after an `fdatasync` of its log
//!   append, so it costs a device flush; concurrent writers share one. A crash loses nothing
//!   that was acknowledged.
//! - [`Durability::Periodic`]: a write costs a log append to a buffer in memory and a
//!   memtable insert; the buffer goes to the file in one write every 64 KiB and at each sync,
//!   which runs in the background every period. A crash, of the machine or of the process,
//!   loses up to one period.
//! - [`Durability::None`]: as `Periodic`, with no sync at all; a crash can lose every write
//!   not yet flushed to a segment (a killed process, the last 64 KiB of log at most). For bulk
//!   loads and caches.
//!
//! The README's "Performance" section has the measured figures for each.
//!
//! # What the retention modes cost
//! - [`Retention::All`] (the default): every version stays; the disk holds every write, and
//!   compaction merges without dropping anything.
//! - [`Retention::Duration`] and [`Retention::Versions`]: compaction drops versions older than
//!   the horizon (or past the newest N of a key), keeping for every key the newest version at
//!   or below the horizon, so as-of reads at or after the horizon stay exact; reads before it
//!   may find versions gone. Versions a live [`Snapshot`] reads are kept until it is dropped.
//!   Under `Versions(n)` a history shows at most the newest `n`, even while compaction still
//!   holds more.
//!
//! The engine runs on any [`io::Io`] backend: std files here, io_uring in `zverse-linux`,
//! a simulated disk in the crash tests.
//!
//! ```
//! fn shared<T: Send + Sync>() {}
//! fn sent<T: Send>() {}
//! shared::<zverse::Db>();
//! shared::<zverse::Snapshot>();
//! shared::<zverse::Slice>();
//! sent::<zverse::Range>();
//! sent::<zverse::History>();
//! sent::<zverse::Changes>();
//! sent::<zverse::Scan>();
//! ```

mod background;
mod batch;
#[doc(hidden)]
pub mod bench_hooks;
mod check;
mod checkpoint;
mod commit;
mod compaction;
mod db;
mod error;
mod inner;
pub mod io;
mod key_range;
mod locality;
mod log;
mod manifest;
mod memtable;
mod options;
mod pins;
mod read;
mod recovery;
mod scan;
mod segment_file;
mod segment_writer;
mod slice;
mod snapshot;
mod state;
mod stats;
mod sync;
mod tiers;
mod transaction;
mod write;

pub use batch::Batch;
pub use check::CheckReport;
pub use checkpoint::CheckpointProgress;
pub use db::Db;
pub use error::{Error, Result};
pub use key_range::{KeyRange, prefix_bounds};
pub use locality::LocalityStats;
pub use options::{Durability, Options, Retention};
pub use read::{Change, Changes, History, Range};
pub use scan::Scan;
pub use slice::Slice;
pub use snapshot::{KeyValue, Snapshot};
pub use stats::{SegmentResidency, Stats};
pub use transaction::{Conflict, Isolation, Transaction, UPDATE_ATTEMPTS_MAX};
pub use zverse_core::Version;
