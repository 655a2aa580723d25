//! The block index: one fixed-width [`BlockHandle`] per data block, in file order.
//!
//! | bytes | field |
//! |-------|-------|
//! | 4 | block offset in the file, `u32` LE |
//! | 4 | block length in bytes, without its checksum, `u32` LE |
//! | 16 | `M` of the block's first entry, `u128` LE |
//! | 32 | zone map: prefix min, prefix max, version min, version max, `u64` LE each |
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use super::bytes::{partition_point, slice_at, u32_at, u128_at};
use super::footer::Order;
use super::zone::{ZONE_MAP_LEN, ZoneMap};
use crate::Corruption;
use crate::checksum::CHECKSUM_LEN;

const OFFSET_AT: usize = 0;
const LEN_AT: usize = OFFSET_AT + size_of::<u32>();
const FIRST_MORTON_AT: usize = LEN_AT + size_of::<u32>();
const ZONE_MAP_AT: usize = FIRST_MORTON_AT + size_of::<u128>();
/// Bytes of one encoded [`BlockHandle`].
pub(super) const BLOCK_HANDLE_LEN: usize = ZONE_MAP_AT + ZONE_MAP_LEN;
const _: () = assert!(BLOCK_HANDLE_LEN == 56);

/// Where a data block is and what it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct BlockHandle {
    /// Offset of the block's first byte in the file.
    pub(super) offset: u32,
    /// Bytes of the block, not counting the checksum that follows it.
    pub(super) len: u32,
    /// `M` of the block's first entry: the block index is sorted by it.
    pub(super) first_morton: u128,
    /// Bounds of the block's entries in (prefix, version) space.
    pub(super) zone: ZoneMap,
}

impl BlockHandle {
    /// Offset just past the block's checksum: where the next block starts.
    pub(super) fn end(&self) -> u64 {
        u64::from(self.offset) + u64::from(self.len) + CHECKSUM_LEN as u64
    }

    /// Bytes a reader of the block reads: the block and its checksum.
    pub(super) fn bytes_with_checksum(&self) -> u64 {
        u64::from(self.len) + CHECKSUM_LEN as u64
    }

    /// Writes the [`BLOCK_HANDLE_LEN`] bytes of the handle into `out`.
    pub(super) fn encode_into(&self, out: &mut [u8; BLOCK_HANDLE_LEN]) {
        let (offset, rest) = out.split_at_mut(LEN_AT);
        offset.copy_from_slice(&self.offset.to_le_bytes());
        let (len, rest) = rest.split_at_mut(FIRST_MORTON_AT - LEN_AT);
        len.copy_from_slice(&self.len.to_le_bytes());
        let (first_morton, zone) = rest.split_at_mut(ZONE_MAP_AT - FIRST_MORTON_AT);
        first_morton.copy_from_slice(&self.first_morton.to_le_bytes());
        self.zone.encode_into(zone);
    }

    /// Reads a handle from the first [`BLOCK_HANDLE_LEN`] bytes of `bytes`.
    /// The end of an encoded handle's block (its offset plus its length, without the
    /// checksum).
    pub(super) fn data_end_of(encoded: &[u8; BLOCK_HANDLE_LEN]) -> u64 {
        let offset = u32_at(encoded, OFFSET_AT).unwrap_or(u32::MAX);
        u64::from(offset) + u64::from(u32_at(encoded, LEN_AT).unwrap_or(0))
    }

    fn decode_from(bytes: &[u8]) -> Option<BlockHandle> {
        Some(BlockHandle {
            offset: u32_at(bytes, OFFSET_AT)?,
            len: u32_at(bytes, LEN_AT)?,
            first_morton: u128_at(bytes, FIRST_MORTON_AT)?,
            zone: ZoneMap::decode_from(bytes.get(ZONE_MAP_AT..)?)?,
        })
    }
}

/// A zero-copy view of the block index section.
#[derive(Clone, Copy, Debug)]
pub(super) struct BlockIndex<'a> {
    bytes: &'a [u8],
    /// Offset of the section in the file, for errors.
    section_offset: u64,
}

impl<'a> BlockIndex<'a> {
    /// A view of `bytes`, whose length must be a multiple of [`BLOCK_HANDLE_LEN`].
    pub(super) fn new(bytes: &'a [u8], section_offset: u64) -> Result<BlockIndex<'a>, Corruption> {
        if !bytes.len().is_multiple_of(BLOCK_HANDLE_LEN) {
            return Err(Corruption::new(section_offset, "block index length not a whole count"));
        }
        Ok(BlockIndex { bytes, section_offset })
    }

    /// Number of blocks.
    pub(super) fn block_count(&self) -> usize {
        self.bytes.len() / BLOCK_HANDLE_LEN
    }

    /// The handle of block `index`, or `None` past the last block.
    pub(super) fn get(&self, index: usize) -> Option<BlockHandle> {
        let at = index.checked_mul(BLOCK_HANDLE_LEN)?;
        BlockHandle::decode_from(slice_at(self.bytes, at, BLOCK_HANDLE_LEN)?)
    }

    /// The handle of block `index`, which the caller knows exists.
    pub(super) fn handle(&self, index: usize) -> Result<BlockHandle, Corruption> {
        self.get(index).ok_or(Corruption::new(self.section_offset, "block index out of range"))
    }

    /// `M` of the first entry of block `index` (`u128::MAX` past the end, which sorts last).
    fn first_morton(&self, index: usize) -> u128 {
        let at = index.saturating_mul(BLOCK_HANDLE_LEN).saturating_add(FIRST_MORTON_AT);
        u128_at(self.bytes, at).unwrap_or(u128::MAX)
    }

    /// The first block in `[from, block_count)` whose first entry has `M >= target`
    /// (`block_count` if none has).
    pub(super) fn first_at_or_after(&self, from: usize, target: u128) -> usize {
        // Most seeks of a box scan stay in or next to the current block: check that first.
        if self.first_morton(from) >= target {
            return from.min(self.block_count());
        }
        partition_point(from, self.block_count(), |index| self.first_morton(index) < target)
    }

    /// The block holding file offset `offset`: the last block that starts at or before it.
    /// Blocks are about equally long (a target size), so the search starts where `offset`
    /// would fall if they were and gallops from there: one or two handles read for most
    /// offsets, where a binary search reads `log2(blocks)` handles 56 bytes apart (a cache
    /// miss each on a large segment). Unequal blocks only lengthen the gallop, to at most
    /// about twice a binary search.
    pub(super) fn containing(&self, offset: u32) -> Option<usize> {
        let block_start = |index: usize| {
            let at = index.saturating_mul(BLOCK_HANDLE_LEN).saturating_add(OFFSET_AT);
            u32_at(self.bytes, at)
        };
        let starts_at_or_before =
            |index: usize| block_start(index).is_some_and(|start| start <= offset);
        let block_count = self.block_count();
        let last = block_count.checked_sub(1)?;
        let last_start = block_start(last).unwrap_or(u32::MAX).max(1);
        let guess = u64::from(offset).saturating_mul(last as u64) / u64::from(last_start);
        let guess = usize::try_from(guess).unwrap_or(usize::MAX).min(last);
        gallop_partition_point(guess, block_count, starts_at_or_before).checked_sub(1)
    }

    /// Checks that the blocks tile `[0, data_len)` in order, each non-empty and followed by its
    /// checksum, with first codes ascending and sane zone maps. Run once, at open.
    pub(super) fn validate(&self, data_len: u64, order: Order) -> Result<(), Corruption> {
        let mut expected_offset = 0u64;
        let mut previous_morton = 0u128;
        for index in 0..self.block_count() {
            let at = self.section_offset + (index * BLOCK_HANDLE_LEN) as u64;
            let corrupt = |what| Corruption::new(at, what);
            let handle = self.handle(index)?;
            if u64::from(handle.offset) != expected_offset {
                return Err(corrupt("block does not start where the previous one ends"));
            }
            if (handle.len as usize) < super::block::ENTRY_HEADER_LEN {
                return Err(corrupt("block shorter than one entry"));
            }
            // A key-ordered segment's blocks carry no code (0).
            let code_wrong = if order == Order::Key {
                handle.first_morton != 0
            } else {
                handle.first_morton < previous_morton
            };
            if code_wrong || !handle.zone.is_valid() {
                return Err(corrupt("block index out of order or zone map inverted"));
            }
            expected_offset = handle.end();
            previous_morton = handle.first_morton;
        }
        if expected_offset != data_len {
            return Err(Corruption::new(self.section_offset, "blocks do not fill the data region"));
        }
        Ok(())
    }
}

/// `partition_point(0, count, before)` for a predicate true on a prefix of `[0, count)`, found
/// by probing `guess`, then 1, 2, 4, ... indexes away from it until the boundary is bracketed,
/// then a binary search inside the bracket: `O(log d)` probes for a boundary `d` indexes from
/// the guess.
fn gallop_partition_point(
    guess: usize,
    count: usize,
    mut before: impl FnMut(usize) -> bool,
) -> usize {
    if guess >= count {
        return partition_point(0, count, before);
    }
    let (mut lo, mut hi) = (0, count);
    let mut step = 1_usize;
    if before(guess) {
        lo = guess + 1;
        while let Some(probe) = guess.checked_add(step).filter(|&probe| probe < count) {
            if !before(probe) {
                hi = probe;
                break;
            }
            lo = probe + 1;
            step = step.saturating_mul(2);
        }
    } else {
        hi = guess;
        while let Some(probe) = guess.checked_sub(step) {
            if before(probe) {
                lo = probe + 1;
                break;
            }
            hi = probe;
            step = step.saturating_mul(2);
        }
    }
    assert!(lo <= hi, "the bracket holds the boundary");
    partition_point(lo, hi, before)
}

#[cfg(test)]
mod tests {
    use super::gallop_partition_point;

    /// Every boundary of every length up to 40, from every guess, as a binary search finds it.
    #[test]
    fn galloping_finds_the_boundary_from_any_guess() {
        for count in 0..40 {
            for boundary in 0..=count {
                for guess in 0..count + 3 {
                    let mut probes = 0;
                    let found = gallop_partition_point(guess, count, |index| {
                        probes += 1;
                        assert!(index < count, "probe {index} past {count}");
                        index < boundary
                    });
                    assert_eq!(found, boundary, "{count} items, guess {guess}");
                    assert!(probes <= 2 * (usize::BITS - count.leading_zeros()) as usize + 2);
                }
            }
        }
    }
}
