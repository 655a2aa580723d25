//! Transactions side by side (issue 14's goal rows): read-modify-write transactions on ZVerse,
//! RocksDB's `OptimisticTransactionDB`, fjall's `OptimisticTxDatabase`, SurrealKV and redb, in
//! one run on the same machine, each retried until it commits.
//!
//! - `counter`: read an 8-byte counter, write it plus one; the counter uniform among 1 (every
//!   thread on one hot key) or 1,000.
//! - `transfer`: read two distinct accounts among 1,000, move one unit, write both.
//!
//! At 1, 2, 4 and 8 threads, [`OPS`] committed operations per cell (split across the threads),
//! no sync on commit for any engine (ZVerse `Durability::None`, RocksDB `sync = false`, fjall's
//! default buffer, SurrealKV `Eventual`, redb `Durability::None`). Conflicts: ZVerse at
//! `Isolation::Serializable`; RocksDB reads with `get_for_update` (write-write and read-write on
//! the keys read); fjall and SurrealKV their optimistic transactions; redb has one writer at a
//! time, so it never conflicts and its threads wait instead.
//!
//! Run: `ROCKSDB_LIB_DIR=/usr/lib/x86_64-linux-gnu cargo bench -p zverse-benches --features
//! peers --bench peers_txn` (`ZVERSE_TXN_OPS` sets the operations per cell).
#![allow(missing_docs, reason = "a bench binary, not an API")]

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fjall::Readable as _;
use redb::ReadableTable as _;

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

/// One cell: `threads` threads committing [`OPS`] operations; returns the throughput in
/// operations per second and the conflicts per 1,000 commits.
fn cell(
    engine: &dyn TxEngine,
    workload: &str,
    key_count: u64,
    threads: u64,
    ops: u64,
) -> Res<(f64, u64)> {
    let conflicts = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| -> Res<()> {
        let workers: Vec<_> = (0..threads)
            .map(|thread| {
                let conflicts = &conflicts;
                scope.spawn(move || -> Res<()> {
                    let mut rng = fastrand::Rng::with_seed(SEED ^ thread);
                    for _ in 0..ops / threads {
                        let lost = one_op(engine, workload, key_count, &mut rng)?;
                        conflicts.fetch_add(lost, Ordering::Relaxed);
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
    let committed = ops / threads * threads;
    let throughput = f64::from(u32::try_from(committed)?) / elapsed.as_secs_f64();
    Ok((throughput, conflicts.into_inner() * 1_000 / committed.max(1)))
}

/// One committed operation; returns the conflicts it lost first.
fn one_op(
    engine: &dyn TxEngine,
    workload: &str,
    key_count: u64,
    rng: &mut fastrand::Rng,
) -> Res<u64> {
    let (keys, deltas) = if workload == "counter" {
        (vec![key(rng.u64(..key_count))], vec![1])
    } else {
        let from = rng.u64(..key_count);
        let to = (from + rng.u64(1..key_count)) % key_count;
        (vec![key(from), key(to)], vec![-1, 1])
    };
    let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    let mut lost = 0;
    while !engine.try_add(&keys, &deltas)? {
        lost += 1;
    }
    Ok(lost)
}

fn main() -> Res<()> {
    let ops = std::env::var("ZVERSE_TXN_OPS").map_or(Ok(OPS), |v| v.parse())?;
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("peers_txn: run with `cargo bench` (skipped under `cargo test`)");
        return Ok(());
    }
    let engines = ["ZVerse", "RocksDB", "fjall", "SurrealKV", "redb"];
    let workloads = [("counter", 1), ("counter", 1_000), ("transfer", 1_000)];
    println!("| workload | keys | engine | 1 thread | 2 threads | 4 threads | 8 threads |");
    println!("|---|---|---|---|---|---|---|");
    for (workload, key_count) in workloads {
        for name in engines {
            let mut cells = Vec::new();
            for threads in THREAD_COUNTS {
                let dir = tempfile::tempdir()?;
                let engine = open(name, dir.path(), key_count)?;
                let (throughput, aborts) =
                    cell(engine.as_ref(), workload, key_count, threads, ops)?;
                cells.push(format!("{:.1}k ({aborts})", throughput / 1_000.0));
            }
            println!("| {workload} | {key_count} | {name} | {} |", cells.join(" | "));
        }
    }
    Ok(())
}
