//! Key-order reading, through the key index of a Z-order segment or the blocks of a
//! key-ordered one: [`KeyOrderIter`] (every entry, or one key's
//! history) and [`RangeAt`] (a key range as of a version).
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use core::cmp::{Ordering, Reverse};
use core::ops::{Bound, RangeBounds};

use super::footer::Order;
use super::key_blocks::BlockSpan;
use super::reader::{EntryReader, Segment};
use crate::merge::same_key;
use crate::{Corruption, Entry, Version};

/// Entries in key order (key ascending, version descending): a run of the key index of a
/// Z-order segment, or a run of the data blocks of a key-ordered one.
#[derive(Debug)]
pub struct KeyOrderIter<'a> {
    span: Span<'a>,
}

/// Where a [`KeyOrderIter`] reads.
#[derive(Debug)]
enum Span<'a> {
    Index(IndexSpan<'a>),
    Blocks(BlockSpan<'a>),
}

/// A run `[next_index, end_index)` of a Z-order segment's key index.
#[derive(Debug)]
struct IndexSpan<'a> {
    reader: EntryReader<'a>,
    next_index: usize,
    end_index: usize,
}

impl<'a> KeyOrderIter<'a> {
    /// Every entry of `segment`.
    pub(super) fn all(segment: Segment<'a>) -> KeyOrderIter<'a> {
        if segment.order() == Order::Key {
            return KeyOrderIter { span: Span::Blocks(BlockSpan::all(segment)) };
        }
        let end_index = segment.key_index().len();
        let span = IndexSpan { reader: EntryReader::new(segment), next_index: 0, end_index };
        KeyOrderIter { span: Span::Index(span) }
    }

    /// The entries of keys in `keys`. Positions are found now; decoding errors on the way
    /// are returned by the first `next`.
    pub(super) fn keys<'k>(
        segment: Segment<'a>,
        keys: &impl RangeBounds<&'k [u8]>,
    ) -> Result<KeyOrderIter<'a>, Corruption> {
        if segment.order() == Order::Key {
            return Ok(KeyOrderIter { span: Span::Blocks(BlockSpan::keys(segment, keys)?) });
        }
        let mut reader = EntryReader::new(segment);
        let next_index = match keys.start_bound() {
            Bound::Included(key) => reader.first_key_not_before(key, Ordering::is_lt)?,
            Bound::Excluded(key) => reader.first_key_not_before(key, Ordering::is_le)?,
            Bound::Unbounded => 0,
        };
        let end_index = match keys.end_bound() {
            Bound::Included(key) => reader.first_key_not_before(key, Ordering::is_le)?,
            Bound::Excluded(key) => reader.first_key_not_before(key, Ordering::is_lt)?,
            Bound::Unbounded => segment.key_index().len(),
        };
        let span = IndexSpan { reader, next_index, end_index: end_index.max(next_index) };
        Ok(KeyOrderIter { span: Span::Index(span) })
    }

    /// An iterator over nothing.
    fn nothing(segment: Segment<'a>) -> KeyOrderIter<'a> {
        let span = IndexSpan { reader: EntryReader::new(segment), next_index: 0, end_index: 0 };
        KeyOrderIter { span: Span::Index(span) }
    }

    /// An iterator that returns `error` once.
    fn failed(segment: Segment<'a>, error: Corruption) -> FailOnce<KeyOrderIter<'a>> {
        FailOnce { error: Some(error), inner: KeyOrderIter::nothing(segment) }
    }

    /// The next entry without moving past it.
    fn peek(&mut self) -> Option<Result<Entry<'a>, Corruption>> {
        match &mut self.span {
            Span::Index(span) => {
                (span.next_index < span.end_index).then(|| span.reader.entry(span.next_index))
            }
            Span::Blocks(span) => span.peek(),
        }
    }

    /// Moves past the entry `peek` returned.
    fn advance(&mut self) {
        match &mut self.span {
            Span::Index(span) => span.next_index += 1,
            Span::Blocks(span) => span.advance(),
        }
    }

    /// The last entry without moving before it.
    fn peek_back(&mut self) -> Option<Result<Entry<'a>, Corruption>> {
        match &mut self.span {
            Span::Index(span) => {
                (span.next_index < span.end_index).then(|| span.reader.entry(span.end_index - 1))
            }
            Span::Blocks(span) => span.peek_back(),
        }
    }

    /// Moves the back before the entry `peek_back` returned.
    fn drop_back(&mut self) {
        match &mut self.span {
            Span::Index(span) => span.end_index -= 1,
            Span::Blocks(span) => span.drop_back(),
        }
    }

    fn stop(&mut self) {
        match &mut self.span {
            Span::Index(span) => span.next_index = span.end_index,
            Span::Blocks(span) => span.stop(),
        }
    }

    /// Moves the front past the entries for which `before` holds, a predicate true on a
    /// prefix of the segment's key order (the entries up to the rest of a key's run of
    /// versions, say). Over the key index it probes 1, 2, 4, ... entries ahead, then
    /// binary-searches the last gap, so a run of `n` entries costs about `2 log2(n)` decodes
    /// instead of `n`; over blocks it steps through the block read, then, if the run goes on,
    /// searches the block keys for the block where it ends.
    fn skip_run(&mut self, before: impl FnMut(&[u8], Version) -> bool) -> Result<(), Corruption> {
        match &mut self.span {
            Span::Index(span) => span.skip_run(before),
            Span::Blocks(span) => span.skip_run(before),
        }
    }
}

impl<'a> IndexSpan<'a> {
    /// The run of `key`'s versions at or below `version` in a Z-order segment's key index:
    /// one search for its first reference, then a gallop past the rest of the key's run.
    fn key_run(
        segment: Segment<'a>,
        key: &[u8],
        version: Version,
    ) -> Result<IndexSpan<'a>, Corruption> {
        let mut reader = EntryReader::new(segment);
        let target = (key, Reverse(version));
        let next_index = reader.first_entry_not_before(key, |entry_key, entry_version| {
            (entry_key, Reverse(entry_version)) < target
        })?;
        let len = segment.key_index().len();
        let mut span = IndexSpan { reader, next_index, end_index: len };
        span.skip_run(|entry_key, _| entry_key == key)?;
        let end_index = span.next_index;
        assert!(next_index <= end_index && end_index <= len, "the run lies inside the index");
        Ok(IndexSpan { next_index, end_index, ..span })
    }

    fn skip_run(
        &mut self,
        mut before: impl FnMut(&[u8], Version) -> bool,
    ) -> Result<(), Corruption> {
        let mut lo = self.next_index;
        let mut step = 1_usize;
        let mut hi = self.end_index;
        while lo < hi {
            let probe = lo.saturating_add(step - 1);
            if probe >= hi {
                break;
            }
            let entry = self.reader.entry(probe)?;
            if !before(entry.key, entry.version) {
                hi = probe;
                break;
            }
            lo = probe + 1;
            step = step.saturating_mul(2);
        }
        self.next_index = self.reader.first_not_before(lo, hi, before)?;
        Ok(())
    }
}

impl<'a> Iterator for KeyOrderIter<'a> {
    type Item = Result<Entry<'a>, Corruption>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.peek()?;
        if item.is_ok() {
            self.advance();
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
            self.drop_back();
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

impl<I> FailOnce<I> {
    pub(super) fn new(error: Option<Corruption>, inner: I) -> FailOnce<I> {
        FailOnce { error, inner }
    }

    pub(super) fn inner(&self) -> &I {
        &self.inner
    }
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

pub(super) fn history<'a>(segment: Segment<'a>, key: &[u8]) -> KeyVersions<'a> {
    history_at(segment, key, Version::MAX)
}

/// One key's versions at or below `version`, newest first. In a Z-order segment one search of
/// the key index finds the newest such version, and the end of the key's run is found by
/// galloping from it (the run is a few neighbouring references), not by a second search;
/// in a key-ordered segment the newer versions are stepped over within the block.
pub(super) fn history_at<'a>(
    segment: Segment<'a>,
    key: &[u8],
    version: Version,
) -> KeyVersions<'a> {
    let positioned = if segment.order() == Order::Key {
        KeyOrderIter::keys(segment, &(key..=key)).and_then(|mut inner| {
            let target = (key, Reverse(version));
            inner.skip_run(|entry_key, entry_version| {
                (entry_key, Reverse(entry_version)) < target
            })?;
            Ok(inner)
        })
    } else {
        IndexSpan::key_run(segment, key, version)
            .map(|span| KeyOrderIter { span: Span::Index(span) })
    };
    match positioned {
        Ok(inner) => FailOnce { error: None, inner },
        Err(error) => KeyOrderIter::failed(segment, error),
    }
}

/// An iterator over nothing.
pub(super) fn empty(segment: Segment<'_>) -> KeyVersions<'_> {
    FailOnce { error: None, inner: KeyOrderIter::nothing(segment) }
}

/// For each key in a range, in key order, its newest entry at or below a version. Walks from
/// both ends (`.rev()` yields the keys in descending order), and the two ends never yield
/// the same key twice.
#[derive(Debug)]
pub struct RangeAt<'a> {
    entries: FailOnce<KeyOrderIter<'a>>,
    version: Version,
    /// The key the front yielded last: its older versions, still ahead, are passed over as
    /// the front reaches them (each entry is decoded once), and the back stops at it.
    key_front: Option<&'a [u8]>,
}

impl<'a> RangeAt<'a> {
    pub(super) fn new<'k>(
        segment: Segment<'a>,
        keys: &impl RangeBounds<&'k [u8]>,
        version: Version,
    ) -> RangeAt<'a> {
        let entries = match KeyOrderIter::keys(segment, keys) {
            Ok(inner) => FailOnce { error: None, inner },
            Err(error) => KeyOrderIter::failed(segment, error),
        };
        RangeAt { entries, version, key_front: None }
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
            let key = entry.key;
            // Older than the version just yielded, or newer than the view: neither shows, nor
            // do the rest of the run like it (skipped in O(log n) decodes).
            // The predicates hold on a prefix of the whole key order (every entry before
            // this one is of a smaller key, or a newer version of this one), as `skip_run`
            // needs to search past a long run.
            let skipped = if self.key_front.is_some_and(|front| same_key(front, key)) {
                self.entries.inner.skip_run(|next, _| next <= key)
            } else if entry.version > self.version {
                let target = (key, core::cmp::Reverse(self.version));
                self.entries
                    .inner
                    .skip_run(|next, version| (next, core::cmp::Reverse(version)) < target)
            } else {
                self.key_front = Some(key);
                return Some(Ok(entry));
            };
            if let Err(error) = skipped {
                self.entries.inner.stop();
                return Some(Err(error));
            }
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
            if self.key_front.is_some_and(|front| same_key(front, found.key)) {
                self.entries.inner.stop(); // The front yielded this key: the ends met.
                return None;
            }
            if found.version > self.version {
                continue; // Every version of this key still ahead of us is newer still.
            }
            let inner = &mut self.entries.inner;
            while let Some(newer) = inner.peek_back() {
                match newer {
                    Ok(newer) if newer.key == found.key && newer.version <= self.version => {
                        found = newer;
                        inner.drop_back();
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
