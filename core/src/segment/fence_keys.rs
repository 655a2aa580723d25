//! Fence keys held in memory: the full key and version of every `stride`-th key-index
//! reference, so that a point read or a range start binary-searches memory first and then
//! decodes at most `log2(stride)` entries, instead of decoding one entry (in another data
//! block) per probe over the whole on-disk window.
//!
//! The on-disk fences (`key_index.rs`) hold only 8-byte key prefixes: keys that share their
//! first 8 bytes (every `user:...` or `SurrealDB` key) fall into one window as wide as the
//! segment. These fence keys are built when a segment is opened (one entry decoded per
//! `stride` references), under a byte budget: when the samples outgrow it, every other one is
//! dropped and the stride doubles, so memory stays within the budget whatever the segment.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use core::cmp::Ordering;

use super::bytes::partition_point;
use crate::Version;

/// A view of a segment's fence keys: sample `i` is the entry of key-index reference
/// `i * stride`. Built by `FenceKeys` (the `alloc` feature); `Copy`, as [`super::Segment`].
#[derive(Clone, Copy, Debug)]
pub struct FenceKeysRef<'a> {
    stride: usize,
    key_bytes: &'a [u8],
    /// End of sample `i`'s key in `key_bytes`; it starts where sample `i - 1` ends.
    key_ends: &'a [u32],
    versions: &'a [u64],
    /// Sample `i`'s key prefix ([`crate::zkey::key_prefix`]): most probes compare these and
    /// never read the key.
    prefixes: &'a [u64],
    /// The first byte of every data block, a dense copy of the block index's offsets: finding
    /// the block of an entry searches 4 bytes per block in memory, not the block index.
    block_starts: &'a [u32],
}

impl<'a> FenceKeysRef<'a> {
    /// Number of samples.
    #[must_use]
    pub fn len(&self) -> usize {
        self.versions.len()
    }

    /// Whether there are no samples.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    /// References between two samples.
    #[must_use]
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Whether these samples can describe a key index of `ref_count` references: one sample
    /// per `stride` references, the first at reference 0.
    pub(super) fn fits(&self, ref_count: usize, block_count: usize) -> bool {
        self.block_starts.len() == block_count
            && self.stride > 0
            && self.key_ends.len() == self.versions.len()
            && self.prefixes.len() == self.versions.len()
            && self.len() == ref_count.div_ceil(self.stride)
            && self.key_ends.last().is_none_or(|&end| end as usize == self.key_bytes.len())
    }

    /// Sample `index`: its key and version.
    fn sample(&self, index: usize) -> (&'a [u8], Version) {
        let start = match index.checked_sub(1) {
            Some(previous) => self.key_ends.get(previous).map_or(0, |&end| end as usize),
            None => 0,
        };
        let end = self.key_ends.get(index).map_or(start, |&end| end as usize);
        let key = self.key_bytes.get(start..end).unwrap_or_default();
        let version = self.versions.get(index).map_or(Version::ZERO, |&raw| Version::new(raw));
        (key, version)
    }

    /// The index of the block holding file offset `offset`, if the blocks start at or before
    /// it (the caller checks the block's end).
    pub(super) fn block_containing(&self, offset: u32) -> Option<usize> {
        self.block_starts.partition_point(|&start| start <= offset).checked_sub(1)
    }

    /// The window `[lo, hi)` of the `ref_count` references that holds the first one whose entry
    /// is not `before` (a predicate true on a prefix of the key order), or `hi` when every
    /// reference in the window is before: every reference below `lo` is before, reference
    /// `hi` (if any) is not. At most `stride - 1` references wide. `prefix` is the key prefix
    /// of the target `before` compares with: a sample with a smaller prefix is before it, one
    /// with a larger prefix is not, whatever the rest of the key.
    pub(super) fn window(
        &self,
        ref_count: usize,
        prefix: u64,
        mut before: impl FnMut(&[u8], Version) -> bool,
    ) -> (usize, usize) {
        let first_not_before = partition_point(0, self.len(), |index| {
            match self.prefixes.get(index).map(|sample| sample.cmp(&prefix)) {
                Some(Ordering::Less) => true,
                Some(Ordering::Greater) => false,
                _ => {
                    let (key, version) = self.sample(index);
                    before(key, version)
                }
            }
        });
        let lo = first_not_before
            .checked_sub(1)
            .map_or(0, |below| below.saturating_mul(self.stride).saturating_add(1));
        let hi = first_not_before.saturating_mul(self.stride).min(ref_count);
        (lo.min(hi), hi)
    }
}

#[cfg(feature = "alloc")]
pub use owned::FenceKeys;

#[cfg(feature = "alloc")]
mod owned {
    use alloc::vec::Vec;

    use super::FenceKeysRef;
    use crate::Corruption;
    use crate::segment::Segment;
    use crate::segment::reader::EntryReader;

    /// The first stride tried: 16 references, so a probe decodes at most 4 entries.
    pub const FENCE_KEY_STRIDE_MIN: usize = 16;

    /// A segment's fence keys, owned. See the module docs.
    #[derive(Clone, Debug, Default)]
    pub struct FenceKeys {
        stride: usize,
        key_bytes: Vec<u8>,
        key_ends: Vec<u32>,
        versions: Vec<u64>,
        prefixes: Vec<u64>,
        block_starts: Vec<u32>,
    }

    impl FenceKeys {
        /// Samples `segment`'s key index, keeping the samples within `bytes_max` bytes of
        /// heap (see [`FenceKeys::heap_bytes`]); `None` when even one sample per segment
        /// does not fit. Reads one entry per sample, verifying the blocks it reads: a
        /// damaged block is an error, as for any query that reads it.
        /// A key-ordered segment has no key index to sample (its block keys, in the file,
        /// serve the same purpose): `None`.
        pub fn build(segment: &Segment<'_>, bytes_max: usize) -> Result<Option<Self>, Corruption> {
            if segment.order() == crate::segment::Order::Key {
                return Ok(None);
            }
            let ref_count = segment.key_index().len();
            // Key ends are `u32`s.
            let bytes_max = bytes_max.min(u32::MAX as usize);
            let mut reader = EntryReader::new(*segment);
            let block_starts: Vec<u32> = (0..segment.block_count())
                .map(|index| segment.block_index.handle(index).map(|handle| handle.offset))
                .collect::<Result<_, Corruption>>()?;
            let mut fences =
                FenceKeys { stride: FENCE_KEY_STRIDE_MIN, block_starts, ..FenceKeys::default() };
            let mut index = 0;
            while index < ref_count {
                let entry = reader.entry(index)?;
                fences.push(entry.key, entry.version.get());
                while fences.heap_bytes() > bytes_max && fences.versions.len() > 1 {
                    fences.halve();
                }
                if fences.heap_bytes() > bytes_max {
                    return Ok(None);
                }
                index = fences.versions.len().saturating_mul(fences.stride);
            }
            let block_count = segment.block_count();
            assert!(
                fences.view().fits(ref_count, block_count),
                "a sample per stride, a start per block"
            );
            fences.shrink();
            assert!(fences.heap_bytes() <= bytes_max, "halved until within the budget");
            Ok(Some(fences))
        }

        /// The view the segment reads.
        #[must_use]
        pub fn view(&self) -> FenceKeysRef<'_> {
            FenceKeysRef {
                stride: self.stride,
                key_bytes: &self.key_bytes,
                key_ends: &self.key_ends,
                versions: &self.versions,
                prefixes: &self.prefixes,
                block_starts: &self.block_starts,
            }
        }

        /// Bytes of heap the samples hold: their keys, plus 20 bytes each (key end, version,
        /// prefix),
        /// plus 4 bytes per data block. Once built, the vectors are exactly that long.
        #[must_use]
        pub fn heap_bytes(&self) -> usize {
            let per_sample = size_of::<u32>() + 2 * size_of::<u64>();
            let blocks = self.block_starts.len() * size_of::<u32>();
            self.key_bytes.len() + self.versions.len() * per_sample + blocks
        }

        fn shrink(&mut self) {
            self.key_bytes.shrink_to_fit();
            self.key_ends.shrink_to_fit();
            self.versions.shrink_to_fit();
            self.prefixes.shrink_to_fit();
            self.block_starts.shrink_to_fit();
        }

        fn push(&mut self, key: &[u8], version: u64) {
            self.key_bytes.extend_from_slice(key);
            let end = u32::try_from(self.key_bytes.len()).unwrap_or(u32::MAX);
            self.key_ends.push(end);
            self.versions.push(version);
            self.prefixes.push(crate::zkey::key_prefix(key));
        }

        /// Keeps samples 0, 2, 4, ...: the stride doubles.
        fn halve(&mut self) {
            let mut old = core::mem::take(self);
            let block_starts = core::mem::take(&mut old.block_starts);
            let view = old.view();
            *self = FenceKeys {
                stride: old.stride.saturating_mul(2),
                block_starts,
                ..FenceKeys::default()
            };
            for index in (0..view.len()).step_by(2) {
                let (key, version) = view.sample(index);
                self.push(key, version.get());
            }
        }
    }
}

#[cfg(all(test, feature = "alloc"))]
#[expect(clippy::indexing_slicing, clippy::unwrap_used, reason = "tests of small fixed cases")]
mod tests {
    use alloc::vec::Vec;

    use super::*;

    /// Every sorted list of up to 9 references over a 5-key alphabet of 8 entries, every
    /// stride up to 4, every target: the window holds the answer a linear search finds, and
    /// is at most `stride - 1` wide.
    #[test]
    fn window_holds_the_linear_search_answer_exhaustively() {
        // Short keys (distinct prefixes) and two sharing their first 8 bytes.
        let alphabet: [(&[u8], u64); 8] = [
            (b"", 2),
            (b"", 1),
            (b"a", 2),
            (b"a", 1),
            (b"ab", 2),
            (b"ab", 1),
            (b"abcdefgh1", 1),
            (b"abcdefgh2", 1),
        ];
        let before = |(key, version): (&[u8], u64), target: (&[u8], u64)| {
            (key, core::cmp::Reverse(version)) < (target.0, core::cmp::Reverse(target.1))
        };
        let mut cases = 0;
        for ref_count in 0..=9usize {
            // Sorted multisets of the alphabet: non-decreasing index sequences.
            let mut indices = alloc::vec![0usize; ref_count];
            loop {
                let refs: Vec<(&[u8], u64)> = indices.iter().map(|&i| alphabet[i]).collect();
                for stride in 1..=4 {
                    check_every_target(&refs, stride, &alphabet, before);
                    cases += 1;
                }
                if !next_non_decreasing(&mut indices, alphabet.len()) {
                    break;
                }
            }
        }
        assert!(cases > 10_000, "{cases} cases");
    }

    fn check_every_target(
        refs: &[(&[u8], u64)],
        stride: usize,
        targets: &[(&[u8], u64)],
        before: impl Fn((&[u8], u64), (&[u8], u64)) -> bool + Copy,
    ) {
        let samples: Vec<(&[u8], u64)> = refs.iter().copied().step_by(stride).collect();
        let mut key_bytes = Vec::new();
        let mut key_ends = Vec::new();
        for (key, _) in &samples {
            key_bytes.extend_from_slice(key);
            key_ends.push(u32::try_from(key_bytes.len()).unwrap());
        }
        let versions: Vec<u64> = samples.iter().map(|s| s.1).collect();
        let prefixes: Vec<u64> = samples.iter().map(|s| crate::zkey::key_prefix(s.0)).collect();
        let view = FenceKeysRef {
            stride,
            key_bytes: &key_bytes,
            key_ends: &key_ends,
            versions: &versions,
            prefixes: &prefixes,
            block_starts: &[],
        };
        assert!(view.fits(refs.len(), 0));
        for &target in targets {
            let linear = refs.iter().position(|&r| !before(r, target)).unwrap_or(refs.len());
            let (lo, hi) =
                view.window(refs.len(), crate::zkey::key_prefix(target.0), |key, version| {
                    before((key, version.get()), target)
                });
            assert!(
                lo <= linear && linear <= hi,
                "{refs:?} stride {stride} {target:?}: {lo}..{hi}"
            );
            assert!(hi - lo < stride.max(1), "window {lo}..{hi} wider than the stride {stride}");
            let answer = (lo..hi).find(|&i| !before(refs[i], target)).unwrap_or(hi);
            assert_eq!(answer, linear, "{refs:?} stride {stride} {target:?}");
        }
    }

    /// Advances `indices` to the next non-decreasing sequence over `0..base`; false at the end.
    fn next_non_decreasing(indices: &mut [usize], base: usize) -> bool {
        for position in (0..indices.len()).rev() {
            if indices[position] + 1 < base {
                let value = indices[position] + 1;
                for later in &mut indices[position..] {
                    *later = value;
                }
                return true;
            }
        }
        false
    }

    #[test]
    fn samples_that_do_not_match_the_count_are_refused() {
        let versions = [1u64, 2];
        let key_ends = [1u32, 2];
        let block_starts = [0u32, 100];
        let view = FenceKeysRef {
            stride: 4,
            key_bytes: b"ab",
            key_ends: &key_ends,
            versions: &versions,
            prefixes: &[0, 0],
            block_starts: &block_starts,
        };
        assert!(view.fits(5, 2) && view.fits(8, 2));
        assert!(!view.fits(4, 2) && !view.fits(9, 2) && !view.fits(0, 2) && !view.fits(8, 3));
        let zero = FenceKeysRef { stride: 0, ..view };
        assert!(!zero.fits(8, 2));
        let short_keys = FenceKeysRef { key_bytes: b"a", ..view };
        assert!(!short_keys.fits(8, 2));
        assert_eq!(view.block_containing(0), Some(0));
        assert_eq!(view.block_containing(99), Some(0));
        assert_eq!(view.block_containing(100), Some(1));
        assert_eq!(view.block_containing(u32::MAX), Some(1));
        let late = [10u32];
        assert_eq!(FenceKeysRef { block_starts: &late, ..view }.block_containing(5), None);
    }
}
