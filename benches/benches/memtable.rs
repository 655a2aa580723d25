//! The memtable: the engine's arena skiplist against crossbeam-skiplist laid out as the engine
//! used it before (what fjall's lsm-tree uses too) and against a B+-tree, scc's `TreeIndex`
//! (lock-free reads, up to 14 entries per leaf): insert rate with random and sequential keys,
//! point reads, ordered scans, and memory per entry (printed before the groups run, counted by
//! a global allocator that tallies live bytes). Times are the benchmarking thread's CPU time
//! (`thread_time`), so that a loaded machine's time slicing does not count.
//!
//! `cargo bench -p zverse-benches --bench memtable`

use std::alloc::{GlobalAlloc, Layout, System};
use std::borrow::Borrow;
use std::cmp::{Ordering, Reverse};
use std::hint::black_box;
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use crossbeam_skiplist::SkipMap;
use scc::{Guard, TreeIndex};
use zverse::Version;
use zverse::bench_hooks::{BenchMemtable, BenchOp};
use zverse_benches::{is_test_mode, random_keys};

/// Counts live heap bytes, for memory per entry.
struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: defers to `System`, adding only a counter.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), AtomicOrdering::Relaxed);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), AtomicOrdering::Relaxed);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const KEY_LEN: usize = 16;
const VALUE_LEN: usize = 100;
const SEED: u64 = 13;
const SCAN_LEN: usize = 100;

fn entry_count() -> usize {
    if is_test_mode() { 1_000 } else { 200_000 }
}

/// The engine's memtable before the arena: crossbeam-skiplist keyed by (key, reverse
/// version), keys and values in their own `Arc`s, lookups without allocating.
#[derive(Default)]
struct Crossbeam {
    map: SkipMap<MemKey, Option<Arc<[u8]>>>,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct MemKey {
    key: Arc<[u8]>,
    version: Reverse<Version>,
}

trait KeyVersion {
    fn key(&self) -> &[u8];
    fn version(&self) -> Reverse<Version>;
}

impl KeyVersion for MemKey {
    fn key(&self) -> &[u8] {
        &self.key
    }
    fn version(&self) -> Reverse<Version> {
        self.version
    }
}

impl KeyVersion for (&[u8], Reverse<Version>) {
    fn key(&self) -> &[u8] {
        self.0
    }
    fn version(&self) -> Reverse<Version> {
        self.1
    }
}

impl<'a> Borrow<dyn KeyVersion + 'a> for MemKey {
    fn borrow(&self) -> &(dyn KeyVersion + 'a) {
        self
    }
}

impl PartialEq for dyn KeyVersion + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for dyn KeyVersion + '_ {}

impl PartialOrd for dyn KeyVersion + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for dyn KeyVersion + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(other.key()).then_with(|| self.version().cmp(&other.version()))
    }
}

/// What both memtables do, as the benches use it.
trait Table: Default {
    fn insert(&self, key: &[u8], version: Version, value: &[u8]);
    fn get_at(&self, key: &[u8], version: Version) -> Option<usize>;
    fn scan(&self, key: &[u8], count: usize) -> usize;
}

impl Table for Crossbeam {
    fn insert(&self, key: &[u8], version: Version, value: &[u8]) {
        let key = MemKey { key: Arc::from(key), version: Reverse(version) };
        self.map.insert(key, Some(Arc::from(value)));
    }

    fn get_at(&self, key: &[u8], version: Version) -> Option<usize> {
        let start: &dyn KeyVersion = &(key, Reverse(version));
        let found = self.map.lower_bound(Bound::Included(start))?;
        (found.key().key.as_ref() == key).then(|| found.value().as_ref().map_or(0, |v| v.len()))
    }

    fn scan(&self, key: &[u8], count: usize) -> usize {
        let start: &dyn KeyVersion = &(key, Reverse(Version::MAX));
        let range = self.map.range::<dyn KeyVersion, _>((Bound::Included(start), Bound::Unbounded));
        range.take(count).map(|entry| entry.key().key.len()).sum()
    }
}

impl Table for BenchMemtable {
    fn insert(&self, key: &[u8], version: Version, value: &[u8]) {
        BenchMemtable::insert(self, key, version, Some(value));
    }

    fn get_at(&self, key: &[u8], version: Version) -> Option<usize> {
        BenchMemtable::get_at(self, key, version)
    }

    fn scan(&self, key: &[u8], count: usize) -> usize {
        BenchMemtable::scan(self, key, count)
    }
}

/// The B+-tree candidate: scc's `TreeIndex` keyed by the key inline and the reverse version
/// (24 bytes, what an arena B+-tree's entry of key prefix, key pointer and version would
/// take), the value copied into an arena of chunks and the tree holding its address and length.
#[derive(Default)]
struct Scc {
    tree: TreeIndex<SccKey, ValueRef>,
    values: Mutex<ValueArena>,
}

type SccKey = ([u8; KEY_LEN], Reverse<Version>);

/// Where a value's bytes are in the [`ValueArena`].
#[derive(Clone, Copy)]
struct ValueRef {
    address: usize,
    len: u32,
}

/// Values, copied into chunks that never move.
#[derive(Default)]
struct ValueArena {
    chunks: Vec<Box<[u8]>>,
    used: usize,
}

const VALUE_CHUNK_BYTES: usize = 1 << 20;

impl ValueArena {
    fn push(&mut self, value: &[u8]) -> ValueRef {
        let full = self.chunks.last().is_none_or(|c| c.len() - self.used < value.len());
        if full {
            self.chunks.push(vec![0; VALUE_CHUNK_BYTES.max(value.len())].into_boxed_slice());
            self.used = 0;
        }
        let chunk = self.chunks.last_mut().expect("a chunk with room");
        let place = &mut chunk[self.used..self.used + value.len()];
        place.copy_from_slice(value);
        self.used += value.len();
        let len = u32::try_from(value.len()).expect("a bench value fits u32");
        ValueRef { address: place.as_ptr() as usize, len }
    }
}

fn scc_key(key: &[u8], version: Version) -> SccKey {
    (key.try_into().expect("bench keys are KEY_LEN bytes"), Reverse(version))
}

impl Table for Scc {
    fn insert(&self, key: &[u8], version: Version, value: &[u8]) {
        let value = self.values.lock().unwrap_or_else(PoisonError::into_inner).push(value);
        let inserted = self.tree.insert_sync(scc_key(key, version), value);
        assert!(inserted.is_ok(), "bench keys and versions are unique");
    }

    fn get_at(&self, key: &[u8], version: Version) -> Option<usize> {
        let guard = Guard::new();
        let start = scc_key(key, version);
        let (found, value) = self.tree.range(start.., &guard).next()?;
        (found.0 == key).then_some(value.len as usize).filter(|_| value.address != 0)
    }

    fn scan(&self, key: &[u8], count: usize) -> usize {
        let guard = Guard::new();
        let start = scc_key(key, Version::MAX);
        self.tree.range(start.., &guard).take(count).map(|(found, _)| found.0.len()).sum()
    }
}

fn sequential_keys(count: usize) -> Vec<[u8; KEY_LEN]> {
    (0..count as u128).map(u128::to_be_bytes).collect()
}

fn filled<T: Table>(keys: &[[u8; KEY_LEN]]) -> T {
    let table = T::default();
    for (version, key) in (1..).zip(keys) {
        table.insert(key, Version::new(version), &[7; VALUE_LEN]);
    }
    table
}

/// Inserts `keys` into a fresh table `iters` times; the time of the inserts alone.
fn time_fills<T: Table>(keys: &[[u8; KEY_LEN]], iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let table = T::default();
        total += thread_time(|| {
            for (version, key) in (1..).zip(keys) {
                table.insert(key, Version::new(version), &[7; VALUE_LEN]);
            }
        });
        drop(black_box(table));
    }
    total
}

/// Writes per batch in the `memtable_batches` rows.
const BATCH_LEN: usize = 1_000;

/// Inserts `keys` into a fresh arena memtable `iters` times, in batches of [`BATCH_LEN`]: each
/// batch sorted and inserted with `insert_sorted` (`lanes`), or one by one in its order.
fn time_batch_fills(keys: &[[u8; KEY_LEN]], iters: u64, lanes: bool) -> Duration {
    let mut total = Duration::ZERO;
    let value = [7; VALUE_LEN];
    for _ in 0..iters {
        let table = BenchMemtable::default();
        let mut ops: Vec<BenchOp<'_>> = Vec::with_capacity(BATCH_LEN);
        total += thread_time(|| {
            for (batch, chunk) in (1..).zip(keys.chunks(BATCH_LEN)) {
                let version = Version::new(batch);
                if lanes {
                    ops.clear();
                    ops.extend(chunk.iter().map(|key| (&key[..], version, Some(&value[..]))));
                    ops.sort_by(|a, b| a.0.cmp(b.0));
                    table.insert_sorted(&ops);
                } else {
                    for key in chunk {
                        table.insert(key, version, Some(&value));
                    }
                }
            }
        });
        drop(black_box(table));
    }
    total
}

/// Live heap bytes per entry of a table filled with `keys`, payload included.
#[expect(clippy::cast_precision_loss, reason = "a figure to print; heap sizes fit 52 bits")]
fn bytes_per_entry<T: Table>(keys: &[[u8; KEY_LEN]]) -> f64 {
    let before = LIVE_BYTES.load(AtomicOrdering::Relaxed);
    let table = filled::<T>(keys);
    let after = LIVE_BYTES.load(AtomicOrdering::Relaxed);
    drop(table);
    (after - before) as f64 / keys.len() as f64
}

fn memtable(c: &mut Criterion) {
    let count = entry_count();
    let random = random_keys::<KEY_LEN>(&mut fastrand::Rng::with_seed(SEED), count);
    let sequential = sequential_keys(count);
    println!(
        "memory per entry ({KEY_LEN}-byte keys, {VALUE_LEN}-byte values, {count} entries): \
         crossbeam {:.1} B, arena {:.1} B, scc {:.1} B",
        bytes_per_entry::<Crossbeam>(&random),
        bytes_per_entry::<BenchMemtable>(&random),
        bytes_per_entry::<Scc>(&random),
    );
    let mut group = c.benchmark_group("memtable");
    group.sample_size(10);
    group.throughput(Throughput::Elements(count as u64));
    for (order, keys) in [("random", &random), ("sequential", &sequential)] {
        group.bench_function(BenchmarkId::new("insert_crossbeam", order), |b| {
            b.iter_custom(|iters| time_fills::<Crossbeam>(keys, iters));
        });
        group.bench_function(BenchmarkId::new("insert_arena", order), |b| {
            b.iter_custom(|iters| time_fills::<BenchMemtable>(keys, iters));
        });
        group.bench_function(BenchmarkId::new("insert_scc", order), |b| {
            b.iter_custom(|iters| time_fills::<Scc>(keys, iters));
        });
    }
    for (order, keys) in [("random", &random), ("sequential", &sequential)] {
        group.bench_function(BenchmarkId::new("batches_arena_one_by_one", order), |b| {
            b.iter_custom(|iters| time_batch_fills(keys, iters, false));
        });
        group.bench_function(BenchmarkId::new("batches_arena_sorted_lanes", order), |b| {
            b.iter_custom(|iters| time_batch_fills(keys, iters, true));
        });
    }
    group.sample_size(50);
    group.throughput(Throughput::Elements(1));
    let crossbeam = filled::<Crossbeam>(&random);
    let arena = filled::<BenchMemtable>(&random);
    let scc = filled::<Scc>(&random);
    bench_reads(&mut group, "get_crossbeam", &random, |k| crossbeam.get_at(k, Version::MAX));
    bench_reads(&mut group, "get_arena", &random, |k| arena.get_at(k, Version::MAX));
    bench_reads(&mut group, "get_scc", &random, |k| scc.get_at(k, Version::MAX));
    group.throughput(Throughput::Elements(SCAN_LEN as u64));
    bench_reads(&mut group, "scan_crossbeam", &random, |k| crossbeam.scan(k, SCAN_LEN));
    bench_reads(&mut group, "scan_arena", &random, |k| arena.scan(k, SCAN_LEN));
    bench_reads(&mut group, "scan_scc", &random, |k| scc.scan(k, SCAN_LEN));
    group.finish();
}

/// The time `work` takes on the calling thread's CPU clock (`CLOCK_THREAD_CPUTIME_ID`) on
/// Linux, so that a loaded machine's time slicing does not count; wall time elsewhere.
fn thread_time(work: impl FnOnce()) -> Duration {
    #[cfg(target_os = "linux")]
    {
        use rustix::time::{ClockId, clock_gettime};
        let start = clock_gettime(ClockId::ThreadCPUTime);
        work();
        let end = clock_gettime(ClockId::ThreadCPUTime);
        let nanos = |t: rustix::time::Timespec| {
            Duration::new(
                u64::try_from(t.tv_sec).unwrap_or(0),
                u32::try_from(t.tv_nsec).unwrap_or(0),
            )
        };
        nanos(end).saturating_sub(nanos(start))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let start = std::time::Instant::now();
        work();
        start.elapsed()
    }
}

/// A row of `read`s of `keys` (a fixed stride through them), timed by [`thread_time`].
fn bench_reads<R>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    keys: &[[u8; KEY_LEN]],
    read: impl Fn(&[u8]) -> R,
) {
    let mut probe = 0;
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            thread_time(|| {
                for _ in 0..iters {
                    probe = (probe + 7919) % keys.len();
                    black_box(read(&keys[probe]));
                }
            })
        });
    });
}

criterion_group!(benches, memtable);
criterion_main!(benches);
