//! [`FilterBuilder`]: builds a filter in memory, then encodes it.

use alloc::vec::Vec;

use super::{
    BLOCK_LEN, BLOCK_WORD_COUNT, BufferTooSmall, HEADER_LEN, block_count_for, encode_block,
    encode_header, insert_hash_into, key_hash,
};

/// Builds a filter for about `key_count` keys.
///
/// Inserting more keys than planned raises the false-positive rate but never causes a false
/// negative. A filter planned for zero keys has one empty block and contains nothing.
#[derive(Clone, Debug)]
pub struct FilterBuilder {
    blocks: Vec<[u32; BLOCK_WORD_COUNT]>,
}

impl FilterBuilder {
    /// A builder sized for `key_count` keys at `bits_per_key` bits each, rounded up to whole
    /// 256-bit blocks, at least one and at most [`super::BLOCK_COUNT_MAX`].
    /// [`super::BITS_PER_KEY_DEFAULT`] gives a 1.26% false-positive rate.
    #[must_use]
    pub fn new(key_count: usize, bits_per_key: u32) -> FilterBuilder {
        let block_count = block_count_for(key_count, bits_per_key);
        FilterBuilder { blocks: alloc::vec![[0; BLOCK_WORD_COUNT]; block_count as usize] }
    }

    /// Inserts the key whose [`key_hash`] is `hash`.
    pub fn insert_hash(&mut self, hash: u64) {
        insert_hash_into(&mut self.blocks, hash);
    }

    /// Inserts `key`.
    pub fn insert(&mut self, key: &[u8]) {
        self.insert_hash(key_hash(key));
    }

    /// How many 256-bit blocks the filter has.
    #[must_use]
    pub fn block_count(&self) -> u32 {
        u32::try_from(self.blocks.len()).expect("at most BLOCK_COUNT_MAX blocks")
    }

    /// The encoded filter's length, header included.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.blocks.len() * BLOCK_LEN
    }

    /// Encodes the filter into the start of `out`; returns its length
    /// ([`FilterBuilder::encoded_len`]).
    pub fn encode_into(&self, out: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let len = self.encoded_len();
        let buffer_len = out.len();
        let Some((filter, _)) = out.split_at_mut_checked(len) else {
            return Err(BufferTooSmall { buffer_len, len_needed: len });
        };
        let (header, blocks) = filter.split_at_mut(HEADER_LEN);
        header.copy_from_slice(&encode_header(self.block_count()));
        let (blocks_out, _) = blocks.as_chunks_mut::<BLOCK_LEN>();
        for (block_out, block) in blocks_out.iter_mut().zip(&self.blocks) {
            *block_out = encode_block(block);
        }
        Ok(len)
    }

    /// The encoded filter.
    #[must_use]
    pub fn finish(self) -> Vec<u8> {
        let mut out = alloc::vec![0; self.encoded_len()];
        let len = self.encode_into(&mut out);
        assert_eq!(len, Ok(out.len()), "the buffer was sized by encoded_len");
        out
    }
}
