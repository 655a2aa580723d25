//! The workloads, each a function from an open engine to a [`Sample`]: what was done, how long
//! it took, the p99 latency of one operation where each was timed, and a check value (items
//! found) that must agree across engines.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::data::{self, Key, Values, Zipfian};
use crate::engines::{Engine, Res, Versioned};

/// One measurement of one workload on one engine.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Operations done (writes, reads, queries or items, as the workload's unit says).
    pub ops: u64,
    pub elapsed: Duration,
    /// The 99th percentile of one operation's latency, where each was timed.
    pub p99: Option<Duration>,
    /// Items found or returned: the same on every engine, or one of them is wrong.
    pub check: u64,
}

impl Sample {
    #[allow(clippy::cast_precision_loss, reason = "a rate needs no more precision")]
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("static histogram bounds")
}

fn record(histogram: &mut Histogram<u64>, start: Instant) {
    let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
    histogram.saturating_record(nanos.max(1));
}

fn p99(histogram: &Histogram<u64>) -> Option<Duration> {
    (!histogram.is_empty()).then(|| Duration::from_nanos(histogram.value_at_quantile(0.99)))
}

/// Runs `op(index)` for every index of `0..count`, split in contiguous parts over `threads`
/// threads, timing each call; returns the wall time, the merged latencies and the sum of what
/// the calls returned.
fn run_parallel(
    count: usize,
    threads: usize,
    op: &(dyn Fn(usize) -> Res<u64> + Sync),
) -> Res<Sample> {
    let part = count.div_ceil(threads.max(1)).max(1);
    let start = Instant::now();
    let results: Vec<Res<(Histogram<u64>, u64)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..count)
            .step_by(part)
            .map(|first| {
                scope.spawn(move || {
                    let mut latencies = histogram();
                    let mut check = 0;
                    for index in first..(first + part).min(count) {
                        let op_start = Instant::now();
                        check += op(index)?;
                        record(&mut latencies, op_start);
                    }
                    Ok((latencies, check))
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().expect("worker panicked")).collect()
    });
    let elapsed = start.elapsed();
    let mut latencies = histogram();
    let mut check = 0;
    for result in results {
        let (part_latencies, part_check) = result?;
        latencies.add(&part_latencies)?;
        check += part_check;
    }
    Ok(Sample { ops: count as u64, elapsed, p99: p99(&latencies), check })
}

/// Puts `keys[i]` with value `i` for every key, over `threads` writers, one write per op.
pub fn fill_per_op(
    engine: &dyn Engine,
    keys: &[Key],
    values: &Values,
    threads: usize,
) -> Res<Sample> {
    run_parallel(keys.len(), threads, &|index| {
        engine.put(&keys[index], values.get(index))?;
        Ok(1)
    })
}

/// Puts every key in batches of `batch_len`, one thread; the p99 is of one batch.
pub fn fill_batches(
    engine: &dyn Engine,
    keys: &[Key],
    values: &Values,
    batch_len: usize,
) -> Res<Sample> {
    let batch_count = keys.len().div_ceil(batch_len);
    let mut sample = run_parallel(batch_count, 1, &|batch_index| {
        let first = batch_index * batch_len;
        let pairs: Vec<(&[u8], &[u8])> = (first..(first + batch_len).min(keys.len()))
            .map(|index| (&keys[index][..], values.get(index)))
            .collect();
        engine.put_batch(&pairs)?;
        Ok(pairs.len() as u64)
    })?;
    sample.ops = keys.len() as u64;
    Ok(sample)
}

/// `count` gets of random loaded keys over `threads` readers.
pub fn read_random(engine: &dyn Engine, keys: &[Key], count: usize, threads: usize) -> Res<Sample> {
    let mut rng = fastrand::Rng::with_seed(data::SEED_READS);
    let order: Vec<usize> = (0..count).map(|_| rng.usize(..keys.len())).collect();
    run_parallel(count, threads, &|index| Ok(u64::from(engine.get(&keys[order[index]])?.is_some())))
}

/// `count` scans of `span` consecutive keys from a random start; `sorted` is the loaded keys
/// in order. The ops are scans; the check is the items returned.
pub fn range_scans(engine: &dyn Engine, sorted: &[Key], span: usize, count: usize) -> Res<Sample> {
    let mut rng = fastrand::Rng::with_seed(data::SEED_QUERIES);
    let starts: Vec<usize> = (0..count).map(|_| rng.usize(..sorted.len() - span)).collect();
    run_parallel(count, 1, &|index| {
        let start = starts[index];
        let (items, _bytes) =
            engine.scan(&sorted[start], Some(&sorted[start + span]), usize::MAX)?;
        Ok(items as u64)
    })
}

/// One scan of every key; the ops are the items.
pub fn full_scan(engine: &dyn Engine) -> Res<Sample> {
    let start = Instant::now();
    let (items, _bytes) = engine.scan(&[0], None, usize::MAX)?;
    Ok(Sample { ops: items as u64, elapsed: start.elapsed(), p99: None, check: items as u64 })
}

/// A YCSB core workload's operation mix.
#[derive(Clone, Copy, Debug)]
pub struct YcsbMix {
    pub name: &'static str,
    /// Percent of reads, updates, inserts, scans and read-modify-writes (adding to 100).
    pub read: u32,
    pub update: u32,
    pub insert: u32,
    pub scan: u32,
    pub read_modify_write: u32,
    /// Reads choose the latest-inserted keys (workload D) rather than a scrambled Zipfian.
    pub latest: bool,
}

pub const YCSB: [YcsbMix; 6] = [
    YcsbMix {
        name: "A",
        read: 50,
        update: 50,
        insert: 0,
        scan: 0,
        read_modify_write: 0,
        latest: false,
    },
    YcsbMix {
        name: "B",
        read: 95,
        update: 5,
        insert: 0,
        scan: 0,
        read_modify_write: 0,
        latest: false,
    },
    YcsbMix {
        name: "C",
        read: 100,
        update: 0,
        insert: 0,
        scan: 0,
        read_modify_write: 0,
        latest: false,
    },
    YcsbMix {
        name: "D",
        read: 95,
        update: 0,
        insert: 5,
        scan: 0,
        read_modify_write: 0,
        latest: true,
    },
    YcsbMix {
        name: "E",
        read: 0,
        update: 0,
        insert: 5,
        scan: 95,
        read_modify_write: 0,
        latest: false,
    },
    YcsbMix {
        name: "F",
        read: 50,
        update: 0,
        insert: 0,
        scan: 0,
        read_modify_write: 50,
        latest: false,
    },
];

/// YCSB scans read a uniform 1..=100 items (YCSB's default `maxscanlength`).
const YCSB_SCAN_LEN_MAX: usize = 100;

/// The keys of a YCSB run: the loaded ones, then the inserted ones (shared by D and E, which
/// keep inserting where the previous workload stopped).
pub struct YcsbKeys<'k> {
    pub loaded: &'k [Key],
    pub inserts: Vec<Key>,
    pub inserted_count: usize,
}

impl YcsbKeys<'_> {
    fn key(&self, index: usize) -> &Key {
        match index.checked_sub(self.loaded.len()) {
            None => &self.loaded[index],
            Some(inserted) => &self.inserts[inserted],
        }
    }
}

/// `op_count` operations of `mix`, single-threaded, keys chosen by a scrambled Zipfian over the
/// loaded keys (D: the most recent first).
pub fn ycsb(
    engine: &dyn Engine,
    mix: YcsbMix,
    keys: &mut YcsbKeys<'_>,
    zipfian: &Zipfian,
    values: &Values,
    op_count: usize,
) -> Res<Sample> {
    let percent_total = mix.read + mix.update + mix.insert + mix.scan + mix.read_modify_write;
    assert_eq!(percent_total, 100, "YCSB {} mix adds to {percent_total}%", mix.name);
    let mut rng = fastrand::Rng::with_seed(data::SEED_YCSB ^ u64::from(mix.name.as_bytes()[0]));
    let mut latencies = histogram();
    let mut check = 0_u64;
    let start = Instant::now();
    for op_index in 0..op_count {
        let roll = rng.u32(0..100);
        let rank = zipfian.next(&mut rng);
        let count = keys.loaded.len() + keys.inserted_count;
        let index = if mix.latest {
            count - 1 - rank.min(count - 1)
        } else {
            data::scramble(rank, keys.loaded.len())
        };
        let op_start = Instant::now();
        if roll < mix.read {
            check += u64::from(engine.get(keys.key(index))?.is_some());
        } else if roll < mix.read + mix.update {
            engine.put(keys.key(index), values.get(op_index))?;
        } else if roll < mix.read + mix.update + mix.insert {
            let key = keys.inserts[keys.inserted_count];
            keys.inserted_count += 1;
            engine.put(&key, values.get(op_index))?;
        } else if roll < mix.read + mix.update + mix.insert + mix.scan {
            let len = rng.usize(1..=YCSB_SCAN_LEN_MAX);
            check += engine.scan(keys.key(index), None, len)?.0 as u64;
        } else {
            check += u64::from(engine.get(keys.key(index))?.is_some());
            engine.put(keys.key(index), values.get(op_index))?;
        }
        record(&mut latencies, op_start);
    }
    Ok(Sample { ops: op_count as u64, elapsed: start.elapsed(), p99: p99(&latencies), check })
}

/// The versioned dataset: `rounds` rounds, each writing every key (in the same order) in
/// batches of `batch_len`; returns the fill's sample and each batch's version.
pub fn versioned_fill(
    engine: &dyn Versioned,
    keys: &[Key],
    values: &Values,
    rounds: usize,
    batch_len: usize,
) -> Res<(Sample, Vec<u64>)> {
    let mut versions = Vec::new();
    let start = Instant::now();
    for round in 0..rounds {
        for (chunk_index, chunk) in keys.chunks(batch_len).enumerate() {
            let first = round * keys.len() + chunk_index * batch_len;
            let pairs: Vec<(&[u8], &[u8])> = chunk
                .iter()
                .enumerate()
                .map(|(offset, key)| (&key[..], values.get(first + offset)))
                .collect();
            versions.push(engine.put_batch_versioned(&pairs)?);
        }
    }
    let ops = (rounds * keys.len()) as u64;
    Ok((Sample { ops, elapsed: start.elapsed(), p99: None, check: ops }, versions))
}

/// `count` reads of a random key as of a random batch's version.
pub fn as_of_reads(
    engine: &dyn Versioned,
    keys: &[Key],
    versions: &[u64],
    count: usize,
) -> Res<Sample> {
    let mut rng = fastrand::Rng::with_seed(data::SEED_QUERIES);
    let queries: Vec<(usize, usize)> =
        (0..count).map(|_| (rng.usize(..keys.len()), rng.usize(..versions.len()))).collect();
    run_parallel(count, 1, &|index| {
        let (key, batch) = queries[index];
        Ok(u64::from(engine.get_at(&keys[key], versions[batch])?.is_some()))
    })
}

/// `count` histories of random keys; the check is the versions returned.
pub fn histories(engine: &dyn Versioned, keys: &[Key], count: usize) -> Res<Sample> {
    let mut rng = fastrand::Rng::with_seed(data::SEED_QUERIES);
    let order: Vec<usize> = (0..count).map(|_| rng.usize(..keys.len())).collect();
    run_parallel(count, 1, &|index| Ok(engine.history(&keys[order[index]])? as u64))
}

/// `count` ranges over `span` consecutive keys as of a random batch's version; `None` when the
/// engine has no such query.
pub fn ranges_at(
    engine: &dyn Versioned,
    sorted: &[Key],
    versions: &[u64],
    span: usize,
    count: usize,
) -> Res<Option<Sample>> {
    if engine.range_at(&sorted[0], &sorted[1], versions[0])?.is_none() {
        return Ok(None);
    }
    let mut rng = fastrand::Rng::with_seed(data::SEED_QUERIES);
    let queries: Vec<(usize, usize)> = (0..count)
        .map(|_| (rng.usize(..sorted.len() - span), rng.usize(..versions.len())))
        .collect();
    let sample = run_parallel(count, 1, &|index| {
        let (start, batch) = queries[index];
        let items = engine.range_at(&sorted[start], &sorted[start + span], versions[batch])?;
        Ok(items.unwrap_or(0) as u64)
    })?;
    Ok(Some(sample))
}

/// `count` change queries over `key_span` consecutive keys (all keys: `None` bounds) and
/// `batch_span` consecutive batches' versions, from random starts.
pub fn changes(
    engine: &dyn Versioned,
    sorted: &[Key],
    versions: &[u64],
    key_span: usize,
    batch_span: usize,
    count: usize,
) -> Res<Sample> {
    let mut rng = fastrand::Rng::with_seed(data::SEED_QUERIES);
    let all_keys = key_span >= sorted.len();
    let queries: Vec<(usize, usize)> = (0..count)
        .map(|_| {
            let key_start = if all_keys { 0 } else { rng.usize(..sorted.len() - key_span) };
            (key_start, rng.usize(..=versions.len() - batch_span))
        })
        .collect();
    run_parallel(count, 1, &|index| {
        let (key_start, batch_start) = queries[index];
        let (start, end) = if all_keys {
            (None, None)
        } else {
            (Some(&sorted[key_start][..]), Some(&sorted[key_start + key_span][..]))
        };
        let version_first = versions[batch_start];
        let version_last = versions[batch_start + batch_span - 1];
        Ok(engine.changes(start, end, version_first, version_last)? as u64)
    })
}
