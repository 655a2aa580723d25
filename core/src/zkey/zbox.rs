//! [`ZBox`]: a box `[prefix_lo, prefix_hi] x [version_lo, version_hi]` on the Z-curve, and the
//! Tropf-Herzog BIGMIN / LITMAX that let a scan over `M` order jump over the runs of codes
//! that leave the box instead of stepping through them.
//!
//! Reference: H. Tropf and H. Herzog, "Multidimensional Range Search in Dynamically Balanced
//! Trees", Angewandte Informatik 2/1981. Their bit-level algorithm works for any assignment of
//! bits to dimensions; ours is byte interleaving, so each dimension owns alternate bytes of `M`.

use core::ops::{Bound, RangeBounds, RangeInclusive};

use super::{PREFIX_LEN, interleave, key_prefix};
use crate::Version;

/// The bits of `M` that hold the key prefix `p`: bytes 0, 2, .., 14 counting from the most
/// significant byte.
pub const PREFIX_MASK: u128 = 0xFF00_FF00_FF00_FF00_FF00_FF00_FF00_FF00;
/// The bits of `M` that hold the version `t`.
pub const VERSION_MASK: u128 = !PREFIX_MASK;

/// An inclusive box in (prefix, version) space, non-empty by construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZBox {
    prefix_lo: u64,
    prefix_hi: u64,
    version_lo: u64,
    version_hi: u64,
}

impl ZBox {
    /// The box `[prefix_lo, prefix_hi] x [version_lo, version_hi]`, or `None` when empty.
    #[must_use]
    pub fn new(prefix_lo: u64, prefix_hi: u64, version_lo: u64, version_hi: u64) -> Option<ZBox> {
        (prefix_lo <= prefix_hi && version_lo <= version_hi).then_some(ZBox {
            prefix_lo,
            prefix_hi,
            version_lo,
            version_hi,
        })
    }

    /// The smallest box covering every (key, version) with key in `keys` and version in
    /// `versions`, or `None` when no pair can be in both ranges.
    ///
    /// The box is over key *prefixes*, so it may also cover keys just outside `keys` that share
    /// a boundary key's first 8 bytes: callers check the exact key range on each hit.
    #[must_use]
    pub fn covering<'k>(
        keys: &impl RangeBounds<&'k [u8]>,
        versions: &impl RangeBounds<Version>,
    ) -> Option<ZBox> {
        if key_range_is_empty(keys.start_bound(), keys.end_bound()) {
            return None;
        }
        let prefix_lo = match keys.start_bound() {
            // The smallest key after `key` is `key ++ [0]`, with the same prefix.
            Bound::Included(key) | Bound::Excluded(key) => key_prefix(key),
            Bound::Unbounded => 0,
        };
        let prefix_hi = match keys.end_bound() {
            Bound::Included(key) => key_prefix(key),
            Bound::Excluded(key) => prefix_max_below(key)?,
            Bound::Unbounded => u64::MAX,
        };
        let version_lo = match versions.start_bound() {
            Bound::Included(v) => v.get(),
            Bound::Excluded(v) => v.get().checked_add(1)?,
            Bound::Unbounded => 0,
        };
        let version_hi = match versions.end_bound() {
            Bound::Included(v) => v.get(),
            Bound::Excluded(v) => v.get().checked_sub(1)?,
            Bound::Unbounded => u64::MAX,
        };
        ZBox::new(prefix_lo, prefix_hi, version_lo, version_hi)
    }

    /// The prefixes in the box: `prefix_lo..=prefix_hi`.
    #[must_use]
    pub fn prefix_range(&self) -> RangeInclusive<u64> {
        self.prefix_lo..=self.prefix_hi
    }

    /// The versions in the box: `version_lo..=version_hi`.
    #[must_use]
    pub fn version_range(&self) -> RangeInclusive<u64> {
        self.version_lo..=self.version_hi
    }

    /// The smallest code in the box: its low corner.
    #[must_use]
    pub fn morton_min(&self) -> u128 {
        interleave(self.prefix_lo, self.version_lo)
    }

    /// The largest code in the box: its high corner.
    #[must_use]
    pub fn morton_max(&self) -> u128 {
        interleave(self.prefix_hi, self.version_hi)
    }

    /// Whether `(prefix, version)` lies in the box.
    #[must_use]
    pub fn contains_point(&self, prefix: u64, version: u64) -> bool {
        (self.prefix_lo..=self.prefix_hi).contains(&prefix)
            && (self.version_lo..=self.version_hi).contains(&version)
    }

    /// Whether the code `morton` lies in the box.
    #[must_use]
    pub fn contains(&self, morton: u128) -> bool {
        let (prefix, version) = super::deinterleave(morton);
        self.contains_point(prefix, version)
    }

    /// Whether the box meets the rectangle `[prefix_min, prefix_max] x [version_min,
    /// version_max]` (a block's zone map).
    #[must_use]
    pub fn intersects(
        &self,
        prefix_min: u64,
        prefix_max: u64,
        version_min: u64,
        version_max: u64,
    ) -> bool {
        prefix_min <= self.prefix_hi
            && self.prefix_lo <= prefix_max
            && version_min <= self.version_hi
            && self.version_lo <= version_max
    }

    /// BIGMIN: the smallest code in the box that is `>= morton`, or `None` if there is none.
    #[must_use]
    pub fn next_at_or_after(&self, morton: u128) -> Option<u128> {
        self.codes().next_at_or_after(morton)
    }

    /// LITMAX: the largest code in the box that is `<= morton`, or `None` if there is none.
    #[must_use]
    pub fn prev_at_or_before(&self, morton: u128) -> Option<u128> {
        self.codes().prev_at_or_before(morton)
    }

    /// The box as corner codes of the byte interleave.
    fn codes(&self) -> CodeBox {
        CodeBox { min: self.morton_min(), max: self.morton_max(), first_dimension: PREFIX_MASK }
    }
}

/// A box on a Z-curve of two dimensions interleaved in any pattern, given by its corner codes
/// and the bits of the code that hold the first dimension (the other bits hold the second).
/// [`ZBox`] is the byte interleave of the zkey; history segments use it with a bit interleave
/// (`interleave_bits`). BIGMIN and LITMAX are written once, here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeBox {
    min: u128,
    max: u128,
    first_dimension: u128,
}

impl CodeBox {
    /// The box from corner `min` to corner `max`, where `first_dimension` masks the bits of the
    /// first dimension; `None` when `min` is above `max` in either dimension.
    #[must_use]
    pub fn new(min: u128, max: u128, first_dimension: u128) -> Option<CodeBox> {
        let second_dimension = !first_dimension;
        let ordered = min & first_dimension <= max & first_dimension
            && min & second_dimension <= max & second_dimension;
        ordered.then_some(CodeBox { min, max, first_dimension })
    }

    /// The smallest code in the box: its low corner.
    #[must_use]
    pub fn code_min(&self) -> u128 {
        self.min
    }

    /// The largest code in the box: its high corner.
    #[must_use]
    pub fn code_max(&self) -> u128 {
        self.max
    }

    /// Whether `code` lies in the box. The bits of one dimension keep their order inside the
    /// code, so comparing the masked codes compares that dimension.
    #[must_use]
    pub fn contains(&self, code: u128) -> bool {
        [self.first_dimension, !self.first_dimension]
            .into_iter()
            .all(|mask| (self.min & mask..=self.max & mask).contains(&(code & mask)))
    }

    /// BIGMIN: the smallest code in the box that is `>= code`, or `None` if there is none.
    ///
    /// Tropf-Herzog: walk the bits from the top, keeping `min` and `max`, the corners of the
    /// part of the box still in play, and `bigmin`, the best candidate seen so far above
    /// `code`. Each step compares bit i of (`code`, `min`, `max`).
    #[must_use]
    pub fn next_at_or_after(&self, code: u128) -> Option<u128> {
        if self.contains(code) {
            return Some(code);
        }
        let (mut min, mut max) = (self.min, self.max);
        let mut bigmin = None;
        let mut below = u128::MAX;
        while let Some(bit) = highest_differing_bit(code, min, max, below) {
            below = bit - 1;
            let same_dimension = self.lower_bits_of_same_dimension(bit);
            match (code & bit != 0, min & bit != 0, max & bit != 0) {
                // The box straddles `bit` and `code` is below it: the upper half's least
                // code is a candidate; go on in the lower half.
                (false, false, true) => {
                    bigmin = Some(load_high(min, bit, same_dimension));
                    max = load_low(max, bit, same_dimension);
                }
                // The whole remaining box is above `code`: its least code is the answer.
                (false, true, true) => return Some(min),
                // The whole remaining box is below `code`: the last candidate is the answer.
                (true, false, false) => return bigmin,
                // `code` is in the upper half of a straddling box: go on there.
                (true, false, true) => min = load_high(min, bit, same_dimension),
                (_, true, false) => unreachable!("box corner min above max at {bit:#x}"),
                // Never chosen by `highest_differing_bit`.
                (false, false, false) | (true, true, true) => {}
            }
        }
        // Reached only when `code` matches the box on every bit, i.e. is in it: excluded above.
        bigmin
    }

    /// LITMAX: the largest code in the box that is `<= code`, or `None` if there is none.
    ///
    /// The mirror image of [`CodeBox::next_at_or_after`].
    #[must_use]
    pub fn prev_at_or_before(&self, code: u128) -> Option<u128> {
        if self.contains(code) {
            return Some(code);
        }
        let (mut min, mut max) = (self.min, self.max);
        let mut litmax = None;
        let mut below = u128::MAX;
        while let Some(bit) = highest_differing_bit(code, min, max, below) {
            below = bit - 1;
            let same_dimension = self.lower_bits_of_same_dimension(bit);
            match (code & bit != 0, min & bit != 0, max & bit != 0) {
                // `code` is in the lower half of a straddling box: go on there.
                (false, false, true) => max = load_low(max, bit, same_dimension),
                // The whole remaining box is above `code`: the last candidate is the answer.
                (false, true, true) => return litmax,
                // The whole remaining box is below `code`: its greatest code is the answer.
                (true, false, false) => return Some(max),
                // The box straddles `bit` and `code` is above it: the lower half's greatest
                // code is a candidate; go on in the upper half.
                (true, false, true) => {
                    litmax = Some(load_low(max, bit, same_dimension));
                    min = load_high(min, bit, same_dimension);
                }
                (_, true, false) => unreachable!("box corner min above max at {bit:#x}"),
                (false, false, false) | (true, true, true) => {}
            }
        }
        litmax
    }

    /// The bits below `bit` that belong to the same dimension as `bit`.
    fn lower_bits_of_same_dimension(&self, bit: u128) -> u128 {
        let dimension = if bit & self.first_dimension != 0 {
            self.first_dimension
        } else {
            !self.first_dimension
        };
        dimension & (bit - 1)
    }
}

/// The highest bit among `below` where `morton`, `min` and `max` do not all agree, or `None`.
///
/// BIGMIN and LITMAX leave their state alone at a bit where the three agree, so they visit
/// only these bits: at most 128 steps, often a handful. Bits above the current one agree in
/// `min` and `max` (each step makes them agree there), so `min <= max` in each dimension gives
/// `min`'s bit <= `max`'s bit at the returned bit.
fn highest_differing_bit(morton: u128, min: u128, max: u128, below: u128) -> Option<u128> {
    let differing = ((morton ^ min) | (morton ^ max)) & below;
    (differing != 0).then(|| 1 << (u128::BITS - 1 - differing.leading_zeros()))
}

/// Whether no key lies between the two bounds. Keys are ordered bytewise, and the key right
/// after `start` is `start ++ [0]`: so `(Excluded(a), Excluded(a ++ [0]))` is empty too.
fn key_range_is_empty(start: Bound<&&[u8]>, end: Bound<&&[u8]>) -> bool {
    match (start, end) {
        (Bound::Included(start), Bound::Included(end)) => start > end,
        (Bound::Included(start), Bound::Excluded(end))
        | (Bound::Excluded(start), Bound::Included(end)) => start >= end,
        (Bound::Excluded(start), Bound::Excluded(end)) => start >= end || is_successor(start, end),
        (Bound::Unbounded, Bound::Excluded(end)) => end.is_empty(),
        (_, Bound::Unbounded) | (Bound::Unbounded, Bound::Included(_)) => false,
    }
}

/// Whether `next` is `key ++ [0]`, the key right after `key`.
fn is_successor(key: &[u8], next: &[u8]) -> bool {
    next.split_last().is_some_and(|(&last, head)| last == 0 && head == key)
}

/// The largest prefix of a key below `end`, or `None` when no key is below `end` (it is empty).
///
/// A key below `end` with `end`'s own prefix exists when `end` is longer than the prefix
/// (`end[..8]` is one) or ends in a zero byte (drop it). Otherwise every key below `end` has a
/// smaller prefix, and `key_prefix(end) - 1` is one of them (its 8 bytes as a key).
fn prefix_max_below(end: &[u8]) -> Option<u64> {
    let prefix = key_prefix(end);
    if end.len() > PREFIX_LEN || end.last() == Some(&0) {
        Some(prefix)
    } else {
        prefix.checked_sub(1)
    }
}

/// Tropf-Herzog's "load 1000...": set `bit`, clear `same_dimension` (the lower bits of its
/// dimension).
fn load_high(code: u128, bit: u128, same_dimension: u128) -> u128 {
    (code & !same_dimension) | bit
}

/// Tropf-Herzog's "load 0111...": clear `bit`, set `same_dimension`.
fn load_low(code: u128, bit: u128, same_dimension: u128) -> u128 {
    (code & !bit) | same_dimension
}
