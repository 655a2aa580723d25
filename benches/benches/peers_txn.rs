//! Transactions side by side (issue 14's goal rows): read-modify-write transactions on ZVerse,
//! RocksDB's `OptimisticTransactionDB`, fjall's `OptimisticTxDatabase`, SurrealKV and redb, in
//! one run on the same machine, each retried until it commits.
//!
//! - `counter`: read an 8-byte counter, write it plus one; the counter uniform among 1 (every
//!   thread on one hot key), 1,000 or 10,000, or Zipfian (YCSB's scrambled, 0.99) among 1,000 or
//!   10,000.
//! - `transfer`: read two distinct accounts among 1,000 or 10,000 (uniform or Zipfian), move one
//!   unit, write both.
//!
//! At 1, 2, 4 and 8 threads, [`OPS`] committed operations per cell (split across the threads,
//! at most 10 s a cell), median of 3 repetitions with the engines in turns, no sync on commit for any engine (ZVerse `Durability::None`, RocksDB `sync = false`, fjall's
//! default buffer, SurrealKV `Eventual`, redb `Durability::None`). Conflicts: ZVerse at
//! `Isolation::Serializable`; RocksDB reads with `get_for_update` (write-write and read-write on
//! the keys read); fjall and SurrealKV their optimistic transactions; redb has one writer at a
//! time, so it never conflicts and its threads wait instead.
//!
//! Run: `benches/run-peers.sh` runs it after the peers (`--quick` a smoke run), or alone:
//! `ROCKSDB_LIB_DIR=/usr/lib/x86_64-linux-gnu cargo bench -p zverse-benches --features peers
//! --bench peers_txn -- [--quick] [--reps N] [--engines a,b] [--write-readme]`
//! (`ZVERSE_TXN_OPS` sets the operations per cell). It writes
//! `benches/results/transactions-peers.md` (`-quick.md` with `--quick`) and, with
//! `--write-readme`, the README's `peers-txn` section.
#![allow(missing_docs, reason = "a bench binary, not an API")]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fjall::Readable as _;
use redb::ReadableTable as _;
use zverse_benches::zipfian::{Zipfian, scramble};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const OPS: u64 = 20_000;
const THREAD_COUNTS: [u64; 4] = [1, 2, 4, 8];
const START_BALANCE: u64 = 1_000_000;
const SEED: u64 = 0x7A5;

/// One engine's transactions: one attempt at adding `deltas[i]` to the u64 under `keys[i]`.
trait TxEngine: Sync {
    /// `Ok(false)`: the attempt lost a conflict and wrote nothing.
    fn try_add(&self, keys: &[&[u8]], deltas: &[i64]) -> Res<bool>;
    /// Writes the opening balances, outside the timing.
    fn load(&self, keys: &[Vec<u8>]) -> Res<()>;
}

fn apply(old: Option<impl AsRef<[u8]>>, delta: i64) -> Res<[u8; 8]> {
    let old = old.ok_or("every key is written at open")?;
    let old = u64::from_le_bytes(old.as_ref().try_into()?);
    Ok(old.checked_add_signed(delta).ok_or("balance overflow")?.to_le_bytes())
}

struct ZverseTx(zverse::Db);

impl TxEngine for ZverseTx {
    fn try_add(&self, keys: &[&[u8]], deltas: &[i64]) -> Res<bool> {
        let mut tx = self.0.transaction_with(zverse::Isolation::Serializable);
        for (key, delta) in keys.iter().zip(deltas) {
            let new = apply(tx.get(key, None)?, *delta)?;
            tx.set(key, &new)?;
        }
        match tx.commit() {
            Ok(_) => Ok(true),
            Err(zverse::Error::Conflict(_)) => Ok(false),
            Err(other) => Err(other.into()),
        }
    }

    fn load(&self, keys: &[Vec<u8>]) -> Res<()> {
        let mut batch = self.0.batch();
        for key in keys {
            batch.put(key, &START_BALANCE.to_le_bytes());
        }
        batch.commit()?;
        Ok(())
    }
}

struct RocksTx(rocksdb::OptimisticTransactionDB);

impl TxEngine for RocksTx {
    fn try_add(&self, keys: &[&[u8]], deltas: &[i64]) -> Res<bool> {
        let tx = self.0.transaction();
        for (key, delta) in keys.iter().zip(deltas) {
            let new = apply(tx.get_for_update(key, true)?, *delta)?;
            tx.put(key, new)?;
        }
        match tx.commit() {
            Ok(()) => Ok(true),
            Err(error) if is_rocks_conflict(&error) => Ok(false),
            Err(other) => Err(other.into()),
        }
    }

    fn load(&self, keys: &[Vec<u8>]) -> Res<()> {
        let tx = self.0.transaction();
        for key in keys {
            tx.put(key, START_BALANCE.to_le_bytes())?;
        }
        Ok(tx.commit()?)
    }
}

fn is_rocks_conflict(error: &rocksdb::Error) -> bool {
    matches!(error.kind(), rocksdb::ErrorKind::Busy | rocksdb::ErrorKind::TryAgain)
}

struct FjallTx(fjall::OptimisticTxDatabase, fjall::OptimisticTxKeyspace);

impl TxEngine for FjallTx {
    fn try_add(&self, keys: &[&[u8]], deltas: &[i64]) -> Res<bool> {
        let mut tx = self.0.write_tx()?;
        for (key, delta) in keys.iter().zip(deltas) {
            let new = apply(tx.get(&self.1, key)?, *delta)?;
            tx.insert(&self.1, *key, new);
        }
        Ok(tx.commit()?.is_ok())
    }

    fn load(&self, keys: &[Vec<u8>]) -> Res<()> {
        let mut tx = self.0.write_tx()?;
        for key in keys {
            tx.insert(&self.1, key.as_slice(), START_BALANCE.to_le_bytes());
        }
        tx.commit()?.map_err(|_| "a conflict while loading alone")?;
        Ok(())
    }
}

struct SurrealTx(surrealkv::Tree, tokio::runtime::Runtime);

impl TxEngine for SurrealTx {
    fn try_add(&self, keys: &[&[u8]], deltas: &[i64]) -> Res<bool> {
        let mut tx = self.0.begin()?;
        tx.set_durability(surrealkv::Durability::Eventual);
        for (key, delta) in keys.iter().zip(deltas) {
            let new = apply(tx.get(*key)?, *delta)?;
            tx.set(*key, new.as_slice())?;
        }
        match self.1.block_on(tx.commit()) {
            Ok(()) => Ok(true),
            Err(surrealkv::Error::TransactionWriteConflict) => Ok(false),
            Err(other) => Err(other.into()),
        }
    }

    fn load(&self, keys: &[Vec<u8>]) -> Res<()> {
        let mut tx = self.0.begin()?;
        for key in keys {
            tx.set(key.as_slice(), START_BALANCE.to_le_bytes().as_slice())?;
        }
        Ok(self.1.block_on(tx.commit())?)
    }
}

struct RedbTx(redb::Database);

const REDB_TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("bench");

impl TxEngine for RedbTx {
    fn try_add(&self, keys: &[&[u8]], deltas: &[i64]) -> Res<bool> {
        let mut tx = self.0.begin_write()?;
        tx.set_durability(redb::Durability::None)?;
        {
            let mut table = tx.open_table(REDB_TABLE)?;
            for (key, delta) in keys.iter().zip(deltas) {
                let new = apply(table.get(*key)?.map(|v| v.value().to_vec()), *delta)?;
                table.insert(*key, new.as_slice())?;
            }
        }
        tx.commit()?;
        Ok(true)
    }

    fn load(&self, keys: &[Vec<u8>]) -> Res<()> {
        let tx = self.0.begin_write()?;
        {
            let mut table = tx.open_table(REDB_TABLE)?;
            for key in keys {
                table.insert(key.as_slice(), START_BALANCE.to_le_bytes().as_slice())?;
            }
        }
        Ok(tx.commit()?)
    }
}

fn key(index: u64) -> Vec<u8> {
    format!("key/{index:08}").into_bytes()
}

/// Opens `name` in `dir` with `key_count` keys at [`START_BALANCE`].
fn open(name: &str, dir: &Path, key_count: u64) -> Res<Box<dyn TxEngine>> {
    let engine: Box<dyn TxEngine> = match name {
        "ZVerse" => {
            let options = zverse::Options::default().durability(zverse::Durability::None);
            Box::new(ZverseTx(zverse::Db::open(dir, options)?))
        }
        "RocksDB" => Box::new(RocksTx(rocksdb::OptimisticTransactionDB::open_default(dir)?)),
        "fjall" => {
            let db = fjall::OptimisticTxDatabase::builder(dir).open()?;
            let keyspace = db.keyspace("bench", fjall::KeyspaceCreateOptions::default)?;
            Box::new(FjallTx(db, keyspace))
        }
        "SurrealKV" => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let tree = {
                let _context = runtime.enter();
                surrealkv::TreeBuilder::new().with_path(dir.to_path_buf()).build()?
            };
            Box::new(SurrealTx(tree, runtime))
        }
        "redb" => {
            let db = redb::Database::create(dir.join("bench.redb"))?;
            let tx = db.begin_write()?;
            tx.open_table(REDB_TABLE)?;
            tx.commit()?;
            Box::new(RedbTx(db))
        }
        other => return Err(format!("no engine {other}").into()),
    };
    engine.load(&(0..key_count).map(key).collect::<Vec<_>>())?;
    Ok(engine)
}

/// What one transaction does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// Read one counter, write it plus one.
    Counter,
    /// Read two distinct accounts, move one unit from the first to the second.
    Transfer,
}

/// How a transaction picks its keys among `key_count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Choice {
    Uniform,
    /// YCSB's scrambled Zipfian, constant 0.99: the popular keys spread over the key space.
    Zipfian,
}

/// One row of the table: an operation over `key_count` keys, chosen as `choice` says.
#[derive(Clone, Copy, Debug)]
struct Workload {
    op: Op,
    key_count: u64,
    choice: Choice,
}

const fn workload(op: Op, key_count: u64, choice: Choice) -> Workload {
    Workload { op, key_count, choice }
}

/// The rows, in table order: uniform beside Zipfian at 1,000 and 10,000 keys.
const WORKLOADS: [Workload; 9] = [
    workload(Op::Counter, 1, Choice::Uniform),
    workload(Op::Counter, 1_000, Choice::Uniform),
    workload(Op::Counter, 1_000, Choice::Zipfian),
    workload(Op::Counter, 10_000, Choice::Uniform),
    workload(Op::Counter, 10_000, Choice::Zipfian),
    workload(Op::Transfer, 1_000, Choice::Uniform),
    workload(Op::Transfer, 1_000, Choice::Zipfian),
    workload(Op::Transfer, 10_000, Choice::Uniform),
    workload(Op::Transfer, 10_000, Choice::Zipfian),
];

impl Workload {
    fn name(&self) -> String {
        let op = match self.op {
            Op::Counter => "counter",
            Op::Transfer => "transfer",
        };
        let choice = match self.choice {
            Choice::Uniform => "uniform",
            Choice::Zipfian => "Zipfian 0.99",
        };
        format!("{op} | {} | {choice}", self.key_count)
    }
}

/// Draws key indexes for one workload.
struct Chooser {
    key_count: u64,
    zipfian: Option<Zipfian>,
}

impl Chooser {
    fn new(workload: Workload) -> Res<Chooser> {
        let zipfian = match workload.choice {
            Choice::Uniform => None,
            Choice::Zipfian => Some(Zipfian::new(usize::try_from(workload.key_count)?)),
        };
        Ok(Chooser { key_count: workload.key_count, zipfian })
    }

    fn next(&self, rng: &mut fastrand::Rng) -> u64 {
        match &self.zipfian {
            None => rng.u64(..self.key_count),
            Some(zipfian) => {
                let count = usize::try_from(self.key_count).unwrap_or(usize::MAX);
                scramble(zipfian.next(rng), count) as u64
            }
        }
    }

    /// Two distinct keys: the second drawn again while it equals the first (a bounded number of
    /// times; then the first's neighbour).
    fn next_pair(&self, rng: &mut fastrand::Rng) -> (u64, u64) {
        const DRAWS_MAX: usize = 64;
        let from = self.next(rng);
        let to = (0..DRAWS_MAX)
            .map(|_| self.next(rng))
            .find(|&to| to != from)
            .unwrap_or((from + 1) % self.key_count);
        (from, to)
    }
}

/// What one cell measured: committed operations, conflicts retried, and the time taken.
#[derive(Clone, Copy, Debug, Default)]
struct CellRun {
    committed: u64,
    conflicts: u64,
    elapsed: Duration,
    /// The time limit stopped the cell before it committed all its operations.
    cut_short: bool,
}

impl CellRun {
    #[allow(clippy::cast_precision_loss, reason = "a rate needs no more precision")]
    fn rate(&self) -> f64 {
        self.committed as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// How much work a cell does, and how many times each runs.
#[derive(Clone, Copy, Debug)]
struct Scale {
    name: &'static str,
    /// Committed operations per cell (split across the threads), unless the time runs out.
    ops: u64,
    /// A cell stops when this has passed (a pathological engine cannot hold up the run).
    cell_time_max: Duration,
    repetitions: usize,
}

const FULL: Scale =
    Scale { name: "full", ops: OPS, cell_time_max: Duration::from_secs(10), repetitions: 3 };
const QUICK: Scale =
    Scale { name: "quick", ops: 1_000, cell_time_max: Duration::from_secs(2), repetitions: 1 };

/// One cell: `threads` threads committing `scale.ops` operations between them, or fewer if
/// `scale.cell_time_max` passes first.
fn cell(
    engine: &dyn TxEngine,
    chooser: &Chooser,
    op: Op,
    threads: u64,
    scale: &Scale,
) -> Res<CellRun> {
    let conflicts = AtomicU64::new(0);
    let committed = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| -> Res<()> {
        let workers: Vec<_> = (0..threads)
            .map(|thread| {
                let (conflicts, committed) = (&conflicts, &committed);
                scope.spawn(move || -> Res<()> {
                    let mut rng = fastrand::Rng::with_seed(SEED ^ thread);
                    for _ in 0..scale.ops / threads {
                        if started.elapsed() > scale.cell_time_max {
                            break;
                        }
                        let lost = one_op(engine, chooser, op, &mut rng)?;
                        conflicts.fetch_add(lost, Ordering::Relaxed);
                        committed.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker.join().map_err(|_| "a worker panicked")??;
        }
        Ok(())
    })?;
    let elapsed = started.elapsed().max(Duration::from_micros(1));
    let committed = committed.into_inner();
    let cut_short = committed < scale.ops / threads * threads;
    Ok(CellRun { committed, conflicts: conflicts.into_inner(), elapsed, cut_short })
}

/// One committed operation; returns the conflicts it lost first.
fn one_op(engine: &dyn TxEngine, chooser: &Chooser, op: Op, rng: &mut fastrand::Rng) -> Res<u64> {
    let (keys, deltas) = match op {
        Op::Counter => (vec![key(chooser.next(rng))], vec![1]),
        Op::Transfer => {
            let (from, to) = chooser.next_pair(rng);
            (vec![key(from), key(to)], vec![-1, 1])
        }
    };
    let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    let mut lost = 0;
    while !engine.try_add(&keys, &deltas)? {
        lost += 1;
    }
    Ok(lost)
}

const ENGINES: [&str; 5] = ["ZVerse", "RocksDB", "fjall", "SurrealKV", "redb"];

const USAGE: &str = "peers_txn [--quick] [--reps N] [--engines zverse,rocksdb,...] \
    [--workloads WORD,...] (rows whose name, e.g. `counter | 1 | uniform`, contains a word) \
    [--threads 1,2,4,8] [--write-readme]; ZVERSE_TXN_OPS=N sets the operations per cell";

/// What the command line asked for.
struct Args {
    scale: Scale,
    engines: Vec<&'static str>,
    /// Indexes into [`WORKLOADS`] to run (`--workloads`: names containing one of the words).
    workloads: Vec<usize>,
    /// Thread counts to run (`--threads`).
    thread_counts: Vec<u64>,
    write_readme: bool,
}

fn parse_args() -> Res<Args> {
    let mut scale = FULL;
    let mut engines = ENGINES.to_vec();
    let mut write_readme = false;
    let mut reps = None;
    let mut workloads: Vec<usize> = (0..WORKLOADS.len()).collect();
    let mut thread_counts = THREAD_COUNTS.to_vec();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => scale = QUICK,
            "--reps" => reps = Some(args.next().ok_or("--reps needs a count")?.parse()?),
            "--engines" => {
                let list = args.next().ok_or("--engines needs a list")?.to_lowercase();
                let wanted: Vec<&str> = list.split(',').collect();
                engines.retain(|name| wanted.contains(&name.to_lowercase().as_str()));
            }
            "--workloads" => {
                let list = args.next().ok_or("--workloads needs a list")?;
                let words: Vec<&str> = list.split(',').collect();
                workloads.retain(|&index| {
                    let name = WORKLOADS[index].name();
                    words.iter().any(|word| name.contains(word))
                });
            }
            "--threads" => {
                let list = args.next().ok_or("--threads needs a list")?;
                thread_counts = list.split(',').map(str::parse).collect::<Result<_, _>>()?;
            }
            "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--write-readme" => write_readme = true,
            "--bench" => {}
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    if let Ok(ops) = std::env::var("ZVERSE_TXN_OPS") {
        scale.ops = ops.parse()?;
    }
    if let Some(reps) = reps {
        scale.repetitions = reps;
    }
    Ok(Args { scale, engines, workloads, thread_counts, write_readme })
}

/// Every run of every cell: (workload index, engine, threads) -> one run per repetition.
type Runs = BTreeMap<(usize, &'static str, u64), Vec<CellRun>>;

fn main() -> Res<()> {
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("peers_txn: run with `cargo bench` (skipped under `cargo test`)");
        return Ok(());
    }
    let args = parse_args()?;
    let load_start = load_average();
    let started = Instant::now();
    let mut runs = Runs::new();
    for repetition in 0..args.scale.repetitions {
        for &index in &args.workloads {
            let workload = &WORKLOADS[index];
            let chooser = Chooser::new(*workload)?;
            // Each repetition starts one engine later, so none always runs first.
            for offset in 0..args.engines.len() {
                let name = args.engines[(repetition + offset) % args.engines.len()];
                eprintln!(
                    "peers_txn: repetition {}/{}, {}, {name} ({:.0} s in)",
                    repetition + 1,
                    args.scale.repetitions,
                    workload.name(),
                    started.elapsed().as_secs_f64()
                );
                for &threads in &args.thread_counts {
                    let dir = tempfile::tempdir()?;
                    let engine = open(name, dir.path(), workload.key_count)?;
                    let run = cell(engine.as_ref(), &chooser, workload.op, threads, &args.scale)?;
                    runs.entry((index, name, threads)).or_default().push(run);
                }
            }
        }
    }
    let partial = args.workloads.len() < WORKLOADS.len() || args.thread_counts != THREAD_COUNTS;
    let report = Report {
        partial,
        scale: args.scale,
        engines: &args.engines,
        runs: &runs,
        load_start,
        load_end: load_average(),
        elapsed: started.elapsed(),
    };
    report.write(args.write_readme)
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

struct Report<'a> {
    /// `--workloads` or `--threads` left cells out: print the table, write no file.
    partial: bool,
    scale: Scale,
    engines: &'a [&'static str],
    runs: &'a Runs,
    load_start: String,
    load_end: String,
    elapsed: Duration,
}

const README_BEGIN: &str =
    "<!-- peers-txn:begin (generated by benches/run-peers.sh; do not edit) -->";
const README_END: &str = "<!-- peers-txn:end -->";

impl Report<'_> {
    /// One cell's text: the median rate of the repetitions, in thousands of commits per
    /// second, and the conflicts per 1,000 commits over all repetitions.
    fn cell_text(runs: &[CellRun]) -> String {
        let mut rates: Vec<f64> = runs.iter().map(CellRun::rate).collect();
        rates.sort_by(f64::total_cmp);
        let Some(median) = rates.get(rates.len() / 2) else { return "–".to_owned() };
        let committed: u64 = runs.iter().map(|run| run.committed).sum();
        let conflicts: u64 = runs.iter().map(|run| run.conflicts).sum();
        let per_thousand = conflicts.saturating_mul(1_000) / committed.max(1);
        let mark = if runs.iter().any(|run| run.cut_short) { "*" } else { "" };
        format!("{:.1}k ({per_thousand}){mark}", median / 1_000.0)
    }

    /// The table: one row per workload and engine.
    fn table(&self) -> String {
        let mut md = String::from(
            "| workload | keys | key choice | engine | 1 thread | 2 threads | 4 threads | 8 threads |\n\
             |---|---|---|---|---|---|---|---|\n",
        );
        for (index, workload) in WORKLOADS.iter().enumerate() {
            for &name in self.engines {
                if !self.runs.keys().any(|&(i, n, _)| i == index && n == name) {
                    continue; // a row `--workloads` left out
                }
                let cells: Vec<String> = THREAD_COUNTS
                    .iter()
                    .map(|&threads| {
                        self.runs
                            .get(&(index, name, threads))
                            .map_or_else(|| "–".to_owned(), |runs| Self::cell_text(runs))
                    })
                    .collect();
                let _ = writeln!(md, "| {} | {name} | {} |", workload.name(), cells.join(" | "));
            }
        }
        md
    }

    fn markdown(&self) -> String {
        let command = std::env::var("ZVERSE_PEERS_TXN_COMMAND")
            .unwrap_or_else(|_| std::env::args().collect::<Vec<_>>().join(" "));
        let mut md = String::new();
        let _ = writeln!(
            md,
            "Generated by `{command}` ({} scale, {:.1} min, {} CPUs). Load average (1/5/15 min) \
             {} at the start, {} at the end.\n",
            self.scale.name,
            self.elapsed.as_secs_f64() / 60.0,
            std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
            self.load_start,
            self.load_end,
        );
        let _ = writeln!(
            md,
            "Cells: thousands of committed operations per second, median of {} repetition(s) \
             (conflicts retried per 1,000 commits, over all repetitions). Each cell commits {} \
             operations split across its threads, or stops after {} s (marked `*`). Counter: \
             read one 8-byte counter, write it plus one. Transfer: read two distinct accounts, \
             move one unit. Key choice: uniform, or YCSB's scrambled Zipfian with constant 0.99. \
             No sync on commit for any engine: ZVerse `Durability::None`, \
             `Isolation::Serializable`; RocksDB `OptimisticTransactionDB::open_default`, \
             `get_for_update`, `sync = false`; fjall `OptimisticTxDatabase` defaults; \
             SurrealKV `TreeBuilder` defaults, `Durability::Eventual`; redb one writer at a \
             time, `Durability::None` (never conflicts: its threads wait instead).\n",
            self.scale.repetitions,
            self.scale.ops,
            self.scale.cell_time_max.as_secs(),
        );
        md.push_str(&self.table());
        md
    }

    fn write(&self, write_readme: bool) -> Res<()> {
        let md = self.markdown();
        println!("{md}");
        if self.partial {
            eprintln!("peers_txn: a partial run (--workloads or --threads): no file written");
            return Ok(());
        }
        let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
        let stem = if self.scale.name == "full" {
            "transactions-peers"
        } else {
            "transactions-peers-quick"
        };
        let path = results.join(format!("{stem}.md"));
        std::fs::write(&path, format!("# Transactions side by side\n\n{md}"))?;
        eprintln!("peers_txn: wrote {}", path.display());
        if write_readme {
            let readme_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
            let readme = std::fs::read_to_string(&readme_path)?;
            let begin = readme.find(README_BEGIN).ok_or("README.md has no peers-txn:begin")?;
            let end = readme.find(README_END).ok_or("README.md has no peers-txn:end")?;
            let updated = format!("{}{README_BEGIN}\n{md}{}", &readme[..begin], &readme[end..]);
            std::fs::write(&readme_path, updated)?;
            eprintln!("peers_txn: rewrote the README's peers-txn section");
        }
        Ok(())
    }
}
