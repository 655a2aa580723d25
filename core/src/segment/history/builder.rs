//! [`HistoryBuilder`]: writes a history segment from entries given in key order (key
//! ascending, versions of a key descending): the order compaction decides survivors in.
//!
//! Memory: the builder holds the whole segment until [`HistoryBuilder::finish`]: the values in
//! one arena, each distinct key once (plus a 4-byte start), and 24 bytes per entry. `finish`
//! adds at most 64 bytes per entry (the version table, 8; version ordinals, 4; the (code,
//! entry) pairs it sorts into Z order, 16; entry offsets, 4; block handles, at most one of 32
//! per entry) and one block. The entries' bytes (headers, values, keys) are bounded by
//! [`HistoryOptions::data_bytes_max`], which the engine sets to its segment target, and each
//! entry takes at least 12 of them, so the builder never holds more than about 8 times the
//! bound. An entry past the bound is refused with [`LimitError::TooLarge`] and nothing of it is
//! kept.

use alloc::vec::Vec;

use super::format::{
    BlockHandle, ENTRY_HEADER_LEN, Footer, KEY_ORDER_ROW_LEN, KEY_ROW_LEN, ORDINAL_COUNT_MAX,
    SECTION_COUNT, SectionHandle, TOMBSTONE, morton_of,
};
use crate::bytes::fill_slot;
use crate::checksum::{ChecksumStream, checksum};
use crate::limits::{check_key, check_value};
use crate::segment::{BLOCK_BYTES_TARGET_DEFAULT, BuildError, SEGMENT_LEN_MAX, Sink};
use crate::{LimitError, Version};

/// How a [`HistoryBuilder`] lays out a history segment, and how large it may grow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryOptions {
    block_bytes_target: usize,
    data_bytes_max: u64,
}

impl Default for HistoryOptions {
    fn default() -> Self {
        HistoryOptions {
            block_bytes_target: BLOCK_BYTES_TARGET_DEFAULT,
            data_bytes_max: SEGMENT_LEN_MAX / 2,
        }
    }
}

impl HistoryOptions {
    /// Data blocks are packed up to `bytes` (without their checksum); an entry larger than
    /// that makes a block of its own.
    #[must_use]
    pub fn with_block_bytes_target(mut self, bytes: usize) -> HistoryOptions {
        self.block_bytes_target = bytes.max(1);
        self
    }

    /// The most bytes of entries (keys, values and entry headers) the builder accepts, capped
    /// at half the format's 4 GiB limit so the metadata always fits beside the data.
    #[must_use]
    pub fn with_data_bytes_max(mut self, bytes: u64) -> HistoryOptions {
        self.data_bytes_max = bytes.min(SEGMENT_LEN_MAX / 2);
        self
    }

    /// The block size target in bytes.
    #[must_use]
    pub fn block_bytes_target(&self) -> usize {
        self.block_bytes_target
    }

    /// The bound on the entries' bytes.
    #[must_use]
    pub fn data_bytes_max(&self) -> u64 {
        self.data_bytes_max
    }
}

/// What a finished history segment holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistorySummary {
    /// Entries (versions, tombstones included).
    pub entry_count: u64,
    /// Distinct keys.
    pub key_count: u64,
    /// Distinct versions.
    pub version_count: u64,
    /// Data blocks.
    pub block_count: u64,
    /// Bytes of the whole file.
    pub file_len: u64,
}

/// One entry kept until `finish`.
#[derive(Clone, Copy, Debug)]
struct Pending {
    key_ordinal: u32,
    version: u64,
    value_at: u32,
    /// [`TOMBSTONE`] for a tombstone.
    value_len: u32,
}

/// Builds a history segment in memory and writes it to a [`Sink`] at `finish`.
#[derive(Debug, Default)]
pub struct HistoryBuilder {
    options: HistoryOptions,
    /// Every distinct key, back to back.
    key_bytes: Vec<u8>,
    /// Where each key starts in `key_bytes`.
    key_starts: Vec<u32>,
    values: Vec<u8>,
    entries: Vec<Pending>,
    /// Bytes the entries would take in data blocks (headers, values), plus the keys.
    data_bytes: u64,
}

impl HistoryBuilder {
    /// An empty builder.
    #[must_use]
    pub fn new(options: HistoryOptions) -> HistoryBuilder {
        HistoryBuilder { options, ..HistoryBuilder::default() }
    }

    /// Entries added so far.
    #[must_use]
    pub fn entry_count(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Bytes of entries and keys accepted so far, the figure held to
    /// [`HistoryOptions::data_bytes_max`].
    #[must_use]
    pub fn data_bytes(&self) -> u64 {
        self.data_bytes
    }

    /// Adds one version of `key` (`None`: a tombstone). Keys must come in ascending order and
    /// each key's versions in strictly descending order; anything else is
    /// [`BuildError::OutOfOrder`], and an entry over a limit is [`BuildError::Limit`]. A
    /// refused entry leaves the builder as it was.
    pub fn add<E>(
        &mut self,
        key: &[u8],
        version: Version,
        value: Option<&[u8]>,
    ) -> Result<(), BuildError<E>> {
        check_key(key)?;
        if let Some(value) = value {
            check_value(value)?;
        }
        let same_key = self.check_order(key, version)?;
        let value_len = value.map_or(0, <[u8]>::len) as u64;
        let key_len = if same_key { 0 } else { key.len() as u64 };
        let added = ENTRY_HEADER_LEN as u64 + value_len + key_len;
        let data_bytes = self.data_bytes.saturating_add(added);
        if data_bytes > self.options.data_bytes_max {
            let len_max = self.options.data_bytes_max;
            return Err(
                LimitError::TooLarge { what: "history segment", len: data_bytes, len_max }.into()
            );
        }
        if self.entries.len() as u64 >= ORDINAL_COUNT_MAX - 1 {
            let len = self.entries.len() as u64;
            let len_max = ORDINAL_COUNT_MAX - 1;
            return Err(LimitError::TooLarge { what: "history entry count", len, len_max }.into());
        }
        if !same_key {
            self.key_starts.push(self.key_bytes.len() as u32);
            self.key_bytes.extend_from_slice(key);
        }
        let value_at = self.values.len() as u32;
        self.values.extend_from_slice(value.unwrap_or_default());
        self.entries.push(Pending {
            key_ordinal: (self.key_starts.len() - 1) as u32,
            version: version.get(),
            value_at,
            value_len: value.map_or(TOMBSTONE, |value| value.len() as u32),
        });
        self.data_bytes = data_bytes;
        Ok(())
    }

    /// Whether `key` is the last key added (`true`) or a later one (`false`); `OutOfOrder`
    /// otherwise, or when the version does not go down.
    fn check_order<E>(&self, key: &[u8], version: Version) -> Result<bool, BuildError<E>> {
        let Some(last) = self.entries.last() else {
            return Ok(false);
        };
        let last_key = self.key(last.key_ordinal);
        match key.cmp(last_key) {
            core::cmp::Ordering::Greater => Ok(false),
            core::cmp::Ordering::Equal if version.get() < last.version => Ok(true),
            _ => Err(BuildError::OutOfOrder),
        }
    }

    fn key(&self, ordinal: u32) -> &[u8] {
        let ordinal = ordinal as usize;
        let start = self.key_starts.get(ordinal).map_or(0, |&start| start as usize);
        let end = self.key_starts.get(ordinal + 1).map_or(self.key_bytes.len(), |&e| e as usize);
        self.key_bytes.get(start..end).unwrap_or_default()
    }

    /// Writes the segment to `sink`: the data blocks in Z order of (key ordinal, version
    /// ordinal), then the block index, key table, version table, key-order index and footer.
    pub fn finish<S: Sink>(self, sink: S) -> Result<HistorySummary, BuildError<S::Error>> {
        let versions = self.version_table();
        let version_ordinals = self.version_ordinals(&versions);
        let key_count = self.key_starts.len() as u32;
        let version_count = versions.len() as u32;
        let mut order: Vec<(u64, u32)> = self
            .entries
            .iter()
            .zip(&version_ordinals)
            .enumerate()
            .map(|(index, (entry, &version_ordinal))| {
                let code = morton_of(entry.key_ordinal, version_ordinal, key_count, version_count);
                (code, index as u32)
            })
            .collect();
        order.sort_unstable();
        let mut writer = CountedSink { sink, written: 0 };
        let (blocks, entry_offsets) = self.write_blocks(&mut writer, &order, &version_ordinals)?;
        drop(order);
        let mut sections = [SectionHandle::default(); SECTION_COUNT];
        let mut section = writer.section();
        for block in &blocks {
            section.put(&mut writer, &block.encode())?;
        }
        sections[0] = section.end(&writer);
        let mut section = writer.section();
        for row in self.key_rows() {
            section.put(&mut writer, &row)?;
        }
        section.put(&mut writer, &self.key_bytes)?;
        sections[1] = section.end(&writer);
        let mut section = writer.section();
        for version in &versions {
            section.put(&mut writer, &version.to_le_bytes())?;
        }
        sections[2] = section.end(&writer);
        let mut section = writer.section();
        for (&ordinal, &offset) in version_ordinals.iter().zip(&entry_offsets) {
            let mut row = [0u8; KEY_ORDER_ROW_LEN];
            fill_slot(&mut row, |writer| writer.u32(ordinal)?.u32(offset).map(drop));
            section.put(&mut writer, &row)?;
        }
        sections[3] = section.end(&writer);
        let footer = Footer {
            entry_count: self.entries.len() as u64,
            key_count: u64::from(key_count),
            version_count: u64::from(version_count),
            sections,
        };
        writer.write(&footer.encode())?;
        Ok(HistorySummary {
            entry_count: footer.entry_count,
            key_count: footer.key_count,
            version_count: footer.version_count,
            block_count: blocks.len() as u64,
            file_len: writer.written,
        })
    }

    /// The distinct versions, ascending.
    fn version_table(&self) -> Vec<u64> {
        let mut versions: Vec<u64> = self.entries.iter().map(|entry| entry.version).collect();
        versions.sort_unstable();
        versions.dedup();
        versions
    }

    /// Each entry's version ordinal, in entry order.
    fn version_ordinals(&self, versions: &[u64]) -> Vec<u32> {
        let ordinal = |version: u64| versions.partition_point(|&v| v < version) as u32;
        self.entries.iter().map(|entry| ordinal(entry.version)).collect()
    }

    /// The key table's rows (key start, start of its run in the key-order index), then a
    /// sentinel row (key bytes length, entry count). Entries are in key order, so a key's run
    /// starts at its first entry.
    fn key_rows(&self) -> impl Iterator<Item = [u8; KEY_ROW_LEN]> + '_ {
        let mut run_starts = Vec::with_capacity(self.key_starts.len());
        for (index, entry) in self.entries.iter().enumerate() {
            if run_starts.len() == entry.key_ordinal as usize {
                run_starts.push(index as u32);
            }
        }
        assert!(run_starts.len() == self.key_starts.len(), "every key has an entry");
        let sentinel = (self.key_bytes.len() as u32, self.entries.len() as u32);
        let rows = self.key_starts.iter().copied().zip(run_starts);
        rows.chain(core::iter::once(sentinel)).map(|(key_start, run_start)| {
            let mut row = [0u8; KEY_ROW_LEN];
            fill_slot(&mut row, |writer| writer.u32(key_start)?.u32(run_start).map(drop));
            row
        })
    }

    /// Writes the data blocks in `order`; returns their handles and each entry's offset.
    fn write_blocks<S: Sink>(
        &self,
        writer: &mut CountedSink<S>,
        order: &[(u64, u32)],
        version_ordinals: &[u32],
    ) -> Result<BlocksWritten, BuildError<S::Error>> {
        let mut blocks = Vec::new();
        let mut offsets = alloc::vec![0u32; self.entries.len()];
        let mut block: Vec<u8> = Vec::with_capacity(self.options.block_bytes_target);
        let mut handle = BlockHandle::default();
        for &(code, index) in order {
            let entry = self.entries[index as usize];
            let version_ordinal = version_ordinals[index as usize];
            let value_len = if entry.value_len == TOMBSTONE { 0 } else { entry.value_len };
            let entry_len = ENTRY_HEADER_LEN + value_len as usize;
            if !block.is_empty() && block.len() + entry_len > self.options.block_bytes_target {
                blocks.push(writer.block(&mut block, handle)?);
            }
            if block.is_empty() {
                handle = BlockHandle {
                    first_morton: code,
                    key_ordinal_min: u32::MAX,
                    version_ordinal_min: u32::MAX,
                    ..BlockHandle::default()
                };
            }
            handle.key_ordinal_min = handle.key_ordinal_min.min(entry.key_ordinal);
            handle.key_ordinal_max = handle.key_ordinal_max.max(entry.key_ordinal);
            handle.version_ordinal_min = handle.version_ordinal_min.min(version_ordinal);
            handle.version_ordinal_max = handle.version_ordinal_max.max(version_ordinal);
            offsets[index as usize] = offset_u32(writer.written + block.len() as u64)?;
            block.extend_from_slice(&entry.key_ordinal.to_le_bytes());
            block.extend_from_slice(&version_ordinal.to_le_bytes());
            block.extend_from_slice(&entry.value_len.to_le_bytes());
            let value_at = entry.value_at as usize;
            block.extend_from_slice(&self.values[value_at..value_at + value_len as usize]);
        }
        if !block.is_empty() {
            blocks.push(writer.block(&mut block, handle)?);
        }
        Ok((blocks, offsets))
    }
}

/// The handles of the blocks written, and each entry's offset in the file (in entry order).
type BlocksWritten = (Vec<BlockHandle>, Vec<u32>);

/// A file offset as the format's `u32`, or the segment is too large.
fn offset_u32<E>(offset: u64) -> Result<u32, BuildError<E>> {
    u32::try_from(offset).map_err(|_| {
        BuildError::Limit(LimitError::TooLarge {
            what: "history segment",
            len: offset,
            len_max: SEGMENT_LEN_MAX,
        })
    })
}

/// The sink and the count of bytes written to it, refusing a file past [`SEGMENT_LEN_MAX`].
struct CountedSink<S> {
    sink: S,
    written: u64,
}

impl<S: Sink> CountedSink<S> {
    /// Writes `bytes`, or refuses when the file would pass [`SEGMENT_LEN_MAX`].
    fn write(&mut self, bytes: &[u8]) -> Result<(), BuildError<S::Error>> {
        let written = self.written + bytes.len() as u64;
        if written > SEGMENT_LEN_MAX {
            let what = "history segment";
            return Err(
                LimitError::TooLarge { what, len: written, len_max: SEGMENT_LEN_MAX }.into()
            );
        }
        self.sink.write_all(bytes).map_err(BuildError::Sink)?;
        self.written = written;
        Ok(())
    }

    /// Writes `block` and its checksum, empties it, and returns its finished handle.
    fn block(
        &mut self,
        block: &mut Vec<u8>,
        mut handle: BlockHandle,
    ) -> Result<BlockHandle, BuildError<S::Error>> {
        handle.offset = offset_u32(self.written)?;
        handle.len = offset_u32(block.len() as u64)?;
        self.write(block)?;
        self.write(&checksum(block).to_le_bytes())?;
        block.clear();
        Ok(handle)
    }

    /// A metadata section starting here.
    fn section(&self) -> SectionWriter {
        SectionWriter { offset: self.written, stream: ChecksumStream::new() }
    }
}

/// A metadata section being written: where it started and the checksum of its bytes so far.
struct SectionWriter {
    offset: u64,
    stream: ChecksumStream,
}

impl SectionWriter {
    fn put<S: Sink>(
        &mut self,
        writer: &mut CountedSink<S>,
        bytes: &[u8],
    ) -> Result<(), BuildError<S::Error>> {
        self.stream.update(bytes);
        writer.write(bytes)
    }

    fn end<S>(self, writer: &CountedSink<S>) -> SectionHandle {
        SectionHandle {
            offset: self.offset,
            len: writer.written - self.offset,
            checksum: self.stream.finish(),
        }
    }
}
