//! `bench`: the built-in workload. Fills a fresh database with `keys` keys, `versions` rounds
//! of writes each, then times every kind of query: latest and as-of point reads, range scans,
//! histories and `changes` box queries; prints ops/s and p50/p99 latency per kind.
//!
//! It runs in its own directory (`./zverse-bench` unless `--db` names another), never in a
//! database it did not create (`bench_dir.rs`), and leaves the database behind for `zverse
//! stat` and friends.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::json;
use zverse::{Db, Durability, Options, Version};

use crate::BenchArgs;
use crate::bench_dir;
use crate::commands::{Context, bytes, stdout};
use crate::dump::progress;
use crate::fail::Fail;

/// Keys a range query reads.
const RANGE_KEYS: usize = 100;
/// Consecutive keys a `changes` query covers (its window is one round of the fill).
const CHANGES_KEYS: u64 = 1_000;
/// Operations between two progress-bar updates.
const PROGRESS_STEP: u64 = 1_024;

/// One row of the results table.
#[derive(Debug)]
struct Row {
    name: &'static str,
    ops: u64,
    /// Keys or versions the queries returned.
    items: u64,
    elapsed: Duration,
    /// Per-operation latencies in nanoseconds, sorted.
    latencies_ns: Vec<u64>,
}

impl Row {
    #[allow(clippy::cast_precision_loss, reason = "a rate printed with no decimals")]
    fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn percentile_ns(&self, percent: usize) -> u64 {
        let len = self.latencies_ns.len();
        if len == 0 {
            return 0;
        }
        self.latencies_ns[(len * percent / 100).min(len - 1)]
    }
}

/// xorshift64*: a small, seeded generator; the workload only needs spread, not quality.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "a random number below 0 does not exist");
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound
    }
}

fn key(index: u64) -> Vec<u8> {
    format!("user:{index:010}").into_bytes()
}

fn value(index: u64, round: u32, len: usize) -> Vec<u8> {
    let mut value = format!("v{round}-{index}-").into_bytes();
    value.resize(len, b'.');
    value
}

pub fn run(context: &Context, args: &BenchArgs) -> Result<(), Fail> {
    if args.keys == 0 || args.versions == 0 {
        return Err(Fail::usage("bench needs --keys and --versions of at least 1"));
    }
    bench_dir::prepare(context, args.fresh)?;
    let durability = if args.sync { Durability::Sync } else { Durability::None };
    let db = context.open_or_create_with(Options::default().durability(durability))?;
    bench_dir::mark(context)?;
    let started = Instant::now();
    let mut rng = Rng(args.seed | 1);
    let (fill, round_versions) = fill(context, &db, args, &mut rng)?;
    let flush_started = Instant::now();
    db.flush().map_err(|error| context.fail(error))?;
    let flush_elapsed = flush_started.elapsed();
    let reads = args.reads.unwrap_or(args.keys);
    let queries = args.queries.unwrap_or((args.keys / 20).max(1));
    let mut rows = vec![fill];
    rows.push(read_latest(context, &db, args.keys, reads, &mut rng)?);
    rows.push(read_as_of(context, &db, args.keys, &round_versions, reads, &mut rng)?);
    rows.push(range(context, &db, args.keys, queries, &mut rng)?);
    rows.push(history(context, &db, args.keys, queries, &mut rng)?);
    rows.push(changes(context, &db, args.keys, &round_versions, queries, &mut rng)?);
    let stats = db.stats();
    context.close(&db)?;
    let path = context.db.display().to_string();
    let report = Report { args, rows: &rows, flush_elapsed, total: started.elapsed(), stats, path };
    if context.json { report.print_json() } else { report.print_table() }
}

/// Times `ops` calls of `op` (which returns how many items it read) under a progress bar.
fn timed(
    name: &'static str,
    ops: u64,
    mut op: impl FnMut(u64) -> Result<u64, Fail>,
) -> Result<Row, Fail> {
    let bar = progress(Some(ops), name);
    let mut latencies_ns = Vec::with_capacity(usize::try_from(ops).unwrap_or(0));
    let mut items: u64 = 0;
    let started = Instant::now();
    for index in 0..ops {
        let op_started = Instant::now();
        items += op(index)?;
        latencies_ns.push(u64::try_from(op_started.elapsed().as_nanos()).unwrap_or(u64::MAX));
        if index % PROGRESS_STEP == PROGRESS_STEP - 1 {
            bar.inc(PROGRESS_STEP);
        }
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    latencies_ns.sort_unstable();
    assert_eq!(latencies_ns.len() as u64, ops, "one latency per operation");
    Ok(Row { name, ops, items, elapsed, latencies_ns })
}

/// Writes every key once per round, in a shuffled order; returns the last version of each
/// round.
fn fill(
    context: &Context,
    db: &Db,
    args: &BenchArgs,
    rng: &mut Rng,
) -> Result<(Row, Vec<Version>), Fail> {
    let mut order: Vec<u64> = (0..args.keys).collect();
    let mut round_versions = Vec::with_capacity(args.versions as usize);
    let ops = args.keys * u64::from(args.versions);
    let mut version_last = Version::ZERO;
    let row = timed("fill", ops, |op| {
        let round = u32::try_from(op / args.keys).unwrap_or(u32::MAX);
        let position = usize::try_from(op % args.keys).unwrap_or(usize::MAX);
        if position == 0 {
            shuffle(&mut order, rng);
            if round > 0 {
                round_versions.push(version_last);
            }
        }
        let index = order[position];
        version_last = db
            .put(&key(index), &value(index, round, args.value_bytes))
            .map_err(|error| context.fail(error))?;
        Ok(1)
    })?;
    round_versions.push(version_last);
    assert_eq!(round_versions.len(), args.versions as usize, "one version per round");
    Ok((row, round_versions))
}

fn shuffle(order: &mut [u64], rng: &mut Rng) {
    for index in (1..order.len()).rev() {
        let other = usize::try_from(rng.below(index as u64 + 1)).unwrap_or(0);
        order.swap(index, other);
    }
}

fn read_latest(
    context: &Context,
    db: &Db,
    keys: u64,
    reads: u64,
    rng: &mut Rng,
) -> Result<Row, Fail> {
    timed("read latest", reads, |_| {
        let found = db.get(&key(rng.below(keys))).map_err(|error| context.fail(error))?;
        Ok(u64::from(found.is_some()))
    })
}

fn read_as_of(
    context: &Context,
    db: &Db,
    keys: u64,
    round_versions: &[Version],
    reads: u64,
    rng: &mut Rng,
) -> Result<Row, Fail> {
    timed("read as-of", reads, |_| {
        let at =
            round_versions[usize::try_from(rng.below(round_versions.len() as u64)).unwrap_or(0)];
        let found = db.get_at(&key(rng.below(keys)), at).map_err(|error| context.fail(error))?;
        Ok(u64::from(found.is_some()))
    })
}

fn range(context: &Context, db: &Db, keys: u64, queries: u64, rng: &mut Rng) -> Result<Row, Fail> {
    timed("range 100", queries, |_| {
        let start = key(rng.below(keys));
        let mut count: u64 = 0;
        for item in db.range(start.as_slice()..).map_err(|error| context.fail(error))? {
            item.map_err(|error| context.fail(error))?;
            count += 1;
            if count == RANGE_KEYS as u64 {
                break;
            }
        }
        Ok(count)
    })
}

fn history(
    context: &Context,
    db: &Db,
    keys: u64,
    queries: u64,
    rng: &mut Rng,
) -> Result<Row, Fail> {
    timed("history", queries, |_| {
        let mut count: u64 = 0;
        for item in db.history(&key(rng.below(keys))).map_err(|error| context.fail(error))? {
            item.map_err(|error| context.fail(error))?;
            count += 1;
        }
        Ok(count)
    })
}

/// `changes` over `CHANGES_KEYS` consecutive keys during one round of the fill.
fn changes(
    context: &Context,
    db: &Db,
    keys: u64,
    round_versions: &[Version],
    queries: u64,
    rng: &mut Rng,
) -> Result<Row, Fail> {
    timed("changes", queries, |_| {
        let first = rng.below(keys.saturating_sub(CHANGES_KEYS).max(1));
        let (start, end) = (key(first), key(first + CHANGES_KEYS));
        let round = usize::try_from(rng.below(round_versions.len() as u64)).unwrap_or(0);
        let from = match round {
            0 => Version::ZERO,
            _ => Version::new(round_versions[round - 1].get() + 1),
        };
        let window = from..=round_versions[round];
        let mut count: u64 = 0;
        let box_query = db.changes(start.as_slice()..end.as_slice(), window);
        for item in box_query.map_err(|error| context.fail(error))? {
            item.map_err(|error| context.fail(error))?;
            count += 1;
        }
        Ok(count)
    })
}

/// Everything the results table shows.
struct Report<'a> {
    args: &'a BenchArgs,
    rows: &'a [Row],
    flush_elapsed: Duration,
    total: Duration,
    stats: zverse::Stats,
    path: String,
}

impl Report<'_> {
    fn print_table(&self) -> Result<(), Fail> {
        let mut out = stdout();
        let args = self.args;
        writeln!(
            out,
            "zverse bench: {} keys x {} versions, {}-byte values, durability {}, io {}, \
             load average {}",
            args.keys,
            args.versions,
            args.value_bytes,
            if args.sync { "Sync" } else { "None" },
            self.stats.io_backend,
            load_average()
        )?;
        writeln!(
            out,
            "\n{:<12} {:>10} {:>11} {:>12} {:>11} {:>11}",
            "operation", "ops", "ops/s", "items/op", "p50", "p99"
        )?;
        for row in self.rows {
            #[allow(clippy::cast_precision_loss, reason = "an average printed with 1 decimal")]
            let items_per_op = row.items as f64 / row.ops.max(1) as f64;
            writeln!(
                out,
                "{:<12} {:>10} {:>11.0} {:>12.1} {:>11} {:>11}",
                row.name,
                row.ops,
                row.ops_per_sec(),
                items_per_op,
                latency(row.percentile_ns(50)),
                latency(row.percentile_ns(99))
            )?;
        }
        writeln!(
            out,
            "\nflush after fill {:.2} s; {} segments, {} on disk, space amplification {:.2}; \
             total {:.1} s; database left in {}",
            self.flush_elapsed.as_secs_f64(),
            self.stats.segment_count,
            bytes(self.stats.segment_bytes + self.stats.log_bytes),
            self.stats.space_amplification,
            self.total.as_secs_f64(),
            self.path
        )?;
        out.flush()?;
        Ok(())
    }

    fn print_json(&self) -> Result<(), Fail> {
        let rows: Vec<_> = self
            .rows
            .iter()
            .map(|row| {
                json!({
                    "operation": row.name,
                    "ops": row.ops,
                    "items": row.items,
                    "seconds": row.elapsed.as_secs_f64(),
                    "ops_per_sec": row.ops_per_sec(),
                    "p50_ns": row.percentile_ns(50),
                    "p99_ns": row.percentile_ns(99),
                })
            })
            .collect();
        let args = self.args;
        let object = json!({
            "keys": args.keys,
            "versions": args.versions,
            "value_bytes": args.value_bytes,
            "durability": if args.sync { "Sync" } else { "None" },
            "io_backend": self.stats.io_backend,
            "load_average": load_average(),
            "flush_seconds": self.flush_elapsed.as_secs_f64(),
            "total_seconds": self.total.as_secs_f64(),
            "results": rows,
        });
        let mut out = stdout();
        writeln!(out, "{object}")?;
        out.flush()?;
        Ok(())
    }
}

/// A latency for a human: ns, µs or ms.
#[allow(clippy::cast_precision_loss, reason = "a latency printed with 1 decimal")]
fn latency(nanos: u64) -> String {
    match nanos {
        0..1_000 => format!("{nanos} ns"),
        1_000..1_000_000 => format!("{:.1} µs", nanos as f64 / 1e3),
        _ => format!("{:.1} ms", nanos as f64 / 1e6),
    }
}

/// The 1, 5 and 15 minute load averages, from /proc/loadavg where it exists.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "unknown".to_owned(),
        |text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}
