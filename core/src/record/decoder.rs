//! Decoding a record from untrusted bytes. Never panics, never allocates: every length is
//! checked against the bytes and the limits before it is used.
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

use super::header::{HEADER_LEN, Header, KIND_OFFSET};
use super::{DecodeError, Op, Ops, RECORD_LEN_MAX, Record, RecordKind};
use crate::checksum::checksum;
use crate::error::Corruption;
use crate::limits::VALUE_LEN_MAX;

/// Decodes the record at the start of `bytes`, returning it and the bytes it takes.
///
/// The checks, in order (the first that fails is returned):
/// 1. fewer than [`HEADER_LEN`] bytes, or a header of zeros: [`DecodeError::Zeroed`] if the
///    bytes present (at least one) are all zero, else [`DecodeError::Incomplete`];
/// 2. the header checksum, the format version, the kind, the body length against the kind's
///    range: [`DecodeError::Corrupt`];
/// 3. the bytes end before the body does: [`DecodeError::Incomplete`] (the header is intact,
///    so its length can be trusted);
/// 4. the body checksum, then every length and op kind inside the body, which must account for
///    every body byte: [`DecodeError::Corrupt`].
///
/// Corruption offsets are relative to the start of `bytes`.
pub fn decode_from(bytes: &[u8]) -> Result<(Record<'_>, usize), DecodeError> {
    let header = Header::decode_from(bytes)?;
    let record_len = HEADER_LEN + header.body_len;
    debug_assert!(record_len <= RECORD_LEN_MAX, "the header check bounds the body length");
    let Some(record) = bytes.get(..record_len) else {
        return Err(DecodeError::Incomplete { needed: record_len - bytes.len() });
    };
    let body = record.get(HEADER_LEN..).unwrap_or_default();
    if checksum(body) != header.body_checksum {
        return Err(corrupt_at(HEADER_LEN, "record body checksum mismatch"));
    }
    let (op_count, ops) = validate_body(header.kind, body)
        .map_err(|(offset, what)| corrupt_at(HEADER_LEN + offset, what))?;
    let record =
        Record { version: header.version, kind: header.kind, op_count, ops, bytes: record };
    Ok((record, record_len))
}

/// The ops of a record this process has just encoded, found by walking its lengths without
/// verifying a checksum: for a write path that inserts what it encoded without decoding it
/// again. `None` if the header's kind or a batch's op count is missing. The lengths are still
/// bounds-checked, so bytes that are not such a record end the ops early but never panic;
/// bytes from a file or a caller go through [`decode_from`].
#[must_use]
pub fn ops_of_encoded(record: &[u8]) -> Option<Ops<'_>> {
    let kind = RecordKind::from_byte(*record.get(KIND_OFFSET)?)?;
    let body = record.get(HEADER_LEN..)?;
    let (op_count, ops) = match kind {
        RecordKind::Put | RecordKind::Delete => (1, body),
        RecordKind::Batch => split_u32(body).ok()?,
    };
    Some(Ops { kind, remaining: op_count, bytes: ops })
}

/// A body-relative offset and what was wrong there.
type BodyError = (usize, &'static str);

/// Checks that `body` is exactly the ops of a `kind` record; returns the op count and the ops'
/// bytes (the body after the op count of a batch).
fn validate_body(kind: RecordKind, body: &[u8]) -> Result<(u32, &[u8]), BodyError> {
    let (op_count, ops) = match kind {
        RecordKind::Put | RecordKind::Delete => (1, body),
        RecordKind::Batch => split_u32(body).map_err(|what| (0, what))?,
    };
    let mut rest = ops;
    for _ in 0..op_count {
        let offset = body.len() - rest.len();
        let (_, after) = split_op(kind, rest).map_err(|what| (offset, what))?;
        rest = after;
    }
    if !rest.is_empty() {
        return Err((body.len() - rest.len(), "record body has bytes after its last op"));
    }
    Ok((op_count, ops))
}

/// Splits the first op off the ops of a `kind` record: a put or delete body for a single
/// record, an op kind byte and a put or delete body for a batch.
pub(super) fn split_op(kind: RecordKind, bytes: &[u8]) -> Result<(Op<'_>, &[u8]), &'static str> {
    match kind {
        RecordKind::Put => split_put(bytes),
        RecordKind::Delete => split_delete(bytes),
        RecordKind::Batch => {
            let (&op_kind, rest) = bytes.split_first().ok_or(PAST_END)?;
            match RecordKind::from_byte(op_kind) {
                Some(RecordKind::Put) => split_put(rest),
                Some(RecordKind::Delete) => split_delete(rest),
                Some(RecordKind::Batch) | None => Err("unknown batch op kind"),
            }
        }
    }
}

const PAST_END: &str = "op runs past the end of the record body";

fn split_put(bytes: &[u8]) -> Result<(Op<'_>, &[u8]), &'static str> {
    let (key_len, rest) = split_u16(bytes)?;
    let (value_len, rest) = split_u32(rest)?;
    let value_len = value_len as usize;
    if value_len > VALUE_LEN_MAX {
        return Err("value length above the limit");
    }
    let (key, rest) = rest.split_at_checked(usize::from(key_len)).ok_or(PAST_END)?;
    let (value, rest) = rest.split_at_checked(value_len).ok_or(PAST_END)?;
    Ok((Op { key, value: Some(value) }, rest))
}

fn split_delete(bytes: &[u8]) -> Result<(Op<'_>, &[u8]), &'static str> {
    let (key_len, rest) = split_u16(bytes)?;
    let (key, rest) = rest.split_at_checked(usize::from(key_len)).ok_or(PAST_END)?;
    Ok((Op { key, value: None }, rest))
}

fn split_u16(bytes: &[u8]) -> Result<(u16, &[u8]), &'static str> {
    let (int, rest) = bytes.split_first_chunk().ok_or(PAST_END)?;
    Ok((u16::from_le_bytes(*int), rest))
}

fn split_u32(bytes: &[u8]) -> Result<(u32, &[u8]), &'static str> {
    let (int, rest) = bytes.split_first_chunk().ok_or(PAST_END)?;
    Ok((u32::from_le_bytes(*int), rest))
}

fn corrupt_at(offset: usize, what: &'static str) -> DecodeError {
    DecodeError::Corrupt(Corruption::new(offset as u64, what))
}
