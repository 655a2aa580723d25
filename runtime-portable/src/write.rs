//! The write path's effects: what the commit leader does with a group (`commit.rs` elects
//! it): versions, the log frame and its sync, the memtable insert, the watermark; memtable
//! rotation; and write stalls, which hold writers while flushes and compaction fall behind.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use zverse_core::Version;
use zverse_core::clock::HybridClock;
use zverse_core::record::{self, BatchBuilder};

use crate::commit::{GroupCommit, Pending};
use crate::error::{Error, Result};
use crate::inner::Inner;
use crate::log::{self, ActiveLog};
use crate::memtable::{GROUP_OPS_MIN, Op};
use crate::options::Durability;
use crate::state::Transition;
use crate::sync::lock;

/// How long a stalled writer sleeps before it looks again (it is also woken by every flush,
/// compaction and failure).
const STALL_POLL: Duration = Duration::from_millis(10);
/// How long a write is delayed in the slowdown zone.
const SLOWDOWN_DELAY: Duration = Duration::from_millis(1);

/// The write path's state: the clock, the watermark, the commit leader's buffers, the active
/// log, and the stall writers wait in. Only this module reaches into it.
#[derive(Debug)]
pub(crate) struct WritePath {
    clock: HybridClock,
    /// Every version at or below it is applied: readers read at or below it.
    watermark: AtomicU64,
    /// The group the leader is committing (only the leader locks it).
    logged: Mutex<LoggedGroup>,
    /// The log appended to; `None` for a read-only open.
    log: Mutex<Option<ActiveLog>>,
    /// The newest log's bytes as a read-only open read them.
    log_bytes_read_only: u64,
    /// Wakes writers stalled on a full set of memtables or too many open segments.
    stall: (Mutex<()>, Condvar),
}

impl WritePath {
    /// The write path of a database whose newest version is `version_max`, appending to `log`
    /// (`None` for a read-only open, which read `log_bytes_read_only` of its newest log).
    pub(crate) fn new(
        version_max: Version,
        log: Option<ActiveLog>,
        log_bytes_read_only: u64,
    ) -> WritePath {
        let clock = HybridClock::new(version_max);
        WritePath {
            watermark: AtomicU64::new(clock.last().get()),
            clock,
            logged: Mutex::new(LoggedGroup::default()),
            log: Mutex::new(log),
            log_bytes_read_only,
            stall: (Mutex::new(()), Condvar::new()),
        }
    }

    /// The newest version a reader may read at: every version at or below it is applied.
    pub(crate) fn visible_version(&self) -> Version {
        Version::new(self.watermark.load(Ordering::Acquire))
    }

    /// The bytes of the active log (of the newest log, for a read-only open).
    pub(crate) fn log_bytes(&self) -> u64 {
        lock(&self.log).as_ref().map_or(self.log_bytes_read_only, |log| log.offset_end)
    }
}

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
    /// For each record of the group, whether it was accepted (a refused one has its error
    /// already: completed, or for a failed check refused, published after the group).
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

fn encode_error(error: record::EncodeError) -> Error {
    match error {
        record::EncodeError::Limit(limit) => limit.into(),
        other => {
            panic!("record encoding into a buffer of the exact encoded length failed: {other}")
        }
    }
}

impl Inner {
    /// Wakes writers waiting in [`Inner::wait_for_room`].
    pub(crate) fn wake_stalled_writers(&self) {
        let (guard, wake) = &self.write.stall;
        drop(lock(guard));
        wake.notify_all();
    }

    /// Write stalls: delays a writer while compaction falls behind (open segments at
    /// `write_slowdown_segments`), and holds it while the memtables are all full or the open
    /// segments reach `write_stop_segments`, until a flush or compaction makes room. Returns
    /// the database's error if it closes or turns read-only meanwhile.
    pub(crate) fn wait_for_room(&self) -> Result<()> {
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
                if let Some(reason) = self.background.last_compaction_error() {
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
            let (guard, wake) = &self.write.stall;
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
        let sealed_count = self.state.tiers_ref().sealed.len();
        (1 + sealed_count, self.state.segment_count_open())
    }

    /// Commits the encoded record `encoded` (at version zero, which the commit replaces),
    /// staged by swapping it with the staged write's buffer: `encoded` is left holding that
    /// buffer (cleared), for its caller to reuse.
    pub(crate) fn commit(
        &self,
        encoded: &mut Vec<u8>,
        user_bytes: u64,
        version_wanted: Option<Version>,
    ) -> Result<Version> {
        self.commit_staged(user_bytes, version_wanted, None, |record| {
            std::mem::swap(record, encoded);
            Ok(())
        })
    }

    /// Commits the record `encode` writes (at version zero) into a buffer of `record_len`
    /// bytes: the writer thread's reused buffer, so that a put allocates nothing here.
    pub(crate) fn commit_encoding(
        &self,
        record_len: usize,
        user_bytes: u64,
        encode: impl FnOnce(&mut [u8]) -> Result<usize, record::EncodeError>,
    ) -> Result<Version> {
        self.commit_staged(user_bytes, None, None, |record| {
            record.resize(record_len, 0);
            encode(record).map(drop).map_err(encode_error)
        })
    }

    fn commit_staged(
        &self,
        user_bytes: u64,
        version_wanted: Option<Version>,
        check: Option<crate::transaction::ConflictCheck>,
        fill: impl FnOnce(&mut Vec<u8>) -> Result<()>,
    ) -> Result<Version> {
        self.wait_for_room()?;
        let pending = Pending::staged(version_wanted, check, fill)?;
        let committed = self.stage.submit(&pending, self);
        Pending::recycle(pending);
        let version = committed?;
        self.counters.bytes_user.fetch_add(user_bytes, Ordering::Relaxed);
        Ok(version)
    }

    /// Commits the batch `build` fills, refused with [`Error::Conflict`] unless `check` passes
    /// at the moment the record gets its version. The batch is built in the writer thread's
    /// reused buffer, as [`Inner::commit_encoding`]'s record is.
    pub(crate) fn commit_checked(
        &self,
        user_bytes: u64,
        version_wanted: Option<Version>,
        check: crate::transaction::ConflictCheck,
        build: impl FnOnce(&mut BatchBuilder) -> Result<()>,
    ) -> Result<Version> {
        self.commit_staged(user_bytes, version_wanted, Some(check), |record| {
            let mut builder = BatchBuilder::in_buffer(std::mem::take(record));
            let outcome = build(&mut builder);
            *record = builder.finish(Version::ZERO);
            outcome
        })
    }

    /// The version for a record: the clock's next, or the one its writer asked for if that is
    /// above every version handed out (`None` otherwise, and the writer is told why).
    fn version_for(&self, pending: &Pending, now: Version) -> Option<Version> {
        match pending.version_wanted {
            None => {
                let version = self.write.clock.tick(now);
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
            Some(wanted) if wanted > self.write.clock.last() => {
                self.write.clock.observe(wanted);
                Some(wanted)
            }
            Some(wanted) => {
                let last = self.write.clock.last();
                pending.complete(Err(Error::VersionNotAfter { version: wanted, last }));
                None
            }
        }
    }

    /// Appends a group's records, with their versions, to the log as one frame: written and
    /// synced under `Sync`, held in the log's buffer otherwise. Fills `logged` (cleared) with
    /// the frame, where each accepted record starts in it and its version, and which of the
    /// group's records were accepted (the others were already completed with an error).
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
                pending.refuse(error);
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
        let mut log = lock(&self.write.log);
        let log = log.as_mut().ok_or(Error::OpenedReadOnly)?;
        log::seal_frame(frame, log.nonce, log.offset_end, log.offset_synced);
        let written = if self.options.durability == Durability::Sync {
            append_synced(log, frame)
        } else {
            log.append_held(frame)
        };
        match written {
            Ok(zero_bytes) => {
                let bytes = zero_bytes + frame.len() as u64;
                self.counters.bytes_written_log.fetch_add(bytes, Ordering::Relaxed);
                Ok(())
            }
            Err(error) => {
                Err(self.fail(format!("log append to log {} failed: {error}", log.number)))
            }
        }
    }

    /// Inserts a logged group into the active memtable, taking each key and value from where
    /// it was encoded (no decode, no checksum); returns the group's last version.
    fn apply_group(&self, logged: &LoggedGroup) -> Version {
        let active = Arc::clone(&self.state.tiers_ref().active);
        let records = || {
            logged.starts.iter().zip(&logged.versions).map(|(&start, &version)| {
                let ops = logged.frame.get(start..).and_then(record::ops_of_encoded);
                (ops.expect("a record this database just encoded has ops"), version)
            })
        };
        let op_count: usize = records().map(|(ops, _)| ops.len()).sum();
        if op_count >= GROUP_OPS_MIN {
            let mut ops: Vec<Op<'_>> = Vec::with_capacity(op_count);
            for (record_ops, version) in records() {
                ops.extend(record_ops.map(|op| (op.key, version, op.value)));
            }
            active.insert_group(&mut ops);
        } else {
            for (record_ops, version) in records() {
                record_ops.for_each(|op| active.insert(op.key, version, op.value));
            }
        }
        // The conflict check's shortcut (`transaction::RecentWrites`) sees every applied write.
        for (record_ops, version) in records() {
            record_ops.for_each(|op| self.recent_writes.record(op.key, version));
        }
        let version_last = logged.versions.last().copied().unwrap_or(Version::ZERO);
        active.cover(version_last);
        version_last
    }

    /// Writes the active log's held frames, then syncs it. The log's lock is not held through
    /// the sync, so that a leader appending meanwhile (`Periodic`) never waits for it: the
    /// bytes before the end seen before the sync are durable after it, and only they are
    /// claimed.
    pub(crate) fn sync_log(&self) -> Result<()> {
        let (file, number, offset_end) = {
            let mut log = lock(&self.write.log);
            let Some(log) = log.as_mut() else { return Ok(()) };
            // The held frames are written first (a leader appending meanwhile waits for this
            // write, never for the sync).
            match log.write_held() {
                Ok(zero_bytes) => {
                    self.counters.bytes_written_log.fetch_add(zero_bytes, Ordering::Relaxed);
                }
                Err(error) => {
                    return Err(
                        self.fail(format!("log write of log {} failed: {error}", log.number))
                    );
                }
            }
            if log.offset_synced >= log.offset_end {
                return Ok(());
            }
            (Arc::clone(&log.file), log.number, log.offset_end)
        };
        if let Err(error) = file.sync_data() {
            return Err(self.fail(format!("sync of log {number} failed: {error}")));
        }
        if let Some(log) = lock(&self.write.log).as_mut()
            && log.number == number
        {
            log.offset_synced = log.offset_synced.max(offset_end);
        }
        Ok(())
    }

    /// At close: syncs the log and, unless the database is read-only, seals it, so that the
    /// next open tells damage to its last frames (corruption) from a torn append (a crash).
    pub(crate) fn sync_and_seal_log(&self) -> Result<()> {
        self.sync_log()?;
        if self.state.read_only_reason().is_some() {
            return Ok(());
        }
        {
            let mut log = lock(&self.write.log);
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
        if self.state.tiers_ref().active.is_empty() {
            return Ok(());
        }
        // Older logs are complete, sealed and synced before a newer one exists, so that
        // recovery can tell a damaged or cut old log (corruption) from a torn newest one (a
        // crash).
        {
            let mut log = lock(&self.write.log);
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
        // Until the manifest records the log no write goes to it, so a crash before leaves an
        // empty log the next open deletes.
        if let Err(error) = self.state.install(Transition::Rotated { log_number: number }) {
            return Err(
                self.fail(format!("recording log {number} in the manifest failed: {error}"))
            );
        }
        *lock(&self.write.log) = Some(new_log);
        self.background.request_flush();
        Ok(())
    }
}

impl GroupCommit for Inner {
    fn commit_group(&self, group: &[Arc<Pending>]) {
        let mut logged = lock(&self.write.logged);
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
            self.write.watermark.store(version_last.get(), Ordering::Release);
        }
        self.counters.commit_groups.fetch_add(1, Ordering::Relaxed);
        self.counters.commit_records.fetch_add(logged.starts.len() as u64, Ordering::Relaxed);
        let committed = group.iter().zip(&logged.accepted).filter(|(_, ok)| **ok).map(|(p, _)| p);
        for (pending, &version) in committed.zip(&logged.versions) {
            pending.complete(Ok(version));
        }
        drop(logged);
        if self.state.tiers_ref().active.size_bytes() >= self.options.memtable_bytes_max
            && let Err(error) = self.rotate()
        {
            let _ = self.fail(format!("memtable rotation failed: {error}"));
        }
    }
}

/// Writes `frame` after the log's end and syncs it (`Durability::Sync`: nothing is held);
/// returns the zero bytes written ahead.
fn append_synced(log: &mut ActiveLog, frame: &[u8]) -> std::io::Result<u64> {
    assert!(!log.holds_frames(), "a Sync log holds no frames in memory");
    let zero_bytes = log.reserve(frame.len() as u64)?;
    log.file.write_all_at_and_sync(&[frame], log.offset_end)?;
    log.offset_end += frame.len() as u64;
    log.offset_synced = log.offset_end;
    Ok(zero_bytes)
}

/// `now` plus `ahead`, the newest version `Batch::commit_at` accepts.
fn version_ahead_max(now: Version, ahead: std::time::Duration) -> Version {
    let ahead_micros = u64::try_from(ahead.as_micros()).unwrap_or(u64::MAX);
    Version::new(now.get().saturating_add(ahead_micros).min(u64::MAX - 1))
}

#[cfg(all(test, not(loom)))]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use crate::options::{Durability, Options};
    use crate::{Db, Error, Result};

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
        db.inner.state.seal_unannounced_for_test();
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
}
