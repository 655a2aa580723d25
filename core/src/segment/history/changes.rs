//! [`HistoryChanges`]: the box query `keys x versions` over a history segment.
//!
//! The key range maps through the key table, the version range through the version table, to
//! an ordinal box `[k_lo, k_hi) x [v_lo, v_hi)`; its corner codes make a [`CodeBox`]. The scan
//! reads a block only when its zone map meets the ordinal box; after each block it jumps with
//! BIGMIN from the next block's first code to the next code inside the box, and binary-searches
//! the block index for the block holding it, so runs of blocks outside the box are never read.
//! The ordinal box is exact (ranks preserve order), so no key or version is re-checked.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use super::super::bytes::partition_point;
use super::format::{BlockHandle, coordinate, decode_entry_at, morton_of};
use super::reader::HistorySegment;
use crate::checksum::CHECKSUM_LEN;
use crate::zkey::{CodeBox, INTERLEAVE_BITS_FIRST_MASK, interleave_bits};
use crate::{Corruption, Entry};

/// What a [`HistoryChanges`] scan did, to compare with what it returned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistoryChangesStats {
    /// Blocks read and checksummed.
    pub blocks_read: u64,
    /// Bytes of the blocks read, checksums included.
    pub bytes_read: u64,
    /// Blocks whose handle was looked at and whose zone map missed the box.
    pub blocks_pruned: u64,
    /// Blocks jumped over by BIGMIN without looking at them.
    pub blocks_jumped: u64,
    /// Entries decoded from the blocks read.
    pub entries_decoded: u64,
    /// Entries returned.
    pub entries_returned: u64,
    /// BIGMIN jumps.
    pub seeks: u64,
}

/// The ordinal box of a query, non-empty.
#[derive(Clone, Copy, Debug)]
struct OrdinalBox {
    key_lo: u32,
    key_hi: u32,
    version_lo: u32,
    version_hi: u32,
}

impl OrdinalBox {
    fn meets(&self, handle: &BlockHandle) -> bool {
        handle.key_ordinal_min <= self.key_hi
            && self.key_lo <= handle.key_ordinal_max
            && handle.version_ordinal_min <= self.version_hi
            && self.version_lo <= handle.version_ordinal_max
    }
}

/// Every entry of a history segment inside a box, in the segment's Z order.
#[derive(Clone, Debug)]
pub struct HistoryChanges<'a> {
    segment: HistorySegment<'a>,
    /// `None`: the box is empty, or the scan ended.
    boxes: Option<(OrdinalBox, CodeBox)>,
    /// The block under the scan, and the next position in it.
    block: &'a [u8],
    handle: BlockHandle,
    position: usize,
    /// The Morton code bound of the block: the next block's first code.
    block_end: Option<u64>,
    last_code: Option<u64>,
    /// The block after the one under the scan.
    next_block: usize,
    stats: HistoryChangesStats,
}

impl<'a> HistoryChanges<'a> {
    pub(super) fn new(
        segment: HistorySegment<'a>,
        (key_lo, key_hi): (u32, u32),
        (version_lo, version_hi): (u32, u32),
    ) -> HistoryChanges<'a> {
        let (key_count, version_count) = segment.ordinal_counts();
        let boxes = (key_lo < key_hi && version_lo < version_hi).then(|| {
            let ordinals =
                OrdinalBox { key_lo, key_hi: key_hi - 1, version_lo, version_hi: version_hi - 1 };
            let corner = |key_ordinal, version_ordinal| {
                let key = coordinate(key_ordinal, key_count);
                u128::from(interleave_bits(key, coordinate(version_ordinal, version_count)))
            };
            let zbox = CodeBox::new(
                corner(ordinals.key_lo, ordinals.version_lo),
                corner(ordinals.key_hi, ordinals.version_hi),
                INTERLEAVE_BITS_FIRST_MASK,
            );
            zbox.map(|zbox| (ordinals, zbox))
        });
        HistoryChanges {
            segment,
            boxes: boxes.flatten(),
            block: &[],
            handle: BlockHandle::default(),
            position: 0,
            block_end: None,
            last_code: None,
            next_block: 0,
            stats: HistoryChangesStats::default(),
        }
    }

    /// The work done so far.
    #[must_use]
    pub fn stats(&self) -> HistoryChangesStats {
        self.stats
    }

    /// The next entry in the box, or `None` at the end.
    fn advance(&mut self) -> Result<Option<Entry<'a>>, Corruption> {
        while let Some((ordinals, zbox)) = self.boxes {
            if self.position < self.block.len() {
                let (code, hit) = self.decode_next(&zbox)?;
                if let Some(entry) = hit {
                    self.stats.entries_returned += 1;
                    return Ok(Some(entry));
                }
                if u128::from(code) > zbox.code_max() {
                    break;
                }
                continue;
            }
            if !self.enter_next_block(&ordinals, &zbox)? {
                break;
            }
        }
        self.boxes = None;
        Ok(None)
    }

    /// Moves to the next block that may hold an entry of the box: BIGMIN from the next
    /// block's first code, the block holding that code, then the zone map. Returns `false`
    /// when no block is left.
    fn enter_next_block(
        &mut self,
        ordinals: &OrdinalBox,
        zbox: &CodeBox,
    ) -> Result<bool, Corruption> {
        let segment = self.segment;
        loop {
            let Some(next) = segment.block_handle(self.next_block) else {
                return Ok(false);
            };
            self.stats.seeks += 1;
            let Some(target) = zbox.next_at_or_after(u128::from(next.first_morton)) else {
                return Ok(false);
            };
            let first_at_or_below_target = |block: usize| {
                segment
                    .block_handle(block)
                    .is_some_and(|handle| u128::from(handle.first_morton) <= target)
            };
            let holder =
                partition_point(self.next_block, segment.block_count(), first_at_or_below_target)
                    .saturating_sub(1)
                    .max(self.next_block);
            self.stats.blocks_jumped += (holder - self.next_block) as u64;
            self.next_block = holder + 1;
            let handle = segment.block_handle(holder).unwrap_or_default();
            if !ordinals.meets(&handle) {
                self.stats.blocks_pruned += 1;
                continue;
            }
            let (block, handle) = segment.checked_block(holder)?;
            self.stats.blocks_read += 1;
            self.stats.bytes_read += u64::from(handle.len) + CHECKSUM_LEN as u64;
            self.block = block;
            self.handle = handle;
            self.position = 0;
            self.last_code = None;
            self.block_end = segment.block_handle(self.next_block).map(|h| h.first_morton);
            return Ok(true);
        }
    }

    /// Decodes the entry at the scan's position in the block and checks it: ordinals below
    /// the counts and inside the block's zone map, codes strictly ascending from the block's
    /// first code and below the next block's first. Returns its code, and its entry when the
    /// code is in the box.
    fn decode_next(&mut self, zbox: &CodeBox) -> Result<(u64, Option<Entry<'a>>), Corruption> {
        let offset = u64::from(self.handle.offset) + self.position as u64;
        let corrupt = |what| Corruption::new(offset, what);
        let raw = decode_entry_at(self.block, self.position)
            .ok_or_else(|| corrupt("history entry runs past its block"))?;
        self.stats.entries_decoded += 1;
        let (key_count, version_count) = self.segment.ordinal_counts();
        let handle = &self.handle;
        let in_zone = (handle.key_ordinal_min..=handle.key_ordinal_max).contains(&raw.key_ordinal)
            && (handle.version_ordinal_min..=handle.version_ordinal_max)
                .contains(&raw.version_ordinal);
        if !in_zone || raw.key_ordinal >= key_count || raw.version_ordinal >= version_count {
            return Err(corrupt("history entry outside its block's zone map"));
        }
        let code = morton_of(raw.key_ordinal, raw.version_ordinal, key_count, version_count);
        let first_ok = self.position != 0 || code == handle.first_morton;
        let ascending = self.last_code.is_none_or(|last| last < code);
        if !first_ok || !ascending || self.block_end.is_some_and(|end| code >= end) {
            return Err(corrupt("history entries out of Z order"));
        }
        self.position += raw.len;
        self.last_code = Some(code);
        let hit = zbox.contains(u128::from(code)).then(|| self.segment.entry(raw));
        Ok((code, hit))
    }
}

impl<'a> Iterator for HistoryChanges<'a> {
    type Item = Result<Entry<'a>, Corruption>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.advance() {
            Ok(entry) => entry.map(Ok),
            Err(error) => {
                self.boxes = None;
                Some(Err(error))
            }
        }
    }
}
