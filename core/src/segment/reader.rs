//! [`Segment`]: a zero-copy reader over a segment's bytes, validated once at open.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use core::cmp::{Ordering, Reverse};
use core::fmt;
use core::ops::{Range, RangeBounds};
use core::sync::atomic::{self, AtomicBool};

use super::SEGMENT_LEN_MAX;
use super::block::decode_entry_at;
use super::block_index::{BlockHandle, BlockIndex};
use super::block_keys::BlockKeys;
use super::bytes::{partition_point, slice_at, try_partition_point, u64_at};
use super::cursor::{Changes, Iter};
use super::fence_keys::FenceKeysRef;
use super::filter_section;
use super::footer::{FOOTER_LEN, Footer, Order, SectionHandle, SectionKind};
use super::key_blocks;
use super::key_index::{
    FENCE_LEN, FENCE_STRIDE, FENCE_STRIDE_MAX, KEY_REF_LEN, KeyIndex, fence_count,
};
use super::key_order::{self, KeyOrderIter, KeyVersions, RangeAt};
use super::restarts::KeyBlock;

use crate::checksum::checksum;
use crate::zkey::{ZBox, key_prefix};
use crate::{Corruption, Entry, Version};

/// Key-index references up to which a Z-order point read searches the on-disk fences' window
/// itself rather than the fence keys in memory: twice the window of a key whose 8-byte prefix
/// no other fence shares (two fence strides). `benches/results/point-reads.md` has the A/B.
const PREFIX_WINDOW_NARROW_REFS: usize = 4 * FENCE_STRIDE as usize;

/// An open segment: its bytes, with the footer and every metadata section validated.
///
/// Data blocks are checked lazily: every block a query reads has its checksum verified, so a
/// query on a damaged block returns [`Corruption`], never a wrong entry. With
/// [`Segment::with_verified_blocks`], a block is verified the first time a query reads it and
/// trusted afterwards. Copying a `Segment` copies a few slices and the footer's counts, never the
/// bytes.
#[derive(Clone, Copy)]
pub struct Segment<'a> {
    bytes: &'a [u8],
    /// The footer's counts (its section handles are used at open only, and would make every
    /// copy of the reader 100 bytes longer).
    counts: Counts,
    data: &'a [u8],
    pub(super) block_index: BlockIndex<'a>,
    /// The key index of a Z-order segment, or the block keys of a key-ordered one.
    keys: KeysSection<'a>,
    filter: &'a [u8],
    /// One flag per data block: set once the block has passed its checksum. Empty: verify on
    /// every read.
    verified: &'a [AtomicBool],
    /// The key index sampled in memory, if the caller built it (`FenceKeys`).
    fence_keys: Option<FenceKeysRef<'a>>,
}

impl<'a> Segment<'a> {
    /// Opens the segment in `bytes` (a whole segment file; no alignment needed). Checks the
    /// footer, the checksum of every metadata section and that every offset, length and count
    /// is consistent, so that no later query can reach outside the file.
    pub fn open(bytes: &'a [u8]) -> Result<Segment<'a>, Corruption> {
        if bytes.len() < FOOTER_LEN {
            return Err(Corruption::new(0, "segment shorter than its footer"));
        }
        if bytes.len() as u64 > SEGMENT_LEN_MAX {
            return Err(Corruption::new(SEGMENT_LEN_MAX, "segment longer than the format allows"));
        }
        let footer_offset = bytes.len() - FOOTER_LEN;
        let footer_bytes = bytes.get(footer_offset..).unwrap_or_default();
        let footer = Footer::decode_from(footer_bytes, footer_offset as u64)?;
        validate_counts(&footer, footer_offset as u64)?;
        let data_len = validate_layout(&footer, footer_offset as u64)?;
        let section = |kind| section_bytes(bytes, footer.section(kind));
        let block_index = BlockIndex::new(
            section(SectionKind::BlockIndex)?,
            footer.section(SectionKind::BlockIndex).offset,
        )?;
        block_index.validate(data_len, footer.order)?;
        let keys = match footer.order {
            Order::Key => {
                // The key index is empty (checked with the counts) and the fences section
                // holds the block keys.
                let fences_offset = footer.section(SectionKind::Fences).offset;
                let block_count = block_index.block_count();
                let block_keys =
                    BlockKeys::new(section(SectionKind::Fences)?, block_count, fences_offset)?;
                KeysSection::Blocks(block_keys, footer.block_restarts)
            }
            Order::Z => {
                let refs = section(SectionKind::KeyIndex)?;
                let fences = section(SectionKind::Fences)?;
                let offset = footer.section(SectionKind::KeyIndex).offset;
                let key_index = KeyIndex::new(refs, fences, footer.fence_stride, offset);
                key_index.validate(data_len)?;
                KeysSection::Index(key_index)
            }
        };
        let filter = section(SectionKind::Filter)?;
        filter_section::validate(filter, footer.section(SectionKind::Filter).offset)?;
        if (block_index.block_count() == 0) != (footer.entry_count == 0) {
            return Err(Corruption::new(footer_offset as u64, "blocks without entries"));
        }
        let data = bytes.get(..data_len as usize).unwrap_or_default();
        Ok(Segment {
            bytes,
            counts: Counts {
                entry_count: footer.entry_count,
                key_count: footer.key_count,
                version_min: footer.version_min,
                version_max: footer.version_max,
            },
            data,
            block_index,
            keys,
            filter,
            verified: &[],
            fence_keys: None,
        })
    }

    /// Where the metadata (block index, key index, fences, filter, footer) of the segment in
    /// `bytes` starts, which is the length of its data region: read from the footer alone,
    /// without touching a data block or a metadata section, so that a caller can tell the OS
    /// what [`Segment::open`] is about to read. Checks what it reads as `open` does.
    pub fn metadata_offset(bytes: &[u8]) -> Result<u64, Corruption> {
        if bytes.len() < FOOTER_LEN {
            return Err(Corruption::new(0, "segment shorter than its footer"));
        }
        let footer_offset = bytes.len() - FOOTER_LEN;
        let footer_bytes = bytes.get(footer_offset..).unwrap_or_default();
        let footer = Footer::decode_from(footer_bytes, footer_offset as u64)?;
        validate_layout(&footer, footer_offset as u64)
    }

    /// The whole segment's bytes, as given to [`Segment::open`].
    #[must_use]
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Bytes of the data region: the data blocks and their checksums, from offset 0.
    #[must_use]
    pub fn data_len(&self) -> u64 {
        self.data.len() as u64
    }

    /// The bytes of the data region a scan of `zbox` can read: from the start of the block
    /// that may hold the box's smallest code to the end (checksum included) of the last block
    /// that starts at or below its largest code; empty when no block can. Reads the block
    /// index only. Every entry of the box lies inside, and a Z-order scan of the box reads
    /// nothing outside it; so does a key-order scan of keys whose versions are all in the box.
    #[must_use]
    pub fn data_span(&self, zbox: &ZBox) -> Range<u64> {
        if self.order() == Order::Key {
            return self.key_order_data_span(zbox);
        }
        let index = &self.block_index;
        // The block before the first one starting at or above the smallest code may hold it.
        let first = index.first_at_or_after(0, zbox.morton_min()).saturating_sub(1);
        let past_last = match zbox.morton_max().checked_add(1) {
            Some(above) => index.first_at_or_after(first, above),
            None => index.block_count(),
        };
        let (Some(first_handle), Some(last_handle)) =
            (index.get(first), past_last.checked_sub(1).and_then(|last| index.get(last)))
        else {
            return 0..0;
        };
        if past_last <= first {
            return 0..0;
        }
        u64::from(first_handle.offset)..last_handle.end()
    }

    /// [`Segment::data_span`] of a key-ordered segment: its blocks' key prefixes ascend, so
    /// the blocks whose prefix range meets the box's are a run, found by binary search.
    fn key_order_data_span(&self, zbox: &ZBox) -> Range<u64> {
        let index = &self.block_index;
        let prefixes = zbox.prefix_range();
        let zone = |block| index.get(block).map(|handle| handle.zone);
        let first = partition_point(0, index.block_count(), |block| {
            zone(block).is_some_and(|zone| zone.prefix_max < *prefixes.start())
        });
        let past_last = partition_point(first, index.block_count(), |block| {
            zone(block).is_some_and(|zone| zone.prefix_min <= *prefixes.end())
        });
        match (index.get(first), past_last.checked_sub(1).and_then(|last| index.get(last))) {
            (Some(first_handle), Some(last_handle)) if past_last > first => {
                u64::from(first_handle.offset)..last_handle.end()
            }
            _ => 0..0,
        }
    }

    /// The order of the segment's entries, from its footer.
    #[must_use]
    pub fn order(&self) -> Order {
        match self.keys {
            KeysSection::Index(_) => Order::Z,
            KeysSection::Blocks(..) => Order::Key,
        }
    }

    /// The key index (empty in a key-ordered segment).
    pub(super) fn key_index(&self) -> KeyIndex<'a> {
        match self.keys {
            KeysSection::Index(key_index) => key_index,
            KeysSection::Blocks(..) => KeyIndex::new(&[], &[], 1, 0),
        }
    }

    /// The block keys (empty in a Z-order segment).
    pub(super) fn block_keys(&self) -> BlockKeys<'a> {
        match self.keys {
            KeysSection::Index(_) => BlockKeys::default(),
            KeysSection::Blocks(block_keys, _) => block_keys,
        }
    }

    /// The segment's smallest key, or `None` when it has no entries. A key-ordered segment
    /// answers from its block keys (checked at open, never an error); a Z-order one reads the
    /// first reference of its key index (one block).
    pub fn first_key(&self) -> Result<Option<&'a [u8]>, Corruption> {
        if self.order() == Order::Key {
            return Ok(self.block_keys().bounds().map(|(first, _)| first));
        }
        if self.key_index().len() == 0 {
            return Ok(None);
        }
        Ok(Some(self.entry_at(0, &mut None)?.key))
    }

    /// The segment's largest key, or `None` when it has no entries; as [`Segment::first_key`].
    pub fn last_key(&self) -> Result<Option<&'a [u8]>, Corruption> {
        if self.order() == Order::Key {
            return Ok(self.block_keys().bounds().map(|(_, last)| last));
        }
        match self.key_index().len().checked_sub(1) {
            Some(last) => Ok(Some(self.entry_at(last, &mut None)?.key)),
            None => Ok(None),
        }
    }

    /// The same segment, remembering in `verified` (one flag per data block, all `false` at
    /// first, shared by every copy and every thread) which blocks have passed their checksum,
    /// so that each block is hashed once instead of on every read. Sound because the bytes
    /// never change: the caller guarantees that, as for every `&[u8]` (a mapped segment is
    /// immutable). A slice shorter than [`Segment::block_count`] is not used; an empty slice
    /// turns the memory off again (for a check that must hash everything).
    #[must_use]
    pub fn with_verified_blocks(self, verified: &'a [AtomicBool]) -> Segment<'a> {
        let usable = verified.len() >= self.block_count();
        Segment { verified: if usable { verified } else { &[] }, ..self }
    }

    /// The same segment, searching `fence_keys` (built from this segment by `FenceKeys::build`)
    /// before the key index: a point read or a range start then decodes at most
    /// `log2(stride)` entries. Samples that cannot belong to this segment's key index (a
    /// different count) are not used.
    #[must_use]
    pub fn with_fence_keys(self, fence_keys: FenceKeysRef<'a>) -> Segment<'a> {
        let usable = fence_keys.fits(self.key_index().len(), self.block_count());
        Segment { fence_keys: usable.then_some(fence_keys), ..self }
    }

    /// The window `[lo, hi)` of key-index references holding the first one not `before` (a
    /// predicate true on a prefix of the key order), or `hi`; `prefix` is the 8-byte prefix
    /// of the target key, for the on-disk fences when no fence keys are in memory.
    ///
    /// The on-disk fences answer first: when their window is narrow (at most
    /// [`PREFIX_WINDOW_NARROW_REFS`], as for keys whose 8-byte prefixes differ) it is searched
    /// as it is, which measured faster than the fence keys; a wider one (keys sharing their
    /// first 8 bytes) goes to the fence keys when they are in memory.
    pub(super) fn search_window(
        &self,
        prefix: u64,
        before: impl FnMut(&[u8], Version) -> bool,
    ) -> (usize, usize) {
        let (lo, hi) = self.key_index().window(prefix);
        match self.fence_keys {
            Some(fence_keys) if hi - lo > PREFIX_WINDOW_NARROW_REFS => {
                fence_keys.window(self.key_index().len(), prefix, before)
            }
            _ => (lo, hi),
        }
    }

    /// Entries (versions, tombstones included).
    #[must_use]
    pub fn entry_count(&self) -> u64 {
        self.counts.entry_count
    }

    /// Distinct keys.
    #[must_use]
    pub fn key_count(&self) -> u64 {
        self.counts.key_count
    }

    /// Smallest version, or `None` for an empty segment.
    #[must_use]
    pub fn version_min(&self) -> Option<Version> {
        (self.counts.entry_count > 0).then_some(Version::new(self.counts.version_min))
    }

    /// Largest version, or `None` for an empty segment.
    #[must_use]
    pub fn version_max(&self) -> Option<Version> {
        (self.counts.entry_count > 0).then_some(Version::new(self.counts.version_max))
    }

    /// Bytes of the segment file.
    #[must_use]
    pub fn file_len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Data blocks.
    #[must_use]
    pub fn block_count(&self) -> usize {
        self.block_index.block_count()
    }

    /// The newest version `<= version` of `key`, or `None` if the segment has none. A
    /// tombstone is returned as an entry with `value: None`: the key was deleted as of then.
    pub fn get_at(&self, key: &[u8], version: Version) -> Result<Option<Entry<'a>>, Corruption> {
        self.get_at_fenced(key, version, || None)
    }

    /// [`Segment::get_at`], where a reader without fence keys asks `fence_keys` for some
    /// (built from this segment) only if it needs them: when the on-disk fences (8-byte key
    /// prefixes) leave a window of more than 64 key-index references (four fence strides) to
    /// search, as for keys that share their first 8 bytes. A narrower window is searched as
    /// it is even with fence keys: with distinct prefixes that measured faster.
    pub fn get_at_fenced(
        &self,
        key: &[u8],
        version: Version,
        fence_keys: impl FnOnce() -> Option<FenceKeysRef<'a>>,
    ) -> Result<Option<Entry<'a>>, Corruption> {
        if !filter_section::may_contain(self.filter, key) {
            return Ok(None);
        }
        if self.order() == Order::Key {
            return key_blocks::get_at(*self, key, version);
        }
        let prefix = key_prefix(key);
        let (lo, hi) = self.key_index().window(prefix);
        let wide = hi - lo > PREFIX_WINDOW_NARROW_REFS;
        let segment = match self.fence_keys {
            None if wide => {
                fence_keys().map_or(*self, |fence_keys| self.with_fence_keys(fence_keys))
            }
            _ => *self,
        };
        // The reader borrows the segment: a point read copies nothing of it.
        let mut last_block = None;
        let target = (key, Reverse(version));
        let before = |key: &[u8], version: Version| (key, Reverse(version)) < target;
        let (lo, hi) = match segment.fence_keys {
            Some(fence_keys) if wide => fence_keys.window(self.key_index().len(), prefix, before),
            _ => (lo, hi),
        };
        let index = try_partition_point(lo, hi, |index| {
            let entry = segment.entry_at(index, &mut last_block)?;
            Ok(before(entry.key, entry.version))
        })?;
        // Reference `hi` itself may hold the key (a fence-key window ends at a sample that is
        // not before the target); past the index there is nothing.
        if index >= self.key_index().len() {
            return Ok(None);
        }
        let entry = segment.entry_at(index, &mut last_block)?;
        Ok((entry.key == key).then_some(entry))
    }

    /// Whether the segment may hold a version of `key`: `false` means it holds none. Reads
    /// one 32-byte block of the filter; the key index is not touched.
    #[must_use]
    pub fn may_contain(&self, key: &[u8]) -> bool {
        filter_section::may_contain(self.filter, key)
    }

    /// Every version of `key`, newest first, tombstones included.
    #[must_use]
    pub fn history(&self, key: &[u8]) -> KeyVersions<'a> {
        key_order::history(*self, key)
    }

    /// The versions of `key` at or below `version`, newest first, tombstones included. The
    /// filter is asked first (a segment without the key reads nothing), then the key index is
    /// searched for the newest version at or below `version`: newer ones are never decoded.
    #[must_use]
    pub fn history_at(&self, key: &[u8], version: Version) -> KeyVersions<'a> {
        if !filter_section::may_contain(self.filter, key) {
            return key_order::empty(*self);
        }
        key_order::history_at(*self, key, version)
    }

    /// For each key in `keys`, in key order, its newest entry at or below `version`
    /// (tombstones included: the caller decides whether a deleted key shows).
    #[must_use]
    pub fn range_at<'k>(&self, keys: impl RangeBounds<&'k [u8]>, version: Version) -> RangeAt<'a> {
        RangeAt::new(*self, &keys, version)
    }

    /// Every entry with its key in `keys` and its version in `versions`, in the segment's
    /// order: in Z order a box scan that skips blocks by zone map and runs of codes by
    /// BIGMIN; in key order a scan of the key range that skips blocks by zone map.
    #[must_use]
    pub fn changes<'k>(
        &self,
        keys: impl RangeBounds<&'k [u8]>,
        versions: impl RangeBounds<Version>,
    ) -> Changes<'a, 'k> {
        Changes::new(*self, &keys, &versions)
    }

    /// Every entry in the segment's order: Z order `(M, key)`, or key order.
    #[must_use]
    pub fn iter(&self) -> Iter<'a> {
        Iter::new(*self)
    }

    /// Every entry in key order: key ascending, version descending.
    #[must_use]
    pub fn iter_key_order(&self) -> KeyOrderIter<'a> {
        KeyOrderIter::all(*self)
    }

    /// The bytes of block number `index`, whose handle is `handle`, after checking them against
    /// their checksum (once, with [`Segment::with_verified_blocks`]).
    pub(super) fn verified_block(
        &self,
        index: usize,
        handle: &BlockHandle,
    ) -> Result<&'a [u8], Corruption> {
        let offset = handle.offset as usize;
        let len = handle.len as usize;
        let corrupt = |what| Corruption::new(u64::from(handle.offset), what);
        let block =
            slice_at(self.data, offset, len).ok_or_else(|| corrupt("block out of range"))?;
        let flag = self.verified.get(index);
        // Relaxed: the flag orders nothing; the bytes it vouches for never change.
        if flag.is_some_and(|flag| flag.load(atomic::Ordering::Relaxed)) {
            return Ok(block);
        }
        let stored =
            u64_at(self.data, offset + len).ok_or_else(|| corrupt("block out of range"))?;
        if checksum(block) != stored {
            return Err(corrupt("data block checksum mismatch"));
        }
        if self.block_restarts() {
            KeyBlock::split(block, u64::from(handle.offset))?.validate()?;
        }
        if let Some(flag) = flag {
            flag.store(true, atomic::Ordering::Relaxed);
        }
        Ok(block)
    }
}

impl<'a> Segment<'a> {
    /// Whether data blocks start with a restart header (key order, format version 3).
    fn block_restarts(&self) -> bool {
        matches!(self.keys, KeysSection::Blocks(_, true))
    }

    /// Key-ordered block number `index`, whose handle is `handle`, checked (with its restarts)
    /// as [`Segment::verified_block`] checks, and split into entries and restarts.
    pub(super) fn key_block(
        &self,
        index: usize,
        handle: &BlockHandle,
    ) -> Result<KeyBlock<'a>, Corruption> {
        let bytes = self.verified_block(index, handle)?;
        let offset = u64::from(handle.offset);
        if self.block_restarts() {
            KeyBlock::split(bytes, offset)
        } else {
            Ok(KeyBlock::without_restarts(bytes, offset))
        }
    }
}

/// How a segment finds a key: a Z-order segment's key index, or a key-ordered one's block
/// keys and whether its blocks start with restarts (format version 3); one of the two, so
/// that a copy of the reader stays small.
#[derive(Clone, Copy, Debug)]
enum KeysSection<'a> {
    Index(KeyIndex<'a>),
    Blocks(BlockKeys<'a>, bool),
}

/// The counts of a segment's footer, as the reader keeps them.
#[derive(Clone, Copy, Debug)]
struct Counts {
    entry_count: u64,
    key_count: u64,
    version_min: u64,
    version_max: u64,
}

/// The last block a run of key-index reads verified, with its handle: neighbouring
/// references in the same block are not looked up or checked twice.
type LastBlock<'a> = Option<(BlockHandle, &'a [u8])>;

impl<'a> Segment<'a> {
    /// The entry the `index`-th key index reference points at, reading its block through
    /// `last_block`.
    fn entry_at(
        &self,
        index: usize,
        last_block: &mut LastBlock<'a>,
    ) -> Result<Entry<'a>, Corruption> {
        let offset = self.key_index().entry_offset(index)?;
        let (handle, block) = self.block_containing(offset, last_block)?;
        let position = (offset - handle.offset) as usize;
        let (entry, _) = decode_entry_at(block, position, u64::from(handle.offset))?;
        Ok(entry)
    }

    fn block_containing(
        &self,
        offset: u32,
        last_block: &mut LastBlock<'a>,
    ) -> Result<(BlockHandle, &'a [u8]), Corruption> {
        if let Some((handle, block)) = *last_block
            && (handle.offset..handle.offset.saturating_add(handle.len)).contains(&offset)
        {
            return Ok((handle, block));
        }
        let missing = Corruption::new(u64::from(offset), "key index reference outside every block");
        let index = match self.fence_keys {
            Some(fence_keys) => fence_keys.block_containing(offset),
            None => self.block_index.containing(offset),
        };
        let index = index.ok_or(missing)?;
        let handle = self.block_index.handle(index)?;
        if offset - handle.offset >= handle.len {
            return Err(missing);
        }
        let block = self.verified_block(index, &handle)?;
        *last_block = Some((handle, block));
        Ok((handle, block))
    }
}

impl fmt::Debug for Segment<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Segment")
            .field("order", &self.order())
            .field("file_len", &self.file_len())
            .field("entry_count", &self.entry_count())
            .field("key_count", &self.key_count())
            .field("block_count", &self.block_count())
            .field("version_min", &self.version_min())
            .field("version_max", &self.version_max())
            .finish_non_exhaustive()
    }
}

impl<'a> IntoIterator for &Segment<'a> {
    type Item = Result<Entry<'a>, Corruption>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Checks the footer's counts against each other and the section lengths they imply.
fn validate_counts(footer: &Footer, footer_offset: u64) -> Result<(), Corruption> {
    let corrupt = |what| Err(Corruption::new(footer_offset, what));
    let key_order = footer.order == Order::Key;
    let stride_ok = if key_order {
        footer.fence_stride == 0
    } else {
        footer.fence_stride > 0 && footer.fence_stride <= FENCE_STRIDE_MAX
    };
    if !stride_ok {
        return corrupt("fence stride out of range");
    }
    let entry_count = footer.entry_count;
    if footer.key_count > entry_count || (footer.key_count == 0) != (entry_count == 0) {
        return corrupt("key count inconsistent with entry count");
    }
    let versions_ok = if entry_count == 0 {
        footer.version_min == u64::MAX && footer.version_max == 0
    } else {
        footer.version_min <= footer.version_max
    };
    if !versions_ok {
        return corrupt("version range inconsistent");
    }
    if key_order {
        // No key index; the block keys section is checked when it is read.
        if footer.section(SectionKind::KeyIndex).len != 0 {
            return corrupt("key index in a key-ordered segment");
        }
        return Ok(());
    }
    let key_index_len = entry_count.checked_mul(KEY_REF_LEN as u64);
    let fences_len = fence_count(entry_count, footer.fence_stride).checked_mul(FENCE_LEN as u64);
    if key_index_len != Some(footer.section(SectionKind::KeyIndex).len)
        || fences_len != Some(footer.section(SectionKind::Fences).len)
    {
        return corrupt("key index or fence length inconsistent with entry count");
    }
    Ok(())
}

/// Checks that the data region and the sections tile `[0, footer_offset)` in order without
/// gaps or overlaps, and returns the data region's length.
fn validate_layout(footer: &Footer, footer_offset: u64) -> Result<u64, Corruption> {
    let kinds =
        [SectionKind::BlockIndex, SectionKind::KeyIndex, SectionKind::Fences, SectionKind::Filter];
    let data_len = footer.section(SectionKind::BlockIndex).offset;
    let mut expected_offset = data_len;
    for kind in kinds {
        let section = footer.section(kind);
        if section.offset != expected_offset {
            return Err(Corruption::new(footer_offset, "metadata sections not contiguous"));
        }
        expected_offset = section
            .offset
            .checked_add(section.len)
            .ok_or(Corruption::new(footer_offset, "metadata section length overflows"))?;
    }
    if expected_offset != footer_offset {
        return Err(Corruption::new(footer_offset, "metadata sections do not end at the footer"));
    }
    Ok(data_len)
}

/// The bytes of `section` in `bytes`, after checking their checksum.
fn section_bytes(bytes: &[u8], section: SectionHandle) -> Result<&[u8], Corruption> {
    let corrupt = |what| Corruption::new(section.offset, what);
    let (Ok(offset), Ok(len)) = (usize::try_from(section.offset), usize::try_from(section.len))
    else {
        return Err(corrupt("metadata section out of range"));
    };
    let section_bytes =
        slice_at(bytes, offset, len).ok_or_else(|| corrupt("metadata section out of range"))?;
    if checksum(section_bytes) != section.checksum {
        return Err(corrupt("metadata section checksum mismatch"));
    }
    Ok(section_bytes)
}

/// Reads entries through the key index, remembering the last block it verified so that
/// neighbouring references in the same block are not checked twice.
#[derive(Debug)]
pub(super) struct EntryReader<'a> {
    segment: Segment<'a>,
    last_block: LastBlock<'a>,
}

impl<'a> EntryReader<'a> {
    pub(super) fn new(segment: Segment<'a>) -> EntryReader<'a> {
        EntryReader { segment, last_block: None }
    }

    /// The entry the `index`-th key index reference points at.
    pub(super) fn entry(&mut self, index: usize) -> Result<Entry<'a>, Corruption> {
        self.segment.entry_at(index, &mut self.last_block)
    }

    /// The first reference in `[lo, hi)` whose entry is not `before` the target, where
    /// `before(key, version)` holds on a prefix of the key order (a binary search that decodes
    /// entries).
    pub(super) fn first_not_before(
        &mut self,
        lo: usize,
        hi: usize,
        mut before: impl FnMut(&[u8], Version) -> bool,
    ) -> Result<usize, Corruption> {
        try_partition_point(lo, hi, |index| {
            let entry = self.entry(index)?;
            Ok(before(entry.key, entry.version))
        })
    }

    /// The first reference whose key is not before the bound `key`, where `key_is_before` maps
    /// `entry.key.cmp(key)` to "before" (`Ordering::is_lt` for an inclusive lower bound,
    /// `Ordering::is_le` for an exclusive one).
    pub(super) fn first_key_not_before(
        &mut self,
        key: &[u8],
        key_is_before: impl Fn(Ordering) -> bool,
    ) -> Result<usize, Corruption> {
        let before = |entry_key: &[u8], _| key_is_before(entry_key.cmp(key));
        let (lo, hi) = self.segment.search_window(key_prefix(key), before);
        self.first_not_before(lo, hi, before)
    }
}
