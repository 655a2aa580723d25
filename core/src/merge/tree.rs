//! [`Merge`]: a loser tree (a tournament tree that keeps the loser of each match; Knuth, The
//! Art of Computer Programming, vol. 3, §5.4.1, "replacement selection") over `k` sorted,
//! fallible sources.
//!
//! # Layout
//! The tree is implicit in the slots: with `k` sources, leaf `i` is node `k + i`, node `n`'s
//! parent is `n / 2`, nodes `1..k` are the internal nodes, and each stores the index of the
//! source that *lost* the match played there. Node 0 stores the overall winner. So slot `i`
//! holds source `i`, its head (the next item, pulled one ahead) and node `i`: one array of
//! `k` slots is the whole tree, for any `k`, a power of two or not.
//!
//! # Cost
//! Taking the winner and pulling its source's next item replays the matches on the path from
//! that source's leaf to the root: at most `ceil(log2(k))` comparisons per item (a binary heap
//! needs up to twice that). Nothing is allocated per item, nor at all by [`MergeN`].
//!
//! # Ties and errors
//! Heads are ranked by `(class, item, source index)`, where an error ranks before every item
//! and an exhausted source after every item. The source index makes the rank a strict total
//! order, so equal items come out in source index order (source 0 first). An error therefore
//! wins the next match it plays: it comes out of the merge as soon as the source reports it,
//! and the merge then ends (it is fused).

use core::cmp::Ordering;
use core::fmt;
use core::iter::FusedIterator;

use super::order::Order;

/// The most sources one merge takes.
///
/// The limit bounds the work per item (at most 6 comparisons) and the size of a [`MergeN`].
/// 64 is far above what the engine merges: the memtables, the overlapping segments of the
/// first level (compaction keeps them to a handful) and one concatenated source per deeper
/// level. Reaching it means compaction has fallen far behind, and the engine should merge in
/// two steps or compact first.
pub const FAN_IN_MAX: usize = 64;

/// Marks a node without a source while the tree is being built.
const NODE_EMPTY: usize = usize::MAX;

const _: () = assert!(FAN_IN_MAX >= 2 && FAN_IN_MAX < NODE_EMPTY / 2);

/// One source of a [`Merge`], and one node of its tree (see the module docs).
pub struct Slot<S: Iterator> {
    source: S,
    /// The source's next item, pulled ahead; `None` once the source is exhausted.
    head: Option<S::Item>,
    /// The source index stored at this node: a match's loser, or the winner at node 0.
    node: usize,
}

impl<S: Iterator> Slot<S> {
    /// A slot for `source`. Nothing is pulled until the merge's first item is asked for.
    #[must_use]
    pub fn new(source: S) -> Slot<S> {
        Slot { source, head: None, node: NODE_EMPTY }
    }
}

impl<S: Iterator + fmt::Debug> fmt::Debug for Slot<S>
where
    S::Item: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot")
            .field("source", &self.source)
            .field("head", &self.head)
            .field("node", &self.node)
            .finish()
    }
}

mod sealed {
    pub trait Sealed {}
}

/// Storage for a merge's slots: a fixed array ([`MergeN`]), a `Vec` (`MergeVec`, feature
/// `alloc`) or a slice the caller owns (`&mut [Slot<S>]`, e.g. the first `n` slots of a
/// larger array).
///
/// Sealed: the merge relies on the slice keeping its length, which these types guarantee.
pub trait Slots: sealed::Sealed {
    /// The sources' type.
    type Source: Iterator;

    /// The slots, always the same number of them.
    fn slots(&mut self) -> &mut [Slot<Self::Source>];
}

impl<S: Iterator, const K: usize> sealed::Sealed for [Slot<S>; K] {}

impl<S: Iterator, const K: usize> Slots for [Slot<S>; K] {
    type Source = S;

    fn slots(&mut self) -> &mut [Slot<S>] {
        self
    }
}

impl<S: Iterator> sealed::Sealed for &mut [Slot<S>] {}

impl<S: Iterator> Slots for &mut [Slot<S>] {
    type Source = S;

    fn slots(&mut self) -> &mut [Slot<S>] {
        self
    }
}

#[cfg(feature = "alloc")]
impl<S: Iterator> sealed::Sealed for alloc::vec::Vec<Slot<S>> {}

#[cfg(feature = "alloc")]
impl<S: Iterator> Slots for alloc::vec::Vec<Slot<S>> {
    type Source = S;

    fn slots(&mut self) -> &mut [Slot<S>] {
        self
    }
}

/// A merge was given more than [`FAN_IN_MAX`] sources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FanInError {
    /// How many sources it was given (`MergeVec::from_sources` stops counting at
    /// `FAN_IN_MAX + 1`).
    pub source_count: usize,
}

impl fmt::Display for FanInError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "merge of {} sources exceeds the fan-in limit of {FAN_IN_MAX}", self.source_count)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for FanInError {}

/// Where a merge is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No item asked for yet: the tree is not built and no source has been pulled.
    Fresh,
    /// The tree is built and node 0 holds the winner.
    Running,
    /// Every source is exhausted, or an error came out: nothing more comes.
    Done,
}

/// A k-way merge of sorted sources of `Result<T, E>` into one sorted stream, in the order `O`.
///
/// Each source must be sorted by `O` (an unsorted source gives an unsorted output, nothing
/// worse). Equal items come out in source index order. An `Err` from a source comes out of
/// the merge as soon as the source yields it, once, and the merge ends. The sources are pulled
/// lazily: none before the first call to `next`, then one item ahead of the output.
///
/// ```
/// use zverse_core::merge::{KeyOrder, MergeN};
/// use zverse_core::{Entry, Version};
///
/// let e = |key: &'static [u8], version| Entry { key, version: Version::new(version), value: None };
/// let newer = [Ok::<_, ()>(e(b"a", 5)), Ok(e(b"c", 5))];
/// let older = [Ok(e(b"a", 5)), Ok(e(b"a", 3)), Ok(e(b"b", 1))];
/// let merged: Result<Vec<_>, _> =
///     MergeN::from_array([newer.iter().copied(), older.iter().copied()], KeyOrder).collect();
/// let versions: Vec<_> = merged.unwrap().iter().map(|e| (e.key, e.version.get())).collect();
/// assert_eq!(versions, [(&b"a"[..], 5), (b"a", 5), (b"a", 3), (b"b", 1), (b"c", 5)]);
/// ```
///
/// The fan-in limit of a [`MergeN`] is checked when it is compiled:
///
/// ```compile_fail
/// use zverse_core::merge::{KeyOrder, MergeN};
/// let sources: [core::iter::Empty<Result<zverse_core::Entry<'static>, ()>>; 65] =
///     core::array::from_fn(|_| core::iter::empty());
/// let _ = MergeN::from_array(sources, KeyOrder);
/// ```
#[must_use = "a merge does nothing unless it is iterated"]
pub struct Merge<St, O> {
    slots: St,
    order: O,
    phase: Phase,
}

/// A merge of exactly `K` sources held in an array: no allocation, `K <= FAN_IN_MAX` checked
/// at compile time. Fewer live sources are fine: pad with exhausted ones (an `Option<I>`
/// turned into `option.into_iter().flatten()`, say); they only deepen the tree, to
/// `ceil(log2(K))` comparisons per item.
pub type MergeN<S, O, const K: usize> = Merge<[Slot<S>; K], O>;

/// A merge of any number of sources up to [`FAN_IN_MAX`], held in a `Vec`.
#[cfg(feature = "alloc")]
pub type MergeVec<S, O> = Merge<alloc::vec::Vec<Slot<S>>, O>;

impl<St: Slots, O> Merge<St, O> {
    /// A merge over the slots in `slots`, in the order `order`.
    ///
    /// More than [`FAN_IN_MAX`] slots is refused with [`FanInError`]: the count comes from
    /// the engine's state (how many tiers there are), so going over it is a bug in the
    /// engine's policy, but one that should stall or fail a read, not abort the process.
    pub fn new(mut slots: St, order: O) -> Result<Merge<St, O>, FanInError> {
        let source_count = slots.slots().len();
        if source_count > FAN_IN_MAX {
            return Err(FanInError { source_count });
        }
        Ok(Merge { slots, order, phase: Phase::Fresh })
    }
}

impl<S: Iterator, O, const K: usize> MergeN<S, O, K> {
    /// A merge over the array `sources` (source 0 first on ties), in the order `order`.
    pub fn from_array(sources: [S; K], order: O) -> MergeN<S, O, K> {
        const { assert!(K <= FAN_IN_MAX, "a merge takes at most FAN_IN_MAX sources") };
        Merge { slots: sources.map(Slot::new), order, phase: Phase::Fresh }
    }
}

#[cfg(feature = "alloc")]
impl<S: Iterator, O> MergeVec<S, O> {
    /// A merge over `sources` (source 0 first on ties), in the order `order`. Refuses more
    /// than [`FAN_IN_MAX`] sources (see [`Merge::new`]) without pulling more than one past it.
    pub fn from_sources(
        sources: impl IntoIterator<Item = S>,
        order: O,
    ) -> Result<MergeVec<S, O>, FanInError> {
        let sources = sources.into_iter();
        let mut slots = alloc::vec::Vec::with_capacity(sources.size_hint().0.min(FAN_IN_MAX));
        for source in sources {
            if slots.len() == FAN_IN_MAX {
                return Err(FanInError { source_count: FAN_IN_MAX + 1 });
            }
            slots.push(Slot::new(source));
        }
        Merge::new(slots, order)
    }
}

impl<St, O, T, E> Iterator for Merge<St, O>
where
    St: Slots,
    St::Source: Iterator<Item = Result<T, E>>,
    O: Order<T>,
{
    type Item = Result<T, E>;

    fn next(&mut self) -> Option<Result<T, E>> {
        match self.phase {
            Phase::Done => return None,
            Phase::Fresh => {
                build(self.slots.slots(), &self.order);
                self.phase = Phase::Running;
            }
            Phase::Running => {}
        }
        let slots = self.slots.slots();
        let Some(winner) = slots.first().map(|slot| slot.node) else {
            self.phase = Phase::Done;
            return None;
        };
        assert!(winner < slots.len(), "node 0 holds a source index once the tree is built");
        match slots[winner].head.take() {
            Some(Ok(item)) => {
                slots[winner].head = slots[winner].source.next();
                replay(slots, &self.order, winner);
                Some(Ok(item))
            }
            Some(Err(error)) => {
                self.phase = Phase::Done;
                Some(Err(error))
            }
            None => {
                // The winner is exhausted, so every source is.
                debug_assert!(slots.iter().all(|slot| slot.head.is_none()), "all exhausted");
                self.phase = Phase::Done;
                None
            }
        }
    }
}

impl<St, O, T, E> FusedIterator for Merge<St, O>
where
    St: Slots,
    St::Source: Iterator<Item = Result<T, E>>,
    O: Order<T>,
{
}

impl<St, O> fmt::Debug for Merge<St, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Merge").field("phase", &self.phase).finish_non_exhaustive()
    }
}

/// Pulls every source's first item and plays the whole tournament.
///
/// Each leaf's item climbs until it finds a node no one has reached yet and waits there; the
/// second arrival at a node plays the first, leaves the loser and climbs on with the winner.
/// Each internal node is reached once from each of its two subtrees, so when every leaf has
/// climbed, every internal node holds the loser of the match between its subtrees' winners and
/// exactly one item, the overall winner, has reached node 0.
fn build<S, T, E, O>(slots: &mut [Slot<S>], order: &O)
where
    S: Iterator<Item = Result<T, E>>,
    O: Order<T>,
{
    let source_count = slots.len();
    assert!(source_count <= FAN_IN_MAX, "the fan-in was checked at construction");
    for slot in slots.iter_mut() {
        slot.head = slot.source.next();
        slot.node = NODE_EMPTY;
    }
    for leaf in 0..source_count {
        let mut candidate = leaf;
        let mut node = parent(source_count + leaf);
        while node > 0 && slots[node].node != NODE_EMPTY {
            let parked = slots[node].node;
            if beats(slots, order, parked, candidate) {
                slots[node].node = candidate;
                candidate = parked;
            }
            node = parent(node);
        }
        slots[node].node = candidate;
    }
    assert!(
        slots.iter().all(|slot| slot.node < source_count),
        "every node holds a source index once the tournament is played"
    );
}

/// Replays the matches from source `leaf`'s leaf to the root after its head changed, and puts
/// the new overall winner at node 0.
fn replay<S, T, E, O>(slots: &mut [Slot<S>], order: &O, leaf: usize)
where
    S: Iterator<Item = Result<T, E>>,
    O: Order<T>,
{
    let source_count = slots.len();
    assert!(leaf < source_count, "the replayed leaf is a source");
    let mut candidate = leaf;
    let mut node = parent(source_count + leaf);
    while node > 0 {
        let parked = slots[node].node;
        if beats(slots, order, parked, candidate) {
            slots[node].node = candidate;
            candidate = parked;
        }
        node = parent(node);
    }
    slots[0].node = candidate;
    debug_assert!(
        (0..source_count).all(|other| !beats(slots, order, other, candidate)),
        "no source's head ranks before the winner's"
    );
}

/// Whether source `a`'s head ranks strictly before source `b`'s: errors first, then items in
/// `order`, then exhausted sources; ties go to the lower source index.
fn beats<S, T, E, O>(slots: &[Slot<S>], order: &O, a: usize, b: usize) -> bool
where
    S: Iterator<Item = Result<T, E>>,
    O: Order<T>,
{
    let by_head = match (&slots[a].head, &slots[b].head) {
        (Some(Ok(item_a)), Some(Ok(item_b))) => order.cmp(item_a, item_b),
        (head_a, head_b) => class(head_a.as_ref()).cmp(&class(head_b.as_ref())),
    };
    by_head.then(a.cmp(&b)) == Ordering::Less
}

/// A head's rank before its item is looked at: an error, an item, or nothing.
fn class<T, E>(head: Option<&Result<T, E>>) -> u8 {
    match head {
        Some(Err(_)) => 0,
        Some(Ok(_)) => 1,
        None => 2,
    }
}

/// The parent of `node` in the implicit tree (leaf `i` of `k` is node `k + i`).
fn parent(node: usize) -> usize {
    node / 2
}
