//! Encoding records into a caller's buffer. Limits are checked before the first byte is
//! written: on error, nothing was written.

#[cfg(feature = "alloc")]
use alloc::vec::Vec;

use super::header::{HEADER_LEN, Header};

use super::{
    DELETE_FIXED_LEN, DecodeError, EncodeError, OP_COUNT_WIDTH, OP_KIND_WIDTH, PUT_FIXED_LEN,
    RECORD_LEN_MAX, RecordKind,
};
use crate::Version;
use crate::bytes::{SliceFull, SliceSink, Writer, fill_slot};
use crate::error::LimitError;
use crate::limits::{check_key, check_value};

/// A writer filling a slot of a record.
type SlotWriter<'s> = Writer<SliceSink<'s>>;

/// The length of the put record of `key` and `value`, or the limit they exceed.
pub fn encoded_len_put(key: &[u8], value: &[u8]) -> Result<usize, LimitError> {
    Ok(HEADER_LEN + put_body_len(key, value)?)
}

/// The length of the delete record of `key`, or the limit it exceeds.
pub fn encoded_len_delete(key: &[u8]) -> Result<usize, LimitError> {
    Ok(HEADER_LEN + delete_body_len(key)?)
}

/// Encodes a put of `key` to `value` at `version` into the start of `out`; returns the
/// record's length ([`encoded_len_put`]).
pub fn encode_put_into(
    out: &mut [u8],
    version: Version,
    key: &[u8],
    value: &[u8],
) -> Result<usize, EncodeError> {
    let record_len = encoded_len_put(key, value)?;
    let record = record_slot(out, record_len)?;
    let (header, body) = record.split_at_mut(HEADER_LEN);
    fill_slot(body, |writer| put_body(writer, key, value));
    header.copy_from_slice(&Header::new(RecordKind::Put, version, body).encode());
    Ok(record_len)
}

/// Encodes a delete of `key` at `version` into the start of `out`; returns the record's length
/// ([`encoded_len_delete`]).
pub fn encode_delete_into(
    out: &mut [u8],
    version: Version,
    key: &[u8],
) -> Result<usize, EncodeError> {
    let record_len = encoded_len_delete(key)?;
    let record = record_slot(out, record_len)?;
    let (header, body) = record.split_at_mut(HEADER_LEN);
    fill_slot(body, |writer| delete_body(writer, key));
    header.copy_from_slice(&Header::new(RecordKind::Delete, version, body).encode());
    Ok(record_len)
}

/// The length of a batch record with no ops.
pub const BATCH_EMPTY_LEN: usize = HEADER_LEN + OP_COUNT_WIDTH;

/// Encodes a batch record into a caller's buffer, op by op, without allocating.
///
/// ```
/// # use zverse_core::{Version, record::{BatchEncoder, decode_from}};
/// let mut buffer = [0u8; 128];
/// let mut batch = BatchEncoder::new(&mut buffer)?;
/// batch.put(b"k1", b"v1")?;
/// batch.delete(b"k2")?;
/// let record = batch.finish(Version::new(7));
/// let (decoded, _) = decode_from(record).unwrap();
/// assert_eq!(decoded.op_count(), 2);
/// # Ok::<(), zverse_core::record::EncodeError>(())
/// ```
#[derive(Debug)]
pub struct BatchEncoder<'b> {
    out: &'b mut [u8],
    /// Bytes of the record so far: header, op count and the ops pushed.
    len: usize,
    op_count: u32,
}

impl<'b> BatchEncoder<'b> {
    /// Starts a batch at the start of `out`, which must hold at least [`BATCH_EMPTY_LEN`]
    /// bytes.
    pub fn new(out: &'b mut [u8]) -> Result<BatchEncoder<'b>, EncodeError> {
        record_slot(out, BATCH_EMPTY_LEN)?;
        Ok(BatchEncoder { out, len: BATCH_EMPTY_LEN, op_count: 0 })
    }

    /// Appends a put of `key` to `value`. On error the batch is as it was.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), EncodeError> {
        let slot = self.reserve(OP_KIND_WIDTH + put_body_len(key, value)?)?;
        fill_slot(slot, |writer| put_body(writer.u8(RecordKind::Put as u8)?, key, value));
        self.op_count += 1;
        Ok(())
    }

    /// Appends a delete of `key`. On error the batch is as it was.
    pub fn delete(&mut self, key: &[u8]) -> Result<(), EncodeError> {
        let slot = self.reserve(OP_KIND_WIDTH + delete_body_len(key)?)?;
        fill_slot(slot, |writer| delete_body(writer.u8(RecordKind::Delete as u8)?, key));
        self.op_count += 1;
        Ok(())
    }

    /// How many ops were pushed.
    #[must_use]
    pub const fn op_count(&self) -> u32 {
        self.op_count
    }

    /// The length the record would have if finished now.
    #[must_use]
    pub const fn encoded_len(&self) -> usize {
        self.len
    }

    /// Writes the header at `version` and returns the encoded record: the start of the
    /// buffer, [`BatchEncoder::encoded_len`] bytes.
    #[must_use]
    pub fn finish(self, version: Version) -> &'b mut [u8] {
        let (record, _) = self.out.split_at_mut(self.len);
        finish_batch(record, self.op_count, version);
        record
    }

    /// Extends the record by `op_len` bytes and returns them, or why it cannot.
    fn reserve(&mut self, op_len: usize) -> Result<&mut [u8], EncodeError> {
        let len = check_batch_len(self.len, op_len)?;
        if len > self.out.len() {
            return Err(EncodeError::BufferTooSmall {
                buffer_len: self.out.len(),
                len_needed: len,
            });
        }
        let (_, tail) = self.out.split_at_mut(self.len);
        let (slot, _) = tail.split_at_mut(op_len);
        self.len = len;
        Ok(slot)
    }
}

/// Builds a batch record in a growing `Vec`: [`BatchEncoder`] without a size to choose.
#[cfg(feature = "alloc")]
#[derive(Clone, Debug)]
pub struct BatchBuilder {
    bytes: Vec<u8>,
    op_count: u32,
}

#[cfg(feature = "alloc")]
impl Default for BatchBuilder {
    fn default() -> BatchBuilder {
        BatchBuilder::new()
    }
}

#[cfg(feature = "alloc")]
impl BatchBuilder {
    /// An empty batch.
    #[must_use]
    pub fn new() -> BatchBuilder {
        BatchBuilder { bytes: alloc::vec![0; BATCH_EMPTY_LEN], op_count: 0 }
    }

    /// An empty batch built in `buffer` (cleared first), so that a caller reusing one buffer
    /// allocates only when a batch outgrows it.
    #[must_use]
    pub fn in_buffer(mut buffer: Vec<u8>) -> BatchBuilder {
        buffer.clear();
        buffer.resize(BATCH_EMPTY_LEN, 0);
        BatchBuilder { bytes: buffer, op_count: 0 }
    }

    /// Appends a put of `key` to `value`. On error the batch is as it was.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), LimitError> {
        let slot = self.reserve(OP_KIND_WIDTH + put_body_len(key, value)?)?;
        fill_slot(slot, |writer| put_body(writer.u8(RecordKind::Put as u8)?, key, value));
        self.op_count += 1;
        Ok(())
    }

    /// Appends a delete of `key`. On error the batch is as it was.
    pub fn delete(&mut self, key: &[u8]) -> Result<(), LimitError> {
        let slot = self.reserve(OP_KIND_WIDTH + delete_body_len(key)?)?;
        fill_slot(slot, |writer| delete_body(writer.u8(RecordKind::Delete as u8)?, key));
        self.op_count += 1;
        Ok(())
    }

    /// How many ops were pushed.
    #[must_use]
    pub const fn op_count(&self) -> u32 {
        self.op_count
    }

    /// The length the record will have.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        self.bytes.len()
    }

    /// The buffer the batch was built in, for a next [`BatchBuilder::in_buffer`] (the
    /// batch is discarded).
    #[must_use]
    pub fn into_buffer(self) -> Vec<u8> {
        self.bytes
    }

    /// The encoded record at `version`.
    #[must_use]
    pub fn finish(mut self, version: Version) -> Vec<u8> {
        finish_batch(&mut self.bytes, self.op_count, version);
        self.bytes
    }

    fn reserve(&mut self, op_len: usize) -> Result<&mut [u8], LimitError> {
        let start = self.bytes.len();
        let len = check_batch_len(start, op_len)?;
        self.bytes.resize(len, 0);
        let (_, slot) = self.bytes.split_at_mut(start);
        Ok(slot)
    }
}

/// The length of a batch record of `len` bytes grown by `op_len`, or the limit it exceeds.
pub(super) fn check_batch_len(len: usize, op_len: usize) -> Result<usize, LimitError> {
    let len_new = len.saturating_add(op_len);
    if len_new > RECORD_LEN_MAX {
        return Err(LimitError::TooLarge {
            what: "batch record",
            len: len_new as u64,
            len_max: RECORD_LEN_MAX as u64,
        });
    }
    Ok(len_new)
}

/// Writes the op count and the header of a batch `record` (header, op count, ops).
fn finish_batch(record: &mut [u8], op_count: u32, version: Version) {
    let (header, body) = record.split_at_mut(HEADER_LEN);
    let (op_count_bytes, _) = body.split_at_mut(OP_COUNT_WIDTH);
    fill_slot(op_count_bytes, |writer| writer.u32(op_count).map(drop));
    header.copy_from_slice(&Header::new(RecordKind::Batch, version, body).encode());
}

fn put_body_len(key: &[u8], value: &[u8]) -> Result<usize, LimitError> {
    check_key(key)?;
    check_value(value)?;
    Ok(PUT_FIXED_LEN + key.len() + value.len())
}

fn delete_body_len(key: &[u8]) -> Result<usize, LimitError> {
    check_key(key)?;
    Ok(DELETE_FIXED_LEN + key.len())
}

/// The first `record_len` bytes of `out`, or [`EncodeError::BufferTooSmall`].
fn record_slot(out: &mut [u8], record_len: usize) -> Result<&mut [u8], EncodeError> {
    let buffer_len = out.len();
    match out.split_at_mut_checked(record_len) {
        Some((slot, _)) => Ok(slot),
        None => Err(EncodeError::BufferTooSmall { buffer_len, len_needed: record_len }),
    }
}

/// Key length, value length, key, value. The limits were checked by `put_body_len`.
fn put_body(writer: &mut SlotWriter<'_>, key: &[u8], value: &[u8]) -> Result<(), SliceFull> {
    writer.u16(key.len() as u16)?.u32(value.len() as u32)?.bytes(key)?.bytes(value).map(drop)
}

/// Key length, key. The limit was checked by `delete_body_len`.
fn delete_body(writer: &mut SlotWriter<'_>, key: &[u8]) -> Result<(), SliceFull> {
    writer.u16(key.len() as u16)?.bytes(key).map(drop)
}

/// Rewrites the version of the encoded record at the start of `record`, in place: the header
/// is checked, its version replaced and its checksum recomputed; the body is not read (the
/// header checksum covers the body through the body checksum, which does not change).
///
/// For a write path that encodes a record before its version is allocated. Equal to encoding
/// the record at `version` in the first place.
pub fn rewrite_version(record: &mut [u8], version: Version) -> Result<(), DecodeError> {
    let header = Header { version, ..Header::decode_from(record)? };
    let (header_bytes, _) = record.split_at_mut(HEADER_LEN);
    header_bytes.copy_from_slice(&header.encode());
    Ok(())
}
