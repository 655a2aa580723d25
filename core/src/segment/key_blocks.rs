//! Reading a key-ordered segment ([`super::Order::Key`]), whose data blocks are its key order:
//! [`BlockSpan`], a run of entries between two positions that both ends walk block by block,
//! each block read (and checksummed) once and each entry decoded once going forward; and
//! [`KeyChanges`], the box query over it, which skips blocks by zone map and checks each
//! entry's version.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use core::cmp::Ordering;
use core::ops::{Bound, RangeBounds};

use super::block::decode_entry_at;
use super::cursor::BlockStats;
use super::reader::Segment;
use super::restarts::KeyBlock;
use crate::zkey::ZBox;
use crate::{Corruption, Entry, Version};

/// The position of an entry: its block and its offset in the block. Normalized: an offset at
/// a block's end is the start of the next block, so positions order as the entries do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Pos {
    block: usize,
    offset: usize,
}

/// Which end of a [`BlockSpan`] reads a block.
#[derive(Clone, Copy, Debug)]
enum End {
    Front,
    Back,
}

/// Entry starts a backward walk remembers per scan of a block: a step back rescans the block
/// only every this many entries.
const BACK_STARTS: usize = 16;

/// The entries from `front` (inclusive) to `back` (exclusive) of a key-ordered segment.
#[derive(Debug)]
pub(super) struct BlockSpan<'a> {
    segment: Segment<'a>,
    front: Pos,
    back: Pos,
    /// The block `front` is in, read.
    front_block: Option<ReadBlock<'a>>,
    /// The entry at `front`, decoded, with its length.
    peeked: Option<(Entry<'a>, usize)>,
    /// The block the last step back read, and the starts of its entries up to the one just
    /// before `back`, oldest first (at most [`BACK_STARTS`]).
    back_block: Option<ReadBlock<'a>>,
    back_starts: [u32; BACK_STARTS],
    back_starts_len: usize,
    stats: BlockStats,
}

impl<'a> BlockSpan<'a> {
    /// Every entry of `segment`.
    pub(super) fn all(segment: Segment<'a>) -> BlockSpan<'a> {
        let back = Pos { block: segment.block_count(), offset: 0 };
        BlockSpan::new(segment, Pos::default(), back)
    }

    /// The entries of `keys`. Errors come from reading the blocks the bounds fall in.
    pub(super) fn keys<'k>(
        segment: Segment<'a>,
        keys: &impl RangeBounds<&'k [u8]>,
    ) -> Result<BlockSpan<'a>, Corruption> {
        let mut stats = BlockStats::default();
        let mut bound_at = |key: &[u8], key_is_before: fn(Ordering) -> bool| {
            let (pos, _) = seek(segment, |entry_key, _| key_is_before(entry_key.cmp(key)))?;
            if let Ok(handle) = segment.block_index.handle(pos.block) {
                stats.blocks_read += 1; // The block the seek read.
                stats.bytes_read += handle.bytes_with_checksum();
            }
            Ok(pos)
        };
        let front = match keys.start_bound() {
            Bound::Included(key) => bound_at(key, Ordering::is_lt)?,
            Bound::Excluded(key) => bound_at(key, Ordering::is_le)?,
            Bound::Unbounded => Pos::default(),
        };
        let back = match keys.end_bound() {
            Bound::Included(key) => bound_at(key, Ordering::is_le)?,
            Bound::Excluded(key) => bound_at(key, Ordering::is_lt)?,
            Bound::Unbounded => Pos { block: segment.block_count(), offset: 0 },
        };
        let mut span = BlockSpan::new(segment, front, back.max(front));
        span.stats = stats;
        Ok(span)
    }

    fn new(segment: Segment<'a>, front: Pos, back: Pos) -> BlockSpan<'a> {
        BlockSpan {
            segment,
            front,
            back,
            front_block: None,
            peeked: None,
            back_block: None,
            back_starts: [0; BACK_STARTS],
            back_starts_len: 0,
            stats: BlockStats::default(),
        }
    }

    /// Whether no entry is left between the ends.
    pub(super) fn is_empty(&self) -> bool {
        self.front >= self.back
    }

    /// The block work done so far.
    pub(super) fn stats(&self) -> BlockStats {
        self.stats
    }

    /// Ends the walk: nothing is left.
    pub(super) fn stop(&mut self) {
        self.front = self.back;
        self.peeked = None;
    }

    /// Block `index`, read through the block cache of end `end`.
    fn block(&mut self, index: usize, end: End) -> Result<ReadBlock<'a>, Corruption> {
        let cache = match end {
            End::Front => self.front_block,
            End::Back => self.back_block,
        };
        if let Some(block) = cache
            && block.index == index
        {
            return Ok(block);
        }
        let block = read_block(self.segment, index)?;
        self.stats.blocks_read += 1;
        self.stats.bytes_read += block.block.bytes_read();
        let cache = match end {
            End::Front => &mut self.front_block,
            End::Back => &mut self.back_block,
        };
        *cache = Some(block);
        Ok(block)
    }

    /// The entry at the front, without moving past it.
    pub(super) fn peek(&mut self) -> Option<Result<Entry<'a>, Corruption>> {
        if self.is_empty() {
            return None;
        }
        if let Some((entry, _)) = self.peeked {
            return Some(Ok(entry));
        }
        let decoded = self.block(self.front.block, End::Front).and_then(|block| {
            self.stats.entries_decoded += 1;
            decode_entry_at(block.block.entries(), self.front.offset, block.block.offset())
        });
        Some(decoded.map(|(entry, len)| {
            self.peeked = Some((entry, len));
            entry
        }))
    }

    /// Moves the front past the entry [`BlockSpan::peek`] returned.
    pub(super) fn advance(&mut self) {
        let Some((_, len)) = self.peeked.take() else { return };
        let block_len = self.front_block.map_or(0, |block| block.block.entries().len());
        self.front.offset += len;
        if self.front.offset >= block_len {
            self.front = Pos { block: self.front.block + 1, offset: 0 };
        }
    }

    /// Moves the front to the next block without reading the rest of this one.
    pub(super) fn skip_block(&mut self) {
        self.peeked = None;
        self.front = Pos { block: self.front.block + 1, offset: 0 };
    }

    /// The block the front is in.
    pub(super) fn front_block_index(&self) -> usize {
        self.front.block
    }

    /// Moves the front past the entries for which `before` holds, a predicate true on a
    /// prefix of the entries ahead.
    pub(super) fn skip_run(
        &mut self,
        mut before: impl FnMut(&[u8], Version) -> bool,
    ) -> Result<(), Corruption> {
        while let Some(entry) = self.peek() {
            let entry = entry?;
            if !before(entry.key, entry.version) {
                break;
            }
            self.advance();
        }
        Ok(())
    }

    /// The entry just before the back, without moving before it.
    pub(super) fn peek_back(&mut self) -> Option<Result<Entry<'a>, Corruption>> {
        if self.is_empty() {
            return None;
        }
        Some(self.entry_before_back())
    }

    fn entry_before_back(&mut self) -> Result<Entry<'a>, Corruption> {
        let (block_index, end) = match self.back.offset {
            0 => (self.back.block.saturating_sub(1), None),
            offset => (self.back.block, Some(offset)),
        };
        let ReadBlock { block, .. } = self.block(block_index, End::Back)?;
        let (bytes, block_offset) = (block.entries(), block.offset());
        let end = end.unwrap_or(bytes.len());
        let known = self.back_starts_len.checked_sub(1).and_then(|top| self.back_starts.get(top));
        let start = if let Some(&start) = known {
            start as usize
        } else {
            let from = block.restart_at_or_before(end.saturating_sub(1));
            self.scan_starts(bytes, from, end, block_offset)?
        };
        self.stats.entries_decoded += 1;
        let (entry, len) = decode_entry_at(bytes, start, block_offset)?;
        if start + len != end {
            return Err(Corruption::new(block_offset + start as u64, "entries overrun the block"));
        }
        Ok(entry)
    }

    /// Decodes `bytes` from `from` (an entry start: the block's start or a restart) up to
    /// `end`, remembering the last [`BACK_STARTS`] entry starts; returns the start of the
    /// entry that ends at `end`.
    fn scan_starts(
        &mut self,
        bytes: &'a [u8],
        from: usize,
        end: usize,
        block_offset: u64,
    ) -> Result<usize, Corruption> {
        self.back_starts_len = 0;
        let mut position = from;
        while position < end {
            if self.back_starts_len == BACK_STARTS {
                self.back_starts.copy_within(1.., 0);
                self.back_starts_len -= 1;
            }
            if let Some(slot) = self.back_starts.get_mut(self.back_starts_len) {
                *slot = position as u32;
            }
            self.back_starts_len += 1;
            self.stats.entries_decoded += 1;
            position += decode_entry_at(bytes, position, block_offset)?.1;
        }
        let last = self.back_starts_len.checked_sub(1).and_then(|top| self.back_starts.get(top));
        match last {
            Some(&start) if position == end => Ok(start as usize),
            _ => Err(Corruption::new(block_offset + end as u64, "entries overrun the block")),
        }
    }

    /// Moves the back before the entry [`BlockSpan::peek_back`] returned.
    pub(super) fn drop_back(&mut self) {
        let Some(top) = self.back_starts_len.checked_sub(1) else { return };
        let start = self.back_starts.get(top).map_or(0, |&start| start as usize);
        let block = self.back_block.map_or(0, |block| block.index);
        self.back_starts_len = top;
        self.back = Pos { block, offset: start };
        if start == 0 {
            self.back_starts_len = 0;
        }
    }
}

impl<'a> Iterator for BlockSpan<'a> {
    type Item = Result<Entry<'a>, Corruption>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.peek()?;
        match item {
            Ok(_) => self.advance(),
            Err(_) => self.stop(),
        }
        Some(item)
    }
}

impl DoubleEndedIterator for BlockSpan<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let item = self.peek_back()?;
        match item {
            Ok(_) => self.drop_back(),
            Err(_) => self.stop(),
        }
        Some(item)
    }
}

/// A data block read and checked: its number, and its entries and restarts.
#[derive(Clone, Copy, Debug)]
struct ReadBlock<'a> {
    index: usize,
    block: KeyBlock<'a>,
}

/// Block `index` of `segment`, checked against its checksum (and its restarts).
fn read_block(segment: Segment<'_>, index: usize) -> Result<ReadBlock<'_>, Corruption> {
    let handle = segment.block_index.handle(index)?;
    Ok(ReadBlock { index, block: segment.key_block(index, &handle)? })
}

/// The position of the first entry of `segment` not `before` (a predicate true on a prefix of
/// the key order), with that entry: the block keys name the one block that holds it.
pub(super) fn seek(
    segment: Segment<'_>,
    mut before: impl FnMut(&[u8], Version) -> bool,
) -> Result<(Pos, Option<Entry<'_>>), Corruption> {
    let block = segment.block_keys().first_block_ending_not_before(&mut before);
    if block >= segment.block_count() {
        return Ok((Pos { block, offset: 0 }, None));
    }
    let read = read_block(segment, block)?;
    match read.block.seek(before)? {
        Some((position, entry)) => Ok((Pos { block, offset: position }, Some(entry))),
        None => Err(Corruption::new(read.block.offset(), "block ends before its block key")),
    }
}

/// The newest entry of `key` at or below `version` in a key-ordered segment: the block keys
/// pick the block, and only that block is read: its restarts are binary-searched, then at
/// most one restart interval of entries is walked.
pub(super) fn get_at<'a>(
    segment: Segment<'a>,
    key: &[u8],
    version: Version,
) -> Result<Option<Entry<'a>>, Corruption> {
    let target = (key, core::cmp::Reverse(version));
    let (_, found) = seek(segment, |k, v| (k, core::cmp::Reverse(v)) < target)?;
    Ok(found.filter(|entry| entry.key == key))
}

/// Every entry of a key-ordered segment with its key in a range and its version in a range,
/// in key order: the key range bounds the span, zone maps skip blocks, and each entry's
/// version is checked.
#[derive(Debug)]
pub(super) struct KeyChanges<'a> {
    span: BlockSpan<'a>,
    zbox: ZBox,
    /// The block whose zone map was last checked.
    zone_checked: Option<usize>,
}

impl<'a> KeyChanges<'a> {
    pub(super) fn new<'k>(
        segment: Segment<'a>,
        keys: &impl RangeBounds<&'k [u8]>,
        zbox: ZBox,
    ) -> Result<KeyChanges<'a>, Corruption> {
        Ok(KeyChanges { span: BlockSpan::keys(segment, keys)?, zbox, zone_checked: None })
    }

    /// A scan that returns nothing.
    pub(super) fn nothing(segment: Segment<'a>, zbox: ZBox) -> KeyChanges<'a> {
        let span = BlockSpan::new(segment, Pos::default(), Pos::default());
        KeyChanges { span, zbox, zone_checked: None }
    }

    pub(super) fn stats(&self) -> BlockStats {
        self.span.stats()
    }

    /// Whether the block the front is in may hold an entry of the box; skips it if not.
    fn front_block_meets_box(&mut self) -> Result<bool, Corruption> {
        let block = self.span.front_block_index();
        if self.zone_checked == Some(block) {
            return Ok(true);
        }
        self.zone_checked = Some(block);
        let handle = self.span.segment.block_index.handle(block)?;
        if handle.zone.meets(&self.zbox) {
            return Ok(true);
        }
        self.span.stats.blocks_pruned += 1;
        self.span.skip_block();
        Ok(false)
    }

    fn next_in_box(&mut self) -> Result<Option<Entry<'a>>, Corruption> {
        while !self.span.is_empty() {
            if !self.front_block_meets_box()? {
                continue;
            }
            let Some(entry) = self.span.next() else { break };
            let entry = entry?;
            if self.zbox.version_range().contains(&entry.version.get()) {
                return Ok(Some(entry));
            }
        }
        Ok(None)
    }
}

impl<'a> Iterator for KeyChanges<'a> {
    type Item = Result<Entry<'a>, Corruption>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_in_box() {
            Ok(entry) => entry.map(Ok),
            Err(error) => {
                self.span.stop();
                Some(Err(error))
            }
        }
    }
}
