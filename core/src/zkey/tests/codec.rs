use proptest::prelude::*;
use std::vec;
use std::vec::Vec;

use super::super::*;

#[test]
fn byte_layout_is_p0_t0_p1_t1() {
    let p = u64::from_be_bytes([0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17]);
    let t = u64::from_be_bytes([0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27]);
    let m = interleave(p, t).to_be_bytes();
    assert_eq!(
        m,
        [
            0x10, 0x20, 0x11, 0x21, 0x12, 0x22, 0x13, 0x23, 0x14, 0x24, 0x15, 0x25, 0x16, 0x26,
            0x17, 0x27
        ]
    );
    assert_eq!(deinterleave(interleave(p, t)), (p, t));
}

#[test]
fn key_prefix_pads_short_keys() {
    assert_eq!(key_prefix(b""), 0);
    assert_eq!(key_prefix(b"a"), 0x61 << 56);
    assert_eq!(key_prefix(b"abcdefghXYZ"), u64::from_be_bytes(*b"abcdefgh"));
}

/// The layout written out byte by byte: the oracle both interleave paths are checked against.
fn interleave_by_bytes(prefix: u64, version: u64) -> u128 {
    let mut m = [0u8; MORTON_LEN];
    for (i, (p, t)) in prefix.to_be_bytes().into_iter().zip(version.to_be_bytes()).enumerate() {
        m[2 * i] = p;
        m[2 * i + 1] = t;
    }
    u128::from_be_bytes(m)
}

/// Checks both paths of both directions on one (prefix, version) pair.
fn check_interleave(prefix: u64, version: u64) {
    let expected = interleave_by_bytes(prefix, version);
    assert_eq!(interleave_scalar(prefix, version), expected, "scalar ({prefix:#x}, {version:#x})");
    assert_eq!(interleave_simd(prefix, version), expected, "simd ({prefix:#x}, {version:#x})");
    assert_eq!(interleave(prefix, version), expected, "default ({prefix:#x}, {version:#x})");
    assert_eq!(deinterleave_scalar(expected), (prefix, version), "scalar of {expected:#x}");
    assert_eq!(deinterleave_simd(expected), (prefix, version), "simd of {expected:#x}");
    assert_eq!(deinterleave(expected), (prefix, version), "default of {expected:#x}");
}

/// 0, all ones, every single bit and its complement, and every value of every single byte.
fn structured_u64s() -> Vec<u64> {
    let mut values = vec![0, u64::MAX];
    for bit_index in 0..u64::BITS {
        values.push(1 << bit_index);
        values.push(!(1 << bit_index));
    }
    for byte_index in 0..PREFIX_LEN as u32 {
        values.extend((1..=u8::MAX).map(|byte| u64::from(byte) << (8 * byte_index)));
    }
    values
}

#[test]
fn interleave_paths_agree_on_structured_patterns() {
    let values = structured_u64s();
    // The single-bit patterns, their complements, 0 and all ones against each other...
    let bit_patterns = &values[..2 + 2 * u64::BITS as usize];
    for &prefix in bit_patterns {
        for &version in bit_patterns {
            check_interleave(prefix, version);
        }
    }
    // ...and every single-byte pattern against 0, all ones and a mixed value, both ways.
    for &value in &values {
        for other in [0, u64::MAX, 0x0123_4567_89AB_CDEF] {
            check_interleave(value, other);
            check_interleave(other, value);
        }
    }
}

#[test]
fn deinterleave_paths_agree_on_every_single_bit_and_byte_of_m() {
    let mut codes = vec![0, u128::MAX];
    codes.extend((0..u128::BITS).map(|bit_index| 1u128 << bit_index));
    for byte_index in 0..MORTON_LEN as u32 {
        codes.extend((1..=u8::MAX).map(|byte| u128::from(byte) << (8 * byte_index)));
    }
    for code in codes {
        let split = deinterleave_scalar(code);
        assert_eq!(deinterleave_simd(code), split, "{code:#x}");
        assert_eq!(interleave_by_bytes(split.0, split.1), code, "{code:#x}");
    }
}

/// Keys that collide often: a 4-letter alphabet with zero and 0xFF bytes, or one of a few
/// shared heads (short, zero-padded, exactly 8 bytes) followed by such bytes.
fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
    const BYTES: &[u8] = &[0x00, 0x01, b'a', 0xFF];
    const HEADS: &[&[u8]] =
        &[b"", b"a", b"a\0", b"a\0\0\0\0\0\0\0", b"userkey1", b"\xFF\xFF\xFF\xFF"];
    let byte = prop::sample::select(BYTES);
    let head = prop::sample::select(HEADS);
    prop_oneof![
        prop::collection::vec(byte.clone(), 0..20),
        (head, prop::collection::vec(byte, 0..12)).prop_map(|(head, tail)| {
            let mut key = head.to_vec();
            key.extend(tail);
            key
        }),
    ]
}

/// Versions that collide often, with the extremes, or any version.
fn version_strategy() -> impl Strategy<Value = Version> {
    prop_oneof![
        prop::sample::select(&[0, 1, 0xFF, 0x100, u64::MAX - 1, u64::MAX][..]),
        any::<u64>(),
    ]
    .prop_map(Version::new)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn interleave_paths_agree_on_random_pairs(prefix: u64, version: u64) {
        check_interleave(prefix, version);
    }

    #[test]
    fn deinterleave_paths_agree_on_random_codes(code: u128) {
        prop_assert_eq!(deinterleave_simd(code), deinterleave_scalar(code));
        let (prefix, version) = deinterleave(code);
        prop_assert_eq!(interleave(prefix, version), code);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn zkey_order_is_cmp_z_order_and_keeps_the_version(
        pairs in prop::collection::vec((key_strategy(), version_strategy()), 2..8),
    ) {
        for (a_key, a_version) in &pairs {
            prop_assert_eq!(ZKey::new(a_key, *a_version).version(), *a_version);
            for (b_key, b_version) in &pairs {
                let a = ZKey::new(a_key, *a_version);
                let b = ZKey::new(b_key, *b_version);
                let by_cmp_z = cmp_z(a_key, *a_version, b_key, *b_version);
                prop_assert_eq!(a.cmp(&b), by_cmp_z, "{:?} vs {:?}", a, b);
                prop_assert_eq!(a == b, by_cmp_z.is_eq());
            }
        }
    }
}
