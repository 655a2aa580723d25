//! Log files: the first tier of the data. Every commit group is appended to the active log as
//! one frame; recovery replays the logs the manifest does not cover yet. Byte layout:
//! docs/format.md, "Log files".
//!
//! A frame holds a group's records (`zverse_core::record`) behind a checksummed header that
//! also says how much of the log was durable when the frame was written (`synced_offset`).
//! That lets recovery tell the two kinds of damage apart without guessing:
//! - bytes after the last sync are torn by a crash in any way a disk likes (sectors of one
//!   write land out of order, so a damaged frame can be followed by an intact later one).
//!   None of it was acknowledged in `Sync` mode: recovery truncates at the first damaged frame;
//! - a damaged frame followed by an intact frame whose `synced_offset` is past the damage was
//!   durable before the intact frame was written: that is real corruption, reported, never
//!   skipped.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::path::Path;

use zverse_core::Version;
use zverse_core::checksum::{CHECKSUM_LEN, checksum};
use zverse_core::record::{LogEnd, LogReader};

use crate::error::{Error, Result};
use crate::io::{Io, IoFile};
use crate::memtable::Memtable;

/// The file name of log `number`.
pub(crate) fn log_file_name(number: u64) -> String {
    format!("{number:020}.log")
}

/// Offset of the header checksum: XXH3 of the header bytes after it.
const HEADER_CHECKSUM_OFFSET: usize = 0;
/// Offset of the body length (`u32`).
const BODY_LEN_OFFSET: usize = HEADER_CHECKSUM_OFFSET + CHECKSUM_LEN;
/// Offset of the frame format byte.
const FORMAT_OFFSET: usize = BODY_LEN_OFFSET + size_of::<u32>();
/// Offset of three reserved zero bytes.
const RESERVED_OFFSET: usize = FORMAT_OFFSET + 1;
/// Offset of the synced offset (`u64`).
const SYNCED_OFFSET_OFFSET: usize = RESERVED_OFFSET + 3;
/// Offset of the body checksum: XXH3 of the body.
const BODY_CHECKSUM_OFFSET: usize = SYNCED_OFFSET_OFFSET + size_of::<u64>();
/// Bytes of a frame header.
pub(crate) const FRAME_HEADER_LEN: usize = BODY_CHECKSUM_OFFSET + CHECKSUM_LEN;
/// The frame format written in every header.
const FRAME_FORMAT: u8 = 1;
/// The largest body a frame may have: a full group plus one record of the largest size.
const FRAME_BODY_LEN_MAX: usize = 256 << 20;

const _: () = assert!(FRAME_HEADER_LEN == 32);
const _: () = assert!(FRAME_BODY_LEN_MAX <= u32::MAX as usize);
const _: () = assert!(
    FRAME_BODY_LEN_MAX >= crate::commit::GROUP_BYTES_MAX + zverse_core::record::RECORD_LEN_MAX
);

/// Fills in the frame header at the start of `frame`, whose body follows it.
pub(crate) fn seal_frame(frame: &mut [u8], synced_offset: u64) {
    assert!(frame.len() >= FRAME_HEADER_LEN, "a frame starts with room for its header");
    let (header, body) = frame.split_at_mut(FRAME_HEADER_LEN);
    assert!(body.len() <= FRAME_BODY_LEN_MAX, "a commit group exceeds the frame limit");
    let body_len = (body.len() as u32).to_le_bytes();
    let format_and_reserved = [FRAME_FORMAT, 0, 0, 0];
    let synced = synced_offset.to_le_bytes();
    let body_checksum = checksum(body).to_le_bytes();
    let field_bytes = [&body_len[..], &format_and_reserved, &synced, &body_checksum];
    let mut fields = [0u8; FRAME_HEADER_LEN - CHECKSUM_LEN];
    for (to, from) in fields.iter_mut().zip(field_bytes.into_iter().flatten()) {
        *to = *from;
    }
    let header_checksum = checksum(&fields).to_le_bytes();
    for (to, from) in header.iter_mut().zip(header_checksum.iter().chain(&fields)) {
        *to = *from;
    }
}

const _: () = assert!(
    FRAME_HEADER_LEN - CHECKSUM_LEN == size_of::<u32>() + 4 + size_of::<u64>() + CHECKSUM_LEN
);

/// A frame that decoded: its body and where the next frame starts.
struct Frame<'a> {
    body: &'a [u8],
    synced_offset: u64,
    end: usize,
}

/// Decodes the frame at `offset`, or `None` if the bytes there are not a whole, intact frame.
fn decode_frame(log: &[u8], offset: usize) -> Option<Frame<'_>> {
    let header = log.get(offset..offset.checked_add(FRAME_HEADER_LEN)?)?;
    let (stored_checksum, fields) = header.split_at(CHECKSUM_LEN);
    if u64::from_le_bytes(stored_checksum.try_into().ok()?) != checksum(fields) {
        return None;
    }
    let field = |from: usize, to: usize| header.get(from..to);
    let body_len = u32::from_le_bytes(field(BODY_LEN_OFFSET, FORMAT_OFFSET)?.try_into().ok()?);
    let format = *header.get(FORMAT_OFFSET)?;
    let reserved = field(RESERVED_OFFSET, SYNCED_OFFSET_OFFSET)?;
    let synced =
        u64::from_le_bytes(field(SYNCED_OFFSET_OFFSET, BODY_CHECKSUM_OFFSET)?.try_into().ok()?);
    let body_checksum =
        u64::from_le_bytes(field(BODY_CHECKSUM_OFFSET, FRAME_HEADER_LEN)?.try_into().ok()?);
    let body_len = body_len as usize;
    if format != FRAME_FORMAT || reserved.iter().any(|&b| b != 0) || body_len > FRAME_BODY_LEN_MAX {
        return None;
    }
    let body_start = offset + FRAME_HEADER_LEN;
    let body = log.get(body_start..body_start.checked_add(body_len)?)?;
    (checksum(body) == body_checksum).then_some(Frame {
        body,
        synced_offset: synced,
        end: body_start + body_len,
    })
}

/// The log being appended to, owned by the commit leader (behind a mutex the periodic syncer
/// also takes).
#[derive(Debug)]
pub(crate) struct ActiveLog {
    pub number: u64,
    pub file: Box<dyn IoFile>,
    /// Where the next frame goes: the bytes before it are whole frames.
    pub offset_end: u64,
    /// Every byte before it is durable.
    pub offset_synced: u64,
}

impl ActiveLog {
    /// Creates log `number` in `dir` and makes its directory entry durable, so that synced
    /// appends to it survive a crash.
    pub(crate) fn create(io: &dyn Io, dir: &Path, number: u64) -> Result<ActiveLog> {
        let file = io.create_new(&dir.join(log_file_name(number)))?;
        io.sync_dir(dir)?;
        Ok(ActiveLog { number, file, offset_end: 0, offset_synced: 0 })
    }
}

/// What replaying one log found.
#[derive(Debug)]
pub(crate) struct Replayed {
    pub frame_count: u64,
    pub version_max: Option<Version>,
}

/// Replays log `number` into `memtable`. A torn end of the last log (`is_last`) was never
/// acknowledged: the file is truncated to its last intact frame. Any other damage is
/// [`Error::Corruption`].
pub(crate) fn replay(
    io: &dyn Io,
    dir: &Path,
    number: u64,
    is_last: bool,
    memtable: &Memtable,
) -> Result<Replayed> {
    let path = dir.join(log_file_name(number));
    let file = io.open_read_write(&path)?;
    let len = usize::try_from(file.len_bytes()?).unwrap_or(usize::MAX);
    let mut log = Vec::new();
    log.try_reserve_exact(len).map_err(|_| corruption(&path, 0, "log file too large to read"))?;
    log.resize(len, 0);
    file.read_exact_at(&mut log, 0)?;
    let mut replayed = Replayed { frame_count: 0, version_max: None };
    let mut offset = 0;
    while offset < log.len() {
        let Some(frame) = decode_frame(&log, offset) else { break };
        let version_max = apply_frame(&frame, memtable).map_err(|(at, what)| {
            corruption(&path, (offset + FRAME_HEADER_LEN + at) as u64, what)
        })?;
        replayed.frame_count += 1;
        replayed.version_max = replayed.version_max.max(version_max);
        offset = frame.end;
    }
    if offset < log.len() {
        classify_damage(&log, offset).map_err(|what| corruption(&path, offset as u64, what))?;
        if !is_last {
            return Err(corruption(
                &path,
                offset as u64,
                "a log older than the newest one is torn",
            ));
        }
        file.set_len(offset as u64)?;
        file.sync_data()?;
    }
    Ok(replayed)
}

/// Inserts a frame's records into the memtable; returns the newest version, or where in the
/// body a record failed to decode (a frame whose checksum matched holds whole records, so that
/// is corruption, not a torn write).
fn apply_frame(frame: &Frame<'_>, memtable: &Memtable) -> Result<Option<Version>, (usize, String)> {
    let mut version_max = None;
    let mut reader = LogReader::new(frame.body);
    for (_, record) in reader.by_ref() {
        let Ok(record) = record else { break };
        for entry in record.entries() {
            memtable.insert(entry.key, entry.version, entry.value);
        }
        version_max = version_max.max(Some(record.version()));
    }
    match reader.end() {
        LogEnd::Clean => Ok(version_max),
        LogEnd::Tail { offset, cause } | LogEnd::Corrupt { offset, cause, .. } => {
            Err((offset, format!("record in an intact frame does not decode: {cause}")))
        }
        _ => Err((0, "record in an intact frame does not decode".into())),
    }
}

/// Decides whether damage at `offset` is a torn unsynced tail (`Ok`) or corruption of bytes
/// that were durable (`Err`): the latter if an intact frame after it says they were synced.
fn classify_damage(log: &[u8], offset: usize) -> Result<(), &'static str> {
    let later = (offset + 1..log.len()).find_map(|start| decode_frame(log, start));
    match later {
        Some(frame) if frame.synced_offset > offset as u64 => {
            Err("damaged frame in the synced part of the log")
        }
        _ => Ok(()),
    }
}

fn corruption(path: &Path, offset: u64, what: impl Into<String>) -> Error {
    Error::Corruption { file: path.to_path_buf(), offset, what: what.into() }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use super::*;

    fn frame(body: &[u8], synced_offset: u64) -> Vec<u8> {
        let mut bytes = vec![0; FRAME_HEADER_LEN];
        bytes.extend_from_slice(body);
        seal_frame(&mut bytes, synced_offset);
        bytes
    }

    #[test]
    fn frames_round_trip_and_every_flipped_bit_is_caught() {
        let bytes = frame(b"some records", 7);
        let decoded = decode_frame(&bytes, 0).unwrap();
        assert_eq!(
            (decoded.body, decoded.synced_offset, decoded.end),
            (&b"some records"[..], 7, bytes.len())
        );
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_frame(&flipped, 0).is_none(), "bit {bit}");
        }
        for len in 0..bytes.len() {
            assert!(decode_frame(&bytes[..len], 0).is_none(), "truncated to {len}");
        }
    }

    #[test]
    fn damage_is_torn_unless_a_later_frame_vouches_for_it() {
        let first = frame(b"first", 0);
        let second_start = first.len() as u64;
        // A later frame written when only the first frame was durable: damage to the
        // second frame is a torn write.
        let third_unsynced = frame(b"third", second_start);
        // A later frame written after the second was synced: damage to it is corruption.
        let mut second = frame(b"second", second_start);
        let third_synced = frame(b"third", second_start + second.len() as u64);
        second[FRAME_HEADER_LEN] ^= 1;
        let torn = [first.clone(), second.clone(), third_unsynced].concat();
        assert_eq!(classify_damage(&torn, first.len()), Ok(()));
        let corrupt = [first.clone(), second, third_synced].concat();
        assert!(classify_damage(&corrupt, first.len()).is_err());
        let zeroed_tail = [first.clone(), vec![0; 700]].concat();
        assert_eq!(classify_damage(&zeroed_tail, first.len()), Ok(()));
    }
}
