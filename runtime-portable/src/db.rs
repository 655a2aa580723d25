//! [`Db`]: open, write, flush, close. Reads are in `read.rs`, the write path in `commit.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime};

use zverse_core::Version;
use zverse_core::clock::HybridClock;
use zverse_core::record;

use crate::commit::{GroupCommit, Pending, Stage};
use crate::error::{Error, Result};
use crate::io::{Io, IoLock, StdIo};
use crate::locality::LocalityAdvisor;
use crate::log::{self, ActiveLog};
use crate::manifest::{MANIFEST_NAME, MANIFEST_TEMP_NAME, Manifest};
use crate::memtable::Memtable;
use crate::options::{Durability, Options};
use crate::segment_file::{self, SegmentFile};
use crate::tiers::Tiers;

/// The lock file's name.
const LOCK_NAME: &str = "LOCK";

/// An open database. Cheap to share: clone the `Arc` you keep it in, or hand out `&Db`; every
/// method takes `&self` and is safe to call from many threads.
#[derive(Debug)]
pub struct Db {
    pub(crate) inner: Arc<Inner>,
    flusher: Mutex<Option<JoinHandle<()>>>,
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
    /// Wakes the background thread: a memtable was sealed, or the database is closing.
    background: (Mutex<BackgroundState>, Condvar),
    pub counters: Counters,
    /// madvise hints from the reads, shared with every open segment.
    pub advisor: Arc<LocalityAdvisor>,
}

#[derive(Debug, Default)]
struct BackgroundState {
    shutdown: bool,
    /// Sealed memtables not yet flushed (the background thread drains them).
    flush_requested: bool,
    /// `compact()` asked for a full compaction.
    compact_requested: bool,
    /// Rounds the background thread has started: it takes the requests when it starts one.
    rounds_started: u64,
    /// Rounds it has finished. A request made while `rounds_started == s` is served by the
    /// time `rounds_done > s`: round `s + 1` starts after the request.
    rounds_done: u64,
}

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
            "opened {}: {} segments, {} entries in the memtable, in {} ms",
            inner.dir.display(),
            inner.tiers().segments.len(),
            inner.tiers().active.entry_count(),
            started.elapsed().as_millis()
        );
        let flusher = {
            let inner = Arc::clone(&inner);
            std::thread::Builder::new()
                .name("zverse-background".into())
                .spawn(move || inner.background_loop())?
        };
        Ok(Db { inner, flusher: Mutex::new(Some(flusher)) })
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
        self.inner.wait_for_background_round(false);
        self.inner.check_writable()
    }

    /// Flushes, then merges every segment into one now, dropping what retention lets go
    /// (versions pinned by live snapshots stay). Background compaction does the same on its
    /// own whenever the segment count reaches `compaction_trigger_segments`.
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
        self.inner.wait_for_background_round(true);
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
        if let Some(handle) = lock(&self.flusher).take() {
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
        let manifest = if let Some(manifest) = Manifest::read(io.as_ref(), dir)? {
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
        let recovered = recover(&io, dir, &manifest, &names, &advisor)?;
        let clock = HybridClock::new(recovered.version_max);
        let log = ActiveLog::create(io.as_ref(), dir, recovered.file_number_next)?;
        let tiers = Tiers {
            active: Arc::new(recovered.memtable),
            sealed: Vec::new(),
            segments: recovered.segments,
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
            counters: Counters::default(),
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
        let mut read_only = lock(&self.read_only);
        if read_only.is_none() {
            ::log::error!("{} turned read-only: {reason}", self.dir.display());
        }
        let reason = read_only.get_or_insert_with(|| reason.into());
        Error::ReadOnly(Arc::clone(reason))
    }

    pub(crate) fn commit(
        &self,
        encoded: Vec<u8>,
        user_bytes: u64,
        version_wanted: Option<Version>,
    ) -> Result<Version> {
        self.check_writable()?;
        let pending = Pending::new(encoded, version_wanted);
        let version = self.stage.submit(&pending, self)?;
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

    fn wait_for_background_round(&self, compact: bool) {
        let (state, wake) = &self.background;
        let mut state = lock(state);
        let target = state.rounds_started + 1;
        state.flush_requested = true;
        state.compact_requested |= compact;
        wake.notify_all();
        while state.rounds_done < target && !state.shutdown {
            state = wake.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn background_loop(&self) {
        let (state_lock, wake) = &self.background;
        loop {
            let compact;
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
                compact = std::mem::take(&mut state.compact_requested);
            }
            if matches!(self.options.durability, Durability::Periodic(_)) {
                let _ = self.sync_log();
            }
            if let Err(error) = self.flush_sealed() {
                let _ = self.fail(format!("flush failed: {error}"));
            }
            let trigger = self.options.compaction_trigger_segments as usize;
            if compact || self.tiers().segments.len() >= trigger {
                // A failed compaction leaves the old segments in place; it is retried at the
                // next trigger, and `compact()` reports it through `last_compaction_error`.
                let outcome = self.compact_and_log(compact);
                *lock(&self.last_compaction_error) = outcome.err().map(|e| e.to_string());
            }
            let mut state = lock(state_lock);
            state.rounds_done += 1;
            wake.notify_all();
        }
    }

    /// [`Inner::compact_segments`], with an event saying what it did and how long it took.
    fn compact_and_log(&self, force: bool) -> Result<()> {
        let segment_bytes = |tiers: &Tiers| -> u64 {
            tiers.segments.iter().map(|segment| segment.meta().file_bytes).sum()
        };
        let before = self.tiers();
        let started = Instant::now();
        let outcome = self.compact_segments(force);
        let elapsed_ms = started.elapsed().as_millis();
        match &outcome {
            Ok(()) => {
                let after = self.tiers();
                ::log::info!(
                    "compaction: {} segments ({} bytes) became {} ({} bytes) in {elapsed_ms} ms",
                    before.segments.len(),
                    segment_bytes(&before),
                    after.segments.len(),
                    segment_bytes(&after),
                );
            }
            Err(error) => ::log::warn!("compaction failed after {elapsed_ms} ms: {error}"),
        }
        outcome
    }

    /// Writes every sealed memtable, oldest first, to a segment.
    fn flush_sealed(&self) -> Result<()> {
        while let Some(memtable) = self.tiers().sealed.last().cloned() {
            self.flush_one(&memtable)?;
        }
        Ok(())
    }

    /// Writes `entries` (strictly increasing in Z order) as a new segment file, synced with its
    /// directory entry, and opens it. The caller records it in the manifest.
    pub(crate) fn write_and_open_segment<'e>(
        &self,
        entries: impl IntoIterator<Item = zverse_core::Entry<'e>>,
    ) -> Result<Arc<SegmentFile>> {
        let number = self.allocate_file_number();
        let block_bytes = self.options.segment_block_bytes;
        let meta =
            segment_file::write_segment(self.io.as_ref(), &self.dir, number, block_bytes, entries)?;
        self.io.sync_dir(&self.dir)?;
        self.counters.bytes_written_segments.fetch_add(meta.file_bytes, Ordering::Relaxed);
        Ok(Arc::new(SegmentFile::open(&self.io, &self.dir, meta, &self.advisor)?))
    }

    fn flush_one(&self, memtable: &Arc<Memtable>) -> Result<()> {
        let started = Instant::now();
        let mut entries: Vec<_> = memtable.entries().collect();
        entries.sort_unstable_by(|a, b| {
            zverse_core::zkey::cmp_z(&a.key, a.version, &b.key, b.version)
        });
        let segment = self.write_and_open_segment(entries.iter().map(|e| zverse_core::Entry {
            key: &e.key,
            version: e.version,
            value: e.value.as_deref(),
        }))?;
        let meta = *segment.meta();
        let mut manifest = lock(&self.manifest);
        let mut tiers = lock(&self.tiers);
        let mut sealed = tiers.sealed.clone();
        let position = sealed.iter().position(|m| Arc::ptr_eq(m, memtable));
        let position = position.expect("only the background thread removes sealed memtables");
        sealed.remove(position);
        let log_number_min = sealed.last().unwrap_or(&tiers.active).log_number_first();
        let mut next = manifest.clone();
        next.segments.insert(0, meta);
        next.log_number_min = log_number_min;
        next.file_number_next = self.file_number_next();
        next.version_last = next.version_last.max(meta.version_max).max(memtable.version_last());
        next.write(self.io.as_ref(), &self.dir)?;
        *manifest = next;
        let mut segments = tiers.segments.clone();
        segments.insert(0, segment);
        *tiers = Arc::new(Tiers { active: Arc::clone(&tiers.active), sealed, segments });
        drop(tiers);
        drop(manifest);
        self.counters.flushes.fetch_add(1, Ordering::Relaxed);
        ::log::info!(
            "flush: {} entries ({} bytes of keys and values) into segment {} ({} bytes) in {} ms",
            meta.entry_count,
            meta.payload_bytes,
            meta.file_number,
            meta.file_bytes,
            started.elapsed().as_millis()
        );
        self.remove_logs_below(log_number_min);
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
}

/// Opens the manifest's segments, replays the logs it does not cover, and deletes files a
/// crash left behind (segments not in the manifest, logs below its minimum, a temporary
/// manifest).
fn recover(
    io: &Arc<dyn Io>,
    dir: &Path,
    manifest: &Manifest,
    names: &[String],
    advisor: &Arc<LocalityAdvisor>,
) -> Result<Recovered> {
    let segments = manifest
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
    for (index, &number) in logs.iter().enumerate() {
        let replayed = log::replay(io.as_ref(), dir, number, index + 1 == logs.len(), &memtable)?;
        version_max = version_max.max(replayed.version_max.unwrap_or(Version::ZERO));
        if replayed.frame_count == 0 {
            // A log without a write (every open starts one; a crash may leave one cut short):
            // drop it now rather than replay it at every open until a flush.
            remove_if_present(io.as_ref(), &dir.join(log::log_file_name(number)))?;
        }
    }
    if memtable.is_empty() {
        memtable = Memtable::new(file_number_max + 1);
    }
    for segment in &segments {
        version_max = version_max.max(segment.meta().version_max);
    }
    Ok(Recovered { memtable, segments, version_max, file_number_next: file_number_max + 1 })
}
