use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn v(raw: u64) -> Version {
    Version::new(raw)
}

fn filled() -> Arc<Memtable> {
    let memtable = Arc::new(Memtable::new(1));
    memtable.insert(b"a", v(10), Some(b"a10"));
    memtable.insert(b"a", v(20), None);
    memtable.insert(b"a", v(30), Some(b"a30"));
    memtable.insert(b"ab", v(15), Some(b"ab15"));
    memtable.insert(b"b", v(5), Some(b"b5"));
    memtable
}

#[test]
fn get_at_finds_the_newest_version_at_or_below() {
    let memtable = filled();
    let value_at = |key: &[u8], at| {
        memtable.get_at(key, v(at)).map(|e| (e.version.get(), e.value.map(|b| b.to_vec())))
    };
    assert_eq!(value_at(b"a", 9), None);
    assert_eq!(value_at(b"a", 10), Some((10, Some(b"a10".to_vec()))));
    assert_eq!(value_at(b"a", 25), Some((20, None)));
    assert_eq!(value_at(b"a", u64::MAX), Some((30, Some(b"a30".to_vec()))));
    assert_eq!(value_at(b"", u64::MAX), None);
    assert_eq!(value_at(b"aa", u64::MAX), None);
    assert_eq!(value_at(b"ab", 15), Some((15, Some(b"ab15".to_vec()))));
}

#[test]
fn cursor_walks_key_order_within_bounds() {
    let memtable = filled();
    let mut walked = Vec::new();
    let mut next = memtable.next_after(Bound::Unbounded, Bound::Excluded(b"b"));
    while let Some(entry) = next {
        walked.push((entry.key.to_vec(), entry.version.get()));
        next = memtable
            .next_after(Bound::Excluded((&entry.key[..], entry.version)), Bound::Excluded(b"b"));
    }
    let expected = [(b"a".to_vec(), 30), (b"a".to_vec(), 20), (b"a".to_vec(), 10)];
    assert_eq!(walked[..3], expected);
    assert_eq!(walked[3], (b"ab".to_vec(), 15));
    assert_eq!(walked.len(), 4);
    assert_eq!(memtable.entry_count(), 5);
    let cursor: Vec<_> = memtable
        .cursor(Bound::Excluded((b"a", v(20))))
        .map(|e| (e.key.to_vec(), e.version.get()))
        .collect();
    assert_eq!(cursor, [(b"a".to_vec(), 10), (b"ab".to_vec(), 15), (b"b".to_vec(), 5)]);
}

#[test]
fn a_second_insert_of_a_key_and_version_replaces_the_first() {
    let memtable = filled();
    memtable.insert(b"ab", v(15), Some(b"longer value"));
    memtable.insert(b"ab", v(15), None);
    let entries: Vec<_> = memtable.entries().filter(|e| e.key == b"ab").collect();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].value, None);
    assert_eq!(memtable.entry_count(), 5);
    assert_eq!(memtable.payload_bytes(), 1 + 3 + 1 + 1 + 3 + 2 + 1 + 2);
}

#[test]
fn large_values_get_their_own_chunk_and_read_back() {
    let memtable = Arc::new(Memtable::new(1));
    let large = vec![7u8; CHUNK_BYTES_MAX];
    memtable.insert(b"small", v(1), Some(b"x"));
    memtable.insert(b"large", v(2), Some(&large));
    memtable.insert(b"small2", v(3), Some(b"y"));
    assert_eq!(memtable.get_at(b"large", v(2)).and_then(|e| e.value).as_deref(), Some(&large[..]));
    assert_eq!(memtable.get_at(b"small2", v(3)).and_then(|e| e.value).as_deref(), Some(&b"y"[..]));
    assert!(memtable.size_bytes() >= CHUNK_BYTES_MAX as u64);
}

#[test]
fn readers_on_other_threads_see_whole_entries_while_one_writer_inserts() {
    let memtable = Arc::new(Memtable::new(1));
    let writer = {
        let memtable = Arc::clone(&memtable);
        std::thread::spawn(move || {
            for i in 0..20_000u32 {
                let key = (i.wrapping_mul(2_654_435_761)).to_be_bytes();
                memtable.insert(&key, v(u64::from(i) + 1), Some(&key.repeat(3)));
            }
        })
    };
    while !writer.is_finished() {
        let mut last: Option<(Vec<u8>, u64)> = None;
        for entry in memtable.cursor(Bound::Unbounded) {
            assert_eq!(entry.value.as_deref(), Some(&entry.key.repeat(3)[..]));
            let here = (entry.key.to_vec(), entry.version.get());
            assert!(last.as_ref().is_none_or(|l| l.0 < here.0), "{last:?} then {here:?}");
            last = Some(here);
        }
    }
    writer.join().expect("the writer");
    assert_eq!(memtable.entries().count(), 20_000);
}

/// Ops for the model test: an insert (key, version, value or tombstone) or a probe.
#[derive(Clone, Debug)]
enum Op {
    Insert(Vec<u8>, u64, Option<Vec<u8>>),
    GetAt(Vec<u8>, u64),
    NextAfter(Vec<u8>, u64, bool),
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(0u8..4, 0..4)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (key(), 0u64..8, prop::option::of(prop::collection::vec(any::<u8>(), 0..6)))
            .prop_map(|(k, ver, val)| Op::Insert(k, ver, val)),
        1 => (key(), 0u64..9).prop_map(|(k, ver)| Op::GetAt(k, ver)),
        1 => (key(), 0u64..9, any::<bool>()).prop_map(|(k, ver, inc)| Op::NextAfter(k, ver, inc)),
    ]
}

type Model = BTreeMap<(Vec<u8>, std::cmp::Reverse<u64>), Option<Vec<u8>>>;

fn as_tuple(entry: &MemEntry) -> (Vec<u8>, u64, Option<Vec<u8>>) {
    (entry.key.to_vec(), entry.version.get(), entry.value.as_ref().map(|b| b.to_vec()))
}

fn check_op(memtable: &Arc<Memtable>, model: &mut Model, op: &Op) {
    use std::cmp::Reverse;
    match op {
        Op::Insert(k, ver, val) => {
            memtable.insert(k, v(*ver), val.as_deref());
            model.insert((k.clone(), Reverse(*ver)), val.clone());
        }
        Op::GetAt(k, ver) => {
            let expected = model
                .range((k.clone(), Reverse(*ver))..)
                .next()
                .filter(|((key, _), _)| key == k)
                .map(|((key, Reverse(at)), val)| (key.clone(), *at, val.clone()));
            assert_eq!(memtable.get_at(k, v(*ver)).as_ref().map(as_tuple), expected);
        }
        Op::NextAfter(k, ver, inclusive) => {
            let from = (k.clone(), Reverse(*ver));
            let bound = if *inclusive { Bound::Included(from) } else { Bound::Excluded(from) };
            let expected: Vec<_> = model
                .range((bound, Bound::Unbounded))
                .map(|((key, Reverse(at)), val)| (key.clone(), *at, val.clone()))
                .collect();
            let position = (&k[..], v(*ver));
            let position =
                if *inclusive { Bound::Included(position) } else { Bound::Excluded(position) };
            let walked: Vec<_> = memtable.cursor(position).map(|e| as_tuple(&e)).collect();
            assert_eq!(walked, expected);
            let first = memtable.next_after(position, Bound::Unbounded);
            assert_eq!(first.as_ref().map(as_tuple), expected.first().cloned());
        }
    }
}

proptest! {
    /// The memtable answers like a `BTreeMap` keyed by (key, reverse version). Proptest prints
    /// the failing ops and saves their seed in `memtable/tests.proptest-regressions`.
    #[test]
    fn the_memtable_agrees_with_a_btreemap(ops in prop::collection::vec(op(), 0..200)) {
        let memtable = Arc::new(Memtable::new(1));
        let mut model = Model::new();
        for op in &ops {
            check_op(&memtable, &mut model, op);
        }
        let all: Vec<_> = memtable
            .entries()
            .map(|e| (e.key.to_vec(), e.version.get(), e.value.map(<[u8]>::to_vec)))
            .collect();
        let expected: Vec<_> =
            model.into_iter().map(|((k, std::cmp::Reverse(at)), val)| (k, at, val)).collect();
        prop_assert_eq!(memtable.entry_count(), expected.len());
        prop_assert_eq!(all, expected);
    }
}

/// Every key of up to `len_max` bytes over `alphabet`.
fn all_keys(alphabet: &[u8], len_max: usize) -> Vec<Vec<u8>> {
    let mut keys = vec![Vec::new()];
    let mut last = vec![Vec::new()];
    for _ in 0..len_max {
        last = last
            .iter()
            .flat_map(|key: &Vec<u8>| alphabet.iter().map(move |&b| [&key[..], &[b]].concat()))
            .collect();
        keys.extend(last.iter().cloned());
    }
    keys
}

#[test]
fn key_prefixes_that_differ_order_keys_as_the_keys_do() {
    // Lengths around the 8-byte prefix, bytes that pad like zeros and bytes that do not.
    let keys = all_keys(&[0, 1, 255], 9);
    let mut decided = 0u64;
    for a in &keys {
        for b in keys.iter().step_by(61) {
            let (pa, pb) = (key_prefix(a), key_prefix(b));
            if pa != pb {
                assert_eq!(pa.cmp(&pb), a.cmp(b), "{a:?} against {b:?}");
                decided += 1;
            }
        }
    }
    assert!(decided > 100_000, "the prefixes decided {decided} comparisons");
}

#[test]
fn backward_cursor_walks_key_order_in_reverse_within_bounds() {
    let memtable = filled();
    let mut walked = Vec::new();
    let start = Bound::Excluded(&b"a"[..]);
    let mut prev = memtable.prev_before(Bound::Unbounded, start);
    while let Some(entry) = prev {
        walked.push((entry.key.to_vec(), entry.version.get()));
        prev = memtable.prev_before(Bound::Excluded((&entry.key[..], entry.version)), start);
    }
    assert_eq!(walked, [(b"b".to_vec(), 5), (b"ab".to_vec(), 15)]);
    let before_ab = Bound::Excluded((&b"ab"[..], Version::MAX));
    let last_of_a = memtable.prev_before(before_ab, Bound::Unbounded).map(|e| e.version);
    assert_eq!(last_of_a, Some(v(10)), "the oldest version of the key before");
}

/// A batch of inserts, as the commit leader applies a group.
type Batch = Vec<(Vec<u8>, u64, Option<Vec<u8>>)>;

fn batch() -> impl Strategy<Value = Batch> {
    let insert = (key(), 0u64..8, prop::option::of(prop::collection::vec(any::<u8>(), 0..6)));
    prop::collection::vec(insert, 0..40)
}

proptest! {
    /// `insert_sorted` of sorted batches (repeated positions included: the later wins) leaves
    /// the memtable exactly as inserting the same ops one by one does, node sizes included.
    #[test]
    fn inserting_sorted_batches_in_lanes_equals_inserting_one_by_one(
        batches in prop::collection::vec(batch(), 0..8),
    ) {
        let (lanes, one_by_one) = (Memtable::new(1), Memtable::new(1));
        let mut model = Model::new();
        for mut batch in batches {
            batch.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(&a.1)));
            let ops: Vec<super::Op<'_>> =
                batch.iter().map(|(k, ver, val)| (&k[..], v(*ver), val.as_deref())).collect();
            lanes.insert_sorted(&ops);
            for &(key, version, value) in &ops {
                one_by_one.insert(key, version, value);
            }
            for (k, ver, val) in &batch {
                model.insert((k.clone(), std::cmp::Reverse(*ver)), val.clone());
            }
        }
        let entries = |memtable: &Memtable| -> Vec<(Vec<u8>, u64, Option<Vec<u8>>)> {
            memtable
                .entries()
                .map(|e| (e.key.to_vec(), e.version.get(), e.value.map(<[u8]>::to_vec)))
                .collect()
        };
        let expected: Vec<_> =
            model.into_iter().map(|((k, std::cmp::Reverse(at)), val)| (k, at, val)).collect();
        prop_assert_eq!(entries(&lanes), expected);
        prop_assert_eq!(entries(&lanes), entries(&one_by_one));
        prop_assert_eq!(lanes.entry_count(), one_by_one.entry_count());
        prop_assert_eq!(lanes.size_bytes(), one_by_one.size_bytes());
        prop_assert_eq!(lanes.payload_bytes(), one_by_one.payload_bytes());
    }
}

proptest! {
    /// `insert_group` of batches in any order (repeated positions included: the later wins;
    /// batches below and above `GROUP_OPS_MIN`) leaves the memtable holding what inserting the
    /// same ops one by one, in their order, does.
    #[test]
    fn inserting_groups_in_any_order_equals_inserting_one_by_one(
        batches in prop::collection::vec(batch(), 0..8),
    ) {
        let (grouped, one_by_one) = (Memtable::new(1), Memtable::new(1));
        for batch in batches {
            let mut ops: Vec<super::Op<'_>> =
                batch.iter().map(|(k, ver, val)| (&k[..], v(*ver), val.as_deref())).collect();
            for &(key, version, value) in &ops {
                one_by_one.insert(key, version, value);
            }
            grouped.insert_group(&mut ops);
        }
        let entries = |memtable: &Memtable| -> Vec<(Vec<u8>, u64, Option<Vec<u8>>)> {
            memtable
                .entries()
                .map(|e| (e.key.to_vec(), e.version.get(), e.value.map(<[u8]>::to_vec)))
                .collect()
        };
        prop_assert_eq!(entries(&grouped), entries(&one_by_one));
        prop_assert_eq!(grouped.entry_count(), one_by_one.entry_count());
        prop_assert_eq!(grouped.payload_bytes(), one_by_one.payload_bytes());
    }
}

#[test]
fn the_guide_table_is_sized_by_the_memtable_budget_and_kept_by_successors() {
    assert_eq!(guide_bits_for(0), GUIDE_BITS_MIN);
    assert_eq!(guide_bits_for(8 << 10), GUIDE_BITS_MIN, "8 buckets round up to the minimum");
    assert_eq!(guide_bits_for(64 << 10), 6.clamp(GUIDE_BITS_MIN, GUIDE_BITS));
    assert_eq!(guide_bits_for(64 << 20), GUIDE_BITS, "the largest table at 64 MiB");
    assert_eq!(guide_bits_for(u64::MAX), GUIDE_BITS);
    let small = Memtable::with_budget(1, 8 << 10);
    assert_eq!(small.guide.nodes.len(), 1 << GUIDE_BITS_MIN);
    let next = Arc::new(small.successor(2));
    assert_eq!((next.guide.bits, next.log_number_first()), (small.guide.bits, 2));
    // Guided searches on the smallest table still find every key.
    for index in 0u32..2_000 {
        next.insert(&index.to_be_bytes(), Version::new(1), Some(b"v"));
    }
    for index in 0u32..2_000 {
        assert!(next.get_at(&index.to_be_bytes(), Version::new(1)).is_some(), "{index}");
    }
}
