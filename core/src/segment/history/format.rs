//! The byte layout of a history segment: its footer, block handles, entries and the rank-space
//! coordinates. Specified byte by byte in `docs/format.md`, "History segment format".
//!
//! Footer (the last [`FOOTER_LEN`] bytes):
//!
//! | offset | bytes | field |
//! |--------|-------|-------|
//! | 0 | 8 | magic, [`MAGIC`] |
//! | 8 | 4 | format version, `u32` LE, = [`FORMAT_VERSION`] |
//! | 12 | 4 | reserved, zero |
//! | 16 | 8 | entry count, `u64` LE |
//! | 24 | 8 | distinct key count, `u64` LE |
//! | 32 | 8 | distinct version count, `u64` LE |
//! | 40 | 4 x 24 | sections: block index, key table, version table, key-order index; each offset, length and XXH3-64 checksum, `u64` LE |
//! | 136 | 8 | XXH3-64 of the footer's first 136 bytes, `u64` LE |
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use super::super::bytes::{array_at, u32_at, u64_at};
use super::super::footer::SECTION_HANDLE_LEN;
/// Where a metadata section is, and its checksum: the regular segment's handle.
pub(super) use super::super::footer::SectionHandle;
use crate::Corruption;
#[cfg(feature = "alloc")]
use crate::bytes::fill_slot;
use crate::checksum::{CHECKSUM_LEN, checksum};
use crate::zkey::interleave_bits;

/// The history segment file's magic bytes.
pub const MAGIC: [u8; MAGIC_LEN] = *b"ZVHISTRY";
/// Bytes of [`MAGIC`].
pub const MAGIC_LEN: usize = 8;
/// The format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The metadata sections, in file order after the data blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SectionKind {
    BlockIndex = 0,
    KeyTable = 1,
    VersionTable = 2,
    KeyOrder = 3,
}

/// Number of metadata sections.
pub(super) const SECTION_COUNT: usize = 4;

const MAGIC_AT: usize = 0;
const FORMAT_VERSION_AT: usize = MAGIC_AT + MAGIC_LEN;
const RESERVED_AT: usize = FORMAT_VERSION_AT + size_of::<u32>();
const ENTRY_COUNT_AT: usize = RESERVED_AT + size_of::<u32>();
const KEY_COUNT_AT: usize = ENTRY_COUNT_AT + size_of::<u64>();
const VERSION_COUNT_AT: usize = KEY_COUNT_AT + size_of::<u64>();
const SECTIONS_AT: usize = VERSION_COUNT_AT + size_of::<u64>();
const FOOTER_CHECKSUM_AT: usize = SECTIONS_AT + SECTION_COUNT * SECTION_HANDLE_LEN;
/// Bytes of the footer.
pub const FOOTER_LEN: usize = FOOTER_CHECKSUM_AT + CHECKSUM_LEN;

const _: () = assert!(SECTIONS_AT == 40);
const _: () = assert!(FOOTER_CHECKSUM_AT == 136);
const _: () = assert!(FOOTER_LEN == 144);

/// The decoded footer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Footer {
    pub(super) entry_count: u64,
    pub(super) key_count: u64,
    pub(super) version_count: u64,
    pub(super) sections: [SectionHandle; SECTION_COUNT],
}

impl Footer {
    /// The footer's bytes.
    #[cfg(feature = "alloc")]
    pub(super) fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut out = [0u8; FOOTER_LEN];
        let (fields, checksum_slot) = out.split_at_mut(FOOTER_CHECKSUM_AT);
        fill_slot(fields, |writer| {
            writer.bytes(&MAGIC)?.u32(FORMAT_VERSION)?.u32(0)?;
            writer.u64(self.entry_count)?.u64(self.key_count)?.u64(self.version_count)?;
            for section in &self.sections {
                writer.u64(section.offset)?.u64(section.len)?.u64(section.checksum)?;
            }
            Ok(())
        });
        let footer_checksum = checksum(fields);
        fill_slot(checksum_slot, |writer| writer.u64(footer_checksum).map(drop));
        out
    }

    /// Decodes and checks the footer: the magic, its checksum, the format version and the
    /// reserved field. `footer_offset` is where the footer starts in the file, for errors.
    pub(super) fn decode_from(bytes: &[u8], footer_offset: u64) -> Result<Footer, Corruption> {
        let corrupt = |at: usize, what| Corruption::new(footer_offset + at as u64, what);
        let missing = || corrupt(0, "history footer shorter than FOOTER_LEN");
        if array_at::<MAGIC_LEN>(bytes, MAGIC_AT).ok_or_else(missing)? != MAGIC {
            return Err(corrupt(MAGIC_AT, "bad history segment magic"));
        }
        let stored_checksum = u64_at(bytes, FOOTER_CHECKSUM_AT).ok_or_else(missing)?;
        let covered = bytes.get(..FOOTER_CHECKSUM_AT).ok_or_else(missing)?;
        if checksum(covered) != stored_checksum {
            return Err(corrupt(FOOTER_CHECKSUM_AT, "history footer checksum mismatch"));
        }
        if u32_at(bytes, FORMAT_VERSION_AT).ok_or_else(missing)? != FORMAT_VERSION {
            return Err(corrupt(FORMAT_VERSION_AT, "unknown history segment format version"));
        }
        if u32_at(bytes, RESERVED_AT).ok_or_else(missing)? != 0 {
            return Err(corrupt(RESERVED_AT, "history footer reserved field is not zero"));
        }
        let u64_field = |at| u64_at(bytes, at).ok_or_else(missing);
        let mut sections = [SectionHandle::default(); SECTION_COUNT];
        for (index, section) in sections.iter_mut().enumerate() {
            let at = SECTIONS_AT + index * SECTION_HANDLE_LEN;
            *section = SectionHandle {
                offset: u64_field(at)?,
                len: u64_field(at + size_of::<u64>())?,
                checksum: u64_field(at + 2 * size_of::<u64>())?,
            };
        }
        Ok(Footer {
            entry_count: u64_field(ENTRY_COUNT_AT)?,
            key_count: u64_field(KEY_COUNT_AT)?,
            version_count: u64_field(VERSION_COUNT_AT)?,
            sections,
        })
    }
}

/// Bytes of one block handle in the block index: offset `u32`, length `u32`, first Morton
/// code `u64`, then the zone map: key ordinal min and max, version ordinal min and max, `u32`
/// each; all LE.
pub(super) const BLOCK_HANDLE_LEN: usize = 2 * size_of::<u32>() + size_of::<u64>() + 16;
const _: () = assert!(BLOCK_HANDLE_LEN == 32);

/// One data block: where it is, its first code and its zone map in ordinal space.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct BlockHandle {
    /// Offset of the block in the file.
    pub(super) offset: u32,
    /// Bytes of the block, without its checksum.
    pub(super) len: u32,
    /// The Morton code of its first entry.
    pub(super) first_morton: u64,
    pub(super) key_ordinal_min: u32,
    pub(super) key_ordinal_max: u32,
    pub(super) version_ordinal_min: u32,
    pub(super) version_ordinal_max: u32,
}

impl BlockHandle {
    /// The handle's bytes.
    #[cfg(feature = "alloc")]
    pub(super) fn encode(&self) -> [u8; BLOCK_HANDLE_LEN] {
        let mut out = [0u8; BLOCK_HANDLE_LEN];
        fill_slot(&mut out, |writer| {
            writer.u32(self.offset)?.u32(self.len)?.u64(self.first_morton)?;
            writer.u32(self.key_ordinal_min)?.u32(self.key_ordinal_max)?;
            writer.u32(self.version_ordinal_min)?.u32(self.version_ordinal_max)?;
            Ok(())
        });
        out
    }

    /// The handle at `at` in the block index section, or `None` past its end.
    pub(super) fn decode_at(section: &[u8], at: usize) -> Option<BlockHandle> {
        Some(BlockHandle {
            offset: u32_at(section, at)?,
            len: u32_at(section, at.checked_add(4)?)?,
            first_morton: u64_at(section, at.checked_add(8)?)?,
            key_ordinal_min: u32_at(section, at.checked_add(16)?)?,
            key_ordinal_max: u32_at(section, at.checked_add(20)?)?,
            version_ordinal_min: u32_at(section, at.checked_add(24)?)?,
            version_ordinal_max: u32_at(section, at.checked_add(28)?)?,
        })
    }
}

/// Bytes of an entry before its value: key ordinal, version ordinal, value length (`u32` LE
/// each; [`TOMBSTONE`] for a tombstone).
pub(super) const ENTRY_HEADER_LEN: usize = 3 * size_of::<u32>();
/// The value length that marks a tombstone.
pub(super) const TOMBSTONE: u32 = u32::MAX;
const _: () = assert!(crate::limits::VALUE_LEN_MAX < TOMBSTONE as usize);

/// Bytes of a key table row: the key's offset in the key bytes, the start of its run in the
/// key-order index (`u32` LE each).
pub(super) const KEY_ROW_LEN: usize = 2 * size_of::<u32>();
/// Bytes of a version table row: the version, `u64` LE.
pub(super) const VERSION_ROW_LEN: usize = size_of::<u64>();
/// Bytes of a key-order index row: version ordinal and entry offset in the file, `u32` LE each.
pub(super) const KEY_ORDER_ROW_LEN: usize = 2 * size_of::<u32>();

/// The most distinct keys, versions or entries one history segment holds: ordinals are `u32`
/// and the count itself must fit one.
pub const ORDINAL_COUNT_MAX: u64 = u32::MAX as u64;

/// One decoded entry header, borrowed from its block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RawEntry<'a> {
    pub(super) key_ordinal: u32,
    pub(super) version_ordinal: u32,
    pub(super) value: Option<&'a [u8]>,
    /// Bytes the entry takes in its block.
    pub(super) len: usize,
}

/// Decodes the entry at `position` in `block`; `None` when it runs past the block's end or its
/// value length is over the limit.
pub(super) fn decode_entry_at(block: &[u8], position: usize) -> Option<RawEntry<'_>> {
    let key_ordinal = u32_at(block, position)?;
    let version_ordinal = u32_at(block, position.checked_add(4)?)?;
    let value_len = u32_at(block, position.checked_add(8)?)?;
    let value_at = position.checked_add(ENTRY_HEADER_LEN)?;
    let value = if value_len == TOMBSTONE {
        None
    } else {
        let value_len = value_len as usize;
        if value_len > crate::limits::VALUE_LEN_MAX {
            return None;
        }
        Some(block.get(value_at..value_at.checked_add(value_len)?)?)
    };
    let len = ENTRY_HEADER_LEN + value.map_or(0, <[u8]>::len);
    Some(RawEntry { key_ordinal, version_ordinal, value, len })
}

/// An ordinal's coordinate on the curve: `ordinal * 2^32 / count`, rank space stretched to the
/// full 32 bits in both dimensions, so a segment with 100k keys and 1M versions still fills a
/// square and blocks cover as large a share of the keys as of the versions. Strictly increasing
/// in `ordinal` for `ordinal < count <= u32::MAX` (the step is at least `2^32 / count > 1`).
#[must_use]
pub(super) fn coordinate(ordinal: u32, count: u32) -> u32 {
    debug_assert!(ordinal < count, "an ordinal is below its count");
    ((u64::from(ordinal) << 32) / u64::from(count.max(1))) as u32
}

/// The Morton code of (key ordinal, version ordinal) in a segment of `key_count` keys and
/// `version_count` versions: the bit interleave of their coordinates (key bits odd, version
/// bits even: `zkey::interleave_bits`).
#[must_use]
pub(super) fn morton_of(
    key_ordinal: u32,
    version_ordinal: u32,
    key_count: u32,
    version_count: u32,
) -> u64 {
    interleave_bits(coordinate(key_ordinal, key_count), coordinate(version_ordinal, version_count))
}
