//! The seam between the segment and its key filter ([`crate::filter`], a split-block Bloom
//! filter over [`crate::filter::key_hash`] at [`crate::filter::BITS_PER_KEY_DEFAULT`] bits per
//! key).
//!
//! The filter section is a byte region whose offset, length and checksum are in the footer.
//! The functions here are the only code that looks inside it. An empty section means "no
//! filter, every key may be present": the builder writes one for a segment without keys.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use super::storage::{FilterBlock, List, StorageFull, room};
use crate::Corruption;
use crate::filter::{
    BITS_PER_KEY_DEFAULT, BLOCK_LEN, Filter, HEADER_LEN, block_count_for, encode_block,
    encode_header, insert_hash_into, key_hash,
};

/// Bytes of the filter section over `key_count` distinct keys.
pub(super) fn encoded_len(key_count: usize) -> usize {
    if key_count == 0 {
        return 0;
    }
    HEADER_LEN + block_count_for(key_count, BITS_PER_KEY_DEFAULT) as usize * BLOCK_LEN
}

/// Fills `blocks` with the filter over `keys` (each distinct key once, `key_count` of them);
/// no blocks for no keys.
pub(super) fn build_into<'k, L: List<FilterBlock>>(
    keys: impl Iterator<Item = &'k [u8]>,
    key_count: usize,
    blocks: &mut L,
) -> Result<(), StorageFull> {
    blocks.clear();
    if key_count == 0 {
        return Ok(());
    }
    let block_count = block_count_for(key_count, BITS_PER_KEY_DEFAULT) as usize;
    room(blocks, block_count, "filter blocks")?;
    for _ in 0..block_count {
        blocks
            .try_extend_from_slice(&[FilterBlock::default()])
            .map_err(|_| StorageFull { what: "filter blocks", capacity: L::CAPACITY_MAX })?;
    }
    for key in keys {
        insert_hash_into(blocks.as_mut_slice(), key_hash(key));
    }
    Ok(())
}

/// Writes the section of the filter `blocks` (from [`build_into`]) through `write`.
pub(super) fn encode_with<E>(
    blocks: &[FilterBlock],
    mut write: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    if blocks.is_empty() {
        return Ok(());
    }
    let block_count = u32::try_from(blocks.len()).unwrap_or(u32::MAX);
    write(&encode_header(block_count))?;
    blocks.iter().try_for_each(|block| write(&encode_block(block)))
}

/// Checks a filter section at open, so that `may_contain` can trust its structure.
/// `section_offset` is where the section starts in the file, for errors.
pub(super) fn validate(section: &[u8], section_offset: u64) -> Result<(), Corruption> {
    if section.is_empty() {
        return Ok(());
    }
    Filter::decode_from(section)
        .map(drop)
        .map_err(|corruption| Corruption::new(section_offset + corruption.offset, corruption.what))
}

/// Whether `key` may be in the segment; `false` only when it certainly is not.
pub(super) fn may_contain(section: &[u8], key: &[u8]) -> bool {
    if section.is_empty() {
        return true;
    }
    // `validate` accepted this section at open, so decoding succeeds; were it ever to fail,
    // "may contain" is the answer that cannot lose data.
    Filter::decode_from(section).map_or(true, |filter| filter.may_contain(key))
}
