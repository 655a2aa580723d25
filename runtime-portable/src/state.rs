//! [`State`]: what an open database is, between writes: the tiers readers load, the manifest
//! that records them on disk, the file numbers it reserved, the retention horizons and the
//! read-only latch.
//!
//! Only this module changes the tiers or the manifest. Every change is a named
//! [`Transition`] handed to [`State::install`], which writes the manifest (when the transition
//! changes it) and swaps the tiers, holding the manifest lock and then the tiers lock. Recovery,
//! which runs before a `State` exists, writes its manifest edits through [`write_edit`], the
//! one function that writes a manifest of this database.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use zverse_core::Version;

use crate::compaction::{Horizons, sort_newest_first};
use crate::error::{Error, Result};
use crate::io::Io;
use crate::manifest::{MANIFEST_NAME, Manifest, ManifestFile as _, SegmentMeta, Tier};
use crate::memtable::Memtable;
use crate::segment_file::{HistoryFile, SegmentFile};
use crate::sync::lock;
use crate::tiers::{TierSet, Tiers, TiersRef};

/// File numbers the manifest reserves ahead of use: a number is recorded as reserved before a
/// file gets it, so every file a crash leaves behind is numbered below the manifest's
/// `file_number_next`, and any file at or above it is not the engine's.
pub(crate) const FILE_NUMBERS_RESERVED: u64 = 64;

/// An edit of the manifest: applied to a copy, which is written whole and replaces it.
#[derive(Debug)]
pub(crate) enum Edit {
    /// File numbers below `file_number_next` are reserved (never lowers it).
    Reserve { file_number_next: u64 },
    /// Log `number`, created and synced, is live.
    AddLog { number: u64 },
    /// The live segments are now `segments` (newest first); logs numbered below
    /// `log_number_min` are dropped; `file_number_next`, `version_last` and the horizons are
    /// raised to at least the given values.
    Segments {
        segments: Vec<SegmentMeta>,
        log_number_min: Option<u64>,
        file_number_next: u64,
        version_last: Version,
        horizons: Horizons,
    },
}

impl Edit {
    /// `manifest` with this edit applied.
    fn applied_to(self, manifest: &Manifest) -> Manifest {
        let mut next = manifest.clone();
        match self {
            Edit::Reserve { file_number_next } => {
                next.file_number_next = next.file_number_next.max(file_number_next);
            }
            Edit::AddLog { number } => next.logs.push(number),
            Edit::Segments {
                segments,
                log_number_min,
                file_number_next,
                version_last,
                horizons,
            } => {
                next.segments = segments;
                if let Some(log_number_min) = log_number_min {
                    next.logs.retain(|&number| number >= log_number_min);
                }
                next.file_number_next = next.file_number_next.max(file_number_next);
                next.version_last = next.version_last.max(version_last);
                next.horizon = next.horizon.max(horizons.all);
                next.horizon_found = next.horizon_found.max(horizons.found);
            }
        }
        next
    }
}

/// Writes `manifest` with `edit` applied (replacing the file atomically), then updates
/// `manifest`; on an error `manifest` is unchanged (the file may hold either).
pub(crate) fn write_edit(
    io: &dyn Io,
    dir: &Path,
    manifest: &mut Manifest,
    edit: Edit,
) -> Result<()> {
    let next = edit.applied_to(manifest);
    next.write(io, dir)?;
    *manifest = next;
    Ok(())
}

/// The error for a file number sequence that reached `u64::MAX` (only a manifest with an
/// absurd `file_number_next` gets there).
pub(crate) fn numbers_exhausted(dir: &Path) -> Error {
    Error::Corruption {
        file: dir.join(MANIFEST_NAME),
        offset: 0,
        what: "file numbers exhausted: file_number_next is near u64::MAX".into(),
    }
}

/// A change of the state, named for what happened.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Transition<'a> {
    /// Numbers up to `number`, and [`FILE_NUMBERS_RESERVED`] past it, are in use (the
    /// manifest only).
    NumbersReserved { number: u64 },
    /// Log `log_number` is created and synced: the manifest records it, and the active
    /// memtable is sealed for a new one whose writes go to that log.
    Rotated { log_number: u64 },
    /// The sealed `memtable` is in the segments `outputs` (synced, opened): they replace it,
    /// and the logs older than every memtable left are dropped.
    Flushed { memtable: &'a Arc<Memtable>, outputs: &'a [Arc<SegmentFile>] },
    /// Compaction merged `inputs` into `outputs` (current segments of the level their
    /// manifest entries name) and `history` (the versions it demoted), dropping versions
    /// below `horizons`.
    Compacted {
        inputs: &'a [Arc<SegmentFile>],
        outputs: &'a [Arc<SegmentFile>],
        history: &'a [Arc<HistoryFile>],
        horizons: Horizons,
    },
    /// The history segments `inputs` were merged through GC into `outputs` (none when GC
    /// dropped every version), dropping versions below `horizons`.
    HistoryMerged {
        inputs: &'a [Arc<HistoryFile>],
        outputs: &'a [Arc<HistoryFile>],
        horizons: Horizons,
    },
}

/// A file number handed out without its reservation in the manifest: the reservation failed
/// for `reason`, and the database must turn read-only.
#[derive(Debug)]
pub(crate) struct Unreserved {
    pub number: u64,
    pub reason: String,
}

/// The tiers, the manifest, file numbers, horizons and the read-only latch of an open
/// database.
#[derive(Debug)]
pub(crate) struct State {
    io: Arc<dyn Io>,
    dir: PathBuf,
    tiers: TierSet,
    manifest: Mutex<Manifest>,
    /// The next file number to hand out.
    file_number_next: AtomicU64,
    /// The manifest's `file_number_next`: numbers below it are reserved for this database.
    file_number_reserved: AtomicU64,
    /// The retention horizon (the manifest's): reads below it are refused.
    horizon: AtomicU64,
    /// The manifest's `horizon_found`: a point read at or above it that finds a version is
    /// exact even below `horizon`.
    horizon_found: AtomicU64,
    /// Why the database refuses writes, once an I/O error made it so.
    read_only: Mutex<Option<Arc<str>>>,
    /// Level-0 segments in the tiers (what writes stall on), counted at every change of the
    /// segments, so that a write checks it without walking them.
    segment_count_open: AtomicUsize,
}

impl State {
    /// The state of a database opened with `manifest` (as on disk) and `tiers` (recovered);
    /// file numbers are handed out from `file_number_next`.
    pub(crate) fn new(
        io: Arc<dyn Io>,
        dir: &Path,
        manifest: Manifest,
        tiers: Tiers,
        file_number_next: u64,
    ) -> State {
        let segment_count_open = tiers.segments.len();
        State {
            io,
            dir: dir.to_path_buf(),
            tiers: TierSet::new(tiers),
            file_number_next: AtomicU64::new(file_number_next),
            file_number_reserved: AtomicU64::new(manifest.file_number_next),
            horizon: AtomicU64::new(manifest.horizon.get()),
            horizon_found: AtomicU64::new(manifest.horizon_found.get()),
            manifest: Mutex::new(manifest),
            read_only: Mutex::new(None),
            segment_count_open: AtomicUsize::new(segment_count_open),
        }
    }

    /// The tiers as they are now, for one read (no lock, no shared counter written).
    pub(crate) fn tiers_ref(&self) -> TiersRef {
        self.tiers.load()
    }

    /// The tiers as they are now, as an owned `Arc` (for iterators that outlive the call).
    pub(crate) fn tiers(&self) -> Arc<Tiers> {
        self.tiers.load_full()
    }

    /// A copy of the manifest as it is now.
    pub(crate) fn manifest(&self) -> Manifest {
        lock(&self.manifest).clone()
    }

    /// The manifest and the tiers as of one moment (no transition between the two).
    pub(crate) fn manifest_and_tiers(&self) -> (Manifest, Arc<Tiers>) {
        let manifest = lock(&self.manifest);
        (manifest.clone(), self.tiers())
    }

    /// The live logs (the manifest's), oldest first.
    pub(crate) fn logs(&self) -> Vec<u64> {
        lock(&self.manifest).logs.clone()
    }

    /// The files the database has now: `MANIFEST`, `LOCK` (created by the first writable
    /// open, never deleted), the live logs and segments.
    pub(crate) fn file_count(&self) -> u64 {
        let manifest = lock(&self.manifest);
        2 + manifest.logs.len() as u64 + manifest.segments.len() as u64
    }

    /// Level-0 segments now (what background compaction moves to level 1).
    pub(crate) fn segment_count_open(&self) -> usize {
        self.segment_count_open.load(Ordering::Acquire)
    }

    /// The retention horizon: every read at or above it is exact.
    pub(crate) fn horizon(&self) -> Version {
        Version::new(self.horizon.load(Ordering::Acquire))
    }

    /// A point read at or above it that finds a retained version is exact.
    pub(crate) fn horizon_found(&self) -> Version {
        Version::new(self.horizon_found.load(Ordering::Acquire))
    }

    /// Why the database refuses writes, if it turned read-only.
    pub(crate) fn read_only_reason(&self) -> Option<Arc<str>> {
        lock(&self.read_only).clone()
    }

    /// Latches the database read-only for `reason` (the first reason stays). Returns the
    /// reason in force and whether this call set it.
    pub(crate) fn latch_read_only(&self, reason: String) -> (Arc<str>, bool) {
        let mut read_only = lock(&self.read_only);
        let first = read_only.is_none();
        (Arc::clone(read_only.get_or_insert_with(|| reason.into())), first)
    }

    /// The `file_number_next` a manifest written now records: above every number allocated.
    pub(crate) fn file_number_next(&self) -> u64 {
        self.file_number_reserved.load(Ordering::Acquire)
    }

    /// A new file number, reserved in the manifest before it is returned (a manifest write
    /// once every `FILE_NUMBERS_RESERVED` numbers). Never call it holding the manifest lock.
    /// If the reservation fails, the number comes back [`Unreserved`]: the caller turns the
    /// database read-only (its next manifest write fails too), and a file a crash then leaves
    /// with that number is ignored, never deleted.
    pub(crate) fn allocate_file_number(&self) -> Result<u64, Unreserved> {
        let Ok(number) =
            self.file_number_next
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_add(1))
        else {
            let reason = numbers_exhausted(&self.dir).to_string();
            return Err(Unreserved { number: u64::MAX, reason });
        };
        if number >= self.file_number_reserved.load(Ordering::Acquire)
            && let Err(error) = self.install(Transition::NumbersReserved { number })
        {
            let reason = format!("reserving file number {number} failed: {error}");
            return Err(Unreserved { number, reason });
        }
        Ok(number)
    }

    /// Applies `transition`: writes the manifest if it changes, then swaps in the new tiers.
    /// On an error (the manifest write failed) neither the tiers nor the in-memory manifest
    /// change; the file on disk may hold either manifest, so the caller keeps every file the
    /// new one could name and turns the database read-only.
    pub(crate) fn install(&self, transition: Transition<'_>) -> Result<()> {
        let mut manifest = lock(&self.manifest);
        let mut tiers = self.tiers.lock();
        let (edit, next_tiers) = match transition {
            Transition::NumbersReserved { number } => {
                if number < manifest.file_number_next {
                    return Ok(());
                }
                let file_number_next = number
                    .checked_add(1 + FILE_NUMBERS_RESERVED)
                    .ok_or_else(|| numbers_exhausted(&self.dir))?;
                (Some(Edit::Reserve { file_number_next }), None)
            }
            Transition::Rotated { log_number } => {
                (Some(Edit::AddLog { number: log_number }), Some(rotated(&tiers, log_number)))
            }
            Transition::Flushed { memtable, outputs } => {
                let next = flushed(&tiers, memtable, outputs);
                (Some(self.flush_edit(&next, memtable, outputs)), Some(next))
            }
            Transition::Compacted { inputs, outputs, history, horizons } => {
                let next = compacted(&tiers, inputs, outputs, history);
                (Some(self.segments_edit(&next, horizons)), Some(next))
            }
            Transition::HistoryMerged { inputs, outputs, horizons } => {
                let next = history_merged(&tiers, inputs, outputs);
                (Some(self.segments_edit(&next, horizons)), Some(next))
            }
        };
        if let Some(edit) = edit {
            write_edit(self.io.as_ref(), &self.dir, &mut manifest, edit)?;
            // Before the tiers change, so that no read below a raised horizon sees them.
            self.file_number_reserved.fetch_max(manifest.file_number_next, Ordering::AcqRel);
            self.horizon_found.fetch_max(manifest.horizon_found.get(), Ordering::AcqRel);
            self.horizon.fetch_max(manifest.horizon.get(), Ordering::AcqRel);
        }
        if let Some(next) = next_tiers {
            self.segment_count_open.store(next.segments.len(), Ordering::Release);
            *tiers = Arc::new(next);
        }
        Ok(())
    }

    /// The manifest edit of a compaction or a history merge whose tiers become `next`,
    /// raising the horizons to `horizons`.
    fn segments_edit(&self, next: &Tiers, horizons: Horizons) -> Edit {
        Edit::Segments {
            segments: metas(next),
            log_number_min: None,
            file_number_next: self.file_number_next(),
            version_last: Version::ZERO,
            horizons,
        }
    }

    /// The manifest edit of a flush whose tiers become `next`.
    fn flush_edit(&self, next: &Tiers, memtable: &Memtable, outputs: &[Arc<SegmentFile>]) -> Edit {
        let version_max = outputs.iter().map(|s| s.meta().version_max).max();
        Edit::Segments {
            segments: metas(next),
            log_number_min: Some(log_number_oldest(next)),
            file_number_next: self.file_number_next(),
            version_last: version_max.unwrap_or(Version::ZERO).max(memtable.version_last()),
            horizons: Horizons::default(),
        }
    }

    /// Tests only: seals an empty memtable the flush thread is not told about.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn seal_unannounced_for_test(&self) {
        let mut tiers = self.tiers.lock();
        let mut sealed = tiers.sealed.clone();
        sealed.push(Arc::new(Memtable::new(tiers.active.log_number_first())));
        *tiers = Arc::new(tiers.with_memtables_of(Arc::clone(&tiers.active), sealed));
    }
}

/// The number of the oldest log a memtable of `tiers` still needs.
pub(crate) fn log_number_oldest(tiers: &Tiers) -> u64 {
    tiers.sealed.last().unwrap_or(&tiers.active).log_number_first()
}

/// `tiers` with the active memtable sealed and a new one for log `log_number` active.
fn rotated(tiers: &Tiers, log_number: u64) -> Tiers {
    let mut sealed = tiers.sealed.clone();
    sealed.insert(0, Arc::clone(&tiers.active));
    tiers.with_memtables_of(Arc::new(tiers.active.successor(log_number)), sealed)
}

/// `tiers` with the sealed `memtable` replaced by `outputs`.
fn flushed(tiers: &Tiers, memtable: &Arc<Memtable>, outputs: &[Arc<SegmentFile>]) -> Tiers {
    let mut sealed = tiers.sealed.clone();
    let position = sealed.iter().position(|m| Arc::ptr_eq(m, memtable));
    let position = position.expect("only the background thread removes sealed memtables");
    sealed.remove(position);
    let mut segments = tiers.segments.clone();
    segments.extend(outputs.iter().cloned());
    sort_newest_first(&mut segments);
    let (levels, history) = (tiers.levels.clone(), tiers.history.clone());
    Tiers::new(Arc::clone(&tiers.active), sealed, segments, levels, history)
}

/// `tiers` with the segments `inputs` replaced by `outputs`, each in the tier its manifest
/// entry names, and the history segments `history` added (flushes may have added level-0
/// segments since compaction took the inputs; only compaction removes any).
fn compacted(
    tiers: &Tiers,
    inputs: &[Arc<SegmentFile>],
    outputs: &[Arc<SegmentFile>],
    history: &[Arc<HistoryFile>],
) -> Tiers {
    let is_input = |s: &Arc<SegmentFile>| inputs.iter().any(|input| Arc::ptr_eq(s, input));
    let keep = |segments: &[Arc<SegmentFile>]| -> Vec<Arc<SegmentFile>> {
        segments.iter().filter(|s| !is_input(s)).cloned().collect()
    };
    let mut segments = keep(&tiers.segments);
    let mut levels: Vec<Vec<Arc<SegmentFile>>> = tiers.levels.iter().map(|l| keep(l)).collect();
    let count_before = tiers.current().count();
    let count_after = segments.len() + levels.iter().map(Vec::len).sum::<usize>();
    assert_eq!(
        count_after + inputs.len(),
        count_before,
        "only the compaction thread removes segments, and it is compacting these"
    );
    for output in outputs {
        match output.meta().tier {
            Tier::Level(0) | Tier::History => {
                panic!("compaction writes current segments to levels 1 and down")
            }
            Tier::Level(level) => {
                let index = usize::from(level) - 1;
                if levels.len() <= index {
                    levels.resize(index + 1, Vec::new());
                }
                levels[index].push(Arc::clone(output));
            }
        }
    }
    sort_newest_first(&mut segments);
    for level in &mut levels {
        level.sort_by(|a, b| a.key_first().cmp(b.key_first()));
        let disjoint = level.windows(2).all(|pair| pair[0].key_last() < pair[1].key_first());
        assert!(disjoint, "a current level's segments have disjoint key bounds");
    }
    let mut all_history = tiers.history.clone();
    all_history.extend(history.iter().cloned());
    sort_history_newest_first(&mut all_history);
    Tiers::new(Arc::clone(&tiers.active), tiers.sealed.clone(), segments, levels, all_history)
}

/// `tiers` with the history segments `inputs` replaced by `outputs`.
fn history_merged(
    tiers: &Tiers,
    inputs: &[Arc<HistoryFile>],
    outputs: &[Arc<HistoryFile>],
) -> Tiers {
    let is_input = |h: &Arc<HistoryFile>| inputs.iter().any(|input| Arc::ptr_eq(h, input));
    let mut history: Vec<Arc<HistoryFile>> =
        tiers.history.iter().filter(|h| !is_input(h)).cloned().collect();
    assert_eq!(history.len() + inputs.len(), tiers.history.len(), "only compaction merges");
    history.extend(outputs.iter().cloned());
    sort_history_newest_first(&mut history);
    let (segments, levels) = (tiers.segments.clone(), tiers.levels.clone());
    Tiers::new(Arc::clone(&tiers.active), tiers.sealed.clone(), segments, levels, history)
}

/// Orders history segments newest first: by their newest version, then file number.
pub(crate) fn sort_history_newest_first(history: &mut [Arc<HistoryFile>]) {
    history.sort_by(|a, b| {
        let key = |s: &Arc<HistoryFile>| (s.meta().version_max, s.meta().file_number);
        key(b).cmp(&key(a))
    });
}

/// The manifest entries of `tiers`' segments: level 0 newest first, each level in key
/// order, then history newest first.
pub(crate) fn metas(tiers: &Tiers) -> Vec<SegmentMeta> {
    let current = tiers.current().map(|segment| *segment.meta());
    current.chain(tiers.history.iter().map(|segment| *segment.meta())).collect()
}

#[cfg(all(test, not(loom)))]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use crate::io::StdIo;

    fn meta(file_number: u64) -> SegmentMeta {
        SegmentMeta {
            file_number,
            entry_count: 1,
            file_bytes: 100,
            payload_bytes: 10,
            version_min: Version::new(1),
            version_max: Version::new(2),
            tier: Tier::Level(0),
        }
    }

    fn manifest() -> Manifest {
        Manifest {
            file_number_next: 100,
            version_last: Version::new(50),
            horizon: Version::new(10),
            horizon_found: Version::new(5),
            segments: vec![meta(3)],
            logs: vec![4, 7, 9],
        }
    }

    fn state_at(dir: &Path) -> State {
        let tiers = Tiers::with_memtables(Arc::new(Memtable::new(9)), vec![]);
        State::new(Arc::new(StdIo), dir, manifest(), tiers, 20)
    }

    #[test]
    fn edits_never_lower_the_next_number_the_last_version_or_the_horizons() {
        let before = manifest();
        assert_eq!(Edit::Reserve { file_number_next: 50 }.applied_to(&before), before);
        assert_eq!(
            Edit::Reserve { file_number_next: 200 }.applied_to(&before).file_number_next,
            200
        );
        let segments = Edit::Segments {
            segments: vec![meta(12), meta(3)],
            log_number_min: None,
            file_number_next: 0,
            version_last: Version::ZERO,
            horizons: Horizons::default(),
        };
        let expected = Manifest { segments: vec![meta(12), meta(3)], ..manifest() };
        assert_eq!(segments.applied_to(&before), expected);
    }

    #[test]
    fn a_flush_edit_drops_the_logs_below_the_oldest_memtable_and_raises_what_it_names() {
        let flushed = Edit::Segments {
            segments: vec![meta(12)],
            log_number_min: Some(7),
            file_number_next: 120,
            version_last: Version::new(60),
            horizons: Horizons { all: Version::new(20), found: Version::new(1) },
        };
        let after = flushed.applied_to(&manifest());
        assert_eq!(after.logs, [7, 9]);
        assert_eq!((after.file_number_next, after.version_last), (120, Version::new(60)));
        assert_eq!((after.horizon, after.horizon_found), (Version::new(20), Version::new(5)));
        assert_eq!(Edit::AddLog { number: 11 }.applied_to(&manifest()).logs, [4, 7, 9, 11]);
    }

    #[test]
    fn install_writes_the_manifest_then_swaps_the_tiers_and_a_failed_write_changes_neither() {
        let dir = tempfile::tempdir().unwrap();
        let state = state_at(dir.path());
        state.install(Transition::Rotated { log_number: 11 }).unwrap();
        let on_disk = Manifest::read(&StdIo, dir.path()).unwrap().unwrap();
        assert_eq!(on_disk.logs, [4, 7, 9, 11]);
        assert_eq!(on_disk, state.manifest());
        let tiers = state.tiers();
        assert_eq!(tiers.active.log_number_first(), 11);
        assert_eq!(tiers.sealed.len(), 1, "the old active memtable is sealed");

        let gone = dir.path().join("gone");
        let state = state_at(&gone);
        assert!(state.install(Transition::Rotated { log_number: 11 }).is_err());
        assert_eq!(state.manifest(), manifest(), "the manifest in memory is unchanged");
        assert_eq!(state.tiers().active.log_number_first(), 9, "the tiers are unchanged");
        assert!(state.tiers().sealed.is_empty());
    }

    #[test]
    fn file_numbers_are_reserved_in_the_manifest_before_they_are_handed_out() {
        let dir = tempfile::tempdir().unwrap();
        let state = state_at(dir.path());
        assert_eq!(state.allocate_file_number().unwrap(), 20, "below the reservation: no write");
        assert!(Manifest::read(&StdIo, dir.path()).unwrap().is_none());
        state.install(Transition::NumbersReserved { number: 100 }).unwrap();
        let on_disk = Manifest::read(&StdIo, dir.path()).unwrap().unwrap();
        assert_eq!(on_disk.file_number_next, 100 + 1 + FILE_NUMBERS_RESERVED);
        assert_eq!(state.file_number_next(), on_disk.file_number_next);
    }
}
