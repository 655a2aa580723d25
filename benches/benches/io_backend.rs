//! The I/O backends side by side, io_uring (`UringIo`) and std (`pwrite`, `fdatasync`), in one
//! run so the two see the same disk weather:
//!
//! - `sync_fill/{io_uring,std}/{1,4,8}thread(s)/{N}_writes`: `Durability::Sync` fills of N
//!   random 16-byte keys with 100-byte values into a fresh database from 1, 4 and 8 writer
//!   threads; one iteration = the whole fill (setup and close outside the timing). io_uring
//!   commits a group as a write linked to an fdatasync.
//! - `sync_fill_pairs/{1thread,4threads,8threads}/{N}_writes`: the same fills in pairs, one on each backend
//!   back to back (alternating which goes first), so that both see the same disk weather;
//!   criterion times the pair, and the bench prints the median io_uring / std time ratio.
//! - `segment_write/{io_uring,std}/{N}MiB`: one segment-sized buffer written to a new file and
//!   synced (`write_all_at_and_sync`, as a flush or compaction writes a segment); io_uring
//!   submits it in one `io_uring_enter` as 7 chunks in flight (1 MiB or more each) and an
//!   fdatasync that drains them. Throughput in MB/s.
//! - `small_write/{io_uring,std}/150B`: one unsynced 150-byte write to the page cache (the
//!   size of a small commit group), which shows what a submission costs apart from the sync.
//!
//! Where the kernel refuses io_uring, only the std cases run (and that is said on stderr).
//!
//! Run: `cargo bench -p zverse-benches --bench io_backend -- --warm-up-time 1
//! --measurement-time 5`
#![allow(missing_docs, reason = "criterion's macros generate undocumented items")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use zverse::io::Io;
use zverse::{Db, Durability, Options};
use zverse_linux::Backend;

const KEY_LEN: usize = 16;
const VALUE: [u8; 100] = [0x5A; 100];
/// Synced writes per iteration (an fdatasync costs 0.15 to 3.5 ms on the shared VM).
const SYNC_WRITE_COUNT: usize = 1_000;
/// The count in criterion's test mode (`cargo test --benches`), which runs in debug.
const SYNC_WRITE_COUNT_TEST: usize = 100;
const THREAD_COUNTS: [usize; 3] = [1, 4, 8];
/// Segment sizes written by `segment_write`: a small flush and the default memtable (64 MiB).
const SEGMENT_MIB: [usize; 2] = [4, 64];
/// The size in test mode: three 1 MiB chunks and a partial one on io_uring.
const SEGMENT_BYTES_TEST: usize = (3 << 20) + 4_321;
/// The size of a small commit group, for `small_write`.
const SMALL_WRITE_BYTES: usize = 150;
const SEED: u64 = 0x5EED;

fn keys(count: usize) -> Vec<[u8; KEY_LEN]> {
    let mut rng = fastrand::Rng::with_seed(SEED);
    (0..count)
        .map(|_| {
            let mut key = [0u8; KEY_LEN];
            rng.fill(&mut key);
            key
        })
        .collect()
}

fn backends() -> Vec<(&'static str, Arc<dyn Io>)> {
    let mut backends = Vec::new();
    match zverse_linux::select_io(Backend::Uring) {
        Ok(io) => backends.push(("io_uring", io)),
        Err(error) => eprintln!("io_uring cases skipped: {error}"),
    }
    backends.push(("std", zverse_linux::select_io(Backend::Portable).expect("std always opens")));
    backends
}

fn sync_fill(c: &mut Criterion) {
    let test_mode = zverse_benches::is_test_mode();
    let write_count = if test_mode { SYNC_WRITE_COUNT_TEST } else { SYNC_WRITE_COUNT };
    let keys = keys(write_count);
    let mut group = c.benchmark_group("sync_fill");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(write_count as u64));
    let backends = backends();
    for thread_count in THREAD_COUNTS {
        for (name, io) in &backends {
            let name = *name;
            let threads = if thread_count == 1 { "thread" } else { "threads" };
            let id = BenchmarkId::new(
                format!("{name}/{thread_count}{threads}"),
                format!("{write_count}_writes"),
            );
            group.bench_function(id, |b| {
                b.iter_custom(|iterations| {
                    (0..iterations).map(|_| fill_once(name, io, &keys, thread_count)).sum()
                });
            });
        }
    }
    group.finish();
}

/// One Sync fill of `keys` into a fresh database on `io`, from `thread_count` writers; the
/// time of the fill alone.
fn fill_once(name: &str, io: &Arc<dyn Io>, keys: &[[u8; KEY_LEN]], threads: usize) -> Duration {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let options = Options::default().durability(Durability::Sync);
    let db = Db::open_with_io(dir.path(), options, Arc::clone(io)).expect("open a fresh db");
    assert_eq!(db.stats().io_backend, name);
    zverse_benches::timed_fill(&db, keys, &VALUE, threads)
}

/// Pairs of Sync fills, one on each backend, back to back in alternating order: a pair sees
/// one disk weather, so the ratio of its two times is steadier than the ratio of two medians
/// taken half a minute apart. Criterion times the pair; the median ratio is printed.
fn sync_fill_pairs(c: &mut Criterion) {
    let test_mode = zverse_benches::is_test_mode();
    let write_count = if test_mode { SYNC_WRITE_COUNT_TEST } else { SYNC_WRITE_COUNT };
    let keys = keys(write_count);
    let Ok(uring) = zverse_linux::select_io(Backend::Uring) else {
        eprintln!("sync_fill_pairs skipped: io_uring is unavailable");
        return;
    };
    let std_io = zverse_linux::select_io(Backend::Portable).expect("std always opens");
    let mut group = c.benchmark_group("sync_fill_pairs");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    for thread_count in THREAD_COUNTS {
        let mut pairs: Vec<(Duration, Duration)> = Vec::new();
        let threads = if thread_count == 1 { "thread" } else { "threads" };
        let id =
            BenchmarkId::new(format!("{thread_count}{threads}"), format!("{write_count}_writes"));
        group.bench_function(id, |b| {
            b.iter_custom(|iterations| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iterations {
                    let uring_first = pairs.len().is_multiple_of(2);
                    let fill = |name, io| fill_once(name, io, &keys, thread_count);
                    let (on_uring, on_std) = if uring_first {
                        let on_uring = fill("io_uring", &uring);
                        (on_uring, fill("std", &std_io))
                    } else {
                        let on_std = fill("std", &std_io);
                        (fill("io_uring", &uring), on_std)
                    };
                    pairs.push((on_uring, on_std));
                    elapsed += on_uring + on_std;
                }
                elapsed
            });
        });
        print_pairs(thread_count, &pairs);
    }
    group.finish();
}

/// Prints the median io_uring / std time ratio of `pairs`, and each backend's median time.
fn print_pairs(thread_count: usize, pairs: &[(Duration, Duration)]) {
    if pairs.is_empty() {
        return;
    }
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let ratio = median(pairs.iter().map(|(u, s)| u.as_secs_f64() / s.as_secs_f64()).collect());
    let uring_ms = median(pairs.iter().map(|(u, _)| u.as_secs_f64() * 1e3).collect());
    let std_ms = median(pairs.iter().map(|(_, s)| s.as_secs_f64() * 1e3).collect());
    println!(
        "sync_fill_pairs/{thread_count} writers: io_uring / std time = {ratio:.2} (median of {} \
         pairs; medians io_uring {uring_ms:.1} ms, std {std_ms:.1} ms)",
        pairs.len()
    );
}

fn segment_write(c: &mut Criterion) {
    let sizes: Vec<(String, usize)> = if zverse_benches::is_test_mode() {
        vec![("3MiB_test".to_owned(), SEGMENT_BYTES_TEST)]
    } else {
        SEGMENT_MIB.iter().map(|&mib| (format!("{mib}MiB"), mib << 20)).collect()
    };
    let mut group = c.benchmark_group("segment_write");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    let dir = tempfile::tempdir().expect("create a temporary directory");
    for (size_name, bytes) in sizes {
        let segment: Vec<u8> = (0..bytes).map(|i| (i % 251) as u8).collect();
        group.throughput(Throughput::BytesDecimal(bytes as u64));
        for (name, io) in backends() {
            let path = dir.path().join(format!("{name}.seg"));
            group.bench_function(BenchmarkId::new(name, &size_name), |b| {
                b.iter_custom(|iterations| {
                    let mut elapsed = Duration::ZERO;
                    for _ in 0..iterations {
                        let _ = io.remove_file(&path);
                        let file = io.create_new(&path).expect("create the segment file");
                        let start = Instant::now();
                        file.write_all_at_and_sync(&[&segment], 0).expect("write and sync");
                        elapsed += start.elapsed();
                    }
                    elapsed
                });
            });
        }
    }
    group.finish();
}

fn small_write(c: &mut Criterion) {
    let mut group = c.benchmark_group("small_write");
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let bytes = [0xA5; SMALL_WRITE_BYTES];
    for (name, io) in backends() {
        let file = io.create_new(&dir.path().join(name)).expect("create a file");
        group.bench_function(BenchmarkId::new(name, format!("{SMALL_WRITE_BYTES}B")), |b| {
            b.iter(|| file.write_all_at(&bytes, 0).expect("write"));
        });
    }
    group.finish();
}

criterion_group!(benches, sync_fill, sync_fill_pairs, segment_write, small_write);
criterion_main!(benches);
