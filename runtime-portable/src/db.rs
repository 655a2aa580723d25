//! [`Db`]: open, write, flush, close. Reads are in `read.rs`, the write path in `commit.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::SystemTime;

use zverse_core::Version;
use zverse_core::clock::HybridClock;
use zverse_core::record;

use crate::commit::{GroupCommit, Pending, Stage};
use crate::error::{Error, Result};
use crate::io::{Io, IoLock, StdIo};
use crate::locality::LocalityAdvisor;
use crate::log::{self, ActiveLog, Mode};
use crate::manifest::{MANIFEST_NAME, MANIFEST_TEMP_NAME, Manifest};
use crate::memtable::Memtable;
use crate::options::{Durability, Options};
use crate::segment_file::{self, SegmentFile};
use crate::tiers::Tiers;

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
    flusher: Mutex<Option<JoinHandle<()>>>,
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
    /// The log appended to; `None` for a read-only open.
    log: Mutex<Option<ActiveLog>>,
    /// The newest log's bytes as a read-only open read them.
    log_bytes_read_only: u64,
    pub(crate) tiers: Mutex<Arc<Tiers>>,
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
    /// Fails with [`Error::Locked`] if another process or another `Db` has it open for
    /// writing, with [`Error::NotADatabase`] if `path` holds files that are not a ZVerse
    /// database, with [`Error::Corruption`] if a file of the database does not verify or a
    /// file the manifest records is missing, and with [`Error::FormatUnsupported`] for a
    /// database an older ZVerse wrote. With `Options::read_only(true)` it takes no lock and
    /// writes nothing (see there).
    pub fn open(path: impl AsRef<Path>, options: Options) -> Result<Db> {
        Db::open_with_io(path, options, Arc::new(StdIo))
    }

    /// [`Db::open`] on a chosen I/O backend (io_uring from `zverse-linux`, or a test's
    /// simulated disk).
    pub fn open_with_io(path: impl AsRef<Path>, options: Options, io: Arc<dyn Io>) -> Result<Db> {
        let inner = Arc::new(Inner::open(path.as_ref(), options, io)?);
        if inner.options.read_only {
            return Ok(Db { inner, flusher: Mutex::new(None) });
        }
        let flusher = {
            let inner = Arc::clone(&inner);
            std::thread::Builder::new()
                .name("zverse-background".into())
                .spawn(move || inner.background_loop())?
        };
        Ok(Db { inner, flusher: Mutex::new(Some(flusher)) })
    }

    /// Writes `value` under `key` and returns the write's version.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<Version> {
        let mut encoded = vec![0; record::encoded_len_put(key, value)?];
        record::encode_put_into(&mut encoded, Version::ZERO, key, value).map_err(encode_error)?;
        self.inner.commit(encoded, (key.len() + value.len()) as u64, None)
    }

    /// Deletes `key` (writes a tombstone version) and returns the delete's version.
    pub fn delete(&self, key: &[u8]) -> Result<Version> {
        let mut encoded = vec![0; record::encoded_len_delete(key)?];
        record::encode_delete_into(&mut encoded, Version::ZERO, key).map_err(encode_error)?;
        self.inner.commit(encoded, key.len() as u64, None)
    }

    /// A batch of writes that commit together at one version.
    pub fn batch(&self) -> crate::Batch<'_> {
        crate::Batch::new(self)
    }

    /// Writes the memtable to a segment now, and waits until every sealed memtable is in a
    /// segment.
    pub fn flush(&self) -> Result<()> {
        self.inner.check_writable()?;
        self.inner.stage.with_leadership(|| self.inner.rotate())?;
        self.inner.wait_for_background_round(false);
        self.inner.check_writable()
    }

    /// Flushes, then merges every segment into one now, dropping what retention lets go
    /// (versions pinned by live snapshots stay). Background compaction does the same on its
    /// own whenever the segment count reaches `compaction_trigger_segments`.
    pub fn compact(&self) -> Result<()> {
        self.inner.check_writable()?;
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
        let advisor = Arc::new(LocalityAdvisor::new(
            options.locality_advisor,
            options.segment_block_bytes as usize,
        ));
        let mut recovered = recover(&io, dir, &manifest, &names, &advisor, false)?;
        remove_leftovers(io.as_ref(), dir, &manifest, &names)?;
        let mut file_number_next = first_unused_number(dir, &manifest, &names)?;
        let log = if let Some(log) = recovered.log.take() {
            log
        } else {
            let number = file_number_next;
            file_number_next = number.checked_add(1).ok_or_else(|| numbers_exhausted(dir))?;
            recovered.memtable = Memtable::new(number);
            start_first_log(io.as_ref(), dir, &mut manifest, number)?
        };
        let inner = Inner::assemble(dir, options, io, manifest, recovered, advisor);
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
        let advisor = Arc::new(LocalityAdvisor::new(
            options.locality_advisor,
            options.segment_block_bytes as usize,
        ));
        let mut attempt = 1;
        loop {
            let names = io.list_dir(dir)?;
            refuse_foreign(dir, &names)?;
            let manifest = Manifest::read(io.as_ref(), dir)?.ok_or_else(|| {
                let what = format!("no ZVerse database in {}: no MANIFEST", dir.display());
                Error::Io(std::io::Error::new(std::io::ErrorKind::NotFound, what))
            })?;
            match recover(&io, dir, &manifest, &names, &advisor, true) {
                Ok(recovered) => {
                    return Ok(Inner::assemble(dir, options, io, manifest, recovered, advisor));
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
        advisor: Arc<LocalityAdvisor>,
    ) -> Inner {
        let clock = HybridClock::new(recovered.version_max);
        let tiers = Tiers {
            active: Arc::new(recovered.memtable),
            sealed: Vec::new(),
            segments: recovered.segments,
        };
        Inner {
            dir: dir.to_path_buf(),
            io,
            options,
            lock: Mutex::new(None),
            watermark: AtomicU64::new(clock.last().get()),
            clock,
            stage: Stage::new(),
            log: Mutex::new(None),
            log_bytes_read_only: recovered.log_bytes,
            tiers: Mutex::new(Arc::new(tiers)),
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
            counters: Counters::default(),
            advisor,
        }
    }

    /// The tiers as they are now.
    pub(crate) fn tiers(&self) -> Arc<Tiers> {
        Arc::clone(&lock(&self.tiers))
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
        let mut read_only = lock(&self.read_only);
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

    /// A new file number, reserved in the manifest before it is returned (a manifest write
    /// once every `FILE_NUMBERS_RESERVED` numbers). Never call it holding the manifest lock.
    pub(crate) fn allocate_file_number(&self) -> Result<u64> {
        let number = self
            .file_number_next
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_add(1))
            .map_err(|_| numbers_exhausted(&self.dir))?;
        if number >= self.file_number_reserved.load(Ordering::Acquire) {
            let mut manifest = lock(&self.manifest);
            if number >= manifest.file_number_next {
                let mut next = manifest.clone();
                next.file_number_next = number
                    .checked_add(1 + FILE_NUMBERS_RESERVED)
                    .ok_or_else(|| numbers_exhausted(&self.dir))?;
                next.write(self.io.as_ref(), &self.dir)?;
                self.file_number_reserved.store(next.file_number_next, Ordering::Release);
                *manifest = next;
            }
        }
        Ok(number)
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
        let log = log.as_mut().ok_or(Error::OpenedReadOnly)?;
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
        let Some(log) = log.as_mut() else { return Ok(()) };
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
        if self.tiers().active.is_empty() {
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
        let number = self
            .allocate_file_number()
            .map_err(|error| self.fail(format!("reserving a file number failed: {error}")))?;
        let new_log = ActiveLog::create(self.io.as_ref(), &self.dir, number)
            .map_err(|error| self.fail(format!("creating log {number} failed: {error}")))?;
        self.record_log(number)?;
        *lock(&self.log) = Some(new_log);
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
                let outcome = self.compact_segments(compact);
                *lock(&self.last_compaction_error) = outcome.err().map(|e| e.to_string());
            }
            let mut state = lock(state_lock);
            state.rounds_done += 1;
            wake.notify_all();
        }
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
        let number = self.allocate_file_number()?;
        let block_bytes = self.options.segment_block_bytes;
        let meta =
            segment_file::write_segment(self.io.as_ref(), &self.dir, number, block_bytes, entries)?;
        self.io.sync_dir(&self.dir)?;
        self.counters.bytes_written_segments.fetch_add(meta.file_bytes, Ordering::Relaxed);
        Ok(Arc::new(SegmentFile::open(&self.io, &self.dir, meta, &self.advisor)?))
    }

    fn flush_one(&self, memtable: &Arc<Memtable>) -> Result<()> {
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
        next.logs.retain(|&number| number >= log_number_min);
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
        self.remove_logs_below(log_number_min);
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
) -> Result<ActiveLog> {
    if number >= manifest.file_number_next {
        let mut next = manifest.clone();
        next.file_number_next =
            number.checked_add(1 + FILE_NUMBERS_RESERVED).ok_or_else(|| numbers_exhausted(dir))?;
        next.write(io, dir)?;
        *manifest = next;
    }
    let log = ActiveLog::create(io, dir, number)?;
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
}

/// Opens the manifest's segments and replays its logs, oldest first, into one memtable. Every
/// file the manifest records must exist: a missing one is [`Error::Corruption`] naming it.
/// Writable (`read_only == false`), the newest log is kept for appends (its torn tail cut).
fn recover(
    io: &Arc<dyn Io>,
    dir: &Path,
    manifest: &Manifest,
    names: &[String],
    advisor: &Arc<LocalityAdvisor>,
    read_only: bool,
) -> Result<Recovered> {
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
    let segments = manifest
        .segments
        .iter()
        .map(|meta| SegmentFile::open(io, dir, *meta, advisor).map(Arc::new))
        .collect::<Result<Vec<_>>>()?;
    let memtable = Memtable::new(manifest.logs.first().copied().unwrap_or(0));
    let mut version_max = manifest.version_last;
    let mut active = None;
    let mut log_bytes = 0;
    for (index, &number) in manifest.logs.iter().enumerate() {
        let mode = match (index + 1 == manifest.logs.len(), read_only) {
            (false, _) => Mode::Older,
            (true, false) => Mode::Reuse,
            (true, true) => Mode::ReadOnly,
        };
        let replayed = log::replay(io.as_ref(), dir, number, mode, &memtable)?;
        version_max = version_max.max(replayed.version_max.unwrap_or(Version::ZERO));
        active = replayed.active.or(active);
        log_bytes = replayed.offset_end;
    }
    for segment in &segments {
        version_max = version_max.max(segment.meta().version_max);
    }
    Ok(Recovered { memtable, segments, version_max, log: active, log_bytes })
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
