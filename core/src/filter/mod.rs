//! A split-block Bloom filter over keys, read zero-copy from a segment's bytes.
//!
//! The algorithm is the Parquet format's split-block Bloom filter ("SBBF", `BloomFilter.md`
//! in apache/parquet-format), after Putze, Sanders and Singler, "Cache-, hash- and
//! space-efficient Bloom filters" (2007): the filter is an array of 256-bit blocks, each
//! eight 32-bit words. A key's 64-bit hash picks one block with its upper 32 bits; its lower
//! 32 bits, multiplied by eight odd salt constants, pick one bit in each of the block's eight
//! words. A lookup reads one 32-byte block: one cache line, and no alignment needed.
//!
//! - [`key_hash`]: the hash every key goes in by (XXH3-64, seeded; see its docs).
//! - `FilterBuilder` (with `alloc`): sized from a key count and bits per key, encodes into
//!   a caller's buffer (`encode_into`) or a `Vec`.
//! - [`Filter`]: decodes from `&[u8]` (possibly memory-mapped and unaligned) without copying
//!   and answers [`Filter::may_contain_hash`] by reading little-endian words in place.
//!
//! The byte layout is specified in `docs/format.md` ("Key filter"): an [`HEADER_LEN`]-byte
//! header (format, hash kind, reserved, block count) and the blocks, words little-endian. The
//! filter has no checksum of its own: the segment that holds it checksums its bytes.
//!
//! At [`BITS_PER_KEY_DEFAULT`] = 10 bits per key the false-positive rate is 1.26%, measured
//! on 100k keys (test `false_positive_rate_is_near_theory`) and as predicted by the theory
//! (Poisson-distributed block loads: 3.3% at 8 bits per key, 0.54% at 12, 0.13% at 16).

#[cfg(feature = "alloc")]
mod builder;
mod decoder;
#[cfg(test)]
mod tests;

#[cfg(feature = "alloc")]
pub use builder::FilterBuilder;
pub use decoder::Filter;

use core::fmt;

/// The filter format version written in every header.
pub const FORMAT_VERSION: u8 = 1;
/// The hash kind written in every header: [`key_hash`], XXH3-64 seeded with [`KEY_HASH_SEED`].
pub const HASH_KIND_XXH3_SEEDED: u8 = 1;
/// The seed of [`key_hash`]. Part of the format (hash kind 1): changing it breaks every filter.
pub const KEY_HASH_SEED: u64 = u64::from_le_bytes(*b"ZVfilter");

/// Offset of the format version byte.
pub const FORMAT_OFFSET: usize = 0;
/// Offset of the hash kind byte.
pub const HASH_KIND_OFFSET: usize = FORMAT_OFFSET + size_of::<u8>();
/// Offset of two reserved bytes, zero.
pub const RESERVED_OFFSET: usize = HASH_KIND_OFFSET + size_of::<u8>();
/// Offset of the block count (`u32`).
pub const BLOCK_COUNT_OFFSET: usize = RESERVED_OFFSET + size_of::<u16>();
/// Bytes of the filter header; the blocks follow it.
pub const HEADER_LEN: usize = BLOCK_COUNT_OFFSET + size_of::<u32>();

/// Words in a block.
pub const BLOCK_WORD_COUNT: usize = 8;
/// Bytes of a word (`u32`, little-endian).
pub const WORD_LEN: usize = size_of::<u32>();
/// Bytes of a block: 256 bits.
pub const BLOCK_LEN: usize = BLOCK_WORD_COUNT * WORD_LEN;
/// The most blocks a filter may have: 2^24 blocks, 512 MiB, ~400 million keys at 10 bits per
/// key.
pub const BLOCK_COUNT_MAX: u32 = 1 << 24;
/// Bits per key that give a 1.26% false-positive rate.
pub const BITS_PER_KEY_DEFAULT: u32 = 10;

// The header is encoded and decoded as one array pattern in this field order.
const _: () = assert!(FORMAT_OFFSET == 0 && HASH_KIND_OFFSET == 1 && RESERVED_OFFSET == 2);
const _: () = assert!(BLOCK_COUNT_OFFSET == 4 && HEADER_LEN == 8);
const _: () = assert!(BLOCK_LEN * 8 == 256);
const _: () = assert!((BLOCK_COUNT_MAX as u64) * (BLOCK_LEN as u64) <= u32::MAX as u64);

/// The salts of the Parquet SBBF: one odd multiplier per word of a block.
const SALT: [u32; BLOCK_WORD_COUNT] = [
    0x47b6_137b,
    0x4497_4d91,
    0x8824_ad5b,
    0xa2b7_289d,
    0x7054_95c7,
    0x2df1_424b,
    0x9efc_4947,
    0x5c6b_fb31,
];

/// The hash a key goes into a filter by: XXH3-64 of the key seeded with [`KEY_HASH_SEED`].
///
/// Seeded, so that it is independent of the unseeded XXH3 the checksums use and of any other
/// hash of keys: were keys ever partitioned by a hash (into shards, say) the filter's bits
/// would otherwise be correlated with the partition and its false-positive rate would rise.
#[must_use]
pub fn key_hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(key, KEY_HASH_SEED)
}

/// The blocks a filter of `key_count` keys at `bits_per_key` has: the bits rounded up to
/// whole 256-bit blocks, at least one and at most [`BLOCK_COUNT_MAX`].
#[must_use]
pub const fn block_count_for(key_count: usize, bits_per_key: u32) -> u32 {
    let bits = (key_count as u64).saturating_mul(bits_per_key as u64);
    let block_count = bits.div_ceil(BLOCK_LEN as u64 * 8);
    if block_count < 1 {
        1
    } else if block_count > BLOCK_COUNT_MAX as u64 {
        BLOCK_COUNT_MAX
    } else {
        block_count as u32
    }
}

/// Sets the bits of the key whose [`key_hash`] is `hash` in `blocks`; does nothing to an
/// empty slice.
pub fn insert_hash_into(blocks: &mut [[u32; BLOCK_WORD_COUNT]], hash: u64) {
    let Ok(block_count) = u32::try_from(blocks.len()) else {
        return;
    };
    if let Some(block) = blocks.get_mut(block_index(hash, block_count)) {
        for (word, mask) in block.iter_mut().zip(block_mask(hash)) {
            *word |= mask;
        }
    }
}

/// The header of a filter of `block_count` blocks.
#[must_use]
pub fn encode_header(block_count: u32) -> [u8; HEADER_LEN] {
    let [c0, c1, c2, c3] = block_count.to_le_bytes();
    [FORMAT_VERSION, HASH_KIND_XXH3_SEEDED, 0, 0, c0, c1, c2, c3]
}

/// The bytes of one block: its words, little-endian.
#[must_use]
pub fn encode_block(block: &[u32; BLOCK_WORD_COUNT]) -> [u8; BLOCK_LEN] {
    let mut out = [0u8; BLOCK_LEN];
    let (words_out, _) = out.as_chunks_mut::<WORD_LEN>();
    for (word_out, word) in words_out.iter_mut().zip(block) {
        *word_out = word.to_le_bytes();
    }
    out
}

/// The block a hash selects among `block_count`: the upper 32 bits scaled to the block count
/// (Lemire's multiply-shift range reduction, as Parquet does). Always below `block_count`.
const fn block_index(hash: u64, block_count: u32) -> usize {
    (((hash >> 32) * block_count as u64) >> 32) as usize
}

/// The bit a hash sets in each word of its block: bit `(low32 * SALT[i]) >> 27` of word `i`.
fn block_mask(hash: u64) -> [u32; BLOCK_WORD_COUNT] {
    let low = hash as u32;
    SALT.map(|salt| 1u32 << (low.wrapping_mul(salt) >> 27))
}

/// The caller's buffer is too small for the encoded filter. Nothing was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferTooSmall {
    /// The buffer's length in bytes.
    pub buffer_len: usize,
    /// The bytes the filter needs.
    pub len_needed: usize,
}

impl fmt::Display for BufferTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "buffer of {} bytes is too small for a filter of {}",
            self.buffer_len, self.len_needed
        )
    }
}

#[cfg(feature = "std")]
impl std::error::Error for BufferTooSmall {}
