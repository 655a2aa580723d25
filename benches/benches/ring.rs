//! `ring::Ring` throughput in records per second: producer threads push 16-byte records
//! while one consumer pops them, the engine's write path in miniature (writers stage records,
//! the commit leader pops them into its group). Each measurement spawns its threads
//! once and moves `iters` records, so thread start-up is amortized over the run.
//!
//! `cargo bench -p zverse-benches --bench ring`

use std::hint::{black_box, spin_loop};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use zverse_core::ring::{PushError, Ring};

/// What a writer stages: where its encoded record sits in a buffer, and its length.
#[derive(Clone, Copy)]
struct Staged {
    offset: u64,
    len: u64,
}

const CAPACITY: usize = 1024;
/// Spins before a waiting thread yields: the bench shares few cores with its own threads.
const SPIN_MAX: u32 = 64;

/// Waits a little: spins first, then yields the core.
fn back_off(spin_count: &mut u32) {
    if *spin_count < SPIN_MAX {
        *spin_count += 1;
        spin_loop();
    } else {
        *spin_count = 0;
        thread::yield_now();
    }
}

fn produce(ring: &Ring<Staged, CAPACITY>, record_count: u64) {
    for offset in 0..record_count {
        let mut record = Staged { offset, len: 64 };
        let mut spin_count = 0;
        while let Err(PushError::Full(back)) = ring.push(record) {
            record = back;
            back_off(&mut spin_count);
        }
    }
}

/// Moves about `record_count` records from `producer_count` threads through one ring into
/// this thread; returns the time from the first push to the last pop.
fn transfer(producer_count: u64, record_count: u64) -> Duration {
    let ring = Ring::<Staged, CAPACITY>::new_boxed();
    let per_producer = record_count.div_ceil(producer_count);
    let total = per_producer * producer_count;
    let start = Instant::now();
    thread::scope(|scope| {
        for _ in 0..producer_count {
            scope.spawn(|| produce(&ring, per_producer));
        }
        let mut received = 0_u64;
        let mut spin_count = 0;
        while received < total {
            match ring.pop() {
                Some(record) => {
                    black_box(record.offset + record.len);
                    received += 1;
                }
                None => back_off(&mut spin_count),
            }
        }
    });
    start.elapsed()
}

fn ring(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring");
    group.throughput(Throughput::Elements(1));
    for producer_count in [1, 2] {
        group.bench_function(BenchmarkId::new("push_pop_threads", producer_count), |b| {
            b.iter_custom(|iters| transfer(producer_count, iters));
        });
    }
    // The uncontended cost of one push and one pop on one thread, for reference.
    let ring = Ring::<Staged, CAPACITY>::new();
    group.bench_function("push_pop_one_thread", |b| {
        b.iter(|| {
            ring.push(black_box(Staged { offset: 1, len: 2 })).unwrap();
            black_box(ring.pop())
        });
    });
    group.finish();
}

criterion_group!(benches, ring);
criterion_main!(benches);
