//! Frames: the header codec, the walk over a log's intact frames, and the records of a body.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use super::damage::{LogPosition, Tail, Verdict, classify, verdict};
use super::{
    FRAME_BODY_LEN_MAX, FRAME_FORMAT, FRAME_HEADER_LEN, LOG_HEADER_LEN, RESERVED_LEN,
    decode_log_header,
};
use crate::bytes::{Reader, fill_slot};
use crate::checksum::{CHECKSUM_LEN, checksum, checksum_with_seed};
use crate::error::Corruption;
use crate::record::{DecodeError, Record, decode_from};

/// Fills in the frame header at the start of `frame`, whose body follows it, for a frame
/// written at `frame_offset` of the log with nonce `nonce`, when every byte of the log before
/// `synced_offset` was durable.
///
/// `frame` must start with [`FRAME_HEADER_LEN`] bytes of room and its body must be at most
/// [`FRAME_BODY_LEN_MAX`]: the engine sizes its commit groups so (asserted).
pub fn seal_frame(frame: &mut [u8], nonce: u64, frame_offset: u64, synced_offset: u64) {
    assert!(frame.len() >= FRAME_HEADER_LEN, "a frame starts with room for its header");
    let (header, body) = frame.split_at_mut(FRAME_HEADER_LEN);
    assert!(body.len() <= FRAME_BODY_LEN_MAX, "a commit group exceeds the frame limit");
    let body_checksum = checksum(body);
    let (header_checksum, fields) = header.split_at_mut(CHECKSUM_LEN);
    fill_slot(fields, |writer| {
        writer.u32(body.len() as u32)?.u8(FRAME_FORMAT)?.bytes(&[0; RESERVED_LEN])?;
        writer.u64(frame_offset)?.u64(synced_offset)?.u64(body_checksum).map(drop)
    });
    let sum = checksum_with_seed(fields, nonce);
    fill_slot(header_checksum, |writer| writer.u64(sum).map(drop));
}

/// The seal that ends a log before a newer one is created: a frame with an empty body at
/// `frame_offset`.
#[must_use]
pub fn seal(nonce: u64, frame_offset: u64, synced_offset: u64) -> [u8; FRAME_HEADER_LEN] {
    let mut frame = [0u8; FRAME_HEADER_LEN];
    seal_frame(&mut frame, nonce, frame_offset, synced_offset);
    frame
}

/// An intact frame: its header and body checksums match, and it sits at its own offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    offset: usize,
    body: &'a [u8],
    synced_offset: u64,
    end: usize,
}

impl<'a> Frame<'a> {
    /// Where the frame starts in the log.
    #[must_use]
    pub const fn offset(&self) -> usize {
        self.offset
    }

    /// The frame's body: records back to back (empty for a seal).
    #[must_use]
    pub const fn body(&self) -> &'a [u8] {
        self.body
    }

    /// Every byte of the log before it was durable when the frame was written.
    #[must_use]
    pub const fn synced_offset(&self) -> u64 {
        self.synced_offset
    }

    /// Where the next frame starts.
    #[must_use]
    pub const fn end(&self) -> usize {
        self.end
    }

    /// Whether this is a seal: a frame with an empty body.
    #[must_use]
    pub const fn is_seal(&self) -> bool {
        self.body.is_empty()
    }

    /// The records of the body, front to back.
    #[must_use]
    pub const fn records(&self) -> Records<'a> {
        Records::new(self.body)
    }
}

/// What the bytes at an offset of a log are.
pub(super) enum Decoded<'a> {
    /// An intact frame.
    Frame(Frame<'a>),
    /// An intact header whose body is missing or damaged: the frame's extent is known.
    TornBody { end: usize },
    /// Not a frame header.
    Garbage,
}

/// Decodes the frame at `offset` of a log with nonce `nonce`.
pub(super) fn decode_frame(log: &[u8], offset: usize, nonce: u64) -> Decoded<'_> {
    let Some(header) = offset.checked_add(FRAME_HEADER_LEN).and_then(|end| log.get(offset..end))
    else {
        return Decoded::Garbage;
    };
    let Some((body_len, synced_offset, body_checksum)) = decode_header(header, offset, nonce)
    else {
        return Decoded::Garbage;
    };
    let body_start = offset + FRAME_HEADER_LEN;
    let end = body_start + body_len;
    match log.get(body_start..end) {
        Some(body) if checksum(body) == body_checksum => {
            Decoded::Frame(Frame { offset, body, synced_offset, end })
        }
        _ => Decoded::TornBody { end },
    }
}

/// The body length, synced offset and body checksum of an intact frame header at `offset`.
fn decode_header(header: &[u8], offset: usize, nonce: u64) -> Option<(usize, u64, u64)> {
    let (stored, fields) = header.split_at_checked(CHECKSUM_LEN)?;
    if Reader::new(stored, "").u64().ok()? != checksum_with_seed(fields, nonce) {
        return None;
    }
    let mut reader = Reader::new(fields, "frame header truncated");
    let body_len = reader.u32().ok()? as usize;
    let format = reader.u8().ok()?;
    let reserved = reader.array::<RESERVED_LEN>().ok()?;
    let frame_offset = reader.u64().ok()?;
    let synced_offset = reader.u64().ok()?;
    let body_checksum = reader.u64().ok()?;
    let well_formed = format == FRAME_FORMAT
        && reserved == [0; RESERVED_LEN]
        && body_len <= FRAME_BODY_LEN_MAX
        && frame_offset == offset as u64
        && synced_offset <= frame_offset;
    well_formed.then_some((body_len, synced_offset, body_checksum))
}

/// The intact frames of a log buffer, front to back, up to the first offset that holds none;
/// [`Frames::end`] then applies the damage rule to what follows.
///
/// ```
/// # use zverse_core::log::{Frames, LogPosition, Verdict, encode_log_header, seal};
/// let mut log = encode_log_header(7).to_vec();
/// log.extend_from_slice(&seal(7, log.len() as u64, 0));
/// let mut frames = Frames::new(&log)?;
/// assert!(frames.next().is_some_and(|frame| frame.is_seal()));
/// assert_eq!(frames.end(LogPosition::Older).verdict, Verdict::End);
/// # Ok::<(), zverse_core::Corruption>(())
/// ```
#[derive(Clone, Debug)]
pub struct Frames<'a> {
    log: &'a [u8],
    nonce: u64,
    /// Where the next frame starts: the bytes before it are the header and intact frames.
    offset: usize,
    /// Whether the last frame yielded was a seal.
    sealed: bool,
}

impl<'a> Frames<'a> {
    /// The frames of `log`, a whole log file. A log whose header is not intact is corruption
    /// at offset 0: the header is synced before the manifest records the log.
    pub fn new(log: &'a [u8]) -> Result<Frames<'a>, Corruption> {
        let nonce =
            decode_log_header(log).ok_or(Corruption::new(0, "log file header is damaged"))?;
        Ok(Frames { log, nonce, offset: LOG_HEADER_LEN, sealed: false })
    }

    /// The log's nonce, which seeds its frame header checksums.
    #[must_use]
    pub const fn nonce(&self) -> u64 {
        self.nonce
    }

    /// Where the next frame starts.
    #[must_use]
    pub const fn offset(&self) -> usize {
        self.offset
    }

    /// Reads the frames not yet yielded, then classifies what follows the last one and looks
    /// up the verdict for a log at `position` ([`super::RULES`]).
    #[must_use]
    pub fn end(mut self, position: LogPosition) -> LogEnd {
        while self.next().is_some() {}
        let tail = classify(self.log, self.offset, self.nonce, self.sealed);
        LogEnd { offset: self.offset, tail, verdict: verdict(tail, position) }
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Frame<'a>;

    fn next(&mut self) -> Option<Frame<'a>> {
        let Decoded::Frame(frame) = decode_frame(self.log, self.offset, self.nonce) else {
            return None;
        };
        self.offset = frame.end;
        self.sealed = frame.is_seal();
        Some(frame)
    }
}

/// How a log ends: where its intact frames end, what follows them, and what to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogEnd {
    /// Where the intact frames end: the log's end, or where the damage starts.
    pub offset: usize,
    /// What follows them.
    pub tail: Tail,
    /// What the rule says to do about it.
    pub verdict: Verdict,
}

/// The records of a frame's body, front to back. The body's checksum matched, so it holds
/// whole records: one that does not decode is corruption ([`BadRecord`]), and nothing is
/// yielded after it.
#[derive(Clone, Debug)]
pub struct Records<'a> {
    body: &'a [u8],
    offset: usize,
}

/// A record in an intact frame that does not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadRecord {
    /// Where the record starts, from the start of the body.
    pub offset: usize,
    /// Why it does not decode.
    pub cause: DecodeError,
}

impl<'a> Records<'a> {
    /// The records of `body`, bytes meant to hold records back to back.
    #[must_use]
    pub const fn new(body: &'a [u8]) -> Records<'a> {
        Records { body, offset: 0 }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, BadRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.body.get(self.offset..).filter(|rest| !rest.is_empty())?;
        match decode_from(rest) {
            Ok((record, record_len)) => {
                self.offset += record_len;
                Some(Ok(record))
            }
            Err(cause) => {
                let bad = BadRecord { offset: self.offset, cause };
                self.offset = self.body.len();
                Some(Err(bad))
            }
        }
    }
}

impl core::iter::FusedIterator for Records<'_> {}
