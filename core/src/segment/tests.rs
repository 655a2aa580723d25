//! The segment against a `BTreeMap` model, edge cases, builder errors and corruption.

use alloc::vec;
use alloc::vec::Vec;
use core::cmp::Reverse;
use core::ops::{Bound, RangeBounds};
use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::sample::{Index, select};

use super::*;
use crate::limits::KEY_LEN_MAX;
use crate::zkey::{ZBox, cmp_z};
use crate::{Corruption, Entry, LimitError, Version};

/// The model: every (key, version) with its value, in key order (key asc, version desc).
type Model = BTreeMap<(Vec<u8>, Reverse<u64>), Option<Vec<u8>>>;
/// An entry owned, to compare with the model.
type Owned = (Vec<u8>, u64, Option<Vec<u8>>);
type KeyBounds = (Bound<Vec<u8>>, Bound<Vec<u8>>);

fn own(entry: Entry<'_>) -> Owned {
    (entry.key.to_vec(), entry.version.get(), entry.value.map(<[u8]>::to_vec))
}

fn owned_model(model: &Model) -> impl Iterator<Item = Owned> + '_ {
    model.iter().map(|((key, version), value)| (key.clone(), version.0, value.clone()))
}

fn collect<'a>(
    items: impl Iterator<Item = Result<Entry<'a>, Corruption>>,
) -> Result<Vec<Owned>, Corruption> {
    items.map(|item| item.map(own)).collect()
}

/// Takes from the front and the back in turn and puts the answer back in forward order: the
/// two ends must meet without losing or repeating an item.
fn collect_both_ends<'a>(
    mut items: impl DoubleEndedIterator<Item = Result<Entry<'a>, Corruption>>,
) -> Result<Vec<Owned>, Corruption> {
    let (mut front, mut back) = (Vec::new(), Vec::new());
    while let Some(item) = items.next() {
        front.push(own(item?));
        let Some(item) = items.next_back() else { break };
        back.push(own(item?));
    }
    front.extend(back.into_iter().rev());
    Ok(front)
}

fn z_sorted(mut entries: Vec<Owned>) -> Vec<Owned> {
    entries.sort_by(|a, b| cmp_z(&a.0, Version::new(a.1), &b.0, Version::new(b.1)));
    entries
}

/// `entries` sorted into `order`.
fn sorted_for(order: Order, entries: Vec<Owned>) -> Vec<Owned> {
    match order {
        Order::Key => {
            let mut entries = entries;
            entries.sort_by(|a, b| (&a.0, Reverse(a.1)).cmp(&(&b.0, Reverse(b.1))));
            entries
        }
        _ => z_sorted(entries),
    }
}

/// Both orders, for the tests that run on each.
const ORDERS: [Order; 2] = [Order::Z, Order::Key];

/// Builds a Z-order segment of `model`'s entries.
fn build(model: &Model, block_bytes_target: usize) -> Vec<u8> {
    build_in(model, block_bytes_target, Order::Z)
}

/// Builds a segment of `model`'s entries in `order`.
fn build_in(model: &Model, block_bytes_target: usize, order: Order) -> Vec<u8> {
    let options =
        SegmentOptions::default().with_block_bytes_target(block_bytes_target).with_order(order);
    build_with(model, options)
}

/// Builds a segment of `model`'s entries with `options`.
fn build_with(model: &Model, options: SegmentOptions) -> Vec<u8> {
    let order = options.order();
    let mut builder = SegmentBuilder::new(Vec::new(), options);
    for (key, version, value) in sorted_for(order, owned_model(model).collect()) {
        builder.add(&key, Version::new(version), value.as_deref()).expect("entries in order");
    }
    let (bytes, summary) = builder.finish().expect("a Vec sink never fails");
    assert_eq!(summary.entry_count, model.len() as u64);
    assert_eq!(summary.file_len, bytes.len() as u64);
    bytes
}

fn as_slices(bounds: &KeyBounds) -> (Bound<&[u8]>, Bound<&[u8]>) {
    (bounds.0.as_ref().map(Vec::as_slice), bounds.1.as_ref().map(Vec::as_slice))
}

fn model_get_at(model: &Model, key: &[u8], version: u64) -> Option<Owned> {
    owned_model(model).find(|(k, v, _)| k.as_slice() == key && *v <= version)
}

fn model_history(model: &Model, key: &[u8]) -> Vec<Owned> {
    owned_model(model).filter(|(k, _, _)| k.as_slice() == key).collect()
}

fn model_range_at(model: &Model, keys: &KeyBounds, version: u64) -> Vec<Owned> {
    let mut out: Vec<Owned> = Vec::new();
    for (key, v, value) in owned_model(model) {
        let first_of_key = out.last().is_none_or(|last| last.0 != key);
        if as_slices(keys).contains(&key.as_slice()) && v <= version && first_of_key {
            out.push((key, v, value));
        }
    }
    out
}

fn model_changes(
    model: &Model,
    keys: &KeyBounds,
    versions: &(Bound<u64>, Bound<u64>),
) -> Vec<Owned> {
    let in_box =
        |(key, v, _): &Owned| as_slices(keys).contains(&key.as_slice()) && versions.contains(v);
    owned_model(model).filter(in_box).collect()
}

fn version_bounds(bounds: &(Bound<u64>, Bound<u64>)) -> (Bound<Version>, Bound<Version>) {
    (bounds.0.map(Version::new), bounds.1.map(Version::new))
}

/// Checks every query kind against the model.
fn check_queries(
    segment: &Segment<'_>,
    model: &Model,
    probe_keys: &[Vec<u8>],
    probe_versions: &[u64],
    key_ranges: &[KeyBounds],
    version_ranges: &[(Bound<u64>, Bound<u64>)],
) {
    let order = segment.order();
    let all: Vec<Owned> = owned_model(model).collect();
    assert_eq!(segment.first_key(), Ok(all.first().map(|e| e.0.as_slice())));
    assert_eq!(segment.last_key(), Ok(all.last().map(|e| e.0.as_slice())));
    assert_eq!(collect(segment.iter_key_order()), Ok(all.clone()));
    assert_eq!(collect(segment.iter()), Ok(sorted_for(order, all)));
    for key in probe_keys {
        assert_eq!(collect(segment.history(key)), Ok(model_history(model, key)), "{key:?}");
        for &version in probe_versions {
            let expected: Vec<Owned> =
                model_history(model, key).into_iter().filter(|e| e.1 <= version).collect();
            let got = collect(segment.history_at(key, Version::new(version)));
            assert_eq!(got, Ok(expected), "history of {key:?} at {version}");
            let got = segment.get_at(key, Version::new(version)).map(|e| e.map(own));
            assert_eq!(got, Ok(model_get_at(model, key, version)), "{key:?} at {version}");
        }
    }
    for keys in key_ranges {
        for &version in probe_versions {
            let got = collect(segment.range_at(as_slices(keys), Version::new(version)));
            let expected = model_range_at(model, keys, version);
            assert_eq!(got, Ok(expected.clone()), "{keys:?} at {version}");
            let got_rev = collect(segment.range_at(as_slices(keys), Version::new(version)).rev());
            let expected_rev: Vec<Owned> = expected.iter().rev().cloned().collect();
            assert_eq!(got_rev, Ok(expected_rev), "rev {keys:?} at {version}");
            let range = segment.range_at(as_slices(keys), Version::new(version));
            assert_eq!(collect_both_ends(range), Ok(expected), "both ends {keys:?} at {version}");
        }
        for versions in version_ranges {
            let mut changes = segment.changes(as_slices(keys), version_bounds(versions));
            let got = collect(&mut changes);
            let expected = sorted_for(order, model_changes(model, keys, versions));
            assert_eq!(got, Ok(expected.clone()), "{keys:?} x {versions:?}");
            let stats = changes.stats();
            let examined = match order {
                Order::Key => stats.blocks.entries_decoded,
                _ => stats.scan.entries_touched,
            };
            assert!(examined >= expected.len() as u64);
        }
    }
}

const ALPHABET: &[u8] = &[0, 1, b'a', b'b', 0xff];

fn key_strategy() -> impl Strategy<Value = Vec<u8>> + Clone {
    prop_oneof![
        prop::collection::vec(select(ALPHABET), 0..20),
        // Many keys sharing their first 8 bytes.
        prop::collection::vec(select(ALPHABET), 0..6).prop_map(|suffix| [
            b"sharedpf".as_slice(),
            &suffix
        ]
        .concat()),
        // Keys with trailing zero bytes: b"a" and b"a\0" have the same prefix.
        prop::collection::vec(select(ALPHABET), 0..4).prop_map(|mut key| {
            key.push(0);
            key
        }),
    ]
}

fn version_strategy() -> impl Strategy<Value = u64> + Clone {
    prop_oneof![0u64..40, any::<u64>(), Just(u64::MAX), Just(0)]
}

fn bound_strategy<T: core::fmt::Debug + Clone>(
    value: impl Strategy<Value = T> + Clone,
) -> impl Strategy<Value = Bound<T>> {
    prop_oneof![
        value.clone().prop_map(Bound::Included),
        value.prop_map(Bound::Excluded),
        Just(Bound::Unbounded),
    ]
}

type Case = (Model, usize, Vec<Vec<u8>>, Vec<u64>, Vec<KeyBounds>, Vec<(Bound<u64>, Bound<u64>)>);

fn case_strategy() -> impl Strategy<Value = Case> {
    let pool = prop::collection::vec(key_strategy(), 1..10);
    pool.prop_flat_map(|pool| {
        let entry = (
            any::<Index>(),
            version_strategy(),
            prop::option::of(prop::collection::vec(any::<u8>(), 0..40)),
        );
        let pool_key = select(pool.clone());
        let any_key = prop_oneof![pool_key.clone(), key_strategy()];
        let entries = prop::collection::vec(entry, 0..80);
        let key_range = (bound_strategy(any_key.clone()), bound_strategy(any_key.clone()));
        let version_range =
            (bound_strategy(version_strategy()), bound_strategy(version_strategy()));
        (
            Just(pool),
            entries,
            prop_oneof![Just(1usize), 64usize..512],
            prop::collection::vec(any_key, 0..4),
            prop::collection::vec(version_strategy(), 0..4),
            prop::collection::vec(key_range, 1..4),
            prop::collection::vec(version_range, 1..4),
        )
    })
    .prop_map(
        |(
            pool,
            entries,
            block_bytes_target,
            extra_keys,
            mut versions,
            key_ranges,
            version_ranges,
        )| {
            let mut model = Model::new();
            for (index, version, value) in entries {
                model.insert((index.get(&pool).clone(), Reverse(version)), value);
            }
            let mut keys = pool;
            keys.extend(extra_keys);
            for (_, version) in model.keys() {
                versions.extend([
                    version.0,
                    version.0.saturating_sub(1),
                    version.0.saturating_add(1),
                ]);
            }
            versions.extend([0, u64::MAX]);
            versions.sort_unstable();
            versions.dedup();
            let mut ranges = key_ranges;
            ranges.push((Bound::Unbounded, Bound::Unbounded));
            (model, block_bytes_target, keys, versions, ranges, version_ranges)
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn queries_match_the_model(case in case_strategy()) {
        for order in ORDERS {
            check_case_in(&case, order)?;
        }
    }

    /// Key-ordered segments with a restart every 1 to 11 entries, and without restarts (0,
    /// the older format), answer every query as the model does.
    #[test]
    fn key_order_at_every_restart_interval_matches_the_model(
        case in case_strategy(),
        interval in 0usize..12,
    ) {
        let options = SegmentOptions::default()
            .with_block_bytes_target(case.1)
            .with_order(Order::Key)
            .with_restart_interval(interval);
        let bytes = build_with(&case.0, options);
        let segment = Segment::open(&bytes).expect("a built segment opens");
        let (model, _, keys, versions, key_ranges, version_ranges) = &case;
        check_queries(&segment, model, keys, versions, key_ranges, version_ranges);
    }

    #[test]
    fn open_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        if let Ok(segment) = Segment::open(&bytes) {
            let _ = run_fixed_queries(&segment);
        }
    }

    /// Damage that passes every checksum (the sections and footer are resealed): only the
    /// structural checks stand between these bytes and the decoders. No panic allowed.
    #[test]
    fn resealed_damage_never_panics(
        (at, byte) in (any::<Index>(), any::<u8>()),
        block_bytes_target in 32usize..128,
        order in select(ORDERS.to_vec()),
    ) {
        let mut bytes = build_in(&small_model(), block_bytes_target, order);
        let at = at.index(bytes.len() - FOOTER_LEN);
        bytes[at] = byte;
        reseal(&mut bytes);
        if let Ok(segment) = Segment::open(&bytes) {
            let _ = run_fixed_queries(&segment);
        }
    }
}

/// Builds the case's model in `order` and checks every query against the model, with and
/// without fence keys.
fn check_case_in(case: &Case, order: Order) -> Result<(), TestCaseError> {
    let (model, block_bytes_target, keys, versions, key_ranges, version_ranges) = case;
    let bytes = build_in(model, *block_bytes_target, order);
    let segment = Segment::open(&bytes).expect("a built segment opens");
    prop_assert_eq!(segment.order(), order);
    prop_assert_eq!(segment.entry_count(), model.len() as u64);
    let keys_distinct: std::collections::BTreeSet<_> = owned_model(model).map(|e| e.0).collect();
    let key_count = keys_distinct.len();
    prop_assert_eq!(segment.key_count(), key_count as u64);
    prop_assert_eq!(segment.version_min(), model.keys().map(|k| Version::new(k.1.0)).min());
    prop_assert_eq!(segment.version_max(), model.keys().map(|k| Version::new(k.1.0)).max());
    check_queries(&segment, model, keys, versions, key_ranges, version_ranges);
    for bytes_max in [usize::MAX, 64] {
        if let Some(fence_keys) = FenceKeys::build(&segment, bytes_max).expect("undamaged") {
            let fenced = segment.with_fence_keys(fence_keys.view());
            check_queries(&fenced, model, keys, versions, key_ranges, version_ranges);
        }
    }
    Ok(())
}

/// A small model with shared prefixes, trailing zeros, tombstones and several versions.
fn small_model() -> Model {
    let mut model = Model::new();
    let keys: [&[u8]; 6] = [b"", b"a", b"a\0", b"sharedpfx", b"sharedpfy", b"zz"];
    for (index, key) in keys.iter().enumerate() {
        for version in [3u64, 7, 12] {
            let value = (version != 7 || index % 2 == 0).then(|| vec![index as u8; index + 1]);
            model.insert((key.to_vec(), Reverse(version + index as u64)), value);
        }
    }
    model
}

/// Every query kind over fixed arguments.
fn run_fixed_queries(segment: &Segment<'_>) -> Vec<Result<Vec<Owned>, Corruption>> {
    let keys: [&[u8]; 5] = [b"", b"a", b"a\0", b"sharedpfy", b"zz"];
    let mut answers = Vec::new();
    for key in keys {
        for version in [0u64, 5, 9, 100] {
            let got = segment
                .get_at(key, Version::new(version))
                .map(|e| e.into_iter().map(own).collect());
            answers.push(got);
        }
        answers.push(collect(segment.history(key)));
    }
    for version in [4u64, 10, u64::MAX] {
        answers.push(collect(segment.range_at(.., Version::new(version))));
        answers.push(collect(
            segment.range_at(b"a".as_slice()..b"sharedpfy".as_slice(), Version::new(version)),
        ));
    }
    answers.push(collect(segment.changes(.., ..)));
    answers.push(collect(
        segment.changes(b"a\0".as_slice()..=b"zz".as_slice(), Version::new(5)..Version::new(14)),
    ));
    answers.push(collect(segment.iter()));
    answers.push(collect(segment.iter_key_order()));
    answers
}

/// Recomputes every checksum a damaged segment's footer can still locate.
fn reseal(bytes: &mut [u8]) {
    let footer_at = bytes.len() - FOOTER_LEN;
    let read_u64 =
        |bytes: &[u8], at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    for section in 0..4 {
        let at = footer_at + 48 + section * 24;
        let (offset, len) = (read_u64(bytes, at) as usize, read_u64(bytes, at + 8) as usize);
        if let Some(section_bytes) = offset.checked_add(len).and_then(|end| bytes.get(offset..end))
        {
            let sum = crate::checksum::checksum(section_bytes);
            bytes[at + 16..at + 24].copy_from_slice(&sum.to_le_bytes());
        }
    }
    let sum = crate::checksum::checksum(&bytes[footer_at..footer_at + 144]);
    bytes[footer_at + 144..].copy_from_slice(&sum.to_le_bytes());
}

#[test]
fn small_model_matches() {
    let model = small_model();
    for (block_bytes_target, order) in
        [1, 40, 100, 4096].into_iter().flat_map(|b| ORDERS.map(|o| (b, o)))
    {
        let bytes = build_in(&model, block_bytes_target, order);
        let segment = Segment::open(&bytes).unwrap();
        let keys: Vec<Vec<u8>> = model.keys().map(|k| k.0.clone()).chain([b"b".to_vec()]).collect();
        let versions: Vec<u64> = (0..20).chain([u64::MAX]).collect();
        let all = (Bound::Unbounded, Bound::Unbounded);
        let some = (Bound::Excluded(b"a".to_vec()), Bound::Included(b"sharedpfx".to_vec()));
        let version_ranges =
            [(Bound::Unbounded, Bound::Unbounded), (Bound::Included(5), Bound::Excluded(12))];
        check_queries(&segment, &model, &keys, &versions, &[all, some], &version_ranges);
    }
}

#[test]
fn empty_segment() {
    let bytes = build(&Model::new(), 4096);
    assert_eq!(bytes.len(), FOOTER_LEN);
    let segment = Segment::open(&bytes).unwrap();
    assert_eq!((segment.entry_count(), segment.key_count(), segment.block_count()), (0, 0, 0));
    assert_eq!((segment.version_min(), segment.version_max()), (None, None));
    assert_eq!(segment.get_at(b"", Version::MAX), Ok(None));
    assert!(run_fixed_queries(&segment).iter().all(|a| a.as_ref().is_ok_and(Vec::is_empty)));
}

#[test]
fn one_entry() {
    let mut model = Model::new();
    model.insert((b"k".to_vec(), Reverse(5)), Some(b"v".to_vec()));
    let bytes = build(&model, 4096);
    let segment = Segment::open(&bytes).unwrap();
    assert_eq!(segment.block_count(), 1);
    let entry = segment.get_at(b"k", Version::new(9)).unwrap().unwrap();
    assert_eq!(own(entry), (b"k".to_vec(), 5, Some(b"v".to_vec())));
    assert_eq!(segment.get_at(b"k", Version::new(4)), Ok(None));
    assert_eq!(segment.get_at(b"k\0", Version::new(9)), Ok(None));
}

#[test]
fn largest_key_and_a_value_larger_than_the_block() {
    let mut model = Model::new();
    let long_key = vec![0xAB; KEY_LEN_MAX];
    model.insert((long_key.clone(), Reverse(1)), Some(vec![1; 10]));
    model.insert((b"big".to_vec(), Reverse(2)), Some(vec![7; 5000]));
    model.insert((b"small".to_vec(), Reverse(3)), None);
    let bytes = build(&model, 256);
    let segment = Segment::open(&bytes).unwrap();
    assert_eq!(segment.block_count(), 3, "each oversized entry is a block of its own");
    let found = segment.get_at(&long_key, Version::MAX).unwrap().unwrap();
    assert_eq!(found.key, long_key.as_slice());
    assert_eq!(segment.get_at(b"big", Version::MAX).unwrap().unwrap().value, Some(&[7; 5000][..]));
    assert_eq!(segment.get_at(b"small", Version::MAX).unwrap().unwrap().value, None);
    assert_eq!(collect(segment.iter()).unwrap().len(), 3);
}

#[test]
fn builder_refuses_out_of_order_and_oversized_entries() {
    let mut builder = SegmentBuilder::new(Vec::new(), SegmentOptions::default());
    builder.add(b"b", Version::new(1), Some(b"x")).unwrap();
    assert_eq!(builder.add(b"a", Version::new(1), Some(b"y")), Err(BuildError::OutOfOrder));
    assert_eq!(builder.add(b"b", Version::new(1), Some(b"z")), Err(BuildError::OutOfOrder));
    let too_long = vec![0; KEY_LEN_MAX + 1];
    let refused = builder.add(&too_long, Version::new(9), None);
    assert_eq!(refused, Err(BuildError::Limit(LimitError::KeyTooLarge { len: KEY_LEN_MAX + 1 })));
    let huge = vec![0; crate::limits::VALUE_LEN_MAX + 1];
    let refused = builder.add(b"c", Version::new(9), Some(&huge));
    assert!(matches!(refused, Err(BuildError::Limit(LimitError::ValueTooLarge { .. }))));
    builder.add(b"b", Version::new(2), None).unwrap();
    let (bytes, summary) = builder.finish().unwrap();
    assert_eq!((summary.entry_count, summary.key_count), (2, 1));
    let segment = Segment::open(&bytes).unwrap();
    let versions: Vec<u64> = segment.history(b"b").map(|e| e.unwrap().version.get()).collect();
    assert_eq!(versions, [2, 1], "only the accepted entries were written");
}

#[test]
fn slice_sink_exact_fits_and_too_small_fails() {
    let model = small_model();
    let expected = build(&model, 64);
    let add_all = |builder: &mut SegmentBuilder<SliceSink<'_>, VecStorage>| {
        for (key, version, value) in z_sorted(owned_model(&model).collect()) {
            builder.add(&key, Version::new(version), value.as_deref())?;
        }
        Ok::<(), BuildError<SliceFull>>(())
    };
    let mut buffer = vec![0; expected.len()];
    let options = SegmentOptions::default().with_block_bytes_target(64);
    let mut builder = SegmentBuilder::new(SliceSink::new(&mut buffer), options);
    add_all(&mut builder).unwrap();
    let (sink, _) = builder.finish().unwrap();
    assert_eq!(sink.into_written(), expected.as_slice());

    let mut buffer = vec![0; expected.len() - 1];
    let mut builder = SegmentBuilder::new(SliceSink::new(&mut buffer), options);
    add_all(&mut builder).unwrap();
    assert!(matches!(builder.finish(), Err(BuildError::Sink(SliceFull { .. }))));

    let mut buffer = vec![0; 100];
    let mut builder = SegmentBuilder::new(SliceSink::new(&mut buffer), options);
    assert!(matches!(add_all(&mut builder), Err(BuildError::Sink(SliceFull { .. }))));
    assert_eq!(builder.add(b"~", Version::MAX, None), Err(BuildError::Failed));
}

#[test]
fn every_truncation_fails_to_open() {
    let bytes = build(&small_model(), 64);
    for len in 0..bytes.len() {
        assert!(Segment::open(&bytes[..len]).is_err(), "truncated to {len}");
    }
}

/// Flips every bit of a small segment: opening fails, or every query returns the right answer
/// or `Corruption`; never a wrong answer, never a panic.
#[test]
fn every_bit_flip_is_detected_or_harmless() {
    for order in ORDERS {
        every_bit_flip_is_detected_or_harmless_in(order);
    }
}

fn every_bit_flip_is_detected_or_harmless_in(order: Order) {
    let bytes = build_in(&small_model(), 64, order);
    let expected = run_fixed_queries(&Segment::open(&bytes).unwrap());
    assert!(expected.iter().all(Result::is_ok));
    let mut damaged = bytes.clone();
    let mut opened = 0;
    for bit in 0..bytes.len() * 8 {
        damaged[bit / 8] ^= 1 << (bit % 8);
        if let Ok(segment) = Segment::open(&damaged) {
            opened += 1;
            for (got, want) in run_fixed_queries(&segment).iter().zip(&expected) {
                assert!(got.is_err() || got == want, "bit {bit}: {got:?} != {want:?}");
            }
        }
        damaged[bit / 8] ^= 1 << (bit % 8);
    }
    // Only flips inside data blocks leave the segment openable.
    assert!(opened > 0 && opened < bytes.len() * 8);
}

/// A narrow key range reads only the blocks whose zone maps meet it.
#[test]
fn changes_prune_blocks_by_zone_map() {
    let mut model = Model::new();
    for key in 0u16..200 {
        for version in [1u64, 2] {
            model.insert((key.to_be_bytes().to_vec(), Reverse(version)), Some(vec![0; 8]));
        }
    }
    let bytes = build(&model, 128);
    let segment = Segment::open(&bytes).unwrap();
    let (start, end) = (10u16.to_be_bytes(), 20u16.to_be_bytes());
    let mut changes = segment.changes(start.as_slice()..end.as_slice(), ..);
    assert_eq!(collect(&mut changes).unwrap().len(), 20);
    let stats = changes.stats();
    assert!(stats.blocks.blocks_read * 4 < segment.block_count() as u64, "{stats:?}");
    assert!(stats.blocks.blocks_pruned > 0, "{stats:?}");
}

/// A small segment of many blocks: keys `k000..k040` at versions 1 and 2.
fn many_block_segment() -> Vec<u8> {
    let mut model = Model::new();
    for key in 0..40u32 {
        for version in 1..=2u64 {
            let value = Some(alloc::format!("value {key} {version}").into_bytes());
            model.insert((alloc::format!("k{key:03}").into_bytes(), Reverse(version)), value);
        }
    }
    build(&model, 64)
}

#[test]
fn verified_blocks_are_hashed_once_and_damage_is_still_caught_the_first_time() {
    use core::sync::atomic::{AtomicBool, Ordering};
    let bytes = many_block_segment();
    let plain = Segment::open(&bytes).unwrap();
    let flags: Vec<AtomicBool> = (0..plain.block_count()).map(|_| AtomicBool::new(false)).collect();
    let remembering = plain.with_verified_blocks(&flags);
    let found = remembering.get_at(b"k007", Version::new(2)).unwrap().unwrap();
    assert_eq!(found.value, Some(&b"value 7 2"[..]));
    let set = flags.iter().filter(|f| f.load(Ordering::Relaxed)).count();
    assert!(set >= 1 && set < flags.len(), "only the blocks read are marked: {set}");
    assert_eq!(remembering.iter().count(), 80);
    assert!(flags.iter().all(|f| f.load(Ordering::Relaxed)), "a full scan verified every block");

    // Damage in a data block: caught on first read, with or without remembered flags.
    let mut damaged = bytes.clone();
    damaged[20] ^= 0x40;
    let fresh: Vec<AtomicBool> = (0..plain.block_count()).map(|_| AtomicBool::new(false)).collect();
    let damaged_segment = Segment::open(&damaged).unwrap().with_verified_blocks(&fresh);
    assert!(damaged_segment.iter().any(|entry| entry.is_err()), "the damaged block is refused");
    assert!(!fresh[0].load(Ordering::Relaxed), "a block that failed is not marked");

    // Too few flags: not used, every read verifies.
    let short = [AtomicBool::new(false)];
    let unused = plain.with_verified_blocks(&short);
    assert_eq!(unused.iter().count(), 80);
    assert!(!short[0].load(Ordering::Relaxed));
}

#[test]
fn metadata_offset_is_read_from_the_footer_alone() {
    let bytes = build(&small_model(), 40);
    let segment = Segment::open(&bytes).unwrap();
    let offset = Segment::metadata_offset(&bytes).unwrap();
    assert_eq!(offset, segment.data_len());
    assert!(offset > 0 && offset < bytes.len() as u64);
    // Damage every metadata section but the footer: the offset is still read.
    let mut damaged = bytes.clone();
    for byte in &mut damaged[offset as usize..bytes.len() - FOOTER_LEN] {
        *byte ^= 0xFF;
    }
    assert_eq!(Segment::metadata_offset(&damaged), Ok(offset));
    assert!(Segment::open(&damaged).is_err());
    // A damaged footer, or too few bytes, is corruption.
    let mut damaged = bytes.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    assert!(Segment::metadata_offset(&damaged).is_err());
    assert!(Segment::metadata_offset(&bytes[..FOOTER_LEN - 1]).is_err());
    assert_eq!(Segment::metadata_offset(&build(&Model::new(), 4096)), Ok(0));
}

/// A key range and an inclusive version range.
type SpanCase<'k> = (Bound<&'k [u8]>, Bound<&'k [u8]>, u64, u64);

#[test]
fn data_span_holds_every_entry_of_the_box() {
    for order in ORDERS {
        data_span_holds_every_entry_of_the_box_in(order);
    }
}

fn data_span_holds_every_entry_of_the_box_in(order: Order) {
    let model = small_model();
    let bytes = build_in(&model, 40, order);
    let segment = Segment::open(&bytes).unwrap();
    assert!(segment.block_count() > 3, "several blocks to choose from");
    let data = bytes.as_ptr() as usize;
    let cases: [SpanCase<'_>; 5] = [
        (Bound::Unbounded, Bound::Unbounded, 0, u64::MAX),
        (Bound::Included(b"a"), Bound::Excluded(b"sharedpfy"), 0, u64::MAX),
        (Bound::Included(b"sharedpfx"), Bound::Included(b"zz"), 5, 12),
        (Bound::Included(b"zz"), Bound::Unbounded, 0, 3),
        (Bound::Included(b"a"), Bound::Included(b"a"), 8, 9),
    ];
    for (start, end, version_lo, version_hi) in cases {
        let versions = Version::new(version_lo)..=Version::new(version_hi);
        let zbox = ZBox::covering(&(start, end), &versions).unwrap();
        let span = segment.data_span(&zbox);
        assert!(span.end <= segment.data_len(), "{span:?}");
        let changes: Vec<Entry<'_>> =
            segment.changes((start, end), versions.clone()).map(Result::unwrap).collect();
        for entry in &changes {
            let offset = (entry.key.as_ptr() as usize - data) as u64;
            assert!(span.contains(&offset), "{entry:?} at {offset} outside {span:?}");
        }
        if changes.is_empty() {
            continue;
        }
        assert!(span.end - span.start < segment.data_len() || start == Bound::Unbounded);
    }
    assert_eq!(
        segment.data_span(&ZBox::covering(&(..), &(..)).unwrap()),
        0..segment.data_len(),
        "the whole box spans the whole data region"
    );
    let empty = build_in(&Model::new(), 4096, order);
    let empty = Segment::open(&empty).unwrap();
    assert_eq!(empty.data_span(&ZBox::covering(&(..), &(..)).unwrap()), 0..0);
}

/// A segment of `key_count` keys sharing their first 8 bytes (so the on-disk fences cannot
/// narrow a search), 3 versions each.
fn shared_prefix_model(key_count: u32) -> Model {
    let mut model = Model::new();
    for key in 0..key_count {
        for version in [1u64, 5, 9] {
            let key = alloc::format!("user:000{key:05}").into_bytes();
            model.insert((key, Reverse(version)), Some(alloc::format!("v{version}").into_bytes()));
        }
    }
    model
}

#[test]
fn fence_keys_answer_as_the_key_index_at_every_budget() {
    let model = shared_prefix_model(300);
    let bytes = build(&model, 256);
    let plain = Segment::open(&bytes).unwrap();
    let mut strides = Vec::new();
    for bytes_max in [usize::MAX, 4096, 1500, 800, 520] {
        let fence_keys = FenceKeys::build(&plain, bytes_max).unwrap().unwrap();
        assert!(fence_keys.heap_bytes() <= bytes_max);
        strides.push(fence_keys.view().stride());
        let fenced = plain.with_fence_keys(fence_keys.view());
        let keys: Vec<Vec<u8>> = (0..302u32)
            .step_by(7)
            .map(|key| alloc::format!("user:000{key:05}").into_bytes())
            .chain([b"".to_vec(), b"user:".to_vec(), b"zzz".to_vec()])
            .collect();
        let ranges = vec![
            (Bound::Included(keys[3].clone()), Bound::Excluded(keys[9].clone())),
            (Bound::Excluded(keys[0].clone()), Bound::Included(keys[40].clone())),
            (Bound::Unbounded, Bound::Unbounded),
        ];
        let versions = [0, 1, 4, 5, 9, u64::MAX];
        check_queries(
            &fenced,
            &model,
            &keys,
            &versions,
            &ranges,
            &[(Bound::Unbounded, Bound::Unbounded)],
        );
    }
    assert_eq!(strides[0], 16);
    assert!(strides.windows(2).all(|w| w[0] <= w[1]) && strides[4] > 16, "{strides:?}");
    assert!(FenceKeys::build(&plain, 8).unwrap().is_none(), "not even one sample fits");
    let other = build(&shared_prefix_model(10), 256);
    let fence_keys = FenceKeys::build(&plain, usize::MAX).unwrap().unwrap();
    let mismatched = Segment::open(&other).unwrap().with_fence_keys(fence_keys.view());
    let (key, version) = (b"user:00000003".as_slice(), Version::new(9));
    assert_eq!(mismatched.get_at(key, version).unwrap().unwrap().key, key, "samples ignored");
}

/// `get_at_fenced` asks for fence keys only where the on-disk fences leave a wide window (keys
/// sharing their first 8 bytes), and answers as `get_at` with them, without them, and for
/// keys whose prefixes differ.
#[test]
fn get_at_fenced_asks_for_fence_keys_only_for_a_wide_window() {
    let shared = shared_prefix_model(300);
    let bytes = build(&shared, 256);
    let segment = Segment::open(&bytes).unwrap();
    let fence_keys = FenceKeys::build(&segment, usize::MAX).unwrap().unwrap();
    for index in (0..302u32).step_by(5) {
        let key = alloc::format!("user:000{index:05}").into_bytes();
        for version in [0u64, 4, 5, u64::MAX] {
            let expected = model_get_at(&shared, &key, version);
            let mut asked = false;
            let found = segment.get_at_fenced(&key, Version::new(version), || {
                asked = true;
                Some(fence_keys.view())
            });
            let found = found.unwrap().map(own);
            assert_eq!(found, expected, "{index} at {version}");
            assert!(asked || expected.is_none(), "{index}: a shared prefix asks");
            let without = segment.get_at_fenced(&key, Version::new(version), || None);
            assert_eq!(without.unwrap().map(own), expected);
        }
    }
    let mut distinct = Model::new();
    for index in 0..300u32 {
        let key = alloc::format!("{:08x}", index.wrapping_mul(2_654_435_761)).into_bytes();
        distinct.insert((key, Reverse(1)), Some(vec![1]));
    }
    let bytes = build(&distinct, 256);
    let segment = Segment::open(&bytes).unwrap();
    for (key, _) in distinct.keys() {
        let found = segment.get_at_fenced(key, Version::MAX, || panic!("a narrow window asks"));
        assert_eq!(found.unwrap().unwrap().key, key.as_slice());
    }
}

/// Damage in a data block is caught by the read that touches it, fence keys or not, and by
/// a fence-key build that samples it.
#[test]
fn fence_keys_do_not_hide_a_damaged_block() {
    let bytes = build(&shared_prefix_model(200), 256);
    let fence_keys =
        FenceKeys::build(&Segment::open(&bytes).unwrap(), usize::MAX).unwrap().unwrap();
    let mut damaged = bytes.clone();
    damaged[40] ^= 0x10;
    let segment = Segment::open(&damaged).unwrap();
    let fenced = segment.with_fence_keys(fence_keys.view());
    let first = fenced.iter().next().unwrap().unwrap_err();
    assert_eq!(first.offset, 0);
    let errors = (0..200u32)
        .map(|key| alloc::format!("user:000{key:05}").into_bytes())
        .filter(|key| fenced.get_at(key, Version::MAX).is_err())
        .count();
    assert!(errors > 0, "a point read of a key in the damaged block fails");
    let data_len = usize::try_from(segment.data_len()).unwrap();
    let mut everywhere = bytes.clone();
    for at in (0..data_len).step_by(16) {
        everywhere[at] ^= 0x10;
    }
    let segment = Segment::open(&everywhere).unwrap();
    assert!(FenceKeys::build(&segment, usize::MAX).is_err(), "the build reads damaged blocks");
}

/// `data_len` is every byte written or buffered so far (what a caller splits on), and matches
/// the data region of the finished file; `memory_bytes` counts each entry's key and reference.
#[test]
fn builder_reports_its_data_length_and_metadata_memory() {
    let options = SegmentOptions::default().with_block_bytes_target(256);
    let mut builder = SegmentBuilder::new(Vec::new(), options);
    assert_eq!((builder.data_len(), builder.entry_count()), (0, 0));
    let mut previous = 0;
    for index in 0..100u64 {
        let key = index.to_be_bytes();
        builder.add(&key, Version::new(1), Some(&[7; 50])).unwrap();
        assert!(builder.data_len() > previous, "entry {index}");
        previous = builder.data_len();
        let metadata = builder.entry_count() * (KEY_REF_BYTES + key.len()) as u64;
        assert!(builder.memory_bytes() >= metadata, "entry {index}");
    }
    // Entries of 14 + 8 + 50 bytes, three to a block: 33 blocks with their checksums, and
    // one entry in the block being filled.
    assert_eq!(previous, 33 * (3 * 72 + 8) + 72);
    let (bytes, _) = builder.finish().unwrap();
    let segment = Segment::open(&bytes).unwrap();
    assert_eq!(segment.data_len(), previous + 8, "the last block's checksum is added");
}

/// Room for any `case_strategy` model: 80 entries of keys under 26 bytes and values under 40,
/// blocks up to 512 bytes or one entry.
type CaseStorage = FixedStorage<80, 2080, 600, 80, { filter_block_count(80) }>;

/// Builds `model` with fixed storage into a buffer; the bytes written.
fn build_fixed<M: BuilderStorage>(
    model: &Model,
    block_bytes_target: usize,
    order: Order,
    buffer: &mut [u8],
) -> Result<usize, BuildError<SliceFull>> {
    let options =
        SegmentOptions::default().with_block_bytes_target(block_bytes_target).with_order(order);
    let mut builder = SegmentBuilder::<_, M>::with_storage(SliceSink::new(buffer), options);
    for (key, version, value) in sorted_for(order, owned_model(model).collect()) {
        builder.add(&key, Version::new(version), value.as_deref())?;
    }
    let (sink, summary) = builder.finish()?;
    assert_eq!(summary.file_len, sink.written().len() as u64);
    Ok(sink.written().len())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// The no-alloc builder is the same code over other lists: byte for byte the same file.
    #[test]
    fn fixed_storage_writes_the_same_bytes_as_vec_storage(case in case_strategy()) {
        let (model, block_bytes_target, ..) = case;
        for order in ORDERS {
            let expected = build_in(&model, block_bytes_target, order);
            let mut buffer = vec![0; expected.len() + 16];
            let len = build_fixed::<CaseStorage>(&model, block_bytes_target, order, &mut buffer)
                .expect("the case fits the storage");
            prop_assert_eq!(&buffer[..len], expected.as_slice());
        }
    }
}

/// Adds `entries` (in Z order) to a fixed builder until one is refused; returns that error,
/// the entries accepted and the finished segment's bytes (or the error `finish` gave).
fn fill_until_refused<M: BuilderStorage>(
    entries: &[Owned],
    block_bytes_target: usize,
    buffer: &mut [u8],
) -> (Option<BuildError<SliceFull>>, usize, Result<usize, BuildError<SliceFull>>) {
    let options = SegmentOptions::default().with_block_bytes_target(block_bytes_target);
    let mut builder = SegmentBuilder::<_, M>::with_storage(SliceSink::new(buffer), options);
    let mut refused = None;
    let mut accepted = 0;
    for (key, version, value) in entries {
        match builder.add(key, Version::new(*version), value.as_deref()) {
            Ok(()) => accepted += 1,
            Err(error) => {
                refused = Some(error);
                break;
            }
        }
    }
    let finished = builder.finish().map(|(sink, _)| sink.written().len());
    (refused, accepted, finished)
}

#[test]
fn fixed_storage_refuses_past_each_capacity_and_finishes_what_it_kept() {
    let entries = z_sorted((0..40u8).map(|i| (vec![b'k', i], 1, Some(vec![i; 20]))).collect());
    let full = |what, capacity| Some(BuildError::Storage(StorageFull { what, capacity }));
    let mut buffer = vec![0; 1 << 16];
    // (refusal expected, entries kept): each storage is short of one capacity only.
    let (refused, accepted, finished) =
        fill_until_refused::<FixedStorage<7, 1024, 512, 64, 4>>(&entries, 128, &mut buffer);
    assert_eq!((refused, accepted), (full("entries", 7), 7));
    assert_eq!(Segment::open(&buffer[..finished.unwrap()]).unwrap().entry_count(), 7);
    let (refused, accepted, finished) =
        fill_until_refused::<FixedStorage<64, 11, 512, 64, 4>>(&entries, 128, &mut buffer);
    assert_eq!((refused, accepted), (full("key bytes", 11), 5));
    assert_eq!(Segment::open(&buffer[..finished.unwrap()]).unwrap().key_count(), 5);
    let (refused, accepted, finished) =
        fill_until_refused::<FixedStorage<64, 1024, 30, 64, 4>>(&entries, 128, &mut buffer);
    assert_eq!((refused, accepted), (full("block bytes", 30), 0), "an entry is 36 bytes");
    assert_eq!(Segment::open(&buffer[..finished.unwrap()]).unwrap().entry_count(), 0);
    let (refused, accepted, finished) =
        fill_until_refused::<FixedStorage<64, 1024, 512, 3, 4>>(&entries, 72, &mut buffer);
    assert_eq!((refused, accepted), (full("blocks", 3), 6), "two 36-byte entries a block");
    let segment = Segment::open(&buffer[..finished.unwrap()]).unwrap();
    assert_eq!(collect(segment.iter()).unwrap().len(), 6);
    let (refused, accepted, finished) =
        fill_until_refused::<FixedStorage<64, 1024, 512, 64, 1>>(&entries, 128, &mut buffer);
    assert_eq!((refused, accepted), (None, 40), "the filter is built at finish");
    assert_eq!(
        finished,
        Err(BuildError::Storage(StorageFull { what: "filter blocks", capacity: 1 }))
    );
}

#[test]
fn fixed_storage_checks_room_for_the_block_an_entry_closes_and_the_one_it_opens() {
    let entries = z_sorted((0..4u8).map(|i| (vec![b'k', i], 1, Some(vec![i; 20]))).collect());
    let mut buffer = vec![0; 1 << 12];
    // One block handle: the first entry opens it, the second (past the target) would close it
    // and open a second.
    let (refused, accepted, finished) =
        fill_until_refused::<FixedStorage<8, 64, 64, 1, 1>>(&entries, 36, &mut buffer);
    let full = BuildError::Storage(StorageFull { what: "blocks", capacity: 1 });
    assert_eq!((refused, accepted), (Some(full), 1));
    assert_eq!(Segment::open(&buffer[..finished.unwrap()]).unwrap().entry_count(), 1);
}

/// 3,000 entries over 3,000 keys after `small_model`, in a scrambled key order, with
/// tombstones and values of 0 to 96 bytes.
fn pinned_model() -> Model {
    let mut model = small_model();
    for i in 0..3000u32 {
        let key = alloc::format!("pinned/{:05}", i * 7919 % 3001).into_bytes();
        let value = (i % 5 != 0).then(|| vec![(i % 251) as u8; (i % 97) as usize]);
        model.insert((key, Reverse(u64::from(i % 13) * 1000 + u64::from(i))), value);
    }
    model
}

/// The format is unchanged: the length and checksum of the files the builder wrote before it
/// was generic over its storage (commit 372fe30), from both storages.
#[test]
fn segment_bytes_match_the_builder_before_storage_was_generic() {
    use crate::checksum::checksum;
    type PinnedStorage = FixedStorage<3100, 40_000, 4096, 3100, { filter_block_count(3100) }>;
    for (block_bytes_target, len, expected) in
        [(64, 387_644, 0x1871_bc9b_9236_beb1), (4096, 213_948, 0xf595_4b8c_acd0_41b5)]
    {
        let bytes = build(&pinned_model(), block_bytes_target);
        assert_eq!((bytes.len(), checksum(&bytes)), (len, expected), "{block_bytes_target}");
        let mut buffer = vec![0; len];
        let written = build_fixed::<PinnedStorage>(
            &pinned_model(),
            block_bytes_target,
            Order::Z,
            &mut buffer,
        );
        assert_eq!(written, Ok(len));
        assert_eq!(checksum(&buffer), expected, "fixed storage, {block_bytes_target}");
    }
}

/// Keys with long runs of versions (passed over by probing ahead, then a binary search) read
/// as the model at every version, from the front, the back and both ends.
#[test]
fn range_at_passes_over_long_runs_of_versions() {
    let mut model = Model::new();
    for (key, run_len) in [(&b"a"[..], 1_u64), (b"b", 37), (b"c", 2), (b"d", 300), (b"e", 1)] {
        for version in 1..=run_len {
            let value = Some(version.to_le_bytes().to_vec());
            model.insert((key.to_vec(), Reverse(version * 3 + u64::from(key[0]))), value);
        }
    }
    let bytes = build(&model, 256);
    let segment = Segment::open(&bytes).unwrap();
    let keys: KeyBounds = (Bound::Unbounded, Bound::Unbounded);
    for version in (0..1_000).step_by(7).chain([u64::MAX]) {
        let expected = model_range_at(&model, &keys, version);
        let range = || segment.range_at(as_slices(&keys), Version::new(version));
        assert_eq!(collect(range()), Ok(expected.clone()), "at {version}");
        let expected_rev: Vec<Owned> = expected.iter().rev().cloned().collect();
        assert_eq!(collect(range().rev()), Ok(expected_rev), "rev at {version}");
        assert_eq!(collect_both_ends(range()), Ok(expected), "both ends at {version}");
    }
}

/// The footer offset of the format version, and where the key index handle's length is.
const FOOTER_FORMAT_VERSION_AT: usize = 8;
const FOOTER_KEY_INDEX_LEN_AT: usize = 48 + 24 + 8;

#[test]
fn a_key_ordered_segment_records_its_order_and_has_no_key_index() {
    let model = small_model();
    let z = build_in(&model, 64, Order::Z);
    let key = build_in(&model, 64, Order::Key);
    let read_u32 =
        |bytes: &[u8], at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let read_u64 =
        |bytes: &[u8], at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    let (z_footer, key_footer) = (z.len() - FOOTER_LEN, key.len() - FOOTER_LEN);
    assert_eq!(read_u32(&z, z_footer + FOOTER_FORMAT_VERSION_AT), FORMAT_VERSION);
    // Blocks of at most RESTART_BLOCK_BYTES_MIN get no restarts by default: version 2.
    assert_eq!(read_u32(&key, key_footer + FOOTER_FORMAT_VERSION_AT), FORMAT_VERSION_KEY_ORDER);
    assert_eq!(read_u64(&key, key_footer + FOOTER_KEY_INDEX_LEN_AT), 0);
    assert!(read_u64(&z, z_footer + FOOTER_KEY_INDEX_LEN_AT) > 0);
    assert_eq!(Segment::open(&z).unwrap().order(), Order::Z);
    let segment = Segment::open(&key).unwrap();
    assert_eq!(segment.order(), Order::Key);
    assert_eq!(segment.first_key(), Ok(Some(&b""[..])));
    assert_eq!(segment.last_key(), Ok(Some(&b"zz"[..])));
    // The data region holds the entries in key order, front to back.
    let in_file_order = collect(segment.iter()).unwrap();
    assert_eq!(in_file_order, owned_model(&model).collect::<Vec<_>>());
    let larger = counting_model(1000);
    let (z, key) = (build_in(&larger, 4096, Order::Z), build_in(&larger, 4096, Order::Key));
    // No key index (4 bytes an entry); restarts cost 4 bytes per 16 entries and per block.
    assert!(key.len() + 3 * 1000 <= z.len(), "no key index: {} against {}", key.len(), z.len());
}

/// The order flag is the footer's format version: a Z-order footer that claims key order, a
/// key-ordered one that claims Z order, and an unknown version are `Corruption` (resealed, so
/// only the structural checks can catch them).
#[test]
fn a_damaged_order_flag_is_corruption() {
    for (order, claimed) in [
        (Order::Z, FORMAT_VERSION_KEY_ORDER),
        (Order::Z, FORMAT_VERSION_KEY_ORDER_RESTARTS),
        (Order::Key, FORMAT_VERSION),
        (Order::Key, 4),
    ] {
        let mut bytes = build_in(&small_model(), 64, order);
        let at = bytes.len() - FOOTER_LEN + FOOTER_FORMAT_VERSION_AT;
        bytes[at..at + 4].copy_from_slice(&claimed.to_le_bytes());
        reseal(&mut bytes);
        assert!(Segment::open(&bytes).is_err(), "{order:?} claiming version {claimed}");
        assert!(Segment::metadata_offset(&bytes).is_ok() || claimed == 4);
    }
}

#[test]
fn key_order_builder_refuses_entries_out_of_key_order() {
    let options = SegmentOptions::default().with_order(Order::Key);
    let mut builder = SegmentBuilder::new(Vec::new(), options);
    builder.add(b"b", Version::new(5), Some(b"x")).unwrap();
    // A smaller key, a newer version of the same key, the same entry again.
    assert_eq!(builder.add(b"a", Version::new(9), None), Err(BuildError::OutOfOrder));
    assert_eq!(builder.add(b"b", Version::new(6), None), Err(BuildError::OutOfOrder));
    assert_eq!(builder.add(b"b", Version::new(5), None), Err(BuildError::OutOfOrder));
    // Z order would refuse this one (a larger prefix, then a smaller one); key order takes it.
    builder.add(b"b", Version::new(1), None).unwrap();
    builder.add(b"c", Version::new(u64::MAX), Some(b"y")).unwrap();
    let (bytes, summary) = builder.finish().unwrap();
    assert_eq!((summary.entry_count, summary.key_count), (3, 2));
    let segment = Segment::open(&bytes).unwrap();
    let versions: Vec<u64> = segment.history(b"b").map(|e| e.unwrap().version.get()).collect();
    assert_eq!(versions, [5, 1]);
}

/// A model of `key_count` 8-byte big-endian keys, one version each, 32-byte values.
fn counting_model(key_count: u64) -> Model {
    (0..key_count)
        .map(|key| ((key.to_be_bytes().to_vec(), Reverse(key % 7 + 1)), Some(vec![key as u8; 32])))
        .collect()
}

/// A point read on a key-ordered segment reads one block, picked by the block keys: with
/// every other block damaged it still answers.
#[test]
fn a_key_order_point_read_reads_only_its_block() {
    let model = counting_model(400);
    let mut bytes = build_in(&model, 256, Order::Key);
    let segment = Segment::open(&bytes).unwrap();
    let block_count = segment.block_count();
    assert!(block_count > 20, "{block_count} blocks");
    let key = 200u64.to_be_bytes();
    let target = segment.data_span(&ZBox::covering(&(&key[..]..=&key[..]), &(..)).unwrap());
    assert!(target.end - target.start < 400, "one block: {target:?}");
    // Damage the first byte of every block but the target's.
    let handles: Vec<_> =
        (0..block_count).map(|i| segment.block_index.handle(i).unwrap()).collect();
    for handle in &handles {
        if u64::from(handle.offset) != target.start {
            bytes[handle.offset as usize] ^= 0xff;
        }
    }
    let segment = Segment::open(&bytes).unwrap();
    let found = segment.get_at(&key, Version::MAX).unwrap().unwrap();
    assert_eq!(own(found), (key.to_vec(), 200 % 7 + 1, Some(vec![200; 32])));
    assert!(segment.get_at(&0u64.to_be_bytes(), Version::MAX).is_err(), "the damage is there");
}

/// A full scan and a key-range scan of a key-ordered segment read each block once and decode
/// each entry once; `changes` with a narrow version range skips blocks by zone map.
#[test]
fn key_order_scans_read_each_block_and_entry_once() {
    let model = counting_model(1000);
    let bytes = build_in(&model, 256, Order::Key);
    let segment = Segment::open(&bytes).unwrap();
    let mut all = segment.changes(.., ..);
    assert_eq!(all.by_ref().count(), 1000);
    let stats = all.stats();
    assert_eq!(stats.blocks.entries_decoded, 1000);
    assert_eq!(stats.blocks.blocks_read, segment.block_count() as u64);
    let (start, end) = (100u64.to_be_bytes(), 200u64.to_be_bytes());
    let mut range = segment.changes(&start[..]..&end[..], ..);
    assert_eq!(range.by_ref().count(), 100);
    let stats = range.stats();
    assert!(stats.blocks.entries_decoded <= 100 + 2 * 8, "{stats:?}");
    // Versions 1..=7 cycle through the keys: every block holds all of them, none is pruned;
    // a model whose versions rise with the keys prunes all blocks but a few.
    let rising: Model = (0..1000u64)
        .map(|key| ((key.to_be_bytes().to_vec(), Reverse(key + 1)), Some(vec![0; 32])))
        .collect();
    let bytes = build_in(&rising, 256, Order::Key);
    let segment = Segment::open(&bytes).unwrap();
    let mut narrow = segment.changes(.., Version::new(500)..Version::new(510));
    assert_eq!(narrow.by_ref().count(), 10);
    let stats = narrow.stats();
    assert!(stats.blocks.blocks_read <= 4, "{stats:?}");
    assert_eq!(stats.blocks.blocks_pruned + stats.blocks.blocks_read, segment.block_count() as u64);
}

/// Reverse iteration of a key-ordered segment with many entries per block (more than a
/// backward step remembers) returns every entry once.
#[test]
fn key_order_reverse_scans_over_long_blocks() {
    let model: Model =
        (0..300u64).map(|key| ((key.to_be_bytes().to_vec(), Reverse(1)), None)).collect();
    let bytes = build_in(&model, 4096, Order::Key);
    let segment = Segment::open(&bytes).unwrap();
    assert!(segment.block_count() < 4, "{} blocks", segment.block_count());
    let mut expected: Vec<Owned> = owned_model(&model).collect();
    expected.reverse();
    assert_eq!(collect(segment.iter_key_order().rev()), Ok(expected.clone()));
    assert_eq!(collect(segment.range_at(.., Version::MAX).rev()), Ok(expected));
    let both = collect_both_ends(segment.range_at(.., Version::MAX)).unwrap();
    assert_eq!(both, owned_model(&model).collect::<Vec<_>>());
}

/// The bytes of each data block of `segment` in `bytes`: `(offset, len)` from its handle.
fn block_spans(segment: &Segment<'_>) -> Vec<(usize, usize)> {
    (0..segment.block_count())
        .map(|index| segment.block_index.handle(index).unwrap())
        .map(|handle| (handle.offset as usize, handle.len as usize))
        .collect()
}

/// The restart count stored at the start of a key-ordered block.
fn restart_count(bytes: &[u8], (offset, _): (usize, usize)) -> usize {
    u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize
}

/// The builder writes a restart every `K` entries (format version 3) and, asked for none,
/// the older format (version 2, blocks of entries only), which reads the same; a restart
/// header costs `4 * (restarts + 1)` bytes per block.
#[test]
fn key_blocks_carry_a_restart_every_interval_and_the_older_format_still_reads() {
    let model = counting_model(500);
    let options = SegmentOptions::default().with_block_bytes_target(512).with_order(Order::Key);
    let version_at = |bytes: &[u8]| {
        let at = bytes.len() - FOOTER_LEN + FOOTER_FORMAT_VERSION_AT;
        u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
    };
    let older = build_with(&model, options.with_restart_interval(0));
    assert_eq!(version_at(&older), FORMAT_VERSION_KEY_ORDER);
    // Unset, the interval follows the block target: none up to RESTART_BLOCK_BYTES_MIN.
    let auto = SegmentOptions::default().with_order(Order::Key);
    for (block_bytes, interval) in [(512, 0), (RESTART_BLOCK_BYTES_MIN, 0), (16 << 10, 16)] {
        let options = auto.with_block_bytes_target(block_bytes);
        assert_eq!(options.restart_interval(), interval, "{block_bytes}-byte blocks");
        let want = if interval == 0 { FORMAT_VERSION_KEY_ORDER } else { 3 };
        assert_eq!(version_at(&build_with(&model, options)), want, "{block_bytes}-byte blocks");
    }
    let older_segment = Segment::open(&older).unwrap();
    let expected = run_fixed_queries(&older_segment);
    for interval in [1, 3, RESTART_INTERVAL_DEFAULT, 1000] {
        let bytes = build_with(&model, options.with_restart_interval(interval));
        assert_eq!(version_at(&bytes), FORMAT_VERSION_KEY_ORDER_RESTARTS);
        let segment = Segment::open(&bytes).unwrap();
        assert_eq!(segment.block_count(), older_segment.block_count(), "same entries per block");
        assert_eq!(collect(segment.iter_key_order()).unwrap().len(), 500);
        let mut header_bytes = 0;
        let older_blocks = block_spans(&older_segment);
        for (block, older_block) in block_spans(&segment).into_iter().zip(older_blocks) {
            let restarts = restart_count(&bytes, block);
            let entry_count = block_entry_count(&older, older_block);
            assert_eq!(restarts, entry_count.div_ceil(interval), "interval {interval}");
            assert_eq!(block.1, older_block.1 + 4 * (restarts + 1));
            header_bytes += 4 * (restarts + 1);
        }
        assert_eq!(bytes.len(), older.len() + header_bytes);
        assert_eq!(run_fixed_queries(&segment), expected, "interval {interval}");
        for key in (0..520u64).map(u64::to_be_bytes) {
            let got = segment.get_at(&key, Version::MAX).map(|e| e.map(own));
            let want = older_segment.get_at(&key, Version::MAX).map(|e| e.map(own));
            assert_eq!(got, want, "interval {interval}");
        }
    }
}

/// Entries of an older-format (no trailer) block.
fn block_entry_count(bytes: &[u8], (offset, len): (usize, usize)) -> usize {
    let block = &bytes[offset..offset + len];
    let mut position = 0;
    let mut count = 0;
    while position < block.len() {
        position += super::block::decode_entry_at(block, position, 0).unwrap().1;
        count += 1;
    }
    count
}

/// Every answer of a key-ordered segment of `model`'s keys: a point read of each and the
/// whole range both ways.
fn key_answers(segment: &Segment<'_>, key_count: u64) -> Vec<Result<Vec<Owned>, Corruption>> {
    let mut answers: Vec<_> = (0..key_count + 2)
        .map(|key| {
            let got = segment.get_at(&key.to_be_bytes(), Version::MAX);
            got.map(|entry| entry.map(own).into_iter().collect())
        })
        .collect();
    answers.push(collect(segment.range_at(.., Version::MAX)));
    answers.push(collect(segment.range_at(.., Version::MAX).rev()));
    answers
}

/// Damage to a restart header that carries a valid block checksum (resealed) is
/// `Corruption` or harmless, never a wrong answer, with and without the per-block memory of
/// verified blocks; a restart count or offset moved off the entries is always caught.
#[test]
fn a_damaged_restart_header_is_corruption_never_a_wrong_answer() {
    let model = counting_model(100);
    let options = SegmentOptions::default()
        .with_block_bytes_target(256)
        .with_order(Order::Key)
        .with_restart_interval(2);
    let bytes = build_with(&model, options);
    let segment = Segment::open(&bytes).unwrap();
    let expected = key_answers(&segment, 100);
    assert!(expected.iter().all(Result::is_ok));
    let (mut caught, mut harmless) = (0, 0);
    for block in block_spans(&segment) {
        let (offset, len) = block;
        let header_len = 4 * (restart_count(&bytes, block) + 1);
        for at in offset..offset + header_len {
            for flip in [1u8, 0x10, 0x80, 0xff] {
                let mut damaged = bytes.clone();
                damaged[at] ^= flip;
                let sum = crate::checksum::checksum(&damaged[offset..offset + len]);
                damaged[offset + len..offset + len + 8].copy_from_slice(&sum.to_le_bytes());
                let flags: Vec<_> = (0..segment.block_count())
                    .map(|_| core::sync::atomic::AtomicBool::new(false))
                    .collect();
                let plain = Segment::open(&damaged).unwrap();
                for reader in [plain, plain.with_verified_blocks(&flags)] {
                    let answers = key_answers(&reader, 100);
                    for (got, want) in answers.iter().zip(&expected) {
                        assert!(got.is_err() || got == want, "byte {at} ^ {flip}: {got:?}");
                    }
                    if answers.iter().any(Result::is_err) {
                        caught += 1;
                    } else {
                        harmless += 1;
                    }
                }
            }
        }
    }
    // A flip of an offset's low bits can land on another entry start: harmless. Every other
    // flip is caught.
    assert!(caught > 4 * harmless, "caught {caught}, harmless {harmless}");
}
