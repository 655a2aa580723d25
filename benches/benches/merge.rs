//! Merge throughput: 8 sources of 100k entries each, in key order and in Z order, with the
//! array-backed and the `Vec`-backed loser tree, beside a binary-heap merge as the baseline.
//!
//! `cargo bench -p zverse-benches --bench merge`

use core::cmp::{Ordering, Reverse};
use core::convert::Infallible;
use std::collections::BinaryHeap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use zverse_core::merge::{KeyOrder, Keyed, MergeN, MergeVec, Order, ZOrder};
use zverse_core::{Entry, Version};

const SOURCE_COUNT: usize = 8;
const SOURCE_LEN: usize = 100_000;

/// The keys: entry `i` of source `s` gets key `i * SOURCE_COUNT + s`, so the winner moves
/// from source to source as a merge of overlapping tiers does.
fn keys() -> Vec<[u8; 8]> {
    (0..SOURCE_COUNT * SOURCE_LEN).map(|raw| (raw as u64).to_be_bytes()).collect()
}

/// The sources, each sorted by `order`.
fn sources<'k>(keys: &'k [[u8; 8]], order: &impl Order<Entry<'k>>) -> Vec<Vec<Entry<'k>>> {
    (0..SOURCE_COUNT)
        .map(|source_index| {
            let mut entries: Vec<_> = (0..SOURCE_LEN)
                .map(|position| Entry {
                    key: &keys[position * SOURCE_COUNT + source_index],
                    version: Version::new((position % 97) as u64 + 1),
                    value: Some(b"value"),
                })
                .collect();
            entries.sort_by(|a, b| order.cmp(a, b));
            entries
        })
        .collect()
}

/// Drains a merge, folding what it yields so that nothing is optimized away.
fn drain<'k>(merge: impl Iterator<Item = Result<Entry<'k>, Infallible>>) -> u64 {
    merge.map(|entry| entry.map_or(0, |entry| entry.version.get())).sum()
}

/// A binary-heap k-way merge: the textbook alternative to the loser tree.
fn heap_merge<'k>(sources: &[Vec<Entry<'k>>], order: impl Order<Entry<'k>> + Copy) -> u64 {
    struct Head<'k, O> {
        entry: Entry<'k>,
        source_index: usize,
        order: O,
    }
    impl<'k, O: Order<Entry<'k>>> Ord for Head<'k, O> {
        fn cmp(&self, other: &Self) -> Ordering {
            let by_entry = self.order.cmp(&self.entry, &other.entry);
            by_entry.then(self.source_index.cmp(&other.source_index))
        }
    }
    impl<'k, O: Order<Entry<'k>>> PartialOrd for Head<'k, O> {
        fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
            Some(self.cmp(other))
        }
    }
    impl<'k, O: Order<Entry<'k>>> PartialEq for Head<'k, O> {
        fn eq(&self, other: &Self) -> bool {
            self.cmp(other) == Ordering::Equal
        }
    }
    impl<'k, O: Order<Entry<'k>>> Eq for Head<'k, O> {}

    let mut iters: Vec<_> = sources.iter().map(|source| source.iter().copied()).collect();
    let mut heap = BinaryHeap::with_capacity(iters.len());
    for (source_index, iter) in iters.iter_mut().enumerate() {
        if let Some(entry) = iter.next() {
            heap.push(Reverse(Head { entry, source_index, order }));
        }
    }
    let mut sum = 0;
    while let Some(mut top) = heap.peek_mut() {
        let winner = &mut top.0;
        sum += winner.entry.version.get();
        match iters[winner.source_index].next() {
            Some(entry) => winner.entry = entry,
            None => drop(std::collections::binary_heap::PeekMut::pop(top)),
        }
    }
    sum
}

fn bench_order<O: for<'k> Order<Entry<'k>> + Copy>(c: &mut Criterion, name: &str, order: O) {
    let keys = keys();
    let sources = sources(&keys, &order);
    let source_iter = |index: usize| sources[index].iter().copied().map(Ok::<_, Infallible>);
    let mut group = c.benchmark_group(format!("merge_8x100k_{name}"));
    group.throughput(Throughput::Elements((SOURCE_COUNT * SOURCE_LEN) as u64));
    group.sample_size(10);
    group.bench_function("loser_tree_array", |b| {
        b.iter(|| {
            let array: [_; SOURCE_COUNT] = core::array::from_fn(source_iter);
            black_box(drain(MergeN::from_array(array, order)))
        });
    });
    group.bench_function("loser_tree_vec", |b| {
        b.iter(|| {
            let merge = MergeVec::from_sources((0..SOURCE_COUNT).map(source_iter), order);
            black_box(drain(merge.expect("8 sources are within the fan-in")))
        });
    });
    group.bench_function("binary_heap", |b| b.iter(|| black_box(heap_merge(&sources, order))));
    group.finish();
}

/// An entry with its Morton prefix decoded once, as a segment reader yields it.
#[derive(Clone, Copy)]
struct CachedMorton<'k> {
    entry: Entry<'k>,
    morton: u128,
}

impl Keyed for CachedMorton<'_> {
    fn key(&self) -> &[u8] {
        self.entry.key
    }

    fn version(&self) -> Version {
        self.entry.version
    }

    fn morton(&self) -> u128 {
        self.morton
    }
}

/// Z order over items that carry their Morton prefix: the comparison the engine's segment
/// sources can have.
fn bench_z_order_cached_morton(c: &mut Criterion) {
    let keys = keys();
    let sources: Vec<Vec<_>> = sources(&keys, &ZOrder)
        .into_iter()
        .map(|entries| {
            entries
                .into_iter()
                .map(|entry| CachedMorton { entry, morton: entry.morton() })
                .collect()
        })
        .collect();
    let source_iter = |index: usize| sources[index].iter().copied().map(Ok::<_, Infallible>);
    let mut group = c.benchmark_group("merge_8x100k_z_order");
    group.throughput(Throughput::Elements((SOURCE_COUNT * SOURCE_LEN) as u64));
    group.sample_size(10);
    group.bench_function("loser_tree_array_cached_morton", |b| {
        b.iter(|| {
            let array: [_; SOURCE_COUNT] = core::array::from_fn(source_iter);
            let merge = MergeN::from_array(array, ZOrder);
            black_box(
                merge.map(|item| item.map_or(0, |item| item.entry.version.get())).sum::<u64>(),
            )
        });
    });
    group.finish();
}

fn merge_throughput(c: &mut Criterion) {
    bench_order(c, "key_order", KeyOrder);
    bench_order(c, "z_order", ZOrder);
    bench_z_order_cached_morton(c);
}

criterion_group!(benches, merge_throughput);
criterion_main!(benches);
