//! [`Db`]: open, write, flush, close. Reads are in `read.rs`, the write path in `commit.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use zverse_core::Version;
use zverse_core::clock::HybridClock;
use zverse_core::record;

use crate::background::{Background, CompactionKind};
use crate::commit::Stage;
use crate::error::{Error, Result};
use crate::io::{Io, IoLock, StdIo};
use crate::locality::LocalityAdvisor;
use crate::log::ActiveLog;
use crate::options::{Durability, Options};
use crate::recovery::{self, Opened};
use crate::segment_file::FenceBudget;
use crate::state::State;
use crate::tiers::Tiers;
use crate::write::LoggedGroup;

/// An open database. Cheap to share: clone the `Arc` you keep it in, or hand out `&Db`; every
/// method takes `&self` and is safe to call from many threads.
#[derive(Debug)]
pub struct Db {
    pub(crate) inner: Arc<Inner>,
    /// The flush thread and the compaction thread, joined by `close`.
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// The shared state behind a [`Db`], also held by snapshots and iterators.
#[derive(Debug)]
pub(crate) struct Inner {
    pub dir: PathBuf,
    pub io: Arc<dyn Io>,
    pub options: Options,
    /// The directory lock, released by `close` (snapshots may outlive it). `None` for a
    /// read-only open, which takes none.
    lock: Mutex<Option<IoLock>>,
    pub(crate) clock: HybridClock,
    /// Every version at or below it is applied: readers read at or below it.
    pub(crate) watermark: AtomicU64,
    pub(crate) stage: Stage,
    /// The group the leader is committing (only the leader locks it).
    pub(crate) logged: Mutex<LoggedGroup>,
    /// The log appended to; `None` for a read-only open.
    pub(crate) log: Mutex<Option<ActiveLog>>,
    /// The newest log's bytes as a read-only open read them.
    log_bytes_read_only: u64,
    /// The tiers, the manifest, file numbers, horizons and the read-only latch.
    pub(crate) state: State,
    /// Versions pinned by live snapshots, with their counts.
    pub pins: Mutex<BTreeMap<Version, usize>>,
    closed: AtomicBool,
    /// Checkpoints copying logs now: while any runs, flushes leave retired logs in place.
    pub(crate) checkpoints_running: AtomicUsize,
    /// The flush and compaction threads' requests and rounds.
    pub(crate) background: Background,
    /// Wakes writers stalled on a full set of memtables or too many open segments.
    pub(crate) stall: (Mutex<()>, Condvar),
    pub counters: Counters,
    /// madvise hints from the reads, shared with every open segment.
    pub advisor: Arc<LocalityAdvisor>,
    /// The memory the open segments' fence keys share (`Options::fence_keys_bytes_max`).
    pub fence_budget: Arc<FenceBudget>,
    /// Tests only: flushes wait while set (sealed memtables and their logs pile up).
    #[cfg(test)]
    pub(crate) flush_paused: AtomicBool,
}

/// Counters for `stats()`.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub bytes_written_log: AtomicU64,
    pub bytes_written_segments: AtomicU64,
    pub bytes_user: AtomicU64,
    pub commit_groups: AtomicU64,
    pub commit_records: AtomicU64,
    pub flushes: AtomicU64,
    pub compactions: AtomicU64,
    pub compaction_failures: AtomicU64,
    pub write_stalls: AtomicU64,
    pub write_stall_micros: AtomicU64,
    pub write_slowdowns: AtomicU64,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its state consistent before anything can panic, so a
    // poisoned lock still guards consistent state.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
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

    /// Flushes, then passes every segment through compaction now, dropping what retention
    /// lets go (versions pinned by live snapshots stay): oldest first, in steps of at most
    /// `compaction_fan_in` segments, so memory stays bounded however large the database. The
    /// result is segments of about `segment_bytes_target` each, at most one of them smaller.
    /// Background compaction merges only segments below the target, a few at a time, whenever
    /// `compaction_trigger_segments` of them exist.
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
        self.inner.wait_for_compaction_round(CompactionKind::Full);
        self.inner.check_writable()?;
        match self.inner.background.last_compaction_error() {
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
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

impl Inner {
    /// Opens the database in `dir` (see `recovery.rs`) and assembles its state.
    fn open(dir: &Path, options: Options, io: Arc<dyn Io>) -> Result<Inner> {
        let opened = recovery::open(dir, &options, &io)?;
        Ok(Inner::assemble(dir, options, io, opened))
    }

    /// The state of an open database around what its open found and recovered.
    fn assemble(dir: &Path, options: Options, io: Arc<dyn Io>, opened: Opened) -> Inner {
        let Opened { manifest, recovered, advisor, fence_budget, lock: dir_lock, log } = opened;
        let clock = HybridClock::new(recovered.version_max);
        let tiers = Tiers {
            active: Arc::new(recovered.memtable),
            sealed: Vec::new(),
            segments: recovered.segments,
        };
        let file_number_next = recovered.file_number_next;
        let db_state =
            State::new(Arc::clone(&io), dir, &options, manifest, tiers, file_number_next);
        // Leaders let late joiners board only where a group shares a sync.
        let stage = Stage::new(options.durability == Durability::Sync);
        Inner {
            dir: dir.to_path_buf(),
            io,
            options,
            lock: Mutex::new(dir_lock),
            watermark: AtomicU64::new(clock.last().get()),
            clock,
            stage,
            logged: Mutex::new(LoggedGroup::default()),
            log: Mutex::new(log),
            log_bytes_read_only: recovered.log_bytes,
            state: db_state,
            pins: Mutex::new(BTreeMap::new()),
            closed: AtomicBool::new(false),
            checkpoints_running: AtomicUsize::new(0),
            background: Background::default(),
            stall: (Mutex::new(()), Condvar::new()),
            counters: Counters {
                flushes: AtomicU64::new(recovered.flush_count),
                ..Counters::default()
            },
            advisor,
            fence_budget,
            #[cfg(test)]
            flush_paused: AtomicBool::new(false),
        }
    }

    /// The tiers as they are now (an owned `Arc`; readers of one call use `tiers_ref`).
    pub(crate) fn tiers(&self) -> Arc<Tiers> {
        self.state.tiers()
    }

    /// The newest version a reader may read at: every version at or below it is applied.
    pub(crate) fn visible_version(&self) -> Version {
        Version::new(self.watermark.load(Ordering::Acquire))
    }

    /// The retention horizon: every read at or above it is exact.
    pub(crate) fn horizon(&self) -> Version {
        self.state.horizon()
    }

    /// Refuses a read as of `version` below the horizon, unless a live snapshot pins exactly
    /// `version` (compaction keeps every version a read there needs). Call it after taking
    /// the tiers: a compaction raises the horizon before it swaps them.
    pub(crate) fn check_horizon(&self, version: Version) -> Result<()> {
        if self.is_exact(version) {
            return Ok(());
        }
        Err(Error::BelowHorizon { version, horizon: self.horizon() })
    }

    /// Whether every read as of `version` is exact: at or above the horizon, or a version a
    /// live snapshot pins.
    pub(crate) fn is_exact(&self, version: Version) -> bool {
        version >= self.horizon() || lock(&self.pins).contains_key(&version)
    }

    pub(crate) fn log_bytes(&self) -> u64 {
        lock(&self.log).as_ref().map_or(self.log_bytes_read_only, |log| log.offset_end)
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        self.check_open()?;
        if self.options.read_only {
            return Err(Error::OpenedReadOnly);
        }
        match self.state.read_only_reason() {
            Some(reason) => Err(Error::ReadOnly(reason)),
            None => Ok(()),
        }
    }

    /// Turns the database read-only for `reason` and returns the error writers get.
    pub(crate) fn fail(&self, reason: String) -> Error {
        let (reason, first) = self.state.latch_read_only(reason);
        if first {
            ::log::error!("zverse: {} turned read-only: {reason}", self.dir.display());
        }
        self.wake_stalled_writers();
        Error::ReadOnly(reason)
    }

    /// Whether `close` has started.
    pub(crate) fn is_closing(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// A new file number (see [`State::allocate_file_number`]); a failed reservation turns
    /// the database read-only.
    pub(crate) fn allocate_file_number(&self) -> u64 {
        self.state.allocate_file_number().unwrap_or_else(|unreserved| {
            let _ = self.fail(unreserved.reason);
            unreserved.number
        })
    }
}
