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
//!
//! A log ends with a seal (a frame with an empty body) before a newer log is created, so that
//! an older log cut short at a frame boundary, which no frame checksum can tell, is corruption
//! too: an older log must end with its seal. A clean close seals the newest log as well, so
//! that damage to its last frames is corruption (the intact seal after them says they were
//! synced) rather than a torn append.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::path::Path;

use zverse_core::Version;
use zverse_core::checksum::{CHECKSUM_LEN, checksum, checksum_with_seed};
use zverse_core::record::{LogEnd, LogReader};

use crate::error::{Error, Result};
use crate::io::{Io, IoFile};
use crate::memtable::Memtable;

/// The file name of log `number`.
pub(crate) fn log_file_name(number: u64) -> String {
    format!("{number:020}.log")
}

/// The log file header: magic, the log's nonce, and a checksum of both.
const LOG_MAGIC: [u8; 8] = *b"ZVERSELG";
/// Bytes of the log file header; the first frame starts here.
pub(crate) const LOG_HEADER_LEN: usize = LOG_MAGIC.len() + size_of::<u64>() + CHECKSUM_LEN;

/// Offset of the header checksum: XXH3 of the header bytes after it, seeded with the log's
/// nonce, so that no bytes a user stored can pass for a frame.
const HEADER_CHECKSUM_OFFSET: usize = 0;
/// Offset of the body length (`u32`).
const BODY_LEN_OFFSET: usize = HEADER_CHECKSUM_OFFSET + CHECKSUM_LEN;
/// Offset of the frame format byte.
const FORMAT_OFFSET: usize = BODY_LEN_OFFSET + size_of::<u32>();
/// Offset of three reserved zero bytes.
const RESERVED_OFFSET: usize = FORMAT_OFFSET + 1;
/// Offset of the frame's own offset in the log (`u64`).
const FRAME_OFFSET_OFFSET: usize = RESERVED_OFFSET + 3;
/// Offset of the synced offset (`u64`).
const SYNCED_OFFSET_OFFSET: usize = FRAME_OFFSET_OFFSET + size_of::<u64>();
/// Offset of the body checksum: XXH3 of the body.
const BODY_CHECKSUM_OFFSET: usize = SYNCED_OFFSET_OFFSET + size_of::<u64>();
/// Bytes of a frame header.
pub(crate) const FRAME_HEADER_LEN: usize = BODY_CHECKSUM_OFFSET + CHECKSUM_LEN;
/// The frame format written in every header.
const FRAME_FORMAT: u8 = 1;
/// The largest body a frame may have: a full group plus one record of the largest size.
const FRAME_BODY_LEN_MAX: usize = 256 << 20;

const _: () = assert!(LOG_HEADER_LEN == 24);
const _: () = assert!(FRAME_HEADER_LEN == 40);
const _: () = assert!(FRAME_BODY_LEN_MAX <= u32::MAX as usize);
const _: () = assert!(
    FRAME_BODY_LEN_MAX >= crate::commit::GROUP_BYTES_MAX + zverse_core::record::RECORD_LEN_MAX
);

/// A fresh random nonce for a new log (`SipHash` keys come from the OS's randomness).
fn new_nonce() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::process::id())
}

/// The log file header for `nonce`.
fn encode_log_header(nonce: u64) -> [u8; LOG_HEADER_LEN] {
    let mut header = [0u8; LOG_HEADER_LEN];
    let parts = [&LOG_MAGIC[..], &nonce.to_le_bytes()];
    for (to, from) in header.iter_mut().zip(parts.into_iter().flatten()) {
        *to = *from;
    }
    let sum = checksum(header.get(..LOG_HEADER_LEN - CHECKSUM_LEN).unwrap_or_default());
    for (to, from) in header.iter_mut().skip(LOG_HEADER_LEN - CHECKSUM_LEN).zip(sum.to_le_bytes()) {
        *to = from;
    }
    header
}

/// The nonce in a log file header, or `None` if the header is not intact.
fn decode_log_header(log: &[u8]) -> Option<u64> {
    let header = log.get(..LOG_HEADER_LEN)?;
    let (covered, sum) = header.split_at(LOG_HEADER_LEN - CHECKSUM_LEN);
    let (magic, nonce) = covered.split_at(LOG_MAGIC.len());
    let intact =
        magic == LOG_MAGIC && u64::from_le_bytes(sum.try_into().ok()?) == checksum(covered);
    let nonce = u64::from_le_bytes(nonce.try_into().ok()?);
    intact.then_some(nonce)
}

/// The checksum of a frame header's fields under the log's nonce.
fn header_checksum(fields: &[u8], nonce: u64) -> u64 {
    checksum_with_seed(fields, nonce)
}

/// Fills in the frame header at the start of `frame`, whose body follows it, for a frame
/// written at `frame_offset` of the log with nonce `nonce`.
pub(crate) fn seal_frame(frame: &mut [u8], nonce: u64, frame_offset: u64, synced_offset: u64) {
    assert!(frame.len() >= FRAME_HEADER_LEN, "a frame starts with room for its header");
    let (header, body) = frame.split_at_mut(FRAME_HEADER_LEN);
    assert!(body.len() <= FRAME_BODY_LEN_MAX, "a commit group exceeds the frame limit");
    let body_len = (body.len() as u32).to_le_bytes();
    let format_and_reserved = [FRAME_FORMAT, 0, 0, 0];
    let offsets = [frame_offset.to_le_bytes(), synced_offset.to_le_bytes()];
    let body_checksum = checksum(body).to_le_bytes();
    let field_bytes =
        [&body_len[..], &format_and_reserved, &offsets[0], &offsets[1], &body_checksum];
    let mut fields = [0u8; FRAME_HEADER_LEN - CHECKSUM_LEN];
    for (to, from) in fields.iter_mut().zip(field_bytes.into_iter().flatten()) {
        *to = *from;
    }
    let sum = header_checksum(&fields, nonce).to_le_bytes();
    for (to, from) in header.iter_mut().zip(sum.iter().chain(&fields)) {
        *to = *from;
    }
}

const _: () = assert!(
    FRAME_HEADER_LEN - CHECKSUM_LEN == size_of::<u32>() + 4 + 2 * size_of::<u64>() + CHECKSUM_LEN
);

/// The seal that ends a log before a newer one is created: a frame with an empty body at
/// `frame_offset`.
fn seal(nonce: u64, frame_offset: u64, synced_offset: u64) -> [u8; FRAME_HEADER_LEN] {
    let mut frame = [0u8; FRAME_HEADER_LEN];
    seal_frame(&mut frame, nonce, frame_offset, synced_offset);
    frame
}

/// A frame that decoded: its body and where the next frame starts.
struct Frame<'a> {
    body: &'a [u8],
    synced_offset: u64,
    end: usize,
}

/// What the bytes at an offset are.
enum Decoded<'a> {
    /// An intact frame.
    Frame(Frame<'a>),
    /// An intact header whose body is missing or damaged: the frame's extent is known.
    TornBody { end: usize },
    /// Not a frame header.
    Garbage,
}

/// Decodes the frame at `offset` of a log with nonce `nonce`.
fn decode_frame(log: &[u8], offset: usize, nonce: u64) -> Decoded<'_> {
    let Some(header) = offset.checked_add(FRAME_HEADER_LEN).and_then(|end| log.get(offset..end))
    else {
        return Decoded::Garbage;
    };
    match decode_header(header, offset, nonce) {
        None => Decoded::Garbage,
        Some((body_len, synced_offset, body_checksum)) => {
            let body_start = offset + FRAME_HEADER_LEN;
            let end = body_start + body_len;
            match log.get(body_start..end) {
                Some(body) if checksum(body) == body_checksum => {
                    Decoded::Frame(Frame { body, synced_offset, end })
                }
                _ => Decoded::TornBody { end },
            }
        }
    }
}

/// The body length, synced offset and body checksum of an intact frame header at `offset`.
fn decode_header(header: &[u8], offset: usize, nonce: u64) -> Option<(usize, u64, u64)> {
    let (stored, fields) = header.split_at(CHECKSUM_LEN);
    if u64::from_le_bytes(stored.try_into().ok()?) != header_checksum(fields, nonce) {
        return None;
    }
    let field = |from: usize, to: usize| header.get(from..to);
    let u64_at = |from: usize| Some(u64::from_le_bytes(field(from, from + 8)?.try_into().ok()?));
    let body_len = u32::from_le_bytes(field(BODY_LEN_OFFSET, FORMAT_OFFSET)?.try_into().ok()?);
    let format = *header.get(FORMAT_OFFSET)?;
    let reserved = field(RESERVED_OFFSET, FRAME_OFFSET_OFFSET)?;
    let frame_offset = u64_at(FRAME_OFFSET_OFFSET)?;
    let synced_offset = u64_at(SYNCED_OFFSET_OFFSET)?;
    let body_checksum = u64_at(BODY_CHECKSUM_OFFSET)?;
    let well_formed = format == FRAME_FORMAT
        && reserved.iter().all(|&b| b == 0)
        && (body_len as usize) <= FRAME_BODY_LEN_MAX
        && frame_offset == offset as u64
        && synced_offset <= frame_offset;
    well_formed.then_some((body_len as usize, synced_offset, body_checksum))
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
    /// Seeds the frame header checksums of this log.
    pub nonce: u64,
}

impl ActiveLog {
    /// Creates log `number` in `dir` and makes its directory entry durable, so that synced
    /// appends to it survive a crash.
    pub(crate) fn create(io: &dyn Io, dir: &Path, number: u64) -> Result<ActiveLog> {
        let file = io.create_new(&dir.join(log_file_name(number)))?;
        let nonce = new_nonce();
        file.write_all_at_and_sync(&[&encode_log_header(nonce)], 0)?;
        io.sync_dir(dir)?;
        let end = LOG_HEADER_LEN as u64;
        Ok(ActiveLog { number, file, offset_end: end, offset_synced: end, nonce })
    }

    /// The newest log of a database, reopened for appends after its last intact frame at
    /// `offset_end`, every byte before which is durable.
    fn reopened(number: u64, file: Box<dyn IoFile>, offset_end: usize, nonce: u64) -> ActiveLog {
        let end = offset_end as u64;
        ActiveLog { number, file, offset_end: end, offset_synced: end, nonce }
    }

    /// Appends the seal that ends this log (not synced: the caller syncs the log next).
    pub(crate) fn append_seal(&mut self) -> std::io::Result<()> {
        let seal = seal(self.nonce, self.offset_end, self.offset_synced);
        self.file.write_all_at(&seal, self.offset_end)?;
        self.offset_end += seal.len() as u64;
        Ok(())
    }
}

/// What replaying one log found.
#[derive(Debug)]
pub(crate) struct Replayed {
    /// Frames holding writes (seals and other empty frames not counted).
    pub frame_count: u64,
    pub version_max: Option<Version>,
    /// Where the log's intact frames end.
    pub offset_end: u64,
    /// The newest log, ready for appends after its last intact frame (`Mode::Reuse` only).
    pub active: Option<ActiveLog>,
}

/// How `replay` treats a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A log older than the newest: it must end with its seal; any damage is corruption.
    Older,
    /// The newest log, to be appended to next: a torn tail is truncated, the rest synced,
    /// and the log is returned open for appends.
    Reuse,
    /// The newest log of a read-only open: read only. Damage anywhere after the last intact
    /// frame is the end of what is seen, since a writer in another process may be appending
    /// to it right now; nothing is truncated, written or synced.
    ReadOnly,
}

/// Replays log `number` into `memtable`. See [`Mode`] for the newest log; an older log that
/// is damaged or does not end with its seal is [`Error::Corruption`].
pub(crate) fn replay(
    io: &dyn Io,
    dir: &Path,
    number: u64,
    mode: Mode,
    memtable: &Memtable,
) -> Result<Replayed> {
    let path = dir.join(log_file_name(number));
    let file = if mode == Mode::Reuse { io.open_read_write(&path)? } else { io.open_read(&path)? };
    let len = usize::try_from(file.len_bytes()?).unwrap_or(usize::MAX);
    let mut log = Vec::new();
    log.try_reserve_exact(len).map_err(|_| corruption(&path, 0, "log file too large to read"))?;
    log.resize(len, 0);
    file.read_exact_at(&mut log, 0)?;
    let mut replayed = Replayed { frame_count: 0, version_max: None, offset_end: 0, active: None };
    let Some(nonce) = decode_log_header(&log) else {
        // A log's header is synced before the manifest records the log, so a recorded log
        // without one was damaged after (an emptied newest log would otherwise drop its
        // acknowledged writes without a word).
        return Err(corruption(&path, 0, "log file header is damaged"));
    };
    let mut offset = LOG_HEADER_LEN;
    let mut sealed = false;
    while let Decoded::Frame(frame) = decode_frame(&log, offset, nonce) {
        let version_max = apply_frame(&frame, memtable).map_err(|(at, what)| {
            corruption(&path, (offset + FRAME_HEADER_LEN + at) as u64, what)
        })?;
        sealed = frame.body.is_empty();
        replayed.frame_count += u64::from(!sealed);
        replayed.version_max = replayed.version_max.max(version_max);
        offset = frame.end;
    }
    replayed.offset_end = offset as u64;
    match mode {
        Mode::ReadOnly => Ok(replayed),
        Mode::Older => {
            let what = if offset < log.len() {
                classify_damage(&log, offset, nonce)
                    .map_err(|what| corruption(&path, offset as u64, what))?;
                "a log older than the newest one is torn"
            } else if !sealed {
                "a log older than the newest one does not end with its seal: it was cut short"
            } else {
                return Ok(replayed);
            };
            Err(corruption(&path, offset as u64, what))
        }
        Mode::Reuse => {
            if offset < log.len() {
                classify_damage(&log, offset, nonce)
                    .map_err(|what| corruption(&path, offset as u64, what))?;
                file.set_len(offset as u64)?;
            }
            // Every intact frame is made durable before a frame written after it says so.
            file.sync_data()?;
            replayed.active = Some(ActiveLog::reopened(number, file, offset, nonce));
            Ok(replayed)
        }
    }
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
    if let Some(version) = version_max {
        memtable.cover(version);
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
/// When the damaged frame's header is intact, its body is skipped whole (the body's bytes are
/// records, not frames); otherwise every later offset is tried.
fn classify_damage(log: &[u8], offset: usize, nonce: u64) -> Result<(), &'static str> {
    let search_from = match decode_frame(log, offset, nonce) {
        Decoded::TornBody { end } => end,
        Decoded::Frame(_) | Decoded::Garbage => offset + 1,
    };
    let later = (search_from..log.len()).find_map(|start| match decode_frame(log, start, nonce) {
        Decoded::Frame(frame) => Some(frame),
        Decoded::TornBody { .. } | Decoded::Garbage => None,
    });
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

    const NONCE: u64 = 0x5EED;

    /// A frame at `frame_offset` holding `body`.
    fn frame(body: &[u8], frame_offset: usize, synced_offset: usize) -> Vec<u8> {
        let mut bytes = vec![0; FRAME_HEADER_LEN];
        bytes.extend_from_slice(body);
        seal_frame(&mut bytes, NONCE, frame_offset as u64, synced_offset as u64);
        bytes
    }

    fn intact(log: &[u8], offset: usize) -> Option<Frame<'_>> {
        match decode_frame(log, offset, NONCE) {
            Decoded::Frame(frame) => Some(frame),
            _ => None,
        }
    }

    #[test]
    fn frames_round_trip_and_every_flipped_bit_is_caught() {
        let bytes = frame(b"some records", 0, 0);
        let decoded = intact(&bytes, 0).unwrap();
        assert_eq!(
            (decoded.body, decoded.synced_offset, decoded.end),
            (&b"some records"[..], 0, bytes.len())
        );
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(intact(&flipped, 0).is_none(), "bit {bit}");
        }
        for len in 0..bytes.len() {
            assert!(intact(&bytes[..len], 0).is_none(), "truncated to {len}");
        }
        assert!(
            matches!(decode_frame(&bytes, 0, NONCE + 1), Decoded::Garbage),
            "another log's nonce"
        );
        let moved = [vec![0; 8], bytes].concat();
        assert!(intact(&moved, 8).is_none(), "a frame is valid only at its own offset");
    }

    #[test]
    fn log_headers_round_trip_and_reject_damage() {
        let header = encode_log_header(42);
        assert_eq!(decode_log_header(&header), Some(42));
        for byte in 0..header.len() {
            let mut damaged = header;
            damaged[byte] ^= 0x10;
            assert_eq!(decode_log_header(&damaged), None, "byte {byte}");
        }
        assert_eq!(decode_log_header(&header[..LOG_HEADER_LEN - 1]), None);
    }

    #[test]
    fn damage_is_torn_unless_a_later_frame_vouches_for_it() {
        let first = frame(b"first", 0, 0);
        let second_start = first.len();
        let second_body = b"second";
        let third_start = second_start + FRAME_HEADER_LEN + second_body.len();
        // A later frame written when only the first frame was durable: damage to the
        // second frame is a torn write.
        let third_unsynced = frame(b"third", third_start, second_start);
        // A later frame written after the second was synced: damage to it is corruption.
        let third_synced = frame(b"third", third_start, third_start);
        let mut second = frame(second_body, second_start, second_start);
        second[FRAME_HEADER_LEN] ^= 1;
        let torn = [first.clone(), second.clone(), third_unsynced].concat();
        assert_eq!(classify_damage(&torn, second_start, NONCE), Ok(()));
        let corrupt = [first.clone(), second, third_synced].concat();
        assert!(classify_damage(&corrupt, second_start, NONCE).is_err());
        let zeroed_tail = [first.clone(), vec![0; 700]].concat();
        assert_eq!(classify_damage(&zeroed_tail, second_start, NONCE), Ok(()));
    }

    #[test]
    fn bytes_inside_a_torn_frame_body_are_never_taken_for_a_frame() {
        let first = frame(b"first", 0, 0);
        let start = first.len();
        // A user value holding a perfect frame image for the position it lands at, claiming
        // everything was synced: the enclosing frame's header is intact, so its body is
        // skipped whole.
        let forged_at = start + FRAME_HEADER_LEN + 3;
        let forged = frame(b"", forged_at, forged_at);
        let body = [b"abc".to_vec(), forged, vec![b'z'; 50]].concat();
        let mut torn = frame(&body, start, start);
        let last = torn.len() - 1;
        torn[last] ^= 1;
        let log = [first, torn].concat();
        assert_eq!(classify_damage(&log, start, NONCE), Ok(()));
    }
}
