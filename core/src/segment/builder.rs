//! [`SegmentBuilder`]: writes a segment from entries given in Z order.
//!
//! Data blocks go to the [`Sink`] as they fill (a block is at most the block target, or one
//! entry); the builder keeps only the metadata in memory (every key once per version in an
//! arena, a [`KEY_REF_BYTES`] reference per entry, a 56-byte handle per block), then
//! [`SegmentBuilder::finish`] sorts the key index and writes the metadata sections and the
//! footer. The metadata is proportional to the segment, so a caller bounds it by bounding the
//! segment: the engine splits its output at a target size ([`SegmentBuilder::data_len`],
//! [`SegmentBuilder::memory_bytes`]).
//!
//! Memory, per entry unless said otherwise: while adding, the key (its bytes, in the arena) and
//! a [`KEY_REF_BYTES`] reference; per block a 56-byte handle; the block being filled (the block
//! target, or one entry). At `finish`, on top: the key index section (4 bytes per entry; the
//! references are sorted in place), the fences (8 bytes per 16 entries), the filter (an 8-byte
//! hash per distinct key while it is built, then 10 bits per key). Nothing is spilled: the
//! bound is the caller's split.

use alloc::vec::Vec;
use core::fmt;

use super::SEGMENT_LEN_MAX;
use super::block::{encode_entry_into, entry_len};
use super::block_index::{BLOCK_HANDLE_LEN, BlockHandle};
use super::filter_section;
use super::footer::{FOOTER_LEN, Footer, SECTION_COUNT, SectionHandle, SectionKind};
use super::key_index::FENCE_STRIDE;
use super::sink::Sink;
use super::zone::ZoneMap;
use crate::checksum::{CHECKSUM_LEN, checksum};
use crate::limits::{check_key, check_value};
use crate::zkey::{key_prefix, morton};
use crate::{LimitError, Version};

/// The default [`SegmentOptions::block_bytes_target`]: 4 KiB.
pub const BLOCK_BYTES_TARGET_DEFAULT: usize = 4 << 10;

/// How a [`SegmentBuilder`] lays out a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentOptions {
    block_bytes_target: usize,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        SegmentOptions { block_bytes_target: BLOCK_BYTES_TARGET_DEFAULT }
    }
}

impl SegmentOptions {
    /// Data blocks are packed up to `bytes` (without their checksum); an entry larger than
    /// that makes a block of its own. Small blocks prune box queries finer and cost more index.
    #[must_use]
    pub fn with_block_bytes_target(mut self, bytes: usize) -> SegmentOptions {
        self.block_bytes_target = bytes;
        self
    }

    /// The block size target in bytes.
    #[must_use]
    pub fn block_bytes_target(&self) -> usize {
        self.block_bytes_target
    }
}

/// Why a [`SegmentBuilder`] refused an entry or failed to finish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError<E> {
    /// The sink failed. The builder is unusable afterwards ([`BuildError::Failed`]).
    Sink(E),
    /// The key or value is over its limit, or the segment would reach 4 GiB. Nothing was
    /// written for the refused entry.
    Limit(LimitError),
    /// The entry is not strictly after the previous one in Z order `(M, key)` (this includes
    /// adding the same key and version twice). Nothing was written for it.
    OutOfOrder,
    /// An earlier sink error left the segment incomplete.
    Failed,
}

impl<E> From<LimitError> for BuildError<E> {
    fn from(error: LimitError) -> Self {
        BuildError::Limit(error)
    }
}

impl<E: fmt::Display> fmt::Display for BuildError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Sink(error) => write!(f, "segment sink failed: {error}"),
            BuildError::Limit(error) => fmt::Display::fmt(error, f),
            BuildError::OutOfOrder => f.write_str("segment entry out of Z order"),
            BuildError::Failed => f.write_str("segment builder failed earlier"),
        }
    }
}

#[cfg(feature = "std")]
impl<E: fmt::Display + fmt::Debug> std::error::Error for BuildError<E> {}

/// What a finished segment holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentSummary {
    /// Entries (versions, tombstones included).
    pub entry_count: u64,
    /// Distinct keys.
    pub key_count: u64,
    /// Bytes of the whole segment file.
    pub file_len: u64,
    /// Smallest version, or `None` for an empty segment.
    pub version_min: Option<Version>,
    /// Largest version, or `None` for an empty segment.
    pub version_max: Option<Version>,
}

/// One entry as the key index needs it: where its key is in the arena, its version, and where
/// the entry is in the file.
#[derive(Clone, Copy, Debug)]
struct KeyRef {
    key_start: usize,
    key_len: u16,
    version: u64,
    entry_offset: u32,
}

/// Bytes the builder keeps per entry besides its key: one `KeyRef`.
pub const KEY_REF_BYTES: usize = size_of::<KeyRef>();

/// Writes a segment. Entries must come in strictly increasing Z order.
#[derive(Debug)]
pub struct SegmentBuilder<S> {
    sink: S,
    options: SegmentOptions,
    /// The block being filled, and its first code and zone map.
    block: Vec<u8>,
    block_first_morton: u128,
    block_zone: ZoneMap,
    /// Encoded handles of the blocks written so far.
    block_index: Vec<u8>,
    /// Bytes written to the sink so far.
    written_len: u64,
    keys: Vec<u8>,
    refs: Vec<KeyRef>,
    /// `M` of the last entry added; its key is the last `refs` entry's.
    last_morton: Option<u128>,
    version_min: u64,
    version_max: u64,
    failed: bool,
}

impl<S: Sink> SegmentBuilder<S> {
    /// A builder writing to `sink`.
    pub fn new(sink: S, options: SegmentOptions) -> SegmentBuilder<S> {
        SegmentBuilder {
            sink,
            options,
            block: Vec::new(),
            block_first_morton: 0,
            block_zone: ZoneMap::EMPTY,
            block_index: Vec::new(),
            written_len: 0,
            keys: Vec::new(),
            refs: Vec::new(),
            last_morton: None,
            version_min: u64::MAX,
            version_max: 0,
            failed: false,
        }
    }

    /// Entries added so far.
    #[must_use]
    pub fn entry_count(&self) -> u64 {
        self.refs.len() as u64
    }

    /// Bytes of the segment so far: the blocks written to the sink and the one being filled.
    /// A caller that splits its output into segments of a target size compares this with it.
    #[must_use]
    pub fn data_len(&self) -> u64 {
        self.written_len + self.block.len() as u64
    }

    /// Bytes of memory the metadata held until [`SegmentBuilder::finish`] takes: per entry
    /// its key (`key.len()`, in an arena) and a reference ([`KEY_REF_BYTES`]), per block one
    /// block handle (56 bytes), and the block being filled. `finish` needs about as much
    /// again, briefly (the sorted key index, the fences, 8 bytes per key for the filter).
    #[must_use]
    pub fn memory_bytes(&self) -> u64 {
        (self.keys.len() + self.refs.len() * KEY_REF_BYTES + self.block_index.len()) as u64
            + self.block.capacity() as u64
    }

    /// Adds `key` at `version` with `value` (`None`: a tombstone). On error nothing is written
    /// for this entry; after a [`BuildError::Sink`] the builder is unusable.
    pub fn add(
        &mut self,
        key: &[u8],
        version: Version,
        value: Option<&[u8]>,
    ) -> Result<(), BuildError<S::Error>> {
        if self.failed {
            return Err(BuildError::Failed);
        }
        check_key(key)?;
        value.map(check_value).transpose()?;
        let entry_morton = morton(key, version);
        if !self.is_after_last(entry_morton, key) {
            return Err(BuildError::OutOfOrder);
        }
        let entry_len = entry_len(key, value);
        // The entry, a checksum, and possibly the checksum of the block it closes.
        let data_len = self.written_len + (self.block.len() + entry_len + 2 * CHECKSUM_LEN) as u64;
        check_segment_len(data_len)?;
        if !self.block.is_empty() && self.block.len() + entry_len > self.options.block_bytes_target
        {
            self.flush_block().inspect_err(|_| self.failed = true)?;
        }
        if self.block.is_empty() {
            self.block_first_morton = entry_morton;
            self.block_zone = ZoneMap::EMPTY;
        }
        let entry_offset = (self.written_len + self.block.len() as u64) as u32;
        encode_entry_into(&mut self.block, key, version, value);
        self.block_zone.extend(key_prefix(key), version.get());
        self.refs.push(KeyRef {
            key_start: self.keys.len(),
            key_len: key.len() as u16,
            version: version.get(),
            entry_offset,
        });
        self.keys.extend_from_slice(key);
        self.last_morton = Some(entry_morton);
        self.version_min = self.version_min.min(version.get());
        self.version_max = self.version_max.max(version.get());
        Ok(())
    }

    /// Whether `(morton, key)` is strictly after the last entry added.
    fn is_after_last(&self, morton: u128, key: &[u8]) -> bool {
        match (self.last_morton, self.refs.last()) {
            (Some(last_morton), Some(last)) => (morton, key) > (last_morton, self.key_of(last)),
            _ => true,
        }
    }

    fn key_of(&self, key_ref: &KeyRef) -> &[u8] {
        &self.keys[key_ref.key_start..key_ref.key_start + usize::from(key_ref.key_len)]
    }

    /// Writes the block being filled and its checksum, and records its handle.
    fn flush_block(&mut self) -> Result<(), BuildError<S::Error>> {
        assert!(!self.block.is_empty(), "only a block with entries is written");
        assert!(self.block_zone.is_valid(), "a block with entries has a zone map");
        let handle = BlockHandle {
            offset: self.written_len as u32,
            len: self.block.len() as u32,
            first_morton: self.block_first_morton,
            zone: self.block_zone,
        };
        self.sink.write_all(&self.block).map_err(BuildError::Sink)?;
        self.sink.write_all(&checksum(&self.block).to_le_bytes()).map_err(BuildError::Sink)?;
        let mut encoded = [0u8; BLOCK_HANDLE_LEN];
        handle.encode_into(&mut encoded);
        self.block_index.extend_from_slice(&encoded);
        self.written_len = handle.end();
        self.block.clear();
        Ok(())
    }

    /// Writes the last block, the metadata sections and the footer; returns the sink and a
    /// summary of the segment.
    pub fn finish(mut self) -> Result<(S, SegmentSummary), BuildError<S::Error>> {
        if self.failed {
            return Err(BuildError::Failed);
        }
        if !self.block.is_empty() {
            self.flush_block()?;
        }
        let data_len = self.written_len;
        let mut refs = core::mem::take(&mut self.refs);
        refs.sort_unstable_by(|a, b| {
            self.key_of(a).cmp(self.key_of(b)).then_with(|| b.version.cmp(&a.version))
        });
        let key_count = self.distinct_keys(&refs).count() as u64;
        let (key_index, fences) = self.encode_key_index(&refs);
        let mut filter = Vec::new();
        filter_section::encode_into(self.distinct_keys(&refs), &mut filter);
        let block_index = core::mem::take(&mut self.block_index);
        let sections: [&[u8]; SECTION_COUNT] = [&block_index, &key_index, &fences, &filter];
        let metadata_len: usize = sections.iter().map(|s| s.len()).sum();
        check_segment_len(data_len + (metadata_len + FOOTER_LEN) as u64)?;
        let mut handles = [SectionHandle::default(); SECTION_COUNT];
        for (handle, section) in handles.iter_mut().zip(sections) {
            *handle = SectionHandle {
                offset: self.written_len,
                len: section.len() as u64,
                checksum: checksum(section),
            };
            self.sink.write_all(section).map_err(BuildError::Sink)?;
            self.written_len += section.len() as u64;
        }
        debug_assert_eq!(handles[SectionKind::BlockIndex as usize].offset, data_len);
        let footer = Footer {
            fence_stride: FENCE_STRIDE,
            entry_count: refs.len() as u64,
            key_count,
            version_min: self.version_min,
            version_max: self.version_max,
            sections: handles,
        };
        self.sink.write_all(&footer.encode()).map_err(BuildError::Sink)?;
        let file_len = self.written_len + FOOTER_LEN as u64;
        let non_empty = !refs.is_empty();
        let summary = SegmentSummary {
            entry_count: refs.len() as u64,
            key_count,
            file_len,
            version_min: non_empty.then_some(Version::new(self.version_min)),
            version_max: non_empty.then_some(Version::new(self.version_max)),
        };
        Ok((self.sink, summary))
    }

    /// Each distinct key once, in key order, from the sorted `refs`.
    fn distinct_keys<'s>(&'s self, refs: &'s [KeyRef]) -> impl Iterator<Item = &'s [u8]> + 's {
        let mut previous: Option<&[u8]> = None;
        refs.iter().map(|r| self.key_of(r)).filter(move |key| {
            let is_new = previous != Some(*key);
            previous = Some(*key);
            is_new
        })
    }

    /// The key index section (one `u32` offset per entry, in key order) and the fences.
    fn encode_key_index(&self, refs: &[KeyRef]) -> (Vec<u8>, Vec<u8>) {
        let mut key_index = Vec::with_capacity(refs.len() * size_of::<u32>());
        let mut fences = Vec::new();
        for (index, key_ref) in refs.iter().enumerate() {
            key_index.extend_from_slice(&key_ref.entry_offset.to_le_bytes());
            if index % FENCE_STRIDE as usize == 0 {
                fences.extend_from_slice(&key_prefix(self.key_of(key_ref)).to_le_bytes());
            }
        }
        (key_index, fences)
    }
}

/// Refuses a segment of `len` bytes or more than [`SEGMENT_LEN_MAX`].
fn check_segment_len(len: u64) -> Result<(), LimitError> {
    if len > SEGMENT_LEN_MAX {
        return Err(LimitError::TooLarge { what: "segment", len, len_max: SEGMENT_LEN_MAX });
    }
    Ok(())
}
