//! [`Db`], the facade: every public method, each delegating to the room that does the work
//! (`inner.rs` holds the state they share).

use std::ops::RangeBounds;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use zverse_core::Version;
use zverse_core::record;

use crate::background::CompactionKind;
use crate::check::{self, CheckReport};
use crate::checkpoint::{self, CheckpointProgress};
use crate::error::{Error, Result};
use crate::inner::Inner;
use crate::io::{Io, StdIo};
use crate::key_range::KeyRange;
use crate::options::Options;
use crate::read::{Changes, History, Range};
use crate::scan::Scan;
use crate::slice::Slice;
use crate::snapshot::{KeyValue, Reads, Snapshot};
use crate::stats::{self, SegmentResidency, Stats};
use crate::sync::lock;
use crate::transaction::{self, Isolation, Transaction, Writes};

/// An open database. Cheap to share: clone the `Arc` you keep it in, or hand out `&Db`; every
/// method takes `&self` and is safe to call from many threads.
#[derive(Debug)]
pub struct Db {
    pub(crate) inner: Arc<Inner>,
    /// The flush thread and the compaction thread, joined by `close`.
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Db {
    /// Opens the database in `path`, creating it (and the directory) if missing.
    ///
    /// Fails with [`Error::Locked`] if another process or another `Db` has it open for
    /// writing, with [`Error::NotADatabase`] if `path` holds files that are not a ZVerse
    /// database, with [`Error::Corruption`] if a file of the database does not verify or a
    /// file the manifest records is missing, and with [`Error::FormatUnsupported`] for a
    /// database an older ZVerse wrote. With `Options::read_only(true)` it takes no lock and
    /// writes nothing (see there).
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// use zverse::{Db, Durability, Error, Options};
    /// let db = Db::open(dir.path(), Options::default().durability(Durability::Sync))?;
    /// let again = Db::open(dir.path(), Options::default());
    /// assert!(matches!(again, Err(Error::Locked { .. })));
    /// // A read-only open works alongside the writer.
    /// let reader = Db::open(dir.path(), Options::default().read_only(true))?;
    /// assert_eq!(reader.get(b"k")?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn open(path: impl AsRef<Path>, options: Options) -> Result<Db> {
        Db::open_with_io(path, options, Arc::new(StdIo))
    }

    /// [`Db::open`] on a chosen I/O backend (io_uring from `zverse-linux`, or a test's
    /// simulated disk).
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// use std::sync::Arc;
    /// use zverse::{Db, Options, io::StdIo};
    /// let db = Db::open_with_io(dir.path(), Options::default(), Arc::new(StdIo))?;
    /// assert_eq!(db.stats().io_backend, "std");
    /// # Ok(())
    /// # }
    /// ```
    pub fn open_with_io(path: impl AsRef<Path>, options: Options, io: Arc<dyn Io>) -> Result<Db> {
        let started = Instant::now();
        let inner = Arc::new(Inner::open(path.as_ref(), options, io)?);
        ::log::info!(
            "zverse: opened {}{}: {} segments, {} entries in the memtable, in {} ms",
            inner.dir.display(),
            if inner.options.read_only { " read-only" } else { "" },
            inner.tiers().segments.len(),
            inner.tiers().active.entry_count(),
            started.elapsed().as_millis()
        );
        if inner.options.read_only {
            return Ok(Db { inner, threads: Mutex::new(Vec::new()) });
        }
        let flusher = {
            let inner = Arc::clone(&inner);
            std::thread::Builder::new()
                .name("zverse-flush".into())
                .spawn(move || inner.flush_loop())?
        };
        let compactor = {
            let inner = Arc::clone(&inner);
            std::thread::Builder::new()
                .name("zverse-compaction".into())
                .spawn(move || inner.compaction_loop())
        };
        let threads = Mutex::new(vec![flusher]);
        let db = Db { inner, threads };
        // On a failed spawn, dropping `db` closes it and joins the flush thread.
        lock(&db.threads).push(compactor?);
        db.inner.request_compaction(CompactionKind::Triggered);
        Ok(db)
    }

    /// Writes `value` under `key` and returns the write's version.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let v1 = db.put(b"user:1", b"alice")?;
    /// let v2 = db.put(b"user:1", b"alicia")?;
    /// assert!(v2 > v1, "versions strictly increase");
    /// let too_long = vec![0; 70_000];
    /// assert!(matches!(db.put(&too_long, b""), Err(zverse::Error::KeyTooLarge { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<Version> {
        let record_len = record::encoded_len_put(key, value)?;
        let user_bytes = (key.len() + value.len()) as u64;
        self.inner.commit_encoding(record_len, user_bytes, |out| {
            record::encode_put_into(out, Version::ZERO, key, value)
        })
    }

    /// Deletes `key` (writes a tombstone version) and returns the delete's version.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let v1 = db.put(b"k", b"v")?;
    /// let v2 = db.delete(b"k")?;
    /// assert_eq!(db.get(b"k")?, None);
    /// assert!(db.get_at(b"k", v1)?.is_some(), "the old version stays readable");
    /// assert_eq!(db.history(b"k")?.next().transpose()?, Some((v2, None)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn delete(&self, key: &[u8]) -> Result<Version> {
        let record_len = record::encoded_len_delete(key)?;
        self.inner.commit_encoding(record_len, key.len() as u64, |out| {
            record::encode_delete_into(out, Version::ZERO, key)
        })
    }

    /// A batch of writes that commit together at one version.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let version = db.batch().put(b"a", b"1").delete(b"b").commit()?;
    /// assert_eq!(db.get_at(b"a", version)?.as_deref(), Some(&b"1"[..]));
    /// # Ok(())
    /// # }
    /// ```
    pub fn batch(&self) -> crate::Batch<'_> {
        crate::Batch::new(self)
    }

    /// Writes the memtable to a segment now, and waits until every sealed memtable is in a
    /// segment.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// db.put(b"k", b"v")?;
    /// db.flush()?;
    /// assert_eq!(db.stats().segment_count, 1);
    /// assert_eq!(db.stats().memtable_versions, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn flush(&self) -> Result<()> {
        self.inner.check_writable()?;
        self.inner.stage.with_leadership(|| self.inner.rotate())?;
        self.inner.wait_for_background_round();
        self.inner.check_writable()
    }

    /// Flushes, then moves every current segment down to the deepest level now (level 1 at
    /// least), dropping what retention lets go among the versions it reads (versions pinned by
    /// live snapshots stay) and demoting older versions into history segments: level 0 first,
    /// oldest first, in steps of at most 63 level-0 segments or one segment of a level with
    /// what it meets below, so memory stays bounded however large the database.
    /// Versions already in history segments are not passed through retention again (history
    /// compaction is not written yet). Background compaction moves level 0 into level 1
    /// whenever `compaction_trigger_segments` level-0 segments exist, and a level past its
    /// target (`Options::level_base_bytes`) into the next.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// for round in 0..3_u8 {
    ///     db.put(&[round], b"v")?;
    ///     db.flush()?;
    /// }
    /// db.compact()?;
    /// assert_eq!(db.stats().segment_count, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn compact(&self) -> Result<()> {
        self.inner.check_writable()?;
        self.inner.stage.with_leadership(|| self.inner.rotate())?;
        self.inner.wait_for_background_round();
        self.inner.check_writable()?;
        let failure = self.inner.wait_for_compaction_round(CompactionKind::Full);
        self.inner.check_writable()?;
        match failure {
            Some(reason) => {
                Err(Error::Io(std::io::Error::other(format!("compaction failed: {reason}"))))
            }
            None => Ok(()),
        }
    }

    /// Waits until the background work is idle: every sealed memtable is in a segment and no
    /// compaction step is due (level 0 below `compaction_trigger_segments`, every level
    /// within its target, no history merge due), as RocksDB's `WaitForCompact` (without its
    /// `flush` option: the active memtable stays; call [`Db::flush`] first to include it).
    /// It waits for one flush round, then one compaction round that starts after it, which
    /// runs steps until none is due; work that writers add meanwhile may be left due.
    ///
    /// # Errors
    /// [`Error::ReadOnly`] if the database turned read-only (a failed flush),
    /// [`Error::OpenedReadOnly`] if it was opened so (it runs no background work),
    /// [`Error::Closed`] if it was closed, and [`Error::Io`] if that compaction round failed
    /// (background compaction retries it later, after a delay, which a call made during that
    /// delay waits for).
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// let options = zverse::Options::default().compaction_trigger_segments(2);
    /// let db = zverse::Db::open(dir.path(), options)?;
    /// for round in 0..3_u8 {
    ///     db.put(&[round], b"v")?;
    ///     db.flush()?;
    /// }
    /// db.wait_for_compact()?;
    /// assert!(db.stats().segment_count_open < 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn wait_for_compact(&self) -> Result<()> {
        self.inner.check_writable()?;
        self.inner.wait_for_background_round();
        self.inner.check_writable()?;
        let failure = self.inner.wait_for_compaction_round(CompactionKind::Triggered);
        self.inner.check_writable()?;
        match failure {
            Some(reason) => {
                Err(Error::Io(std::io::Error::other(format!("compaction failed: {reason}"))))
            }
            None => Ok(()),
        }
    }

    /// Closes the database: waits for the writes in flight, syncs the log, stops the
    /// background work. Reads and writes afterwards fail with [`Error::Closed`]. Dropping the
    /// last handle closes too, ignoring errors.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// db.put(b"k", b"v")?;
    /// db.close()?;
    /// assert!(matches!(db.get(b"k"), Err(zverse::Error::Closed)));
    /// let reopened = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// assert!(reopened.get(b"k")?.is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub fn close(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // Leadership waits for the group in flight; writers staged after it fail with Closed
        // in `commit_group`.
        let sync = self.inner.stage.with_leadership(|| self.inner.sync_and_seal_log());
        self.inner.background.shut_down();
        self.inner.wake_stalled_writers();
        for handle in lock(&self.threads).drain(..) {
            let _ = handle.join();
        }
        // Release the directory even while snapshots or iterators of this handle live on:
        // they fail with `Closed` from now on.
        drop(lock(&self.inner.lock).take());
        sync
    }

    /// The directory the database lives in.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// assert_eq!(db.path(), dir.path());
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    /// The retention horizon: every read as of a version at or above it is exact, and every
    /// `changes` or `history_range` window starting at or above it is complete. Reads below it
    /// fail with [`Error::BelowHorizon`](crate::Error::BelowHorizon) (except through a
    /// snapshot, at its own version), since a compaction dropped versions they could need.
    /// `Version::ZERO` until a compaction drops a version; it never moves back, and survives
    /// reopening. It is the lowest such version over all keys; below it, `get_at` still
    /// answers when it finds a retained version of its key that no dropped version could have
    /// hidden, while `range_at`, `prefix_at`, `first_at`, `last_at`, and `changes` and
    /// `history_range` windows starting below it (which cannot tell an absent key or version
    /// from a dropped one) are refused.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// db.put(b"k", b"v")?;
    /// // Nothing compacted away yet: every version can be read.
    /// assert_eq!(db.horizon(), zverse::Version::ZERO);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn horizon(&self) -> Version {
        self.inner.horizon()
    }

    /// The latest value of `key`, or `None` if it was never written or is deleted.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// db.put(b"user:1", b"alice")?;
    /// assert_eq!(db.get(b"user:1")?.as_deref(), Some(&b"alice"[..]));
    /// assert_eq!(db.get(b"user:2")?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(&self, key: &[u8]) -> Result<Option<Slice>> {
        Reads::latest(&self.inner).get_at(key, Version::MAX)
    }

    /// The value of `key` as of `version`: its newest version at or below `version`. Fails
    /// with [`Error::BelowHorizon`](crate::Error::BelowHorizon) below [`Db::horizon`].
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let v1 = db.put(b"user:1", b"alice")?;
    /// let v2 = db.delete(b"user:1")?;
    /// assert_eq!(db.get_at(b"user:1", v1)?.as_deref(), Some(&b"alice"[..]));
    /// assert_eq!(db.get_at(b"user:1", v2)?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_at(&self, key: &[u8], version: Version) -> Result<Option<Slice>> {
        Reads::latest(&self.inner).get_at(key, version)
    }

    /// Every version of `key`, newest first, as `(version, value)`; deletes show as `None`.
    /// Lazy: `.take(n)` reads about `n` versions, however long the history is.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let v1 = db.put(b"k", b"a")?;
    /// let v2 = db.delete(b"k")?;
    /// let versions: Vec<_> = db.history(b"k")?.collect::<zverse::Result<_>>()?;
    /// assert_eq!(versions, [(v2, None), (v1, Some(b"a".as_slice().into()))]);
    /// let newest = db.history(b"k")?.take(1).count();
    /// assert_eq!(newest, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn history(&self, key: &[u8]) -> Result<History> {
        Reads::latest(&self.inner).history_range(key, &..)
    }

    /// The versions of `key` within `versions`, newest first (lazy, as [`Db::history`]).
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let v1 = db.put(b"k", b"1")?;
    /// let v2 = db.put(b"k", b"2")?;
    /// let v3 = db.put(b"k", b"3")?;
    /// let window = db.history_range(b"k", v1..v3)?;
    /// let versions = window.map(|item| item.map(|(version, _)| version));
    /// let versions: Vec<_> = versions.collect::<zverse::Result<_>>()?;
    /// assert_eq!(versions, [v2, v1]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn history_range(
        &self,
        key: &[u8],
        versions: impl RangeBounds<Version>,
    ) -> Result<History> {
        Reads::latest(&self.inner).history_range(key, &versions)
    }

    /// The latest value of every key in `keys`, in key order (deleted keys skipped); `.rev()`
    /// walks it in descending order. `keys` is any range of byte strings ([`KeyRange`]).
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// for key in ["a", "b", "c"] {
    ///     db.put(key.as_bytes(), b"")?;
    /// }
    /// let keys = |range: zverse::Range| -> zverse::Result<Vec<Vec<u8>>> {
    ///     range.map(|item| item.map(|(key, _)| key.to_vec())).collect()
    /// };
    /// assert_eq!(keys(db.range(b"a"..b"c")?)?, [b"a", b"b"]);
    /// assert_eq!(keys(db.range("b"..)?)?, [b"b", b"c"]);
    /// // The last key before "c":
    /// let (key, _) = db.range(..b"c")?.next_back().transpose()?.unwrap();
    /// assert_eq!(&key[..], b"b");
    /// # Ok(())
    /// # }
    /// ```
    pub fn range(&self, keys: impl KeyRange) -> Result<Range> {
        Reads::latest(&self.inner).range_at(&keys, Version::MAX)
    }

    /// The value of every key in `keys` as of `version`, in key order.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let v1 = db.put(b"a", b"1")?;
    /// db.put(b"b", b"2")?;
    /// assert_eq!(db.range_at(.., v1)?.count(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn range_at(&self, keys: impl KeyRange, version: Version) -> Result<Range> {
        Reads::latest(&self.inner).range_at(&keys, version)
    }

    /// The latest value of every key in `keys`, as [`Db::range`] reads them, through a cursor
    /// that lends each key and value as `&[u8]` until its next step ([`Scan`]): no reference
    /// count and no allocation per item. `next_back` walks from the end.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// db.put(b"a", b"1")?;
    /// db.put(b"b", b"2")?;
    /// let mut total = 0;
    /// db.scan("a"..="z")?.for_each(|_key, value| total += value.len())?;
    /// assert_eq!(total, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn scan(&self, keys: impl KeyRange) -> Result<Scan> {
        Reads::latest(&self.inner).scan_at(&keys, Version::MAX)
    }

    /// [`Db::scan`] as of `version`, as [`Db::range_at`] reads.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let v1 = db.put(b"a", b"1")?;
    /// db.put(b"a", b"2")?;
    /// let mut scan = db.scan_at(.., v1)?;
    /// assert_eq!(scan.next().transpose()?, Some((&b"a"[..], &b"1"[..])));
    /// # Ok(())
    /// # }
    /// ```
    pub fn scan_at(&self, keys: impl KeyRange, version: Version) -> Result<Scan> {
        Reads::latest(&self.inner).scan_at(&keys, version)
    }

    /// The latest value of every key that starts with `prefix`, in key order.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// db.put(b"user:1", b"alice")?;
    /// db.put(b"user:2", b"bob")?;
    /// db.put(b"users", b"")?;
    /// assert_eq!(db.prefix(b"user:")?.count(), 2);
    /// let (last, _) = db.prefix(b"user:")?.next_back().transpose()?.unwrap();
    /// assert_eq!(&last[..], b"user:2");
    /// # Ok(())
    /// # }
    /// ```
    pub fn prefix(&self, prefix: &[u8]) -> Result<Range> {
        Reads::latest(&self.inner).prefix_at(prefix, Version::MAX)
    }

    /// Every key that starts with `prefix` as of `version`, in key order.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let v1 = db.put(b"user:1", b"alice")?;
    /// db.put(b"user:2", b"bob")?;
    /// assert_eq!(db.prefix_at(b"user:", v1)?.count(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn prefix_at(&self, prefix: &[u8], version: Version) -> Result<Range> {
        Reads::latest(&self.inner).prefix_at(prefix, version)
    }

    /// The smallest key and its latest value; `None` if every key is deleted.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// assert!(db.first()?.is_none());
    /// db.put(b"b", b"2")?;
    /// db.put(b"a", b"1")?;
    /// let (key, value) = db.first()?.unwrap();
    /// assert_eq!((&key[..], &value[..]), (&b"a"[..], &b"1"[..]));
    /// # Ok(())
    /// # }
    /// ```
    pub fn first(&self) -> Result<Option<KeyValue>> {
        Reads::latest(&self.inner).first_at(Version::MAX)
    }

    /// The largest key and its latest value. For the last key before `x`, walk a range from
    /// the back: `db.range(..x)?.next_back()`.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// db.put(b"a", b"1")?;
    /// db.put(b"b", b"2")?;
    /// assert_eq!(&db.last()?.unwrap().0[..], b"b");
    /// db.delete(b"b")?;
    /// assert_eq!(&db.last()?.unwrap().0[..], b"a");
    /// # Ok(())
    /// # }
    /// ```
    pub fn last(&self) -> Result<Option<KeyValue>> {
        Reads::latest(&self.inner).last_at(Version::MAX)
    }

    /// The smallest key as of `version`, with its value then.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let v1 = db.put(b"b", b"2")?;
    /// db.put(b"a", b"1")?;
    /// assert_eq!(&db.first_at(v1)?.unwrap().0[..], b"b");
    /// # Ok(())
    /// # }
    /// ```
    pub fn first_at(&self, version: Version) -> Result<Option<KeyValue>> {
        Reads::latest(&self.inner).first_at(version)
    }

    /// The largest key as of `version`, with its value then.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let v1 = db.put(b"a", b"1")?;
    /// db.put(b"b", b"2")?;
    /// assert_eq!(&db.last_at(v1)?.unwrap().0[..], b"a");
    /// # Ok(())
    /// # }
    /// ```
    pub fn last_at(&self, version: Version) -> Result<Option<KeyValue>> {
        Reads::latest(&self.inner).last_at(version)
    }

    /// Every version written to a key in `keys` with its version in `versions`: the box
    /// query. Each version exactly once, in no promised order (tier by tier, each tier in its
    /// own order; sort what you collect if you need one). Streams: memory is one tier's reader.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// db.put(b"a", b"old")?;
    /// let v1 = db.put(b"b", b"1")?;
    /// let v2 = db.delete(b"a")?;
    /// db.put(b"z", b"out of the key range")?;
    /// let changes: Vec<_> = db.changes(b"a"..b"m", v1..=v2)?.collect::<zverse::Result<_>>()?;
    /// assert_eq!(changes.len(), 2);
    /// assert!(changes.iter().any(|c| &c.key[..] == b"a" && c.version == v2 && c.value.is_none()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn changes(
        &self,
        keys: impl KeyRange,
        versions: impl RangeBounds<Version>,
    ) -> Result<Changes> {
        Reads::latest(&self.inner).changes(&keys, &versions)
    }

    /// A snapshot of the database as it is now: every read through it answers as of one
    /// version, forever, whatever is written or compacted meanwhile.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// db.put(b"k", b"before")?;
    /// let snapshot = db.snapshot();
    /// db.put(b"k", b"after")?;
    /// db.compact()?;
    /// assert_eq!(snapshot.get(b"k")?.as_deref(), Some(&b"before"[..]));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::new(&self.inner)
    }

    /// A read-write transaction at [`Isolation::Snapshot`].
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let mut tx = db.transaction();
    /// tx.set(b"a", b"1")?;
    /// tx.set(b"b", b"2")?;
    /// assert_eq!(db.get(b"a")?, None); // not visible before the commit
    /// let version = tx.commit()?;
    /// assert!(version.is_some());
    /// assert_eq!(db.get(b"b")?.as_deref(), Some(&b"2"[..]));
    /// // Scans take the same ranges as `Db::range`:
    /// let mut tx = db.transaction();
    /// assert_eq!(tx.keys("a".."c", 10, None)?.len(), 2);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn transaction(&self) -> Transaction<'_> {
        Transaction::new(self, Isolation::Snapshot, Writes::Allowed)
    }

    /// A read-write transaction at `isolation`.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// use zverse::{Error, Isolation};
    /// db.put(b"on_call", b"alice")?;
    /// let mut tx = db.transaction_with(Isolation::Serializable);
    /// assert!(tx.get(b"on_call", None)?.is_some());
    /// db.delete(b"on_call")?; // a write to a key `tx` read, after it started
    /// tx.set(b"log", b"alice is on call")?;
    /// assert!(matches!(tx.commit(), Err(Error::Conflict(_))));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn transaction_with(&self, isolation: Isolation) -> Transaction<'_> {
        Transaction::new(self, isolation, Writes::Allowed)
    }

    /// A read-only transaction: it never conflicts, never blocks a writer, and tracks nothing;
    /// its writes fail with [`Error::TransactionReadOnly`].
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// use zverse::Error;
    /// db.put(b"k", b"old")?;
    /// let mut tx = db.read_transaction();
    /// db.put(b"k", b"new")?;
    /// assert_eq!(tx.get(b"k", None)?.as_deref(), Some(&b"old"[..])); // its start snapshot
    /// assert!(matches!(tx.set(b"k", b"x"), Err(Error::TransactionReadOnly)));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn read_transaction(&self) -> Transaction<'_> {
        Transaction::new(self, Isolation::Snapshot, Writes::Refused)
    }

    /// The newest version of `key` with its value (`None` for a delete), or `None` if the key
    /// has no version: what [`Db::compare_and_swap`] compares.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// assert_eq!(db.get_versioned(b"k")?, None);
    /// let v1 = db.put(b"k", b"v")?;
    /// assert_eq!(db.get_versioned(b"k")?, Some((v1, Some(b"v".as_slice().into()))));
    /// let v2 = db.delete(b"k")?;
    /// assert_eq!(db.get_versioned(b"k")?, Some((v2, None)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_versioned(&self, key: &[u8]) -> Result<Option<(Version, Option<Slice>)>> {
        transaction::get_versioned(&self.inner, key)
    }

    /// Replaces the value of `key` with `f(current)` (`None`: absent or deleted; `f` returning
    /// `None` deletes), atomically: if another write to `key` commits between the read and the
    /// write, `f` runs again on the new value. Returns the write's version. A lost attempt
    /// backs off before the next (a yield, then sleeps doubling from 2 µs to 1 ms), so a writer
    /// that keeps losing to others on a hot key lets them finish instead of racing them. Gives
    /// up with [`Error::RetriesExhausted`] after
    /// [`UPDATE_ATTEMPTS_MAX`](crate::UPDATE_ATTEMPTS_MAX) lost attempts (about a second of
    /// back-off in all).
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// let increment = |old: Option<&[u8]>| {
    ///     let old = old.map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()));
    ///     Some((old + 1).to_le_bytes().to_vec())
    /// };
    /// db.update(b"hits", increment)?;
    /// db.update(b"hits", increment)?;
    /// assert_eq!(db.get(b"hits")?.as_deref(), Some(&2u64.to_le_bytes()[..]));
    /// # Ok(())
    /// # }
    /// ```
    pub fn update(
        &self,
        key: &[u8],
        f: impl FnMut(Option<&[u8]>) -> Option<Vec<u8>>,
    ) -> Result<Version> {
        transaction::update(&self.inner, key, f)
    }

    /// Writes `new` (`None`: a delete) under `key` only if the key's newest version is still
    /// `expected` (`None`: the key has no version), as [`Db::get_versioned`] reported it.
    /// Otherwise fails with [`Error::Conflict`] naming the newer version, and writes nothing.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// use zverse::Error;
    /// let created = db.compare_and_swap(b"k", None, Some(b"1"))?; // only if `k` has no version
    /// let (seen, _) = db.get_versioned(b"k")?.unwrap();
    /// assert_eq!(seen, created);
    /// db.put(b"k", b"someone else")?;
    /// let stale = db.compare_and_swap(b"k", Some(seen), Some(b"2"));
    /// assert!(matches!(stale, Err(Error::Conflict(_))));
    /// assert_eq!(db.get(b"k")?.as_deref(), Some(&b"someone else"[..]));
    /// # Ok(())
    /// # }
    /// ```
    pub fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<Version>,
        new: Option<&[u8]>,
    ) -> Result<Version> {
        transaction::compare_and_swap(&self.inner, key, expected, new)
    }

    /// Verifies every data block checksum of every segment in the current tiers, decoding
    /// every entry, and checks each segment's entry count against its metadata.
    ///
    /// Returns what was verified, or the first [`Error::Corruption`] found (naming the file and
    /// the byte offset of the bad block). Runs concurrently with reads and writes: it checks
    /// the segments that were current when it started, which stay alive until it is done.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// db.put(b"k", b"v")?;
    /// db.flush()?;
    /// let report = db.check()?;
    /// assert_eq!((report.segment_count, report.entry_count), (1, 1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn check(&self) -> Result<CheckReport> {
        check::check(&self.inner)
    }

    /// Writes an openable, consistent copy of the database into the new directory `dest`, as
    /// of the returned version: `Db::open(dest)` reads exactly what this database read as of
    /// that version. Writers are held only for a memtable rotation; the copy is made while
    /// they write. Segments are hard-linked where `dest` is on the same file system (copied
    /// elsewhere) and the logs not yet in segments are copied, into `{dest}.checkpoint-partial`,
    /// renamed to `dest` once complete and synced: a crash part way leaves no `dest`, only the
    /// partial directory (delete it and start over).
    ///
    /// Fails with [`Error::DestinationExists`] if `dest` or the partial directory exists, and
    /// with [`Error::OpenedReadOnly`] on a read-only open.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// let db = zverse::Db::open(dir.path().join("db"), zverse::Options::default())?;
    /// let written = db.put(b"k", b"v")?;
    /// let at = db.checkpoint(dir.path().join("backup"))?;
    /// assert!(at >= written);
    /// db.put(b"k", b"newer")?; // the copy does not see writes after its version
    /// let copy = zverse::Db::open(dir.path().join("backup"), zverse::Options::default())?;
    /// assert_eq!(copy.get(b"k")?.as_deref(), Some(&b"v"[..]));
    /// # Ok(())
    /// # }
    /// ```
    pub fn checkpoint(&self, dest: impl AsRef<Path>) -> Result<Version> {
        self.checkpoint_with_progress(dest, |_| {})
    }

    /// [`Db::checkpoint`], calling `progress` after each file.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// let db = zverse::Db::open(dir.path().join("db"), zverse::Options::default())?;
    /// db.put(b"k", b"v")?;
    /// db.flush()?;
    /// let mut files = 0;
    /// db.checkpoint_with_progress(dir.path().join("backup"), |progress| {
    ///     files = progress.files_done;
    /// })?;
    /// assert!(files >= 1); // at least the segment the flush wrote
    /// # Ok(())
    /// # }
    /// ```
    pub fn checkpoint_with_progress(
        &self,
        dest: impl AsRef<Path>,
        progress: impl FnMut(CheckpointProgress),
    ) -> Result<Version> {
        checkpoint::checkpoint(&self.inner, dest.as_ref(), progress)
    }

    /// The database's counters as they are now.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// db.put(b"k", b"v")?;
    /// let stats = db.stats();
    /// assert_eq!(stats.versions, 1);
    /// assert_eq!(stats.bytes_written_user, 2);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn stats(&self) -> Stats {
        stats::collect(&self.inner)
    }

    /// How many pages of the live segments are in memory now (`mincore` on each segment's
    /// mapping, one call per 256 pages), or `None` where the backend cannot tell. Costs system
    /// calls in proportion to the data: for tools and benchmarks, not for a hot path.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// db.put(b"k", b"v")?;
    /// db.flush()?;
    /// if let Some(residency) = db.segment_residency() {
    ///     assert!(residency.pages_resident <= residency.pages_total);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn segment_residency(&self) -> Option<SegmentResidency> {
        stats::segment_residency(&self.inner)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
