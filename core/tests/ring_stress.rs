//! Stress tests of `ring::Ring` on real threads: several producers each push a distinct,
//! numbered sequence; the consumers check that every record arrives exactly once and that
//! each producer's records arrive in the order it pushed them. Run lengths and backoff come
//! from a seeded generator; the seed is printed and can
//! be replayed with `ZVERSE_SEED=<seed>`.
#![cfg(not(loom))]

use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use zverse_core::ring::{PushError, Ring};

/// A small ring, so that producers wrap around it thousands of times and often find it full.
type TestRing = Ring<u64, 64>;

const RECORDS_PER_PRODUCER: u64 = 200_000;

/// How long one test may run (it takes about a second in debug builds) before the watchdog
/// calls the ring stuck.
const TEST_TIME_LIMIT: Duration = Duration::from_secs(60);

/// The record a producer pushes: its id in the high half, its sequence number in the low half.
fn record(producer: usize, seq: u64) -> u64 {
    (producer as u64) << 32 | seq
}

fn producer_of(record: u64) -> usize {
    (record >> 32) as usize
}

fn seq_of(record: u64) -> u64 {
    record & u64::from(u32::MAX)
}

/// xorshift64*: enough to vary batch sizes and backoff; seeded, so a failure replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound
    }
}

/// Runs `test` with a fresh seed, aborting the process if it has not returned after
/// [`TEST_TIME_LIMIT`]: a broken ring tends to livelock (a push retrying over a stamp that
/// never changes, a consumer waiting for a record that was lost) rather than to panic.
fn with_watchdog(test: impl FnOnce(u64)) {
    let seed = seed();
    let (done_sender, done_receiver) = mpsc::channel::<()>();
    thread::spawn(move || {
        if done_receiver.recv_timeout(TEST_TIME_LIMIT) == Err(RecvTimeoutError::Timeout) {
            // Straight to stderr: the harness would capture `eprintln!`, and abort loses it.
            let _ = writeln!(
                std::io::stderr(),
                "ring stress test stuck for {TEST_TIME_LIMIT:?}; ZVERSE_SEED={seed}"
            );
            std::process::abort();
        }
    });
    test(seed);
    // Also on a panic: unwinding drops the sender, which disconnects the watchdog.
    drop(done_sender);
}

fn seed() -> u64 {
    let seed =
        std::env::var("ZVERSE_SEED").ok().and_then(|seed| seed.parse().ok()).unwrap_or_else(|| {
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |now| now.as_nanos() as u64)
        });
    // Printed on failure (the test harness shows captured output of failing tests).
    println!("ZVERSE_SEED={seed}");
    seed | 1 // xorshift needs a non-zero state
}

/// Pushes `record`, retrying while the ring is full.
fn push_until_accepted(ring: &TestRing, mut record: u64, random: &mut Rng) {
    let mut attempt = 0_u32;
    loop {
        match ring.push(record) {
            Ok(()) => return,
            Err(PushError::Full(back)) => record = back,
        }
        attempt += 1;
        // Two cores are shared by every thread of the test: let the consumer run.
        if attempt.is_multiple_of(8) || random.below(4) == 0 {
            thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// One producer: pushes `record(producer, 0..RECORDS_PER_PRODUCER)`.
fn produce(ring: &TestRing, producer: usize, seed: u64) {
    let mut random = Rng(seed ^ (producer as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    for seq in 0..RECORDS_PER_PRODUCER {
        push_until_accepted(ring, record(producer, seq), &mut random);
    }
}

/// Per producer, the next sequence number a consumer expects: any loss, duplicate or
/// reordering within one producer's sequence breaks `seq == next`.
struct Checker {
    seq_next: Vec<u64>,
}

impl Checker {
    fn new(producer_count: usize) -> Checker {
        Checker { seq_next: vec![0; producer_count] }
    }

    fn check(&mut self, record: u64) {
        let seq_next = &mut self.seq_next[producer_of(record)];
        assert_eq!(seq_of(record), *seq_next, "producer {} out of sequence", producer_of(record));
        *seq_next += 1;
    }

    fn record_count(&self) -> u64 {
        self.seq_next.iter().sum()
    }
}

/// Pops runs of random length until `done` says to stop.
fn consume(
    ring: &TestRing,
    checker: &mut Checker,
    random: &mut Rng,
    done: impl Fn(&Checker) -> bool,
) {
    while !done(checker) {
        let count_max = 1 + random.below(80);
        let count = (0..count_max).map_while(|_| ring.pop()).map(|record| checker.check(record));
        if count.count() == 0 {
            thread::yield_now();
        }
    }
}

#[test]
fn producers_2_to_4_lose_nothing_duplicate_nothing_keep_order() {
    with_watchdog(|seed| {
        for producer_count in 2..=4 {
            let ring = TestRing::new();
            let mut checker = Checker::new(producer_count);
            let mut random = Rng(seed);
            thread::scope(|scope| {
                for producer in 0..producer_count {
                    let ring = &ring;
                    scope.spawn(move || produce(ring, producer, seed));
                }
                let total = RECORDS_PER_PRODUCER * producer_count as u64;
                consume(&ring, &mut checker, &mut random, |checker| {
                    checker.record_count() == total
                });
            });
            assert_eq!(checker.seq_next, vec![RECORDS_PER_PRODUCER; producer_count]);
            assert_eq!(ring.pop(), None, "nothing beyond what was pushed");
            assert!(ring.is_empty());
        }
    });
}

/// Two consumers racing for records: each sees each producer's records in increasing order
/// (not consecutive: the other consumer takes some), and together they see every record once.
#[test]
fn two_consumers_together_get_every_record_once() {
    with_watchdog(|seed| {
        let producer_count = 2;
        let total = RECORDS_PER_PRODUCER * producer_count as u64;
        let ring = TestRing::new();
        let popped_count = AtomicUsize::new(0);
        let mut popped: Vec<u64> = thread::scope(|scope| {
            for producer in 0..producer_count {
                let ring = &ring;
                scope.spawn(move || produce(ring, producer, seed));
            }
            let consumers: Vec<_> = (0..2_u64)
                .map(|consumer| {
                    let (ring, popped_count) = (&ring, &popped_count);
                    scope.spawn(move || {
                        let mut random = Rng(seed ^ (consumer + 7).wrapping_mul(0x9e37_79b9) | 1);
                        let mut popped = Vec::new();
                        while popped_count.load(Ordering::Relaxed) < total as usize {
                            let count_max = 1 + random.below(40) as usize;
                            let count_before = popped.len();
                            popped.extend((0..count_max).map_while(|_| ring.pop()));
                            let count = popped.len() - count_before;
                            popped_count.fetch_add(count, Ordering::Relaxed);
                            if count == 0 {
                                thread::yield_now();
                            }
                        }
                        for producer in 0..producer_count {
                            let seqs = popped.iter().filter(|&&r| producer_of(r) == producer);
                            assert!(
                                seqs.is_sorted(),
                                "consumer {consumer}: producer {producer} reordered"
                            );
                        }
                        popped
                    })
                })
                .collect();
            consumers.into_iter().flat_map(|consumer| consumer.join().unwrap()).collect()
        });
        assert_eq!(popped.len() as u64, total);
        popped.sort_unstable();
        popped.dedup();
        assert_eq!(popped.len() as u64, total, "a record was popped twice");
    });
}
