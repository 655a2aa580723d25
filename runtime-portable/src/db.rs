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
use crate::log::{self, ActiveLog};
use crate::manifest::SegmentMeta;
use crate::manifest::{MANIFEST_NAME, MANIFEST_TEMP_NAME, Manifest};
use crate::memtable::Memtable;
use crate::options::{Durability, Options};
use crate::segment_file::SegmentFile;
use crate::segment_writer::{SegmentWriter, WriterLimits};
use crate::tiers::Tiers;

/// The lock file's name.
const LOCK_NAME: &str = "LOCK";

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
    /// The directory lock, released by `close` (snapshots may outlive it).
    lock: Mutex<Option<IoLock>>,
    clock: HybridClock,
    /// Every version at or below it is applied: readers read at or below it.
    watermark: AtomicU64,
    stage: Stage,
    log: Mutex<ActiveLog>,
    pub(crate) tiers: Mutex<Arc<Tiers>>,
    pub(crate) manifest: Mutex<Manifest>,
    file_number_next: AtomicU64,
    /// Versions pinned by live snapshots, with their counts.
    pub pins: Mutex<BTreeMap<Version, usize>>,
    /// Why the database refuses writes, once an I/O error made it so.
    read_only: Mutex<Option<Arc<str>>>,
    /// Why the last compaction failed, if it did.
    last_compaction_error: Mutex<Option<String>>,
    closed: AtomicBool,
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

/// A commit group as written to the log.
struct LoggedGroup {
    /// The log frame: header, then the accepted records.
    frame: Vec<u8>,
    /// Where each accepted record starts in `frame`.
    starts: Vec<usize>,
    /// For each record of the group, whether it was accepted (a refused one was completed
    /// with its error already).
    accepted: Vec<bool>,
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
    /// Fails with [`Error::Locked`] if another process or another `Db` has it open, with
    /// [`Error::NotADatabase`] if `path` holds files that are not a ZVerse database, and with
    /// [`Error::Corruption`] if a file of the database does not verify.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// use zverse::{Db, Durability, Error, Options};
    /// let db = Db::open(dir.path(), Options::default().durability(Durability::Sync))?;
    /// let again = Db::open(dir.path(), Options::default());
    /// assert!(matches!(again, Err(Error::Locked { .. })));
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
            "zverse: opened {}: {} segments, {} entries in the memtable, in {} ms",
            inner.dir.display(),
            inner.tiers().segments.len(),
            inner.tiers().active.entry_count(),
            started.elapsed().as_millis()
        );
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
        let mut encoded = vec![0; record::encoded_len_put(key, value)?];
        record::encode_put_into(&mut encoded, Version::ZERO, key, value).map_err(encode_error)?;
        self.inner.commit(encoded, (key.len() + value.len()) as u64, None)
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
        let mut encoded = vec![0; record::encoded_len_delete(key)?];
        record::encode_delete_into(&mut encoded, Version::ZERO, key).map_err(encode_error)?;
        self.inner.commit(encoded, key.len() as u64, None)
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
        self.inner.check_open()?;
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
        self.inner.check_open()?;
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
        prepare_dir(io.as_ref(), dir, &options)?;
        // Refuse a foreign directory before locking it, so that not even a LOCK file is left
        // in it.
        refuse_foreign(dir, &io.list_dir(dir)?)?;
        let lock = io
            .try_lock(&dir.join(LOCK_NAME))?
            .ok_or_else(|| Error::Locked { path: dir.to_path_buf() })?;
        refuse_foreign(dir, &io.list_dir(dir)?)?;
        let mut manifest = if let Some(manifest) = Manifest::read(io.as_ref(), dir)? {
            manifest
        } else {
            // A new database (a crash may have left the first manifest's temporary, which
            // `write` replaces).
            let manifest =
                Manifest { file_number_next: 1, log_number_min: 1, ..Manifest::default() };
            manifest.write(io.as_ref(), dir)?;
            manifest
        };
        let names = io.list_dir(dir)?;
        let advisor = Arc::new(LocalityAdvisor::new(
            options.locality_advisor,
            options.segment_block_bytes as usize,
        ));
        let recovered = recover(&io, dir, &mut manifest, &names, &options, &advisor)?;
        let clock = HybridClock::new(recovered.version_max);
        let log = ActiveLog::create(io.as_ref(), dir, recovered.file_number_next)?;
        let tiers_segments = recovered.segments;
        let segment_count_open = count_open(&tiers_segments, &options);
        let tiers = Tiers {
            active: Arc::new(recovered.memtable),
            sealed: Vec::new(),
            segments: tiers_segments,
        };
        Ok(Inner {
            dir: dir.to_path_buf(),
            io,
            options,
            lock: Mutex::new(Some(lock)),
            watermark: AtomicU64::new(clock.last().get()),
            clock,
            stage: Stage::new(),
            log: Mutex::new(log),
            tiers: Mutex::new(Arc::new(tiers)),
            manifest: Mutex::new(manifest),
            file_number_next: AtomicU64::new(recovered.file_number_next + 1),
            pins: Mutex::new(BTreeMap::new()),
            read_only: Mutex::new(None),
            last_compaction_error: Mutex::new(None),
            closed: AtomicBool::new(false),
            background: (Mutex::new(BackgroundState::default()), Condvar::new()),
            compaction: (Mutex::new(CompactionState::default()), Condvar::new()),
            stall: (Mutex::new(()), Condvar::new()),
            segment_count_open: AtomicUsize::new(segment_count_open),
            counters: Counters {
                flushes: AtomicU64::new(recovered.flush_count),
                ..Counters::default()
            },
            advisor,
        })
    }

    /// The tiers as they are now.
    pub(crate) fn tiers(&self) -> Arc<Tiers> {
        Arc::clone(&lock(&self.tiers))
    }

    /// The newest version a reader may read at: every version at or below it is applied.
    pub(crate) fn visible_version(&self) -> Version {
        Version::new(self.watermark.load(Ordering::Acquire))
    }

    pub(crate) fn log_bytes(&self) -> u64 {
        lock(&self.log).offset_end
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    fn check_writable(&self) -> Result<()> {
        self.check_open()?;
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
        let sealed_count = lock(&self.tiers).sealed.len();
        (1 + sealed_count, self.segment_count_open.load(Ordering::Acquire))
    }

    /// Counts the open segments of a new set of segments; called with the tiers lock held.
    pub(crate) fn count_open_segments(&self, segments: &[Arc<SegmentFile>]) {
        let count = count_open(segments, &self.options);
        self.segment_count_open.store(count, Ordering::Release);
    }

    pub(crate) fn commit(
        &self,
        encoded: Vec<u8>,
        user_bytes: u64,
        version_wanted: Option<Version>,
    ) -> Result<Version> {
        self.submit(&Pending::new(encoded, version_wanted), user_bytes)
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

    pub(crate) fn allocate_file_number(&self) -> u64 {
        self.file_number_next.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn file_number_next(&self) -> u64 {
        self.file_number_next.load(Ordering::Relaxed)
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
    /// durability. Returns the frame, where each accepted record starts in it, and which of
    /// the group's records were accepted (the others were already completed with an error).
    fn append_group(&self, group: &[Arc<Pending>]) -> Result<LoggedGroup, Error> {
        let now = Version::from_system_time(SystemTime::now());
        let records_len: usize = group.iter().map(|p| p.record.len()).sum();
        let mut frame = Vec::with_capacity(log::FRAME_HEADER_LEN + records_len);
        frame.resize(log::FRAME_HEADER_LEN, 0);
        let mut starts = Vec::with_capacity(group.len());
        let mut accepted = Vec::with_capacity(group.len());
        for pending in group {
            // Every earlier group is in the memtable, and the records of this group accepted
            // so far are in `frame`: the check sees every write ordered before this one.
            if let Some(check) = &pending.check
                && let Err(error) = self.validate(check, &frame, &starts)
            {
                pending.complete(Err(error));
                accepted.push(false);
                continue;
            }
            let Some(version) = self.version_for(pending, now) else {
                accepted.push(false);
                continue;
            };
            accepted.push(true);
            let start = frame.len();
            starts.push(start);
            frame.extend_from_slice(&pending.record);
            record::rewrite_version(&mut frame[start..], version)
                .expect("a record this database encoded has a valid header");
        }
        if starts.is_empty() {
            // Every write was refused: no frame (a frame with an empty body is a log's seal).
            return Ok(LoggedGroup { frame, starts, accepted });
        }
        let mut log = lock(&self.log);
        log::seal_frame(&mut frame, log.nonce, log.offset_end, log.offset_synced);
        let sync = self.options.durability == Durability::Sync;
        let written = if sync {
            log.file.write_all_at_and_sync(&[&frame], log.offset_end)
        } else {
            log.file.write_all_at(&frame, log.offset_end)
        };
        if let Err(error) = written {
            return Err(self.fail(format!("log append to log {} failed: {error}", log.number)));
        }
        log.offset_end += frame.len() as u64;
        if sync {
            log.offset_synced = log.offset_end;
        }
        self.counters.bytes_written_log.fetch_add(frame.len() as u64, Ordering::Relaxed);
        Ok(LoggedGroup { frame, starts, accepted })
    }

    /// Inserts a logged group into the active memtable; returns the group's last version.
    fn apply_group(&self, bytes: &[u8], starts: &[usize]) -> Version {
        let active = Arc::clone(&self.tiers().active);
        let mut version_last = Version::ZERO;
        for &start in starts {
            let (record, _) = record::decode_from(&bytes[start..])
                .expect("a record this database just encoded decodes");
            for entry in record.entries() {
                active.insert(entry.key, entry.version, entry.value);
            }
            version_last = record.version();
        }
        active.cover(version_last);
        version_last
    }

    fn sync_log(&self) -> Result<()> {
        let mut log = lock(&self.log);
        if log.offset_synced < log.offset_end {
            if let Err(error) = log.file.sync_data() {
                return Err(self.fail(format!("sync of log {} failed: {error}", log.number)));
            }
            log.offset_synced = log.offset_end;
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
            if let Err(error) = log.append_seal() {
                return Err(self.fail(format!("sealing log {} failed: {error}", log.number)));
            }
        }
        self.sync_log()
    }

    /// Seals the active memtable and starts a new log for the next one. Only the leader
    /// calls this (the memtable and the log belong to it).
    fn rotate(&self) -> Result<()> {
        if self.tiers().active.is_empty() {
            return Ok(());
        }
        // Older logs are complete, sealed and synced before a newer one exists, so that
        // recovery can tell a damaged or cut old log (corruption) from a torn newest one (a
        // crash).
        {
            let mut log = lock(&self.log);
            if let Err(error) = log.append_seal() {
                return Err(self.fail(format!("sealing log {} failed: {error}", log.number)));
            }
        }
        self.sync_log()?;
        let number = self.allocate_file_number();
        let new_log = ActiveLog::create(self.io.as_ref(), &self.dir, number)
            .map_err(|error| self.fail(format!("creating log {number} failed: {error}")))?;
        *lock(&self.log) = new_log;
        {
            let mut tiers = lock(&self.tiers);
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
            .map(|meta| Ok(Arc::new(SegmentFile::open(&self.io, &self.dir, *meta, &self.advisor)?)))
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
        let mut tiers = lock(&self.tiers);
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
        next.log_number_min = log_number_min;
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

    /// Deletes the log files a flush has made obsolete. A failure leaves an old log behind,
    /// which the next open deletes: nothing is lost, so it is not an error.
    fn remove_logs_below(&self, log_number_min: u64) {
        let Ok(names) = self.io.list_dir(&self.dir) else { return };
        for name in names {
            if parse_file_number(&name, ".log").is_some_and(|number| number < log_number_min) {
                let _ = self.io.remove_file(&self.dir.join(name));
            }
        }
    }
}

impl GroupCommit for Inner {
    fn commit_group(&self, group: &[Arc<Pending>]) {
        let outcome = self.check_writable().and_then(|()| self.append_group(group));
        let LoggedGroup { frame, starts, accepted } = match outcome {
            Ok(logged) => logged,
            Err(error) => {
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
        };
        if !starts.is_empty() {
            let version_last = self.apply_group(&frame, &starts);
            self.watermark.store(version_last.get(), Ordering::Release);
        }
        self.counters.commit_groups.fetch_add(1, Ordering::Relaxed);
        self.counters.commit_records.fetch_add(starts.len() as u64, Ordering::Relaxed);
        let committed = group.iter().zip(&accepted).filter(|(_, ok)| **ok).map(|(p, _)| p);
        for (pending, &start) in committed.zip(&starts) {
            let (record, _) = record::decode_from(&frame[start..]).expect("just decoded");
            pending.complete(Ok(record.version()));
        }
        if self.tiers().active.size_bytes() >= self.options.memtable_bytes_max
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

/// Refuses a directory that holds files but no manifest: it is not a ZVerse database. The lock
/// file and the temporary of a first manifest (a crash while creating the database) do not
/// count.
fn refuse_foreign(dir: &Path, names: &[String]) -> Result<()> {
    let has_manifest = names.iter().any(|name| name == MANIFEST_NAME);
    let foreign = names.iter().any(|name| name != LOCK_NAME && name != MANIFEST_TEMP_NAME);
    if foreign && !has_manifest {
        return Err(Error::NotADatabase { path: dir.to_path_buf() });
    }
    Ok(())
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
    /// The number for the new active log; later numbers are free.
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
    entries.sort_unstable_by(|a, b| zverse_core::zkey::cmp_z(&a.key, a.version, &b.key, b.version));
    let mut writer = SegmentWriter::new(io, dir, allocate_number, writer_limits(options));
    for e in &entries {
        let entry =
            zverse_core::Entry { key: &e.key, version: e.version, value: e.value.as_deref() };
        writer.add(&entry)?;
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

/// Where recovery works, and with which options.
#[derive(Clone, Copy)]
struct Recovery<'a> {
    io: &'a Arc<dyn Io>,
    dir: &'a Path,
    options: &'a Options,
    advisor: &'a Arc<LocalityAdvisor>,
}

/// During recovery, once the replayed logs fill a memtable: writes it as segments and records
/// them in the manifest with `log_number_min` past the logs replayed, so that recovery never
/// holds more than one memtable, however many logs a crash left.
fn flush_during_recovery(
    recovery: &Recovery<'_>,
    manifest: &mut Manifest,
    memtable: &Memtable,
    log_number_min: u64,
    file_number_next: &AtomicU64,
) -> Result<Vec<Arc<SegmentFile>>> {
    let Recovery { io, dir, options, advisor } = *recovery;
    let allocate = Box::new(|| file_number_next.fetch_add(1, Ordering::Relaxed));
    let (metas, new_files) = write_memtable(io.as_ref(), dir, options, allocate, memtable)?;
    let segments = metas
        .iter()
        .map(|meta| SegmentFile::open(io, dir, *meta, advisor).map(Arc::new))
        .collect::<Result<Vec<_>>>()?;
    let mut next = manifest.clone();
    next.segments.splice(0..0, metas.iter().rev().copied());
    next.log_number_min = log_number_min;
    next.file_number_next = file_number_next.load(Ordering::Relaxed);
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

/// Opens the manifest's segments, replays the logs it does not cover, and deletes files a
/// crash left behind (segments not in the manifest, logs below its minimum, a temporary
/// manifest).
fn recover(
    io: &Arc<dyn Io>,
    dir: &Path,
    manifest: &mut Manifest,
    names: &[String],
    options: &Options,
    advisor: &Arc<LocalityAdvisor>,
) -> Result<Recovered> {
    let mut segments = manifest
        .segments
        .iter()
        .map(|meta| SegmentFile::open(io, dir, *meta, advisor).map(Arc::new))
        .collect::<Result<Vec<_>>>()?;
    let mut logs: Vec<u64> = Vec::new();
    let mut file_number_max = manifest.file_number_next.saturating_sub(1);
    for name in names {
        let log_number = parse_file_number(name, ".log");
        let segment_number = parse_file_number(name, ".seg");
        file_number_max = file_number_max.max(log_number.or(segment_number).unwrap_or(0));
        let orphan_segment = segment_number
            .is_some_and(|n| !manifest.segments.iter().any(|meta| meta.file_number == n));
        let old_log = log_number.is_some_and(|n| n < manifest.log_number_min);
        if orphan_segment || old_log || name == MANIFEST_TEMP_NAME {
            remove_if_present(io.as_ref(), &dir.join(name))?;
        } else if let Some(number) = log_number {
            logs.push(number);
        }
    }
    logs.sort_unstable();
    let mut memtable = Memtable::new(logs.first().copied().unwrap_or(file_number_max + 1));
    let mut version_max = manifest.version_last;
    // Numbers for segments flushed during recovery, then the new active log's.
    let file_number_next = AtomicU64::new(file_number_max + 1);
    let mut flush_count = 0;
    for (index, &number) in logs.iter().enumerate() {
        let is_last = index + 1 == logs.len();
        let replayed = log::replay(io.as_ref(), dir, number, is_last, &memtable)?;
        version_max = version_max.max(replayed.version_max.unwrap_or(Version::ZERO));
        if replayed.frame_count == 0 {
            // A log without a write (every open starts one; a crash may leave one cut short):
            // drop it now rather than replay it at every open until a flush.
            remove_if_present(io.as_ref(), &dir.join(log::log_file_name(number)))?;
        }
        if !is_last && memtable.size_bytes() >= options.memtable_bytes_max {
            // Logs hold whole commit groups, so the logs replayed so far are covered.
            let log_next = logs[index + 1];
            let recovery = Recovery { io, dir, options, advisor };
            let flushed =
                flush_during_recovery(&recovery, manifest, &memtable, log_next, &file_number_next)?;
            segments.extend(flushed);
            flush_count += 1;
            for &old in &logs[..=index] {
                remove_if_present(io.as_ref(), &dir.join(log::log_file_name(old)))?;
            }
            memtable = Memtable::new(log_next);
        }
    }
    let file_number_next = file_number_next.into_inner();
    if memtable.is_empty() {
        memtable = Memtable::new(file_number_next);
    }
    crate::compaction::sort_newest_first(&mut segments);
    for segment in &segments {
        version_max = version_max.max(segment.meta().version_max);
    }
    Ok(Recovered { memtable, segments, version_max, file_number_next, flush_count })
}

#[cfg(all(test, not(loom)))]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::{Db, lock};
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
        let mut tiers = lock(&db.inner.tiers);
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

    /// A crash leaves many logs no segment covers (here: every flush is held back by the
    /// manifest lock while the logs are copied). Recovery flushes whenever the replayed logs
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
            let _no_flush_lands = lock(&db.inner.manifest);
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
