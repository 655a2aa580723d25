//! Compaction and GC: leveled current segments, with demotion of superseded versions into
//! history segments (ARCHITECTURE.md, "Current and history").
//!
//! **The tiers.** Level 0 holds flush outputs (Z order, time partitions, overlapping keys).
//! Levels 1 and down are each one sorted run of segments with disjoint key bounds holding
//! exactly one version per key: the newest the level has seen (a tombstone included). History
//! segments hold the versions compaction demoted, in rank-space Z order.
//!
//! **A step.** Level 0 to 1 when level 0 holds `compaction_trigger_segments` segments: all of
//! them (at most `LEVEL_0_STEP_SEGMENTS_MAX`) plus the level-1 segments their key bounds meet.
//! Level `n` to `n + 1` when level `n` passes its target (`Options::level_bytes_target`): its
//! segment that meets the fewest bytes of level `n + 1` per byte, plus those it meets. When
//! several are due, the tier furthest past its trigger goes first (`most_due`, as RocksDB
//! scores its levels). The inputs are merged in key order (the lower level as one
//! concatenated source), each key's versions go through
//! `zverse_core::merge::KeyGc` newest first, and each key's newest surviving version goes to
//! the current output of the lower level, every other surviving version to a history output;
//! dropped versions go nowhere. Outputs are split at `segment_bytes_target` (current ones at a
//! key, history ones anywhere).
//!
//! **Why GC is exact.** Every rule of `KeyGc` drops a version only for a newer kept version of
//! the same key among the inputs, so a version outside the inputs can only make it keep more;
//! the one exception, a tombstone with nothing below it ("bottom"), is decided only when no
//! segment outside the inputs, history included, holds a version at or below the inputs'
//! newest. A key's first version among the inputs is never dropped unless at the bottom: it
//! is the newest the current levels hold, and every history version of the key must stay
//! below a current one (`Tiers::needs_history`).
//!
//! **History GC.** History merges (due under retention, small ones, and every history
//! segment at `Db::compact`) decide each key's versions with `KeyGc` after feeding it the
//! key's newest current version, the newer kept version every history version has
//! (ARCHITECTURE.md, "History GC").
//!
//! Memory of a step: one block per input (mapped), the current output's block and metadata
//! (a key-order segment, streamed to its file, split at the target between keys), and one
//! history segment being built (bounded by the target).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use zverse_core::merge::{Decision, GcPolicy, KeyGc, KeyOrder, MergeVec};
use zverse_core::segment::history::{HistoryBuilder, HistoryOptions};
use zverse_core::segment::{BuildError, Order as SegmentOrder};
use zverse_core::zkey::ZBox;
use zverse_core::{Corruption, Entry, Version};

use crate::background::writer_limits;
use crate::error::{Error, Result};
use crate::inner::Inner;
use crate::locality::{Advised, ScanPurpose};
use crate::manifest::{SegmentMeta, Tier};
use crate::options::{Options, Retention};
use crate::segment_file::{GcStamp, HistoryFile, SegmentFile, segment_file_name};
use crate::segment_writer::{NewFiles, SegmentWriter};
use crate::state::Transition;
use crate::tiers::{Tiers, level_overlapping, level_segment};

/// The box of every entry: what a compaction reads of each input.
static EVERYTHING: std::sync::LazyLock<Option<ZBox>> =
    std::sync::LazyLock::new(|| ZBox::new(0, u64::MAX, 0, u64::MAX));

/// The versions from the oldest a live pin kept in history to the newest next newer version of
/// one (`GcStamp::pinned`), if any.
type Pinned = Option<(Version, Version)>;

/// How long after a history segment is due by time the compaction thread looks at it.
const HISTORY_GC_SLACK: Duration = Duration::from_millis(10);

/// Entries between two checks of whether the database is closing.
const CANCEL_CHECK_ENTRIES: u64 = 4096;

/// The deepest current level compaction writes.
pub(crate) const LEVEL_COUNT_MAX: u8 = 7;

/// The most level-0 segments one step takes (the merge's fan-in limit, less one source for
/// level 1): a step holds one block of each input, so its memory stays bounded.
pub(crate) const LEVEL_0_STEP_SEGMENTS_MAX: usize = zverse_core::merge::FAN_IN_MAX - 1;

/// What a compaction's drops leave exact (the manifest's `horizon` and `horizon_found`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Horizons {
    /// Every read at or above it is exact, every `changes` window from it complete.
    pub all: Version,
    /// A point read at or above it that finds a retained version is exact.
    pub found: Version,
}

/// One compaction step: `upper` (level-0 segments, or one segment of level `level - 1`)
/// merged with `lower` (the segments of `level` they meet, in key order) into `level`.
#[derive(Debug)]
struct Step {
    upper: Vec<Arc<SegmentFile>>,
    lower: Vec<Arc<SegmentFile>>,
    level: u8,
}

impl Step {
    fn inputs(&self) -> Vec<Arc<SegmentFile>> {
        self.upper.iter().chain(&self.lower).cloned().collect()
    }
}

/// The smallest and the largest key of `segments`.
fn key_span(segments: &[Arc<SegmentFile>]) -> Option<(&[u8], &[u8])> {
    let first = segments.iter().map(|s| s.key_first()).min()?;
    let last = segments.iter().map(|s| s.key_last()).max()?;
    Some((first, last))
}

/// The segments of current level `level` (1 and down) in `tiers`.
fn level_of(tiers: &Tiers, level: u8) -> &[Arc<SegmentFile>] {
    let index = usize::from(level).saturating_sub(1);
    tiers.levels.get(index).map_or(&[], Vec::as_slice)
}

/// The step that moves `upper` into `level`, with the segments there its keys meet.
fn step_into(tiers: &Tiers, upper: Vec<Arc<SegmentFile>>, level: u8) -> Option<Step> {
    let (first, last) = key_span(&upper)?;
    let keys = (std::ops::Bound::Included(first), std::ops::Bound::Included(last));
    let lower = level_overlapping(level_of(tiers, level), keys).to_vec();
    Some(Step { upper, lower, level })
}

/// The level-0 segments a step into level 1 takes: every one, at most
/// [`LEVEL_0_STEP_SEGMENTS_MAX`], the oldest (level 0 is kept newest first). All level-0
/// segments overlap level 1's whole key range, so each step rewrites the level-1 segments
/// they meet whatever it takes: taking them all (as RocksDB's level-0 compaction does) moves
/// the most data per rewrite (`benches/results/scale.md`, 2026-12-08).
fn oldest_level_0(tiers: &Tiers) -> Vec<Arc<SegmentFile>> {
    let segments = &tiers.segments;
    segments[segments.len().saturating_sub(LEVEL_0_STEP_SEGMENTS_MAX)..].to_vec()
}

/// The segment of `level` whose step into the next level rewrites the fewest bytes there per
/// byte it moves (RocksDB's default `kMinOverlappingRatio`); the oldest of equals.
fn least_overlapping(tiers: &Tiers, level: u8) -> Option<Arc<SegmentFile>> {
    let below = level_of(tiers, level.saturating_add(1));
    let ratio = |segment: &Arc<SegmentFile>| {
        let keys = (
            std::ops::Bound::Included(segment.key_first()),
            std::ops::Bound::Included(segment.key_last()),
        );
        let overlap: u64 = level_overlapping(below, keys).iter().map(|s| s.meta().file_bytes).sum();
        overlap.saturating_mul(1000) / segment.meta().file_bytes.max(1)
    };
    let segments = level_of(tiers, level);
    segments.iter().min_by_key(|s| (ratio(s), s.meta().file_number)).cloned()
}

/// How far a tier is past its trigger, in thousandths: level 0's segment count against
/// `compaction_trigger_segments`, a level's bytes against its target. At 1,000 a step is due.
type Score = u64;

/// The scores of level 0 (index 0) and of each current level (index `n`).
fn scores(tiers: &Tiers, options: &Options) -> Vec<Score> {
    let ratio = |have: u64, target: u64| have.saturating_mul(1000) / target.max(1);
    let level_0 = ratio(tiers.segments.len() as u64, options.compaction_trigger_segments.into());
    let levels = (1..LEVEL_COUNT_MAX).map(|level| {
        let bytes: u64 = level_of(tiers, level).iter().map(|s| s.meta().file_bytes).sum();
        ratio(bytes, options.level_bytes_target(level))
    });
    std::iter::once(level_0).chain(levels).collect()
}

/// The tier whose step is most due (the highest score at or past 1,000; the shallowest of
/// equals), as RocksDB's leveled picker does: level 0 at its trigger must not starve a level
/// past its target, or that level grows without bound and every level-0 step rewrites all of
/// it (the 24 GiB scale run in `benches/results/scale.md`).
fn most_due(scores: &[Score]) -> Option<u8> {
    let (tier, score) = scores.iter().enumerate().rev().max_by_key(|(_, score)| **score)?;
    (*score >= 1000).then(|| u8::try_from(tier).ok()).flatten()
}

/// The background step due now, if any: level 0 into level 1 (`oldest_level_0`), or the
/// least overlapping segment of a level into the next, whichever tier is most due.
fn pick_step(tiers: &Tiers, options: &Options) -> Option<Step> {
    match most_due(&scores(tiers, options))? {
        0 => step_into(tiers, oldest_level_0(tiers), 1),
        level => step_into(tiers, vec![least_overlapping(tiers, level)?], level + 1),
    }
}

/// The history segments to merge, if `compaction_trigger_segments` of them are small (under
/// half the target): the oldest run of two or more small ones that are neighbours in time, at
/// most `compaction_fan_in` (a merge of small segments with a larger one between them in
/// time would cover its versions too, and a narrow time window would open both).
fn pick_history_window(tiers: &Tiers, options: &Options) -> Option<Vec<Arc<HistoryFile>>> {
    let is_small = |h: &Arc<HistoryFile>| h.meta().file_bytes < options.segment_bytes_target / 2;
    let small_count = tiers.history.iter().filter(|h| is_small(h)).count();
    if small_count < (options.compaction_trigger_segments as usize).max(2) {
        return None;
    }
    oldest_run(&tiers.history, is_small, 2, options.compaction_fan_in as usize)
}

/// The oldest run of at least `len_min` history segments that `pick` selects and that are
/// neighbours in time (`history` is ordered newest first), at most `len_max` of them (the
/// oldest of the run).
fn oldest_run(
    history: &[Arc<HistoryFile>],
    pick: impl Fn(&Arc<HistoryFile>) -> bool,
    len_min: usize,
    len_max: usize,
) -> Option<Vec<Arc<HistoryFile>>> {
    let mut end = history.len();
    while let Some(last) = end.checked_sub(1) {
        if !history.get(last).is_some_and(&pick) {
            end = last;
            continue;
        }
        let mut start = last;
        while start > 0 && end - start < len_max && history.get(start - 1).is_some_and(&pick) {
            start -= 1;
        }
        if end - start >= len_min {
            return history.get(start..end).map(<[_]>::to_vec);
        }
        end = start;
    }
    None
}

/// Whether the sorted `pins` hold a version in `[low, high)`.
fn pins_within(pins: &[Version], low: Version, high: Version) -> bool {
    let first_at_or_above_low = pins.partition_point(|pin| *pin < low);
    pins.get(first_at_or_above_low).is_some_and(|pin| *pin < high)
}

/// History segments GC may now shrink, the oldest run of them that are neighbours in time
/// (so that the output covers no other segment's versions), at most `compaction_fan_in`:
/// under `Retention::Duration`, those whose stamp's `due` the horizon has reached (every
/// version they hold may go, but for pins); under `Retention::Versions`, those stamped before
/// users wrote as many bytes as the history holds (so history GC rewrites at most one byte
/// per byte written); and under either, those holding versions only released pins kept. A
/// segment without a stamp (opened at recovery) gets one now (`first_stamp`).
fn pick_history_gc(
    tiers: &Tiers,
    options: &Options,
    horizon: Version,
    user_bytes: u64,
    pins: &[Version],
) -> Option<Vec<Arc<HistoryFile>>> {
    let history_bytes: u64 = tiers.history.iter().map(|h| h.meta().file_bytes).sum();
    let due = |h: &Arc<HistoryFile>| {
        let stamp = h.gc_stamp(|| first_stamp(tiers, user_bytes));
        let released =
            stamp.pinned.is_some_and(|(low, high)| low >= high || !pins_within(pins, low, high));
        match options.retention {
            Retention::All => false,
            Retention::Duration(_) => stamp.due <= horizon || released,
            Retention::Versions(_) => {
                user_bytes.saturating_sub(stamp.user_bytes) >= history_bytes || released
            }
        }
    };
    oldest_run(&tiers.history, due, 1, options.compaction_fan_in as usize)
}

/// The stamp of a history segment that has none (opened at recovery): the newest current
/// version is at or above every history version's next newer.
fn first_stamp(tiers: &Tiers, user_bytes: u64) -> GcStamp {
    GcStamp { due: tiers.version_max_current(), user_bytes, pinned: None }
}

/// Whether no history segment outside `inputs` holds a version at or below their newest.
fn history_is_bottom(tiers: &Tiers, inputs: &[Arc<HistoryFile>]) -> bool {
    let input_max = inputs.iter().map(|h| h.meta().version_max).max().unwrap_or(Version::ZERO);
    let is_input = |h: &&Arc<HistoryFile>| inputs.iter().any(|input| Arc::ptr_eq(h, input));
    tiers.history.iter().filter(|h| !is_input(h)).all(|h| h.meta().version_min > input_max)
}

/// Whether GC may treat `inputs` as the bottom: no other segment, history included, holds a
/// version at or below their newest.
fn is_bottom(tiers: &Tiers, inputs: &[Arc<SegmentFile>]) -> bool {
    let input_max = inputs.iter().map(|s| s.meta().version_max).max().unwrap_or(Version::ZERO);
    let is_input = |s: &Arc<SegmentFile>| inputs.iter().any(|input| Arc::ptr_eq(s, input));
    let current = tiers.current().filter(|s| !is_input(s)).map(|s| s.meta().version_min);
    let history = tiers.history.iter().map(|h| h.meta().version_min);
    current.chain(history).all(|version_min| version_min > input_max)
}

/// The newest version of `key` in a current segment.
#[derive(Clone, Copy)]
struct NewestCurrent {
    version: Version,
    tombstone: bool,
    /// No other current segment holds a version of the key, nor its own an older one.
    sole: bool,
}

/// The newest version of `key` in `tiers`' current segments (level 0 and the levels): a point
/// read per segment that may hold the key.
fn newest_current(tiers: &Tiers, key: &[u8]) -> Result<Option<NewestCurrent>> {
    let corrupt = |segment: &SegmentFile| {
        let file = segment.path().to_path_buf();
        move |corruption| Error::corruption(file, 0, corruption)
    };
    let mut newest: Option<(NewestCurrent, &Arc<SegmentFile>)> = None;
    let mut hits = 0u32;
    let per_level = tiers.levels.iter().filter_map(|level| level_segment(level, key));
    for segment in tiers.segments.iter().chain(per_level) {
        let Some(entry) = segment.get_at(key, Version::MAX).map_err(corrupt(segment))? else {
            continue;
        };
        hits = hits.saturating_add(1);
        if newest.is_none_or(|(found, _)| entry.version > found.version) {
            let (version, tombstone) = (entry.version, entry.value.is_none());
            newest = Some((NewestCurrent { version, tombstone, sole: false }, segment));
        }
    }
    let Some((mut found, segment)) = newest else { return Ok(None) };
    let below = Version::new(found.version.get().saturating_sub(1));
    let older_in_it = found.version > Version::ZERO
        && segment.get_at(key, below).map_err(corrupt(segment))?.is_some();
    found.sole = hits == 1 && !older_in_it;
    Ok(Some(found))
}

/// The horizon bookkeeping for the key being decided.
#[derive(Default)]
struct KeyHorizon {
    /// The version of the key fed before this one: the next newer.
    newer: Option<Version>,
    /// The largest "exact from" of the key's dropped puts so far: it becomes part of
    /// `Horizons::found` once an older version of the key is kept (a read finding that older
    /// version below it would be wrong).
    pending: Version,
}

/// The version after `version` (saturating).
fn version_after(version: Version) -> Version {
    Version::new(version.get().saturating_add(1))
}

impl Inner {
    /// One background compaction step, if one is due: a leveled step first, else a merge of
    /// small history segments. Returns whether it merged anything.
    pub(crate) fn compact_step(&self) -> Result<bool> {
        let tiers = self.tiers();
        if let Some(step) = pick_step(&tiers, &self.options) {
            self.run_step(&tiers, &step)?;
            return Ok(true);
        }
        let horizon = self.gc_policy().horizon();
        let user_bytes = self.counters.bytes_user.load(Ordering::Relaxed);
        let due =
            pick_history_gc(&tiers, &self.options, horizon, user_bytes, &self.pins.versions());
        let Some(inputs) = due.or_else(|| pick_history_window(&tiers, &self.options)) else {
            return Ok(false);
        };
        self.merge_history(&tiers, &inputs)?;
        Ok(true)
    }

    /// Passes every history segment there is now through GC (`Db::compact`), at most the
    /// fan-in at a time, neighbours in time; again while that leaves fewer segments than it
    /// found and they did not fit one merge (a merge keeps what versions outside it would let
    /// go). `Retention::All` drops nothing: it does nothing.
    fn gc_all_history(&self) -> Result<()> {
        if matches!(self.options.retention, Retention::All) {
            return Ok(());
        }
        let fan_in = self.options.compaction_fan_in as usize;
        loop {
            let history = self.tiers().history.clone();
            for window in history.chunks(fan_in) {
                self.merge_history(&self.tiers(), window)?;
            }
            if history.len() <= fan_in || self.tiers().history.len() >= history.len() {
                return Ok(());
            }
        }
    }

    /// Stamps new history segments with when GC should look at them again.
    fn stamp_history(&self, files: &[Arc<HistoryFile>], due: Version, pinned: Pinned) {
        let due = if due == Version::ZERO { Version::MAX } else { due };
        let user_bytes = self.counters.bytes_user.load(Ordering::Relaxed);
        if let Some((_, high)) = pinned {
            self.pinned_history_max.fetch_max(high.get(), Ordering::AcqRel);
        }
        for file in files {
            file.gc_stamp(|| GcStamp { due, user_bytes, pinned });
        }
    }

    /// How long the compaction thread may sleep before history GC is due by time alone
    /// (`Retention::Duration`: the horizon, now minus the age, reaches the earliest `due` of a
    /// history segment's stamp); `None` when nothing is due by time.
    pub(crate) fn history_gc_wait(&self) -> Option<Duration> {
        let Retention::Duration(age) = self.options.retention else { return None };
        let tiers = self.tiers();
        let user_bytes = self.counters.bytes_user.load(Ordering::Relaxed);
        let due = tiers
            .history
            .iter()
            .map(|h| h.gc_stamp(|| first_stamp(&tiers, user_bytes)).due)
            .filter(|due| *due != Version::MAX)
            .min()?;
        let at = due.to_system_time().checked_add(age)?;
        let wait = at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
        // A little past it, so that the horizon has reached it when the thread looks.
        Some(wait.saturating_add(HISTORY_GC_SLACK))
    }

    /// Merges history segments through GC into fewer (split at the target; none when GC drops
    /// every version). Each key's newest current version goes to `KeyGc` first: it is newer
    /// than every history version of the key and kept, so every drop rests on a newer kept
    /// version, as in a leveled step; versions in history segments outside the merge can only
    /// make it keep more. A key is at the bottom only when its newest current version is its
    /// only current one and no other history segment holds a version at or below the inputs'.
    fn merge_history(&self, tiers: &Tiers, inputs: &[Arc<HistoryFile>]) -> Result<()> {
        let started = Instant::now();
        let pins = self.pins.versions();
        let policy = self.gc_policy();
        let policy = policy.with_pins(&pins).expect("pins are sorted").with_bottom(false);
        let bottom = policy.with_bottom(true);
        let bottom = history_is_bottom(tiers, inputs).then_some(&bottom);
        let sources = inputs.iter().map(|file| file.segment().iter_key_order());
        let merged =
            MergeVec::from_sources(sources, KeyOrder).expect("inputs are capped at the fan-in");
        let mut outputs = Outputs::new(self, 1);
        let mut router = Router::for_history(&policy, bottom, tiers);
        let file = || inputs.first().map(|f| f.path().to_path_buf()).unwrap_or_default();
        for (index, entry) in (0u64..).zip(merged) {
            self.check_cancelled(index)?;
            let entry = entry.map_err(|corruption| Error::corruption(file(), 0, corruption))?;
            router.feed(entry, &mut outputs).map_err(|error| match error {
                RouteError::Order(what) => Error::Corruption { file: file(), offset: 0, what },
                RouteError::Write(error) => error,
            })?;
        }
        router.finish_key(&mut outputs)?;
        // Older versions of the inputs' keys may lie outside them (in deeper levels).
        let horizons = Horizons { all: router.horizons.all, found: router.horizons.all };
        let (history_due, pinned) = (router.history_due, router.pinned);
        let (current, history, new_files) = outputs.finish()?;
        assert!(current.is_empty(), "a history merge writes history only");
        if !history.is_empty() {
            self.io.sync_dir(&self.dir)?;
        }
        let history_files = history
            .iter()
            .map(|meta| HistoryFile::open(&self.io, &self.dir, *meta).map(Arc::new))
            .collect::<Result<Vec<_>>>()?;
        self.stamp_history(&history_files, history_due, pinned);
        new_files.keep();
        let merged = Transition::HistoryMerged { inputs, outputs: &history_files, horizons };
        if let Err(error) = self.state.install(merged) {
            return Err(self.fail(format!("manifest update after compaction failed: {error}")));
        }
        self.counters.compactions.fetch_add(1, Ordering::Relaxed);
        ::log::info!(
            "zverse: merged {} history segments into {} in {:?}",
            inputs.len(),
            history_files.len(),
            started.elapsed()
        );
        for input in inputs {
            input.retire();
        }
        Ok(())
    }

    /// `Db::compact`: moves every current segment there is now to the deepest level (level 1
    /// at least) through GC: level 0 in steps of at most `LEVEL_0_STEP_SEGMENTS_MAX` segments,
    /// each level one segment at a time.
    pub(crate) fn compact_all(&self) -> Result<()> {
        loop {
            let tiers = self.tiers();
            if tiers.segments.is_empty() {
                break;
            }
            let step = step_into(&tiers, oldest_level_0(&tiers), 1);
            self.run_step(&tiers, &step.expect("level 0 is not empty"))?;
        }
        let deepest = u8::try_from(self.tiers().levels.len()).unwrap_or(LEVEL_COUNT_MAX);
        for level in 1..deepest {
            loop {
                let tiers = self.tiers();
                let Some(oldest) = level_of(&tiers, level).first().cloned() else { break };
                let step = step_into(&tiers, vec![oldest], level + 1);
                self.run_step(&tiers, &step.expect("one segment"))?;
            }
        }
        self.gc_all_history()
    }

    /// Merges the step's inputs into current and history outputs and installs them.
    fn run_step(&self, tiers: &Tiers, step: &Step) -> Result<()> {
        let started = Instant::now();
        let inputs = step.inputs();
        let pins = self.pins.versions();
        let policy = self.gc_policy();
        let policy = policy.with_pins(&pins).expect("pins are sorted");
        let policy = policy.with_bottom(is_bottom(tiers, &inputs));
        let mut outputs = Outputs::new(self, step.level);
        let (mut horizons, history_due, pinned) = self.merge_step(step, &policy, &mut outputs)?;
        if !policy.bottom() {
            // Older versions of the inputs' keys may lie outside them: any drop may hide one
            // from a read that finds an older version.
            horizons.found = horizons.all;
        }
        let (current, history, new_files) = outputs.finish()?;
        if !current.is_empty() || !history.is_empty() {
            self.io.sync_dir(&self.dir)?;
        }
        let current_files = self.open_new_segments(&current)?;
        let history_files = history
            .iter()
            .map(|meta| HistoryFile::open(&self.io, &self.dir, *meta).map(Arc::new))
            .collect::<Result<Vec<_>>>()?;
        self.stamp_history(&history_files, history_due, pinned);
        self.install_compaction(&inputs, &current_files, &history_files, new_files, horizons)?;
        self.count_step(&inputs, &current, &history, step.level, started);
        for input in &inputs {
            input.retire();
        }
        Ok(())
    }

    fn count_step(
        &self,
        inputs: &[Arc<SegmentFile>],
        current: &[SegmentMeta],
        history: &[SegmentMeta],
        level: u8,
        started: Instant,
    ) {
        self.counters.compactions.fetch_add(1, Ordering::Relaxed);
        let bytes_in: u64 = inputs.iter().map(|s| s.meta().file_bytes).sum();
        let bytes_out: u64 = current.iter().map(|m| m.file_bytes).sum();
        let bytes_demoted: u64 = history.iter().map(|m| m.file_bytes).sum();
        self.counters.bytes_demoted.fetch_add(bytes_demoted, Ordering::Relaxed);
        self.counters.bytes_written_segments.fetch_add(bytes_demoted, Ordering::Relaxed);
        ::log::info!(
            "zverse: compacted {} segments ({bytes_in} bytes) into {} of level {level} \
             ({bytes_out} bytes) and {} of history ({bytes_demoted} bytes) in {:?}",
            inputs.len(),
            current.len(),
            history.len(),
            started.elapsed()
        );
    }

    fn gc_policy(&self) -> GcPolicy<'static> {
        match self.options.retention {
            Retention::All => GcPolicy::keep_all(),
            Retention::Duration(age) => {
                let horizon = SystemTime::now().checked_sub(age).unwrap_or(SystemTime::UNIX_EPOCH);
                GcPolicy::new(Version::from_system_time(horizon), 0)
            }
            Retention::Versions(count) => GcPolicy::new(Version::MAX, count),
        }
    }

    /// Fails with `Closed` once the database is closing, so that `close` does not wait for a
    /// whole compaction; checked every [`CANCEL_CHECK_ENTRIES`] entries.
    fn check_cancelled(&self, entry_count: u64) -> Result<()> {
        if entry_count.is_multiple_of(CANCEL_CHECK_ENTRIES) && self.is_closing() {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Swaps the inputs for the outputs in the manifest and the tiers.
    fn install_compaction(
        &self,
        inputs: &[Arc<SegmentFile>],
        outputs: &[Arc<SegmentFile>],
        history: &[Arc<HistoryFile>],
        new_files: NewFiles<'_>,
        horizons: Horizons,
    ) -> Result<()> {
        // From here the manifest may name the new files, whatever the write's outcome.
        new_files.keep();
        let compacted = Transition::Compacted { inputs, outputs, history, horizons };
        if let Err(error) = self.state.install(compacted) {
            // The new manifest may or may not be on disk: keep every file, refuse writes.
            return Err(self.fail(format!("manifest update after compaction failed: {error}")));
        }
        self.wake_stalled_writers();
        Ok(())
    }

    /// Merges the step's inputs in key order, decides every version and routes the survivors.
    fn merge_step<'a>(
        &self,
        step: &'a Step,
        policy: &GcPolicy<'_>,
        outputs: &mut Outputs<'_>,
    ) -> Result<(Horizons, Version, Pinned)> {
        let inputs = step.inputs();
        let everything: &'static Option<ZBox> = &EVERYTHING;
        let mut sources: Vec<Box<dyn Iterator<Item = EntryResult<'a>> + 'a>> = Vec::new();
        for file in &step.upper {
            let advice = file.scan_advice(everything.as_ref(), ScanPurpose::Maintenance);
            sources.push(Box::new(Advised::new(file.segment().iter_key_order(), advice)));
        }
        let lower = step.lower.iter().flat_map(|file| {
            let advice = file.scan_advice(everything.as_ref(), ScanPurpose::Maintenance);
            Advised::new(file.segment().iter_key_order(), advice)
        });
        sources.push(Box::new(lower));
        let merged =
            MergeVec::from_sources(sources, KeyOrder).expect("inputs are capped at the fan-in");
        let mut router = Router::new(policy);
        for (index, entry) in (0u64..).zip(merged) {
            self.check_cancelled(index)?;
            let entry = entry.map_err(|corruption| input_corruption(&inputs, corruption))?;
            router.feed(entry, outputs).map_err(|error| match error {
                RouteError::Order(what) => Error::Corruption {
                    file: inputs.first().map(|f| f.path().to_path_buf()).unwrap_or_default(),
                    offset: 0,
                    what,
                },
                RouteError::Write(error) => error,
            })?;
        }
        router.finish_key(outputs)?;
        let horizons = router.horizons;
        assert!(horizons.found <= horizons.all, "a found read's horizon is within the horizon");
        Ok((horizons, router.history_due, router.pinned))
    }
}

type EntryResult<'a> = std::result::Result<Entry<'a>, Corruption>;

/// Why routing an entry failed.
enum RouteError {
    /// A version appears twice across the inputs.
    Order(String),
    Write(Error),
}

impl From<Error> for RouteError {
    fn from(error: Error) -> RouteError {
        RouteError::Write(error)
    }
}

/// A version whose fate `KeyGc` decides later.
enum Deferred<'a> {
    /// An input version: whether it was the key's first, and the version fed before it (its
    /// key's next newer), if any.
    Input { entry: Entry<'a>, first: bool, newer: Option<Version> },
    /// The key's newest current version (a history merge): not an input.
    Current,
}

/// Feeds each key's versions to `KeyGc` and sends the survivors to the outputs: the key's
/// first survivor to the current output, the others to history.
struct Router<'p, 'a> {
    policy: &'p GcPolicy<'p>,
    /// The key being decided and its GC.
    gc: Option<KeyGc<'p>>,
    key: Vec<u8>,
    /// Whether the key's current version was written.
    current_written: bool,
    /// Whether no version of the key was fed yet.
    first: bool,
    /// A version whose fate waits for the next one.
    deferred: Option<Deferred<'a>>,
    key_horizon: KeyHorizon,
    horizons: Horizons,
    /// When history GC may next drop a version this router sent to history: the newest
    /// "next newer version" of a kept history version above the policy's horizon
    /// (`Version::MAX`: never known; `Version::ZERO`: none sent).
    history_due: Version,
    /// The versions of the pins that kept a version this router sent to history (see
    /// `GcStamp::pinned`).
    pinned: Pinned,
    /// For a history merge, the tiers whose current segments hold each key's newest version:
    /// it is fed first, never written, and every input version is history.
    current_of: Option<&'a Tiers>,
    /// For a history merge, the policy at the bottom, when the merge may be it.
    bottom_policy: Option<&'p GcPolicy<'p>>,
    /// Whether the key being decided is at the bottom (a history merge).
    key_bottom: bool,
}

impl<'p, 'a> Router<'p, 'a> {
    fn new(policy: &'p GcPolicy<'p>) -> Router<'p, 'a> {
        Router {
            policy,
            gc: None,
            key: Vec::new(),
            current_written: false,
            first: true,
            deferred: None,
            key_horizon: KeyHorizon::default(),
            horizons: Horizons::default(),
            history_due: Version::ZERO,
            pinned: None,
            current_of: None,
            bottom_policy: None,
            key_bottom: false,
        }
    }

    /// A router for a history merge: each key's newest version in `tiers`' current segments
    /// goes to `KeyGc` first, as the newer kept version it is. `bottom`: the same policy at
    /// the bottom, when no history segment outside the merge holds a version at or below the
    /// inputs' newest; a key is then at the bottom when its newest current version is its only
    /// one.
    fn for_history(
        policy: &'p GcPolicy<'p>,
        bottom: Option<&'p GcPolicy<'p>>,
        tiers: &'a Tiers,
    ) -> Router<'p, 'a> {
        Router { current_of: Some(tiers), bottom_policy: bottom, ..Router::new(policy) }
    }

    /// Starts deciding `entry`'s key; in a history merge, feeds the key's newest current
    /// version first (when newer than `entry`, as the tiers' invariant says it is; when not,
    /// `entry` is treated as the key's first and kept).
    fn start_key(&mut self, entry: &Entry<'a>) -> Result<(), RouteError> {
        self.key.clear();
        self.key.extend_from_slice(entry.key);
        self.current_written = false;
        self.first = true;
        self.key_bottom = false;
        self.key_horizon = KeyHorizon::default();
        let Some(tiers) = self.current_of else {
            self.gc = Some(KeyGc::new(self.policy));
            return Ok(());
        };
        self.current_written = true;
        if self.policy.horizon() == Version::ZERO {
            // `Retention::All`: every version stays, no lookup needed.
            self.gc = Some(KeyGc::new(self.policy));
            return Ok(());
        }
        let current = newest_current(tiers, entry.key)?.filter(|c| c.version > entry.version);
        let Some(current) = current else {
            self.gc = Some(KeyGc::new(self.policy));
            return Ok(());
        };
        self.key_bottom = current.sole && self.bottom_policy.is_some();
        let policy = if self.key_bottom { self.bottom_policy } else { None };
        let gc = self.gc.insert(KeyGc::new(policy.unwrap_or(self.policy)));
        let step = gc.decide(current.version, current.tombstone).map_err(|error| {
            RouteError::Order(format!("a current version out of order in history GC: {error}"))
        })?;
        if step.decision.is_none() {
            self.deferred = Some(Deferred::Current);
        }
        self.first = false;
        self.key_horizon.newer = Some(current.version);
        Ok(())
    }

    /// Settles the deferred version with `decision`.
    fn settle(&mut self, decision: Decision, outputs: &mut Outputs<'_>) -> Result<()> {
        let Some(Deferred::Input { entry, first, newer }) = self.deferred.take() else {
            // The key's current version, or nothing: not this merge's to write.
            return Ok(());
        };
        let newer = std::mem::replace(&mut self.key_horizon.newer, newer);
        let routed = self.route(entry, first, decision, true, outputs);
        self.key_horizon.newer = newer;
        routed
    }

    fn feed(&mut self, entry: Entry<'a>, outputs: &mut Outputs<'_>) -> Result<(), RouteError> {
        if self.gc.is_none() || self.key.as_slice() != entry.key {
            self.finish_key(outputs)?;
            self.start_key(&entry)?;
        }
        let gc = self.gc.as_mut().expect("set above");
        let step = gc.decide(entry.version, entry.value.is_none()).map_err(|error| {
            RouteError::Order(format!("a version appears twice across compaction inputs: {error}"))
        })?;
        let first = std::mem::replace(&mut self.first, false);
        if let Some(decision) = step.settled {
            self.settle(decision, outputs)?;
        }
        if let Some(decision) = step.decision {
            self.route(entry, first, decision, false, outputs)?;
        } else {
            let newer = self.key_horizon.newer;
            self.deferred = Some(Deferred::Input { entry, first, newer });
        }
        self.key_horizon.newer = Some(entry.version);
        Ok(())
    }

    /// Settles the key being decided, if any.
    fn finish_key(&mut self, outputs: &mut Outputs<'_>) -> Result<()> {
        let Some(gc) = self.gc.take() else { return Ok(()) };
        if let Some(decision) = gc.finish() {
            self.settle(decision, outputs)?;
        }
        Ok(())
    }

    /// Sends `entry` where `decision` says; `first`: the key's first version among the
    /// inputs, kept unless at the bottom; `was_deferred`: a tombstone decided late.
    fn route(
        &mut self,
        entry: Entry<'a>,
        first: bool,
        decision: Decision,
        was_deferred: bool,
        outputs: &mut Outputs<'_>,
    ) -> Result<()> {
        // In a history merge, a tombstone rule 5 of `KeyGc` would drop stays: current
        // versions older than it (in deeper levels) may lie between it and the older
        // tombstone that was to answer for it.
        let late_tombstone = was_deferred && self.current_of.is_some() && !self.key_bottom;
        let keep = decision == Decision::Keep || (first && !self.policy.bottom()) || late_tombstone;
        if !keep {
            self.count_drop(&entry, was_deferred);
            return Ok(());
        }
        if decision == Decision::Keep {
            self.horizons.found = self.horizons.found.max(self.key_horizon.pending);
        }
        if self.current_written {
            self.note_history_due();
            self.note_pinned(entry.version);
            outputs.history(entry)
        } else {
            self.current_written = true;
            outputs.current(entry)
        }
    }

    /// Counts a version kept in history: GC can drop it only once the horizon passes its
    /// key's next newer version (when that is at or below the horizon now, a pin or a late
    /// tombstone keeps it, and no horizon alone will let it go).
    fn note_history_due(&mut self) {
        let due = self.key_horizon.newer.unwrap_or(Version::MAX);
        if due > self.policy.horizon() {
            self.history_due = self.history_due.max(due);
        }
    }

    /// Counts a version kept in history that a live pin may be keeping: one in
    /// `[version, next newer)` selects it (rule 3 of `KeyGc`). Once no live pin lies in the
    /// range this adds, the segment is due (a version kept for another reason stays, and its
    /// new segment is stamped without it: no pin selects it any more).
    fn note_pinned(&mut self, version: Version) {
        let newer = self.key_horizon.newer.unwrap_or(Version::MAX);
        let pins = self.policy.pins();
        let first_at_or_above = pins.partition_point(|pin| *pin < version);
        if pins.get(first_at_or_above).is_none_or(|pin| *pin >= newer) {
            return;
        }
        self.pinned = Some(match self.pinned {
            Some((low, high)) => (low.min(version), high.max(newer)),
            None => (version, newer),
        });
    }

    /// Raises the horizons past a dropped version.
    fn count_drop(&mut self, entry: &Entry<'a>, was_deferred: bool) {
        // A version dropped as it was fed answered reads up to the next newer version of its
        // key: a tombstone too, since an older put may survive it (a pin keeps it, or it lies
        // outside the inputs). A tombstone dropped late (`KeyGc` rule 5) answered `None`, still
        // answered by the older tombstone or by nothing; `changes` no longer lists it.
        let exact_from = match (self.key_horizon.newer, was_deferred) {
            (Some(newer), false) => {
                self.key_horizon.pending = self.key_horizon.pending.max(newer);
                newer
            }
            _ => version_after(entry.version),
        };
        self.horizons.all = self.horizons.all.max(exact_from);
    }
}

/// The current output (a `SegmentWriter` in key order, split at the target between keys) and
/// the history output (one `HistoryBuilder` at a time) of a step.
struct Outputs<'i> {
    inner: &'i Inner,
    level: u8,
    current: SegmentWriter<'i>,
    history: Option<HistoryOutput>,
    history_metas: Vec<SegmentMeta>,
    history_files: NewFiles<'i>,
}

/// A history segment being built.
struct HistoryOutput {
    builder: HistoryBuilder,
    payload_bytes: u64,
    version_min: Version,
    version_max: Version,
}

impl<'i> Outputs<'i> {
    fn new(inner: &'i Inner, level: u8) -> Outputs<'i> {
        let allocate = Box::new(|| inner.allocate_file_number());
        let limits = writer_limits(&inner.options);
        let current = SegmentWriter::new(inner.io.as_ref(), &inner.dir, allocate, limits);
        Outputs {
            inner,
            level,
            current: current.with_order(SegmentOrder::Key),
            history: None,
            history_metas: Vec::new(),
            history_files: NewFiles::new(inner.io.as_ref()),
        }
    }

    /// A key's current version (keys ascending).
    fn current(&mut self, entry: Entry<'_>) -> Result<()> {
        self.current.add(&entry)
    }

    /// A demoted version, in key order (versions of a key newest first).
    fn history(&mut self, entry: Entry<'_>) -> Result<()> {
        let target = self.inner.options.segment_bytes_target;
        if self.history.as_ref().is_some_and(|h| h.builder.data_bytes() >= target) {
            self.finish_history()?;
        }
        let output = self.history.get_or_insert_with(|| {
            let options = HistoryOptions::default()
                .with_block_bytes_target(self.inner.options.segment_block_bytes as usize);
            HistoryOutput {
                builder: HistoryBuilder::new(options),
                payload_bytes: 0,
                version_min: Version::MAX,
                version_max: Version::ZERO,
            }
        });
        output
            .builder
            .add::<std::io::Error>(entry.key, entry.version, entry.value)
            .map_err(build_error)?;
        output.payload_bytes += (entry.key.len() + entry.value.map_or(0, <[u8]>::len)) as u64;
        output.version_min = output.version_min.min(entry.version);
        output.version_max = output.version_max.max(entry.version);
        Ok(())
    }

    /// Writes the history segment being built to a new file, synced.
    fn finish_history(&mut self) -> Result<()> {
        let Some(output) = self.history.take() else { return Ok(()) };
        let number = self.inner.allocate_file_number();
        let path = self.inner.dir.join(segment_file_name(number));
        let mut sink = self.history_files.create(path)?;
        let summary = output.builder.finish(&mut sink).map_err(build_error)?;
        sink.finish()?;
        self.history_metas.push(SegmentMeta {
            file_number: number,
            entry_count: summary.entry_count,
            file_bytes: summary.file_len,
            payload_bytes: output.payload_bytes,
            version_min: output.version_min,
            version_max: output.version_max,
            tier: Tier::History,
        });
        Ok(())
    }

    /// Finishes every output: the current segments (of the step's level) and the history
    /// segments, synced, and their files (removed when dropped unless kept).
    fn finish(mut self) -> Result<(Vec<SegmentMeta>, Vec<SegmentMeta>, NewFiles<'i>)> {
        self.finish_history()?;
        let (mut current, mut current_files) = self.current.finish()?;
        for meta in &mut current {
            meta.tier = Tier::Level(self.level);
        }
        current_files.adopt(self.history_files);
        Ok((current, self.history_metas, current_files))
    }
}

fn build_error(error: BuildError<std::io::Error>) -> Error {
    match error {
        BuildError::Sink(error) => Error::Io(error),
        BuildError::Limit(limit) => limit.into(),
        other => {
            // Entries come from a key-order merge of checked segments: anything else is a
            // broken invariant.
            panic!("history segment build failed on engine-produced input: {other}")
        }
    }
}

/// Orders segments newest first: by their newest version, then file number.
pub(crate) fn sort_newest_first(segments: &mut [Arc<SegmentFile>]) {
    segments.sort_by(|a, b| {
        let key = |s: &Arc<SegmentFile>| (s.meta().version_max, s.meta().file_number);
        key(b).cmp(&key(a))
    });
}

/// A corruption found while reading compaction inputs. The merge does not say which input
/// failed; the first input's name and the offset in its file point the way.
fn input_corruption(inputs: &[Arc<SegmentFile>], corruption: zverse_core::Corruption) -> Error {
    let file = inputs.first().map(|f| f.path().to_path_buf()).unwrap_or_default();
    Error::corruption(file, 0, corruption)
}

#[cfg(all(test, not(loom)))]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use std::sync::Arc;

    use crate::tiers::Tiers;
    use crate::{Db, Durability, Options};

    /// Level 0 at its trigger does not starve a level past its target: the tier furthest
    /// past its own trigger goes first. Before scoring, level 0 always went first, and at
    /// 24 GiB level 1 grew to 10x its target (every level-0 step then rewrote all of it).
    #[test]
    fn the_tier_most_past_its_trigger_is_compacted_first() {
        assert_eq!(super::most_due(&[1_000, 10_000, 0]), Some(1), "level 1 at 10x");
        assert_eq!(super::most_due(&[4_000, 1_500, 900]), Some(0), "level 0 at 4x");
        assert_eq!(super::most_due(&[1_000, 1_000]), Some(0), "the shallowest of equals");
        assert_eq!(super::most_due(&[500, 999, 0]), None, "nothing due");
        assert_eq!(super::most_due(&[0, 0, 2_000]), Some(2));
        assert_eq!(super::most_due(&[]), None);
    }

    /// A database whose keys `k{index:04}` for `indexes`, with 100-byte values, all lie in its
    /// deepest level after `compact` (several key-disjoint segments).
    fn compacted(indexes: std::ops::Range<u32>) -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), options()).unwrap();
        for index in indexes {
            db.put(format!("k{index:04}").as_bytes(), &[b'v'; 100]).unwrap();
        }
        db.compact().unwrap();
        (dir, db)
    }

    /// A level's step into the next takes its segment that meets the fewest bytes below (the
    /// oldest one, which the step took before, meets the most here).
    #[test]
    fn a_level_step_takes_the_least_overlapping_segment() {
        let (_upper_dir, upper_db) = compacted(0..200);
        let (_lower_dir, lower_db) = compacted(0..100);
        let upper = upper_db.inner.tiers().levels.last().unwrap().clone();
        let lower = lower_db.inner.tiers().levels.last().unwrap().clone();
        assert!(upper.len() >= 3 && lower.len() >= 2, "{} {}", upper.len(), lower.len());
        let lower_last = lower.last().unwrap().key_last().to_vec();
        let memtable = Arc::new(crate::memtable::Memtable::new(1));
        let tiers = Tiers::new(memtable, vec![], vec![], vec![upper.clone(), lower], vec![]);
        let picked = super::least_overlapping(&tiers, 1).unwrap();
        assert!(picked.key_first() > lower_last.as_slice(), "it meets nothing below");
        let beyond = upper.iter().filter(|s| s.key_first() > lower_last.as_slice());
        let oldest_beyond = beyond.min_by_key(|s| s.meta().file_number).unwrap();
        assert!(Arc::ptr_eq(&picked, oldest_beyond), "the oldest of equals");
    }

    fn options() -> Options {
        Options::default()
            .durability(Durability::None)
            .memtable_bytes_max(4 << 10)
            .segment_block_bytes(256)
            .segment_bytes_target(4 << 10)
            .level_base_bytes(8 << 10)
            .level_size_ratio(2)
            .compaction_trigger_segments(2)
    }

    /// After background steps and a full compaction, every current level is sorted by key
    /// with disjoint key bounds, and each of its segments holds one version per key.
    #[test]
    fn levels_stay_key_disjoint_with_one_version_per_key() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), options()).unwrap();
        let check = |db: &Db| {
            let tiers = db.inner.tiers();
            for (index, level) in tiers.levels.iter().enumerate() {
                for pair in level.windows(2) {
                    assert!(pair[0].key_last() < pair[1].key_first(), "level {}", index + 1);
                }
                for segment in level {
                    let reader = segment.segment();
                    assert_eq!(reader.key_count(), reader.entry_count(), "one version per key");
                    assert!(segment.key_first() <= segment.key_last());
                }
            }
            tiers.levels.len()
        };
        for round in 0..12u32 {
            for index in (0..600u32).filter(|i| (i + round) % 3 != 0) {
                let key = format!("k{:04}", index * 7919 % 1000);
                if index % 11 == round % 11 {
                    db.delete(key.as_bytes()).unwrap();
                } else {
                    db.put(key.as_bytes(), format!("{round}:{index:024}").as_bytes()).unwrap();
                }
            }
            db.flush().unwrap();
            check(&db);
        }
        db.compact().unwrap();
        assert!(check(&db) >= 2, "{:?}", db.stats());
        let tiers = db.inner.tiers();
        assert!(tiers.segments.is_empty(), "level 0 is empty after compact");
        let (bottom, above) = tiers.levels.split_last().unwrap();
        assert!(above.iter().all(Vec::is_empty) && !bottom.is_empty(), "all in the bottom");
    }
}
