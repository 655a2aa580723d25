//! The fixed-size record header: its layout, encoder and (validating) decoder.
//!
//! ```text
//! offset  width  field
//!      0      8  header_checksum  XXH3-64 of bytes [8, HEADER_LEN)
//!      8      4  body_len         bytes after the header
//!     12      1  format           FORMAT_VERSION
//!     13      1  kind             RecordKind
//!     14      8  version
//!     22      8  body_checksum    XXH3-64 of the body
//! ```
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

use super::{BODY_LEN_MAX, DecodeError, FORMAT_VERSION, RecordKind};
use crate::Version;
use crate::bytes::{Reader, fill_slot};
use crate::checksum::{CHECKSUM_LEN, checksum};
use crate::error::Corruption;

/// Bytes of the body length field (`u32`).
const BODY_LEN_WIDTH: usize = size_of::<u32>();
/// Bytes of the format version field (`u8`).
const FORMAT_WIDTH: usize = size_of::<u8>();
/// Bytes of the kind field (`u8`).
const KIND_WIDTH: usize = size_of::<u8>();
/// Bytes of the version field (`u64`).
const VERSION_WIDTH: usize = size_of::<u64>();

/// Offset of the header checksum: XXH3-64 of every header byte after it.
pub const HEADER_CHECKSUM_OFFSET: usize = 0;
/// Offset of the body length (`u32`).
pub const BODY_LEN_OFFSET: usize = HEADER_CHECKSUM_OFFSET + CHECKSUM_LEN;
/// Offset of the format version byte.
pub const FORMAT_OFFSET: usize = BODY_LEN_OFFSET + BODY_LEN_WIDTH;
/// Offset of the kind byte.
pub const KIND_OFFSET: usize = FORMAT_OFFSET + FORMAT_WIDTH;
/// Offset of the version (`u64`).
pub const VERSION_OFFSET: usize = KIND_OFFSET + KIND_WIDTH;
/// Offset of the body checksum: XXH3-64 of the body.
pub const BODY_CHECKSUM_OFFSET: usize = VERSION_OFFSET + VERSION_WIDTH;
/// Bytes of a record header.
pub const HEADER_LEN: usize = BODY_CHECKSUM_OFFSET + CHECKSUM_LEN;

const _: () = assert!(HEADER_LEN == 30);

/// The bytes the header checksum covers: everything in the header after the checksum.
const CHECKED_START: usize = BODY_LEN_OFFSET;

/// A record header's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) body_len: usize,
    pub(super) kind: RecordKind,
    pub(super) version: Version,
    pub(super) body_checksum: u64,
}

impl Header {
    /// The header of a record with `body`.
    pub(super) fn new(kind: RecordKind, version: Version, body: &[u8]) -> Header {
        Header { body_len: body.len(), kind, version, body_checksum: checksum(body) }
    }

    /// The encoded header. The body length must be within [`BODY_LEN_MAX`].
    pub(super) fn encode(&self) -> [u8; HEADER_LEN] {
        assert!(self.body_len <= BODY_LEN_MAX, "record body of {} bytes", self.body_len);
        let mut out = [0u8; HEADER_LEN];
        let (header_checksum, checked) = out.split_at_mut(CHECKED_START);
        fill_slot(checked, |writer| {
            writer.u32(self.body_len as u32)?.u8(FORMAT_VERSION)?.u8(self.kind as u8)?;
            writer.u64(self.version.get())?.u64(self.body_checksum).map(drop)
        });
        let sum = checksum(checked);
        fill_slot(header_checksum, |writer| writer.u64(sum).map(drop));
        out
    }

    /// Decodes and validates the header at the start of `bytes`: zeros, a short buffer, the
    /// header checksum, the format, the kind and the body length against the kind's range.
    /// The body itself is not looked at.
    pub(super) fn decode_from(bytes: &[u8]) -> Result<Header, DecodeError> {
        let Some(header) = bytes.first_chunk::<HEADER_LEN>() else {
            return Err(if !bytes.is_empty() && is_zeroed(bytes) {
                DecodeError::Zeroed
            } else {
                DecodeError::Incomplete { needed: HEADER_LEN - bytes.len() }
            });
        };
        if is_zeroed(header) {
            return Err(DecodeError::Zeroed);
        }
        let (stored, checked) = header.split_at(CHECKED_START);
        let mut reader = Reader::new(stored, "record header truncated");
        if checksum(checked) != reader.u64()? {
            return Err(corrupt(HEADER_CHECKSUM_OFFSET, "record header checksum mismatch"));
        }
        let mut reader = Reader::new(checked, "record header truncated");
        let body_len = reader.u32()? as usize;
        if reader.u8()? != FORMAT_VERSION {
            return Err(corrupt(FORMAT_OFFSET, "unknown record format version"));
        }
        let kind = RecordKind::from_byte(reader.u8()?)
            .ok_or_else(|| corrupt(KIND_OFFSET, "unknown record kind"))?;
        let (body_len_min, body_len_max) = kind.body_len_range();
        if body_len < body_len_min || body_len > body_len_max {
            return Err(corrupt(BODY_LEN_OFFSET, "record body length out of range for its kind"));
        }
        let version = Version::new(reader.u64()?);
        Ok(Header { body_len, kind, version, body_checksum: reader.u64()? })
    }
}

/// Whether every byte of `bytes` is zero (true for no bytes).
pub(super) fn is_zeroed(bytes: &[u8]) -> bool {
    bytes.iter().all(|&byte| byte == 0)
}

fn corrupt(offset: usize, what: &'static str) -> DecodeError {
    DecodeError::Corrupt(Corruption::new(offset as u64, what))
}
