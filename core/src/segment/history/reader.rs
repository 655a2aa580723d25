//! [`HistorySegment`]: a zero-copy reader over a history segment's bytes, validated at open,
//! with the point queries (`get_at`, `history`) that go through the key-order index.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use core::cmp::Ordering;
use core::ops::{Bound, RangeBounds};
use core::sync::atomic::{self, AtomicBool};

use super::super::bytes::{partition_point, slice_at, u32_at, u64_at};
use super::changes::HistoryChanges;
use super::format::{
    BLOCK_HANDLE_LEN, BlockHandle, ENTRY_HEADER_LEN, FOOTER_LEN, Footer, KEY_ORDER_ROW_LEN,
    KEY_ROW_LEN, ORDINAL_COUNT_MAX, RawEntry, SECTION_COUNT, SectionKind, VERSION_ROW_LEN,
    decode_entry_at,
};
use crate::checksum::{CHECKSUM_LEN, checksum};
use crate::limits::KEY_LEN_MAX;
use crate::segment::SEGMENT_LEN_MAX;
use crate::{Corruption, Entry, Version};

/// An open history segment: its bytes, with the footer and every metadata section validated.
///
/// Open checks the footer, every section's checksum, and that every count, offset and order in
/// the block index, key table, version table and key-order index is consistent; data blocks are
/// checked (checksum, then every entry decoded from them) each time a query reads one (the
/// checksum only the first time, with [`HistorySegment::with_verified_blocks`]). So no
/// input makes a query panic or read outside the file, and a damaged byte is [`Corruption`].
#[derive(Clone, Copy, Debug)]
pub struct HistorySegment<'a> {
    bytes: &'a [u8],
    data: &'a [u8],
    block_index: &'a [u8],
    key_rows: &'a [u8],
    key_bytes: &'a [u8],
    versions: &'a [u8],
    key_order: &'a [u8],
    /// One flag per data block: set once the block has passed its checksum. Empty: verify on
    /// every read.
    verified: &'a [AtomicBool],
    entry_count: u32,
    key_count: u32,
    version_count: u32,
    block_count: u32,
}

/// A section's bytes; `expected_offset` is where the previous one ended.
fn section_bytes<'b>(
    bytes: &'b [u8],
    footer: &Footer,
    kind: SectionKind,
    expected_offset: u64,
) -> Result<&'b [u8], Corruption> {
    let handle = footer.sections.get(kind as usize).copied().unwrap_or_default();
    let corrupt = |what| Corruption::new(handle.offset, what);
    if handle.offset != expected_offset {
        return Err(corrupt("history section not where the previous one ended"));
    }
    let offset = usize::try_from(handle.offset).map_err(|_| corrupt("section offset"))?;
    let len = usize::try_from(handle.len).map_err(|_| corrupt("section length"))?;
    let section = slice_at(bytes, offset, len)
        .ok_or_else(|| corrupt("history section runs past the footer"))?;
    if checksum(section) != handle.checksum {
        return Err(corrupt("history section checksum mismatch"));
    }
    Ok(section)
}

/// A count from the footer as a `u32`, or corruption.
fn count_u32(count: u64, at: u64) -> Result<u32, Corruption> {
    if count >= ORDINAL_COUNT_MAX {
        return Err(Corruption::new(at, "history count over the format's limit"));
    }
    Ok(count as u32)
}

impl<'a> HistorySegment<'a> {
    /// Opens the history segment in `bytes` (a whole file; no alignment needed).
    pub fn open(bytes: &'a [u8]) -> Result<HistorySegment<'a>, Corruption> {
        if bytes.len() < FOOTER_LEN {
            return Err(Corruption::new(0, "history segment shorter than its footer"));
        }
        if bytes.len() as u64 > SEGMENT_LEN_MAX {
            return Err(Corruption::new(SEGMENT_LEN_MAX, "history segment over the format limit"));
        }
        let footer_offset = bytes.len() - FOOTER_LEN;
        let (metadata, footer_bytes) = bytes.split_at(footer_offset);
        let footer_at = footer_offset as u64;
        let footer = Footer::decode_from(footer_bytes, footer_at)?;
        let data_len = footer.sections.first().map_or(0, |section| section.offset);
        let data = slice_at(metadata, 0, usize::try_from(data_len).unwrap_or(usize::MAX))
            .ok_or(Corruption::new(footer_at, "history data runs past the footer"))?;
        let mut sections = [&[][..]; SECTION_COUNT];
        let mut expected = data_len;
        let kinds = [
            SectionKind::BlockIndex,
            SectionKind::KeyTable,
            SectionKind::VersionTable,
            SectionKind::KeyOrder,
        ];
        for (section, kind) in sections.iter_mut().zip(kinds) {
            *section = section_bytes(metadata, &footer, kind, expected)?;
            expected += section.len() as u64;
        }
        if expected != footer_at {
            return Err(Corruption::new(expected, "history sections do not end at the footer"));
        }
        let [block_index, key_table, versions, key_order] = sections;
        let segment = HistorySegment {
            bytes,
            data,
            block_index,
            key_rows: &[],
            key_bytes: &[],
            versions,
            key_order,
            verified: &[],
            entry_count: count_u32(footer.entry_count, footer_at)?,
            key_count: count_u32(footer.key_count, footer_at)?,
            version_count: count_u32(footer.version_count, footer_at)?,
            block_count: (block_index.len() / BLOCK_HANDLE_LEN) as u32,
        };
        let segment = segment.with_key_table(key_table, footer_at)?;
        segment.validate(footer_at)?;
        Ok(segment)
    }

    /// Splits the key table into its rows and its key bytes.
    fn with_key_table(
        mut self,
        key_table: &'a [u8],
        at: u64,
    ) -> Result<HistorySegment<'a>, Corruption> {
        let rows_len = (u64::from(self.key_count) + 1) * KEY_ROW_LEN as u64;
        if (key_table.len() as u64) < rows_len {
            return Err(Corruption::new(at, "history key table shorter than its rows"));
        }
        let rows_len = rows_len as usize;
        let (rows, key_bytes) = key_table.split_at(rows_len);
        self.key_rows = rows;
        self.key_bytes = key_bytes;
        Ok(self)
    }

    /// Every check of the metadata against itself and the counts.
    fn validate(&self, at: u64) -> Result<(), Corruption> {
        let corrupt = |what| Err(Corruption::new(at, what));
        let (entries, keys, versions) = (self.entry_count, self.key_count, self.version_count);
        let empty = entries == 0;
        if empty != (keys == 0) || empty != (versions == 0) || keys > entries || versions > entries
        {
            return corrupt("history counts disagree");
        }
        if !self.block_index.len().is_multiple_of(BLOCK_HANDLE_LEN)
            || self.versions.len() as u64 != u64::from(versions) * VERSION_ROW_LEN as u64
            || self.key_order.len() as u64 != u64::from(entries) * KEY_ORDER_ROW_LEN as u64
        {
            return corrupt("history section length disagrees with its count");
        }
        self.validate_versions(at)?;
        self.validate_keys(at)?;
        self.validate_key_order(at)?;
        self.validate_blocks(at)
    }

    fn validate_versions(&self, at: u64) -> Result<(), Corruption> {
        let ascending = (1..self.version_count).all(|i| self.version(i - 1) < self.version(i));
        if !ascending {
            return Err(Corruption::new(at, "history version table not strictly ascending"));
        }
        Ok(())
    }

    fn validate_keys(&self, at: u64) -> Result<(), Corruption> {
        let corrupt = |what| Err(Corruption::new(at, what));
        let (first, last) = (self.key_row(0), self.key_row(self.key_count));
        if first != Some((0, 0)) || last != Some((self.key_bytes.len(), self.entry_count)) {
            return corrupt("history key table does not start at zero and end at the totals");
        }
        let mut previous: Option<&[u8]> = None;
        for ordinal in 0..self.key_count {
            let (Some((start, run)), Some((end, run_end))) =
                (self.key_row(ordinal), self.key_row(ordinal + 1))
            else {
                return corrupt("history key table row missing");
            };
            if end < start || end - start > KEY_LEN_MAX || run_end <= run {
                return corrupt("history key table row out of order");
            }
            let key = self.key_bytes.get(start..end);
            if key.is_none() || previous.is_some_and(|previous| Some(previous) >= key) {
                return corrupt("history keys not strictly ascending");
            }
            previous = key;
        }
        Ok(())
    }

    fn validate_key_order(&self, at: u64) -> Result<(), Corruption> {
        let data_len = self.data.len();
        for ordinal in 0..self.key_count {
            let (run, run_end) = self.run(ordinal);
            let mut newer: Option<u32> = None;
            for index in run..run_end {
                let Some((version_ordinal, offset)) = self.key_order_row(index) else {
                    return Err(Corruption::new(at, "history key-order row missing"));
                };
                let descending = newer.is_none_or(|newer| version_ordinal < newer);
                let in_data = (offset as usize)
                    .checked_add(ENTRY_HEADER_LEN)
                    .is_some_and(|end| end <= data_len);
                if !descending || version_ordinal >= self.version_count || !in_data {
                    return Err(Corruption::new(at, "history key-order row out of order or range"));
                }
                newer = Some(version_ordinal);
            }
        }
        Ok(())
    }

    fn validate_blocks(&self, at: u64) -> Result<(), Corruption> {
        let mut expected_offset = 0u64;
        let mut previous_first: Option<u64> = None;
        for index in 0..self.block_count as usize {
            let handle = self.block_handle(index).ok_or(Corruption::new(at, "block handle"))?;
            let zone_ok = handle.key_ordinal_min <= handle.key_ordinal_max
                && handle.key_ordinal_max < self.key_count
                && handle.version_ordinal_min <= handle.version_ordinal_max
                && handle.version_ordinal_max < self.version_count;
            if u64::from(handle.offset) != expected_offset
                || (handle.len as usize) < ENTRY_HEADER_LEN
                || !zone_ok
                || previous_first.is_some_and(|first| first >= handle.first_morton)
            {
                return Err(Corruption::new(at, "history block index inconsistent"));
            }
            previous_first = Some(handle.first_morton);
            expected_offset += u64::from(handle.len) + CHECKSUM_LEN as u64;
        }
        if expected_offset != self.data.len() as u64 {
            return Err(Corruption::new(at, "history blocks do not cover the data"));
        }
        Ok(())
    }

    /// The same segment, remembering in `verified` (one flag per data block, all `false` at
    /// first) which blocks passed their checksum, so each is hashed once, not on every read
    /// (as `Segment::with_verified_blocks`; mapped bytes never change). Fewer flags than blocks:
    /// ignored, every read verifies.
    #[must_use]
    pub fn with_verified_blocks(self, verified: &'a [AtomicBool]) -> HistorySegment<'a> {
        let usable = verified.len() >= self.block_count();
        HistorySegment { verified: if usable { verified } else { &[] }, ..self }
    }

    /// Entries (versions, tombstones included).
    #[must_use]
    pub fn entry_count(&self) -> u64 {
        u64::from(self.entry_count)
    }

    /// Distinct keys.
    #[must_use]
    pub fn key_count(&self) -> u64 {
        u64::from(self.key_count)
    }

    /// Distinct versions.
    #[must_use]
    pub fn version_count(&self) -> u64 {
        u64::from(self.version_count)
    }

    /// Data blocks.
    #[must_use]
    pub fn block_count(&self) -> usize {
        self.block_count as usize
    }

    /// Bytes of the data blocks, checksums included.
    #[must_use]
    pub fn data_len(&self) -> u64 {
        self.data.len() as u64
    }

    /// Bytes of the whole file.
    #[must_use]
    pub fn file_len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// The smallest version, or `None` when the segment is empty.
    #[must_use]
    pub fn version_min(&self) -> Option<Version> {
        (self.version_count > 0).then(|| Version::new(self.version(0)))
    }

    /// The largest version, or `None` when the segment is empty.
    #[must_use]
    pub fn version_max(&self) -> Option<Version> {
        let last = self.version_count.checked_sub(1)?;
        Some(Version::new(self.version(last)))
    }

    /// The newest version of `key` at or below `version`, tombstones included.
    pub fn get_at(&self, key: &[u8], version: Version) -> Result<Option<Entry<'a>>, Corruption> {
        let Some(key_ordinal) = self.key_ordinal(key) else {
            return Ok(None);
        };
        let (run, run_end) = self.run(key_ordinal);
        let start = self.first_at_or_below(run, run_end, version);
        if start == run_end {
            return Ok(None);
        }
        self.entry_of_row(key_ordinal, start).map(Some)
    }

    /// Every version of `key`, newest first, read lazily.
    #[must_use]
    pub fn history(&self, key: &[u8]) -> HistoryIter<'a> {
        self.history_at(key, Version::MAX)
    }

    /// The versions of `key` at or below `version`, newest first, read lazily.
    #[must_use]
    pub fn history_at(&self, key: &[u8], version: Version) -> HistoryIter<'a> {
        let Some(key_ordinal) = self.key_ordinal(key) else {
            return HistoryIter { segment: *self, key_ordinal: 0, next: 0, end: 0 };
        };
        let (run, end) = self.run(key_ordinal);
        let next = self.first_at_or_below(run, end, version);
        HistoryIter { segment: *self, key_ordinal, next, end }
    }

    /// Every entry in key order (key ascending, each key's versions newest first), read
    /// lazily through the key-order index: the order compaction merges segments in.
    #[must_use]
    pub fn iter_key_order(&self) -> HistoryKeyOrder<'a> {
        HistoryKeyOrder { segment: *self, key_ordinal: 0, next: 0 }
    }

    /// Each key in `keys` with its newest version at or below `version` (tombstones
    /// included), in key order; walked from the back (`next_back`) in descending key order.
    /// Keys with no version at or below `version` are skipped.
    #[must_use]
    pub fn range_at<'k>(
        &self,
        keys: impl RangeBounds<&'k [u8]>,
        version: Version,
    ) -> HistoryRangeAt<'a> {
        let (front, back) = self.key_ordinals(&keys);
        HistoryRangeAt { segment: *self, version, front, back: back.max(front) }
    }

    /// Every entry with its key in `keys` and its version in `versions`, in the segment's Z
    /// order, reading only the blocks that may hold some.
    #[must_use]
    pub fn changes<'k>(
        &self,
        keys: impl RangeBounds<&'k [u8]>,
        versions: impl RangeBounds<Version>,
    ) -> HistoryChanges<'a> {
        let key_ordinals = self.key_ordinals(&keys);
        let version_ordinals = self.version_ordinals(&versions);
        HistoryChanges::new(*self, key_ordinals, version_ordinals)
    }

    /// The ordinals `[lo, hi)` of the keys in `keys`.
    fn key_ordinals<'k>(&self, keys: &impl RangeBounds<&'k [u8]>) -> (u32, u32) {
        let below = |key: &[u8], inclusive: bool| {
            partition_point(0, self.key_count as usize, |ordinal| {
                match self.key(ordinal as u32).cmp(key) {
                    Ordering::Less => true,
                    Ordering::Equal => inclusive,
                    Ordering::Greater => false,
                }
            }) as u32
        };
        let lo = match keys.start_bound() {
            Bound::Included(key) => below(key, false),
            Bound::Excluded(key) => below(key, true),
            Bound::Unbounded => 0,
        };
        let hi = match keys.end_bound() {
            Bound::Included(key) => below(key, true),
            Bound::Excluded(key) => below(key, false),
            Bound::Unbounded => self.key_count,
        };
        (lo, hi)
    }

    /// The ordinals `[lo, hi)` of the versions in `versions`.
    fn version_ordinals(&self, versions: &impl RangeBounds<Version>) -> (u32, u32) {
        let below = |version: Version, inclusive: bool| self.versions_below(version, inclusive);
        let lo = match versions.start_bound() {
            Bound::Included(&version) => below(version, false),
            Bound::Excluded(&version) => below(version, true),
            Bound::Unbounded => 0,
        };
        let hi = match versions.end_bound() {
            Bound::Included(&version) => below(version, true),
            Bound::Excluded(&version) => below(version, false),
            Bound::Unbounded => self.version_count,
        };
        (lo, hi)
    }

    /// How many distinct versions are below `version` (or at it, when `inclusive`).
    fn versions_below(&self, version: Version, inclusive: bool) -> u32 {
        partition_point(0, self.version_count as usize, |ordinal| {
            let stored = self.version(ordinal as u32);
            stored < version.get() || (inclusive && stored == version.get())
        }) as u32
    }

    /// The first key-order row in `[run, run_end)` (a key's run, newest first) whose version is
    /// at or below `version`; `run_end` when none is.
    fn first_at_or_below(&self, run: u32, run_end: u32, version: Version) -> u32 {
        let Some(bound) = self.versions_below(version, true).checked_sub(1) else {
            return run_end;
        };
        partition_point(run as usize, run_end as usize, |index| {
            self.key_order_row(index as u32).is_some_and(|(ordinal, _)| ordinal > bound)
        }) as u32
    }

    /// The ordinal of `key`, if the segment holds it.
    fn key_ordinal(&self, key: &[u8]) -> Option<u32> {
        let ordinal = partition_point(0, self.key_count as usize, |o| self.key(o as u32) < key);
        let ordinal = ordinal as u32;
        (ordinal < self.key_count && self.key(ordinal) == key).then_some(ordinal)
    }

    /// The key of `ordinal` (empty past the table: open checked every row).
    pub(super) fn key(&self, ordinal: u32) -> &'a [u8] {
        let (Some((start, _)), Some((end, _))) = (self.key_row(ordinal), self.key_row(ordinal + 1))
        else {
            return &[];
        };
        self.key_bytes.get(start..end).unwrap_or_default()
    }

    /// The version of `ordinal` (0 past the table: open checked its length).
    pub(super) fn version(&self, ordinal: u32) -> u64 {
        u64_at(self.versions, ordinal as usize * VERSION_ROW_LEN).unwrap_or_default()
    }

    /// Row `ordinal` of the key table: key start, run start.
    fn key_row(&self, ordinal: u32) -> Option<(usize, u32)> {
        let at = (ordinal as usize).checked_mul(KEY_ROW_LEN)?;
        Some((u32_at(self.key_rows, at)? as usize, u32_at(self.key_rows, at + 4)?))
    }

    /// The key-order rows `[run, run_end)` of the key `ordinal`.
    fn run(&self, ordinal: u32) -> (u32, u32) {
        let run = self.key_row(ordinal).map_or(0, |(_, run)| run);
        let run_end = self.key_row(ordinal + 1).map_or(run, |(_, run_end)| run_end);
        (run, run_end.max(run))
    }

    /// Row `index` of the key-order index: version ordinal, entry offset.
    fn key_order_row(&self, index: u32) -> Option<(u32, u32)> {
        let at = (index as usize).checked_mul(KEY_ORDER_ROW_LEN)?;
        Some((u32_at(self.key_order, at)?, u32_at(self.key_order, at + 4)?))
    }

    /// The entry that key-order row `index` (of key `key_ordinal`) points at, read from its
    /// checked block; corruption when the entry there is not that key and version.
    fn entry_of_row(&self, key_ordinal: u32, index: u32) -> Result<Entry<'a>, Corruption> {
        let (version_ordinal, offset) =
            self.key_order_row(index).ok_or(Corruption::new(0, "history key-order row missing"))?;
        let corrupt = |what| Corruption::new(u64::from(offset), what);
        let block_index = self
            .block_of_offset(offset)
            .ok_or_else(|| corrupt("history entry offset before the first block"))?;
        let (block, handle) = self.checked_block(block_index)?;
        let position = offset
            .checked_sub(handle.offset)
            .ok_or_else(|| corrupt("history entry offset before its block"))?;
        let position = position as usize;
        let raw = decode_entry_at(block, position)
            .ok_or_else(|| corrupt("history entry runs past its block"))?;
        if raw.key_ordinal != key_ordinal || raw.version_ordinal != version_ordinal {
            return Err(corrupt("history entry is not the one its key-order row names"));
        }
        Ok(self.entry(raw))
    }

    /// The block holding file offset `offset`: the last whose start is at or before it, or
    /// `None` before the first. Blocks are about equally long, so the search starts at the
    /// proportional guess and gallops from it (a handful of handles, near each other), rather
    /// than binary-searching the whole block index for each entry a history reads.
    fn block_of_offset(&self, offset: u32) -> Option<usize> {
        let count = self.block_count as usize;
        let last = count.checked_sub(1)?;
        let data_len = (self.data.len() as u64).max(1);
        let guess = usize::try_from(u64::from(offset) * count as u64 / data_len)
            .map_or(last, |guess| guess.min(last));
        let starts_at_or_before =
            |block: usize| self.block_handle(block).is_some_and(|h| h.offset <= offset);
        let (mut lo, mut hi, mut step) = (guess, guess, 1_usize);
        if starts_at_or_before(guess) {
            // Up: `lo` starts at or before the offset; find a block past it (or the end).
            hi = count;
            while let Some(probe) = guess.checked_add(step).filter(|probe| *probe < count) {
                if !starts_at_or_before(probe) {
                    hi = probe;
                    break;
                }
                lo = probe;
                step = step.saturating_mul(2);
            }
            lo += 1;
        } else {
            // Down: `hi` starts past the offset; find a block at or before it (or none).
            lo = 0;
            while let Some(probe) = guess.checked_sub(step) {
                if starts_at_or_before(probe) {
                    lo = probe + 1;
                    break;
                }
                hi = probe;
                step = step.saturating_mul(2);
            }
        }
        // Every block before `lo` starts at or before the offset, none from `hi` on.
        partition_point(lo, hi, starts_at_or_before).checked_sub(1)
    }

    /// The [`Entry`] of a decoded entry whose ordinals were checked against the counts.
    pub(super) fn entry(&self, raw: RawEntry<'a>) -> Entry<'a> {
        Entry {
            key: self.key(raw.key_ordinal),
            version: Version::new(self.version(raw.version_ordinal)),
            value: raw.value,
        }
    }

    /// Handle `index` of the block index.
    pub(super) fn block_handle(&self, index: usize) -> Option<BlockHandle> {
        BlockHandle::decode_at(self.block_index, index.checked_mul(BLOCK_HANDLE_LEN)?)
    }

    /// Block `index`'s bytes, after its checksum matched.
    pub(super) fn checked_block(
        &self,
        index: usize,
    ) -> Result<(&'a [u8], BlockHandle), Corruption> {
        let handle = self.block_handle(index).ok_or(Corruption::new(0, "history block missing"))?;
        let corrupt = |what| Corruption::new(u64::from(handle.offset), what);
        let block = slice_at(self.data, handle.offset as usize, handle.len as usize)
            .ok_or_else(|| corrupt("history block runs past the data"))?;
        let flag = self.verified.get(index);
        // Relaxed: the flag orders nothing; the bytes it vouches for never change.
        if flag.is_some_and(|flag| flag.load(atomic::Ordering::Relaxed)) {
            return Ok((block, handle));
        }
        let checksum_at = (handle.offset as usize).checked_add(handle.len as usize);
        let stored = checksum_at
            .and_then(|at| u64_at(self.data, at))
            .ok_or_else(|| corrupt("history block checksum runs past the data"))?;
        if checksum(block) != stored {
            return Err(corrupt("history block checksum mismatch"));
        }
        if let Some(flag) = flag {
            flag.store(true, atomic::Ordering::Relaxed);
        }
        Ok((block, handle))
    }

    /// The counts that bound every ordinal: keys, versions.
    pub(super) fn ordinal_counts(&self) -> (u32, u32) {
        (self.key_count, self.version_count)
    }
}

/// A key's versions in a history segment, newest first ([`HistorySegment::history`]).
#[derive(Clone, Debug)]
pub struct HistoryIter<'a> {
    segment: HistorySegment<'a>,
    key_ordinal: u32,
    next: u32,
    end: u32,
}

impl<'a> Iterator for HistoryIter<'a> {
    type Item = Result<Entry<'a>, Corruption>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.end {
            return None;
        }
        let index = self.next;
        self.next += 1;
        let entry = self.segment.entry_of_row(self.key_ordinal, index);
        if entry.is_err() {
            self.next = self.end;
        }
        Some(entry)
    }
}

/// Each key of a range with its newest version at or below a version
/// ([`HistorySegment::range_at`]).
#[derive(Clone, Debug)]
pub struct HistoryRangeAt<'a> {
    segment: HistorySegment<'a>,
    version: Version,
    /// The next key ordinal from the front.
    front: u32,
    /// One past the next key ordinal from the back.
    back: u32,
}

impl<'a> HistoryRangeAt<'a> {
    /// The entry of key `ordinal` at the version, if it has one there.
    fn at(&mut self, ordinal: u32) -> Option<Result<Entry<'a>, Corruption>> {
        let (run, run_end) = self.segment.run(ordinal);
        let row = self.segment.first_at_or_below(run, run_end, self.version);
        if row == run_end {
            return None;
        }
        let entry = self.segment.entry_of_row(ordinal, row);
        if entry.is_err() {
            self.front = self.back;
        }
        Some(entry)
    }
}

impl<'a> Iterator for HistoryRangeAt<'a> {
    type Item = Result<Entry<'a>, Corruption>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.front < self.back {
            let ordinal = self.front;
            self.front += 1;
            if let Some(entry) = self.at(ordinal) {
                return Some(entry);
            }
        }
        None
    }
}

impl DoubleEndedIterator for HistoryRangeAt<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        while self.front < self.back {
            self.back -= 1;
            let ordinal = self.back;
            if let Some(entry) = self.at(ordinal) {
                return Some(entry);
            }
        }
        None
    }
}

/// Every entry of a history segment in key order ([`HistorySegment::iter_key_order`]).
#[derive(Clone, Debug)]
pub struct HistoryKeyOrder<'a> {
    segment: HistorySegment<'a>,
    key_ordinal: u32,
    /// The next key-order row; `entry_count` at the end.
    next: u32,
}

impl<'a> Iterator for HistoryKeyOrder<'a> {
    type Item = Result<Entry<'a>, Corruption>;

    fn next(&mut self) -> Option<Self::Item> {
        // Open checked that the runs tile the rows in key order, each non-empty.
        while self.key_ordinal < self.segment.key_count {
            let (_, run_end) = self.segment.run(self.key_ordinal);
            if self.next < run_end {
                break;
            }
            self.key_ordinal += 1;
        }
        if self.key_ordinal >= self.segment.key_count {
            return None;
        }
        let index = self.next;
        self.next += 1;
        let entry = self.segment.entry_of_row(self.key_ordinal, index);
        if entry.is_err() {
            self.key_ordinal = self.segment.key_count;
        }
        Some(entry)
    }
}
