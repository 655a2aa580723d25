//! Tests of the decoder alone run without `alloc`; tests that build filters need it.

use std::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::error::Corruption;

/// A valid filter of one block with every bit set: contains everything.
fn one_full_block() -> Vec<u8> {
    let mut bytes = std::vec![FORMAT_VERSION, HASH_KIND_XXH3_SEEDED, 0, 0, 1, 0, 0, 0];
    bytes.resize(HEADER_LEN + BLOCK_LEN, 0xFF);
    bytes
}

fn one_empty_block() -> Vec<u8> {
    let mut bytes = one_full_block();
    bytes[HEADER_LEN..].fill(0);
    bytes
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..80),
        hash in any::<u64>(),
    ) {
        if let Ok(filter) = Filter::decode_from(&bytes) {
            prop_assert_eq!(filter.encoded_len(), bytes.len());
            let _ = filter.may_contain_hash(hash);
        }
    }

    /// Any header with a valid shape decodes, and queries every block without panicking.
    #[test]
    fn any_block_count_is_queryable(block_count in 1u32..64, hash in any::<u64>()) {
        let mut encoded = std::vec![FORMAT_VERSION, HASH_KIND_XXH3_SEEDED, 0, 0];
        encoded.extend_from_slice(&block_count.to_le_bytes());
        encoded.resize(HEADER_LEN + block_count as usize * BLOCK_LEN, 0xFF);
        let filter = Filter::decode_from(&encoded).unwrap();
        prop_assert!(block_index(hash, block_count) < block_count as usize);
        prop_assert!(filter.may_contain_hash(hash));
    }
}

#[test]
fn full_and_empty_blocks() {
    let (full, empty) = (one_full_block(), one_empty_block());
    let (full, empty) = (Filter::decode_from(&full).unwrap(), Filter::decode_from(&empty).unwrap());
    for hash in [0, 1, u64::MAX, 0x8000_0000_0000_0000, key_hash(b"")] {
        assert!(full.may_contain_hash(hash) && !empty.may_contain_hash(hash), "{hash:x}");
    }
}

#[test]
fn bad_headers_and_lengths_are_corruption() {
    let good = one_empty_block();
    let with = |offset: usize, byte: u8| {
        let mut bytes = good.clone();
        bytes[offset] = byte;
        bytes
    };
    let count = |block_count: u32| {
        let mut bytes = good.clone();
        bytes[BLOCK_COUNT_OFFSET..HEADER_LEN].copy_from_slice(&block_count.to_le_bytes());
        bytes
    };
    let cases: [(Vec<u8>, u64, &str); 9] = [
        (Vec::new(), 0, "filter shorter than its header"),
        (good[..HEADER_LEN - 1].to_vec(), 0, "filter shorter than its header"),
        (with(FORMAT_OFFSET, 2), 0, "unknown filter format version"),
        (with(HASH_KIND_OFFSET, 0), 1, "unknown filter hash kind"),
        (with(RESERVED_OFFSET + 1, 1), 2, "filter reserved bytes not zero"),
        (count(0), 4, "filter block count out of range"),
        (count(BLOCK_COUNT_MAX + 1), 4, "filter block count out of range"),
        (count(2), 8, "filter length does not match its block count"),
        (good[..good.len() - 1].to_vec(), 8, "filter length does not match its block count"),
    ];
    for (bytes, offset, what) in cases {
        assert_eq!(Filter::decode_from(&bytes), Err(Corruption::new(offset, what)), "{bytes:?}");
    }
    let mut long = good.clone();
    long.push(0);
    assert!(Filter::decode_from(&long).is_err());
}

#[cfg(feature = "alloc")]
mod built {
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::super::*;

    fn key() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..24)
    }

    fn build(keys: &[Vec<u8>], bits_per_key: u32) -> Vec<u8> {
        let mut builder = FilterBuilder::new(keys.len(), bits_per_key);
        for key in keys {
            builder.insert(key);
        }
        builder.finish()
    }

    /// Distinct keys from a counter: `prefix` then the counter, little-endian.
    fn numbered_key(prefix: u8, number: u32) -> Vec<u8> {
        let mut key = std::vec![prefix];
        key.extend_from_slice(&number.to_le_bytes());
        key
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn no_false_negatives(
            keys in proptest::collection::vec(key(), 0..300),
            bits_per_key in 0u32..24,
        ) {
            let encoded = build(&keys, bits_per_key);
            let filter = Filter::decode_from(&encoded).unwrap();
            prop_assert_eq!(filter.encoded_len(), encoded.len());
            for key in &keys {
                prop_assert!(filter.may_contain(key), "false negative for {:?}", key);
            }
        }

    }

    /// 100k keys at the default 10 bits per key, 100k other keys queried. The theory for SBBF at
    /// 10 bits per key gives 1.26%; a broken hash or mask gives far more.
    #[test]
    fn false_positive_rate_is_near_theory() {
        let key_count = 100_000;
        let keys: Vec<Vec<u8>> = (0..key_count).map(|number| numbered_key(b'i', number)).collect();
        let encoded = build(&keys, BITS_PER_KEY_DEFAULT);
        let filter = Filter::decode_from(&encoded).unwrap();
        assert!(keys.iter().all(|key| filter.may_contain(key)));
        let false_positive_count = (0..key_count)
            .filter(|&number| filter.may_contain(&numbered_key(b'o', number)))
            .count();
        let rate = f64::from(u32::try_from(false_positive_count).unwrap()) / f64::from(key_count);
        std::println!(
            "false-positive rate at {BITS_PER_KEY_DEFAULT} bits/key: {:.3}%",
            rate * 100.0
        );
        // Theory (Poisson block loads): 1.265%. Deterministic keys, so the bounds cannot flake;
        // a broken hash or mask lands above, a filter sized larger than documented below.
        assert!((0.009..0.018).contains(&rate), "false-positive rate {rate}");
    }

    #[test]
    fn empty_filter_contains_nothing() {
        let encoded = build(&[], BITS_PER_KEY_DEFAULT);
        assert_eq!(encoded.len(), HEADER_LEN + BLOCK_LEN);
        let filter = Filter::decode_from(&encoded).unwrap();
        assert_eq!(filter.block_count(), 1);
        assert!((0..1000).all(|number| !filter.may_contain(&numbered_key(0, number))));
    }

    #[test]
    fn sizing_rounds_up_to_whole_blocks() {
        assert_eq!(FilterBuilder::new(0, 10).block_count(), 1);
        assert_eq!(FilterBuilder::new(25, 10).block_count(), 1);
        assert_eq!(FilterBuilder::new(26, 10).block_count(), 2);
        assert_eq!(FilterBuilder::new(1000, 0).block_count(), 1);
        assert_eq!(FilterBuilder::new(usize::MAX, u32::MAX).block_count(), BLOCK_COUNT_MAX);
    }

    #[test]
    fn layout_is_as_documented() {
        let mut builder = FilterBuilder::new(100, 10);
        assert_eq!(builder.block_count(), 4);
        // Upper half 0x8000_0000 selects block 2 of 4; lower half 1 sets bit SALT[i] >> 27 of
        // word i.
        builder.insert_hash(0x8000_0000_0000_0001);
        let encoded = builder.finish();
        assert_eq!(encoded[..HEADER_LEN], [1, 1, 0, 0, 4, 0, 0, 0]);
        for (block, bytes) in encoded[HEADER_LEN..].chunks(BLOCK_LEN).enumerate() {
            for (word, bytes) in bytes.chunks(WORD_LEN).enumerate() {
                let expected = if block == 2 { 1u32 << (SALT[word] >> 27) } else { 0 };
                assert_eq!(bytes, expected.to_le_bytes(), "block {block} word {word}");
            }
        }
    }

    #[test]
    fn key_hash_is_seeded_xxh3() {
        assert_eq!(key_hash(b"key"), xxhash_rust::xxh3::xxh3_64_with_seed(b"key", KEY_HASH_SEED));
        assert_ne!(key_hash(b"key"), crate::checksum::checksum(b"key"));
    }

    #[test]
    fn encode_into_checks_the_buffer() {
        let builder = FilterBuilder::new(10, 10);
        let mut out = std::vec![0xAA; builder.encoded_len() - 1];
        let too_small = BufferTooSmall { buffer_len: out.len(), len_needed: builder.encoded_len() };
        assert_eq!(builder.encode_into(&mut out), Err(too_small));
        assert!(out.iter().all(|&byte| byte == 0xAA));
        out.push(0xAA);
        out.push(0xAA);
        assert_eq!(builder.encode_into(&mut out), Ok(builder.encoded_len()));
        assert_eq!(out[builder.encoded_len()], 0xAA, "nothing written past the filter");
    }
}
