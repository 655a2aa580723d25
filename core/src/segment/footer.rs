//! The footer: the last [`FOOTER_LEN`] bytes of a segment file.
//!
//! | offset | bytes | field |
//! |--------|-------|-------|
//! | 0 | 8 | magic, [`MAGIC`] |
//! | 8 | 4 | format version, `u32` LE: [`FORMAT_VERSION`], [`FORMAT_VERSION_KEY_ORDER`] or [`FORMAT_VERSION_KEY_ORDER_RESTARTS`] |
//! | 12 | 4 | fence stride, `u32` LE (0 in a key-ordered segment, which has no key index) |
//! | 16 | 8 | entry count, `u64` LE |
//! | 24 | 8 | distinct key count, `u64` LE |
//! | 32 | 8 | smallest version, `u64` LE (`u64::MAX` when there are no entries) |
//! | 40 | 8 | largest version, `u64` LE (0 when there are no entries) |
//! | 48 | 4 x 24 | sections: block index, key index, fences, filter; each offset, length and XXH3-64 checksum, `u64` LE |
//! | 144 | 8 | XXH3-64 of the footer's first 144 bytes, `u64` LE |
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use super::bytes::{array_at, u64_at};
use crate::Corruption;
use crate::bytes::{Reader, fill_slot};
use crate::checksum::{CHECKSUM_LEN, checksum};

/// The segment file's magic bytes.
pub const MAGIC: [u8; MAGIC_LEN] = *b"ZVSEGMNT";
/// Bytes of [`MAGIC`].
pub const MAGIC_LEN: usize = 8;
/// The format version of a segment in Z order ([`Order::Z`]), the first layout.
pub const FORMAT_VERSION: u32 = 1;
/// The format version of a segment in key order ([`Order::Key`]): the same footer, no key
/// index, and block keys where a Z-order segment has its fences (`docs/format.md`). The version
/// field is the order flag, so a reader that predates key order refuses such a file with
/// "unknown segment format version" instead of misreading it.
pub const FORMAT_VERSION_KEY_ORDER: u32 = 2;
/// The format version of a segment in key order whose data blocks start with a restart header
/// (`restarts.rs`, `docs/format.md`), which the builder writes; version 2 files, without the
/// header, are still read.
pub const FORMAT_VERSION_KEY_ORDER_RESTARTS: u32 = 3;

/// The order of a segment's entries, chosen with [`super::SegmentOptions::with_order`] and
/// recorded in the footer's format version ([`super::Segment::order`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Order {
    /// Z order `(M, key)`, with a key-order index beside the data: the order of flush and
    /// history-friendly segments, whose `changes` box scans skip by BIGMIN.
    #[default]
    Z,
    /// Key order: key ascending, version descending. The data is its own key index; a scan
    /// reads blocks front to back. The order of current segments.
    Key,
}

impl Order {
    /// The format version a segment in this order carries when the builder writes it with
    /// its default options (key order: with block restarts).
    #[must_use]
    pub fn format_version(self) -> u32 {
        format_version(self, self == Order::Key)
    }

    /// The order and whether data blocks start with a restart header, from a format version.
    fn from_format_version(version: u32) -> Option<(Order, bool)> {
        match version {
            FORMAT_VERSION => Some((Order::Z, false)),
            FORMAT_VERSION_KEY_ORDER => Some((Order::Key, false)),
            FORMAT_VERSION_KEY_ORDER_RESTARTS => Some((Order::Key, true)),
            _ => None,
        }
    }
}

/// The format version of a segment in `order` whose key-ordered blocks do or do not start with a
/// restart header (a Z-order segment has none).
fn format_version(order: Order, block_restarts: bool) -> u32 {
    match (order, block_restarts) {
        (Order::Z, _) => FORMAT_VERSION,
        (Order::Key, false) => FORMAT_VERSION_KEY_ORDER,
        (Order::Key, true) => FORMAT_VERSION_KEY_ORDER_RESTARTS,
    }
}

/// The metadata sections, in file order after the data blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SectionKind {
    BlockIndex = 0,
    KeyIndex = 1,
    Fences = 2,
    Filter = 3,
}

/// Number of metadata sections.
pub(super) const SECTION_COUNT: usize = 4;
/// Bytes of one section handle: offset, length, checksum.
pub(super) const SECTION_HANDLE_LEN: usize = 3 * size_of::<u64>();

const MAGIC_AT: usize = 0;
const FORMAT_VERSION_AT: usize = MAGIC_AT + MAGIC_LEN;
const FENCE_STRIDE_AT: usize = FORMAT_VERSION_AT + size_of::<u32>();
const ENTRY_COUNT_AT: usize = FENCE_STRIDE_AT + size_of::<u32>();
const KEY_COUNT_AT: usize = ENTRY_COUNT_AT + size_of::<u64>();
const VERSION_MIN_AT: usize = KEY_COUNT_AT + size_of::<u64>();
const VERSION_MAX_AT: usize = VERSION_MIN_AT + size_of::<u64>();
const SECTIONS_AT: usize = VERSION_MAX_AT + size_of::<u64>();
const FOOTER_CHECKSUM_AT: usize = SECTIONS_AT + SECTION_COUNT * SECTION_HANDLE_LEN;
/// Bytes of the footer.
pub const FOOTER_LEN: usize = FOOTER_CHECKSUM_AT + CHECKSUM_LEN;

const _: () = assert!(SECTIONS_AT == 48);
const _: () = assert!(FOOTER_CHECKSUM_AT == 144);
const _: () = assert!(FOOTER_LEN == 152);

/// Where a metadata section is, and its checksum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct SectionHandle {
    pub(super) offset: u64,
    pub(super) len: u64,
    pub(super) checksum: u64,
}

/// The decoded footer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Footer {
    pub(super) order: Order,
    /// Whether data blocks start with a restart header (key order, format version 3).
    pub(super) block_restarts: bool,
    pub(super) fence_stride: u32,
    pub(super) entry_count: u64,
    pub(super) key_count: u64,
    pub(super) version_min: u64,
    pub(super) version_max: u64,
    pub(super) sections: [SectionHandle; SECTION_COUNT],
}

impl Footer {
    /// The handle of section `kind`.
    pub(super) fn section(&self, kind: SectionKind) -> SectionHandle {
        self.sections.get(kind as usize).copied().unwrap_or_default()
    }

    /// The footer's bytes.
    pub(super) fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut out = [0u8; FOOTER_LEN];
        let (fields, footer_checksum) = out.split_at_mut(FOOTER_CHECKSUM_AT);
        fill_slot(fields, |writer| {
            let version = format_version(self.order, self.block_restarts);
            writer.bytes(&MAGIC)?.u32(version)?.u32(self.fence_stride)?;
            for field in [self.entry_count, self.key_count, self.version_min, self.version_max] {
                writer.u64(field)?;
            }
            for section in &self.sections {
                writer.u64(section.offset)?.u64(section.len)?.u64(section.checksum)?;
            }
            Ok(())
        });
        let sum = checksum(fields);
        fill_slot(footer_checksum, |writer| writer.u64(sum).map(drop));
        out
    }

    /// Decodes and checks the footer: the magic, its checksum, the format version.
    /// `footer_offset` is where the footer starts in the file, for errors.
    pub(super) fn decode_from(bytes: &[u8], footer_offset: u64) -> Result<Footer, Corruption> {
        let corrupt = |at: usize, what| Corruption::new(footer_offset + at as u64, what);
        let missing = || corrupt(0, "footer shorter than FOOTER_LEN");
        if array_at::<MAGIC_LEN>(bytes, MAGIC_AT).ok_or_else(missing)? != MAGIC {
            return Err(corrupt(MAGIC_AT, "bad segment magic"));
        }
        let stored_checksum = u64_at(bytes, FOOTER_CHECKSUM_AT).ok_or_else(missing)?;
        let covered = bytes.get(..FOOTER_CHECKSUM_AT).ok_or_else(missing)?;
        if checksum(covered) != stored_checksum {
            return Err(corrupt(FOOTER_CHECKSUM_AT, "footer checksum mismatch"));
        }
        let mut reader = Reader::new(covered, "footer shorter than FOOTER_LEN");
        reader.take(MAGIC_LEN).map_err(|_| missing())?;
        let version = reader.u32().map_err(|_| missing())?;
        let Some((order, block_restarts)) = Order::from_format_version(version) else {
            return Err(corrupt(FORMAT_VERSION_AT, "unknown segment format version"));
        };
        let mut footer = Footer::decode_fields(&mut reader, order).map_err(|_| missing())?;
        footer.block_restarts = block_restarts;
        Ok(footer)
    }

    /// The fields after the format version, which the footer's checksum has vouched for.
    fn decode_fields(reader: &mut Reader<'_>, order: Order) -> Result<Footer, Corruption> {
        let fence_stride = reader.u32()?;
        let (entry_count, key_count) = (reader.u64()?, reader.u64()?);
        let (version_min, version_max) = (reader.u64()?, reader.u64()?);
        let mut sections = [SectionHandle::default(); SECTION_COUNT];
        for section in &mut sections {
            *section = SectionHandle {
                offset: reader.u64()?,
                len: reader.u64()?,
                checksum: reader.u64()?,
            };
        }
        assert!(reader.is_empty(), "the footer's fields end at its checksum");
        Ok(Footer {
            order,
            block_restarts: false,
            fence_stride,
            entry_count,
            key_count,
            version_min,
            version_max,
            sections,
        })
    }
}
