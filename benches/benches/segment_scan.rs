//! Scans of a current segment: 1M distinct keys, one version each (versions 1..=1,000,000 in a
//! random order over the keys), 100-byte values, built in memory once in Z order and once in
//! key order ([`Order::Key`]). Two key sets: random 16-byte keys, and shared-prefix keys (a
//! 24-byte common prefix and an 8-byte big-endian id, as `SurrealDB` writes them).
//!
//! Each segment remembers which blocks passed their checksum (`with_verified_blocks`), as the
//! engine's are, so the rows measure the layout, not XXH3 (which, hashing every block a scan
//! enters, took 35% of a key-order full scan and more where Z order jumps between blocks).
//!
//! Rows (`segment_scan/{keys}/{order}/{scan}`), each the latest state through `range_at`:
//! - `full`: every key at `Version::MAX`;
//! - `range_1pct`: the keys of a 1% key range (10,000 keys) at `Version::MAX`.
//!
//! Run: `cargo bench -p zverse-benches --bench segment_scan -- --warm-up-time 1
//! --measurement-time 3`
#![allow(missing_docs, reason = "criterion's macros generate undocumented items")]

use std::hint::black_box;
use std::sync::atomic::AtomicBool;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use zverse_core::segment::{Order, Segment, SegmentBuilder, SegmentOptions};
use zverse_core::zkey::cmp_z;
use zverse_core::{Corruption, Entry, Version};

const ENTRY_COUNT: usize = 1_000_000;
const VALUE_LEN: usize = 100;
/// Keys in the 1% range scan.
const RANGE_KEYS: usize = ENTRY_COUNT / 100;
const SHARED_PREFIX: &[u8; 24] = b"/*ns*db*tb*records*0000:";

/// `SplitMix64`: a deterministic, seedable generator, so every run measures the same data.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The key set's keys, sorted, each with its version (a random permutation of 1..=N).
fn dataset(shared_prefix: bool) -> Vec<(Vec<u8>, u64)> {
    let mut rng = SplitMix64(0x5CA7);
    let mut keys: Vec<Vec<u8>> = (0..ENTRY_COUNT as u64)
        .map(|id| {
            if shared_prefix {
                [SHARED_PREFIX.as_slice(), &id.to_be_bytes()].concat()
            } else {
                [rng.next_u64().to_be_bytes(), rng.next_u64().to_be_bytes()].concat()
            }
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let mut versions: Vec<u64> = (1..=keys.len() as u64).collect();
    for index in (1..versions.len()).rev() {
        let other = (rng.next_u64() % (index as u64 + 1)) as usize;
        versions.swap(index, other);
    }
    keys.into_iter().zip(versions).collect()
}

fn build(entries: &[(Vec<u8>, u64)], order: Order) -> Vec<u8> {
    let mut sorted: Vec<&(Vec<u8>, u64)> = entries.iter().collect();
    if order == Order::Z {
        sorted.sort_by(|a, b| cmp_z(&a.0, Version::new(a.1), &b.0, Version::new(b.1)));
    }
    let value = [7u8; VALUE_LEN];
    let options = SegmentOptions::default().with_order(order);
    let mut builder = SegmentBuilder::new(Vec::with_capacity(140 * ENTRY_COUNT), options);
    for (key, version) in sorted {
        builder.add(key, Version::new(*version), Some(&value)).expect("entries in order");
    }
    builder.finish().expect("a Vec sink never fails").0
}

fn count<'a>(entries: impl Iterator<Item = Result<Entry<'a>, Corruption>>) -> usize {
    entries.map(|entry| black_box(entry.expect("undamaged")).key.len()).filter(|&n| n > 0).count()
}

fn bench_key_set(c: &mut Criterion, name: &str, shared_prefix: bool) {
    let entries = dataset(shared_prefix);
    let start = &entries[entries.len() / 2].0;
    let end = &entries[entries.len() / 2 + RANGE_KEYS].0;
    let mut group = c.benchmark_group(format!("segment_scan/{name}"));
    group.sample_size(10);
    for (order_name, order) in [("z", Order::Z), ("key", Order::Key)] {
        let bytes = build(&entries, order);
        let segment = Segment::open(&bytes).expect("a built segment opens");
        // As the engine opens every segment: each block is hashed the first time a read
        // touches it, then trusted.
        let verified: Vec<AtomicBool> =
            (0..segment.block_count()).map(|_| AtomicBool::new(false)).collect();
        let segment = segment.with_verified_blocks(&verified);
        assert_eq!(segment.order(), order);
        let full = || count(segment.range_at(.., Version::MAX));
        assert_eq!(full(), entries.len());
        group.throughput(Throughput::Elements(entries.len() as u64));
        group.bench_function(format!("{order_name}/full"), |b| b.iter(full));
        let range = || count(segment.range_at(start.as_slice()..end.as_slice(), Version::MAX));
        assert_eq!(range(), RANGE_KEYS);
        group.throughput(Throughput::Elements(RANGE_KEYS as u64));
        group.bench_function(format!("{order_name}/range_1pct"), |b| b.iter(range));
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_key_set(c, "random", false);
    bench_key_set(c, "shared_prefix", true);
}

criterion_group!(segment_scan_benches, benches);
criterion_main!(segment_scan_benches);
