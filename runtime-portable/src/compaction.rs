//! Compaction and GC: merge a few segments into new ones of at most the target size,
//! dropping the versions retention lets go.
//!
//! Versions of one key are not adjacent in Z order, so survivors cannot be decided while
//! streaming Z order. Pass 1 merges the inputs in key order and feeds each key's versions to
//! `zverse_core::merge::KeyGc`, which decides per version (retention, live snapshots,
//! tombstones at the bottom). Pass 2 merges the inputs in Z order and streams the survivors
//! into a `SegmentWriter`, which splits them into segments at `segment_bytes_target`.
//!
//! **Which segments.** Segments are time partitions: a flush covers the versions of one
//! memtable, and a merge covers the union of its inputs. Segments below the target size
//! (*open* segments) are merged, the newest first, in windows of at most `compaction_fan_in`
//! where each next segment is at most twice the window so far (so small flushes merge with
//! each other before they merge into a big segment, as in RocksDB's universal compaction); a
//! merge writes full segments and at most one open remainder, so every step lowers the count
//! of open segments and the work of a step is bounded by `fan_in x target`. *Full* segments
//! (at the target, or split for their metadata) are left alone by the background work: they
//! are rewritten only by `Db::compact`, which passes every segment through GC in steps of at
//! most `fan_in` segments, oldest first, carrying the open remainder of each step into the
//! next.
//!
//! **Why GC is exact for any set of inputs.** Every rule of `KeyGc` only drops a version when a
//! newer version of the same key that makes it unreadable is among the inputs and kept, so a
//! version outside the inputs can only make it keep more. The one exception is a tombstone
//! with nothing below it ("bottom"): that is decided only when no segment outside the inputs
//! holds a version at or below the inputs' newest (`is_bottom`).
//!
//! Memory of a step: one block per input (mapped), the writer's buffer and the metadata of
//! one output segment (bounded by the options), and the dropped entries (4 bytes each, by
//! their offset in their input; empty for `Retention::All`), at most a sixth of the metadata
//! bound per input.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use zverse_core::merge::{Decision, GcPolicy, KeyGc, KeyOrder, MergeVec, ZOrder};
use zverse_core::segment::{KEY_REF_BYTES, Segment};
use zverse_core::zkey::ZBox;
use zverse_core::{Entry, Version};

use crate::error::{Error, Result};
use crate::inner::Inner;
use crate::locality::{Advised, ScanPurpose};
use crate::manifest::SegmentMeta;
use crate::options::{Options, Retention};
use crate::segment_file::SegmentFile;
use crate::segment_writer::{NewFiles, SegmentWriter};
use crate::state::Transition;
use crate::sync::lock;
use crate::tiers::Tiers;

/// The entries pass 1 dropped, by where they are: per input, the file offsets of their keys
/// (unique per entry), sorted once pass 1 is done. 4 bytes per dropped entry; a segment holds
/// at most `segment_metadata_bytes_max / KEY_REF_BYTES` entries (the writer's split rule), so
/// a step's set is at most `fan_in / 6` of that.
struct Dropped {
    /// The address range of each input's mapped bytes.
    inputs: Vec<std::ops::Range<usize>>,
    offsets: Vec<Vec<u32>>,
}

impl Dropped {
    fn new(inputs: &[Arc<SegmentFile>]) -> Dropped {
        let inputs: Vec<_> = inputs.iter().map(|input| address_range(input.bytes())).collect();
        let offsets = vec![Vec::new(); inputs.len()];
        Dropped { inputs, offsets }
    }

    /// Which input `key` (a slice of an input's mapped bytes) is in, and at which offset.
    fn locate(&self, key: &[u8]) -> (usize, u32) {
        let address = key.as_ptr().addr();
        let input =
            self.inputs.iter().position(|range| range.start <= address && address < range.end);
        let input = input.expect("merged entries are zero-copy slices of the inputs");
        let offset = address - self.inputs[input].start;
        (input, u32::try_from(offset).expect("segments are under 4 GiB"))
    }

    fn insert(&mut self, (input, offset): (usize, u32)) {
        self.offsets[input].push(offset);
    }

    /// Sorts the offsets, for [`Dropped::contains`].
    fn seal(&mut self) {
        for offsets in &mut self.offsets {
            offsets.sort_unstable();
        }
    }

    fn is_empty(&self) -> bool {
        self.offsets.iter().all(Vec::is_empty)
    }

    fn contains(&self, key: &[u8]) -> bool {
        let (input, offset) = self.locate(key);
        self.offsets[input].binary_search(&offset).is_ok()
    }
}

/// The addresses `bytes` occupies, one past its end included (an empty key at the very end).
fn address_range(bytes: &[u8]) -> std::ops::Range<usize> {
    let start = bytes.as_ptr().addr();
    start..start + bytes.len() + 1
}

/// Entries between two checks of whether the database is closing.
const CANCEL_CHECK_ENTRIES: u64 = 4096;

/// Whether a segment is full: at the target size, or split for its metadata (which the
/// manifest entry bounds from above: it counts keys with their values). Full segments are not
/// merged by the background work.
pub(crate) fn is_full(meta: &SegmentMeta, options: &Options) -> bool {
    let metadata_bytes =
        meta.entry_count.saturating_mul(KEY_REF_BYTES as u64).saturating_add(meta.payload_bytes);
    meta.file_bytes >= options.segment_bytes_target
        || metadata_bytes >= options.segment_metadata_bytes_max()
}

/// The background step: indexes into `sizes` (the open segments' file bytes, newest first) of
/// the window to merge, or `None` while fewer than `trigger` segments are open.
pub(crate) fn pick_window(sizes: &[u64], trigger: usize, fan_in: usize) -> Option<(usize, usize)> {
    assert!(fan_in >= 2, "the options keep the fan-in at 2 or more");
    if sizes.len() < trigger.max(2) {
        return None;
    }
    for start in 0..sizes.len() - 1 {
        let mut window_bytes = sizes[start];
        let mut end = start + 1;
        while end < sizes.len() && end - start < fan_in && sizes[end] <= window_bytes * 2 {
            window_bytes += sizes[end];
            end += 1;
        }
        if end - start >= 2 {
            return Some((start, end));
        }
    }
    // Sizes that more than double at every step: merge the newest ones.
    Some((0, sizes.len().min(fan_in)))
}

/// Whether GC may treat `inputs` as the bottom: no other segment holds a version at or below
/// their newest.
fn is_bottom(all: &[Arc<SegmentFile>], inputs: &[Arc<SegmentFile>]) -> bool {
    let input_max = inputs.iter().map(|s| s.meta().version_max).max().unwrap_or(Version::ZERO);
    all.iter()
        .filter(|s| !inputs.iter().any(|input| Arc::ptr_eq(s, input)))
        .all(|s| s.meta().version_min > input_max)
}

/// What a compaction's drops leave exact (the manifest's `horizon` and `horizon_found`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Horizons {
    /// Every read at or above it is exact, every `changes` window from it complete.
    pub all: Version,
    /// A point read at or above it that finds a retained version is exact.
    pub found: Version,
}

/// The horizon bookkeeping of pass 1 for the key being decided.
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
    /// One background compaction step, if the open segments reached the trigger. Returns
    /// whether it merged anything.
    pub(crate) fn compact_step(&self) -> Result<bool> {
        let tiers = self.tiers();
        let open: Vec<&Arc<SegmentFile>> =
            tiers.segments.iter().filter(|s| !is_full(s.meta(), &self.options)).collect();
        let sizes: Vec<u64> = open.iter().map(|s| s.meta().file_bytes).collect();
        let trigger = self.options.compaction_trigger_segments as usize;
        let fan_in = self.options.compaction_fan_in as usize;
        let Some((start, end)) = pick_window(&sizes, trigger, fan_in) else { return Ok(false) };
        let inputs: Vec<Arc<SegmentFile>> =
            open[start..end].iter().map(|s| Arc::clone(s)).collect();
        self.merge_segments(&tiers, &inputs)?;
        Ok(true)
    }

    /// `Db::compact`: passes every segment there is now through GC, oldest first, in steps of
    /// at most the fan-in, carrying each step's open remainder into the next.
    pub(crate) fn compact_all(&self) -> Result<()> {
        let mut todo: Vec<Arc<SegmentFile>> = self.tiers().segments.clone();
        let fan_in = self.options.compaction_fan_in as usize;
        let mut carry: Vec<Arc<SegmentFile>> = Vec::new();
        while !todo.is_empty() {
            // `todo` is newest first: take from its end.
            let take = fan_in.saturating_sub(carry.len()).max(1).min(todo.len());
            let mut inputs = std::mem::take(&mut carry);
            inputs.extend(todo.drain(todo.len() - take..));
            let tiers = self.tiers();
            let outputs = self.merge_segments(&tiers, &inputs)?;
            carry = outputs.into_iter().filter(|s| !is_full(s.meta(), &self.options)).collect();
        }
        Ok(())
    }

    /// Merges `inputs` (segments of `tiers`) into new segments and installs them. Returns the
    /// new segments.
    fn merge_segments(
        &self,
        tiers: &Tiers,
        inputs: &[Arc<SegmentFile>],
    ) -> Result<Vec<Arc<SegmentFile>>> {
        let started = Instant::now();
        let pins: Vec<Version> = lock(&self.pins).keys().copied().collect();
        let policy = self.gc_policy();
        let policy = policy.with_pins(&pins).expect("BTreeMap keys are sorted");
        let policy = policy.with_bottom(is_bottom(&tiers.segments, inputs));
        let segments: Vec<&Segment<'_>> = inputs.iter().map(|file| file.segment()).collect();
        let (dropped, mut horizons) = self.decide_survivors(inputs, &segments, &policy)?;
        if !policy.bottom() {
            // Older versions of the inputs' keys may lie outside them: any drop may hide one
            // from a read that finds an older version.
            horizons.found = horizons.all;
        }
        let mut writer = self.segment_writer();
        self.write_survivors(inputs, &segments, &dropped, &mut writer)?;
        let (metas, new_files) = writer.finish()?;
        if !metas.is_empty() {
            self.io.sync_dir(&self.dir)?;
        }
        let outputs = self.open_new_segments(&metas)?;
        self.install_compaction(inputs, &outputs, new_files, horizons)?;
        self.counters.compactions.fetch_add(1, Ordering::Relaxed);
        let bytes_in: u64 = inputs.iter().map(|s| s.meta().file_bytes).sum();
        let bytes_out: u64 = metas.iter().map(|m| m.file_bytes).sum();
        ::log::info!(
            "zverse: compacted {} segments ({bytes_in} bytes) into {} ({bytes_out} bytes) in {:?}",
            inputs.len(),
            outputs.len(),
            started.elapsed()
        );
        for input in inputs {
            input.retire();
        }
        Ok(outputs)
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
        new_files: NewFiles<'_>,
        horizons: Horizons,
    ) -> Result<()> {
        // From here the manifest may name the new files, whatever the write's outcome.
        new_files.keep();
        let compacted = Transition::Compacted { inputs, outputs, horizons };
        if let Err(error) = self.state.install(compacted) {
            // The new manifest may or may not be on disk: keep every file, refuse writes.
            return Err(self.fail(format!("manifest update after compaction failed: {error}")));
        }
        self.wake_stalled_writers();
        Ok(())
    }
}

/// Orders segments newest first: by their newest version, then file number.
pub(crate) fn sort_newest_first(segments: &mut [Arc<SegmentFile>]) {
    segments.sort_by(|a, b| {
        let key = |s: &Arc<SegmentFile>| (s.meta().version_max, s.meta().file_number);
        key(b).cmp(&key(a))
    });
}

impl Inner {
    /// Pass 1: merges the inputs in key order and runs the GC decision on every key.
    fn decide_survivors(
        &self,
        inputs: &[Arc<SegmentFile>],
        segments: &[&Segment<'_>],
        policy: &GcPolicy<'_>,
    ) -> Result<(Dropped, Horizons)> {
        let everything = ZBox::new(0, u64::MAX, 0, u64::MAX);
        let sources = inputs.iter().zip(segments).map(|(file, segment)| {
            let advice = file.scan_advice(everything.as_ref(), ScanPurpose::Maintenance);
            Advised::new(segment.iter_key_order(), advice)
        });
        let merged =
            MergeVec::from_sources(sources, KeyOrder).expect("inputs are capped at the fan-in");
        let mut dropped = Dropped::new(inputs);
        let mut horizons = Horizons::default();
        let mut key_horizon = KeyHorizon::default();
        let mut current: Option<(Vec<u8>, KeyGc<'_>)> = None;
        // A version whose fate waits for the next one, and where its entry is.
        let mut deferred: Option<(u32, usize, Version)> = None;
        for (index, entry) in (0u64..).zip(merged) {
            self.check_cancelled(index)?;
            let entry: Entry<'_> =
                entry.map_err(|corruption| input_corruption(inputs, corruption))?;
            if current.as_ref().is_none_or(|(key, _)| key.as_slice() != entry.key) {
                if let Some((_, gc)) = current.take() {
                    let decision = gc.finish();
                    settle(&mut dropped, &mut horizons, &key_horizon, deferred.take(), decision);
                }
                current = Some((entry.key.to_vec(), KeyGc::new(policy)));
                key_horizon = KeyHorizon::default();
            }
            let (_, gc) = current.as_mut().expect("set above");
            let (input, offset) = dropped.locate(entry.key);
            let step = gc.decide(entry.version, entry.value.is_none()).map_err(|error| {
                Error::Corruption {
                    file: inputs.first().map(|f| f.path().to_path_buf()).unwrap_or_default(),
                    offset: 0,
                    what: format!("a version appears twice across compaction inputs: {error}"),
                }
            })?;
            settle(&mut dropped, &mut horizons, &key_horizon, deferred.take(), step.settled);
            match step.decision {
                Some(Decision::Keep) => horizons.found = horizons.found.max(key_horizon.pending),
                Some(Decision::Drop) => {
                    dropped.insert((input, offset));
                    // A dropped put answered reads up to the next newer version of its key; a
                    // dropped tombstone answered `None`, still answered (`KeyGc` rule 5), but
                    // `changes` no longer lists it.
                    let exact_from = match (entry.value, key_horizon.newer) {
                        (Some(_), Some(newer)) => {
                            key_horizon.pending = key_horizon.pending.max(newer);
                            newer
                        }
                        _ => version_after(entry.version),
                    };
                    horizons.all = horizons.all.max(exact_from);
                }
                None => deferred = Some((offset, input, entry.version)),
            }
            key_horizon.newer = Some(entry.version);
        }
        if let Some((_, gc)) = current {
            settle(&mut dropped, &mut horizons, &key_horizon, deferred, gc.finish());
        }
        dropped.seal();
        assert!(horizons.found <= horizons.all, "a found read's horizon is within the horizon");
        Ok((dropped, horizons))
    }

    /// Pass 2: merges the inputs in Z order and writes the survivors.
    fn write_survivors(
        &self,
        inputs: &[Arc<SegmentFile>],
        segments: &[&Segment<'_>],
        dropped: &Dropped,
        writer: &mut SegmentWriter<'_>,
    ) -> Result<()> {
        let everything = ZBox::new(0, u64::MAX, 0, u64::MAX);
        let sources = inputs.iter().zip(segments).map(|(file, segment)| {
            let advice = file.scan_advice(everything.as_ref(), ScanPurpose::Maintenance);
            Advised::new(segment.iter(), advice)
        });
        let merged =
            MergeVec::from_sources(sources, ZOrder).expect("inputs are capped at the fan-in");
        for (index, entry) in (0u64..).zip(merged) {
            self.check_cancelled(index)?;
            let entry = entry.map_err(|corruption| input_corruption(inputs, corruption))?;
            if dropped.is_empty() || !dropped.contains(entry.key) {
                writer.add(&entry)?;
            }
        }
        Ok(())
    }
}

/// Records the decision on a deferred version (always a tombstone), if one was deferred and
/// is now decided: dropped, it raises the horizon past it; kept, it is an older version kept
/// below the key's dropped puts.
fn settle(
    dropped: &mut Dropped,
    horizons: &mut Horizons,
    key_horizon: &KeyHorizon,
    deferred: Option<(u32, usize, Version)>,
    decision: Option<Decision>,
) {
    match (deferred, decision) {
        (Some((offset, input, version)), Some(Decision::Drop)) => {
            dropped.insert((input, offset));
            horizons.all = horizons.all.max(version_after(version));
        }
        (Some(_), Some(Decision::Keep)) => {
            horizons.found = horizons.found.max(key_horizon.pending);
        }
        _ => {}
    }
}

/// A corruption found while reading compaction inputs. The merge does not say which input
/// failed; the first input's name and the offset in its file point the way.
fn input_corruption(inputs: &[Arc<SegmentFile>], corruption: zverse_core::Corruption) -> Error {
    let file = inputs.first().map(|f| f.path().to_path_buf()).unwrap_or_default();
    Error::corruption(file, 0, corruption)
}
