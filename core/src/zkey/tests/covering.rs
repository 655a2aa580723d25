//! `ZBox::covering` for every combination of bounds, against finite universes of keys and
//! versions that contain every extreme the box's corners can take.

use core::ops::{Bound, RangeBounds};
use std::vec;
use std::vec::Vec;

use super::super::*;

/// Keys at the edges of the prefix: empty, trailing zeros, exactly 8 bytes, 9 bytes, all-0xFF.
const BOUND_KEYS: &[&[u8]] = &[
    b"",
    b"\0",
    b"\x01",
    b"a",
    b"a\0",
    b"a\0\0\0\0\0\0\0",
    b"a\0\0\0\0\0\0\0\0",
    b"ab",
    b"abcdefgh",
    b"abcdefgh\0",
    b"abcdefghi",
    b"b",
    b"\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF",
    b"\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF",
];

fn bounds<T: Copy>(values: &[T]) -> Vec<Bound<T>> {
    let mut all = vec![Bound::Unbounded];
    for &value in values {
        all.push(Bound::Included(value));
        all.push(Bound::Excluded(value));
    }
    all
}

/// Short keys over {0x00, 0x01, 'a', 0xFF}, and around each bound key: its heads, its
/// successor `key ++ [0]`, and the 8-byte keys of the prefixes next to its own. Every corner
/// a covering box can have is the prefix of one of these.
fn key_universe() -> Vec<Vec<u8>> {
    let alphabet = [0x00u8, 0x01, b'a', 0xFF];
    let mut keys: Vec<Vec<u8>> = vec![Vec::new()];
    for len in 1..=3u32 {
        for index in 0..alphabet.len().pow(len) {
            let digits = (0..len).map(|d| alphabet[index / alphabet.len().pow(d) % alphabet.len()]);
            keys.push(digits.collect());
        }
    }
    for key in BOUND_KEYS {
        keys.extend((0..=key.len()).map(|len| key[..len].to_vec()));
        keys.push([key, &[0][..]].concat());
        let prefix = key_prefix(key);
        keys.extend(prefix.checked_sub(1).map(|p| p.to_be_bytes().to_vec()));
        keys.extend(prefix.checked_add(1).map(|p| p.to_be_bytes().to_vec()));
    }
    keys
}

#[test]
fn covering_keys_is_the_bounding_box_of_the_keys_in_range() {
    let universe = key_universe();
    for start in bounds(BOUND_KEYS) {
        for end in bounds(BOUND_KEYS) {
            let range = (start, end);
            let prefixes: Vec<u64> = universe
                .iter()
                .filter(|key| range.contains(&key.as_slice()))
                .map(|key| key_prefix(key))
                .collect();
            let zbox = ZBox::covering(&range, &..);
            let expected = prefixes.iter().min().zip(prefixes.iter().max());
            assert_eq!(
                zbox.map(|b| b.prefix_range()),
                expected.map(|(&lo, &hi)| lo..=hi),
                "keys {range:?}"
            );
            if let Some(zbox) = zbox {
                assert_eq!(zbox.version_range(), 0..=u64::MAX);
            }
        }
    }
}

#[test]
fn covering_versions_is_exactly_the_versions_in_range() {
    let edges = [0, 1, 5, u64::MAX - 1, u64::MAX].map(Version::new);
    let mut candidates: Vec<u64> = vec![2, 3];
    for edge in edges {
        let edge = edge.get();
        candidates.extend([edge.saturating_sub(1), edge, edge.saturating_add(1)]);
    }
    for start in bounds(&edges) {
        for end in bounds(&edges) {
            let range = (start, end);
            let in_range: Vec<u64> =
                candidates.iter().copied().filter(|&v| range.contains(&Version::new(v))).collect();
            let zbox = ZBox::covering(&(Bound::<&[u8]>::Unbounded, Bound::Unbounded), &range);
            let expected = in_range.iter().min().zip(in_range.iter().max());
            assert_eq!(
                zbox.map(|b| b.version_range()),
                expected.map(|(&lo, &hi)| lo..=hi),
                "versions {range:?}"
            );
        }
    }
}

#[test]
fn covering_is_empty_when_either_range_is() {
    let keys = b"a".as_slice()..=b"b".as_slice();
    assert_eq!(ZBox::covering(&keys, &(Version::new(3)..Version::new(3))), None);
    assert_eq!(ZBox::covering(&keys, &(Version::new(4)..=Version::new(3))), None);
    assert_eq!(ZBox::covering(&keys, &..Version::new(0)), None);
    assert_eq!(ZBox::covering(&keys, &(Bound::Excluded(Version::MAX), Bound::Unbounded)), None);
    let versions = Version::new(1)..=Version::new(2);
    assert_eq!(ZBox::covering(&(..b"".as_slice()), &versions), None);
    assert_eq!(
        ZBox::covering(
            &(Bound::Excluded(b"a".as_slice()), Bound::Excluded(b"a\0".as_slice())),
            &versions
        ),
        None
    );
    let full = ZBox::covering(&(..), &..).expect("the full box");
    assert_eq!((full.prefix_range(), full.version_range()), (0..=u64::MAX, 0..=u64::MAX));
    assert_eq!((full.morton_min(), full.morton_max()), (0, u128::MAX));
}
