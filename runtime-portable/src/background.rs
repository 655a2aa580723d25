//! The background work: the flush thread (and the periodic sync), the compaction thread, and
//! their scheduling and back-off.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::inner::Inner;
use crate::io::Io;
use crate::manifest::SegmentMeta;
use crate::memtable::Memtable;
use crate::options::{Durability, Options};
use crate::recovery::parse_file_number;
use crate::segment_file::SegmentFile;
use crate::segment_writer::{SegmentWriter, WriterLimits};
use crate::state::{Transition, log_number_oldest};
use crate::sync::lock;

/// What the compaction thread is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CompactionKind {
    /// Background steps while the open segments are at the trigger.
    Triggered,
    /// Every segment through GC (`Db::compact`).
    Full,
}

/// The requests and rounds of the flush thread and the compaction thread, and the last
/// compaction's failure.
#[derive(Debug, Default)]
pub(crate) struct Background {
    /// Wakes the flush thread: a memtable was sealed, or the database is closing.
    flush: (Mutex<FlushState>, Condvar),
    /// Wakes the compaction thread: a flush added a segment, `compact()` asked, or closing.
    compaction: (Mutex<CompactionState>, Condvar),
    /// Why the last compaction failed, if it did.
    last_compaction_error: Mutex<Option<String>>,
}

impl Background {
    /// Tells the flush thread that a memtable was sealed.
    pub(crate) fn request_flush(&self) {
        let (state, wake) = &self.flush;
        lock(state).flush_requested = true;
        wake.notify_all();
    }

    /// Tells both threads to stop (they finish the round they are in).
    pub(crate) fn shut_down(&self) {
        {
            let (state, wake) = &self.flush;
            lock(state).shutdown = true;
            wake.notify_all();
        }
        let (state, wake) = &self.compaction;
        lock(state).shutdown = true;
        wake.notify_all();
    }

    /// Why the last compaction failed, if it did.
    pub(crate) fn last_compaction_error(&self) -> Option<String> {
        lock(&self.last_compaction_error).clone()
    }
}

/// Writes `memtable` as key-ordered segments (split between keys at the options' limits); returns
/// their manifest entries, synced, and the files (removed when dropped unless kept).
pub(crate) fn write_memtable<'a>(
    io: &'a dyn Io,
    dir: &'a Path,
    options: &Options,
    allocate_number: Box<dyn Fn() -> u64 + 'a>,
    memtable: &Memtable,
) -> Result<(Vec<SegmentMeta>, crate::segment_writer::NewFiles<'a>)> {
    #[cfg(test)]
    if options.flush_order == zverse_core::segment::Order::Z {
        return write_memtable_z_order(io, dir, options, allocate_number, memtable);
    }
    // The memtable is in key order (key ascending, version descending), the order of a
    // key-ordered segment: it streams into the writer, nothing collected or sorted.
    let mut writer = SegmentWriter::new(io, dir, allocate_number, writer_limits(options))
        .with_order(zverse_core::segment::Order::Key);
    for entry in memtable.entries() {
        writer.add(&entry)?;
    }
    let (metas, new_files) = writer.finish()?;
    if !metas.is_empty() {
        io.sync_dir(dir)?;
    }
    Ok((metas, new_files))
}

/// [`write_memtable`] as flushes wrote level 0 before it was key-ordered: the memtable sorted
/// into Z order. Tests use it to build databases whose level 0 holds both orders.
#[cfg(test)]
fn write_memtable_z_order<'a>(
    io: &'a dyn Io,
    dir: &'a Path,
    options: &Options,
    allocate_number: Box<dyn Fn() -> u64 + 'a>,
    memtable: &Memtable,
) -> Result<(Vec<SegmentMeta>, crate::segment_writer::NewFiles<'a>)> {
    let mut entries: Vec<_> = memtable.entries().collect();
    entries.sort_by_cached_key(|entry| zverse_core::zkey::ZKey::new(entry.key, entry.version));
    let mut writer = SegmentWriter::new(io, dir, allocate_number, writer_limits(options));
    for entry in &entries {
        writer.add(entry)?;
    }
    let (metas, new_files) = writer.finish()?;
    if !metas.is_empty() {
        io.sync_dir(dir)?;
    }
    Ok((metas, new_files))
}

pub(crate) fn writer_limits(options: &Options) -> WriterLimits {
    WriterLimits {
        block_bytes: options.segment_block_bytes,
        segment_bytes_target: options.segment_bytes_target,
        metadata_bytes_max: options.segment_metadata_bytes_max(),
    }
}

/// The flush thread's requests and rounds.
#[derive(Debug, Default)]
struct FlushState {
    shutdown: bool,
    /// Sealed memtables not yet flushed (the background thread drains them).
    flush_requested: bool,
    /// Rounds the background thread has started: it takes the requests when it starts one.
    rounds_started: u64,
    /// Rounds it has finished. A request made while `rounds_started == s` is served by the
    /// time `rounds_done > s`: round `s + 1` starts after the request.
    rounds_done: u64,
}

/// The compaction thread's requests and rounds.
#[derive(Debug, Default)]
struct CompactionState {
    shutdown: bool,
    /// A flush added a segment since the compaction thread last looked.
    segments_added: bool,
    /// `compact()` asked for a full compaction.
    full_requested: bool,
    /// Rounds started and finished, as in [`FlushState`].
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

impl Inner {
    pub(crate) fn wait_for_background_round(&self) {
        let (state, wake) = &self.background.flush;
        let mut state = lock(state);
        let target = state.rounds_started + 1;
        state.flush_requested = true;
        wake.notify_all();
        while state.rounds_done < target && !state.shutdown {
            state = wake.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    pub(crate) fn flush_loop(&self) {
        let (state_lock, wake) = &self.background.flush;
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

    /// Tells the compaction thread to look (and, for [`CompactionKind::Full`], to compact
    /// everything).
    pub(crate) fn request_compaction(&self, kind: CompactionKind) {
        let (state, wake) = &self.background.compaction;
        let mut state = lock(state);
        state.segments_added = true;
        state.full_requested |= kind == CompactionKind::Full;
        wake.notify_all();
    }

    /// Asks for a compaction round and waits until one that started after the request ends;
    /// returns why that round (or a later one) failed, if it did.
    pub(crate) fn wait_for_compaction_round(&self, kind: CompactionKind) -> Option<String> {
        let (state, wake) = &self.background.compaction;
        let mut state = lock(state);
        let target = state.rounds_started + 1;
        state.segments_added = true;
        state.full_requested |= kind == CompactionKind::Full;
        wake.notify_all();
        while state.rounds_done < target && !state.shutdown {
            state = wake.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        // The thread records a round's outcome before it counts the round done.
        self.background.last_compaction_error()
    }

    /// The compaction thread: waits for a flush (or `compact()`), then runs compaction steps
    /// while the open segments are at the trigger. A failed step leaves the old segments in
    /// place and is retried after a delay that doubles up to [`COMPACTION_RETRY_DELAY_MAX`];
    /// `compact()` reports it through `last_compaction_error`.
    pub(crate) fn compaction_loop(&self) {
        let (state_lock, wake) = &self.background.compaction;
        let mut failure_count = 0u32;
        loop {
            let full;
            {
                // Under `Retention::Duration`, history falls due by time alone: an idle
                // database collects it without a write to wake the thread.
                let gc_wait = self.history_gc_wait();
                let mut state = lock(state_lock);
                let deadline = gc_wait.map(|wait| Instant::now() + wait);
                while !state.shutdown && !state.segments_added {
                    let Some(deadline) = deadline else {
                        state = wake.wait(state).unwrap_or_else(PoisonError::into_inner);
                        continue;
                    };
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    state =
                        wake.wait_timeout(state, left).map_or_else(|e| e.into_inner().0, |r| r.0);
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
            *lock(&self.background.last_compaction_error) = outcome.err().map(|e| e.to_string());
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
        // From here the manifest may name the new files, whatever the write's outcome.
        new_files.keep();
        self.state.install(Transition::Flushed { memtable, outputs: &outputs })?;
        // Only this thread removes sealed memtables: the oldest left stays until it returns.
        let log_number_min = log_number_oldest(&self.state.tiers_ref());
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
        self.request_compaction(CompactionKind::Triggered);
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
        let live = self.state.logs();
        for name in names {
            let obsolete = parse_file_number(&name, ".log")
                .is_some_and(|number| number < log_number_min && !live.contains(&number));
            if obsolete {
                let _ = self.io.remove_file(&self.dir.join(name));
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use std::collections::BTreeMap;

    use zverse_core::Version;
    use zverse_core::segment::Order;

    use crate::{Db, Durability, Options};

    /// Every version written, by key and version (`None`: a delete).
    type Model = BTreeMap<(Vec<u8>, Version), Option<Vec<u8>>>;

    fn level_0_options(flush_order: Order) -> Options {
        let mut options = Options::default()
            .durability(Durability::None)
            .segment_block_bytes(256)
            .compaction_trigger_segments(64);
        options.flush_order = flush_order;
        options
    }

    /// The orders of level 0's segments, newest first.
    fn level_0_orders(db: &Db) -> Vec<Order> {
        db.inner.tiers().segments.iter().map(|segment| segment.segment().order()).collect()
    }

    /// One flush's worth of writes: every third key from `round`, some deleted.
    fn write_round(db: &Db, model: &mut Model, round: u32) {
        for index in (round..300).step_by(3) {
            let key = format!("key{:04}", index * 7 % 300).into_bytes();
            let (version, value) = if index % 13 == round {
                (db.delete(&key).unwrap(), None)
            } else {
                let value = format!("{round}:{index}").into_bytes();
                (db.put(&key, &value).unwrap(), Some(value))
            };
            model.insert((key, version), value);
        }
        db.flush().unwrap();
    }

    /// The model's newest value of each key at `version`, deletes dropped, in key order.
    fn model_at(model: &Model, version: Version) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut newest: BTreeMap<&[u8], &Option<Vec<u8>>> = BTreeMap::new();
        for ((key, at), value) in model.range(..) {
            if *at <= version {
                newest.insert(key, value); // Later (newer) versions replace older ones.
            }
        }
        let live = newest.into_iter().filter_map(|(key, value)| Some((key, value.as_ref()?)));
        live.map(|(key, value)| (key.to_vec(), value.clone())).collect()
    }

    /// Every read of `db` agrees with `model`: latest and as-of gets, ranges both ways,
    /// scans, histories and changes.
    fn check_reads(db: &Db, model: &Model) {
        let versions: Vec<Version> = model.keys().map(|(_, version)| *version).collect();
        let newest = versions.iter().copied().max().unwrap();
        for version in [newest, versions[versions.len() / 2], versions[versions.len() / 5]] {
            let expected = model_at(model, version);
            let range: Vec<(Vec<u8>, Vec<u8>)> = db
                .range_at(.., version)
                .unwrap()
                .map(|item| item.map(|(key, value)| (key.to_vec(), value.to_vec())).unwrap())
                .collect();
            assert_eq!(range, expected, "range at {version:?}");
            let mut back: Vec<(Vec<u8>, Vec<u8>)> = db
                .range_at(.., version)
                .unwrap()
                .rev()
                .map(|item| item.map(|(key, value)| (key.to_vec(), value.to_vec())).unwrap())
                .collect();
            back.reverse();
            assert_eq!(back, expected, "range backwards at {version:?}");
            let mut scanned = Vec::new();
            db.scan_at(.., version)
                .unwrap()
                .for_each(|key, value| scanned.push((key.to_vec(), value.to_vec())))
                .unwrap();
            assert_eq!(scanned, expected, "scan at {version:?}");
            for (key, value) in &expected {
                assert_eq!(db.get_at(key, version).unwrap().as_deref(), Some(&value[..]));
            }
        }
        let mut keys: Vec<&Vec<u8>> = model.keys().map(|(key, _)| key).collect();
        keys.dedup();
        for key in keys {
            let history: Vec<(Version, Option<Vec<u8>>)> = db
                .history(key)
                .unwrap()
                .map(|item| item.map(|(version, value)| (version, value.map(|v| v.to_vec()))))
                .collect::<Result<_, _>>()
                .unwrap();
            let mut expected: Vec<(Version, Option<Vec<u8>>)> = model
                .range((key.clone(), Version::ZERO)..=(key.clone(), Version::MAX))
                .map(|((_, version), value)| (*version, value.clone()))
                .collect();
            expected.reverse();
            assert_eq!(history, expected, "history of {key:?}");
        }
        let window = versions[versions.len() / 3]..=versions[versions.len() / 2];
        let mut changes: Vec<(Vec<u8>, Version)> = db
            .changes(.., window.clone())
            .unwrap()
            .map(|change| change.map(|change| (change.key.to_vec(), change.version)).unwrap())
            .collect();
        changes.sort();
        let expected: Vec<(Vec<u8>, Version)> =
            model.keys().filter(|(_, version)| window.contains(version)).cloned().collect();
        assert_eq!(changes, expected, "changes in {window:?}");
    }

    /// A flush writes level 0 in key order: the memtable's own order, streamed without a sort.
    #[test]
    fn a_flush_writes_key_ordered_level_0_segments() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), level_0_options(Order::Key)).unwrap();
        let mut model = Model::new();
        for round in 0..3 {
            write_round(&db, &mut model, round);
        }
        assert_eq!(level_0_orders(&db), [Order::Key; 3]);
        check_reads(&db, &model);
    }

    /// A database whose level 0 holds Z-order segments (flushed before level 0 was
    /// key-ordered) and key-ordered ones reads both, each through its own order, and
    /// compaction merges them into level 1.
    #[test]
    fn level_0_segments_of_both_orders_read_together_and_compact() {
        let dir = tempfile::tempdir().unwrap();
        let mut model = Model::new();
        let db = Db::open(dir.path(), level_0_options(Order::Z)).unwrap();
        for round in 0..2 {
            write_round(&db, &mut model, round);
        }
        drop(db);
        let db = Db::open(dir.path(), level_0_options(Order::Key)).unwrap();
        for round in 2..4 {
            write_round(&db, &mut model, round);
        }
        assert_eq!(level_0_orders(&db), [Order::Key, Order::Key, Order::Z, Order::Z]);
        check_reads(&db, &model);
        drop(db);
        let db = Db::open(dir.path(), level_0_options(Order::Key)).unwrap();
        check_reads(&db, &model);
        db.compact().unwrap();
        assert!(level_0_orders(&db).is_empty(), "compact empties level 0");
        // Compaction keeps each key's newest version current and demotes the rest.
        check_reads(&db, &model);
    }

    #[test]
    fn compaction_retries_back_off_from_100_ms_doubling_to_10_s() {
        let delays: Vec<u128> =
            (1..=10).map(|failures| super::compaction_retry_delay(failures).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1_600, 3_200, 6_400, 10_000, 10_000, 10_000]);
        assert_eq!(super::compaction_retry_delay(u32::MAX).as_millis(), 10_000);
    }
}
