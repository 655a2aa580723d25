//! History segments (rank-space Z order, `zverse_core::segment::history`) against the current
//! Z-order segment (`zverse_core::segment`) on the same data: 100,000 keys written 10 times
//! each (100-byte values) at versions 1..=1,000,000, one write per microsecond, each round in a
//! fresh random order (as `benches/segment.rs`). Two key sets: random 16-byte keys, and
//! SurrealDB-shaped keys (a 24-byte common prefix and a random 8-byte id).
//!
//! For three `changes` boxes (all keys x 1% of the time, 10% of the keys x 10% of the time, 1%
//! of the keys x all time) it prints what each format read (blocks, and bytes: exact for the
//! history segment, blocks x the mean block size for the Z-order one, whose stats count no
//! bytes) and times the query. Also `get_at` of a random existing key at a random version.
//!
//! Run: `cargo bench -p zverse-benches --bench history -- --warm-up-time 1 --measurement-time 3`
//! (`cargo test --benches` runs it once on 2,000 keys).
#![allow(missing_docs, reason = "criterion's macros generate undocumented items")]
#![expect(clippy::cast_precision_loss, reason = "percentages of counts far below 2^52")]

use std::hint::black_box;
use std::ops::{Bound, Range};

use criterion::{Criterion, criterion_group, criterion_main};
use zverse_benches::is_test_mode;
use zverse_core::segment::history::{HistoryBuilder, HistoryOptions, HistorySegment};
use zverse_core::segment::{Segment, SegmentBuilder, SegmentOptions};
use zverse_core::zkey::cmp_z;
use zverse_core::{Corruption, Entry, Version};

const VERSIONS_PER_KEY: usize = 10;
const VALUE_LEN: usize = 100;
/// The common prefix of the shared-prefix keys: SurrealDB's `/*ns*db*tb*` shape, 24 bytes.
const SHARED_PREFIX: &[u8; 24] = b"/*namespace\0*database\0*t";
const LOOKUPS_PER_ITERATION: usize = 1_000;

fn key_count() -> usize {
    if is_test_mode() { 2_000 } else { 100_000 }
}

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

/// One key set and both segments built from it.
struct Dataset {
    name: &'static str,
    /// The keys' common prefix (empty for random keys); key bounds are this plus 8 bytes.
    prefix: &'static [u8],
    keys: Vec<Vec<u8>>,
    entry_count: u64,
    zorder_bytes: Vec<u8>,
    history_bytes: Vec<u8>,
}

fn build_dataset(name: &'static str, prefix: &'static [u8]) -> Dataset {
    let mut rng = SplitMix64(0x5EED);
    let keys: Vec<Vec<u8>> = (0..key_count())
        .map(|_| {
            let mut key = prefix.to_vec();
            key.extend_from_slice(&rng.next_u64().to_be_bytes());
            if prefix.is_empty() {
                key.extend_from_slice(&rng.next_u64().to_be_bytes());
            }
            key
        })
        .collect();
    let mut writes: Vec<(usize, u64)> = Vec::with_capacity(keys.len() * VERSIONS_PER_KEY);
    let mut order: Vec<usize> = (0..keys.len()).collect();
    let mut version = 0u64;
    for _ in 0..VERSIONS_PER_KEY {
        rng.shuffle(&mut order);
        for &key_index in &order {
            version += 1;
            writes.push((key_index, version));
        }
    }
    let value = [0x5Au8; VALUE_LEN];
    writes.sort_unstable_by(|a, b| {
        cmp_z(&keys[a.0], Version::new(a.1), &keys[b.0], Version::new(b.1))
    });
    let mut builder = SegmentBuilder::new(Vec::new(), SegmentOptions::default());
    for &(key_index, version) in &writes {
        builder.add(&keys[key_index], Version::new(version), Some(&value)).expect("in Z order");
    }
    let (zorder_bytes, _) = builder.finish().expect("a Vec sink never fails");
    writes.sort_unstable_by(|a, b| keys[a.0].cmp(&keys[b.0]).then(b.1.cmp(&a.1)));
    let mut builder = HistoryBuilder::new(HistoryOptions::default());
    for &(key_index, version) in &writes {
        let added = builder.add::<()>(&keys[key_index], Version::new(version), Some(&value));
        added.expect("in key order");
    }
    let mut history_bytes = Vec::new();
    builder.finish(&mut history_bytes).expect("a Vec sink never fails");
    let entry_count = writes.len() as u64;
    eprintln!(
        "{name}: {entry_count} entries; Z-order segment {} bytes, history segment {} bytes",
        zorder_bytes.len(),
        history_bytes.len()
    );
    Dataset { name, prefix, keys, entry_count, zorder_bytes, history_bytes }
}

/// A box query: a key range and a version range.
struct BoxCase {
    name: &'static str,
    keys: (Bound<Vec<u8>>, Bound<Vec<u8>>),
    versions: Range<Version>,
}

/// The key at `percent` of the key space: the ids (or first 8 bytes) are uniform.
fn key_at(prefix: &[u8], percent: u64) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(&(u64::MAX / 100 * percent).to_be_bytes());
    key
}

fn box_cases(dataset: &Dataset) -> [BoxCase; 3] {
    let versions = dataset.entry_count;
    let window = |percent: u64| {
        let start = versions / 2;
        Version::new(start)..Version::new(start + versions / 100 * percent)
    };
    let keys = |percent: u64| {
        (
            Bound::Included(key_at(dataset.prefix, 45)),
            Bound::Excluded(key_at(dataset.prefix, 45 + percent)),
        )
    };
    [
        BoxCase {
            name: "all_keys_x_1pct_versions",
            keys: (Bound::Unbounded, Bound::Unbounded),
            versions: window(1),
        },
        BoxCase { name: "10pct_keys_x_10pct_versions", keys: keys(10), versions: window(10) },
        BoxCase {
            name: "1pct_keys_x_all_versions",
            keys: keys(1),
            versions: Version::ZERO..Version::MAX,
        },
    ]
}

fn key_bounds(case: &BoxCase) -> (Bound<&[u8]>, Bound<&[u8]>) {
    (bound_ref(&case.keys.0), bound_ref(&case.keys.1))
}

fn bound_ref(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(key) => Bound::Included(key.as_slice()),
        Bound::Excluded(key) => Bound::Excluded(key.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
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

/// Prints what each format read for `case`, and checks they return the same count.
fn report_work(
    dataset: &Dataset,
    zorder: &Segment<'_>,
    history: &HistorySegment<'_>,
    case: &BoxCase,
) {
    let mut z_changes = zorder.changes(key_bounds(case), case.versions.clone());
    let z_returned = count_entries(z_changes.by_ref());
    let z_stats = z_changes.stats();
    let mut h_changes = history.changes(key_bounds(case), case.versions.clone());
    let h_returned = count_entries(h_changes.by_ref());
    let h_stats = h_changes.stats();
    assert_eq!(z_returned, h_returned, "both formats answer the same box");
    let z_blocks = zorder.block_count() as f64;
    let z_mean_block = zorder.data_len() as f64 / z_blocks;
    let z_read = z_stats.blocks.blocks_read as f64;
    let h_data = history.data_len() as f64;
    eprintln!(
        "{} {}: returned {h_returned}\n  z-order: read {} of {} blocks ({:.2}%), ~{:.0} KB \
         ({:.2}% of data), decoded {}\n  rank-space: read {} of {} blocks ({:.2}%), {} KB \
         ({:.2}% of data), decoded {}, pruned by zone {}, jumped {}",
        dataset.name,
        case.name,
        z_stats.blocks.blocks_read,
        zorder.block_count(),
        100.0 * z_read / z_blocks,
        z_read * z_mean_block / 1000.0,
        100.0 * z_read * z_mean_block / zorder.data_len() as f64,
        z_stats.blocks.entries_decoded,
        h_stats.blocks_read,
        history.block_count(),
        100.0 * h_stats.blocks_read as f64 / history.block_count() as f64,
        h_stats.bytes_read / 1000,
        100.0 * h_stats.bytes_read as f64 / h_data,
        h_stats.entries_decoded,
        h_stats.blocks_pruned,
        h_stats.blocks_jumped,
    );
}

fn bench_dataset(c: &mut Criterion, dataset: &Dataset) {
    let zorder = Segment::open(&dataset.zorder_bytes).expect("a built segment opens");
    let history = HistorySegment::open(&dataset.history_bytes).expect("a built segment opens");
    let mut group = c.benchmark_group(format!("history/{}", dataset.name));
    for case in &box_cases(dataset) {
        report_work(dataset, &zorder, &history, case);
        group.bench_function(format!("{}/zorder", case.name), |b| {
            b.iter(|| {
                black_box(count_entries(zorder.changes(key_bounds(case), case.versions.clone())))
            });
        });
        group.bench_function(format!("{}/rank_space", case.name), |b| {
            b.iter(|| {
                black_box(count_entries(history.changes(key_bounds(case), case.versions.clone())))
            });
        });
    }
    let mut rng = SplitMix64(7);
    let probes: Vec<(usize, u64)> = (0..LOOKUPS_PER_ITERATION * 64)
        .map(|_| (rng.below(dataset.keys.len()), 1 + rng.next_u64() % dataset.entry_count))
        .collect();
    let get_at = |lookup: &dyn Fn(&[u8], Version) -> bool, next: &mut usize| {
        let mut found = 0usize;
        for _ in 0..LOOKUPS_PER_ITERATION {
            let (key_index, version) = probes[*next % probes.len()];
            *next += 1;
            found += usize::from(lookup(&dataset.keys[key_index], Version::new(version)));
        }
        found
    };
    let mut next = 0;
    group.bench_function("get_at_1000/zorder", |b| {
        let lookup = |key: &[u8], v| zorder.get_at(key, v).expect("no corruption").is_some();
        b.iter(|| black_box(get_at(&lookup, &mut next)));
    });
    group.bench_function("get_at_1000/rank_space", |b| {
        let lookup = |key: &[u8], v| history.get_at(key, v).expect("no corruption").is_some();
        b.iter(|| black_box(get_at(&lookup, &mut next)));
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    for (name, prefix) in [("random_keys", &b""[..]), ("shared_prefix_keys", &SHARED_PREFIX[..])] {
        let dataset = build_dataset(name, prefix);
        bench_dataset(c, &dataset);
    }
}

criterion_group!(history_benches, benches);
criterion_main!(history_benches);
