//! Loom models of `ring::Ring`: every interleaving (up to a preemption bound) of a few
//! producers and consumers, with loom's atomics and cells swapped in through `core::sync`.
//!
//! Run with
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p zverse-core --release --test loom_ring`.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use zverse_core::ring::{PushError, Ring};

/// A record: which producer pushed it, and its place in that producer's sequence.
type Record = (u8, u8);

/// Runs `f` under loom with at most `preemption_bound` preemptions per execution (unbounded
/// when `None`). The bounds keep each model to seconds; bugs of lock-free code almost always
/// show within two or three preemptions (loom's own guidance).
fn check(preemption_bound: Option<usize>, f: impl Fn() + Send + Sync + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = preemption_bound;
    }
    builder.check(f);
}

/// Pops until `ring` is empty, appending to `popped`.
fn drain<T, const N: usize>(ring: &Ring<T, N>, popped: &mut Vec<T>) {
    while let Some(record) = ring.pop() {
        popped.push(record);
    }
}

/// Asserts that `popped` and `refused` together hold every record of `expected` exactly once.
fn assert_exactly_once(popped: &[Record], refused: &[Record], expected: &[Record]) {
    let mut all: Vec<Record> = popped.iter().chain(refused).copied().collect();
    all.sort_unstable();
    let mut expected = expected.to_vec();
    expected.sort_unstable();
    assert_eq!(all, expected, "popped {popped:?}, refused {refused:?}");
}

/// Asserts that each producer's records in `popped` (the order one consumer took them) are in
/// the order that producer pushed them.
fn assert_fifo_per_producer(popped: &[Record]) {
    for producer in 0..=u8::MAX {
        let seqs: Vec<u8> = popped.iter().filter(|r| r.0 == producer).map(|r| r.1).collect();
        assert!(seqs.is_sorted(), "producer {producer} out of order: {popped:?}");
    }
}

/// Two producers (two records and one) and a consumer popping while they push.
#[test]
fn two_producers_one_consumer() {
    check(Some(3), || {
        let ring: Arc<Ring<Record, 4>> = Arc::new(Ring::new());
        let producers: Vec<_> = [vec![(0, 0), (0, 1)], vec![(1, 0)]]
            .into_iter()
            .map(|records| {
                let ring = Arc::clone(&ring);
                thread::spawn(move || {
                    for record in records {
                        assert_eq!(ring.push(record), Ok(()), "3 records fit in 4 slots");
                    }
                })
            })
            .collect();
        let consumer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let mut popped = Vec::new();
                for _ in 0..2 {
                    popped.extend(ring.pop());
                }
                popped
            })
        };
        for producer in producers {
            producer.join().unwrap();
        }
        let mut popped = consumer.join().unwrap();
        drain(&ring, &mut popped);
        assert_exactly_once(&popped, &[], &[(0, 0), (0, 1), (1, 0)]);
        assert_fifo_per_producer(&popped);
        assert!(ring.is_empty());
    });
}

/// Three producers, one record each, into a ring of two slots whose positions start at 1, so
/// that the pushes wrap from slot 1 to slot 0 and back; the consumer pops once meanwhile. A push
/// that finds its slot occupied gets `Full` and its record back.
#[test]
fn three_producers_tiny_ring_wraps_and_fills() {
    check(Some(3), || {
        let ring: Arc<Ring<Record, 2>> = Arc::new(Ring::new());
        ring.push((9, 0)).unwrap();
        assert_eq!(ring.pop(), Some((9, 0)));
        let producers: Vec<_> = (0..3)
            .map(|producer| {
                let ring = Arc::clone(&ring);
                thread::spawn(move || match ring.push((producer, 0)) {
                    Ok(()) => None,
                    Err(PushError::Full(record)) => Some(record),
                })
            })
            .collect();
        // The model's own thread is the consumer: one thread fewer to interleave.
        let mut popped: Vec<Record> = ring.pop().into_iter().collect();
        let refused: Vec<Record> =
            producers.into_iter().filter_map(|producer| producer.join().unwrap()).collect();
        let popped_concurrently = popped.len();
        assert!(
            refused.len() + popped_concurrently >= 1,
            "3 records cannot all fit in 2 slots without a pop"
        );
        drain(&ring, &mut popped);
        assert_exactly_once(&popped, &refused, &[(0, 0), (1, 0), (2, 0)]);
        assert!(popped.len() - popped_concurrently <= 2);
    });
}

/// A record that counts its drops.
struct Tracked(Arc<AtomicUsize>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Records left in the ring are dropped with it, popped ones by their consumer, refused ones
/// by their producer: three records, three drops, in every interleaving.
#[test]
fn every_record_dropped_exactly_once() {
    check(Some(3), || {
        let drop_count = Arc::new(AtomicUsize::new(0));
        let ring: Arc<Ring<Tracked, 2>> = Arc::new(Ring::new());
        let producers: Vec<_> = [2, 1]
            .into_iter()
            .map(|record_count| {
                let ring = Arc::clone(&ring);
                let drop_count = Arc::clone(&drop_count);
                thread::spawn(move || {
                    for _ in 0..record_count {
                        // A refused record comes back in the error and is dropped here.
                        let _ = ring.push(Tracked(Arc::clone(&drop_count)));
                    }
                })
            })
            .collect();
        let consumer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || drop(ring.pop()))
        };
        for producer in producers {
            producer.join().unwrap();
        }
        consumer.join().unwrap();
        let Ok(ring) = Arc::try_unwrap(ring) else {
            panic!("every other handle was dropped with its thread");
        };
        drop(ring);
        assert_eq!(drop_count.load(Ordering::Relaxed), 3);
    });
}

/// Two consumers race to claim batches while a producer pushes three records through two
/// slots (stopping at the first `Full`, so what it pushed is a prefix of its sequence): each
/// record pushed reaches exactly one consumer, and each batch is in push order.
#[test]
fn two_consumers_split_the_records() {
    check(Some(3), || {
        let ring: Arc<Ring<Record, 2>> = Arc::new(Ring::new());
        let producer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let mut refused = Vec::new();
                for seq in 0..3 {
                    if let Err(error) = ring.push((0, seq)) {
                        refused.push(error.into_inner());
                    }
                }
                refused
            })
        };
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let ring = Arc::clone(&ring);
                thread::spawn(move || {
                    let mut popped = Vec::new();
                    for _ in 0..2 {
                        popped.extend(ring.pop());
                    }
                    popped
                })
            })
            .collect();
        let refused = producer.join().unwrap();
        let mut popped = Vec::new();
        for consumer in consumers {
            let taken = consumer.join().unwrap();
            assert!(taken.is_sorted(), "one consumer's pops are in push order: {taken:?}");
            popped.extend(taken);
        }
        drain(&ring, &mut popped);
        assert_exactly_once(&popped, &refused, &[(0, 0), (0, 1), (0, 2)]);
    });
}
