//! The GC decision against a semantic oracle, exhaustively on every history of one key of up
//! to `HISTORY_LEN_MAX` versions: the survivors answer every read that must stay exact like
//! the full history does, keep the window, and are as few as any set that does so.

use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use crate::Version;
use crate::merge::{Decision, GcPolicy, GcPolicyError, KeyGc, Step, VersionOrderError};

/// One version of the key: its raw version and whether it is a tombstone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Write {
    version: u64,
    is_tombstone: bool,
}

const HISTORY_LEN_MAX: usize = 5;
/// Histories up to this length are checked for minimality by brute force; longer ones only
/// for needing every version they keep.
const MINIMALITY_LEN_MAX: usize = 4;
const PIN_COUNT_MAX: usize = 2;
const NEWEST_VERSION_COUNTS: [u32; 5] = [0, 1, 2, 3, 5];

/// The answer of a read: the version of the put it finds, or `None` for a tombstone or no
/// version at all.
fn read_at(history: &[Write], at: u64) -> Option<u64> {
    let found = history.iter().find(|write| write.version <= at)?;
    (!found.is_tombstone).then_some(found.version)
}

/// Runs a [`KeyGc`] over `history` (newest first), checking its deferral protocol, and
/// returns which versions it keeps.
fn run_gc(policy: &GcPolicy<'_>, history: &[Write]) -> Vec<bool> {
    let mut gc = KeyGc::new(policy);
    let mut kept = Vec::with_capacity(history.len());
    let mut deferred: Option<usize> = None;
    for (index, write) in history.iter().enumerate() {
        let Step { decision, settled } =
            gc.decide(Version::new(write.version), write.is_tombstone).expect("newest first");
        if let Some(settled) = settled {
            let earlier = deferred.take().expect("only a deferred version is settled");
            kept[earlier] = settled == Decision::Keep;
        }
        assert!(deferred.is_none() || decision.is_some(), "at most one version is deferred");
        if decision.is_none() {
            deferred = Some(index);
        }
        kept.push(decision == Some(Decision::Keep));
    }
    match (gc.finish(), deferred) {
        (Some(settled), Some(earlier)) => kept[earlier] = settled == Decision::Keep,
        (None, None) => {}
        (finished, deferred) => panic!("finish settled {finished:?} for deferred {deferred:?}"),
    }
    kept
}

/// One policy applied to one history, and the oracle's view of it.
struct Case<'a> {
    history: &'a [Write],
    horizon: u64,
    newest_version_count: u32,
    pins: &'a [Version],
    bottom: bool,
}

impl Case<'_> {
    fn policy(&self) -> GcPolicy<'_> {
        GcPolicy::new(Version::new(self.horizon), self.newest_version_count)
            .with_pins(self.pins)
            .expect("sorted pins")
            .with_bottom(self.bottom)
    }

    /// Whether version `index` (newest first) is in the window: kept whatever it is.
    fn in_window(&self, index: usize) -> bool {
        self.history[index].version > self.horizon || index + 1 < self.newest_version_count as usize
    }

    /// The reads that must stay exact: every version from `min(h, vn)` up, and every pin.
    fn exact_reads(&self) -> Vec<u64> {
        let newest_count = self.newest_version_count as usize;
        let mut floor = self.horizon;
        if let Some(nth) = newest_count.checked_sub(1).and_then(|i| self.history.get(i)) {
            floor = floor.min(nth.version);
        }
        // Reads above the newest version all answer alike: one of them stands for all.
        let top = self.history.first().map_or(0, |newest| newest.version + 1);
        let mut reads: Vec<_> = (floor.min(top)..=top).collect();
        reads.push(u64::MAX);
        reads.extend(self.pins.iter().map(|pin| pin.get()));
        reads
    }

    /// The survivors `kept`, plus what may lie below the inputs when they are not the bottom:
    /// an older put that no survivor may let through.
    fn survivors(&self, kept: &[bool]) -> Vec<Write> {
        let mut survivors: Vec<_> =
            self.history.iter().zip(kept).filter(|(_, kept)| **kept).map(|(w, _)| *w).collect();
        if !self.bottom {
            survivors.push(Write { version: 0, is_tombstone: false });
        }
        survivors
    }

    fn full(&self) -> Vec<Write> {
        self.survivors(&vec![true; self.history.len()])
    }

    /// Whether keeping `kept` keeps the window and answers every exact read as before.
    fn is_valid(&self, kept: &[bool], reads: &[u64], full: &[Write]) -> bool {
        let survivors = self.survivors(kept);
        (0..self.history.len()).all(|index| kept[index] || !self.in_window(index))
            && reads.iter().all(|&at| read_at(&survivors, at) == read_at(full, at))
    }

    /// The fewest versions any valid survivor set keeps, by trying every subset.
    fn fewest_kept_count(&self, reads: &[u64], full: &[Write]) -> usize {
        let len = self.history.len();
        (0u32..1 << len)
            .map(|mask| (0..len).map(|index| mask & (1 << index) != 0).collect::<Vec<_>>())
            .filter(|kept| self.is_valid(kept, reads, full))
            .map(|kept| kept.iter().filter(|k| **k).count())
            .min()
            .expect("keeping everything is valid")
    }

    fn check(&self) {
        let kept = run_gc(&self.policy(), self.history);
        let reads = self.exact_reads();
        let full = self.full();
        let survivors = self.survivors(&kept);
        for index in 0..self.history.len() {
            assert!(kept[index] || !self.in_window(index), "window dropped: {self:?} {kept:?}");
        }
        for &at in &reads {
            let (got, want) = (read_at(&survivors, at), read_at(&full, at));
            assert_eq!(got, want, "read at {at}: {self:?} kept {kept:?}");
        }
        for index in (0..self.history.len()).filter(|&index| kept[index]) {
            let mut fewer = kept.clone();
            fewer[index] = false;
            assert!(!self.is_valid(&fewer, &reads, &full), "{index} is not needed: {self:?}");
        }
        if self.history.len() <= MINIMALITY_LEN_MAX {
            let kept_count = kept.iter().filter(|k| **k).count();
            let fewest = self.fewest_kept_count(&reads, &full);
            assert_eq!(kept_count, fewest, "not minimal: {self:?} kept {kept:?}");
        }
    }
}

impl core::fmt::Debug for Case<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "history {:?} horizon {} count {} pins {:?} bottom {}",
            self.history, self.horizon, self.newest_version_count, self.pins, self.bottom
        )
    }
}

/// The history of `len` versions 2·len, ..., 4, 2 (newest first) whose tombstones are the
/// set bits of `tombstone_mask`.
fn history(len: usize, tombstone_mask: u32) -> Vec<Write> {
    (0..len)
        .map(|index| Write {
            version: 2 * (len - index) as u64,
            is_tombstone: tombstone_mask & (1 << index) != 0,
        })
        .collect()
}

/// Every sorted set of at most `PIN_COUNT_MAX` pins from 1..=top: at, between, below and
/// above the versions.
fn pin_sets(top: u64) -> Vec<Vec<Version>> {
    let mut sets = vec![Vec::new()];
    for first in 1..=top {
        sets.push(vec![Version::new(first)]);
        for second in first..=top {
            sets.push(vec![Version::new(first), Version::new(second)]);
        }
    }
    assert!(sets.iter().all(|set| set.len() <= PIN_COUNT_MAX), "pin sets are bounded");
    sets
}

#[test]
fn survivors_answer_every_exact_read_keep_the_window_and_are_fewest() {
    let mut case_count = 0u64;
    for len in 0..=HISTORY_LEN_MAX {
        let top = 2 * len as u64 + 1;
        let pin_sets = pin_sets(top);
        let horizons: Vec<u64> = (0..=top).chain([u64::MAX]).collect();
        for tombstone_mask in 0..1 << len {
            let history = history(len, tombstone_mask);
            for &horizon in &horizons {
                for newest_version_count in NEWEST_VERSION_COUNTS {
                    for pins in &pin_sets {
                        for bottom in [false, true] {
                            let case = Case {
                                history: &history,
                                horizon,
                                newest_version_count,
                                pins,
                                bottom,
                            };
                            case.check();
                            case_count += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(case_count > 100_000, "{case_count} cases");
}

/// With no pins at the bottom, the survivors are exactly the versions above the horizon and
/// the newest one at or below it unless that one is a tombstone.
#[test]
fn at_the_bottom_without_pins_exactly_the_window_and_a_put_floor_survive() {
    for len in 0..=HISTORY_LEN_MAX {
        for tombstone_mask in 0..1 << len {
            let history = history(len, tombstone_mask);
            for horizon in 0..=2 * len as u64 + 1 {
                let policy = GcPolicy::new(Version::new(horizon), 0).with_bottom(true);
                let floor = history.iter().position(|write| write.version <= horizon);
                let expected: Vec<bool> = (0..len)
                    .map(|index| {
                        history[index].version > horizon
                            || (Some(index) == floor && !history[index].is_tombstone)
                    })
                    .collect();
                assert_eq!(run_gc(&policy, &history), expected, "{history:?} horizon {horizon}");
            }
        }
    }
}

fn put(version: u64) -> Write {
    Write { version, is_tombstone: false }
}

fn tombstone(version: u64) -> Write {
    Write { version, is_tombstone: true }
}

#[test]
fn keep_all_keeps_every_version_tombstones_included() {
    let history = [tombstone(9), put(7), tombstone(3), put(1)];
    let policy = GcPolicy::keep_all().with_bottom(true);
    assert_eq!(run_gc(&policy, &history), [true; 4]);
}

#[test]
fn newest_versions_count_keeps_the_newest_n_and_drops_a_tombstone_at_the_bottom() {
    let history = [put(9), put(7), tombstone(5), put(3)];
    let newest = |count, bottom| GcPolicy::new(Version::MAX, count).with_bottom(bottom);
    assert_eq!(run_gc(&newest(2, true), &history), [true, true, false, false]);
    assert_eq!(run_gc(&newest(3, true), &history), [true, true, false, false]);
    assert_eq!(run_gc(&newest(3, false), &history), [true, true, true, false]);
    assert_eq!(run_gc(&newest(0, true), &history), [true, false, false, false]);
}

#[test]
fn a_deferred_tombstone_is_settled_by_the_next_candidate_or_by_finish() {
    let pins = [Version::new(2), Version::new(4)];
    let policy = GcPolicy::new(Version::new(6), 0).with_pins(&pins).expect("sorted");
    let decide = |gc: &mut KeyGc<'_>, version, is_tombstone| {
        gc.decide(Version::new(version), is_tombstone).expect("newest first")
    };
    let step = |decision, settled| Step { decision, settled };
    let (keep, drop) = (Some(Decision::Keep), Some(Decision::Drop));

    // Floor tombstone 5, pinned put 3 below: the put keeps the tombstone.
    let mut gc = KeyGc::new(&policy);
    assert_eq!(decide(&mut gc, 5, true), step(None, None));
    assert_eq!(decide(&mut gc, 3, false), step(keep, keep));
    assert_eq!(gc.finish(), None);

    // Floor tombstone 5, pinned tombstone 4: the older tombstone answers for both.
    let mut gc = KeyGc::new(&policy.with_bottom(true));
    assert_eq!(decide(&mut gc, 5, true), step(None, None));
    assert_eq!(decide(&mut gc, 4, true), step(None, drop));
    assert_eq!(decide(&mut gc, 3, false), step(drop, None));
    assert_eq!(gc.finish(), drop, "nothing older survives at the bottom");

    // The same above other data: the last tombstone must stay to shadow it.
    let mut gc = KeyGc::new(&policy);
    assert_eq!(decide(&mut gc, 5, true), step(None, None));
    assert_eq!(gc.finish(), keep, "something older may exist outside the inputs");
}

#[test]
fn versions_out_of_order_are_refused() {
    let policy = GcPolicy::keep_all();
    let mut gc = KeyGc::new(&policy);
    assert!(gc.decide(Version::new(5), false).is_ok());
    for version in [5, 6] {
        assert_eq!(
            gc.decide(Version::new(version), false),
            Err(VersionOrderError { version: Version::new(version), previous: Version::new(5) })
        );
    }
    assert_eq!(
        gc.decide(Version::new(4), false).map(|step| step.decision),
        Ok(Some(Decision::Keep))
    );
}

#[test]
fn unsorted_pins_are_refused() {
    let pins = [Version::new(1), Version::new(3), Version::new(3), Version::new(2)];
    assert_eq!(
        GcPolicy::keep_all().with_pins(&pins),
        Err(GcPolicyError::PinsNotSorted { position: 3 })
    );
    assert!(GcPolicy::keep_all().with_pins(&pins[..3]).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Longer histories and more pins than the exhaustive test reaches: the survivors keep the
    /// window, answer every exact read, and each one they keep is needed.
    #[test]
    fn survivors_of_random_long_histories_are_exact_and_each_needed(
        writes in prop::collection::vec((1u64..4, any::<bool>()), 0..24),
        pin_raws in prop::collection::vec(0u64..80, 0..6),
        horizon in prop_oneof![0u64..80, Just(u64::MAX)],
        newest_version_count in 0u32..8,
        bottom in any::<bool>(),
    ) {
        let mut version = 0;
        let mut history: Vec<_> = writes
            .iter()
            .map(|&(gap, is_tombstone)| {
                version += gap;
                Write { version, is_tombstone }
            })
            .collect();
        history.reverse();
        let mut pins: Vec<_> = pin_raws.into_iter().map(Version::new).collect();
        pins.sort_unstable();
        Case { history: &history, horizon, newest_version_count, pins: &pins, bottom }.check();
    }
}
