//! [`SegmentBuilder`]: writes a segment from entries given in its order ([`Order`]): Z order,
//! or key order (key ascending, version descending), which needs no key index.
//!
//! Data blocks go to the [`Sink`] as they fill (a block is at most the block target, or one
//! entry); the builder keeps only the metadata in memory (every key once per version in an
//! arena, a [`KEY_REF_BYTES`] reference per entry, a 56-byte handle per block), then
//! [`SegmentBuilder::finish`] sorts the key index and writes the metadata sections and the
//! footer. The metadata is proportional to the segment, so a caller bounds it by bounding the
//! segment: the engine splits its output at a target size ([`SegmentBuilder::data_len`],
//! [`SegmentBuilder::memory_bytes`]).
//!
//! The builder is generic over where it keeps that metadata ([`BuilderStorage`]): growable
//! `Vec`s (`SegmentBuilder::new`, with `alloc`), or `heapless::Vec`s of capacities the caller
//! fixes ([`super::FixedStorage`], `SegmentBuilder::with_storage`), which refuse an entry
//! past any capacity with [`BuildError::Storage`]; both write the same bytes.
//!
//! Memory, per entry unless said otherwise: while adding, the key (its bytes, in the arena) and
//! a [`KEY_REF_BYTES`] reference; per block a 56-byte handle; the block being filled (the block
//! target, or one entry). At `finish`, on top: the filter (10 bits per distinct key); the
//! references are sorted in place, and the key index and fences are streamed to the sink with
//! a running checksum. Nothing is spilled: the bound is the caller's split.

use core::fmt;

use super::SEGMENT_LEN_MAX;
use super::block::{encode_entry_into, entry_len};
use super::block_index::{BLOCK_HANDLE_LEN, BlockHandle};
use super::block_keys::{BLOCK_KEY_RECORD_LEN, order_key};
use super::filter_section;
use super::footer::{FOOTER_LEN, Footer, Order, SECTION_COUNT, SectionHandle, SectionKind};
use super::key_index::FENCE_STRIDE;
use super::restarts::{
    RESTART_BLOCK_BYTES_MIN, RESTART_INTERVAL_DEFAULT, header_len, write_header,
};
#[cfg(feature = "alloc")]
use super::storage::VecStorage;
use super::storage::{BuilderStorage, EncodedHandle, KeyRef, List, StorageFull, room};
use super::zone::ZoneMap;
use crate::bytes::Sink;
use crate::checksum::{CHECKSUM_LEN, ChecksumStream, checksum};
use crate::limits::{check_key, check_value};
use crate::zkey::{key_prefix, morton};
use crate::{LimitError, Version};

/// The default [`SegmentOptions::block_bytes_target`]: 4 KiB.
pub const BLOCK_BYTES_TARGET_DEFAULT: usize = 4 << 10;

/// How a [`SegmentBuilder`] lays out a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentOptions {
    block_bytes_target: usize,
    order: Order,
    /// `None`: [`RESTART_INTERVAL_DEFAULT`] for blocks over [`RESTART_BLOCK_BYTES_MIN`], none
    /// for smaller ones.
    restart_interval: Option<usize>,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        SegmentOptions {
            block_bytes_target: BLOCK_BYTES_TARGET_DEFAULT,
            order: Order::Z,
            restart_interval: None,
        }
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

    /// The order entries are given and stored in (default [`Order::Z`]). In [`Order::Key`]
    /// they come key ascending, version descending, and the segment has no key index.
    #[must_use]
    pub fn with_order(mut self, order: Order) -> SegmentOptions {
        self.order = order;
        self
    }

    /// The order of the entries.
    #[must_use]
    pub fn order(&self) -> Order {
        self.order
    }

    /// In key order, each data block starts with the offsets of every `entries`-th entry
    /// ([`super::FORMAT_VERSION_KEY_ORDER_RESTARTS`]), which a point read binary-searches; 0
    /// writes the older format without them ([`super::FORMAT_VERSION_KEY_ORDER`]). Unset, a
    /// block target over [`RESTART_BLOCK_BYTES_MIN`] gets [`RESTART_INTERVAL_DEFAULT`] and a
    /// smaller one none: a 4 KiB block is walked as fast as it is searched (measured in
    /// `benches/results/point-reads.md`). Z-order blocks have none.
    #[must_use]
    pub fn with_restart_interval(mut self, entries: usize) -> SegmentOptions {
        self.restart_interval = Some(entries);
        self
    }

    /// Entries per block restart the blocks are written with (0: none).
    #[must_use]
    pub fn restart_interval(&self) -> usize {
        match self.restart_interval {
            Some(entries) => entries,
            None if self.block_bytes_target > RESTART_BLOCK_BYTES_MIN => RESTART_INTERVAL_DEFAULT,
            None => 0,
        }
    }

    /// The restart interval the blocks are written with: `None` without a restart header.
    fn block_restarts(&self) -> Option<usize> {
        let interval = self.restart_interval();
        (self.order == Order::Key && interval > 0).then_some(interval)
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
    /// The entry is not strictly after the previous one in the segment's order (Z order
    /// `(M, key)`, or key ascending and version descending; this includes adding the same key
    /// and version twice). Nothing was written for it.
    OutOfOrder,
    /// An earlier sink error left the segment incomplete.
    Failed,
    /// A fixed-capacity list of the builder's storage is full. From `add`, nothing was kept
    /// of the refused entry and the builder goes on; from `finish` (the filter), the segment
    /// is incomplete.
    Storage(StorageFull),
}

impl<E> From<LimitError> for BuildError<E> {
    fn from(error: LimitError) -> Self {
        BuildError::Limit(error)
    }
}

impl<E> From<StorageFull> for BuildError<E> {
    fn from(error: StorageFull) -> Self {
        BuildError::Storage(error)
    }
}

impl<E: fmt::Display> fmt::Display for BuildError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Sink(error) => write!(f, "segment sink failed: {error}"),
            BuildError::Limit(error) => fmt::Display::fmt(error, f),
            BuildError::OutOfOrder => f.write_str("segment entry out of order"),
            BuildError::Failed => f.write_str("segment builder failed earlier"),
            BuildError::Storage(error) => fmt::Display::fmt(error, f),
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

/// Bytes the builder keeps per entry besides its key: one [`KeyRef`].
pub const KEY_REF_BYTES: usize = size_of::<KeyRef>();

/// Writes a segment. Entries must come in strictly increasing order
/// ([`SegmentOptions::order`]). `M` is where the metadata is kept until `finish`
/// ([`BuilderStorage`]).
#[derive(Debug)]
pub struct SegmentBuilder<S, M: BuilderStorage> {
    sink: S,
    options: SegmentOptions,
    /// The block being filled, and its first code and zone map.
    block: M::Block,
    block_first_morton: u128,
    block_zone: ZoneMap,
    /// Entries in the block being filled.
    block_entry_count: usize,
    /// Encoded handles of the blocks written so far.
    block_index: M::BlockIndex,
    /// Bytes written to the sink so far.
    written_len: u64,
    keys: M::Keys,
    refs: M::Refs,
    /// The key filter, built at `finish`.
    filter: M::FilterBlocks,
    /// `M` of the last entry added; its key is the last `refs` entry's.
    last_morton: Option<u128>,
    version_min: u64,
    version_max: u64,
    failed: bool,
}

#[cfg(feature = "alloc")]
impl<S: Sink> SegmentBuilder<S, VecStorage> {
    /// A builder writing to `sink`, its metadata in growable `Vec`s.
    pub fn new(sink: S, options: SegmentOptions) -> SegmentBuilder<S, VecStorage> {
        SegmentBuilder::with_storage(sink, options)
    }
}

impl<S: Sink, M: BuilderStorage> SegmentBuilder<S, M> {
    /// A builder writing to `sink`, its metadata in the lists of `M` (name it:
    /// `SegmentBuilder::<_, FixedStorage<..>>::with_storage(sink, options)`).
    pub fn with_storage(sink: S, options: SegmentOptions) -> SegmentBuilder<S, M> {
        SegmentBuilder {
            sink,
            options,
            block: M::Block::default(),
            block_first_morton: 0,
            block_zone: ZoneMap::EMPTY,
            block_entry_count: 0,
            block_index: M::BlockIndex::default(),
            written_len: 0,
            keys: M::Keys::default(),
            refs: M::Refs::default(),
            filter: M::FilterBlocks::default(),
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
        self.written_len + self.block.len() as u64 + self.header_len(self.block_entry_count)
    }

    /// Bytes of the restart header of a block of `entry_count` entries (0 without one).
    fn header_len(&self, entry_count: usize) -> u64 {
        match self.options.block_restarts() {
            Some(interval) if entry_count > 0 => header_len(entry_count, interval) as u64,
            _ => 0,
        }
    }

    /// Bytes of memory the metadata held until [`SegmentBuilder::finish`] takes: per entry
    /// its key (`key.len()`, in an arena) and a reference ([`KEY_REF_BYTES`]), per block one
    /// block handle (56 bytes), and the block being filled. `finish` needs the filter on top
    /// (10 bits per distinct key).
    #[must_use]
    pub fn memory_bytes(&self) -> u64 {
        let handle_bytes = self.block_index.len() * BLOCK_HANDLE_LEN;
        (self.keys.len() + self.refs.len() * KEY_REF_BYTES + handle_bytes) as u64
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
        // A key-ordered segment has no use for codes: its blocks' first code is 0.
        let entry_morton = match self.options.order {
            Order::Key => 0,
            Order::Z => morton(key, version),
        };
        if !self.is_after_last(entry_morton, key, version) {
            return Err(BuildError::OutOfOrder);
        }
        let entry_len = entry_len(key, value);
        // The entry, a checksum and a restart header, and possibly the checksum and header of
        // the block it closes (at most as long as this block's with the entry).
        let header_len = self.header_len(self.block_entry_count + 1);
        let data_len = self.written_len
            + (self.block.len() + entry_len + 2 * CHECKSUM_LEN) as u64
            + 2 * header_len;
        check_segment_len(data_len)?;
        let closes_block = !self.block.is_empty()
            && self.block.len() + entry_len > self.options.block_bytes_target;
        self.check_room(key.len(), entry_len, closes_block)?;
        if closes_block {
            self.flush_block().inspect_err(|_| self.failed = true)?;
        }
        if self.block.is_empty() {
            self.block_first_morton = entry_morton;
            self.block_zone = ZoneMap::EMPTY;
            self.block_entry_count = 0;
        }
        self.append(key, version, value).inspect_err(|_| self.failed = true)?;
        self.block_entry_count += 1;
        self.last_morton = Some(entry_morton);
        self.version_min = self.version_min.min(version.get());
        self.version_max = self.version_max.max(version.get());
        Ok(())
    }

    /// Whether the storage has room for an entry of `entry_len` bytes with a key of `key_len`
    /// bytes, after closing the block being filled if `closes_block`.
    fn check_room(
        &self,
        key_len: usize,
        entry_len: usize,
        closes_block: bool,
    ) -> Result<(), StorageFull> {
        room(&self.refs, 1, "entries")?;
        room(&self.keys, key_len, "key bytes")?;
        let block_bytes_free = if closes_block {
            M::Block::CAPACITY_MAX
        } else {
            M::Block::CAPACITY_MAX.saturating_sub(self.block.len())
        };
        if block_bytes_free < entry_len {
            return Err(StorageFull { what: "block bytes", capacity: M::Block::CAPACITY_MAX });
        }
        if closes_block || self.block.is_empty() {
            // A handle for the block closed now, if any, and one for the block this entry opens.
            let handle_count = usize::from(!self.block.is_empty()) + 1;
            room(&self.block_index, handle_count, "blocks")?;
        }
        Ok(())
    }

    /// Appends the entry to the block and its reference and key to the metadata; the caller
    /// has checked the room for all three.
    fn append(
        &mut self,
        key: &[u8],
        version: Version,
        value: Option<&[u8]>,
    ) -> Result<(), StorageFull> {
        let entry_offset = (self.written_len + self.block.len() as u64) as u32;
        let key_ref = KeyRef {
            key_start: self.keys.len(),
            key_len: key.len() as u16,
            version: version.get(),
            entry_offset,
        };
        encode_entry_into(&mut self.block, key, version, value)
            .map_err(|_| full::<u8, M::Block>("block bytes"))?;
        self.block_zone.extend(key_prefix(key), version.get());
        self.refs.try_extend_from_slice(&[key_ref]).map_err(|_| full::<_, M::Refs>("entries"))?;
        self.keys.try_extend_from_slice(key).map_err(|_| full::<u8, M::Keys>("key bytes"))
    }

    /// Whether the entry is strictly after the last entry added, in the segment's order.
    fn is_after_last(&self, morton: u128, key: &[u8], version: Version) -> bool {
        match (self.last_morton, self.refs.as_slice().last()) {
            (Some(last_morton), Some(last)) => {
                let last_key = key_of(self.keys.as_slice(), last);
                match self.options.order {
                    Order::Key => {
                        order_key((key, version))
                            > order_key((last_key, Version::new(last.version)))
                    }
                    Order::Z => (morton, key) > (last_morton, last_key),
                }
            }
            _ => true,
        }
    }

    /// Writes the block being filled, after its restart header (key order), and its
    /// checksum, and records its handle.
    fn flush_block(&mut self) -> Result<(), BuildError<S::Error>> {
        assert!(!self.block.is_empty(), "only a block with entries is written");
        assert!(self.block_zone.is_valid(), "a block with entries has a zone map");
        let block = self.block.as_slice();
        let sink = &mut self.sink;
        let (header_len, sum) = match self.options.block_restarts() {
            Some(interval) => {
                let mut stream = ChecksumStream::new();
                let len = write_header(block, self.block_entry_count, interval, |bytes| {
                    stream.update(bytes);
                    sink.write_all(bytes)
                })
                .map_err(BuildError::Sink)?;
                stream.update(block);
                (len, stream.finish())
            }
            None => (0, checksum(block)),
        };
        sink.write_all(block).map_err(BuildError::Sink)?;
        sink.write_all(&sum.to_le_bytes()).map_err(BuildError::Sink)?;
        let handle = BlockHandle {
            offset: self.written_len as u32,
            len: (block.len() + header_len) as u32,
            first_morton: self.block_first_morton,
            zone: self.block_zone,
        };
        let mut encoded = [0u8; BLOCK_HANDLE_LEN];
        handle.encode_into(&mut encoded);
        self.block_index
            .try_extend_from_slice(&[encoded])
            .map_err(|_| full::<_, M::BlockIndex>("blocks"))?;
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
        let keys = self.keys.as_slice();
        let order = self.options.order;
        if order == Order::Z {
            // Key order is the order the entries came in.
            self.refs.as_mut_slice().sort_unstable_by(|a, b| {
                key_of(keys, a).cmp(key_of(keys, b)).then_with(|| b.version.cmp(&a.version))
            });
        }
        let refs = self.refs.as_slice();
        let key_count = distinct_keys(keys, refs).count();
        filter_section::build_into(distinct_keys(keys, refs), key_count, &mut self.filter)?;
        let (key_index_len, fences_len) = match order {
            Order::Key => (0, block_keys_len(keys, refs, self.block_index.as_slice())),
            Order::Z => (
                refs.len() * size_of::<u32>(),
                refs.len().div_ceil(FENCE_STRIDE as usize) * size_of::<u64>(),
            ),
        };
        let section_lens = [
            self.block_index.len() * BLOCK_HANDLE_LEN,
            key_index_len,
            fences_len,
            filter_section::encoded_len(key_count),
        ];
        let metadata_len: usize = section_lens.iter().sum();
        check_segment_len(data_len + (metadata_len + FOOTER_LEN) as u64)?;
        let handles = self.write_sections()?;
        for (handle, len) in handles.iter().zip(section_lens) {
            assert_eq!(handle.len, len as u64, "a section is as long as computed");
        }
        debug_assert_eq!(handles[SectionKind::BlockIndex as usize].offset, data_len);
        let entry_count = self.refs.len() as u64;
        let footer = Footer {
            order,
            block_restarts: self.options.block_restarts().is_some(),
            fence_stride: if order == Order::Key { 0 } else { FENCE_STRIDE },
            entry_count,
            key_count: key_count as u64,
            version_min: self.version_min,
            version_max: self.version_max,
            sections: handles,
        };
        self.sink.write_all(&footer.encode()).map_err(BuildError::Sink)?;
        let non_empty = entry_count != 0;
        let summary = SegmentSummary {
            entry_count,
            key_count: key_count as u64,
            file_len: self.written_len + FOOTER_LEN as u64,
            version_min: non_empty.then_some(Version::new(self.version_min)),
            version_max: non_empty.then_some(Version::new(self.version_max)),
        };
        Ok((self.sink, summary))
    }

    /// Streams the block index, key index, fences and filter (built) to the sink, each
    /// checksummed as it goes; returns their handles.
    fn write_sections(&mut self) -> Result<[SectionHandle; SECTION_COUNT], BuildError<S::Error>> {
        let (keys, refs) = (self.keys.as_slice(), self.refs.as_slice());
        let block_index = self.block_index.as_slice();
        let filter = self.filter.as_slice();
        let mut offset = self.written_len;
        let sink = &mut self.sink;
        let key_order = self.options.order == Order::Key;
        let handles = [
            write_section(sink, &mut offset, |write| block_index.iter().try_for_each(|h| write(h))),
            write_section(sink, &mut offset, |write| {
                let written = if key_order { &[][..] } else { refs };
                written.iter().try_for_each(|r| write(&r.entry_offset.to_le_bytes()))
            }),
            write_section(sink, &mut offset, |write| {
                if key_order {
                    return write_block_keys(keys, refs, block_index, write);
                }
                let mut fence_refs = refs.iter().step_by(FENCE_STRIDE as usize);
                fence_refs.try_for_each(|r| write(&key_prefix(key_of(keys, r)).to_le_bytes()))
            }),
            write_section(sink, &mut offset, |write| filter_section::encode_with(filter, write)),
        ];
        self.written_len = offset;
        let mut out = [SectionHandle::default(); SECTION_COUNT];
        for (slot, handle) in out.iter_mut().zip(handles) {
            *slot = handle.map_err(BuildError::Sink)?;
        }
        Ok(out)
    }
}

/// A sink write, as section encoders call it.
type Write<'w, E> = dyn FnMut(&[u8]) -> Result<(), E> + 'w;

/// Bytes a section is gathered in before it goes to the sink and the checksum: the key index
/// and fences come 4 and 8 bytes at a time.
const SECTION_CHUNK_BYTES: usize = 256;

/// Writes the section `encode` produces at `*offset` and moves `offset` past it; returns its
/// handle (offset, length, checksum).
fn write_section<S: Sink>(
    sink: &mut S,
    offset: &mut u64,
    encode: impl FnOnce(&mut Write<'_, S::Error>) -> Result<(), S::Error>,
) -> Result<SectionHandle, S::Error> {
    let mut writer = SectionWriter {
        sink,
        stream: ChecksumStream::new(),
        len: 0,
        chunk: [0; SECTION_CHUNK_BYTES],
        chunk_len: 0,
    };
    encode(&mut |bytes: &[u8]| writer.write(bytes))?;
    writer.flush()?;
    let handle =
        SectionHandle { offset: *offset, len: writer.len, checksum: writer.stream.finish() };
    *offset += writer.len;
    Ok(handle)
}

/// A section on its way to the sink: checksummed and counted as it goes, small writes gathered
/// into chunks.
struct SectionWriter<'s, S> {
    sink: &'s mut S,
    stream: ChecksumStream,
    /// Bytes of the section passed on to the sink.
    len: u64,
    chunk: [u8; SECTION_CHUNK_BYTES],
    chunk_len: usize,
}

impl<S: Sink> SectionWriter<'_, S> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), S::Error> {
        if self.chunk_len + bytes.len() > SECTION_CHUNK_BYTES {
            self.flush()?;
        }
        if bytes.len() >= SECTION_CHUNK_BYTES {
            return self.pass_on(bytes);
        }
        let end = self.chunk_len + bytes.len();
        self.chunk[self.chunk_len..end].copy_from_slice(bytes);
        self.chunk_len = end;
        Ok(())
    }

    /// Passes the gathered bytes on.
    fn flush(&mut self) -> Result<(), S::Error> {
        let chunk = self.chunk;
        let chunk_len = core::mem::take(&mut self.chunk_len);
        self.pass_on(&chunk[..chunk_len])
    }

    fn pass_on(&mut self, bytes: &[u8]) -> Result<(), S::Error> {
        self.stream.update(bytes);
        self.len += bytes.len() as u64;
        self.sink.write_all(bytes)
    }
}

/// The key `key_ref` points at in the arena `keys`.
fn key_of<'k>(keys: &'k [u8], key_ref: &KeyRef) -> &'k [u8] {
    &keys[key_ref.key_start..key_ref.key_start + usize::from(key_ref.key_len)]
}

/// Each distinct key once, in key order, from the sorted `refs`.
fn distinct_keys<'s>(keys: &'s [u8], refs: &'s [KeyRef]) -> impl Iterator<Item = &'s [u8]> + 's {
    let mut previous: Option<&[u8]> = None;
    refs.iter().map(|r| key_of(keys, r)).filter(move |key| {
        let is_new = previous != Some(*key);
        previous = Some(*key);
        is_new
    })
}

/// The reference of the first entry, then of each block's last entry (none without
/// entries): the records of a key-ordered segment's block keys. `refs` are in file order.
fn block_key_refs<'r>(
    refs: &'r [KeyRef],
    block_index: &'r [EncodedHandle],
) -> impl Iterator<Item = &'r KeyRef> + 'r {
    let mut rest = refs.iter().peekable();
    let lasts = block_index.iter().filter_map(move |handle| {
        let block_end = BlockHandle::data_end_of(handle);
        let mut last = None;
        while let Some(key_ref) = rest.next_if(|r| u64::from(r.entry_offset) < block_end) {
            last = Some(key_ref);
        }
        last
    });
    refs.first().filter(|_| !block_index.is_empty()).into_iter().chain(lasts)
}

/// Bytes of a key-ordered segment's block keys section.
fn block_keys_len(keys: &[u8], refs: &[KeyRef], block_index: &[EncodedHandle]) -> usize {
    block_key_refs(refs, block_index).map(|r| BLOCK_KEY_RECORD_LEN + key_of(keys, r).len()).sum()
}

/// Streams a key-ordered segment's block keys section (`block_keys.rs`) to `write`.
fn write_block_keys<E>(
    keys: &[u8],
    refs: &[KeyRef],
    block_index: &[EncodedHandle],
    write: &mut Write<'_, E>,
) -> Result<(), E> {
    let mut key_end = 0u32;
    for key_ref in block_key_refs(refs, block_index) {
        // Keys are at most KEY_LEN_MAX bytes and the segment at most 4 GiB.
        key_end = key_end.saturating_add(u32::from(key_ref.key_len));
        write(&key_ref.version.to_le_bytes())?;
        write(&key_end.to_le_bytes())?;
    }
    block_key_refs(refs, block_index).try_for_each(|r| write(key_of(keys, r)))
}

/// The error of a full list `L`.
fn full<T: Copy, L: List<T>>(what: &'static str) -> StorageFull {
    StorageFull { what, capacity: L::CAPACITY_MAX }
}

/// Refuses a segment of `len` bytes or more than [`SEGMENT_LEN_MAX`].
fn check_segment_len(len: u64) -> Result<(), LimitError> {
    if len > SEGMENT_LEN_MAX {
        return Err(LimitError::TooLarge { what: "segment", len, len_max: SEGMENT_LEN_MAX });
    }
    Ok(())
}
