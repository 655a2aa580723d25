//! Compaction and GC: merge segments into one, dropping the versions retention lets go.
//!
//! Versions of one key are not adjacent in Z order, so survivors cannot be decided while
//! streaming Z order. Pass 1 merges the inputs in key order and feeds each key's versions to
//! `zverse_core::merge::KeyGc`, which decides per version (retention, live snapshots,
//! tombstones at the bottom). Pass 2 merges the inputs in Z order and writes the survivors.
//!
//! The inputs are always the oldest segments (a suffix of the newest-first list), so the
//! output is the bottom of the tree: no older version of any key exists outside the inputs.
//! Versions in newer tiers are all newer than the inputs' (memtables hold contiguous version
//! ranges, and segments are flushed in order), so deciding within the inputs alone can only
//! keep more than needed, never less.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::SystemTime;

use zverse_core::merge::{Decision, FAN_IN_MAX, GcPolicy, KeyGc, KeyOrder, MergeVec, ZOrder};
use zverse_core::segment::Segment;
use zverse_core::zkey::ZBox;
use zverse_core::{Entry, Version};

use crate::db::{Inner, lock};
use crate::error::{Error, Result};
use crate::locality::{Advised, ScanPurpose};
use crate::options::Retention;
use crate::segment_file::SegmentFile;
use crate::tiers::Tiers;

/// The `(key, version)`s pass 1 dropped.
type Dropped = HashSet<(Vec<u8>, Version)>;

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

impl Inner {
    /// Merges the oldest segments (all of them, up to the merge fan-in) into one. With
    /// `force`, also rewrites a single segment, to apply retention to it.
    pub(crate) fn compact_segments(&self, force: bool) -> Result<()> {
        let tiers = self.tiers();
        let input_count = tiers.segments.len().min(FAN_IN_MAX);
        if input_count == 0 || (input_count == 1 && !force) {
            return Ok(());
        }
        let inputs = &tiers.segments[tiers.segments.len() - input_count..];
        let pins: Vec<Version> = lock(&self.pins).keys().copied().collect();
        let base = match self.options.retention {
            Retention::All => GcPolicy::keep_all(),
            Retention::Duration(age) => {
                let horizon = SystemTime::now().checked_sub(age).unwrap_or(SystemTime::UNIX_EPOCH);
                GcPolicy::new(Version::from_system_time(horizon), 0)
            }
            Retention::Versions(count) => GcPolicy::new(Version::MAX, count),
        };
        let policy = base.with_pins(&pins).expect("BTreeMap keys are sorted").with_bottom(true);
        let segments: Vec<&Segment<'_>> = inputs.iter().map(|file| file.segment()).collect();
        let (dropped, horizons) = decide_survivors(inputs, &segments, &policy)?;
        let survivors = collect_survivors(inputs, &segments, &dropped)?;
        let output =
            if survivors.is_empty() { None } else { Some(self.write_and_open_segment(survivors)?) };
        self.install_compaction(&tiers, inputs, output.as_ref(), horizons)
    }

    /// Swaps the inputs for the output in the manifest and the tiers, raising the retention
    /// horizons to `horizons` (before the tiers change, so that no read below it sees the
    /// output), then retires the inputs: their files go when the last reader lets go of them.
    fn install_compaction(
        &self,
        tiers_before: &Tiers,
        inputs: &[Arc<SegmentFile>],
        output: Option<&Arc<SegmentFile>>,
        horizons: Horizons,
    ) -> Result<()> {
        let mut manifest = lock(&self.manifest);
        let mut tiers = lock(&self.tiers);
        let is_suffix = |segments: &[Arc<SegmentFile>]| {
            segments.len() >= inputs.len()
                && segments[segments.len() - inputs.len()..]
                    .iter()
                    .zip(inputs)
                    .all(|(a, b)| Arc::ptr_eq(a, b))
        };
        assert!(
            is_suffix(&tiers.segments) && is_suffix(&tiers_before.segments),
            "only the background thread changes the segments, and it is compacting"
        );
        let kept = tiers.segments.len() - inputs.len();
        let mut segments = tiers.segments[..kept].to_vec();
        segments.extend(output.cloned());
        let mut next = manifest.clone();
        next.segments = segments.iter().map(|segment| *segment.meta()).collect();
        next.file_number_next = self.file_number_next();
        next.horizon = next.horizon.max(horizons.all);
        next.horizon_found = next.horizon_found.max(horizons.found);
        if let Err(error) = next.write(self.io.as_ref(), &self.dir) {
            // The new manifest may or may not be on disk: keep every file, refuse writes.
            return Err(self.fail(format!("manifest update after compaction failed: {error}")));
        }
        self.raise_horizons(next.horizon, next.horizon_found);
        *manifest = next;
        *tiers = Arc::new(Tiers {
            active: Arc::clone(&tiers.active),
            sealed: tiers.sealed.clone(),
            segments,
        });
        drop(tiers);
        drop(manifest);
        for input in inputs {
            input.retire();
        }
        Ok(())
    }
}

/// Pass 1: merges the inputs in key order and runs the GC decision on every key. Returns the
/// versions to drop and the horizons they leave. A dropped put answered the reads from its
/// version up to the next newer version of its key; a dropped tombstone answered `None`, which
/// an older tombstone or nothing still answers (`KeyGc` rule 5), but `changes` no longer lists
/// it. A dropped put with an older version kept makes a read that finds that older version
/// wrong; one with no older version kept makes a read that finds nothing wrong.
fn decide_survivors(
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
        MergeVec::from_sources(sources, KeyOrder).expect("inputs are capped at FAN_IN_MAX");
    let mut dropped = Dropped::new();
    let mut horizons = Horizons::default();
    let mut current: Option<(Vec<u8>, KeyGc<'_>)> = None;
    let mut deferred: Option<Version> = None;
    let mut key_horizon = KeyHorizon::default();
    for entry in merged {
        let entry: Entry<'_> = entry.map_err(|corruption| input_corruption(inputs, corruption))?;
        if current.as_ref().is_none_or(|(key, _)| key.as_slice() != entry.key) {
            if let Some((key, gc)) = current.take() {
                let decision = gc.finish();
                settle(&mut dropped, &mut horizons, &key_horizon, &key, deferred.take(), decision);
            }
            current = Some((entry.key.to_vec(), KeyGc::new(policy)));
            key_horizon = KeyHorizon::default();
        }
        let (key, gc) = current.as_mut().expect("set above");
        let step =
            gc.decide(entry.version, entry.value.is_none()).map_err(|error| Error::Corruption {
                file: inputs.first().map(|f| f.path().to_path_buf()).unwrap_or_default(),
                offset: 0,
                what: format!("a version appears twice across compaction inputs: {error}"),
            })?;
        settle(&mut dropped, &mut horizons, &key_horizon, key, deferred.take(), step.settled);
        match step.decision {
            Some(Decision::Keep) => horizons.found = horizons.found.max(key_horizon.pending),
            Some(Decision::Drop) => {
                dropped.insert((key.clone(), entry.version));
                let exact_from = match (entry.value, key_horizon.newer) {
                    (Some(_), Some(newer)) => {
                        key_horizon.pending = key_horizon.pending.max(newer);
                        newer
                    }
                    _ => version_after(entry.version),
                };
                horizons.all = horizons.all.max(exact_from);
            }
            None => deferred = Some(entry.version),
        }
        key_horizon.newer = Some(entry.version);
    }
    if let Some((key, gc)) = current {
        settle(&mut dropped, &mut horizons, &key_horizon, &key, deferred, gc.finish());
    }
    assert!(horizons.found <= horizons.all, "a found read's horizon is within the horizon");
    Ok((dropped, horizons))
}

/// The version after `version` (saturating).
fn version_after(version: Version) -> Version {
    Version::new(version.get().saturating_add(1))
}

/// Records the decision on a deferred version (always a tombstone), if one was deferred and
/// is now decided: dropped, it raises the horizon past it; kept, it is an older version kept
/// below the key's dropped puts.
fn settle(
    dropped: &mut Dropped,
    horizons: &mut Horizons,
    key_horizon: &KeyHorizon,
    key: &[u8],
    deferred: Option<Version>,
    decision: Option<Decision>,
) {
    match (deferred, decision) {
        (Some(version), Some(Decision::Drop)) => {
            dropped.insert((key.to_vec(), version));
            horizons.all = horizons.all.max(version_after(version));
        }
        (Some(_), Some(Decision::Keep)) => {
            horizons.found = horizons.found.max(key_horizon.pending);
        }
        _ => {}
    }
}

/// Pass 2: the survivors, in Z order.
fn collect_survivors<'a>(
    inputs: &[Arc<SegmentFile>],
    segments: &[&Segment<'a>],
    dropped: &Dropped,
) -> Result<Vec<Entry<'a>>> {
    let everything = ZBox::new(0, u64::MAX, 0, u64::MAX);
    let sources = inputs.iter().zip(segments).map(|(file, segment)| {
        let advice = file.scan_advice(everything.as_ref(), ScanPurpose::Maintenance);
        Advised::new(segment.iter(), advice)
    });
    let merged = MergeVec::from_sources(sources, ZOrder).expect("inputs are capped at FAN_IN_MAX");
    let mut survivors = Vec::new();
    for entry in merged {
        let entry = entry.map_err(|corruption| input_corruption(inputs, corruption))?;
        if !dropped.contains(&(entry.key.to_vec(), entry.version)) {
            survivors.push(entry);
        }
    }
    Ok(survivors)
}

/// A corruption found while reading compaction inputs. The merge does not say which input
/// failed; the first input's name and the offset in its file point the way.
fn input_corruption(inputs: &[Arc<SegmentFile>], corruption: zverse_core::Corruption) -> Error {
    let file = inputs.first().map(|f| f.path().to_path_buf()).unwrap_or_default();
    Error::corruption(file, 0, corruption)
}
