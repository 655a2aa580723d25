//! [`Filter`]: a filter read in place from untrusted bytes. Never panics.
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

use super::{
    BLOCK_COUNT_MAX, BLOCK_COUNT_OFFSET, BLOCK_LEN, FORMAT_VERSION, HASH_KIND_OFFSET,
    HASH_KIND_XXH3_SEEDED, HEADER_LEN, RESERVED_OFFSET, WORD_LEN, block_index, block_mask,
    key_hash,
};
use crate::error::Corruption;

/// A filter borrowed from encoded bytes, possibly memory-mapped and unaligned. Never
/// answers "no" for a key that was inserted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Filter<'a> {
    /// The blocks: `block_count * BLOCK_LEN` bytes.
    blocks: &'a [u8],
    block_count: u32,
}

impl<'a> Filter<'a> {
    /// Decodes the filter that is exactly `bytes`: checks the header (format, hash kind,
    /// reserved bytes, block count within `1..=BLOCK_COUNT_MAX`) and that the length is the
    /// header's plus the blocks'. The blocks are not copied.
    pub fn decode_from(bytes: &'a [u8]) -> Result<Filter<'a>, Corruption> {
        let (header, blocks) = bytes
            .split_first_chunk::<HEADER_LEN>()
            .ok_or(Corruption::new(0, "filter shorter than its header"))?;
        let [format, hash_kind, reserved @ .., c0, c1, c2, c3] = *header;
        if format != FORMAT_VERSION {
            return Err(Corruption::new(0, "unknown filter format version"));
        }
        if hash_kind != HASH_KIND_XXH3_SEEDED {
            return Err(Corruption::new(HASH_KIND_OFFSET as u64, "unknown filter hash kind"));
        }
        if reserved != [0, 0] {
            return Err(Corruption::new(RESERVED_OFFSET as u64, "filter reserved bytes not zero"));
        }
        let block_count = u32::from_le_bytes([c0, c1, c2, c3]);
        if block_count == 0 || block_count > BLOCK_COUNT_MAX {
            return Err(Corruption::new(
                BLOCK_COUNT_OFFSET as u64,
                "filter block count out of range",
            ));
        }
        if blocks.len() as u64 != u64::from(block_count) * BLOCK_LEN as u64 {
            return Err(Corruption::new(
                HEADER_LEN as u64,
                "filter length does not match its block count",
            ));
        }
        Ok(Filter { blocks, block_count })
    }

    /// Whether the key whose [`key_hash`] is `hash` may have been inserted: `false` means
    /// it certainly was not.
    #[must_use]
    pub fn may_contain_hash(&self, hash: u64) -> bool {
        let start = block_index(hash, self.block_count) * BLOCK_LEN;
        // In bounds: the index is below the block count and the length was checked at decode.
        // Were it not, "maybe" is the answer that cannot lose a key.
        let Some(block) = self.blocks.get(start..start + BLOCK_LEN) else { return true };
        let (words, _) = block.as_chunks::<WORD_LEN>();
        words
            .iter()
            .zip(block_mask(hash))
            .all(|(&word, mask)| u32::from_le_bytes(word) & mask == mask)
    }

    /// Whether `key` may have been inserted: `false` means it certainly was not.
    #[must_use]
    pub fn may_contain(&self, key: &[u8]) -> bool {
        self.may_contain_hash(key_hash(key))
    }

    /// How many 256-bit blocks the filter has.
    #[must_use]
    pub const fn block_count(&self) -> u32 {
        self.block_count
    }

    /// The filter's encoded length, header included.
    #[must_use]
    pub const fn encoded_len(&self) -> usize {
        HEADER_LEN + self.blocks.len()
    }
}
