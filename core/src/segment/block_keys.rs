//! The block keys of a key-ordered segment ([`super::Order::Key`]), in the section a Z-order
//! segment uses for its fences: the key and version of the segment's first entry, then of each
//! data block's last entry, so that a point read or a range start binary-searches this section
//! and reads exactly one block (the first whose last entry is not before the target), and the
//! segment's key bounds cost no block read.
//!
//! For `n` blocks (`n > 0`) the section is `n + 1` records, then the keys back to back:
//!
//! | bytes | field |
//! |-------|-------|
//! | 8 | version, `u64` LE |
//! | 4 | end of the key in the key bytes, `u32` LE (it starts where the previous one ends) |
//!
//! Record 0 is the first entry; record `i + 1` is block `i`'s last entry. A segment without
//! entries has an empty section.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use core::cmp::Reverse;

use super::bytes::{partition_point, u32_at, u64_at};
use crate::limits::KEY_LEN_MAX;
use crate::{Corruption, Version};

/// Bytes of one record: version and key end.
pub(super) const BLOCK_KEY_RECORD_LEN: usize = size_of::<u64>() + size_of::<u32>();

/// A validated view of the block keys section.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct BlockKeys<'a> {
    records: &'a [u8],
    keys: &'a [u8],
}

impl<'a> BlockKeys<'a> {
    /// The section `bytes` of a segment of `block_count` blocks, at file offset
    /// `section_offset`; checks its length, every key's bounds and that the records are in
    /// key order (each block's last entry strictly after the previous block's, the first
    /// entry not after block 0's last).
    pub(super) fn new(
        bytes: &'a [u8],
        block_count: usize,
        section_offset: u64,
    ) -> Result<BlockKeys<'a>, Corruption> {
        let corrupt = |what| Corruption::new(section_offset, what);
        let record_count = if block_count == 0 { 0 } else { block_count + 1 };
        let records_len = record_count
            .checked_mul(BLOCK_KEY_RECORD_LEN)
            .ok_or_else(|| corrupt("block keys length overflows"))?;
        let (records, keys) =
            bytes.split_at_checked(records_len).ok_or_else(|| corrupt("block keys too short"))?;
        let view = BlockKeys { records, keys };
        let mut start = 0usize;
        for index in 0..record_count {
            let end = view.key_end(index).ok_or_else(|| corrupt("block keys too short"))?;
            if end < start || end - start > KEY_LEN_MAX || end > keys.len() {
                return Err(corrupt("block key out of range"));
            }
            start = end;
        }
        if start != keys.len() {
            return Err(corrupt("block keys do not end at the section end"));
        }
        for index in 1..record_count {
            let previous = order_key(view.get(index - 1));
            let this = order_key(view.get(index));
            let in_order = if index == 1 { previous <= this } else { previous < this };
            if !in_order {
                return Err(corrupt("block keys out of key order"));
            }
        }
        Ok(view)
    }

    /// Data blocks described.
    pub(super) fn block_count(&self) -> usize {
        (self.records.len() / BLOCK_KEY_RECORD_LEN).saturating_sub(1)
    }

    fn key_end(&self, index: usize) -> Option<usize> {
        let at = index.checked_mul(BLOCK_KEY_RECORD_LEN)?.checked_add(size_of::<u64>())?;
        u32_at(self.records, at).map(|end| end as usize)
    }

    /// Record `index`: the first entry for 0, block `index - 1`'s last entry after that.
    /// Out of range: an empty key at version 0 (never asked: the view is validated).
    pub(super) fn get(&self, index: usize) -> (&'a [u8], Version) {
        let start = index.checked_sub(1).and_then(|previous| self.key_end(previous)).unwrap_or(0);
        let end = self.key_end(index).unwrap_or(start);
        let key = self.keys.get(start..end).unwrap_or_default();
        let at = index.saturating_mul(BLOCK_KEY_RECORD_LEN);
        (key, Version::new(u64_at(self.records, at).unwrap_or(0)))
    }

    /// The segment's first and last key, or `None` when it has no entries.
    pub(super) fn bounds(&self) -> Option<(&'a [u8], &'a [u8])> {
        let last = self.block_count();
        (last > 0).then(|| (self.get(0).0, self.get(last).0))
    }

    /// The first block whose last entry is not `before` (a predicate true on a prefix of the
    /// key order): the block that holds the first entry not before, if any; or
    /// `block_count()`.
    pub(super) fn first_block_ending_not_before(
        &self,
        mut before: impl FnMut(&[u8], Version) -> bool,
    ) -> usize {
        partition_point(0, self.block_count(), |index| {
            let (key, version) = self.get(index + 1);
            before(key, version)
        })
    }
}

/// The key-order sort key of an entry: key ascending, version descending.
pub(super) fn order_key((key, version): (&[u8], Version)) -> (&[u8], Reverse<Version>) {
    (key, Reverse(version))
}
