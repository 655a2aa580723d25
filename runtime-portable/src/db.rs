//! [`Db`]: open, write, flush, close. Reads are in `read.rs`, the write path in `commit.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use zverse_core::Version;
use zverse_core::clock::HybridClock;
use zverse_core::record;

use crate::commit::{GroupCommit, Pending, Stage};
use crate::error::{Error, Result};
use crate::io::{Io, IoLock, StdIo};
use crate::locality::LocalityAdvisor;
use crate::log::{self, ActiveLog, Mode};
use crate::manifest::SegmentMeta;
use crate::manifest::{MANIFEST_NAME, MANIFEST_TEMP_NAME, Manifest, ManifestFile as _};
use crate::memtable::Memtable;
use crate::options::{Durability, Options};
use crate::segment_file::{FenceBudget, SegmentFile};
use crate::segment_writer::{SegmentWriter, WriterLimits};
use crate::tiers::{TierSet, Tiers};

/// The lock file's name.
const LOCK_NAME: &str = "LOCK";
/// File numbers the manifest reserves ahead of use: a number is recorded as reserved before a
/// file gets it, so every file a crash leaves behind is numbered below the manifest's
/// `file_number_next`, and any file at or above it is not the engine's.
const FILE_NUMBERS_RESERVED: u64 = 64;
/// How many times a read-only open starts over when the manifest changed under it (a writer
/// in another process flushed or compacted, deleting files the manifest it read named).
const READ_ONLY_ATTEMPTS_MAX: u32 = 8;

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
    clock: HybridClock,
    /// Every version at or below it is applied: readers read at or below it.
    watermark: AtomicU64,
    pub(crate) stage: Stage,
    /// The group the leader is committing (only the leader locks it).
    logged: Mutex<LoggedGroup>,
    /// The log appended to; `None` for a read-only open.
    log: Mutex<Option<ActiveLog>>,
    /// The newest log's bytes as a read-only open read them.
    log_bytes_read_only: u64,
    pub(crate) tiers: TierSet,
    pub(crate) manifest: Mutex<Manifest>,
    /// The next file number to hand out.
    file_number_next: AtomicU64,
    /// The manifest's `file_number_next`: numbers below it are reserved for this database.
    file_number_reserved: AtomicU64,
    /// The retention horizon (the manifest's): reads below it are refused.
    horizon: AtomicU64,
    /// The manifest's `horizon_found`: a point read at or above it that finds a version is
    /// exact even below `horizon`.
    horizon_found: AtomicU64,
    /// Versions pinned by live snapshots, with their counts.
    pub pins: Mutex<BTreeMap<Version, usize>>,
    /// Why the database refuses writes, once an I/O error made it so.
    read_only: Mutex<Option<Arc<str>>>,
    /// Why the last compaction failed, if it did.
    last_compaction_error: Mutex<Option<String>>,
    closed: AtomicBool,
    /// Checkpoints copying logs now: while any runs, flushes leave retired logs in place.
    pub(crate) checkpoints_running: AtomicUsize,
    /// Wakes the flush thread: a memtable was sealed, or the database is closing.
    background: (Mutex<BackgroundState>, Condvar),
    /// Wakes the compaction thread: a flush added a segment, `compact()` asked, or closing.
    compaction: (Mutex<CompactionState>, Condvar),
    /// Wakes writers stalled on a full set of memtables or too many open segments.
    stall: (Mutex<()>, Condvar),
    /// Segments below the target size in the tiers, counted at every change of the segments,
    /// so that a write checks it without walking them.
    segment_count_open: AtomicUsize,
    pub counters: Counters,
    /// madvise hints from the reads, shared with every open segment.
    pub advisor: Arc<LocalityAdvisor>,
    /// The memory the open segments' fence keys share (`Options::fence_keys_bytes_max`).
    pub fence_budget: Arc<FenceBudget>,
    /// Tests only: flushes wait while set (sealed memtables and their logs pile up).
    #[cfg(test)]
    flush_paused: AtomicBool,
}

#[derive(Debug, Default)]
struct BackgroundState {
    shutdown: bool,
    /// Sealed memtables not yet flushed (the background thread drains them).
    flush_requested: bool,
    /// Rounds the background thread has started: it takes the requests when it starts one.
    rounds_started: u64,
    /// Rounds it has finished. A request made while `rounds_started == s` is served by the
    /// time `rounds_done > s`: round `s + 1` starts after the request.
    rounds_done: u64,
}

#[derive(Debug, Default)]
struct CompactionState {
    shutdown: bool,
    /// A flush added a segment since the compaction thread last looked.
    segments_added: bool,
    /// `compact()` asked for a full compaction.
    full_requested: bool,
    /// Rounds started and finished, as in [`BackgroundState`].
    rounds_started: u64,
    rounds_done: u64,
}

/// The delay before a failed background compaction is retried: doubling from
/// [`COMPACTION_RETRY_DELAY_MIN`] up to [`COMPACTION_RETRY_DELAY_MAX`].
pub(crate) const COMPACTION_RETRY_DELAY_MIN: Duration = Duration::from_millis(100);
/// See [`COMPACTION_RETRY_DELAY_MIN`].
pub(crate) const COMPACTION_RETRY_DELAY_MAX: Duration = Duration::from_secs(10);

/// The retry delay after `failure_count` consecutive failures (at least 1).
pub(crate) fn compaction_retry_delay(failure_count: u32) -> Duration {
    let shift = failure_count.saturating_sub(1).min(16);
    COMPACTION_RETRY_DELAY_MIN.saturating_mul(1 << shift).min(COMPACTION_RETRY_DELAY_MAX)
}

/// How long a stalled writer sleeps before it looks again (it is also woken by every flush,
/// compaction and failure).
const STALL_POLL: Duration = Duration::from_millis(10);
/// How long a write is delayed in the slowdown zone.
const SLOWDOWN_DELAY: Duration = Duration::from_millis(1);

/// A commit group as written to the log: the leader's buffers, kept between groups so that a
/// commit allocates nothing.
#[derive(Debug, Default)]
struct LoggedGroup {
    /// The log frame: header, then the accepted records.
    frame: Vec<u8>,
    /// Where each accepted record starts in `frame`.
    starts: Vec<usize>,
    /// The version of each accepted record.
    versions: Vec<Version>,
    /// For each record of the group, whether it was accepted (a refused one was completed
    /// with its error already).
    accepted: Vec<bool>,
}

/// A frame buffer larger than this is dropped after its group rather than kept, so that one
/// huge group does not pin its memory.
const FRAME_KEEP_BYTES_MAX: usize = 2 * crate::commit::GROUP_BYTES_MAX;

impl LoggedGroup {
    fn clear(&mut self) {
        if self.frame.capacity() > FRAME_KEEP_BYTES_MAX {
            self.frame = Vec::new();
        }
        self.frame.clear();
        self.starts.clear();
        self.versions.clear();
        self.accepted.clear();
    }
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
                .spawn(move || inner.background_loop())?
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
        db.inner.request_compaction(false);
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
        self.inner.wait_for_compaction_round(true);
        self.inner.check_writable()?;
        match lock(&self.inner.last_compaction_error).clone() {
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
        {
            let (state, wake) = &self.inner.background;
            lock(state).shutdown = true;
            wake.notify_all();
        }
        {
            let (state, wake) = &self.inner.compaction;
            lock(state).shutdown = true;
            wake.notify_all();
        }
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

fn encode_error(error: record::EncodeError) -> Error {
    match error {
        record::EncodeError::Limit(limit) => limit.into(),
        other => {
            panic!("record encoding into a buffer of the exact encoded length failed: {other}")
        }
    }
}

impl Inner {
    fn open(dir: &Path, options: Options, io: Arc<dyn Io>) -> Result<Inner> {
        if options.read_only {
            return Inner::open_read_only(dir, options, io);
        }
        prepare_dir(io.as_ref(), dir, &options)?;
        // Refuse a foreign directory or a manifest that does not decode before locking, so
        // that not even a LOCK file is left.
        refuse_foreign(dir, &io.list_dir(dir)?)?;
        Manifest::read(io.as_ref(), dir)?;
        let dir_lock = io
            .try_lock(&dir.join(LOCK_NAME))?
            .ok_or_else(|| Error::Locked { path: dir.to_path_buf() })?;
        let names = io.list_dir(dir)?;
        refuse_foreign(dir, &names)?;
        // Only a writable open probes (a read-only one writes nothing); a failed probe leaves
        // the backend's default routing: nothing to report.
        let _ = io.probe_dir(dir);
        let mut manifest = if let Some(manifest) = Manifest::read(io.as_ref(), dir)? {
            manifest
        } else {
            // A new database (a crash may have left the first manifest's temporary, which
            // `write` replaces). Its first file numbers are reserved at once.
            let manifest =
                Manifest { file_number_next: 1 + FILE_NUMBERS_RESERVED, ..Manifest::default() };
            manifest.write(io.as_ref(), dir)?;
            manifest
        };
        let (advisor, fence_budget) = read_parts(&options);
        remove_leftovers(io.as_ref(), dir, &manifest, &names)?;
        let recovery = Recovery {
            io: &io,
            dir,
            options: &options,
            advisor: &advisor,
            fence_budget: &fence_budget,
        };
        let mut recovered = recover(&recovery, &mut manifest, &names, false)?;
        let mut file_number_next = recovered.file_number_next;
        let log = if let Some(log) = recovered.log.take() {
            log
        } else {
            let number = file_number_next;
            file_number_next = number.checked_add(1).ok_or_else(|| numbers_exhausted(dir))?;
            recovered.memtable = Memtable::new(number);
            start_first_log(
                io.as_ref(),
                dir,
                &mut manifest,
                number,
                options.log_fill_ahead_bytes(),
            )?
        };
        let inner = Inner::assemble(dir, options, io, manifest, recovered, (advisor, fence_budget));
        *lock(&inner.lock) = Some(dir_lock);
        *lock(&inner.log) = Some(log);
        inner.file_number_next.store(file_number_next, Ordering::Relaxed);
        Ok(inner)
    }

    /// A read-only open: no lock, nothing created, written, synced or deleted. A writer in
    /// another process may replace the manifest and delete the files the old one named while
    /// this reads them: when recovery fails and the manifest changed meanwhile, it starts over
    /// (at most `READ_ONLY_ATTEMPTS_MAX` times).
    fn open_read_only(dir: &Path, options: Options, io: Arc<dyn Io>) -> Result<Inner> {
        let mut attempt = 1;
        loop {
            let names = io.list_dir(dir)?;
            refuse_foreign(dir, &names)?;
            let manifest = Manifest::read(io.as_ref(), dir)?.ok_or_else(|| {
                let what = format!("no ZVerse database in {}: no MANIFEST", dir.display());
                Error::Io(std::io::Error::new(std::io::ErrorKind::NotFound, what))
            })?;
            let mut read = manifest.clone();
            let (advisor, fence_budget) = read_parts(&options);
            let recovery = Recovery {
                io: &io,
                dir,
                options: &options,
                advisor: &advisor,
                fence_budget: &fence_budget,
            };
            match recover(&recovery, &mut read, &names, true) {
                Ok(recovered) => {
                    let parts = (advisor, fence_budget);
                    return Ok(Inner::assemble(dir, options, io, manifest, recovered, parts));
                }
                Err(error) => {
                    let changed = Manifest::read(io.as_ref(), dir).ok().flatten() != Some(manifest);
                    if !changed || attempt >= READ_ONLY_ATTEMPTS_MAX {
                        return Err(error);
                    }
                    attempt += 1;
                }
            }
        }
    }

    /// The state of an open database around what recovery rebuilt; the caller installs the
    /// lock, the log and the next file number of a writable open.
    fn assemble(
        dir: &Path,
        options: Options,
        io: Arc<dyn Io>,
        manifest: Manifest,
        recovered: Recovered,
        (advisor, fence_budget): (Arc<LocalityAdvisor>, Arc<FenceBudget>),
    ) -> Inner {
        let clock = HybridClock::new(recovered.version_max);
        let tiers_segments = recovered.segments;
        let segment_count_open = count_open(&tiers_segments, &options);
        let tiers = Tiers {
            active: Arc::new(recovered.memtable),
            sealed: Vec::new(),
            segments: tiers_segments,
        };
        // Leaders let late joiners board only where a group shares a sync.
        let stage = Stage::new(options.durability == Durability::Sync);
        Inner {
            dir: dir.to_path_buf(),
            io,
            options,
            lock: Mutex::new(None),
            watermark: AtomicU64::new(clock.last().get()),
            clock,
            stage,
            logged: Mutex::new(LoggedGroup::default()),
            log: Mutex::new(None),
            log_bytes_read_only: recovered.log_bytes,
            tiers: TierSet::new(tiers),
            file_number_next: AtomicU64::new(manifest.file_number_next),
            file_number_reserved: AtomicU64::new(manifest.file_number_next),
            horizon: AtomicU64::new(manifest.horizon.get()),
            horizon_found: AtomicU64::new(manifest.horizon_found.get()),
            manifest: Mutex::new(manifest),
            pins: Mutex::new(BTreeMap::new()),
            read_only: Mutex::new(None),
            last_compaction_error: Mutex::new(None),
            closed: AtomicBool::new(false),
            checkpoints_running: AtomicUsize::new(0),
            background: (Mutex::new(BackgroundState::default()), Condvar::new()),
            compaction: (Mutex::new(CompactionState::default()), Condvar::new()),
            stall: (Mutex::new(()), Condvar::new()),
            segment_count_open: AtomicUsize::new(segment_count_open),
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

    /// The tiers as they are now (an owned `Arc`; readers of one call use `tiers.load()`).
    pub(crate) fn tiers(&self) -> Arc<Tiers> {
        self.tiers.load_full()
    }

    /// The newest version a reader may read at: every version at or below it is applied.
    pub(crate) fn visible_version(&self) -> Version {
        Version::new(self.watermark.load(Ordering::Acquire))
    }

    /// The retention horizon: every read at or above it is exact.
    pub(crate) fn horizon(&self) -> Version {
        Version::new(self.horizon.load(Ordering::Acquire))
    }

    /// A point read at or above it that finds a retained version is exact.
    pub(crate) fn horizon_found(&self) -> Version {
        Version::new(self.horizon_found.load(Ordering::Acquire))
    }

    /// Raises the horizons; compaction calls it before it swaps in tiers that lack versions
    /// below them.
    pub(crate) fn raise_horizons(&self, horizon: Version, horizon_found: Version) {
        self.horizon_found.fetch_max(horizon_found.get(), Ordering::AcqRel);
        self.horizon.fetch_max(horizon.get(), Ordering::AcqRel);
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

    /// The files the database has now: `MANIFEST`, `LOCK` (created by the first writable
    /// open, never deleted), the live logs and segments.
    pub(crate) fn file_count(&self) -> u64 {
        let manifest = lock(&self.manifest);
        2 + manifest.logs.len() as u64 + manifest.segments.len() as u64
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

    fn check_writable(&self) -> Result<()> {
        self.check_open()?;
        if self.options.read_only {
            return Err(Error::OpenedReadOnly);
        }
        match &*lock(&self.read_only) {
            Some(reason) => Err(Error::ReadOnly(Arc::clone(reason))),
            None => Ok(()),
        }
    }

    /// Turns the database read-only for `reason` and returns the error writers get.
    pub(crate) fn fail(&self, reason: String) -> Error {
        let (reason, first) = {
            let mut read_only = lock(&self.read_only);
            let first = read_only.is_none();
            (Arc::clone(read_only.get_or_insert_with(|| reason.into())), first)
        };
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

    /// Wakes writers waiting in [`Inner::wait_for_room`].
    pub(crate) fn wake_stalled_writers(&self) {
        let (guard, wake) = &self.stall;
        drop(lock(guard));
        wake.notify_all();
    }

    /// Write stalls: delays a writer while compaction falls behind (open segments at
    /// `write_slowdown_segments`), and holds it while the memtables are all full or the open
    /// segments reach `write_stop_segments`, until a flush or compaction makes room. Returns
    /// the database's error if it closes or turns read-only meanwhile.
    fn wait_for_room(&self) -> Result<()> {
        let mut stalled_since: Option<Instant> = None;
        let outcome = loop {
            if let Err(error) = self.check_writable() {
                break Err(error);
            }
            let (memtable_count, open_segment_count) = self.write_pressure();
            let memtables_full = memtable_count >= self.options.memtable_limit();
            let segments_full = open_segment_count >= self.options.write_stop_segment_count();
            if segments_full && !memtables_full {
                // Compaction is failing (a full disk): fail the write rather than hold it
                // until the disk has room.
                if let Some(reason) = lock(&self.last_compaction_error).clone() {
                    break Err(Error::Io(std::io::Error::other(format!(
                        "writes stopped: {open_segment_count} segments wait for compaction, \
                         which failed: {reason}"
                    ))));
                }
            }
            let stop = memtables_full || segments_full;
            if !stop {
                if stalled_since.is_none()
                    && open_segment_count >= self.options.write_slowdown_segment_count()
                {
                    self.counters.write_slowdowns.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(SLOWDOWN_DELAY);
                }
                break Ok(());
            }
            if stalled_since.is_none() {
                stalled_since = Some(Instant::now());
                self.counters.write_stalls.fetch_add(1, Ordering::Relaxed);
                ::log::info!(
                    "zverse: writes stalled: {memtable_count} memtables, \
                     {open_segment_count} segments waiting for compaction"
                );
            }
            let (guard, wake) = &self.stall;
            let guard = lock(guard);
            drop(wake.wait_timeout(guard, STALL_POLL).unwrap_or_else(PoisonError::into_inner));
        };
        if let Some(since) = stalled_since {
            let micros = u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.counters.write_stall_micros.fetch_add(micros, Ordering::Relaxed);
        }
        outcome
    }

    /// Memtables (active and sealed) and open segments (below the target size) now.
    fn write_pressure(&self) -> (usize, usize) {
        let sealed_count = self.tiers.load().sealed.len();
        (1 + sealed_count, self.segment_count_open.load(Ordering::Acquire))
    }

    /// Counts the open segments of a new set of segments; called with the tiers lock held.
    pub(crate) fn count_open_segments(&self, segments: &[Arc<SegmentFile>]) {
        let count = count_open(segments, &self.options);
        self.segment_count_open.store(count, Ordering::Release);
    }

    /// Commits the encoded record `encoded` (at version zero, which the commit replaces).
    pub(crate) fn commit(
        &self,
        encoded: Vec<u8>,
        user_bytes: u64,
        version_wanted: Option<Version>,
    ) -> Result<Version> {
        self.commit_staged(user_bytes, version_wanted, |record| {
            *record = encoded;
            Ok(())
        })
    }

    /// Commits the record `encode` writes (at version zero) into a buffer of `record_len`
    /// bytes: the writer thread's reused buffer, so that a put allocates nothing here.
    fn commit_encoding(
        &self,
        record_len: usize,
        user_bytes: u64,
        encode: impl FnOnce(&mut [u8]) -> Result<usize, record::EncodeError>,
    ) -> Result<Version> {
        self.commit_staged(user_bytes, None, |record| {
            record.resize(record_len, 0);
            encode(record).map(drop).map_err(encode_error)
        })
    }

    fn commit_staged(
        &self,
        user_bytes: u64,
        version_wanted: Option<Version>,
        fill: impl FnOnce(&mut Vec<u8>) -> Result<()>,
    ) -> Result<Version> {
        self.wait_for_room()?;
        let pending = Pending::staged(version_wanted, fill)?;
        let committed = self.stage.submit(&pending, self);
        Pending::recycle(pending);
        let version = committed?;
        self.counters.bytes_user.fetch_add(user_bytes, Ordering::Relaxed);
        Ok(version)
    }

    /// [`Inner::commit`], refused with [`Error::Conflict`] unless `check` passes at the
    /// moment the record gets its version.
    pub(crate) fn commit_checked(
        &self,
        encoded: Vec<u8>,
        user_bytes: u64,
        version_wanted: Option<Version>,
        check: Option<crate::transaction::ConflictCheck>,
    ) -> Result<Version> {
        self.submit(&Pending::checked(encoded, version_wanted, check), user_bytes)
    }

    fn submit(&self, pending: &Arc<Pending>, user_bytes: u64) -> Result<Version> {
        self.wait_for_room()?;
        let version = self.stage.submit(pending, self)?;
        self.counters.bytes_user.fetch_add(user_bytes, Ordering::Relaxed);
        Ok(version)
    }

    /// A new file number, reserved in the manifest before it is returned (a manifest write
    /// once every `FILE_NUMBERS_RESERVED` numbers). Never call it holding the manifest lock.
    /// If the reservation fails, the database turns read-only (the caller's next manifest
    /// write fails too) and the number is returned unreserved: a file a crash then leaves
    /// with it is ignored, never deleted.
    pub(crate) fn allocate_file_number(&self) -> u64 {
        let Ok(number) =
            self.file_number_next
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_add(1))
        else {
            let _ = self.fail(numbers_exhausted(&self.dir).to_string());
            return u64::MAX;
        };
        if number >= self.file_number_reserved.load(Ordering::Acquire)
            && let Err(error) = self.reserve_file_numbers(number)
        {
            let _ = self.fail(format!("reserving file number {number} failed: {error}"));
        }
        number
    }

    /// Records in the manifest that numbers up to `number` and `FILE_NUMBERS_RESERVED` past it
    /// are in use.
    fn reserve_file_numbers(&self, number: u64) -> Result<()> {
        let mut manifest = lock(&self.manifest);
        if number < manifest.file_number_next {
            return Ok(());
        }
        let mut next = manifest.clone();
        next.file_number_next = number
            .checked_add(1 + FILE_NUMBERS_RESERVED)
            .ok_or_else(|| numbers_exhausted(&self.dir))?;
        next.write(self.io.as_ref(), &self.dir)?;
        self.file_number_reserved.store(next.file_number_next, Ordering::Release);
        *manifest = next;
        Ok(())
    }

    /// The `file_number_next` a manifest written now records: above every number allocated.
    pub(crate) fn file_number_next(&self) -> u64 {
        self.file_number_reserved.load(Ordering::Acquire)
    }

    /// The version for a record: the clock's next, or the one its writer asked for if that is
    /// above every version handed out (`None` otherwise, and the writer is told why).
    fn version_for(&self, pending: &Pending, now: Version) -> Option<Version> {
        match pending.version_wanted {
            None => {
                let version = self.clock.tick(now);
                if version.is_none() {
                    pending.complete(Err(Error::VersionsExhausted));
                }
                version
            }
            Some(wanted) if wanted > version_ahead_max(now, self.options.version_ahead_max) => {
                let version_max = version_ahead_max(now, self.options.version_ahead_max);
                pending.complete(Err(Error::VersionTooFarAhead { version: wanted, version_max }));
                None
            }
            Some(wanted) if wanted > self.clock.last() => {
                self.clock.observe(wanted);
                Some(wanted)
            }
            Some(wanted) => {
                let last = self.clock.last();
                pending.complete(Err(Error::VersionNotAfter { version: wanted, last }));
                None
            }
        }
    }

    /// Appends a group's records, with their versions, to the log as one frame; syncs per the
    /// durability. Fills `logged` (cleared) with the frame, where each accepted record starts
    /// in it and its version, and which of the group's records were accepted (the others were
    /// already completed with an error).
    fn append_group(&self, group: &[Arc<Pending>], logged: &mut LoggedGroup) -> Result<(), Error> {
        let now = Version::from_system_time(SystemTime::now());
        let records_len: usize = group.iter().map(|p| p.record.len()).sum();
        let frame = &mut logged.frame;
        frame.reserve(log::FRAME_HEADER_LEN + records_len);
        frame.resize(log::FRAME_HEADER_LEN, 0);
        for pending in group {
            // Every earlier group is in the memtable, and the records of this group accepted
            // so far are in `frame`: the check sees every write ordered before this one.
            if let Some(check) = &pending.check
                && let Err(error) = self.validate(check, frame, &logged.starts)
            {
                pending.complete(Err(error));
                logged.accepted.push(false);
                continue;
            }
            let Some(version) = self.version_for(pending, now) else {
                logged.accepted.push(false);
                continue;
            };
            logged.accepted.push(true);
            let start = frame.len();
            logged.starts.push(start);
            logged.versions.push(version);
            frame.extend_from_slice(&pending.record);
            record::rewrite_version(&mut frame[start..], version)
                .expect("a record this database encoded has a valid header");
        }
        if logged.starts.is_empty() {
            // Every write was refused: no frame (a frame with an empty body is a log's seal).
            return Ok(());
        }
        let mut log = lock(&self.log);
        let log = log.as_mut().ok_or(Error::OpenedReadOnly)?;
        log::seal_frame(frame, log.nonce, log.offset_end, log.offset_synced);
        let sync = self.options.durability == Durability::Sync;
        let zeros = log.reserve(frame.len() as u64);
        let written = zeros.and_then(|zero_bytes| {
            self.counters.bytes_written_log.fetch_add(zero_bytes, Ordering::Relaxed);
            if sync {
                log.file.write_all_at_and_sync(&[frame], log.offset_end)
            } else {
                log.file.write_all_at(frame, log.offset_end)
            }
        });
        if let Err(error) = written {
            return Err(self.fail(format!("log append to log {} failed: {error}", log.number)));
        }
        log.offset_end += frame.len() as u64;
        if sync {
            log.offset_synced = log.offset_end;
        }
        self.counters.bytes_written_log.fetch_add(frame.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Inserts a logged group into the active memtable, taking each key and value from where
    /// it was encoded (no decode, no checksum); returns the group's last version.
    fn apply_group(&self, logged: &LoggedGroup) -> Version {
        let active = Arc::clone(&self.tiers.load().active);
        let mut version_last = Version::ZERO;
        for (&start, &version) in logged.starts.iter().zip(&logged.versions) {
            let ops = logged.frame.get(start..).and_then(record::ops_of_encoded);
            for op in ops.expect("a record this database just encoded has ops") {
                active.insert(op.key, version, op.value);
            }
            version_last = version;
        }
        active.cover(version_last);
        version_last
    }

    /// Syncs the active log. The log's lock is not held through the sync, so that a leader
    /// appending meanwhile (`Periodic`) never waits for it: the bytes before the end seen
    /// before the sync are durable after it, and only they are claimed.
    fn sync_log(&self) -> Result<()> {
        let (file, number, offset_end) = {
            let log = lock(&self.log);
            let Some(log) = log.as_ref() else { return Ok(()) };
            if log.offset_synced >= log.offset_end {
                return Ok(());
            }
            (Arc::clone(&log.file), log.number, log.offset_end)
        };
        if let Err(error) = file.sync_data() {
            return Err(self.fail(format!("sync of log {number} failed: {error}")));
        }
        if let Some(log) = lock(&self.log).as_mut()
            && log.number == number
        {
            log.offset_synced = log.offset_synced.max(offset_end);
        }
        Ok(())
    }

    /// At close: syncs the log and, unless the database is read-only, seals it, so that the
    /// next open tells damage to its last frames (corruption) from a torn append (a crash).
    fn sync_and_seal_log(&self) -> Result<()> {
        self.sync_log()?;
        if lock(&self.read_only).is_some() {
            return Ok(());
        }
        {
            let mut log = lock(&self.log);
            let Some(log) = log.as_mut() else { return Ok(()) };
            if let Err(error) = log.append_seal() {
                return Err(self.fail(format!("sealing log {} failed: {error}", log.number)));
            }
        }
        self.sync_log()
    }

    /// Seals the active memtable and starts a new log for the next one. Only the leader
    /// calls this (the memtable and the log belong to it).
    pub(crate) fn rotate(&self) -> Result<()> {
        if self.tiers.load().active.is_empty() {
            return Ok(());
        }
        // Older logs are complete, sealed and synced before a newer one exists, so that
        // recovery can tell a damaged or cut old log (corruption) from a torn newest one (a
        // crash).
        {
            let mut log = lock(&self.log);
            let log = log.as_mut().ok_or(Error::OpenedReadOnly)?;
            if let Err(error) = log.append_seal() {
                return Err(self.fail(format!("sealing log {} failed: {error}", log.number)));
            }
        }
        self.sync_log()?;
        let number = self.allocate_file_number();
        self.check_writable()?;
        let fill_ahead_bytes = self.options.log_fill_ahead_bytes();
        let new_log = ActiveLog::create(self.io.as_ref(), &self.dir, number, fill_ahead_bytes)
            .map_err(|error| self.fail(format!("creating log {number} failed: {error}")))?;
        self.record_log(number)?;
        *lock(&self.log) = Some(new_log);
        {
            let mut tiers = self.tiers.lock();
            let mut sealed = tiers.sealed.clone();
            sealed.insert(0, Arc::clone(&tiers.active));
            *tiers = Arc::new(Tiers {
                active: Arc::new(Memtable::new(number)),
                sealed,
                segments: tiers.segments.clone(),
            });
        }
        let (state, wake) = &self.background;
        lock(state).flush_requested = true;
        wake.notify_all();
        Ok(())
    }

    /// Adds log `number`, created and synced, to the manifest's live logs. Until then no write
    /// goes to it, so a crash before leaves an empty log the next open deletes.
    fn record_log(&self, number: u64) -> Result<()> {
        let mut manifest = lock(&self.manifest);
        let mut next = manifest.clone();
        next.logs.push(number);
        if let Err(error) = next.write(self.io.as_ref(), &self.dir) {
            return Err(
                self.fail(format!("recording log {number} in the manifest failed: {error}"))
            );
        }
        *manifest = next;
        Ok(())
    }

    fn wait_for_background_round(&self) {
        let (state, wake) = &self.background;
        let mut state = lock(state);
        let target = state.rounds_started + 1;
        state.flush_requested = true;
        wake.notify_all();
        while state.rounds_done < target && !state.shutdown {
            state = wake.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn background_loop(&self) {
        let (state_lock, wake) = &self.background;
        loop {
            {
                let mut state = lock(state_lock);
                let period = match self.options.durability {
                    Durability::Periodic(period) => Some(period),
                    _ => None,
                };
                while !state.shutdown && !state.flush_requested {
                    state = match period {
                        Some(period) => wake
                            .wait_timeout(state, period)
                            .map_or_else(|e| e.into_inner().0, |r| r.0),
                        None => wake.wait(state).unwrap_or_else(PoisonError::into_inner),
                    };
                    if period.is_some() {
                        break;
                    }
                }
                if state.shutdown {
                    state.rounds_done += 1;
                    wake.notify_all();
                    return;
                }
                state.flush_requested = false;
                state.rounds_started += 1;
            }
            if matches!(self.options.durability, Durability::Periodic(_)) {
                let _ = self.sync_log();
            }
            if let Err(error) = self.flush_sealed() {
                let _ = self.fail(format!("flush failed: {error}"));
            }
            let mut state = lock(state_lock);
            state.rounds_done += 1;
            wake.notify_all();
        }
    }

    /// Tells the compaction thread to look (`full`: and to compact everything).
    pub(crate) fn request_compaction(&self, full: bool) {
        let (state, wake) = &self.compaction;
        let mut state = lock(state);
        state.segments_added = true;
        state.full_requested |= full;
        wake.notify_all();
    }

    /// Asks for a compaction round and waits until one that started after the request ends.
    fn wait_for_compaction_round(&self, full: bool) {
        let (state, wake) = &self.compaction;
        let mut state = lock(state);
        let target = state.rounds_started + 1;
        state.segments_added = true;
        state.full_requested |= full;
        wake.notify_all();
        while state.rounds_done < target && !state.shutdown {
            state = wake.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The compaction thread: waits for a flush (or `compact()`), then runs compaction steps
    /// while the open segments are at the trigger. A failed step leaves the old segments in
    /// place and is retried after a delay that doubles up to [`COMPACTION_RETRY_DELAY_MAX`];
    /// `compact()` reports it through `last_compaction_error`.
    fn compaction_loop(&self) {
        let (state_lock, wake) = &self.compaction;
        let mut failure_count = 0u32;
        loop {
            let full;
            {
                let mut state = lock(state_lock);
                while !state.shutdown && !state.segments_added {
                    state = wake.wait(state).unwrap_or_else(PoisonError::into_inner);
                }
                if state.shutdown {
                    state.rounds_done = state.rounds_started;
                    wake.notify_all();
                    return;
                }
                state.segments_added = false;
                state.rounds_started += 1;
                full = std::mem::take(&mut state.full_requested);
            }
            let outcome = if full { self.compact_all() } else { self.compact_while_triggered() };
            // A step cut short by `close` is no failure (its files are removed all the same).
            let outcome =
                outcome.or_else(|e| if matches!(e, Error::Closed) { Ok(()) } else { Err(e) });
            let failed = outcome.is_err();
            if let Err(error) = &outcome {
                failure_count = failure_count.saturating_add(1);
                self.counters.compaction_failures.fetch_add(1, Ordering::Relaxed);
                ::log::warn!("zverse: compaction failed ({failure_count} in a row): {error}");
            } else {
                failure_count = 0;
            }
            *lock(&self.last_compaction_error) = outcome.err().map(|e| e.to_string());
            self.wake_stalled_writers();
            let mut state = lock(state_lock);
            state.rounds_done += 1;
            wake.notify_all();
            if failed {
                // Back off, then look again (a shutdown cuts the wait short).
                let delay = compaction_retry_delay(failure_count);
                let deadline = Instant::now() + delay;
                while !state.shutdown && !state.full_requested && Instant::now() < deadline {
                    let left = deadline.saturating_duration_since(Instant::now());
                    state =
                        wake.wait_timeout(state, left).map_or_else(|e| e.into_inner().0, |r| r.0);
                }
                state.segments_added = true;
            }
        }
    }

    /// Background compaction steps while the open segments are at the trigger.
    fn compact_while_triggered(&self) -> Result<()> {
        while !self.is_closing() && self.compact_step()? {}
        Ok(())
    }

    /// Writes every sealed memtable, oldest first, to a segment.
    fn flush_sealed(&self) -> Result<()> {
        #[cfg(test)]
        if self.flush_paused.load(Ordering::Acquire) {
            return Ok(());
        }
        while let Some(memtable) = self.tiers().sealed.last().cloned() {
            self.flush_one(&memtable)?;
        }
        Ok(())
    }

    /// A writer of new segments (flush and compaction), split at the options' limits.
    pub(crate) fn segment_writer(&self) -> SegmentWriter<'_> {
        let limits = writer_limits(&self.options);
        let allocate = Box::new(|| self.allocate_file_number());
        SegmentWriter::new(self.io.as_ref(), &self.dir, allocate, limits)
    }

    /// Opens segments a writer finished (the caller has synced their directory entries) and
    /// counts their bytes. The caller records them in the manifest.
    pub(crate) fn open_new_segments(&self, metas: &[SegmentMeta]) -> Result<Vec<Arc<SegmentFile>>> {
        let bytes: u64 = metas.iter().map(|meta| meta.file_bytes).sum();
        self.counters.bytes_written_segments.fetch_add(bytes, Ordering::Relaxed);
        metas
            .iter()
            .map(|meta| {
                Ok(Arc::new(SegmentFile::open(
                    &self.io,
                    &self.dir,
                    *meta,
                    &self.advisor,
                    &self.fence_budget,
                )?))
            })
            .collect()
    }

    fn flush_one(&self, memtable: &Arc<Memtable>) -> Result<()> {
        let started = Instant::now();
        let allocate = Box::new(|| self.allocate_file_number());
        let (metas, new_files) =
            write_memtable(self.io.as_ref(), &self.dir, &self.options, allocate, memtable)?;
        let outputs = self.open_new_segments(&metas)?;
        let version_max = metas.iter().map(|meta| meta.version_max).max().unwrap_or(Version::ZERO);
        let mut manifest = lock(&self.manifest);
        let mut tiers = self.tiers.lock();
        let mut sealed = tiers.sealed.clone();
        let position = sealed.iter().position(|m| Arc::ptr_eq(m, memtable));
        let position = position.expect("only the background thread removes sealed memtables");
        sealed.remove(position);
        let log_number_min = sealed.last().unwrap_or(&tiers.active).log_number_first();
        let mut segments = tiers.segments.clone();
        segments.extend(outputs.iter().cloned());
        crate::compaction::sort_newest_first(&mut segments);
        let mut next = manifest.clone();
        next.segments = segments.iter().map(|segment| *segment.meta()).collect();
        next.logs.retain(|&number| number >= log_number_min);
        next.file_number_next = self.file_number_next();
        next.version_last = next.version_last.max(version_max).max(memtable.version_last());
        // From here the manifest may name the new files, whatever the write's outcome.
        new_files.keep();
        next.write(self.io.as_ref(), &self.dir)?;
        *manifest = next;
        self.count_open_segments(&segments);
        *tiers = Arc::new(Tiers { active: Arc::clone(&tiers.active), sealed, segments });
        drop(tiers);
        drop(manifest);
        self.counters.flushes.fetch_add(1, Ordering::Relaxed);
        let bytes: u64 = metas.iter().map(|meta| meta.file_bytes).sum();
        ::log::info!(
            "zverse: flushed {} versions into {} segments ({bytes} bytes) in {:?}",
            memtable.entry_count(),
            metas.len(),
            started.elapsed()
        );
        self.remove_logs_below(log_number_min);
        self.wake_stalled_writers();
        self.request_compaction(false);
        Ok(())
    }

    /// Deletes the log files a flush has made obsolete: those numbered below `log_number_min`
    /// (no longer in the manifest), below the reserved numbers, so the engine's own. A failure
    /// leaves an old log behind, which the next open deletes: nothing is lost, so it is not
    /// an error. While a checkpoint copies logs it does nothing (the checkpoint calls it when
    /// done).
    pub(crate) fn remove_logs_below(&self, log_number_min: u64) {
        if self.checkpoints_running.load(Ordering::SeqCst) > 0 {
            return;
        }
        let Ok(names) = self.io.list_dir(&self.dir) else { return };
        let live = lock(&self.manifest).logs.clone();
        for name in names {
            let obsolete = parse_file_number(&name, ".log")
                .is_some_and(|number| number < log_number_min && !live.contains(&number));
            if obsolete {
                let _ = self.io.remove_file(&self.dir.join(name));
            }
        }
    }
}

impl GroupCommit for Inner {
    fn commit_group(&self, group: &[Arc<Pending>]) {
        let mut logged = lock(&self.logged);
        logged.clear();
        let outcome = self.check_writable().and_then(|()| self.append_group(group, &mut logged));
        if let Err(error) = outcome {
            let reason = error.to_string();
            for pending in group {
                pending.complete(Err(match &error {
                    Error::Closed => Error::Closed,
                    Error::ReadOnly(reason) => Error::ReadOnly(Arc::clone(reason)),
                    _ => Error::ReadOnly(reason.clone().into()),
                }));
            }
            return;
        }
        if !logged.starts.is_empty() {
            let version_last = self.apply_group(&logged);
            self.watermark.store(version_last.get(), Ordering::Release);
        }
        self.counters.commit_groups.fetch_add(1, Ordering::Relaxed);
        self.counters.commit_records.fetch_add(logged.starts.len() as u64, Ordering::Relaxed);
        let committed = group.iter().zip(&logged.accepted).filter(|(_, ok)| **ok).map(|(p, _)| p);
        for (pending, &version) in committed.zip(&logged.versions) {
            pending.complete(Ok(version));
        }
        drop(logged);
        if self.tiers.load().active.size_bytes() >= self.options.memtable_bytes_max
            && let Err(error) = self.rotate()
        {
            let _ = self.fail(format!("memtable rotation failed: {error}"));
        }
    }
}

/// Segments below the target size: what background compaction merges.
fn count_open(segments: &[Arc<SegmentFile>], options: &Options) -> usize {
    segments.iter().filter(|s| !crate::compaction::is_full(s.meta(), options)).count()
}

/// Creates the directory if allowed, or checks that it exists.
fn prepare_dir(io: &dyn Io, dir: &Path, options: &Options) -> Result<()> {
    match io.list_dir(dir) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && options.create_if_missing => {
            io.create_dir_all(dir)?;
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

/// Refuses a directory that holds files but no manifest. The lock file and the temporary of a
/// first manifest (a crash while creating the database) do not count. If everything else is
/// logs and segments, it is a database that lost its manifest (`Error::Corruption` naming the
/// missing `MANIFEST`); otherwise it is not a ZVerse database.
fn refuse_foreign(dir: &Path, names: &[String]) -> Result<()> {
    if names.iter().any(|name| name == MANIFEST_NAME) {
        return Ok(());
    }
    let others: Vec<&String> =
        names.iter().filter(|name| *name != LOCK_NAME && *name != MANIFEST_TEMP_NAME).collect();
    if others.is_empty() {
        return Ok(());
    }
    let is_data = |name: &&String| {
        parse_file_number(name, ".log").is_some() || parse_file_number(name, ".seg").is_some()
    };
    if others.iter().all(is_data) {
        return Err(Error::Corruption {
            file: dir.join(MANIFEST_NAME),
            offset: 0,
            what: "missing: the directory holds ZVerse logs or segments but no manifest".into(),
        });
    }
    Err(Error::NotADatabase { path: dir.to_path_buf() })
}

/// The error for a file number sequence that reached `u64::MAX` (only a manifest with an
/// absurd `file_number_next` gets there).
fn numbers_exhausted(dir: &Path) -> Error {
    Error::Corruption {
        file: dir.join(MANIFEST_NAME),
        offset: 0,
        what: "file numbers exhausted: file_number_next is near u64::MAX".into(),
    }
}

/// `now` plus `ahead`, the newest version `Batch::commit_at` accepts.
fn version_ahead_max(now: Version, ahead: std::time::Duration) -> Version {
    let ahead_micros = u64::try_from(ahead.as_micros()).unwrap_or(u64::MAX);
    Version::new(now.get().saturating_add(ahead_micros).min(u64::MAX - 1))
}

/// The first number for a new file: above every file the manifest records, skipping numbers
/// a file in the directory has. (Unrecorded files below `file_number_next` were deleted as
/// leftovers; files numbered at or above it are not the engine's: skipped, never used to
/// derive the next number.)
fn first_unused_number(dir: &Path, manifest: &Manifest, names: &[String]) -> Result<u64> {
    let used: std::collections::BTreeSet<u64> = names
        .iter()
        .filter_map(|name| parse_file_number(name, ".log").or(parse_file_number(name, ".seg")))
        .collect();
    let recorded =
        manifest.logs.iter().copied().chain(manifest.segments.iter().map(|m| m.file_number));
    let mut number = match recorded.max() {
        Some(max) => max.checked_add(1).ok_or_else(|| numbers_exhausted(dir))?,
        None => 1,
    };
    while used.contains(&number) {
        number = number.checked_add(1).ok_or_else(|| numbers_exhausted(dir))?;
    }
    Ok(number)
}

/// Starts the first log of a database whose manifest records none (a new one, or one whose
/// creation a crash interrupted): reserves its number if needed, creates it, then records it.
fn start_first_log(
    io: &dyn Io,
    dir: &Path,
    manifest: &mut Manifest,
    number: u64,
    preallocation_bytes: u64,
) -> Result<ActiveLog> {
    if number >= manifest.file_number_next {
        let mut next = manifest.clone();
        next.file_number_next =
            number.checked_add(1 + FILE_NUMBERS_RESERVED).ok_or_else(|| numbers_exhausted(dir))?;
        next.write(io, dir)?;
        *manifest = next;
    }
    let log = ActiveLog::create(io, dir, number, preallocation_bytes)?;
    let mut next = manifest.clone();
    next.logs.push(number);
    next.write(io, dir)?;
    *manifest = next;
    Ok(log)
}

/// The number in a file name `{number:020}{suffix}`.
pub(crate) fn parse_file_number(name: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_suffix(suffix)?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())?
}

/// Removes a file a crash left behind; one already gone is fine.
fn remove_if_present(io: &dyn Io, path: &Path) -> Result<()> {
    match io.remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error.into()),
        _ => Ok(()),
    }
}

/// What recovery rebuilt.
struct Recovered {
    memtable: Memtable,
    segments: Vec<Arc<SegmentFile>>,
    version_max: Version,
    /// The newest log, open for appends (writable opens whose manifest records a log).
    log: Option<ActiveLog>,
    /// Where the newest log's intact frames end.
    log_bytes: u64,
    /// The next free file number after recovery's (above every recorded one).
    file_number_next: u64,
    /// Memtables recovery flushed because the logs held more than `memtable_bytes_max`.
    flush_count: u64,
}

/// Writes `memtable` as segments (sorted into Z order, split at the options' limits); returns
/// their manifest entries, synced, and the files (removed when dropped unless kept).
fn write_memtable<'a>(
    io: &'a dyn Io,
    dir: &'a Path,
    options: &Options,
    allocate_number: Box<dyn Fn() -> u64 + 'a>,
    memtable: &Memtable,
) -> Result<(Vec<SegmentMeta>, crate::segment_writer::NewFiles<'a>)> {
    let mut entries: Vec<_> = memtable.entries().collect();
    entries.sort_unstable_by(|a, b| zverse_core::zkey::cmp_z(a.key, a.version, b.key, b.version));
    let mut writer = SegmentWriter::new(io, dir, allocate_number, writer_limits(options));
    for entry in &entries {
        writer.add(entry)?;
    }
    drop(entries);
    let (metas, new_files) = writer.finish()?;
    if !metas.is_empty() {
        io.sync_dir(dir)?;
    }
    Ok((metas, new_files))
}

fn writer_limits(options: &Options) -> WriterLimits {
    WriterLimits {
        block_bytes: options.segment_block_bytes,
        segment_bytes_target: options.segment_bytes_target,
        metadata_bytes_max: options.segment_metadata_bytes_max(),
    }
}

/// What every open segment of a database shares: the locality advisor and the fence keys'
/// memory budget, made anew for each open (and each read-only attempt).
fn read_parts(options: &Options) -> (Arc<LocalityAdvisor>, Arc<FenceBudget>) {
    let advisor =
        LocalityAdvisor::new(options.locality_advisor, options.segment_block_bytes as usize);
    (Arc::new(advisor), Arc::new(FenceBudget::new(options.fence_keys_bytes_max)))
}

/// Where recovery works, and with which options.
#[derive(Clone, Copy)]
struct Recovery<'a> {
    io: &'a Arc<dyn Io>,
    dir: &'a Path,
    options: &'a Options,
    advisor: &'a Arc<LocalityAdvisor>,
    fence_budget: &'a Arc<FenceBudget>,
}

/// During recovery, once the replayed logs fill a memtable: writes it as segments and records
/// them in the manifest, dropping the logs replayed (below `log_number_min`), so that recovery
/// never holds more than one memtable, however many logs a crash left. The segments' numbers
/// are reserved in the manifest first (a generous count: the memtable's bytes over the target
/// segment size, plus slack), from `file_number_next` on.
fn flush_during_recovery(
    recovery: &Recovery<'_>,
    manifest: &mut Manifest,
    memtable: &Memtable,
    log_number_min: u64,
    file_number_next: &mut u64,
) -> Result<Vec<Arc<SegmentFile>>> {
    let Recovery { io, dir, options, advisor, fence_budget } = *recovery;
    let outputs_max = memtable.size_bytes() / options.segment_bytes_target.max(1) + 16;
    let reserved = file_number_next
        .checked_add(outputs_max)
        .and_then(|n| n.checked_add(FILE_NUMBERS_RESERVED))
        .ok_or_else(|| numbers_exhausted(dir))?;
    if reserved > manifest.file_number_next {
        let mut next = manifest.clone();
        next.file_number_next = reserved;
        next.write(io.as_ref(), dir)?;
        *manifest = next;
    }
    let counter = AtomicU64::new(*file_number_next);
    let allocate = Box::new(|| counter.fetch_add(1, Ordering::Relaxed));
    let (metas, new_files) = write_memtable(io.as_ref(), dir, options, allocate, memtable)?;
    *file_number_next = counter.load(Ordering::Relaxed);
    let segments = metas
        .iter()
        .map(|meta| SegmentFile::open(io, dir, *meta, advisor, fence_budget).map(Arc::new))
        .collect::<Result<Vec<_>>>()?;
    let mut next = manifest.clone();
    next.segments.splice(0..0, metas.iter().rev().copied());
    next.logs.retain(|&number| number >= log_number_min);
    next.file_number_next = next.file_number_next.max(*file_number_next);
    next.version_last = next.version_last.max(memtable.version_last());
    new_files.keep();
    next.write(io.as_ref(), dir)?;
    *manifest = next;
    ::log::info!(
        "zverse: recovery flushed {} versions into {} segments",
        memtable.entry_count(),
        segments.len()
    );
    Ok(segments)
}

/// Opens the manifest's segments and replays its logs, oldest first, into one memtable. Every
/// file the manifest records must exist: a missing one is [`Error::Corruption`] naming it.
/// Writable (`read_only == false`), the newest log is kept for appends (its torn tail cut).
fn recover(
    recovery: &Recovery<'_>,
    manifest: &mut Manifest,
    names: &[String],
    read_only: bool,
) -> Result<Recovered> {
    let Recovery { io, dir, options, advisor, fence_budget } = *recovery;
    for &number in &manifest.logs {
        let name = log::log_file_name(number);
        if !names.contains(&name) {
            return Err(Error::Corruption {
                file: dir.join(name),
                offset: 0,
                what: "missing: the manifest records this log".into(),
            });
        }
    }
    let mut segments = manifest
        .segments
        .iter()
        .map(|meta| SegmentFile::open(io, dir, *meta, advisor, fence_budget).map(Arc::new))
        .collect::<Result<Vec<_>>>()?;
    let mut memtable = Memtable::new(manifest.logs.first().copied().unwrap_or(0));
    let mut version_max = manifest.version_last;
    let mut active = None;
    let mut log_bytes = 0;
    let mut flush_count = 0;
    let mut file_number_next = first_unused_number(dir, manifest, names)?;
    let logs = manifest.logs.clone();
    for (index, &number) in logs.iter().enumerate() {
        let is_last = index + 1 == logs.len();
        let mode = match (is_last, read_only) {
            (false, _) => Mode::Older,
            (true, false) => Mode::Reuse { preallocation_bytes: options.log_fill_ahead_bytes() },
            (true, true) => Mode::ReadOnly,
        };
        let replayed = log::replay(io.as_ref(), dir, number, mode, &memtable)?;
        version_max = version_max.max(replayed.version_max.unwrap_or(Version::ZERO));
        active = replayed.active.or(active);
        log_bytes = replayed.offset_end;
        if !is_last && !read_only && memtable.size_bytes() >= options.memtable_bytes_max {
            // Logs hold whole commit groups, so the logs replayed so far are covered.
            let log_next = logs[index + 1];
            let flushed = flush_during_recovery(
                recovery,
                manifest,
                &memtable,
                log_next,
                &mut file_number_next,
            )?;
            segments.extend(flushed);
            flush_count += 1;
            for &old in &logs[..=index] {
                remove_if_present(io.as_ref(), &dir.join(log::log_file_name(old)))?;
            }
            memtable = Memtable::new(log_next);
        }
    }
    crate::compaction::sort_newest_first(&mut segments);
    for segment in &segments {
        version_max = version_max.max(segment.meta().version_max);
    }
    let log = active;
    Ok(Recovered { memtable, segments, version_max, log, log_bytes, file_number_next, flush_count })
}

/// Deletes what a crash left behind: `MANIFEST.tmp`, and logs and segments the manifest does
/// not record whose numbers it reserved (so the engine made them: a log created before it was
/// recorded, a segment written before it was, a log or segment retired but not yet deleted).
/// A file numbered at or above the manifest's `file_number_next` is not the engine's and is
/// left alone.
fn remove_leftovers(io: &dyn Io, dir: &Path, manifest: &Manifest, names: &[String]) -> Result<()> {
    for name in names {
        let log_number = parse_file_number(name, ".log");
        let segment_number = parse_file_number(name, ".seg");
        let leftover_log = log_number
            .is_some_and(|n| n < manifest.file_number_next && !manifest.logs.contains(&n));
        let leftover_segment = segment_number.is_some_and(|n| {
            n < manifest.file_number_next
                && !manifest.segments.iter().any(|meta| meta.file_number == n)
        });
        if leftover_log || leftover_segment || name == MANIFEST_TEMP_NAME {
            remove_if_present(io, &dir.join(name))?;
        }
    }
    Ok(())
}

#[cfg(all(test, not(loom)))]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::Db;
    use crate::memtable::Memtable;
    use crate::options::{Durability, Options};
    use crate::tiers::Tiers;
    use crate::{Error, Result};

    /// Opens a database whose memtable limit is 2, and adds a sealed memtable the flush thread
    /// was not told about: the memtables are full until someone asks for a flush.
    fn full_memtables(dir: &std::path::Path) -> Arc<Db> {
        let options = Options::default()
            .durability(Durability::None)
            .memtable_bytes_max(1 << 20)
            .memory_bytes_max(1 << 20);
        assert_eq!(options.memtable_limit(), 2);
        let db = Arc::new(Db::open(dir, options).unwrap());
        db.put(b"a", b"1").unwrap();
        let mut tiers = db.inner.tiers.lock();
        let mut sealed = tiers.sealed.clone();
        sealed.push(Arc::new(Memtable::new(tiers.active.log_number_first())));
        let segments = tiers.segments.clone();
        *tiers = Arc::new(Tiers { active: Arc::clone(&tiers.active), sealed, segments });
        drop(tiers);
        db
    }

    /// Spawns a writer and waits until it is stalled.
    fn stalled_writer(db: &Arc<Db>) -> std::thread::JoinHandle<Result<zverse_core::Version>> {
        let writer = {
            let db = Arc::clone(db);
            std::thread::spawn(move || db.put(b"b", b"2"))
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while db.stats().write_stalls == 0 {
            assert!(Instant::now() < deadline, "the writer never stalled");
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(50));
        assert!(!writer.is_finished(), "the writer waits while the memtables are full");
        writer
    }

    #[test]
    fn compaction_retries_back_off_from_100_ms_doubling_to_10_s() {
        let delays: Vec<u128> =
            (1..=10).map(|failures| super::compaction_retry_delay(failures).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1_600, 3_200, 6_400, 10_000, 10_000, 10_000]);
        assert_eq!(super::compaction_retry_delay(u32::MAX).as_millis(), 10_000);
    }

    #[test]
    fn a_stalled_writer_resumes_after_a_flush() {
        let dir = tempfile::tempdir().unwrap();
        let db = full_memtables(dir.path());
        let writer = stalled_writer(&db);
        db.inner.wait_for_background_round();
        writer.join().unwrap().unwrap();
        let stats = db.stats();
        assert_eq!(stats.write_stalls, 1);
        assert!(stats.write_stall_micros >= 50_000, "{stats:?}");
        assert_eq!(db.get(b"b").unwrap().as_deref(), Some(&b"2"[..]));
    }

    #[test]
    fn a_stalled_writer_gets_the_error_when_the_database_turns_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = full_memtables(dir.path());
        let writer = stalled_writer(&db);
        let _ = db.inner.fail("test: the disk failed".into());
        let outcome = writer.join().unwrap();
        assert!(matches!(outcome, Err(Error::ReadOnly(_))), "{outcome:?}");
    }

    #[test]
    fn close_wakes_a_stalled_writer() {
        let dir = tempfile::tempdir().unwrap();
        let db = full_memtables(dir.path());
        let writer = stalled_writer(&db);
        db.close().unwrap();
        let outcome = writer.join().unwrap();
        assert!(matches!(outcome, Err(Error::Closed)), "{outcome:?}");
    }

    /// A crash leaves many logs no segment covers (here: every flush is held back while the
    /// logs are copied). Recovery flushes whenever the replayed logs
    /// fill a memtable, so it never holds more than one memtable and one log.
    #[test]
    fn recovery_of_logs_larger_than_the_memtable_limit_flushes_as_it_goes() {
        const MEMTABLE_BYTES: u64 = 16 << 10;
        let options =
            || Options::default().durability(Durability::None).memtable_bytes_max(MEMTABLE_BYTES);
        let (dir, copy) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let db = Db::open(dir.path(), options()).unwrap();
        let key = |index: u32| format!("key{index:05}").into_bytes();
        {
            db.inner.flush_paused.store(true, std::sync::atomic::Ordering::Release);
            for index in 0..2_000 {
                db.put(&key(index), &[7; 100]).unwrap();
            }
            let log_count = db.stats().memtable_count;
            assert!(log_count >= 10, "{log_count} memtables wait for their flush");
            for entry in std::fs::read_dir(dir.path()).unwrap() {
                let name = entry.unwrap().file_name();
                if name != "LOCK" {
                    std::fs::copy(dir.path().join(&name), copy.path().join(&name)).unwrap();
                }
            }
        }
        drop(db);
        let db = Db::open(copy.path(), options()).unwrap();
        let stats = db.stats();
        assert!(stats.flushes >= 5, "recovery flushed {} times", stats.flushes);
        assert!(stats.memtable_bytes <= 3 * MEMTABLE_BYTES, "{stats:?}");
        for index in 0..2_000 {
            assert_eq!(db.get(&key(index)).unwrap().as_deref(), Some(&[7; 100][..]), "{index}");
        }
        drop(db);
        let db = Db::open(copy.path(), options()).unwrap();
        assert_eq!(db.get(&key(1_999)).unwrap().as_deref(), Some(&[7; 100][..]));
        assert_eq!(db.history(&key(5)).unwrap().count(), 1, "no version replayed twice");
    }
}
