//! Segment reads on a 1M-entry segment built in memory: 100,000 random 16-byte keys written
//! 10 times each (100-byte values) at versions 1..=1,000,000, one write per microsecond, each
//! round visiting the keys in a fresh random order. So every key has 10 versions spread over the
//! whole time span, and a 1% time window holds 10,000 writes to 10,000 different keys.
//!
//! - `get_at`: a random existing key at a random version.
//! - `changes`, through the box scan (zone maps + BIGMIN), against a plain scan of every entry
//!   filtered by the same box: all keys x a 1% time window, and 1% of the keys x all time.
//!
//! With random 16-byte keys and versions below 2^20, the high five bytes of every version are
//! zero, so `M` orders entries by their first five key bytes before any version byte: the Z
//! order is nearly key order, each block spans the whole time range, and a narrow time window
//! cannot prune blocks. A narrow key range can.
//!
//! Run: `cargo bench -p zverse-benches --bench segment -- --warm-up-time 1 --measurement-time 3`
#![allow(missing_docs, reason = "criterion's macros generate undocumented items")]

use std::cmp::Ordering;
use std::hint::black_box;
use std::ops::{Bound, Range, RangeBounds};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use zverse_core::segment::{Segment, SegmentBuilder, SegmentOptions};
use zverse_core::zkey::cmp_z;
use zverse_core::{Corruption, Entry, Version};

const KEY_COUNT: usize = 100_000;
const VERSIONS_PER_KEY: usize = 10;
const KEY_LEN: usize = 16;
const VALUE_LEN: usize = 100;
const ENTRY_COUNT: u64 = (KEY_COUNT * VERSIONS_PER_KEY) as u64;
/// The `changes` window: 1% of the versions, in the middle of the span.
const WINDOW_START: u64 = ENTRY_COUNT / 2;
const WINDOW_LEN: u64 = ENTRY_COUNT / 100;
const LOOKUPS_PER_ITERATION: usize = 1_000;

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

    fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for index in (1..items.len()).rev() {
            items.swap(index, self.below(index + 1));
        }
    }
}

struct Dataset {
    keys: Vec<[u8; KEY_LEN]>,
    segment_bytes: Vec<u8>,
}

fn build_dataset() -> Dataset {
    let mut rng = SplitMix64(0x5EED);
    let keys: Vec<[u8; KEY_LEN]> = (0..KEY_COUNT)
        .map(|_| {
            let mut key = [0u8; KEY_LEN];
            key[..8].copy_from_slice(&rng.next_u64().to_be_bytes());
            key[8..].copy_from_slice(&rng.next_u64().to_be_bytes());
            key
        })
        .collect();
    let mut writes: Vec<(usize, u64)> = Vec::with_capacity(ENTRY_COUNT as usize);
    let mut order: Vec<usize> = (0..KEY_COUNT).collect();
    let mut version = 0u64;
    for _ in 0..VERSIONS_PER_KEY {
        rng.shuffle(&mut order);
        for &key_index in &order {
            version += 1;
            writes.push((key_index, version));
        }
    }
    writes.sort_unstable_by(|a, b| z_order(&keys, *a, *b));
    let value = [0x5Au8; VALUE_LEN];
    let mut builder = SegmentBuilder::new(Vec::new(), SegmentOptions::default());
    for (key_index, version) in writes {
        builder.add(&keys[key_index], Version::new(version), Some(&value)).expect("in Z order");
    }
    let (segment_bytes, summary) = builder.finish().expect("a Vec sink never fails");
    eprintln!(
        "segment: {} entries, {} keys, {} bytes",
        summary.entry_count, summary.key_count, summary.file_len
    );
    Dataset { keys, segment_bytes }
}

fn z_order(keys: &[[u8; KEY_LEN]], a: (usize, u64), b: (usize, u64)) -> Ordering {
    cmp_z(&keys[a.0], Version::new(a.1), &keys[b.0], Version::new(b.1))
}

/// A box query: a key range and a version range.
struct BoxCase {
    name: &'static str,
    keys: (Bound<&'static [u8]>, Bound<&'static [u8]>),
    versions: Range<Version>,
}

/// The upper key bound of 1% of the key space: keys are uniform random bytes.
const ONE_PERCENT_OF_KEYS: [u8; 8] = (u64::MAX / 100).to_be_bytes();

fn box_cases() -> [BoxCase; 2] {
    let window = Version::new(WINDOW_START)..Version::new(WINDOW_START + WINDOW_LEN);
    [
        BoxCase {
            name: "all_keys_x_1pct_versions",
            keys: (Bound::Unbounded, Bound::Unbounded),
            versions: window,
        },
        BoxCase {
            name: "1pct_keys_x_all_versions",
            keys: (Bound::Unbounded, Bound::Excluded(ONE_PERCENT_OF_KEYS.as_slice())),
            versions: Version::ZERO..Version::MAX,
        },
    ]
}

fn bench_get_at(c: &mut Criterion, dataset: &Dataset, segment: &Segment<'_>) {
    let mut rng = SplitMix64(7);
    let probes: Vec<(usize, u64)> = (0..LOOKUPS_PER_ITERATION * 64)
        .map(|_| (rng.below(KEY_COUNT), 1 + rng.next_u64() % ENTRY_COUNT))
        .collect();
    let mut group = c.benchmark_group("segment");
    group.throughput(Throughput::Elements(LOOKUPS_PER_ITERATION as u64));
    let mut next = 0;
    group.bench_function("get_at_random_existing_key", |b| {
        b.iter(|| {
            let mut found = 0usize;
            for _ in 0..LOOKUPS_PER_ITERATION {
                let (key_index, version) = probes[next % probes.len()];
                next += 1;
                let entry = segment.get_at(&dataset.keys[key_index], Version::new(version));
                found += usize::from(entry.expect("no corruption").is_some());
            }
            black_box(found)
        });
    });
    group.finish();
}

/// Counts the entries, failing on the first corruption.
fn count_entries<'a>(entries: impl Iterator<Item = Result<Entry<'a>, Corruption>>) -> usize {
    let mut count = 0;
    for entry in entries {
        entry.expect("no corruption");
        count += 1;
    }
    count
}

fn count_changes(segment: &Segment<'_>, case: &BoxCase) -> usize {
    count_entries(segment.changes(case.keys, case.versions.clone()))
}

fn count_full_scan(segment: &Segment<'_>, case: &BoxCase) -> usize {
    let in_box = |entry: &Entry<'_>| {
        case.keys.contains(&entry.key) && case.versions.contains(&entry.version)
    };
    segment.iter().map(|entry| entry.expect("no corruption")).filter(in_box).count()
}

fn bench_changes(c: &mut Criterion, segment: &Segment<'_>, case: &BoxCase) {
    let mut changes = segment.changes(case.keys, case.versions.clone());
    let returned = count_entries(changes.by_ref());
    let stats = changes.stats();
    assert_eq!(returned, count_full_scan(segment, case), "the box scan returns what a scan does");
    eprintln!(
        "changes {}: returned {returned}; box scan touched {}, BIGMIN seeks {}, decoded {}, \
         blocks read {}, pruned {} of {}; the full scan decodes {}",
        case.name,
        stats.scan.entries_touched,
        stats.scan.seeks,
        stats.blocks.entries_decoded,
        stats.blocks.blocks_read,
        stats.blocks.blocks_pruned,
        segment.block_count(),
        segment.entry_count(),
    );
    let mut group = c.benchmark_group("segment");
    group.throughput(Throughput::Elements(ENTRY_COUNT));
    group.bench_function(format!("changes_{}", case.name), |b| {
        b.iter(|| black_box(count_changes(segment, case)));
    });
    group.bench_function(format!("full_scan_filtered_{}", case.name), |b| {
        b.iter(|| black_box(count_full_scan(segment, case)));
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let dataset = build_dataset();
    let segment = Segment::open(&dataset.segment_bytes).expect("a built segment opens");
    bench_get_at(c, &dataset, &segment);
    for case in &box_cases() {
        bench_changes(c, &segment, case);
    }
}

criterion_group!(segment_benches, benches);
criterion_main!(segment_benches);
