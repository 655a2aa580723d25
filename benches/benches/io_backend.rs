//! The group commit on each I/O backend: `Durability::Sync` fills of random 16-byte keys and
//! 100-byte values from 1 and 4 writer threads, on io_uring (`UringIo`, a linked write +
//! fdatasync per commit group) and on the std backend (`pwrite` then `fdatasync`), in one run
//! so the two see the same disk weather.
//!
//! - `sync_fill/{io_uring,std}/{1thread,4threads}/{N}_writes`: N synced puts into a fresh
//!   database, one iteration = the whole fill (setup and close outside the timing).
//!
//! Where the kernel refuses io_uring, only the std cases run (and that is said on stderr).
//!
//! Run: `cargo bench -p zverse-benches --bench io_backend -- --warm-up-time 1
//! --measurement-time 5`
#![allow(missing_docs, reason = "criterion's macros generate undocumented items")]

use std::sync::Arc;
use std::time::Duration;

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
const THREAD_COUNTS: [usize; 2] = [1, 4];
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
    for (name, io) in backends() {
        for thread_count in THREAD_COUNTS {
            let threads = if thread_count == 1 { "thread" } else { "threads" };
            let id = BenchmarkId::new(
                format!("{name}/{thread_count}{threads}"),
                format!("{write_count}_writes"),
            );
            group.bench_function(id, |b| {
                b.iter_custom(|iterations| {
                    let mut elapsed = Duration::ZERO;
                    for _ in 0..iterations {
                        let dir = tempfile::tempdir().expect("create a temporary directory");
                        let options = Options::default().durability(Durability::Sync);
                        let db = Db::open_with_io(dir.path(), options, Arc::clone(&io))
                            .expect("open a fresh db");
                        assert_eq!(db.stats().io_backend, name);
                        elapsed += zverse_benches::timed_fill(&db, &keys, &VALUE, thread_count);
                        drop(db);
                    }
                    elapsed
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, sync_fill);
criterion_main!(benches);
