//! Key-order reading through the key index: [`KeyOrderIter`] (every entry, or one key's
//! history) and [`RangeAt`] (a key range as of a version).
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use core::cmp::Ordering;
use core::ops::{Bound, RangeBounds};

use super::reader::{EntryReader, Segment};
use crate::{Corruption, Entry, Version};

/// Entries in key order (key ascending, version descending), over a run of the key index.
#[derive(Debug)]
pub struct KeyOrderIter<'a> {
    reader: EntryReader<'a>,
    next_index: usize,
    end_index: usize,
}

impl<'a> KeyOrderIter<'a> {
    /// Every entry of `segment`.
    #[expect(
        clippy::large_types_passed_by_value,
        reason = "the iterator keeps its own copy of the segment"
    )]
    pub(super) fn all(segment: Segment<'a>) -> KeyOrderIter<'a> {
        let end_index = segment.key_index.len();
        KeyOrderIter { reader: EntryReader::new(segment), next_index: 0, end_index }
    }

    /// The entries of keys in `keys`. Positions are found now; decoding errors on the way
    /// are returned by the first `next`.
    #[expect(
        clippy::large_types_passed_by_value,
        reason = "the iterator keeps its own copy of the segment"
    )]
    pub(super) fn keys<'k>(
        segment: Segment<'a>,
        keys: &impl RangeBounds<&'k [u8]>,
    ) -> Result<KeyOrderIter<'a>, Corruption> {
        let mut reader = EntryReader::new(segment);
        let next_index = match keys.start_bound() {
            Bound::Included(key) => reader.first_key_not_before(key, Ordering::is_lt)?,
            Bound::Excluded(key) => reader.first_key_not_before(key, Ordering::is_le)?,
            Bound::Unbounded => 0,
        };
        let end_index = match keys.end_bound() {
            Bound::Included(key) => reader.first_key_not_before(key, Ordering::is_le)?,
            Bound::Excluded(key) => reader.first_key_not_before(key, Ordering::is_lt)?,
            Bound::Unbounded => segment.key_index.len(),
        };
        Ok(KeyOrderIter { reader, next_index, end_index: end_index.max(next_index) })
    }

    /// An iterator that returns `error` once.
    #[expect(
        clippy::large_types_passed_by_value,
        reason = "the iterator keeps its own copy of the segment"
    )]
    fn failed(segment: Segment<'a>, error: Corruption) -> FailOnce<KeyOrderIter<'a>> {
        let empty = KeyOrderIter { reader: EntryReader::new(segment), next_index: 0, end_index: 0 };
        FailOnce { error: Some(error), inner: empty }
    }

    /// The next entry without moving past it.
    fn peek(&mut self) -> Option<Result<Entry<'a>, Corruption>> {
        (self.next_index < self.end_index).then(|| self.reader.entry(self.next_index))
    }

    /// The last entry without moving before it.
    fn peek_back(&mut self) -> Option<Result<Entry<'a>, Corruption>> {
        (self.next_index < self.end_index).then(|| self.reader.entry(self.end_index - 1))
    }

    fn stop(&mut self) {
        self.next_index = self.end_index;
    }
}

impl<'a> Iterator for KeyOrderIter<'a> {
    type Item = Result<Entry<'a>, Corruption>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.peek()?;
        if item.is_ok() {
            self.next_index += 1;
        } else {
            self.stop();
        }
        Some(item)
    }
}

impl DoubleEndedIterator for KeyOrderIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let item = self.peek_back()?;
        if item.is_ok() {
            self.end_index -= 1;
        } else {
            self.stop();
        }
        Some(item)
    }
}

/// An iterator that first yields one error (if any), then its inner items.
#[derive(Debug)]
pub struct FailOnce<I> {
    error: Option<Corruption>,
    inner: I,
}

impl<'a, I: Iterator<Item = Result<Entry<'a>, Corruption>>> Iterator for FailOnce<I> {
    type Item = Result<Entry<'a>, Corruption>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.error.take() {
            Some(error) => Some(Err(error)),
            None => self.inner.next(),
        }
    }
}

impl<'a, I> DoubleEndedIterator for FailOnce<I>
where
    I: DoubleEndedIterator<Item = Result<Entry<'a>, Corruption>>,
{
    fn next_back(&mut self) -> Option<Self::Item> {
        match self.error.take() {
            Some(error) => Some(Err(error)),
            None => self.inner.next_back(),
        }
    }
}

/// One key's versions, newest first.
pub type KeyVersions<'a> = FailOnce<KeyOrderIter<'a>>;

#[expect(
    clippy::large_types_passed_by_value,
    reason = "the iterator keeps its own copy of the segment"
)]
pub(super) fn history<'a>(segment: Segment<'a>, key: &[u8]) -> KeyVersions<'a> {
    match KeyOrderIter::keys(segment, &(key..=key)) {
        Ok(inner) => FailOnce { error: None, inner },
        Err(error) => KeyOrderIter::failed(segment, error),
    }
}

/// One key's versions at or below `version`, newest first: a binary search within the key's
/// run of the key index, so the newer versions are never decoded.
#[expect(
    clippy::large_types_passed_by_value,
    reason = "the iterator keeps its own copy of the segment"
)]
pub(super) fn history_at<'a>(
    segment: Segment<'a>,
    key: &[u8],
    version: Version,
) -> KeyVersions<'a> {
    let positioned = KeyOrderIter::keys(segment, &(key..=key)).and_then(|mut inner| {
        let (lo, hi) = (inner.next_index, inner.end_index);
        inner.next_index =
            inner.reader.first_not_before(lo, hi, |_, entry_version| entry_version > version)?;
        Ok(inner)
    });
    match positioned {
        Ok(inner) => FailOnce { error: None, inner },
        Err(error) => KeyOrderIter::failed(segment, error),
    }
}

/// An iterator over nothing.
#[expect(
    clippy::large_types_passed_by_value,
    reason = "the iterator keeps its own copy of the segment"
)]
pub(super) fn empty(segment: Segment<'_>) -> KeyVersions<'_> {
    let inner = KeyOrderIter { reader: EntryReader::new(segment), next_index: 0, end_index: 0 };
    FailOnce { error: None, inner }
}

/// For each key in a range, in key order, its newest entry at or below a version. Walks from
/// both ends (`.rev()` yields the keys in descending order), and the two ends never yield
/// the same key twice.
#[derive(Debug)]
pub struct RangeAt<'a> {
    entries: FailOnce<KeyOrderIter<'a>>,
    version: Version,
}

impl<'a> RangeAt<'a> {
    #[expect(
        clippy::large_types_passed_by_value,
        reason = "the iterator keeps its own copy of the segment"
    )]
    pub(super) fn new<'k>(
        segment: Segment<'a>,
        keys: &impl RangeBounds<&'k [u8]>,
        version: Version,
    ) -> RangeAt<'a> {
        let entries = match KeyOrderIter::keys(segment, keys) {
            Ok(inner) => FailOnce { error: None, inner },
            Err(error) => KeyOrderIter::failed(segment, error),
        };
        RangeAt { entries, version }
    }

    /// Moves past the remaining (older) versions of `key`.
    fn skip_key(&mut self, key: &[u8]) -> Result<(), Corruption> {
        let inner = &mut self.entries.inner;
        while let Some(next) = inner.peek() {
            if next?.key != key {
                break;
            }
            inner.next_index += 1;
        }
        Ok(())
    }
}

impl<'a> Iterator for RangeAt<'a> {
    type Item = Result<Entry<'a>, Corruption>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let entry = match self.entries.next()? {
                Ok(entry) => entry,
                Err(error) => return Some(Err(error)),
            };
            if entry.version > self.version {
                continue;
            }
            if let Err(error) = self.skip_key(entry.key) {
                self.entries.inner.stop();
                return Some(Err(error));
            }
            return Some(Ok(entry));
        }
    }
}

impl DoubleEndedIterator for RangeAt<'_> {
    /// From the back a key's versions come oldest first: the newest at or below the version
    /// is the last of the run that is not above it; the newer rest is skipped by later calls.
    fn next_back(&mut self) -> Option<Self::Item> {
        loop {
            let mut found = match self.entries.next_back()? {
                Ok(entry) => entry,
                Err(error) => return Some(Err(error)),
            };
            if found.version > self.version {
                continue; // Every version of this key still ahead of us is newer still.
            }
            let inner = &mut self.entries.inner;
            while let Some(newer) = inner.peek_back() {
                match newer {
                    Ok(newer) if newer.key == found.key && newer.version <= self.version => {
                        found = newer;
                        inner.end_index -= 1;
                    }
                    Ok(_) => break,
                    Err(error) => {
                        inner.stop();
                        return Some(Err(error));
                    }
                }
            }
            return Some(Ok(found));
        }
    }
}
