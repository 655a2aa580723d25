//! Z-order reading: [`ZOrderCursor`] (a [`ZCursor`] over the data blocks, pruning blocks by
//! zone map), [`Iter`] (every entry) and [`Changes`] (the box query); the last two hand a
//! key-ordered segment to `key_blocks.rs`.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use core::ops::{Bound, RangeBounds};

use super::block::decode_entry_at;
use super::footer::Order;
use super::key_blocks::{BlockSpan, KeyChanges};
use super::key_order::FailOnce;
use super::reader::Segment;
use crate::zkey::{BoxScan, ScanStats, ZBox, ZCursor, morton};
use crate::{Corruption, Entry, Version};

/// The entry under a [`ZOrderCursor`].
#[derive(Clone, Copy, Debug)]
struct Current<'a> {
    entry: Entry<'a>,
    morton: u128,
    len: usize,
}

/// Counters of a cursor's block work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockStats {
    /// Entries decoded (every entry a scan looked at, including those stepped over inside a
    /// block while seeking).
    pub entries_decoded: u64,
    /// Blocks read and checksummed.
    pub blocks_read: u64,
    /// Bytes of the blocks read, checksums included.
    pub bytes_read: u64,
    /// Blocks skipped because their zone map misses the box.
    pub blocks_pruned: u64,
}

/// A cursor over a segment's entries in Z order.
///
/// With a box, it walks only the blocks whose zone map meets the box, and within a block only
/// the entries inside the box plus, when the block ends outside it, the block's last entry: a
/// sorted subsequence of the entries that still holds every entry inside the box, which is all
/// [`BoxScan`] needs.
/// It starts *before* the first entry (`morton()` is `None` until the first `step` or `seek`).
#[derive(Debug)]
pub struct ZOrderCursor<'a> {
    segment: Segment<'a>,
    zbox: Option<ZBox>,
    started: bool,
    block_index: usize,
    block_offset: u32,
    block: &'a [u8],
    position: usize,
    current: Option<Current<'a>>,
    stats: BlockStats,
}

impl<'a> ZOrderCursor<'a> {
    /// A cursor over `segment`, before its first entry, pruning blocks that miss `zbox`.
    #[must_use]
    pub fn new(segment: Segment<'a>, zbox: Option<ZBox>) -> ZOrderCursor<'a> {
        ZOrderCursor {
            segment,
            zbox,
            started: false,
            block_index: 0,
            block_offset: 0,
            block: &[],
            position: 0,
            current: None,
            stats: BlockStats::default(),
        }
    }

    /// The entry under the cursor, or `None` before the start and past the end.
    #[must_use]
    pub fn entry(&self) -> Option<Entry<'a>> {
        self.current.map(|current| current.entry)
    }

    /// The block work done so far.
    #[must_use]
    pub fn stats(&self) -> BlockStats {
        self.stats
    }

    /// Moves to the first entry of the first block at or after `index` whose zone map meets
    /// the box; past the end when there is none.
    fn enter_block(&mut self, index: usize) -> Result<(), Corruption> {
        self.started = true;
        let mut index = index;
        let handle = loop {
            let Some(handle) = self.segment.block_index.get(index) else {
                self.block_index = self.segment.block_count();
                self.current = None;
                return Ok(());
            };
            if self.zbox.is_none_or(|zbox| handle.zone.meets(&zbox)) {
                break handle;
            }
            self.stats.blocks_pruned += 1;
            index += 1;
        };
        self.stats.blocks_read += 1;
        self.stats.bytes_read += handle.bytes_with_checksum();
        self.current = None;
        self.block = self.segment.verified_block(index, &handle)?;
        self.block_index = index;
        self.block_offset = handle.offset;
        self.position = 0;
        self.decode_current()?;
        if self.current.is_some_and(|current| current.morton != handle.first_morton) {
            return Err(Corruption::new(u64::from(handle.offset), "block index first code wrong"));
        }
        self.skip_out_of_box_in_block()
    }

    /// With a box: moves over the entries outside it, but not past the last entry of the
    /// block. Stepping through a block costs a decode per entry whichever way the scan moves
    /// (entries are variable-length), while each BIGMIN costs a walk over the 128 bits of `M`;
    /// so inside a block the cursor filters, and [`BoxScan`] computes BIGMIN at most once per
    /// block, from its last entry, to jump over the blocks that follow.
    fn skip_out_of_box_in_block(&mut self) -> Result<(), Corruption> {
        let Some(zbox) = self.zbox else {
            return Ok(());
        };
        while let Some(current) = self.current
            && !zbox.contains(current.morton)
            && self.position + current.len < self.block.len()
        {
            self.position += current.len;
            self.decode_current()?;
        }
        Ok(())
    }

    /// Decodes the entry at `position` in the current block.
    fn decode_current(&mut self) -> Result<(), Corruption> {
        self.stats.entries_decoded += 1;
        let (entry, len) =
            decode_entry_at(self.block, self.position, u64::from(self.block_offset))?;
        let morton = morton(entry.key, entry.version);
        self.current = Some(Current { entry, morton, len });
        Ok(())
    }
}

impl ZCursor for ZOrderCursor<'_> {
    type Error = Corruption;

    fn morton(&self) -> Option<u128> {
        self.current.map(|current| current.morton)
    }

    fn step(&mut self) -> Result<(), Corruption> {
        let Some(current) = self.current else {
            return if self.started { Ok(()) } else { self.enter_block(0) };
        };
        self.position += current.len;
        if self.position < self.block.len() {
            self.decode_current()?;
            self.skip_out_of_box_in_block()
        } else {
            self.enter_block(self.block_index + 1)
        }
    }

    fn seek(&mut self, target: u128) -> Result<(), Corruption> {
        if self.started {
            match self.current {
                None => return Ok(()),
                Some(current) if current.morton >= target => return Ok(()),
                Some(_) => {}
            }
        }
        // The entry sought is in the last block that starts below `target`, or is the first
        // entry of the block after it. Blocks before the current one are never revisited.
        let from = if self.started { self.block_index + 1 } else { 0 };
        let next = self.segment.block_index.first_at_or_after(from, target);
        if !self.started || next > from {
            self.enter_block(next.saturating_sub(1).max(from.saturating_sub(1)))?;
        }
        while self.current.is_some_and(|current| current.morton < target) {
            self.step()?;
        }
        Ok(())
    }
}

/// Every entry of a segment in its order: Z order `(M, key)`, or key order.
#[derive(Debug)]
pub struct Iter<'a> {
    cursor: ZOrderCursor<'a>,
    done: bool,
    /// A key-ordered segment's blocks, read front to back (the cursor is then unused).
    blocks: Option<BlockSpan<'a>>,
}

impl<'a> Iter<'a> {
    pub(super) fn new(segment: Segment<'a>) -> Iter<'a> {
        let blocks = (segment.order() == Order::Key).then(|| BlockSpan::all(segment));
        Iter { cursor: ZOrderCursor::new(segment, None), done: false, blocks }
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = Result<Entry<'a>, Corruption>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(blocks) = &mut self.blocks {
            return blocks.next();
        }
        if self.done {
            return None;
        }
        if let Err(error) = self.cursor.step() {
            self.done = true;
            return Some(Err(error));
        }
        let entry = self.cursor.entry();
        self.done = entry.is_none();
        entry.map(Ok)
    }
}

/// What a [`Changes`] scan did, to compare with what it returned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChangesStats {
    /// The box scan's counters: entries whose code it examined, and its BIGMIN jumps.
    pub scan: ScanStats,
    /// The cursor's counters: entries decoded, blocks read and pruned.
    pub blocks: BlockStats,
}

/// Every entry with its key in a key range and its version in a version range, in the
/// segment's order.
#[derive(Debug)]
pub struct Changes<'a, 'k> {
    scan: Option<BoxScan<ZOrderCursor<'a>>>,
    /// The scan of a key-ordered segment (`scan` is then `None`).
    key_scan: Option<FailOnce<KeyChanges<'a>>>,
    key_start: Bound<&'k [u8]>,
    key_end: Bound<&'k [u8]>,
    done: bool,
}

impl<'a, 'k> Changes<'a, 'k> {
    pub(super) fn new(
        segment: Segment<'a>,
        keys: &impl RangeBounds<&'k [u8]>,
        versions: &impl RangeBounds<Version>,
    ) -> Changes<'a, 'k> {
        let zbox = ZBox::covering(keys, versions);
        if segment.order() == Order::Key {
            let key_scan = zbox.map(|zbox| match KeyChanges::new(segment, keys, zbox) {
                Ok(inner) => FailOnce::new(None, inner),
                Err(error) => FailOnce::new(Some(error), KeyChanges::nothing(segment, zbox)),
            });
            return Changes {
                scan: None,
                key_scan,
                key_start: keys.start_bound().cloned(),
                key_end: keys.end_bound().cloned(),
                done: false,
            };
        }
        let scan = zbox.map(|zbox| BoxScan::new(ZOrderCursor::new(segment, Some(zbox)), zbox));
        Changes {
            scan,
            key_scan: None,
            key_start: keys.start_bound().cloned(),
            key_end: keys.end_bound().cloned(),
            done: false,
        }
    }

    /// The work done so far.
    #[must_use]
    pub fn stats(&self) -> ChangesStats {
        if let Some(key_scan) = &self.key_scan {
            return ChangesStats { scan: ScanStats::default(), blocks: key_scan.inner().stats() };
        }
        self.scan.as_ref().map_or_else(ChangesStats::default, |scan| ChangesStats {
            scan: scan.stats(),
            blocks: scan.cursor().stats(),
        })
    }

    fn key_in_range(&self, key: &[u8]) -> bool {
        (self.key_start, self.key_end).contains(key)
    }
}

impl<'a> Iterator for Changes<'a, '_> {
    type Item = Result<Entry<'a>, Corruption>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(key_scan) = &mut self.key_scan {
            return key_scan.next();
        }
        while !self.done {
            let scan = self.scan.as_mut()?;
            match scan.advance() {
                Ok(true) => {
                    // In the box: the version is in range; the key only by its prefix.
                    let entry = scan.cursor().entry()?;
                    if self.key_in_range(entry.key) {
                        return Some(Ok(entry));
                    }
                }
                Ok(false) => self.done = true,
                Err(error) => {
                    self.done = true;
                    return Some(Err(error));
                }
            }
        }
        None
    }
}
