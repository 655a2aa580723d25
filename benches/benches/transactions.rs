//! Transactions under contention: `zverse::Db` on files in a temporary directory,
//! `Durability::None` (the CPU and conflict path, not the disk), retried until they commit.
//!
//! - `counter/{isolation}/{keys}/{threads}`: read-modify-write increments of an 8-byte counter
//!   chosen uniformly among `keys` counters (1: every thread on one hot key; 1,000: little
//!   contention), at Snapshot and Serializable, through `Db::transaction_with`.
//! - `update/{keys}/{threads}`: the same increments through `Db::update`.
//! - `transfer/{isolation}/{keys}/{threads}`: read two distinct random accounts, move one unit,
//!   write both, among 2 accounts (every transfer conflicts with every other) or 1,000.
//!
//! One iteration is [`OPS_PER_ITERATION`] committed operations split across the threads. After
//! each group the abort rate (conflicts retried per committed operation, over every sample) is
//! printed on stderr.
//!
//! Run: `cargo bench -p zverse-benches --bench transactions -- --warm-up-time 1
//! --measurement-time 5`
#![allow(missing_docs, reason = "criterion's macros generate undocumented items")]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tempfile::TempDir;
use zverse::{Db, Durability, Error, Isolation, Options};

const OPS_PER_ITERATION: u64 = 2_000;
const OPS_PER_ITERATION_TEST: u64 = 50;
const THREAD_COUNTS: [u64; 4] = [1, 2, 4, 8];
const SEED: u64 = 0x7A5;

fn ops_per_iteration() -> u64 {
    if zverse_benches::is_test_mode() { OPS_PER_ITERATION_TEST } else { OPS_PER_ITERATION }
}

fn open(dir: &TempDir, key_count: u64) -> Db {
    let db = Db::open(dir.path(), Options::default().durability(Durability::None))
        .expect("open a fresh db");
    let mut batch = db.batch();
    for index in 0..key_count {
        batch.put(&key(index), &1_000_000_u64.to_le_bytes());
    }
    batch.commit().expect("the starting values");
    db
}

fn key(index: u64) -> Vec<u8> {
    format!("key/{index:08}").into_bytes()
}

fn decode(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes.try_into().expect("8-byte values"))
}

/// One committed operation: tries until it commits; returns the conflicts it lost.
type Op = fn(&Db, &mut fastrand::Rng, u64, Isolation) -> u64;

fn increment(db: &Db, rng: &mut fastrand::Rng, key_count: u64, isolation: Isolation) -> u64 {
    let key = key(rng.u64(..key_count));
    let mut conflicts = 0;
    loop {
        let mut tx = db.transaction_with(isolation);
        let old = decode(&tx.get(&key, None).expect("get").expect("written at open"));
        tx.set(&key, &(old + 1).to_le_bytes()).expect("set");
        match tx.commit() {
            Ok(_) => return conflicts,
            Err(Error::Conflict(_)) => conflicts += 1,
            Err(other) => panic!("{other}"),
        }
    }
}

fn update(db: &Db, rng: &mut fastrand::Rng, key_count: u64, _: Isolation) -> u64 {
    let key = key(rng.u64(..key_count));
    let mut attempts = 0;
    db.update(&key, |old| {
        attempts += 1;
        Some((decode(old.expect("written at open")) + 1).to_le_bytes().to_vec())
    })
    .expect("update");
    attempts - 1
}

fn transfer(db: &Db, rng: &mut fastrand::Rng, key_count: u64, isolation: Isolation) -> u64 {
    let from = rng.u64(..key_count);
    let to = (from + rng.u64(1..key_count)) % key_count;
    let (from, to) = (key(from), key(to));
    let mut conflicts = 0;
    loop {
        let mut tx = db.transaction_with(isolation);
        let a = decode(&tx.get(&from, None).expect("get").expect("written at open"));
        let b = decode(&tx.get(&to, None).expect("get").expect("written at open"));
        tx.set(&from, &(a - 1).to_le_bytes()).expect("set");
        tx.set(&to, &(b + 1).to_le_bytes()).expect("set");
        match tx.commit() {
            Ok(_) => return conflicts,
            Err(Error::Conflict(_)) => conflicts += 1,
            Err(other) => panic!("{other}"),
        }
    }
}

/// Runs `ops` committed operations split over `threads`; returns the elapsed time.
fn run(
    db: &Db,
    op: Op,
    threads: u64,
    ops: u64,
    shape: (u64, Isolation),
    lost: &AtomicU64,
) -> Duration {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for thread in 0..threads {
            scope.spawn(move || {
                let mut rng = fastrand::Rng::with_seed(SEED ^ thread);
                let mut conflicts = 0;
                for _ in 0..ops / threads {
                    conflicts += op(db, &mut rng, shape.0, shape.1);
                }
                lost.fetch_add(conflicts, Ordering::Relaxed);
            });
        }
    });
    started.elapsed()
}

fn bench_op(c: &mut Criterion, name: &str, op: Op, isolations: &[Isolation], key_counts: [u64; 2]) {
    let ops = ops_per_iteration();
    for &isolation in isolations {
        for key_count in key_counts {
            let label = format!("{name}/{isolation:?}/{key_count}keys");
            let mut group = c.benchmark_group(&label);
            group.throughput(Throughput::Elements(ops));
            for threads in THREAD_COUNTS {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let db = open(&dir, key_count);
                let (lost, committed) = (AtomicU64::new(0), AtomicU64::new(0));
                group.bench_function(BenchmarkId::from_parameter(threads), |b| {
                    b.iter_custom(|iterations| {
                        let mut elapsed = Duration::ZERO;
                        for _ in 0..iterations {
                            elapsed += run(&db, op, threads, ops, (key_count, isolation), &lost);
                            committed.fetch_add(ops / threads * threads, Ordering::Relaxed);
                        }
                        elapsed
                    });
                });
                let (lost, committed) = (lost.into_inner(), committed.into_inner());
                eprintln!(
                    "{label}/{threads}: {lost} conflicts retried per {committed} commits \
                     ({} per 1,000)",
                    lost * 1_000 / committed.max(1)
                );
            }
            group.finish();
        }
    }
}

fn benches(c: &mut Criterion) {
    let both = [Isolation::Snapshot, Isolation::Serializable];
    bench_op(c, "counter", increment, &both, [1, 1_000]);
    bench_op(c, "update", update, &[Isolation::Snapshot], [1, 1_000]);
    bench_op(c, "transfer", transfer, &both, [2, 1_000]);
}

criterion_group!(transactions, benches);
criterion_main!(transactions);
