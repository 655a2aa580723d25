//! History segments against brute force and a `BTreeMap` model, builder errors, pruning and
//! corruption.

use alloc::vec;
use alloc::vec::Vec;
use core::cmp::Reverse;
use core::ops::Bound;
use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::segment::BuildError;
use crate::{Corruption, Entry, LimitError, Version};

/// The model: every (key, version) with its value, in key order (key asc, version desc).
type Model = BTreeMap<(Vec<u8>, Reverse<u64>), Option<Vec<u8>>>;
/// An entry owned, to compare with the model.
type Owned = (Vec<u8>, u64, Option<Vec<u8>>);
type KeyBounds = (Bound<Vec<u8>>, Bound<Vec<u8>>);
type VersionBounds = (Bound<Version>, Bound<Version>);

fn own(entry: Entry<'_>) -> Owned {
    (entry.key.to_vec(), entry.version.get(), entry.value.map(<[u8]>::to_vec))
}

fn collect<'a>(
    items: impl Iterator<Item = Result<Entry<'a>, Corruption>>,
) -> Result<Vec<Owned>, Corruption> {
    items.map(|item| item.map(own)).collect()
}

/// Builds a history segment of `model`'s entries.
fn build(model: &Model, block_bytes_target: usize) -> Vec<u8> {
    let options = HistoryOptions::default().with_block_bytes_target(block_bytes_target);
    let mut builder = HistoryBuilder::new(options);
    for ((key, Reverse(version)), value) in model {
        builder.add::<()>(key, Version::new(*version), value.as_deref()).expect("in key order");
    }
    let mut bytes = Vec::new();
    let summary = builder.finish(&mut bytes).expect("a Vec sink never fails");
    assert_eq!(summary.file_len, bytes.len() as u64);
    assert_eq!(summary.entry_count, model.len() as u64);
    bytes
}

fn bound_ref(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(key) => Bound::Included(key.as_slice()),
        Bound::Excluded(key) => Bound::Excluded(key.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn model_get_at(model: &Model, key: &[u8], version: u64) -> Option<Owned> {
    let from = (key.to_vec(), Reverse(version));
    let ((found, Reverse(v)), value) = model.range(from..).next()?;
    (found.as_slice() == key).then(|| (found.clone(), *v, value.clone()))
}

fn model_history(model: &Model, key: &[u8]) -> Vec<Owned> {
    let from = (key.to_vec(), Reverse(u64::MAX));
    model
        .range(from..)
        .take_while(|((found, _), _)| found.as_slice() == key)
        .map(|((found, Reverse(v)), value)| (found.clone(), *v, value.clone()))
        .collect()
}

/// The model's answer to a box, in key order.
fn model_changes(model: &Model, keys: &KeyBounds, versions: &VersionBounds) -> Vec<Owned> {
    let key_range = (bound_ref(&keys.0), bound_ref(&keys.1));
    model
        .iter()
        .filter(|((key, Reverse(version)), _)| {
            core::ops::RangeBounds::contains(&key_range, key.as_slice())
                && core::ops::RangeBounds::contains(versions, &Version::new(*version))
        })
        .map(|((key, Reverse(v)), value)| (key.clone(), *v, value.clone()))
        .collect()
}

/// The segment's answer to a box, sorted into key order (key asc, version desc).
fn segment_changes(
    segment: &HistorySegment<'_>,
    keys: &KeyBounds,
    versions: &VersionBounds,
) -> Result<Vec<Owned>, Corruption> {
    let mut found = collect(segment.changes((bound_ref(&keys.0), bound_ref(&keys.1)), *versions))?;
    found.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    Ok(found)
}

/// Checks every query the segment answers against the model, for the probe keys and versions.
fn check_against_model(
    model: &Model,
    bytes: &[u8],
    probe_keys: &[Vec<u8>],
    probe_versions: &[u64],
) {
    let segment = HistorySegment::open(bytes).expect("a built segment opens");
    let in_key_order: Vec<Owned> =
        model.iter().map(|((key, Reverse(v)), value)| (key.clone(), *v, value.clone())).collect();
    assert_eq!(collect(segment.iter_key_order()).unwrap(), in_key_order, "iter_key_order");
    for key in probe_keys {
        let history = collect(segment.history(key)).expect("history");
        assert_eq!(history, model_history(model, key), "history of {key:?}");
        for &version in probe_versions {
            let found = segment.get_at(key, Version::new(version)).expect("get_at").map(own);
            assert_eq!(found, model_get_at(model, key, version), "get_at {key:?} {version}");
            let at: Vec<Owned> = collect(segment.history_at(key, Version::new(version))).unwrap();
            let expected: Vec<Owned> =
                model_history(model, key).into_iter().filter(|e| e.1 <= version).collect();
            assert_eq!(at, expected, "history_at {key:?} {version}");
        }
    }
    check_range_at(model, &segment, probe_keys, probe_versions);
}

/// `range_at` both ways against the model: each key of the range at its newest version at or
/// below the probe version.
fn check_range_at(
    model: &Model,
    segment: &HistorySegment<'_>,
    probe_keys: &[Vec<u8>],
    probe_versions: &[u64],
) {
    // A few bounds and versions: every combination of all of them takes minutes.
    let bounds = key_bounds(&probe_keys[..probe_keys.len().min(3)]);
    let probe_versions = &probe_versions[..probe_versions.len().min(4)];
    for start in &bounds {
        for end in bounds.iter().map(|b| match b {
            Bound::Included(k) => Bound::Excluded(k.clone()),
            Bound::Excluded(k) => Bound::Included(k.clone()),
            Bound::Unbounded => Bound::Unbounded,
        }) {
            let keys = (start.clone(), end);
            let range = (bound_ref(&keys.0), bound_ref(&keys.1));
            for &version in probe_versions {
                let mut expected: Vec<Owned> = Vec::new();
                for ((key, Reverse(v)), value) in model {
                    let fresh = expected.last().is_none_or(|last| last.0 != *key);
                    if *v <= version
                        && fresh
                        && core::ops::RangeBounds::contains(&range, key.as_slice())
                    {
                        expected.push((key.clone(), *v, value.clone()));
                    }
                }
                let forward = collect(segment.range_at(range, Version::new(version))).unwrap();
                assert_eq!(forward, expected, "range_at {keys:?} {version}");
                let mut backward = collect(segment.range_at(range, Version::new(version)).rev());
                backward.as_mut().unwrap().reverse();
                assert_eq!(backward.unwrap(), expected, "range_at reversed {keys:?} {version}");
            }
        }
    }
}

fn key_bounds(probe_keys: &[Vec<u8>]) -> Vec<Bound<Vec<u8>>> {
    let mut bounds = vec![Bound::Unbounded];
    for key in probe_keys {
        bounds.push(Bound::Included(key.clone()));
        bounds.push(Bound::Excluded(key.clone()));
    }
    bounds
}

fn version_bounds(probe_versions: &[u64]) -> Vec<Bound<Version>> {
    let mut bounds = vec![Bound::Unbounded];
    for &version in probe_versions {
        bounds.push(Bound::Included(Version::new(version)));
        bounds.push(Bound::Excluded(Version::new(version)));
    }
    bounds
}

/// A small grid: 5 keys x versions 1..=6, with holes and tombstones.
fn grid_model() -> Model {
    let mut model = Model::new();
    for (index, key) in [&b"a"[..], b"b", b"bb", b"c", b"e"].iter().enumerate() {
        for version in 1..=6u64 {
            if (index as u64 * 7 + version * 3).is_multiple_of(4) {
                continue;
            }
            let value = (version % 3 != 0).then(|| vec![index as u8; version as usize]);
            model.insert((key.to_vec(), Reverse(version)), value);
        }
    }
    model
}

#[test]
fn every_box_over_a_small_grid_matches_brute_force() {
    let model = grid_model();
    let probe_keys: Vec<Vec<u8>> =
        [&b""[..], b"a", b"a\0", b"b", b"ba", b"bb", b"c", b"d", b"e", b"f"]
            .iter()
            .map(|key| key.to_vec())
            .collect();
    let probe_versions: Vec<u64> = (0..=7).collect();
    for block_bytes_target in [1, 30, 4096] {
        let bytes = build(&model, block_bytes_target);
        check_against_model(&model, &bytes, &probe_keys, &probe_versions);
        let segment = HistorySegment::open(&bytes).unwrap();
        for start in key_bounds(&probe_keys) {
            for end in key_bounds(&probe_keys) {
                let keys = (start.clone(), end);
                for version_start in version_bounds(&probe_versions) {
                    for version_end in version_bounds(&probe_versions) {
                        let versions = (version_start, version_end);
                        let found = segment_changes(&segment, &keys, &versions).unwrap();
                        let expected = model_changes(&model, &keys, &versions);
                        assert_eq!(
                            found, expected,
                            "{keys:?} x {versions:?}, {block_bytes_target}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn changes_come_in_z_order_of_their_ordinals() {
    let model = grid_model();
    let bytes = build(&model, 30);
    let segment = HistorySegment::open(&bytes).unwrap();
    let keys: Vec<Vec<u8>> = model_history_keys(&model);
    let versions: Vec<u64> = {
        let mut v: Vec<u64> = model.keys().map(|(_, Reverse(v))| *v).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let code = |entry: &Owned| {
        let key_ordinal = keys.iter().position(|k| *k == entry.0).unwrap() as u32;
        let version_ordinal = versions.iter().position(|v| *v == entry.1).unwrap() as u32;
        format::morton_of(key_ordinal, version_ordinal, keys.len() as u32, versions.len() as u32)
    };
    let found = collect(segment.changes(.., ..)).unwrap();
    assert_eq!(found.len(), model.len());
    assert!(found.windows(2).all(|pair| code(&pair[0]) < code(&pair[1])), "Z order");
}

fn model_history_keys(model: &Model) -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = model.keys().map(|(key, _)| key.clone()).collect();
    keys.dedup();
    keys
}

#[test]
fn an_empty_segment_opens_and_holds_nothing() {
    let bytes = build(&Model::new(), 4096);
    let segment = HistorySegment::open(&bytes).unwrap();
    assert_eq!((segment.entry_count(), segment.block_count()), (0, 0));
    assert_eq!(segment.get_at(b"a", Version::MAX), Ok(None));
    assert_eq!(segment.history(b"a").count(), 0);
    assert_eq!(segment.changes(.., ..).count(), 0);
    assert_eq!((segment.version_min(), segment.version_max()), (None, None));
}

#[test]
fn the_builder_refuses_entries_out_of_key_order() {
    let mut builder = HistoryBuilder::new(HistoryOptions::default());
    let add = |builder: &mut HistoryBuilder, key: &[u8], version: u64| {
        builder.add::<()>(key, Version::new(version), Some(b"v"))
    };
    assert_eq!(add(&mut builder, b"b", 5), Ok(()));
    assert_eq!(add(&mut builder, b"b", 5), Err(BuildError::OutOfOrder), "same version twice");
    assert_eq!(add(&mut builder, b"b", 6), Err(BuildError::OutOfOrder), "versions go down");
    assert_eq!(add(&mut builder, b"a", 1), Err(BuildError::OutOfOrder), "keys go up");
    assert_eq!(add(&mut builder, b"b", 4), Ok(()));
    assert_eq!(add(&mut builder, b"c", 9), Ok(()));
    assert_eq!(builder.entry_count(), 3);
    let mut bytes = Vec::new();
    builder.finish(&mut bytes).unwrap();
    let segment = HistorySegment::open(&bytes).unwrap();
    assert_eq!(segment.version_count(), 3);
    assert_eq!(segment.key_count(), 2);
}

#[test]
fn the_builder_refuses_entries_past_its_byte_bound_and_goes_on() {
    let options = HistoryOptions::default().with_data_bytes_max(120);
    let mut builder = HistoryBuilder::new(options);
    let value = [7u8; 30];
    let mut accepted = 0u64;
    let mut refused = None;
    for id in 0..10u64 {
        match builder.add::<()>(&id.to_be_bytes(), Version::new(1), Some(&value)) {
            Ok(()) => accepted += 1,
            Err(error) => {
                refused = Some(error);
                break;
            }
        }
    }
    assert!(
        matches!(refused, Some(BuildError::Limit(LimitError::TooLarge { len_max: 120, .. }))),
        "{refused:?}"
    );
    assert!(builder.data_bytes() <= 120, "the bound holds: {}", builder.data_bytes());
    assert_eq!(builder.entry_count(), accepted);
    assert_eq!(builder.add::<()>(b"\xff", Version::new(1), None), Ok(()), "a smaller entry fits");
    let mut bytes = Vec::new();
    builder.finish(&mut bytes).unwrap();
    assert_eq!(HistorySegment::open(&bytes).unwrap().entry_count(), accepted + 1);
}

#[test]
fn a_regular_segment_or_another_format_version_is_refused() {
    let bytes = build(&grid_model(), 64);
    let footer_at = bytes.len() - FOOTER_LEN;
    let mut newer = bytes.clone();
    newer[footer_at + 8..footer_at + 12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let covered = crate::checksum::checksum(&newer[footer_at..footer_at + FOOTER_LEN - 8]);
    let end = newer.len();
    newer[end - 8..].copy_from_slice(&covered.to_le_bytes());
    let error = HistorySegment::open(&newer).unwrap_err();
    assert_eq!(error.what, "unknown history segment format version");
    let mut regular = Vec::new();
    let mut builder = crate::segment::SegmentBuilder::new(
        &mut regular,
        crate::segment::SegmentOptions::default(),
    );
    builder.add(b"k", Version::new(1), Some(b"v")).unwrap();
    builder.finish().unwrap();
    let error = HistorySegment::open(&regular).unwrap_err();
    assert_eq!(error.what, "bad history segment magic");
}

/// `keys` keys (random-looking, or a 24-byte shared prefix and an 8-byte id) x `versions`
/// versions each, all versions distinct.
fn wide_model(key_count: u64, versions_per_key: u64, shared_prefix: bool) -> Model {
    let mut model = Model::new();
    for id in 0..key_count {
        let key = if shared_prefix {
            let mut key = b"/*namespace*database*tb*".to_vec();
            key.extend_from_slice(&id.to_be_bytes());
            key
        } else {
            id.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes().to_vec()
        };
        for round in 0..versions_per_key {
            let version = 1_000 + round * key_count + id;
            model.insert((key.clone(), Reverse(version)), Some(vec![round as u8; 20]));
        }
    }
    model
}

/// What fraction of its blocks a box reads, in thousandths, and that it answers right.
fn block_fraction(model: &Model, bytes: &[u8], keys: &KeyBounds, versions: &VersionBounds) -> u64 {
    let segment = HistorySegment::open(bytes).unwrap();
    let mut changes = segment.changes((bound_ref(&keys.0), bound_ref(&keys.1)), *versions);
    let mut found = collect(changes.by_ref()).unwrap();
    found.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    assert_eq!(found, model_changes(model, keys, versions));
    changes.stats().blocks_read * 1000 / segment.block_count() as u64
}

#[test]
fn narrow_boxes_read_few_blocks_in_both_dimensions() {
    for shared_prefix in [false, true] {
        let model = wide_model(400, 25, shared_prefix);
        let bytes = build(&model, 512);
        let keys = model_history_keys(&model);
        let versions: Vec<u64> = (1_000..1_000 + 400 * 25).collect();
        // All keys x 1% of the versions.
        let window = (
            Bound::Included(Version::new(versions[5_000])),
            Bound::Excluded(Version::new(versions[5_100])),
        );
        let all_keys = (Bound::Unbounded, Bound::Unbounded);
        let fraction = block_fraction(&model, &bytes, &all_keys, &window);
        // A block covers about sqrt(16 / 10,000) = 4% of each dimension: about 5% in all.
        // Byte interleaving read 40% here, no pruning 100%.
        assert!(fraction < 100, "all keys x 1% time read {fraction}/1000 of the blocks");
        // 1% of the keys x all versions.
        let few_keys = (Bound::Included(keys[200].clone()), Bound::Excluded(keys[204].clone()));
        let fraction =
            block_fraction(&model, &bytes, &few_keys, &(Bound::Unbounded, Bound::Unbounded));
        assert!(fraction < 100, "1% keys x all time read {fraction}/1000 of the blocks");
    }
}

/// Flips every byte of a small segment: each flip is refused at open, or every query returns
/// the right answer or a typed error; never a panic, never a wrong answer.
#[test]
fn every_flipped_byte_is_refused_or_harmless() {
    let model = grid_model();
    let bytes = build(&model, 40);
    let probe_keys = model_history_keys(&model);
    let boxes: Vec<(KeyBounds, VersionBounds)> = vec![
        ((Bound::Unbounded, Bound::Unbounded), (Bound::Unbounded, Bound::Unbounded)),
        (
            (Bound::Included(b"b".to_vec()), Bound::Excluded(b"c".to_vec())),
            (Bound::Included(Version::new(2)), Bound::Included(Version::new(4))),
        ),
    ];
    let mut refused_at_open = 0;
    for at in 0..bytes.len() {
        for flip in [0x01u8, 0x80, 0xFF] {
            let mut damaged = bytes.clone();
            damaged[at] ^= flip;
            let Ok(segment) = HistorySegment::open(&damaged) else {
                refused_at_open += 1;
                continue;
            };
            for key in &probe_keys {
                if let Ok(history) = collect(segment.history(key)) {
                    assert_eq!(history, model_history(&model, key), "byte {at} ^ {flip:#x}");
                }
                for version in 0..=7 {
                    if let Ok(found) = segment.get_at(key, Version::new(version)) {
                        let expected = model_get_at(&model, key, version);
                        assert_eq!(found.map(own), expected, "byte {at} ^ {flip:#x}");
                    }
                }
            }
            if let Ok(all) = collect(segment.iter_key_order()) {
                assert_eq!(all.len(), model.len(), "byte {at} ^ {flip:#x}");
                for entry in all {
                    let value = model.get(&(entry.0.clone(), Reverse(entry.1)));
                    assert_eq!(value, Some(&entry.2), "byte {at} ^ {flip:#x}");
                }
            }
            for (keys, versions) in &boxes {
                if let Ok(found) = segment_changes(&segment, keys, versions) {
                    assert_eq!(found, model_changes(&model, keys, versions), "byte {at}");
                }
            }
        }
    }
    assert!(refused_at_open > 0, "metadata flips are caught at open");
}

fn arb_model() -> impl Strategy<Value = (Model, bool)> {
    let version = 1..40u64;
    let value = proptest::option::of(proptest::collection::vec(any::<u8>(), 0..12));
    (any::<bool>()).prop_flat_map(move |shared_prefix| {
        let key = if shared_prefix {
            (0..24u64)
                .prop_map(|id| {
                    let mut key = [b'/'; 24].to_vec();
                    key.extend_from_slice(&id.to_be_bytes());
                    key
                })
                .boxed()
        } else {
            proptest::collection::vec(any::<u8>(), 0..6).boxed()
        };
        (
            proptest::collection::btree_map(
                (key, version.clone().prop_map(Reverse)),
                value.clone(),
                0..120,
            ),
            Just(shared_prefix),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn history_segments_answer_like_the_model(
        (model, _shared) in arb_model(),
        block_bytes_target in prop::sample::select(vec![1usize, 48, 256, 4096]),
        probes in proptest::collection::vec((0usize..200, 0u64..42, 0usize..200, 0u64..42), 1..24),
    ) {
        let bytes = build(&model, block_bytes_target);
        let keys = model_history_keys(&model);
        let mut probe_keys = keys.clone();
        probe_keys.push(b"absent".to_vec());
        probe_keys.push(Vec::new());
        let probe_versions: Vec<u64> = vec![0, 1, 7, 20, 39, 40, u64::MAX];
        check_against_model(&model, &bytes, &probe_keys, &probe_versions);
        let segment = HistorySegment::open(&bytes).unwrap();
        let key_at = |i: usize| probe_keys[i % probe_keys.len()].clone();
        for (a, t1, b, t2) in probes {
            let keys = (Bound::Included(key_at(a)), Bound::Excluded(key_at(b)));
            let versions = (Bound::Included(Version::new(t1)), Bound::Included(Version::new(t2)));
            let found = segment_changes(&segment, &keys, &versions).unwrap();
            prop_assert_eq!(found, model_changes(&model, &keys, &versions));
        }
    }
}

/// BIGMIN and LITMAX over the bit interleave, for every box and every code of a 3-bit grid,
/// against the brute-force answer.
#[test]
fn code_box_bigmin_and_litmax_on_the_bit_interleave_match_brute_force() {
    use crate::zkey::{CodeBox, INTERLEAVE_BITS_FIRST_MASK, interleave_bits};
    let code = |key: u32, version: u32| u128::from(interleave_bits(key, version));
    for (key_lo, key_hi, version_lo, version_hi) in (0..8u32).flat_map(|a| {
        (a..8).flat_map(move |b| (0..8u32).flat_map(move |c| (c..8).map(move |d| (a, b, c, d))))
    }) {
        let codes = CodeBox::new(
            code(key_lo, version_lo),
            code(key_hi, version_hi),
            INTERLEAVE_BITS_FIRST_MASK,
        )
        .expect("an ordered box");
        let inside: Vec<u128> = (0..64u128)
            .filter(|&c| {
                let (key, version) = (0..8u32)
                    .flat_map(|k| (0..8u32).map(move |v| (k, v)))
                    .find(|&(k, v)| code(k, v) == c)
                    .expect("every 6-bit code is a grid point");
                (key_lo..=key_hi).contains(&key) && (version_lo..=version_hi).contains(&version)
            })
            .collect();
        for probe in 0..64u128 {
            assert_eq!(codes.contains(probe), inside.contains(&probe));
            let bigmin = inside.iter().copied().find(|&c| c >= probe);
            let litmax = inside.iter().copied().rev().find(|&c| c <= probe);
            assert_eq!(codes.next_at_or_after(probe), bigmin, "{codes:?} {probe}");
            assert_eq!(codes.prev_at_or_before(probe), litmax, "{codes:?} {probe}");
        }
    }
}

/// With verified-block flags, a block is hashed on its first read and trusted afterwards: a
/// byte damaged after that read goes unnoticed by design, while the same damage is caught
/// without the flags; blocks never read keep their flags clear.
#[test]
fn verified_blocks_are_hashed_once() {
    use core::sync::atomic::{AtomicBool, Ordering};
    let model = grid_model();
    let mut bytes = build(&model, 30);
    let block_count = HistorySegment::open(&bytes).unwrap().block_count();
    let flags: Vec<AtomicBool> = (0..block_count).map(|_| AtomicBool::new(false)).collect();
    let key = b"a";
    {
        let segment = HistorySegment::open(&bytes).unwrap().with_verified_blocks(&flags);
        let history = collect(segment.history(key)).unwrap();
        assert_eq!(history, model_history(&model, key));
    }
    let set = flags.iter().filter(|flag| flag.load(Ordering::Relaxed)).count();
    assert!(set > 0 && set < block_count, "only the blocks read are marked: {set}");
    // Damage the value of "a" at version 5 (one of its bytes).
    let newest = HistorySegment::open(&bytes).unwrap().get_at(key, Version::new(5)).unwrap();
    let value = newest.unwrap().value.unwrap();
    let at = value.as_ptr() as usize - bytes.as_ptr() as usize;
    bytes[at] ^= 0xFF;
    let unverified = HistorySegment::open(&bytes).unwrap();
    assert!(unverified.get_at(key, Version::new(5)).is_err(), "without flags the damage is caught");
    let trusting = HistorySegment::open(&bytes).unwrap().with_verified_blocks(&flags);
    assert!(trusting.get_at(key, Version::new(5)).is_ok(), "a verified block is not hashed again");
    let too_few = &flags[..block_count - 1];
    let ignored = HistorySegment::open(&bytes).unwrap().with_verified_blocks(too_few);
    assert!(ignored.get_at(key, Version::new(5)).is_err(), "too few flags: every read verifies");
}

/// Blocks of very unequal lengths (a few large values among small ones), so that the block
/// found for an entry's offset is far from the proportional guess, below and above it: every
/// history and as-of read still finds its entries.
#[test]
fn entries_are_found_in_blocks_of_unequal_lengths() {
    let mut model = Model::new();
    for key in 0..64_u64 {
        for version in 1..=3_u64 {
            let large = (key % 16 == 3 && version == 2) || key == 60;
            let value = vec![u8::try_from(key).unwrap(); if large { 3000 } else { 4 }];
            model.insert((key.to_be_bytes().to_vec(), Reverse(version)), Some(value));
        }
    }
    let probe_keys: Vec<Vec<u8>> = (0..65_u64).map(|key| key.to_be_bytes().to_vec()).collect();
    for block_bytes_target in [1, 64, 4096] {
        let bytes = build(&model, block_bytes_target);
        check_against_model(&model, &bytes, &probe_keys, &[0, 1, 2, 3, 4]);
    }
}
