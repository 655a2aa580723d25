//! Log files: the byte layout of a `*.log` file and the rule that decides what damage in one
//! means. The engine (`zverse`'s `log.rs`) keeps only the file I/O. Byte layout:
//! docs/format.md, "Log files".
//!
//! ```text
//! log file: log header (LOG_HEADER_LEN) | frame | frame | ... | seal | zeros (preallocated)
//! log header: magic "ZVERSELG" | nonce u64 | XXH3-64 of the two
//! frame:   header (FRAME_HEADER_LEN) | body: records (crate::record), back to back
//! header:  header_checksum u64 | body_len u32 | format u8 | reserved [0; 3]
//!          | frame_offset u64 | synced_offset u64 | body_checksum u64
//! ```
//!
//! A frame holds one commit group's records behind a header that says how much of the log was
//! durable when the frame was written (`synced_offset`); its header checksum is seeded with
//! the log's random nonce, so that no bytes a user stored can pass for a frame. That lets
//! recovery tell the two kinds of damage apart without guessing:
//! - bytes after the last sync are torn by a crash in any way a disk likes (sectors of one
//!   write land out of order, so a damaged frame can be followed by an intact later one).
//!   None of it was acknowledged in `Sync` mode: the newest log is truncated there;
//! - a damaged frame followed by an intact frame whose `synced_offset` is past the damage was
//!   durable before the intact frame was written: that is corruption, never skipped.
//!
//! A log ends with a seal (a frame with an empty body) before a newer log is created, so that
//! an older log cut short at a frame boundary, which no frame checksum can tell, is corruption
//! too. The whole rule is one table, [`RULES`]: what follows the last intact frame ([`Tail`])
//! and which log it is ([`LogPosition`]) give the [`Verdict`].
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

mod damage;
mod frame;
#[cfg(all(test, feature = "alloc"))]
mod tests;

pub use damage::{LogPosition, RULES, Rule, Tail, Verdict, verdict};
pub use frame::{BadRecord, Frame, Frames, LogEnd, Records, seal, seal_frame};

use crate::bytes::{Reader, fill_slot};
use crate::checksum::{CHECKSUM_LEN, checksum};

/// The magic at the start of every log file.
pub const LOG_MAGIC: [u8; 8] = *b"ZVERSELG";
/// Bytes of the log file header; the first frame starts here.
pub const LOG_HEADER_LEN: usize = LOG_MAGIC.len() + size_of::<u64>() + CHECKSUM_LEN;

/// Offset of a frame's header checksum: XXH3-64 of the header bytes after it, seeded with the
/// log's nonce.
pub const HEADER_CHECKSUM_OFFSET: usize = 0;
/// Offset of the body length (`u32`).
pub const BODY_LEN_OFFSET: usize = HEADER_CHECKSUM_OFFSET + CHECKSUM_LEN;
/// Offset of the frame format byte.
pub const FORMAT_OFFSET: usize = BODY_LEN_OFFSET + size_of::<u32>();
/// Offset of the three reserved zero bytes.
pub const RESERVED_OFFSET: usize = FORMAT_OFFSET + size_of::<u8>();
/// Bytes reserved (zero) after the format byte.
const RESERVED_LEN: usize = 3;
/// Offset of the frame's own offset in the log (`u64`).
pub const FRAME_OFFSET_OFFSET: usize = RESERVED_OFFSET + RESERVED_LEN;
/// Offset of the synced offset (`u64`).
pub const SYNCED_OFFSET_OFFSET: usize = FRAME_OFFSET_OFFSET + size_of::<u64>();
/// Offset of the body checksum: XXH3-64 of the body.
pub const BODY_CHECKSUM_OFFSET: usize = SYNCED_OFFSET_OFFSET + size_of::<u64>();
/// Bytes of a frame header.
pub const FRAME_HEADER_LEN: usize = BODY_CHECKSUM_OFFSET + CHECKSUM_LEN;
/// The frame format written in every header.
pub const FRAME_FORMAT: u8 = 1;
/// The largest body a frame may have: a full commit group plus one record of the largest size.
pub const FRAME_BODY_LEN_MAX: usize = 256 << 20;

const _: () = assert!(LOG_HEADER_LEN == 24);
const _: () = assert!(FRAME_HEADER_LEN == 40);
const _: () = assert!(FRAME_BODY_LEN_MAX <= u32::MAX as usize);

/// The log file header for `nonce`.
#[must_use]
pub fn encode_log_header(nonce: u64) -> [u8; LOG_HEADER_LEN] {
    let mut header = [0u8; LOG_HEADER_LEN];
    let (covered, sum) = header.split_at_mut(LOG_HEADER_LEN - CHECKSUM_LEN);
    fill_slot(covered, |writer| writer.bytes(&LOG_MAGIC)?.u64(nonce).map(drop));
    let covered_sum = checksum(covered);
    fill_slot(sum, |writer| writer.u64(covered_sum).map(drop));
    header
}

/// The nonce in the log file header at the start of `log`, or `None` if the header is not
/// intact (short, another magic, or a checksum mismatch).
#[must_use]
pub fn decode_log_header(log: &[u8]) -> Option<u64> {
    let header = log.get(..LOG_HEADER_LEN)?;
    let (covered, sum) = header.split_at(LOG_HEADER_LEN - CHECKSUM_LEN);
    let mut reader = Reader::new(covered, "log header truncated");
    let magic = reader.array::<{ LOG_MAGIC.len() }>().ok()?;
    let nonce = reader.u64().ok()?;
    let stored_sum = Reader::new(sum, "log header truncated").u64().ok()?;
    (magic == LOG_MAGIC && stored_sum == checksum(covered)).then_some(nonce)
}

/// Whether every byte of `log` from `offset` on is zero: the zero-filled tail of a preallocated
/// log, which ends it as cleanly as its end of file. False for an offset past the end.
#[must_use]
pub fn is_zero_tail(log: &[u8], offset: usize) -> bool {
    log.get(offset..).is_some_and(|tail| tail.iter().all(|&byte| byte == 0))
}
