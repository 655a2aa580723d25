//! Log record framing: how one write (a put, a delete or a batch) is laid out in a `*.log` file.
//!
//! The log is the first tier of the data: every write is appended as one record with one
//! version, and recovery replays the records. A batch is one record, so on recovery it is
//! applied whole or not at all. The byte layout is specified in `docs/format.md` ("Log
//! records"); in short, a record is a fixed [`HEADER_LEN`]-byte header followed by a body:
//!
//! ```text
//! header: header_checksum u64 | body_len u32 | format u8 | kind u8 | version u64
//!         | body_checksum u64
//! put:    key_len u16 | value_len u32 | key | value
//! delete: key_len u16 | key
//! batch:  op_count u32 | op_count x (op_kind u8 | put or delete body)
//! ```
//!
//! All integers are little-endian. The header checksum covers the rest of the header,
//! including the body checksum, so one checksum transitively covers every byte of the record,
//! and the header can be trusted (its `body_len` above all) before the body has been read.
//! That is what lets recovery tell a torn tail (header intact, body cut short:
//! [`DecodeError::Incomplete`]) from a corrupted length field (header checksum mismatch:
//! [`DecodeError::Corrupt`]). An all-zero header decodes as [`DecodeError::Zeroed`]: kind 0 is
//! never valid, so zeros (a preallocated file, or sectors a torn write left zeroed) are never
//! a record.
//!
//! - Encoders write into a caller's buffer and never allocate: [`encode_put_into`],
//!   [`encode_delete_into`], [`BatchEncoder`]; with `alloc`, `BatchBuilder` grows a `Vec`.
//!   [`rewrite_version`] changes an encoded record's version without rehashing its body.
//! - [`decode_from`] decodes one record from untrusted bytes, zero-copy: [`Record`] borrows
//!   keys and values from the input, and [`Record::ops`] iterates a batch without allocating.
//! - [`ops_of_encoded`] walks the ops of a record the caller has just encoded, without
//!   checksums: the write path inserts what it encoded without decoding it again.
//!
//! Records are stored in the frames of a log file ([`crate::log`]), whose checksums and
//! damage rule decide what of a log is replayed.

mod decoder;
mod encoder;
mod header;
#[cfg(test)]
mod tests;

use core::fmt;

pub use decoder::{decode_from, ops_of_encoded};
#[cfg(feature = "alloc")]
pub use encoder::BatchBuilder;
pub use encoder::{
    BATCH_EMPTY_LEN, BatchEncoder, encode_delete_into, encode_put_into, encoded_len_delete,
    encoded_len_put, rewrite_version,
};
pub use header::{
    BODY_CHECKSUM_OFFSET, BODY_LEN_OFFSET, FORMAT_OFFSET, HEADER_CHECKSUM_OFFSET, HEADER_LEN,
    KIND_OFFSET, VERSION_OFFSET,
};

use crate::Version;
use crate::entry::Entry;
use crate::error::{Corruption, LimitError};
use crate::limits::{KEY_LEN_MAX, VALUE_LEN_MAX};

/// The record format version written in every header. A header with another value does not
/// decode.
pub const FORMAT_VERSION: u8 = 1;

/// Bytes of a key length on disk (`u16`).
pub const KEY_LEN_WIDTH: usize = size_of::<u16>();
/// Bytes of a value length on disk (`u32`).
pub const VALUE_LEN_WIDTH: usize = size_of::<u32>();
/// Bytes of a batch's op count on disk (`u32`).
pub const OP_COUNT_WIDTH: usize = size_of::<u32>();
/// Bytes of a batch op's kind on disk (`u8`).
pub const OP_KIND_WIDTH: usize = size_of::<u8>();

/// Bytes of a put body before its key: key length, value length.
pub const PUT_FIXED_LEN: usize = KEY_LEN_WIDTH + VALUE_LEN_WIDTH;
/// Bytes of a delete body before its key: key length.
pub const DELETE_FIXED_LEN: usize = KEY_LEN_WIDTH;
/// The longest put body.
pub const PUT_BODY_LEN_MAX: usize = PUT_FIXED_LEN + KEY_LEN_MAX + VALUE_LEN_MAX;
/// The longest delete body.
pub const DELETE_BODY_LEN_MAX: usize = DELETE_FIXED_LEN + KEY_LEN_MAX;

/// The longest record, header included: 128 MiB. A single put of the largest key and value
/// fits with room to spare; a batch is refused with [`LimitError::TooLarge`] when its record
/// would exceed this. A decoder never trusts a length above it.
pub const RECORD_LEN_MAX: usize = 128 << 20;
/// The longest record body.
pub const BODY_LEN_MAX: usize = RECORD_LEN_MAX - HEADER_LEN;

const _: () = assert!(HEADER_LEN + PUT_BODY_LEN_MAX <= RECORD_LEN_MAX);
const _: () = assert!(RECORD_LEN_MAX <= u32::MAX as usize);
// Every batch op takes at least `OP_KIND_WIDTH + DELETE_FIXED_LEN` bytes, so the op count of a
// record within `RECORD_LEN_MAX` always fits its `u32`.
const _: () = assert!(BODY_LEN_MAX / (OP_KIND_WIDTH + DELETE_FIXED_LEN) <= u32::MAX as usize);

/// What a record holds. The discriminant is the `kind` byte on disk; 0 is never a kind, so an
/// all-zero header is never a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RecordKind {
    /// One key set to one value.
    Put = 1,
    /// One key deleted (a tombstone).
    Delete = 2,
    /// Zero or more puts and deletes, applied together at one version.
    Batch = 3,
}

impl RecordKind {
    /// The kind whose byte is `byte`, if any.
    #[must_use]
    pub const fn from_byte(byte: u8) -> Option<RecordKind> {
        match byte {
            1 => Some(RecordKind::Put),
            2 => Some(RecordKind::Delete),
            3 => Some(RecordKind::Batch),
            _ => None,
        }
    }

    /// The shortest and longest body a record of this kind can have.
    #[must_use]
    pub const fn body_len_range(self) -> (usize, usize) {
        match self {
            RecordKind::Put => (PUT_FIXED_LEN, PUT_BODY_LEN_MAX),
            RecordKind::Delete => (DELETE_FIXED_LEN, DELETE_BODY_LEN_MAX),
            RecordKind::Batch => (OP_COUNT_WIDTH, BODY_LEN_MAX),
        }
    }
}

/// One operation of a record: a put (`value` is `Some`) or a delete (`value` is `None`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op<'a> {
    /// The key written.
    pub key: &'a [u8],
    /// The value, or `None` for a delete.
    pub value: Option<&'a [u8]>,
}

impl<'a> Op<'a> {
    /// This op as an [`Entry`] at `version`.
    #[must_use]
    pub const fn entry(self, version: Version) -> Entry<'a> {
        Entry { key: self.key, version, value: self.value }
    }
}

/// A decoded record, borrowing its keys and values from the decoded bytes.
///
/// Built only by [`decode_from`], which validates the whole record (checksums, every length,
/// every batch op), so reading it cannot fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    version: Version,
    kind: RecordKind,
    op_count: u32,
    /// The ops: the body after the op count for a batch, the whole body otherwise.
    ops: &'a [u8],
    /// The whole record, header included.
    bytes: &'a [u8],
}

impl<'a> Record<'a> {
    /// The version all of the record's ops were written at.
    #[must_use]
    pub const fn version(&self) -> Version {
        self.version
    }

    /// What the record holds.
    #[must_use]
    pub const fn kind(&self) -> RecordKind {
        self.kind
    }

    /// How many ops [`Record::ops`] yields: 1 for a put or a delete.
    #[must_use]
    pub const fn op_count(&self) -> u32 {
        self.op_count
    }

    /// The record's ops, in the order they were encoded.
    #[must_use]
    pub const fn ops(&self) -> Ops<'a> {
        Ops { kind: self.kind, remaining: self.op_count, bytes: self.ops }
    }

    /// The record's ops as [`Entry`]s at the record's version.
    pub fn entries(&self) -> impl Iterator<Item = Entry<'a>> + use<'a> {
        let version = self.version;
        self.ops().map(move |op| op.entry(version))
    }

    /// The record's encoded bytes, header included.
    #[must_use]
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// The ops of a [`Record`], in encoded order. Parses lazily from bytes [`decode_from`] has
/// already validated, so it never fails and never allocates.
#[derive(Clone, Debug)]
pub struct Ops<'a> {
    kind: RecordKind,
    remaining: u32,
    bytes: &'a [u8],
}

impl<'a> Iterator for Ops<'a> {
    type Item = Op<'a>;

    fn next(&mut self) -> Option<Op<'a>> {
        self.remaining = self.remaining.checked_sub(1)?;
        // `decode_from` ran the same parser over these bytes, so this cannot fail; if it did,
        // the iteration would end early rather than panic.
        if let Ok((op, rest)) = decoder::split_op(self.kind, self.bytes) {
            self.bytes = rest;
            Some(op)
        } else {
            self.remaining = 0;
            None
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = self.remaining as usize;
        (remaining, Some(remaining))
    }
}

impl ExactSizeIterator for Ops<'_> {}
impl core::iter::FusedIterator for Ops<'_> {}

/// Why a record could not be encoded. Nothing was written when this is returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// A key, value or the record exceeds a limit.
    Limit(LimitError),
    /// The caller's buffer is shorter than the encoded record.
    BufferTooSmall {
        /// The buffer's length in bytes.
        buffer_len: usize,
        /// The bytes the record needs.
        len_needed: usize,
    },
}

impl From<LimitError> for EncodeError {
    fn from(error: LimitError) -> EncodeError {
        EncodeError::Limit(error)
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::Limit(error) => fmt::Display::fmt(error, f),
            EncodeError::BufferTooSmall { buffer_len, len_needed } => {
                write!(f, "buffer of {buffer_len} bytes is too small for {len_needed} bytes")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for EncodeError {}

/// Why bytes did not decode as a record.
///
/// Records live inside log frames whose checksums decide what a crash tore, so inside a frame
/// that is intact every one of these is corruption ([`crate::log::Records`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes end before the record does, and what there is of it is intact: a clean
    /// truncation. At least `needed` more bytes would be needed (exactly `needed` once the
    /// header is whole).
    Incomplete {
        /// How many more bytes the record needs, at least.
        needed: usize,
    },
    /// The header is all zeros (or the bytes end within a header and all of them are zero):
    /// no record starts here. Preallocated space, or sectors a torn write left zeroed.
    Zeroed,
    /// The bytes are not a record: a checksum mismatch, a length out of range, an unknown kind
    /// or format. The offset is relative to the start of the bytes given to [`decode_from`].
    Corrupt(Corruption),
}

impl From<Corruption> for DecodeError {
    fn from(corruption: Corruption) -> DecodeError {
        DecodeError::Corrupt(corruption)
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Incomplete { needed } => {
                write!(f, "record incomplete: at least {needed} more bytes needed")
            }
            DecodeError::Zeroed => f.write_str("zeroed bytes where a record header should be"),
            DecodeError::Corrupt(corruption) => fmt::Display::fmt(corruption, f),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DecodeError {}
