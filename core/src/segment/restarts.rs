//! The restart header of a key-ordered data block (format version
//! [`super::FORMAT_VERSION_KEY_ORDER_RESTARTS`]): the offsets of every `K`-th entry, so that a
//! point read binary-searches the restarts (one decode per probe) and then walks at most `K`
//! entries, instead of walking the block from its start. Entries keep their full keys (no
//! prefix compression), so an offset is all a restart needs. The header comes first so that
//! it shares the block's first cache line (a trailer cost a miss per read: measured in
//! `benches/results/point-reads.md`).
//!
//! A data block of such a segment is the header, then its entries; the block handle's length
//! and the block's checksum cover both:
//!
//! | bytes | field |
//! |-------|-------|
//! | 4 | n, the restart count, `u32` LE (at least 1: a block holds at least one entry) |
//! | 4 x n | restart offsets, `u32` LE, from the first entry: those of entries 0, K, 2K, ... |
//!
//! The interval `K` is the builder's choice ([`super::SegmentOptions::with_restart_interval`])
//! and is not stored: a reader needs only that the offsets start at 0, ascend, and each start
//! an entry, which [`KeyBlock::validate`] checks whenever the block's checksum is checked. So
//! a header that is damaged but carries a valid checksum is [`Corruption`], never a wrong
//! answer.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use super::block::decode_entry_at;
use super::bytes::{partition_point, try_partition_point, u32_at};
use crate::{Corruption, Entry, Version};

/// The default restart interval: entries per restart, as RocksDB's
/// (`benches/results/point-reads.md` has the A/B).
pub const RESTART_INTERVAL_DEFAULT: usize = 16;

/// The block size target up to which key-ordered blocks get no restarts by default: at 4 KiB
/// (the default target) a point read walked the block as fast as it searched the restarts,
/// which paid from 16 KiB (`benches/results/point-reads.md`).
pub const RESTART_BLOCK_BYTES_MIN: usize = 4 << 10;

/// Bytes of one restart offset, and of the count.
const RESTART_LEN: usize = size_of::<u32>();

/// Bytes of the header of a block of `entry_count` entries with a restart every `interval`.
pub(super) fn header_len(entry_count: usize, interval: usize) -> usize {
    (entry_count.div_ceil(interval.max(1)) + 1) * RESTART_LEN
}

/// Writes the header of `entries` (a block's `entry_count` encoded entries, from the
/// builder, so they decode) to `write`, gathered into chunks; returns its length.
pub(super) fn write_header<E>(
    entries: &[u8],
    entry_count: usize,
    interval: usize,
    mut write: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<usize, E> {
    let interval = interval.max(1);
    let count = entry_count.div_ceil(interval);
    write(&(count as u32).to_le_bytes())?;
    let mut chunk = [0u8; 64 * RESTART_LEN];
    let mut chunk_len = 0;
    let (mut position, mut index, mut written) = (0, 0usize, 0usize);
    while position < entries.len() && written < count {
        if index % interval == 0 {
            if chunk_len == chunk.len() {
                write(&chunk)?;
                chunk_len = 0;
            }
            if let Some(slot) = chunk.get_mut(chunk_len..chunk_len + RESTART_LEN) {
                slot.copy_from_slice(&(position as u32).to_le_bytes());
            }
            chunk_len += RESTART_LEN;
            written += 1;
        }
        // The builder's own entries decode; were one not to, the header would stop short and
        // the reader's validation refuse the block.
        let Ok((_, len)) = decode_entry_at(entries, position, 0) else { break };
        position += len;
        index += 1;
    }
    write(chunk.get(..chunk_len).unwrap_or_default())?;
    // Zeros for restarts a short walk missed (none when the entries decode): refused by the
    // reader's validation, and the header keeps its computed length.
    for _ in written..count {
        write(&[0; RESTART_LEN])?;
    }
    Ok(header_len(entry_count, interval))
}

/// A key-ordered data block: its entries and its restart offsets (none in a segment of the
/// format without them, which is walked from the start).
#[derive(Clone, Copy, Debug)]
pub(super) struct KeyBlock<'a> {
    entries: &'a [u8],
    restarts: &'a [u8],
    /// The block's offset in the file, for errors.
    offset: u64,
}

impl<'a> KeyBlock<'a> {
    /// A block of the format without restarts: all of `bytes` is entries.
    pub(super) fn without_restarts(bytes: &'a [u8], offset: u64) -> KeyBlock<'a> {
        KeyBlock { entries: bytes, restarts: &[], offset }
    }

    /// Splits `bytes` (a block with its header) into restarts and entries; checks only that
    /// the header fits the block (see [`KeyBlock::validate`]). The entries' offset in the
    /// file, for errors, is after the header.
    pub(super) fn split(bytes: &'a [u8], offset: u64) -> Result<KeyBlock<'a>, Corruption> {
        let corrupt = |what| Corruption::new(offset, what);
        let (count, rest) =
            bytes.split_first_chunk::<RESTART_LEN>().ok_or_else(|| corrupt("block too short"))?;
        let count = u32::from_le_bytes(*count) as usize;
        let (restarts, entries) = count
            .checked_mul(RESTART_LEN)
            .and_then(|restarts_len| rest.split_at_checked(restarts_len))
            .ok_or_else(|| corrupt("block restarts longer than the block"))?;
        if count == 0 || entries.is_empty() {
            return Err(corrupt("block without entries or restarts"));
        }
        let header_len = (RESTART_LEN + restarts.len()) as u64;
        Ok(KeyBlock { entries, restarts, offset: offset + header_len })
    }

    /// The entries' bytes.
    pub(super) fn entries(&self) -> &'a [u8] {
        self.entries
    }

    /// The entries' offset in the file (after the header).
    pub(super) fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes a read of the block reads: its header, entries and checksum (a block of version
    /// 3 has at least one restart, so restarts mean a header).
    pub(super) fn bytes_read(&self) -> u64 {
        let header_len =
            if self.restarts.is_empty() { 0 } else { RESTART_LEN + self.restarts.len() };
        (header_len + self.entries.len() + crate::checksum::CHECKSUM_LEN) as u64
    }

    fn restart_count(&self) -> usize {
        self.restarts.len() / RESTART_LEN
    }

    /// Restart `index`'s offset in the block (in range: the caller counts them).
    fn restart(&self, index: usize) -> usize {
        u32_at(self.restarts, index * RESTART_LEN).map_or(usize::MAX, |offset| offset as usize)
    }

    /// Checks that the restarts start at 0, ascend and each start an entry, by walking every
    /// entry once: called with the block's checksum, so a query never trusts an unchecked
    /// header.
    pub(super) fn validate(&self) -> Result<(), Corruption> {
        let mut next = 0;
        let mut position = 0;
        while position < self.entries.len() {
            if next < self.restart_count() && self.restart(next) == position {
                next += 1;
            }
            position += decode_entry_at(self.entries, position, self.offset)?.1;
            if next < self.restart_count() && self.restart(next) < position {
                return Err(Corruption::new(self.offset, "block restart inside an entry"));
            }
        }
        if position != self.entries.len() || next != self.restart_count() {
            return Err(Corruption::new(self.offset, "block restarts do not match its entries"));
        }
        if self.restart_count() > 0 && self.restart(0) != 0 {
            return Err(Corruption::new(self.offset, "block restarts do not start at 0"));
        }
        Ok(())
    }

    /// The first entry not `before` (a predicate true on a prefix of the block's key order),
    /// with its position; `None` past the last entry. Binary-searches the restarts, then
    /// walks from the last restart whose entry is before.
    pub(super) fn seek(
        &self,
        mut before: impl FnMut(&[u8], Version) -> bool,
    ) -> Result<Option<(usize, Entry<'a>)>, Corruption> {
        let restarts = self.restart_count();
        let mut position = 0;
        if restarts > 1 {
            // Restart 0 is the block's first entry: the search starts after it.
            let past = try_partition_point(1, restarts, |index| {
                let (entry, _) = decode_entry_at(self.entries, self.restart(index), self.offset)?;
                Ok(before(entry.key, entry.version))
            })?;
            position = self.restart(past - 1);
        }
        while position < self.entries.len() {
            let (entry, len) = decode_entry_at(self.entries, position, self.offset)?;
            if !before(entry.key, entry.version) {
                return Ok(Some((position, entry)));
            }
            position += len;
        }
        Ok(None)
    }

    /// The position of the last restart at or before `position` (0 without restarts).
    pub(super) fn restart_at_or_before(&self, position: usize) -> usize {
        let past =
            partition_point(0, self.restart_count(), |index| self.restart(index) <= position);
        past.checked_sub(1).map_or(0, |last| self.restart(last))
    }
}
