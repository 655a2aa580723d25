//! [`KeyGc`]: which versions of one key survive a compaction.
//!
//! Compaction's first pass feeds each key's versions to a [`KeyGc`] newest first (key order)
//! and learns, version by version, whether each one survives. The decision is pure: it
//! depends only on the [`GcPolicy`] and the versions fed so far, and allocates nothing.
//!
//! # The rules
//! Let the key's versions, newest first, be `v1 > v2 > ...`, let `h` be the policy's horizon
//! and `n` its newest-version count, and let the *window* be every `vi` with `vi > h` or
//! `i < n`.
//!
//! 1. Every version in the window is kept, tombstones included: `history` and `changes`
//!    within retention are complete.
//! 2. The *floor*, the newest version outside the window, is kept. Together with rule 1 this
//!    makes every as-of read at or after `min(h, vn)` exact (every read, when the key has
//!    fewer than `n` versions): with `Retention::Duration` every read at or after the horizon,
//!    with `Retention::Versions(n)` the newest `n` versions.
//! 3. For every pinned snapshot version `p`, the newest version `<= p` is kept, so a read at
//!    `p` stays exact for as long as the snapshot lives.
//! 4. Every other version is dropped: no read that must stay exact can see it.
//! 5. A tombstone kept only by rule 2 or 3 (a *candidate*) is dropped when the next older
//!    survivor is also a tombstone, or when there is no older survivor and the compaction's
//!    output is the bottom of the tree (no older data for the key exists outside the inputs).
//!    Every read it answered then finds that older tombstone, or nothing, instead: `None`
//!    either way. Tombstones in the window are never dropped (rule 1).
//!
//! Rules 1 to 4 decide a version as soon as it is fed. Rule 5 needs what comes after: a
//! candidate tombstone with pins still below it is *deferred*, and settled by the next
//! candidate (a put keeps it; a tombstone drops it, since that tombstone or what replaces it
//! answers `None` too) or, if none comes, by [`KeyGc::finish`] (dropped at the bottom, kept
//! otherwise). So at most one version is ever deferred. A candidate tombstone with no pin
//! below it is decided at once.
//!
//! The survivors are the fewest versions that keep rule 1 and every read of rules 2 and 3
//! exact, whatever lies below the inputs when they are not the bottom.

use core::fmt;

use crate::Version;

/// Which versions a compaction keeps; see the module docs for the rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcPolicy<'p> {
    horizon: Version,
    newest_version_count: u32,
    pins: &'p [Version],
    bottom: bool,
}

impl GcPolicy<'static> {
    /// Keeps every version of every key (`Retention::All`): the horizon is
    /// [`Version::ZERO`], below every version ever written.
    #[must_use]
    pub const fn keep_all() -> GcPolicy<'static> {
        GcPolicy::new(Version::ZERO, 0)
    }

    /// Keeps every version above `horizon`, and the newest `newest_version_count` versions of
    /// every key whatever their age. `Retention::Duration(d)` is `new(now - d, 0)` with the
    /// runtime computing the horizon; `Retention::Versions(n)` is `new(Version::MAX, n)`.
    /// A count of 0 or 1 adds nothing to the horizon: the floor (rule 2) always keeps the
    /// newest version at or below it.
    #[must_use]
    pub const fn new(horizon: Version, newest_version_count: u32) -> GcPolicy<'static> {
        GcPolicy { horizon, newest_version_count, pins: &[], bottom: false }
    }
}

impl<'p> GcPolicy<'p> {
    /// The same policy with the versions of the live snapshots pinned. `pins` must be sorted
    /// ascending (repeats allowed); otherwise [`GcPolicyError::PinsNotSorted`].
    pub fn with_pins(self, pins: &[Version]) -> Result<GcPolicy<'_>, GcPolicyError> {
        if let Some(position) = pins.windows(2).position(|pair| pair[0] > pair[1]) {
            return Err(GcPolicyError::PinsNotSorted { position: position + 1 });
        }
        Ok(GcPolicy {
            horizon: self.horizon,
            newest_version_count: self.newest_version_count,
            pins,
            bottom: self.bottom,
        })
    }

    /// The same policy for a compaction whose output is (`true`) or is not the bottom of the
    /// tree: at the bottom, no older version of any key exists outside the inputs.
    #[must_use]
    pub const fn with_bottom(self, bottom: bool) -> GcPolicy<'p> {
        GcPolicy { bottom, ..self }
    }

    /// Every version above it is kept.
    #[must_use]
    pub const fn horizon(&self) -> Version {
        self.horizon
    }

    /// The newest this many versions of every key are kept.
    #[must_use]
    pub const fn newest_version_count(&self) -> u32 {
        self.newest_version_count
    }

    /// The pinned snapshot versions, ascending.
    #[must_use]
    pub const fn pins(&self) -> &'p [Version] {
        self.pins
    }

    /// Whether the compaction's output is the bottom of the tree.
    #[must_use]
    pub const fn bottom(&self) -> bool {
        self.bottom
    }
}

/// A [`GcPolicy`] that cannot be applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GcPolicyError {
    /// The pins are not sorted ascending: `pins[position - 1] > pins[position]`.
    PinsNotSorted {
        /// The index of the first pin smaller than the one before it.
        position: usize,
    },
}

impl fmt::Display for GcPolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            GcPolicyError::PinsNotSorted { position } => {
                write!(f, "pinned versions are not sorted ascending at index {position}")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for GcPolicyError {}

/// A version fed to [`KeyGc::decide`] that is not older than the one before it: the key's
/// versions must come newest first, each once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VersionOrderError {
    /// The version fed.
    pub version: Version,
    /// The version fed before it.
    pub previous: Version,
}

impl fmt::Display for VersionOrderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "version {} fed after {}: versions must strictly decrease",
            self.version, self.previous
        )
    }
}

#[cfg(feature = "std")]
impl std::error::Error for VersionOrderError {}

/// What becomes of one version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// It survives the compaction.
    Keep,
    /// It is left out of the compaction's output.
    Drop,
}

/// The outcome of feeding one version to [`KeyGc::decide`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct Step {
    /// The decision on the version just fed, or `None` when it is deferred: a candidate
    /// tombstone (rule 5) whose fate depends on older versions. A later step's `settled`, or
    /// [`KeyGc::finish`], decides it.
    pub decision: Option<Decision>,
    /// The decision on the version deferred earlier, when this step settles it. At most one
    /// version is deferred at a time, so this always refers to the last deferred version.
    pub settled: Option<Decision>,
}

/// The GC decision for the versions of one key, fed newest first.
///
/// ```
/// use zverse_core::merge::{Decision, GcPolicy, KeyGc};
/// use zverse_core::Version;
///
/// // Keep what is newer than version 10; this compaction writes the bottom of the tree.
/// let policy = GcPolicy::new(Version::new(10), 0).with_bottom(true);
/// let mut gc = KeyGc::new(&policy);
/// let mut decide = |version, is_tombstone| gc.decide(Version::new(version), is_tombstone);
/// assert_eq!(decide(12, false)?.decision, Some(Decision::Keep)); // above the horizon
/// assert_eq!(decide(9, true)?.decision, Some(Decision::Drop)); // floor, a tombstone at the bottom
/// assert_eq!(decide(5, false)?.decision, Some(Decision::Drop)); // shadowed by the tombstone
/// assert_eq!(gc.finish(), None); // nothing was deferred
/// # Ok::<(), zverse_core::merge::VersionOrderError>(())
/// ```
#[derive(Clone, Debug)]
pub struct KeyGc<'p> {
    policy: GcPolicy<'p>,
    /// The pins below the previous version: the ones that can still select a version.
    pins_below: &'p [Version],
    /// The last version fed, if any.
    previous: Option<Version>,
    /// How many versions were fed (saturating).
    fed_count: u32,
    /// Whether the floor (rule 2) was fed.
    floor_fed: bool,
    /// Whether a candidate tombstone awaits its decision.
    deferred: bool,
}

impl<'p> KeyGc<'p> {
    /// The decision for one key under `policy`.
    #[must_use]
    pub fn new(policy: &GcPolicy<'p>) -> KeyGc<'p> {
        KeyGc {
            policy: *policy,
            pins_below: policy.pins,
            previous: None,
            fed_count: 0,
            floor_fed: false,
            deferred: false,
        }
    }

    /// Decides the key's next older version; see the module docs for the rules.
    ///
    /// A `version` not older than the one fed before it is refused with
    /// [`VersionOrderError`], and changes nothing: the caller merges duplicates away first
    /// (the first of equal `(key, version)` items, from the newest tier, is the one to feed).
    pub fn decide(
        &mut self,
        version: Version,
        is_tombstone: bool,
    ) -> Result<Step, VersionOrderError> {
        if let Some(previous) = self.previous
            && version >= previous
        {
            return Err(VersionOrderError { version, previous });
        }
        let in_window = version > self.policy.horizon
            || self.fed_count.saturating_add(1) < self.policy.newest_version_count;
        let pinned = self.take_pins_at_or_above(version);
        let is_floor = !in_window && !self.floor_fed;
        self.previous = Some(version);
        self.fed_count = self.fed_count.saturating_add(1);
        self.floor_fed |= !in_window;
        let step = if in_window {
            assert!(!self.deferred, "the window is a prefix, deferrals start after it");
            Step { decision: Some(Decision::Keep), settled: None }
        } else if !is_floor && !pinned {
            Step { decision: Some(Decision::Drop), settled: None }
        } else if !is_tombstone {
            Step { decision: Some(Decision::Keep), settled: self.settle(Decision::Keep) }
        } else {
            self.decide_candidate_tombstone()
        };
        assert!(step.decision.is_some() || self.deferred, "a version without decision is deferred");
        Ok(step)
    }

    /// Settles the deferred version, if any, once the key has no more versions: it is dropped
    /// at the bottom of the tree (nothing older survives) and kept elsewhere (something older
    /// may exist outside the inputs).
    #[must_use]
    pub fn finish(mut self) -> Option<Decision> {
        let bottom_decision = self.bottom_decision();
        self.settle(bottom_decision)
    }

    /// Rule 5 for a tombstone kept by rule 2 or 3: an earlier deferred tombstone is dropped
    /// (this one, or whatever makes this one droppable, answers its reads with `None` too);
    /// this one is deferred while pins below it may still select an older version.
    fn decide_candidate_tombstone(&mut self) -> Step {
        let settled = self.settle(Decision::Drop);
        assert!(!self.deferred, "the earlier deferral was just settled");
        if self.pins_below.is_empty() {
            Step { decision: Some(self.bottom_decision()), settled }
        } else {
            self.deferred = true;
            Step { decision: None, settled }
        }
    }

    /// The decision on a candidate tombstone with no survivor below it.
    fn bottom_decision(&self) -> Decision {
        if self.policy.bottom { Decision::Drop } else { Decision::Keep }
    }

    /// Settles the deferred version as `decision`; `None` if there is none.
    fn settle(&mut self, decision: Decision) -> Option<Decision> {
        let deferred = core::mem::replace(&mut self.deferred, false);
        deferred.then_some(decision)
    }

    /// Removes the pins at or above `version` and says whether there were any: `version` is
    /// then the newest version at or below each of them (rule 3), since every pin left was
    /// below the previous, newer version.
    fn take_pins_at_or_above(&mut self, version: Version) -> bool {
        let below_count = self.pins_below.partition_point(|&pin| pin < version);
        let pinned = below_count < self.pins_below.len();
        self.pins_below = &self.pins_below[..below_count];
        assert!(self.pins_below.last().is_none_or(|&pin| pin < version), "pins left are below");
        pinned
    }
}
