//! The engine end to end: `zverse::Db` on files in a temporary directory (`$TMPDIR`, or
//! `/tmp`), random 16-byte keys and 100-byte values, seeded so every run writes the same data.
//!
//! - `fill_random/{none,sync}/{1thread,4threads}/{N}_writes`: N puts into a fresh database,
//!   one iteration = the whole fill (setup and close are outside the timing). `None` fills the
//!   whole dataset (1M keys); `Sync` pays one fdatasync per commit group, so it fills only
//!   2,000 writes per iteration. With 4 threads each writes a quarter of the keys and
//!   concurrent writers share a group (and, in `Sync`, its one sync).
//! - `fill_batches/none/1thread/{sustained,memtable_only}/{N}_writes`: the same N puts in
//!   batches of 1,000 from one thread, `Durability::None`: `sustained` with the default 64 MiB
//!   memtable (flushes run meanwhile), `memtable_only` with a memtable that holds every write
//!   (issue 13's in-memory figure: the write path without flushes).
//! - `read/*`, on a dataset built once, outside the timing: every key written once
//!   (`Durability::None`), then a second version of every tenth key, then `flush()`, so that
//!   reads hit segments. `get_latest` and `get_as_of` run 1,000 lookups per iteration;
//!   `get_as_of` reads a random key at a random version taken from the load's writes (about
//!   half of them predate the key's first write, and find nothing); `range_1pct` reads the
//!   latest values of 1% of the keys (a random run of consecutive keys), `range_1pct_rev` the
//!   same walked backwards (`.rev()`); `changes_1pct_time`
//!   reads every change to any key within the versions of a random 1% of the writes, in write
//!   order.
//! - `read/scan_short`: YCSB E's scans without its inserts: from a random loaded key, the
//!   first 1 to 100 keys (uniform), open-ended (`range(start..)`), 100 scans per iteration:
//!   what a short scan pays to set up.
//! - `read_threads/get_latest/{1,2,4,8}`: `get_latest` from 1, 2, 4 and 8 reader threads at
//!   once on the same dataset, each doing 1,000 lookups per iteration; the throughput is all
//!   threads' lookups together (reader scaling: readers share the tier set and the segments).
//!
//! Sizes: `ZVERSE_BENCH_KEYS` overrides the dataset's key count (default 1,000,000). Under
//! `cargo test --benches` (criterion's test mode: no `--bench` argument) the default is 10,000
//! keys and 200 synced writes, so the smoke run stays fast in debug.
//!
//! Run: `cargo bench -p zverse-benches --bench engine -- --warm-up-time 1 --measurement-time 5`
#![allow(missing_docs, reason = "criterion's macros generate undocumented items")]

use std::cell::OnceCell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{
    Bencher, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group,
    criterion_main, measurement::WallTime,
};
use tempfile::TempDir;
use zverse::{Db, Durability, Options, Version};

const KEY_LEN: usize = 16;
const VALUE_LEN: usize = 100;
type Key = [u8; KEY_LEN];

const KEY_COUNT_DEFAULT: usize = 1_000_000;
/// The key count in criterion's test mode (`cargo test --benches`), which runs in debug.
const KEY_COUNT_TEST: usize = 10_000;
/// Synced writes per `Sync` fill iteration. An fdatasync that extends a file costs from 0.15 ms
/// to 3.5 ms on the shared 2-core development VM (it follows the other tenants' I/O), so
/// 20,000 could take over a minute per iteration, and a run takes eleven (one per sample, and
/// the warm-up).
const SYNC_WRITE_COUNT: usize = 2_000;
const SYNC_WRITE_COUNT_TEST: usize = 200;
const FILL_THREAD_COUNTS: [usize; 2] = [1, 4];
const READER_THREAD_COUNTS: [usize; 4] = [1, 2, 4, 8];
const SHORT_SCANS_PER_ITERATION: usize = 100;
/// The longest short scan, in items (YCSB's default `maxscanlength`).
const SHORT_SCAN_ITEMS_MAX: usize = 100;
const LOOKUPS_PER_ITERATION: usize = 1_000;
/// The read dataset rewrites every this many-th key with a second version (10% of the keys).
const REWRITE_STRIDE: usize = 10;
/// `range_1pct` and `changes_1pct_time` cover one part in this many (of keys, of writes).
const SLICE_PARTS: usize = 100;
const SEED: u64 = 0x5EED;
const VALUE_FIRST: [u8; VALUE_LEN] = [0x5A; VALUE_LEN];
const VALUE_SECOND: [u8; VALUE_LEN] = [0xA5; VALUE_LEN];

/// How big the benchmarks are, from the environment and the run mode.
#[derive(Clone, Copy)]
struct Scale {
    key_count: usize,
    sync_write_count: usize,
}

fn scale() -> Scale {
    let test_mode = zverse_benches::is_test_mode();
    let key_count = match std::env::var("ZVERSE_BENCH_KEYS") {
        Ok(text) => text.parse().expect("ZVERSE_BENCH_KEYS is a key count"),
        Err(_) if test_mode => KEY_COUNT_TEST,
        Err(_) => KEY_COUNT_DEFAULT,
    };
    assert!(key_count >= SLICE_PARTS, "ZVERSE_BENCH_KEYS must be at least {SLICE_PARTS}");
    let sync_write_count = if test_mode { SYNC_WRITE_COUNT_TEST } else { SYNC_WRITE_COUNT };
    Scale { key_count, sync_write_count: sync_write_count.min(key_count) }
}

fn open(dir: &TempDir, durability: Durability) -> Db {
    Db::open(dir.path(), Options::default().durability(durability)).expect("open a fresh db")
}

fn fill_random(c: &mut Criterion) {
    let scale = scale();
    let mut group = c.benchmark_group("fill_random");
    // One iteration is a whole fill (seconds): ten of them, one per sample.
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    let cases = [
        (Durability::None, "none", scale.key_count),
        (Durability::Sync, "sync", scale.sync_write_count),
    ];
    for (durability, durability_name, write_count) in cases {
        let keys = zverse_benches::random_keys::<KEY_LEN>(
            &mut fastrand::Rng::with_seed(SEED),
            write_count,
        );
        group.throughput(Throughput::Elements(write_count as u64));
        for thread_count in FILL_THREAD_COUNTS {
            let threads = if thread_count == 1 { "thread" } else { "threads" };
            let id = BenchmarkId::new(
                format!("{durability_name}/{thread_count}{threads}"),
                format!("{write_count}_writes"),
            );
            bench_fill(&mut group, id, durability, &keys, thread_count);
        }
    }
    group.finish();
}

fn bench_fill(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: BenchmarkId,
    durability: Durability,
    keys: &[Key],
    thread_count: usize,
) {
    let mut reported = false;
    group.bench_function(id, |b| {
        b.iter_custom(|iterations| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iterations {
                let dir = tempfile::tempdir().expect("create a temporary directory");
                let db = open(&dir, durability);
                elapsed += zverse_benches::timed_fill(&db, keys, &VALUE_FIRST, thread_count);
                report_once(&mut reported, || report_fill(&db, keys.len(), thread_count));
                // Closing (joining a background flush in progress) is not part of the fill.
                drop(db);
            }
            elapsed
        });
    });
}

fn report_fill(db: &Db, write_count: usize, thread_count: usize) {
    let stats = db.stats();
    assert_eq!(stats.commit_records, write_count as u64, "every put committed once");
    #[allow(clippy::cast_precision_loss, reason = "a ratio of counts for display")]
    let records_per_group = stats.commit_records as f64 / stats.commit_groups.max(1) as f64;
    eprintln!(
        "fill: {write_count} writes, {thread_count} writer thread(s): {} commit groups, \
         {records_per_group:.2} records per group (per sync, in Sync mode), {} memtables \
         flushed to segments by the last put, {} segments",
        stats.commit_groups, stats.flushes, stats.segment_count,
    );
}

/// Writes per batch in `fill_batches`.
const BATCH_LEN: usize = 1_000;
/// `fill_batches/memtable_only`'s memtable: room for 1M writes of this bench (about 160 MB of
/// arena), so that no flush starts.
const MEMTABLE_ONLY_BYTES: u64 = 1 << 30;

fn fill_batches(c: &mut Criterion) {
    let scale = scale();
    let mut group = c.benchmark_group("fill_batches");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    let keys = zverse_benches::random_keys::<KEY_LEN>(
        &mut fastrand::Rng::with_seed(SEED),
        scale.key_count,
    );
    group.throughput(Throughput::Elements(keys.len() as u64));
    let cases = [("sustained", Options::default()), ("memtable_only", memtable_only())];
    for (name, options) in cases {
        let id = BenchmarkId::new(format!("none/1thread/{name}"), format!("{}_writes", keys.len()));
        group.bench_function(id, |b| {
            b.iter_custom(|iterations| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iterations {
                    let dir = tempfile::tempdir().expect("create a temporary directory");
                    let options = options.clone().durability(Durability::None);
                    let db = Db::open(dir.path(), options).expect("open a fresh db");
                    elapsed += timed_batch_fill(&db, &keys);
                    drop(db);
                }
                elapsed
            });
        });
    }
    group.finish();
}

fn memtable_only() -> Options {
    Options::default().memtable_bytes_max(MEMTABLE_ONLY_BYTES)
}

fn timed_batch_fill(db: &Db, keys: &[Key]) -> Duration {
    let start = Instant::now();
    for chunk in keys.chunks(BATCH_LEN) {
        let mut batch = db.batch();
        for key in chunk {
            batch.put(key, &VALUE_FIRST);
        }
        batch.commit().expect("commit a batch");
    }
    start.elapsed()
}

/// The read benchmarks' database, built once.
struct ReadDataset {
    /// Declared before `_dir`, so it closes before the directory is removed.
    db: Db,
    _dir: TempDir,
    /// In load order.
    keys: Vec<Key>,
    keys_sorted: Vec<Key>,
    /// Every write's version, in write order (ascending: one writer).
    versions: Vec<Version>,
}

fn build_read_dataset(key_count: usize) -> ReadDataset {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let db = open(&dir, Durability::None);
    let keys =
        zverse_benches::random_keys::<KEY_LEN>(&mut fastrand::Rng::with_seed(SEED), key_count);
    let start = Instant::now();
    let mut versions = Vec::with_capacity(key_count + key_count / REWRITE_STRIDE + 1);
    for key in &keys {
        versions.push(db.put(key, &VALUE_FIRST).expect("put"));
    }
    for key in keys.iter().step_by(REWRITE_STRIDE) {
        versions.push(db.put(key, &VALUE_SECOND).expect("put"));
    }
    db.flush().expect("flush");
    assert!(versions.is_sorted(), "one writer's versions ascend");
    let stats = db.stats();
    assert_eq!(stats.memtable_versions, 0, "the flush left every write in a segment");
    eprintln!(
        "read dataset: {key_count} keys, {} writes (a second version of every \
         {REWRITE_STRIDE}th key), loaded and flushed in {:.1} s: {} segments, {} MiB",
        versions.len(),
        start.elapsed().as_secs_f64(),
        stats.segment_count,
        stats.segment_bytes >> 20,
    );
    let mut keys_sorted = keys.clone();
    keys_sorted.sort_unstable();
    ReadDataset { db, _dir: dir, keys, keys_sorted, versions }
}

fn read(c: &mut Criterion) {
    let scale = scale();
    let dataset = OnceCell::new();
    // Built by the first read benchmark that runs, so a filter that skips them all skips it.
    let dataset = || dataset.get_or_init(|| build_read_dataset(scale.key_count));
    // One stream for every read benchmark: criterion calls a closure once per sample, and a
    // generator made inside it would replay the same keys in every sample.
    let mut rng = fastrand::Rng::with_seed(SEED + 1);
    let mut group = c.benchmark_group("read");
    group.throughput(Throughput::Elements(LOOKUPS_PER_ITERATION as u64));
    group.bench_function("get_latest", |b| bench_get_latest(b, dataset(), &mut rng));
    let mut reported = false;
    group.bench_function("get_as_of", |b| {
        report_once(&mut reported, || report_get_as_of(dataset()));
        bench_get_as_of(b, dataset(), &mut rng);
    });
    group.throughput(Throughput::Elements(SHORT_SCANS_PER_ITERATION as u64));
    group.bench_function("scan_short", |b| bench_scan_short(b, dataset(), &mut rng));
    let key_span = scale.key_count / SLICE_PARTS;
    group.throughput(Throughput::Elements(key_span as u64));
    let mut reported = false;
    group.bench_function("range_1pct", |b| {
        report_once(&mut reported, || {
            eprintln!("range_1pct: {key_span} items per range (asserted in every iteration)");
        });
        bench_range(b, dataset(), key_span, &mut rng, Direction::Forward);
    });
    group.bench_function("range_1pct_rev", |b| {
        bench_range(b, dataset(), key_span, &mut rng, Direction::Backward);
    });
    let write_count = scale.key_count + scale.key_count.div_ceil(REWRITE_STRIDE);
    let write_span = write_count / SLICE_PARTS;
    group.throughput(Throughput::Elements(write_span as u64));
    group.sample_size(10);
    let mut reported = false;
    group.bench_function("changes_1pct_time", |b| {
        report_once(&mut reported, || {
            eprintln!(
                "changes_1pct_time: {write_span} items per window of {write_span} writes, all \
                 keys (asserted in every iteration)"
            );
        });
        bench_changes(b, dataset(), write_span, &mut rng);
    });
    group.finish();
    let mut group = c.benchmark_group("read_threads");
    for thread_count in READER_THREAD_COUNTS {
        group.throughput(Throughput::Elements((thread_count * LOOKUPS_PER_ITERATION) as u64));
        let id = BenchmarkId::new("get_latest", thread_count);
        group.bench_function(id, |b| bench_get_latest_threads(b, dataset(), thread_count));
    }
    group.finish();
}

/// `get_latest` from `thread_count` threads at once: each does `LOOKUPS_PER_ITERATION` per
/// iteration, with its own seeded generator; the time is until the last thread is done.
fn bench_get_latest_threads(b: &mut Bencher<'_>, data: &ReadDataset, thread_count: usize) {
    b.iter_custom(|iterations| {
        let lookups = iterations * LOOKUPS_PER_ITERATION as u64;
        let start = Instant::now();
        std::thread::scope(|scope| {
            for thread in 0..thread_count as u64 {
                scope.spawn(move || {
                    let mut rng = fastrand::Rng::with_seed(SEED + 2 + thread + iterations);
                    for _ in 0..lookups {
                        let key = &data.keys[rng.usize(..data.keys.len())];
                        black_box(data.db.get(key).expect("get").expect("a loaded key"));
                    }
                });
            }
        });
        start.elapsed()
    });
}

/// Runs `report` on the first call only: criterion calls a benchmark's closure once per sample.
fn report_once(reported: &mut bool, report: impl FnOnce()) {
    if !std::mem::replace(reported, true) {
        report();
    }
}

fn bench_get_latest(b: &mut Bencher<'_>, data: &ReadDataset, rng: &mut fastrand::Rng) {
    b.iter(|| {
        for _ in 0..LOOKUPS_PER_ITERATION {
            let key = &data.keys[rng.usize(..data.keys.len())];
            let value = data.db.get(key).expect("get").expect("every loaded key exists");
            black_box(value);
        }
    });
}

fn bench_get_as_of(b: &mut Bencher<'_>, data: &ReadDataset, rng: &mut fastrand::Rng) {
    b.iter(|| {
        for _ in 0..LOOKUPS_PER_ITERATION {
            let (key, version) = random_key_version(rng, data);
            black_box(data.db.get_at(key, version).expect("get_at"));
        }
    });
}

fn random_key_version<'a>(rng: &mut fastrand::Rng, data: &'a ReadDataset) -> (&'a Key, Version) {
    let key = &data.keys[rng.usize(..data.keys.len())];
    (key, data.versions[rng.usize(..data.versions.len())])
}

fn report_get_as_of(data: &ReadDataset) {
    let mut rng = fastrand::Rng::with_seed(SEED + 2);
    let lookup_count = 10_000;
    let hit_count = (0..lookup_count)
        .filter(|_| {
            let (key, version) = random_key_version(&mut rng, data);
            data.db.get_at(key, version).expect("get_at").is_some()
        })
        .count();
    eprintln!(
        "get_as_of: {hit_count} of {lookup_count} random (key, version) lookups find a value"
    );
}

/// Which end a range is read from.
#[derive(Clone, Copy)]
enum Direction {
    Forward,
    Backward,
}

fn bench_range(
    b: &mut Bencher<'_>,
    data: &ReadDataset,
    key_span: usize,
    rng: &mut fastrand::Rng,
    direction: Direction,
) {
    let sorted = &data.keys_sorted;
    b.iter(|| {
        // `first + key_span` stays a valid index: the range ends before that key.
        let first = rng.usize(..sorted.len() - key_span);
        let keys = sorted[first].as_slice()..sorted[first + key_span].as_slice();
        let range = data.db.range(keys).expect("range");
        let item_count = match direction {
            Direction::Forward => count_items(range),
            Direction::Backward => count_items(range.rev()),
        };
        assert_eq!(item_count, key_span, "a range of {key_span} consecutive keys");
    });
}

fn bench_scan_short(b: &mut Bencher<'_>, data: &ReadDataset, rng: &mut fastrand::Rng) {
    b.iter(|| {
        for _ in 0..SHORT_SCANS_PER_ITERATION {
            let start = data.keys[rng.usize(..data.keys.len())].as_slice();
            let limit = rng.usize(1..=SHORT_SCAN_ITEMS_MAX);
            let range = data.db.range(start..).expect("range");
            black_box(count_items(range.take(limit)));
        }
    });
}

fn bench_changes(
    b: &mut Bencher<'_>,
    data: &ReadDataset,
    write_span: usize,
    rng: &mut fastrand::Rng,
) {
    let versions = &data.versions;
    assert!(versions.len() > write_span, "the window fits in the writes");
    b.iter(|| {
        let first = rng.usize(..=versions.len() - write_span);
        let window = versions[first]..=versions[first + write_span - 1];
        let item_count = count_items(data.db.changes(.., window).expect("changes"));
        assert_eq!(item_count, write_span, "one change per write in the window");
    });
}

/// Consumes a scan, checking every item, and counts the items.
fn count_items<T>(items: impl Iterator<Item = zverse::Result<T>>) -> usize {
    items.fold(0, |count, item| {
        black_box(item.expect("scan item"));
        count + 1
    })
}

criterion_group!(benches, fill_random, fill_batches, read);
criterion_main!(benches);
