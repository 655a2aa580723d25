//! Reading a whole log buffer, record by record, and classifying how it ends.
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

use super::decoder::decode_from;
use super::header::{HEADER_LEN, Header};
use super::{DecodeError, Record};
use crate::error::Corruption;

/// The records of a log buffer, front to back, each with its offset in the buffer.
///
/// Yields `(offset, Ok(record))` for each record, then stops after the first error, which it
/// yields as `(offset, Err(error))` (corruption offsets relative to the log buffer). After
/// the last item, [`LogReader::end`] says what stopped it and what recovery must do.
///
/// ```
/// # use zverse_core::{Version, record::{LogEnd, LogReader, encode_put_into}};
/// let mut log = [0u8; 256]; // a preallocated log: zeros after the records
/// let len = encode_put_into(&mut log, Version::new(1), b"key", b"value").unwrap();
/// let mut reader = LogReader::new(&log);
/// for (offset, record) in &mut reader {
///     let Ok(record) = record else { break };
///     assert_eq!((offset, record.version()), (0, Version::new(1)));
/// }
/// assert!(matches!(reader.end(), LogEnd::Tail { offset, .. } if offset == len));
/// ```
#[derive(Clone, Debug)]
pub struct LogReader<'a> {
    log: &'a [u8],
    /// Offset of the next record.
    offset: usize,
    /// The first error and its offset, once met; nothing is yielded after it.
    stop: Option<(usize, DecodeError)>,
}

/// How a log buffer ends: the classification recovery acts on.
///
/// The rule: records are valid up to the first one that does not decode. If no valid record
/// follows that one, the rest is a tail a crash left behind ([`LogEnd::Tail`]): a torn write,
/// or zeros. If a valid record follows, acknowledged data may sit after the damage, so the
/// log is corrupt ([`LogEnd::Corrupt`]), never silently cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogEnd {
    /// Every byte belongs to a valid record.
    Clean,
    /// Valid records end at `offset`; what follows holds no valid record. In the newest log
    /// this is a torn write (or preallocated zeros): recovery truncates at `offset`, or
    /// appends from there.
    Tail {
        /// Where the valid records end.
        offset: usize,
        /// Why the bytes at `offset` are not a record.
        cause: DecodeError,
    },
    /// The record at `offset` does not decode, yet a valid record starts at `valid_offset`.
    Corrupt {
        /// Where the bad record starts.
        offset: usize,
        /// Why it does not decode.
        cause: DecodeError,
        /// Where the first valid record after it starts.
        valid_offset: usize,
    },
}

impl<'a> LogReader<'a> {
    /// A reader over the whole of `log`.
    #[must_use]
    pub const fn new(log: &'a [u8]) -> LogReader<'a> {
        LogReader { log, offset: 0, stop: None }
    }

    /// Offset of the next record: after the last record yielded.
    #[must_use]
    pub const fn offset(&self) -> usize {
        self.offset
    }

    /// Reads the records not yet yielded, then classifies the end of the log (see [`LogEnd`]).
    ///
    /// On an error, this scans the bytes after the bad record for a valid one: it skips a
    /// record whose header is intact by the header's length (so a value that happens to hold
    /// an encoded record is not mistaken for one) and otherwise tries every byte offset.
    #[must_use]
    pub fn end(mut self) -> LogEnd {
        while self.next().is_some() {}
        match self.stop {
            None => LogEnd::Clean,
            Some((offset, cause)) => match valid_record_after(self.log, offset) {
                None => LogEnd::Tail { offset, cause },
                Some(valid_offset) => LogEnd::Corrupt { offset, cause, valid_offset },
            },
        }
    }
}

impl<'a> Iterator for LogReader<'a> {
    type Item = (usize, Result<Record<'a>, DecodeError>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.stop.is_some() {
            return None;
        }
        let rest = self.log.get(self.offset..).filter(|rest| !rest.is_empty())?;
        let offset = self.offset;
        match decode_from(rest) {
            Ok((record, record_len)) => {
                self.offset += record_len;
                Some((offset, Ok(record)))
            }
            Err(error) => {
                let error = rebase(error, offset);
                self.stop = Some((offset, error));
                Some((offset, Err(error)))
            }
        }
    }
}

impl core::iter::FusedIterator for LogReader<'_> {}

/// Offsets of corruptions in `error` made relative to the log, not the record at `offset`.
fn rebase(error: DecodeError, offset: usize) -> DecodeError {
    match error {
        DecodeError::Corrupt(corruption) => DecodeError::Corrupt(Corruption::new(
            corruption.offset.saturating_add(offset as u64),
            corruption.what,
        )),
        other => other,
    }
}

/// The offset of the first valid record after the bad one at `offset`, if any.
fn valid_record_after(log: &[u8], offset: usize) -> Option<usize> {
    let mut position = offset.checked_add(skip_len(log.get(offset..)?))?;
    loop {
        let rest = log.get(position..).filter(|rest| !rest.is_empty())?;
        if decode_from(rest).is_ok() {
            return Some(position);
        }
        position = position.checked_add(skip_len(rest))?;
    }
}

/// How far to skip past bytes that are no valid record: the record's length if its header is
/// intact (its length can be trusted), else one byte.
fn skip_len(bytes: &[u8]) -> usize {
    Header::decode_from(bytes).map_or(1, |header| HEADER_LEN + header.body_len)
}
