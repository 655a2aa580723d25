//! The I/O backends side by side, io_uring (`UringIo`) and std (`pwrite`, `fdatasync`), in one
//! run so the two see the same disk weather:
//!
//! - `sync_fill/{io_uring,std}/{1,4,8}thread(s)/{N}_writes`: `Durability::Sync` fills of N
//!   random 16-byte keys with 100-byte values into a fresh database from 1, 4 and 8 writer
//!   threads; one iteration = the whole fill (setup and close outside the timing). io_uring
//!   commits a group as a write linked to an fdatasync.
//! - `sync_fill_pairs/{1thread,4threads,8threads}/{N}_writes`: the same fills in pairs, one on each
//!   backend back to back (alternating which goes first), so that both see the same disk weather;
//!   criterion times the pair, and the bench prints the median io_uring / std time ratio.
//! - `segment_write/{io_uring,std}/{N}MiB`: one segment-sized buffer written to a new file and
//!   synced (`write_all_at_and_sync`, as a flush or compaction writes a segment); io_uring
//!   submits it in one `io_uring_enter` as 7 chunks in flight (1 MiB or more each) and an
//!   fdatasync that drains them. Throughput in MB/s.
//! - `small_write/{io_uring,std}/150B`: one unsynced 150-byte write to the page cache (the
//!   size of a small commit group), which shows what a submission costs apart from the sync.
//!   (io_uring routed as a database's open routes it; the ring's own figure is `route_probe`'s.)
//! - `ring_options/...`: the ring setups and registrations `UringIo` weighed, A/B (see the
//!   module at the end).
//! - `group_commit/{1,4,8,16,64}writers`: `Durability::Sync` puts from that many threads on
//!   std; prints the writes per fdatasync (`commit_records / commit_groups` from `stats()`), the
//!   figure group commit is judged by (it should be close to the writer count).
//! - `fdatasync_limit/{overwrite,append}`: the two physical limits of a synced commit on this
//!   disk, by plain system calls: `fdatasync` after a 100-byte `pwrite` into an already
//!   written (and synced) region of a file, and after a 100-byte append that grows the file.
//! - `sync_preallocation/{filled_ahead,appending}`: a 1-writer Sync fill on std with the log
//!   zero-filled ahead (the default) and without (`log_preallocation_bytes(0)`): the engine's
//!   synced commits against the two limits above, in the same run.
//! - `sync_method/...` and `sync_method_interleaved`: a Sync commit into written bytes five
//!   ways: `pwrite` + `fdatasync`, `pwritev2(RWF_DSYNC)`, `O_DSYNC`, `O_DIRECT` + `fdatasync`
//!   and `O_DIRECT | O_DSYNC` (see the module at the end).
//! - `route_probe`: prints what `UringIo`'s probe measures on this file system (each class of
//!   operation both ways, `fdatasync` included) and the routes it picks.
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
    zverse_benches::random_keys(&mut fastrand::Rng::with_seed(SEED), count)
}

/// The backends, io_uring routed as a database in a temporary directory would route it (the
/// probe a database's open runs; the rows on files measure the backend as the engine uses it).
fn backends() -> Vec<(&'static str, Arc<dyn Io>)> {
    let mut backends = Vec::new();
    match zverse_linux::select_io(Backend::Uring) {
        Ok(io) => {
            let dir = tempfile::tempdir().expect("create a temporary directory");
            if let Err(error) = io.probe_dir(dir.path()) {
                eprintln!("io_uring's route probe failed ({error}): its default routes run");
            }
            println!("io_uring routes: {}", io.routing());
            backends.push(("io_uring", io));
        }
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

/// Writer thread counts of `group_commit`.
const WRITER_COUNTS: [usize; 5] = [1, 4, 8, 16, 64];
/// Synced puts per writer in one `group_commit` iteration (test mode: 5).
const PUTS_PER_WRITER: usize = 50;

fn group_commit(c: &mut Criterion) {
    let puts_per_writer = if zverse_benches::is_test_mode() { 5 } else { PUTS_PER_WRITER };
    let mut group = c.benchmark_group("group_commit");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    let std_io = zverse_linux::select_io(Backend::Portable).expect("std always opens");
    for writer_count in WRITER_COUNTS {
        let keys = keys(writer_count * puts_per_writer);
        group.throughput(Throughput::Elements(keys.len() as u64));
        let mut per_sync = Vec::new();
        group.bench_function(BenchmarkId::from_parameter(format!("{writer_count}writers")), |b| {
            b.iter_custom(|iterations| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iterations {
                    let dir = tempfile::tempdir().expect("create a temporary directory");
                    let options = Options::default().durability(Durability::Sync);
                    let db = Db::open_with_io(dir.path(), options, Arc::clone(&std_io))
                        .expect("open a fresh db");
                    elapsed += zverse_benches::timed_fill(&db, &keys, &VALUE, writer_count);
                    let stats = db.stats();
                    #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
                    per_sync.push(stats.commit_records as f64 / stats.commit_groups as f64);
                }
                elapsed
            });
        });
        per_sync.sort_by(f64::total_cmp);
        if let Some(median) = per_sync.get(per_sync.len() / 2) {
            println!(
                "group_commit/{writer_count} writers: {median:.1} writes per fdatasync (median \
                 of {} fills, min {:.1}, max {:.1})",
                per_sync.len(),
                per_sync[0],
                per_sync[per_sync.len() - 1]
            );
        }
    }
    group.finish();
}

/// Bytes of the file `fdatasync_limit/overwrite` writes into (written and synced first).
const LIMIT_REGION_BYTES: u64 = 1 << 20;

fn fdatasync_limit(c: &mut Criterion) {
    use std::os::unix::fs::FileExt;
    let mut group = c.benchmark_group("fdatasync_limit");
    group.sample_size(20);
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let record = [0xC3; 100];
    let overwrite = std::fs::File::create_new(dir.path().join("overwrite")).expect("create");
    overwrite.write_all_at(&vec![0; LIMIT_REGION_BYTES as usize], 0).expect("prewrite");
    overwrite.sync_all().expect("sync");
    let mut offset = 0;
    group.bench_function("overwrite", |b| {
        b.iter(|| {
            overwrite.write_all_at(&record, offset).expect("write");
            overwrite.sync_data().expect("fdatasync");
            offset = (offset + 4096) % LIMIT_REGION_BYTES;
        });
    });
    let append = std::fs::File::create_new(dir.path().join("append")).expect("create");
    let mut end = 0;
    group.bench_function("append", |b| {
        b.iter(|| {
            append.write_all_at(&record, end).expect("write");
            append.sync_data().expect("fdatasync");
            end += record.len() as u64;
        });
    });
    group.finish();
}

fn sync_preallocation(c: &mut Criterion) {
    let test_mode = zverse_benches::is_test_mode();
    let write_count = if test_mode { SYNC_WRITE_COUNT_TEST } else { SYNC_WRITE_COUNT };
    let keys = keys(write_count);
    let mut group = c.benchmark_group("sync_preallocation");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(write_count as u64));
    let std_io = zverse_linux::select_io(Backend::Portable).expect("std always opens");
    for (name, preallocation_bytes) in [("filled_ahead", 1 << 20), ("appending", 0)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iterations {
                    let dir = tempfile::tempdir().expect("create a temporary directory");
                    let options = Options::default()
                        .durability(Durability::Sync)
                        .log_preallocation_bytes(preallocation_bytes);
                    let db = Db::open_with_io(dir.path(), options, Arc::clone(&std_io))
                        .expect("open a fresh db");
                    elapsed += zverse_benches::timed_fill(&db, &keys, &VALUE, 1);
                }
                elapsed
            });
        });
    }
    group.finish();
}

#[cfg(target_os = "linux")]
fn route_probe(_: &mut Criterion) {
    let Ok(io) = zverse_linux::UringIo::new() else {
        eprintln!("route_probe skipped: io_uring is unavailable");
        return;
    };
    let dir = tempfile::tempdir().expect("create a temporary directory");
    for _ in 0..3 {
        match io.measure(dir.path(), true) {
            Ok(probe) => println!("route_probe: {probe:?} -> {:?}", probe.routes()),
            Err(error) => eprintln!("route_probe failed: {error}"),
        }
    }
}

#[cfg(target_os = "linux")]
criterion_group!(
    benches,
    route_probe,
    fdatasync_limit,
    sync_method::sync_method,
    sync_method::sync_method_interleaved,
    sync_preallocation,
    group_commit,
    sync_fill,
    sync_fill_pairs,
    segment_write,
    small_write,
    ring_options::ring_options
);
#[cfg(not(target_os = "linux"))]
criterion_group!(
    benches,
    fdatasync_limit,
    sync_preallocation,
    group_commit,
    sync_fill,
    sync_fill_pairs,
    segment_write,
    small_write
);
criterion_main!(benches);

/// The options `UringIo` weighed and left out, A/B against a plain ring, on the io-uring crate
/// directly: unsynced writes into the page cache (syncs would drown the difference in disk
/// noise), submitted and waited for as `UringIo` does.
///
/// - `ring_options/write_150B/{plain, registered_file, coop_taskrun, single_issuer_defer}`:
///   one 150-byte write (a small commit group).
/// - `ring_options/write_4MiB/{plain, registered_file, registered_buffer,
///   registered_buffer_per_write}`: a 4 MiB segment as four 1 MiB writes in flight; the last
///   registers the buffer for each write (a flush has a new buffer each time).
#[cfg(target_os = "linux")]
mod ring_options {
    use std::fs::File;
    use std::os::fd::AsRawFd;

    use criterion::{BenchmarkId, Criterion, Throughput};
    use io_uring::{IoUring, opcode, squeue, types};

    const SMALL_BYTES: usize = 150;
    const CHUNK_BYTES: usize = 1 << 20;
    const CHUNK_COUNT: usize = 4;

    /// How one case builds its ring and its write entries.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Setup {
        Plain,
        RegisteredFile,
        RegisteredBuffer,
        RegisteredBufferPerWrite,
        CoopTaskrun,
        SingleIssuerDefer,
    }

    impl Setup {
        fn name(self) -> &'static str {
            match self {
                Setup::Plain => "plain",
                Setup::RegisteredFile => "registered_file",
                Setup::RegisteredBuffer => "registered_buffer",
                Setup::RegisteredBufferPerWrite => "registered_buffer_per_write",
                Setup::CoopTaskrun => "coop_taskrun",
                Setup::SingleIssuerDefer => "single_issuer_defer",
            }
        }

        fn ring(self, file: &File) -> IoUring {
            let mut builder = IoUring::builder();
            match self {
                Setup::CoopTaskrun => {
                    builder.setup_coop_taskrun();
                }
                Setup::SingleIssuerDefer => {
                    builder.setup_single_issuer().setup_defer_taskrun();
                }
                _ => {}
            }
            let ring = builder.build(8).expect("create a ring");
            if self == Setup::RegisteredFile {
                ring.submitter().register_files(&[file.as_raw_fd()]).expect("register the file");
            }
            ring
        }

        /// A write of `bytes` at `offset`, through the registered file or buffer (index 0,
        /// which starts at `base`) where this setup has one.
        fn write(self, file: &File, base: *const u8, bytes: &[u8], offset: u64) -> squeue::Entry {
            let len = u32::try_from(bytes.len()).expect("a chunk fits a u32");
            match self {
                Setup::RegisteredFile => {
                    opcode::Write::new(types::Fixed(0), bytes.as_ptr(), len).offset(offset).build()
                }
                Setup::RegisteredBuffer | Setup::RegisteredBufferPerWrite => {
                    assert!(bytes.as_ptr() >= base, "the chunk lies in the registered buffer");
                    let fd = types::Fd(file.as_raw_fd());
                    opcode::WriteFixed::new(fd, bytes.as_ptr(), len, 0).offset(offset).build()
                }
                _ => opcode::Write::new(types::Fd(file.as_raw_fd()), bytes.as_ptr(), len)
                    .offset(offset)
                    .build(),
            }
        }
    }

    /// Registers `buffer` as buffer 0 of `ring`.
    ///
    /// # Safety
    ///
    /// `buffer` must stay alive and unmoved until the registration is dropped (with
    /// `unregister_buffers` or the ring).
    unsafe fn register(ring: &IoUring, buffer: &[u8]) {
        let iovec =
            libc::iovec { iov_base: buffer.as_ptr().cast_mut().cast(), iov_len: buffer.len() };
        // SAFETY: forwarded from this function's contract.
        unsafe { ring.submitter().register_buffers(&[iovec]) }.expect("register the buffer");
    }

    /// Submits one write per chunk of `buffer` (all in flight) and waits for every completion.
    fn write_chunks(ring: &mut IoUring, setup: Setup, file: &File, buffer: &[u8], chunk: usize) {
        let chunk_count = buffer.len().div_ceil(chunk);
        for (index, bytes) in buffer.chunks(chunk).enumerate() {
            let entry = setup.write(file, buffer.as_ptr(), bytes, (index * chunk) as u64);
            // SAFETY: the entry names `bytes`, part of `buffer`, which the caller borrows for
            // this whole call; this call returns only after reaping every completion below.
            let pushed = unsafe { ring.submission().push(&entry) };
            pushed.expect("the ring holds the chunks");
        }
        ring.submit_and_wait(chunk_count).expect("submit and wait");
        let mut reaped = 0;
        for completion in ring.completion() {
            let written = usize::try_from(completion.result()).expect("a write succeeded");
            assert!(written > 0, "a write made progress");
            reaped += 1;
        }
        assert_eq!(reaped, chunk_count, "every completion reaped before the buffer is free");
    }

    fn case(
        c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
        setup: Setup,
        size: &str,
        buffer: &[u8],
        chunk: usize,
    ) {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.path().join("file"))
            .expect("create a file");
        let mut ring = setup.ring(&file);
        if setup == Setup::RegisteredBuffer {
            // SAFETY: `buffer` outlives `ring`, which holds the registration until dropped
            // at the end of this function.
            unsafe { register(&ring, buffer) };
        }
        c.bench_function(BenchmarkId::new(size, setup.name()), |b| {
            b.iter(|| {
                if setup == Setup::RegisteredBufferPerWrite {
                    // SAFETY: `buffer` outlives the registration, dropped after the write.
                    unsafe { register(&ring, buffer) };
                }
                write_chunks(&mut ring, setup, &file, buffer, chunk);
                if setup == Setup::RegisteredBufferPerWrite {
                    ring.submitter().unregister_buffers().expect("unregister the buffer");
                }
            });
        });
    }

    pub(crate) fn ring_options(c: &mut Criterion) {
        if let Err(error) = zverse_linux::probe() {
            eprintln!("ring_options skipped: io_uring is unavailable ({error})");
            return;
        }
        let mut group = c.benchmark_group("ring_options");
        let small = [0xA5; SMALL_BYTES];
        group.throughput(Throughput::Bytes(SMALL_BYTES as u64));
        let small_setups =
            [Setup::Plain, Setup::RegisteredFile, Setup::CoopTaskrun, Setup::SingleIssuerDefer];
        for setup in small_setups {
            case(&mut group, setup, "write_150B", &small, SMALL_BYTES);
        }
        let big: Vec<u8> = (0..CHUNK_BYTES * CHUNK_COUNT).map(|i| (i % 251) as u8).collect();
        group.throughput(Throughput::BytesDecimal(big.len() as u64));
        let big_setups = [
            Setup::Plain,
            Setup::RegisteredFile,
            Setup::RegisteredBuffer,
            Setup::RegisteredBufferPerWrite,
        ];
        for setup in big_setups {
            case(&mut group, setup, "write_4MiB", &big, CHUNK_BYTES);
        }
        group.finish();
    }
}

/// How a Sync commit can reach the disk, on this file system: a 150-byte record written into
/// an already written, synced region of a file (as ZVerse's zero-filled log takes its
/// commits), made durable five ways.
///
/// - `sync_method/pwrite_fdatasync`: `pwrite`, then `fdatasync` (what the log does);
/// - `sync_method/pwritev2_dsync`: one `pwritev2` with `RWF_DSYNC` (per-write `O_DSYNC`);
/// - `sync_method/o_dsync`: `pwrite` on a descriptor opened `O_DSYNC`;
/// - `sync_method/o_direct_fdatasync`: `O_DIRECT`, the aligned 4 KiB block(s) holding the
///   record rewritten from an in-memory copy of the log's tail, then `fdatasync`;
/// - `sync_method/o_direct_dsync`: the same block write on a descriptor opened
///   `O_DIRECT | O_DSYNC`, no separate sync.
///
/// Criterion times each on its own; `sync_method_interleaved` then runs them round-robin, one
/// commit each per round, so that the disk's weather falls on all alike, and prints the
/// median and 90th percentile of each (the figures for docs/io.md).
#[cfg(target_os = "linux")]
mod sync_method {
    use std::fs::{File, OpenOptions};
    use std::io::IoSlice;
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    use std::path::Path;
    use std::time::{Duration, Instant};

    use criterion::Criterion;

    /// Bytes of one commit (a small group's frame).
    const RECORD_BYTES: usize = 150;
    /// The written region the commits go into, then wrap around.
    const REGION_BYTES: usize = 1 << 20;
    /// `O_DIRECT`'s alignment of offsets, lengths and buffers (the page size; at least the
    /// logical block size of any disk here).
    const BLOCK_BYTES: usize = 4096;
    /// Commits of each method per run of `sync_method_interleaved`.
    const INTERLEAVED_ROUNDS: usize = 400;
    const INTERLEAVED_ROUNDS_TEST: usize = 8;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Method {
        PwriteFdatasync,
        Pwritev2Dsync,
        ODsync,
        ODirectFdatasync,
        ODirectDsync,
    }

    const METHODS: [Method; 5] = [
        Method::PwriteFdatasync,
        Method::Pwritev2Dsync,
        Method::ODsync,
        Method::ODirectFdatasync,
        Method::ODirectDsync,
    ];

    impl Method {
        fn name(self) -> &'static str {
            match self {
                Method::PwriteFdatasync => "pwrite_fdatasync",
                Method::Pwritev2Dsync => "pwritev2_dsync",
                Method::ODsync => "o_dsync",
                Method::ODirectFdatasync => "o_direct_fdatasync",
                Method::ODirectDsync => "o_direct_dsync",
            }
        }

        fn open_flags(self) -> i32 {
            match self {
                Method::PwriteFdatasync | Method::Pwritev2Dsync => 0,
                Method::ODsync => libc::O_DSYNC,
                Method::ODirectFdatasync => libc::O_DIRECT,
                Method::ODirectDsync => libc::O_DIRECT | libc::O_DSYNC,
            }
        }

        fn is_direct(self) -> bool {
            matches!(self, Method::ODirectFdatasync | Method::ODirectDsync)
        }
    }

    /// One method's file, its write position, and (for `O_DIRECT`) an aligned copy of the
    /// region, from which each commit's whole blocks are written.
    struct Log {
        method: Method,
        file: File,
        offset: usize,
        image: Vec<u8>,
        image_start: usize,
    }

    impl Log {
        /// The method's file, or `None` (said on stderr) where the file system refuses its
        /// flags: tmpfs has no `O_DIRECT`.
        fn create(dir: &Path, method: Method) -> Option<Log> {
            let path = dir.join(method.name());
            let prewrite = File::create_new(&path).expect("create the log file");
            prewrite.write_all_at(&vec![0; REGION_BYTES], 0).expect("prewrite the region");
            prewrite.sync_all().expect("sync the region");
            drop(prewrite);
            let opened =
                OpenOptions::new().write(true).custom_flags(method.open_flags()).open(&path);
            let file = match opened {
                Ok(file) => file,
                Err(error) => {
                    eprintln!("sync_method/{} skipped: {error}", method.name());
                    return None;
                }
            };
            let image = vec![0; REGION_BYTES + BLOCK_BYTES];
            let image_start = image.as_ptr().align_offset(BLOCK_BYTES);
            Some(Log { method, file, offset: 0, image, image_start })
        }

        /// One durable commit of `record`.
        fn commit(&mut self, record: &[u8; RECORD_BYTES]) {
            if self.offset + RECORD_BYTES > REGION_BYTES {
                self.offset = 0;
            }
            let offset = self.offset;
            self.offset += RECORD_BYTES;
            let position = offset as u64;
            match self.method {
                Method::PwriteFdatasync => {
                    self.file.write_all_at(record, position).expect("pwrite");
                    self.file.sync_data().expect("fdatasync");
                }
                Method::Pwritev2Dsync => {
                    let flags = rustix::io::ReadWriteFlags::DSYNC;
                    let written =
                        rustix::io::pwritev2(&self.file, &[IoSlice::new(record)], position, flags)
                            .expect("pwritev2");
                    assert_eq!(written, RECORD_BYTES, "a short pwritev2 of 150 bytes");
                }
                Method::ODsync => self.file.write_all_at(record, position).expect("pwrite"),
                Method::ODirectFdatasync | Method::ODirectDsync => {
                    self.write_blocks(record, offset);
                    if self.method == Method::ODirectFdatasync {
                        self.file.sync_data().expect("fdatasync");
                    }
                }
            }
        }

        /// Puts `record` into the image at `offset` and writes the aligned blocks it touches.
        fn write_blocks(&mut self, record: &[u8; RECORD_BYTES], offset: usize) {
            assert!(self.method.is_direct());
            let region = &mut self.image[self.image_start..self.image_start + REGION_BYTES];
            region[offset..offset + RECORD_BYTES].copy_from_slice(record);
            let first = offset / BLOCK_BYTES * BLOCK_BYTES;
            let end = (offset + RECORD_BYTES).div_ceil(BLOCK_BYTES) * BLOCK_BYTES;
            self.file.write_all_at(&region[first..end], first as u64).expect("O_DIRECT pwrite");
        }
    }

    fn record(round: usize) -> [u8; RECORD_BYTES] {
        [u8::try_from(round % 251).unwrap_or(0) | 1; RECORD_BYTES]
    }

    pub(crate) fn sync_method(c: &mut Criterion) {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let mut group = c.benchmark_group("sync_method");
        group.sample_size(20);
        for method in METHODS {
            let Some(mut log) = Log::create(dir.path(), method) else { continue };
            let mut round = 0;
            group.bench_function(method.name(), |b| {
                b.iter(|| {
                    log.commit(&record(round));
                    round += 1;
                });
            });
        }
        group.finish();
    }

    pub(crate) fn sync_method_interleaved(_: &mut Criterion) {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let mut logs: Vec<Log> =
            METHODS.iter().filter_map(|method| Log::create(dir.path(), *method)).collect();
        let rounds = if zverse_benches::is_test_mode() {
            INTERLEAVED_ROUNDS_TEST
        } else {
            INTERLEAVED_ROUNDS
        };
        let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); logs.len()];
        for round in 0..rounds {
            // Rotate who goes first, so no method always follows the same one.
            for step in 0..logs.len() {
                let index = (round + step) % logs.len();
                let start = Instant::now();
                logs[index].commit(&record(round));
                times[index].push(start.elapsed());
            }
        }
        let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        println!("sync_method_interleaved: {rounds} commits each, load {}", loadavg.trim());
        for (log, times) in logs.iter().zip(&mut times) {
            times.sort_unstable();
            let median = times[times.len() / 2];
            let p90 = times[times.len() * 9 / 10];
            println!(
                "sync_method_interleaved/{}: median {median:.1?} ({:.0} commits/s), p90 {p90:.1?}",
                log.method.name(),
                1.0 / median.as_secs_f64().max(1e-9)
            );
        }
    }
}
