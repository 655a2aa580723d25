//! The loser tree against a stable sort, exhaustively on a small domain and randomly up to the
//! fan-in limit; error propagation; the fan-in limit.

use core::cell::Cell;
use core::cmp::Ordering;
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use crate::merge::{FAN_IN_MAX, FanInError, KeyOrder, Keyed, Merge, MergeN, Order, Slot, ZOrder};
use crate::{Entry, Version};

/// A source's failure, naming the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fault {
    source_index: usize,
}

type Source = std::vec::IntoIter<Result<Entry<'static>, Fault>>;

/// Tags that tell equal entries apart: entry `j` of source `i` carries `TAGS[3 * i + j]`.
static TAGS: [u8; 9] = [0, 1, 2, 3, 4, 5, 6, 7, 8];

/// Two keys with one Morton prefix byte in common, two versions far apart: key order and
/// Z order disagree on them (Z order puts the older version of both keys first).
const DOMAIN: [(&[u8], u64); 4] = [(b"a", 1), (b"a", 1 << 56), (b"ab", 1), (b"ab", 1 << 56)];

const SOURCE_LEN_MAX: usize = 3;
const SOURCE_COUNT_MAX: usize = 3;

/// Every multiset of at most `SOURCE_LEN_MAX` domain indices, each as a sorted list.
fn multisets() -> Vec<Vec<usize>> {
    let mut all = vec![Vec::new()];
    let mut frontier = vec![Vec::new()];
    for _ in 0..SOURCE_LEN_MAX {
        let mut next = Vec::new();
        for set in &frontier {
            let low = set.last().copied().unwrap_or(0);
            for index in low..DOMAIN.len() {
                let mut longer = set.clone();
                longer.push(index);
                next.push(longer);
            }
        }
        all.extend(next.iter().cloned());
        frontier = next;
    }
    assert_eq!(all.len(), 35, "1 + 4 + 10 + 20 multisets");
    all
}

/// Source `source_index` holding the domain entries `indices`, sorted by `order` and tagged.
fn source_entries<O: Order<Entry<'static>>>(
    indices: &[usize],
    source_index: usize,
    order: &O,
) -> Vec<Entry<'static>> {
    let mut entries: Vec<_> = indices
        .iter()
        .map(|&index| Entry {
            key: DOMAIN[index].0,
            version: Version::new(DOMAIN[index].1),
            value: None,
        })
        .collect();
    entries.sort_by(|a, b| order.cmp(a, b));
    for (position, entry) in entries.iter_mut().enumerate() {
        entry.value = Some(core::slice::from_ref(&TAGS[SOURCE_LEN_MAX * source_index + position]));
    }
    entries
}

/// The expected merge: the concatenation of the sources, stably sorted by `order`.
fn stable_sort<O: Order<Entry<'static>>>(
    sources: &[Vec<Entry<'static>>],
    order: &O,
) -> Vec<Entry<'static>> {
    let mut all: Vec<_> = sources.concat();
    all.sort_by(|a, b| order.cmp(a, b));
    all
}

fn into_source(entries: &[Entry<'static>]) -> Source {
    entries.iter().copied().map(Ok).collect::<Vec<_>>().into_iter()
}

fn collect_ok(merge: impl Iterator<Item = Result<Entry<'static>, Fault>>) -> Vec<Entry<'static>> {
    merge.map(|item| item.expect("no source fails")).collect()
}

fn merge_array<O: Order<Entry<'static>> + Copy, const K: usize>(
    sources: &[Vec<Entry<'static>>],
    order: O,
) -> Vec<Entry<'static>> {
    let sources: [Source; K] = core::array::from_fn(|index| into_source(&sources[index]));
    collect_ok(MergeN::from_array(sources, order))
}

/// Every variant of the merge over `sources`: array, caller slice, and `Vec` with `alloc`.
fn merge_all_variants<O: Order<Entry<'static>> + Copy>(
    sources: &[Vec<Entry<'static>>],
    order: O,
) -> Vec<Vec<Entry<'static>>> {
    let by_array = match sources.len() {
        0 => merge_array::<O, 0>(sources, order),
        1 => merge_array::<O, 1>(sources, order),
        2 => merge_array::<O, 2>(sources, order),
        3 => merge_array::<O, 3>(sources, order),
        count => panic!("no array variant for {count} sources"),
    };
    let mut slots: Vec<_> = sources.iter().map(|entries| Slot::new(into_source(entries))).collect();
    let by_slice = collect_ok(Merge::new(&mut slots[..], order).expect("within the fan-in"));
    #[cfg_attr(not(feature = "alloc"), expect(unused_mut, reason = "only alloc adds a variant"))]
    let mut merged = vec![by_array, by_slice];
    #[cfg(feature = "alloc")]
    merged.push(collect_ok(
        crate::merge::MergeVec::from_sources(sources.iter().map(|e| into_source(e)), order)
            .expect("within the fan-in"),
    ));
    merged
}

fn check_exhaustively<O: Order<Entry<'static>> + Copy>(order: O) -> usize {
    let multisets = multisets();
    let mut checked_count = 0;
    let mut choice = Vec::new();
    for source_count in 0..=SOURCE_COUNT_MAX {
        let combination_count = multisets.len().pow(source_count as u32);
        for mut combination in 0..combination_count {
            choice.clear();
            for _ in 0..source_count {
                choice.push(&multisets[combination % multisets.len()]);
                combination /= multisets.len();
            }
            let sources: Vec<_> = choice
                .iter()
                .enumerate()
                .map(|(index, indices)| source_entries(indices, index, &order))
                .collect();
            let expected = stable_sort(&sources, &order);
            for merged in merge_all_variants(&sources, order) {
                assert_eq!(merged, expected, "sources {sources:?}");
            }
            checked_count += 1;
        }
    }
    checked_count
}

#[test]
fn key_order_merge_is_the_stable_sort_of_every_small_input() {
    assert_eq!(check_exhaustively(KeyOrder), 1 + 35 + 35 * 35 + 35 * 35 * 35);
}

#[test]
fn z_order_merge_is_the_stable_sort_of_every_small_input() {
    assert_eq!(check_exhaustively(ZOrder), 1 + 35 + 35 * 35 + 35 * 35 * 35);
}

#[test]
fn the_domain_tells_key_order_from_z_order() {
    let entries = source_entries(&[0, 1, 2, 3], 0, &ZOrder);
    let by_z: Vec<_> = entries.iter().map(|e| (e.key, e.version.get())).collect();
    assert_eq!(by_z, [(&b"a"[..], 1), (b"ab", 1), (b"a", 1 << 56), (b"ab", 1 << 56)]);
    let entries = source_entries(&[0, 1, 2, 3], 0, &KeyOrder);
    let by_key: Vec<_> = entries.iter().map(|e| (e.key, e.version.get())).collect();
    assert_eq!(by_key, [(&b"a"[..], 1 << 56), (b"a", 1), (b"ab", 1 << 56), (b"ab", 1)]);
}

#[test]
fn z_order_is_cmp_z_on_every_pair_of_the_domain() {
    let keys: [&[u8]; 6] = [b"", b"a", b"ab", b"abcdefgh", b"abcdefgh1", b"b"];
    let versions = [0, 1, 255, 256, 1 << 56, u64::MAX].map(Version::new);
    let entries: Vec<_> = keys
        .iter()
        .flat_map(|&key| versions.iter().map(move |&version| Entry { key, version, value: None }))
        .collect();
    for a in &entries {
        for b in &entries {
            let want = crate::zkey::cmp_z(a.key, a.version, b.key, b.version);
            assert_eq!(ZOrder.cmp(a, b), want, "{a:?} vs {b:?}");
        }
    }
}

#[test]
fn equal_items_come_out_newest_source_first() {
    let entry = |tag| Entry { key: b"k", version: Version::new(7), value: Some(&TAGS[tag..=tag]) };
    let sources = [vec![entry(0)], vec![entry(1)], vec![entry(2)]].map(|s| into_source(&s));
    let tags: Vec<_> = collect_ok(MergeN::from_array(sources, KeyOrder))
        .iter()
        .map(|e| e.value.expect("tagged")[0])
        .collect();
    assert_eq!(tags, [0, 1, 2]);
}

/// A source that counts how often it is pulled.
struct Counted<'c> {
    items: Source,
    pulls: &'c Cell<usize>,
}

impl Iterator for Counted<'_> {
    type Item = Result<Entry<'static>, Fault>;

    fn next(&mut self) -> Option<Self::Item> {
        self.pulls.set(self.pulls.get() + 1);
        self.items.next()
    }
}

#[test]
fn sources_are_pulled_lazily_and_one_item_ahead() {
    let e = |version| Entry { key: b"k", version: Version::new(version), value: None };
    let pulls = [Cell::new(0), Cell::new(0)];
    let sources = [vec![e(9), e(7), e(5)], vec![e(8)]];
    let counted: [Counted<'_>; 2] = core::array::from_fn(|index| Counted {
        items: into_source(&sources[index]),
        pulls: &pulls[index],
    });
    let mut merge = MergeN::from_array(counted, KeyOrder);
    let pull_counts = || pulls.each_ref().map(Cell::get);
    assert_eq!(pull_counts(), [0, 0], "nothing is pulled before the first item is asked for");
    assert_eq!(merge.next(), Some(Ok(e(9))));
    assert_eq!(pull_counts(), [2, 1], "each head, and the winner's next item");
    assert_eq!(merge.next(), Some(Ok(e(8))));
    assert_eq!(pull_counts(), [2, 2], "source 1 is pulled past its end once");
    assert_eq!(merge.by_ref().count(), 2);
    assert_eq!(pull_counts(), [4, 2], "each source is pulled past its end once");
}

/// Fails source `failing` at `position` and checks that the merge yields the merge of the
/// items before the failure up to that source's last good item, then the error once, then
/// nothing, and never pulls the failed source again.
fn check_failure(sources: &[Vec<Entry<'static>>; 3], failing: usize, position: usize) {
    let pulls = [Cell::new(0), Cell::new(0), Cell::new(0)];
    let scripted: [Counted<'_>; 3] = core::array::from_fn(|index| {
        let mut items: Vec<_> = sources[index].iter().copied().map(Ok).collect();
        if index == failing {
            items.truncate(position);
            items.push(Err(Fault { source_index: index }));
        }
        Counted { items: items.into_iter(), pulls: &pulls[index] }
    });
    let mut truncated = sources.clone();
    truncated[failing].truncate(position);
    let mut expected: Vec<_> = stable_sort(&truncated, &KeyOrder);
    let last_good = truncated[failing].last().map(|last| expected.iter().position(|e| e == last));
    expected.truncate(last_good.flatten().map_or(0, |index| index + 1));
    let mut expected: Vec<_> = expected.into_iter().map(Ok).collect();
    expected.push(Err(Fault { source_index: failing }));

    let mut merge = MergeN::from_array(scripted, KeyOrder);
    let merged: Vec<_> = merge.by_ref().collect();
    assert_eq!(merged, expected, "source {failing} failing at {position}");
    assert_eq!(merge.next(), None, "fused after the error");
    assert_eq!(pulls[failing].get(), position + 1, "the failed source is not pulled again");
}

#[test]
fn an_error_comes_out_once_as_soon_as_it_is_pulled_and_ends_the_merge() {
    let e = |key: &'static [u8], version, tag: usize| Entry {
        key,
        version: Version::new(version),
        value: Some(&TAGS[tag..=tag]),
    };
    let sources = [
        vec![e(b"a", 2, 0), e(b"b", 2, 1), e(b"c", 1, 2)],
        vec![e(b"a", 2, 3), e(b"a", 1, 4), e(b"d", 1, 5)],
        vec![e(b"b", 3, 6), e(b"c", 2, 7)],
    ];
    for failing in 0..sources.len() {
        for position in 0..=sources[failing].len() {
            check_failure(&sources, failing, position);
        }
    }
}

#[test]
fn the_first_error_by_source_index_wins_when_several_fail_at_once() {
    let fail = |source_index| vec![Err(Fault { source_index })].into_iter();
    let mut merge = MergeN::from_array([into_source(&[]), fail(1), fail(2)], KeyOrder);
    assert_eq!(merge.next(), Some(Err(Fault { source_index: 1 })));
    assert_eq!(merge.next(), None);
}

#[test]
fn more_sources_than_the_fan_in_limit_are_refused() {
    let mut slots: Vec<_> = (0..=FAN_IN_MAX).map(|_| Slot::new(into_source(&[]))).collect();
    let refused = Merge::new(&mut slots[..], KeyOrder).map(|_| ());
    assert_eq!(refused, Err(FanInError { source_count: FAN_IN_MAX + 1 }));
    let accepted = Merge::new(&mut slots[..FAN_IN_MAX], KeyOrder).map(|_| ());
    assert_eq!(accepted, Ok(()));
    #[cfg(feature = "alloc")]
    {
        let sources = (0..).map(|_| into_source(&[]));
        let refused = crate::merge::MergeVec::from_sources(sources, KeyOrder).map(|_| ());
        assert_eq!(refused, Err(FanInError { source_count: FAN_IN_MAX + 1 }));
    }
}

/// A proptest item that is not an [`Entry`], tagged with where it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Item {
    key: &'static [u8],
    version: Version,
    source_index: usize,
}

impl Keyed for Item {
    fn key(&self) -> &[u8] {
        self.key
    }

    fn version(&self) -> Version {
        self.version
    }
}

const PROPTEST_KEYS: [&[u8]; 5] = [b"", b"a", b"ab", b"abcdefgh1", b"abcdefgh2"];

fn sorted_sources(
    raw: Vec<Vec<(usize, u64)>>,
    order: fn(&Item, &Item) -> Ordering,
) -> Vec<Vec<Item>> {
    raw.into_iter()
        .enumerate()
        .map(|(source_index, pairs)| {
            let mut items: Vec<_> = pairs
                .into_iter()
                .map(|(key, version)| Item {
                    key: PROPTEST_KEYS[key],
                    version: Version::new(version),
                    source_index,
                })
                .collect();
            items.sort_by(order);
            items
        })
        .collect()
}

fn item_source(items: &[Item]) -> std::vec::IntoIter<Result<Item, Fault>> {
    items.iter().copied().map(Ok).collect::<Vec<_>>().into_iter()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Random fan-in up to the limit, in both orders: the array variant padded with exhausted
    /// sources, and the `Vec` variant with `alloc`, both equal to the stable sort.
    #[test]
    fn merge_of_random_sources_is_their_stable_sort(
        raw in prop::collection::vec(
            prop::collection::vec((0..PROPTEST_KEYS.len(), 0u64..6), 0..12),
            0..=FAN_IN_MAX,
        ),
        z_order in any::<bool>(),
    ) {
        let order: fn(&Item, &Item) -> Ordering =
            if z_order { |a, b| ZOrder.cmp(a, b) } else { |a, b| KeyOrder.cmp(a, b) };
        let sources = sorted_sources(raw, order);
        let mut expected: Vec<_> = sources.concat();
        expected.sort_by(order);
        let padded: [_; FAN_IN_MAX] =
            core::array::from_fn(|index| item_source(sources.get(index).map_or(&[], |s| s)));
        let merged: Result<Vec<_>, _> = MergeN::from_array(padded, order).collect();
        prop_assert_eq!(merged, Ok(expected.clone()));
        #[cfg(feature = "alloc")]
        {
            let merge = crate::merge::MergeVec::from_sources(sources.iter().map(|s| item_source(s)), order);
            let merged: Result<Vec<_>, _> = merge.expect("within the fan-in").collect();
            prop_assert_eq!(merged, Ok(expected));
        }
    }
}
