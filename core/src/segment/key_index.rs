//! The key-order index: one `u32` file offset per entry, pointing at the entry in its data
//! block, sorted by (key ascending, version descending); and the fences: the key prefix
//! (`u64` LE, see [`crate::zkey::key_prefix`]) of every `fence_stride`-th reference, a small
//! array that a search reads first to narrow the run of references to compare keys against.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use super::bytes::{partition_point, u32_at, u64_at};
use crate::Corruption;

/// Bytes of one reference.
pub(super) const KEY_REF_LEN: usize = size_of::<u32>();
/// Bytes of one fence.
pub(super) const FENCE_LEN: usize = size_of::<u64>();
/// The fence stride the builder writes: one fence per 16 references. A search reads
/// `log2(entries / 16)` fences (8 bytes each, adjacent) before it decodes about `log2(16)`
/// entries.
pub(super) const FENCE_STRIDE: u32 = 16;
/// Fences [`KeyIndex::window`] reads one by one after the first one not below the prefix,
/// before it binary-searches the rest.
const FENCES_NEAR: usize = 4;
/// The largest fence stride a reader accepts.
pub(super) const FENCE_STRIDE_MAX: u32 = 1 << 16;

/// Number of fences for `entry_count` references at `fence_stride`.
pub(super) fn fence_count(entry_count: u64, fence_stride: u32) -> u64 {
    assert!(fence_stride > 0, "the fence stride is validated before use");
    entry_count.div_ceil(u64::from(fence_stride))
}

/// A zero-copy view of the key index and fence sections.
#[derive(Clone, Copy, Debug)]
pub(super) struct KeyIndex<'a> {
    refs: &'a [u8],
    fences: &'a [u8],
    fence_stride: usize,
    section_offset: u64,
}

impl<'a> KeyIndex<'a> {
    /// A view over `refs` and `fences`, whose lengths the footer validation has checked
    /// against the entry count and `fence_stride`.
    pub(super) fn new(
        refs: &'a [u8],
        fences: &'a [u8],
        fence_stride: u32,
        section_offset: u64,
    ) -> KeyIndex<'a> {
        assert!(fence_stride > 0, "the fence stride is validated before use");
        KeyIndex { refs, fences, fence_stride: fence_stride as usize, section_offset }
    }

    /// Number of references (= entries).
    pub(super) fn len(&self) -> usize {
        self.refs.len() / KEY_REF_LEN
    }

    /// The file offset of the entry the `index`-th reference points at.
    pub(super) fn entry_offset(&self, index: usize) -> Result<u32, Corruption> {
        index
            .checked_mul(KEY_REF_LEN)
            .and_then(|at| u32_at(self.refs, at))
            .ok_or(Corruption::new(self.section_offset, "key index reference out of range"))
    }

    fn fence_count(&self) -> usize {
        self.fences.len() / FENCE_LEN
    }

    fn fence(&self, index: usize) -> u64 {
        u64_at(self.fences, index.saturating_mul(FENCE_LEN)).unwrap_or(u64::MAX)
    }

    /// The window `[lo, hi)` of references that can hold keys with prefix `prefix`: every
    /// reference before `lo` has a smaller prefix, every one from `hi` on a larger one.
    pub(super) fn window(&self, prefix: u64) -> (usize, usize) {
        let fence_count = self.fence_count();
        let below = partition_point(0, fence_count, |index| self.fence(index) < prefix);
        let at_or_below = self.fences_at_most(below, prefix);
        let lo = below.saturating_sub(1).saturating_mul(self.fence_stride);
        let hi = at_or_below.saturating_mul(self.fence_stride).min(self.len());
        (lo.min(hi), hi)
    }

    /// The first fence from `from` on above `prefix` (every fence before `from` is below
    /// it). Keys with distinct prefixes have one or two fences equal to theirs, so the fences
    /// just after `from` are probed first (adjacent: one cache line); a wider run of equal
    /// fences (keys sharing their first 8 bytes) is binary-searched as before.
    fn fences_at_most(&self, from: usize, prefix: u64) -> usize {
        let fence_count = self.fence_count();
        let near_end = from.saturating_add(FENCES_NEAR).min(fence_count);
        for index in from..near_end {
            if self.fence(index) > prefix {
                return index;
            }
        }
        partition_point(near_end, fence_count, |index| self.fence(index) <= prefix)
    }

    /// Checks that every reference points into the data region `[0, data_len)`.
    pub(super) fn validate(&self, data_len: u64) -> Result<(), Corruption> {
        for index in 0..self.len() {
            if u64::from(self.entry_offset(index)?) >= data_len {
                let at = self.section_offset + (index * KEY_REF_LEN) as u64;
                return Err(Corruption::new(at, "key index reference past the data region"));
            }
        }
        Ok(())
    }
}
