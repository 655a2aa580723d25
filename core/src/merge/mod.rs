//! K-way merge of sorted sources, and the retention (GC) decision.
//!
//! - [`Merge`]: a loser tree over up to [`FAN_IN_MAX`] sorted, fallible sources, in any
//!   [`Order`]: [`KeyOrder`] (key ascending, version descending: what `range_at`, `history`
//!   and compaction read) or [`ZOrder`] (Morton prefix, then key: for Z-ordered sources), over
//!   any [`Keyed`] item. [`MergeN`] keeps its sources in a fixed array and never
//!   allocates; `MergeVec` (feature `alloc`) keeps them in a `Vec`. Both are the same code
//!   over [`Slots`].
//! - [`KeyGc`]: which versions of one key survive a compaction under a [`GcPolicy`]
//!   (retention horizon, newest-versions count, pinned snapshots, bottom of the tree). A pure,
//!   streaming decision: fed one key's versions newest first, it allocates nothing.
//!
//! **Architecture Invariant:** equal items from several sources come out of a merge in source
//! index order. Read paths put the newest tier at index 0, so the first of a run of equal
//! `(key, version)` items is the one that shadows the others.

mod gc;
mod order;
mod tree;

pub use gc::{Decision, GcPolicy, GcPolicyError, KeyGc, Step, VersionOrderError};
pub use order::{KeyOrder, Keyed, Order, ZOrder, same_key};
#[cfg(feature = "alloc")]
pub use tree::MergeVec;
pub use tree::{FAN_IN_MAX, FanInError, Merge, MergeN, Slot, Slots};

#[cfg(test)]
mod tests;
