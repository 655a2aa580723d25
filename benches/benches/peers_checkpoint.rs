//! Checkpoints side by side (issue 17's comparison): `Db::checkpoint` beside RocksDB's
//! `Checkpoint::create_checkpoint` on the same data. Each engine, in turn and alone on the disk
//! (the first one's files are deleted before the second fills), is filled with the same keys and
//! values in batches of 1,000 without sync, then checkpointed twice:
//!
//! - `after fill`: right after the last batch returned, with the memtable full and background
//!   work running, as a backup taken while an application writes;
//! - `after flush + compaction` (unless `--no-compact`): after `flush()` and a full compaction,
//!   the engine idle.
//!
//! For each checkpoint it prints the call's wall time, the files in the copy that are hard links
//! (link count 2 or more) and those written or copied (link count 1) with their bytes, the
//! linked files that did not exist before the call (a memtable flush the checkpoint made) with
//! their bytes, and what the process sent to storage during the call (`/proc/self/io`
//! `write_bytes`, which includes the engine's background work). It then opens the copy and reads
//! the first and the last key written.
//!
//! Run: `ROCKSDB_LIB_DIR=/usr/lib/x86_64-linux-gnu cargo bench -p zverse-benches --features
//! peers --bench peers_checkpoint -- [--mib N] [--engines zverse,rocksdb] [--dir DIR]
//! [--no-compact]` (`--mib` the key and value bytes to fill, default 1,024; `--dir` where the
//! databases go, default `ZVERSE_PEERS_DIR` or the temporary directory).
#![allow(missing_docs, reason = "a bench binary, not an API")]

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const KEY_LEN: usize = 16;
const VALUE_LEN: usize = 1000;
/// Distinct incompressible values, cycled through by write index (a prime count).
const VALUE_POOL_LEN: usize = 1009;
const BATCH_LEN: usize = 1000;
const SEED_KEYS: u64 = 0xC4EC_0001;
const SEED_VALUES: u64 = 0xC4EC_0002;

/// The engines this bench knows, in run order.
const ENGINES: [&str; 2] = ["zverse", "rocksdb"];

/// One engine under test: fill, settle, checkpoint, reopen a copy.
trait Subject {
    fn put_batch(&self, pairs: &[([u8; KEY_LEN], &[u8])]) -> Res<()>;
    /// Flushes the memtable and compacts everything; returns what was called.
    fn flush_and_compact(&self) -> Res<&'static str>;
    /// The engine's checkpoint into the new directory `dest`.
    fn checkpoint(&self, dest: &Path) -> Res<()>;
    /// Opens the copy at `dest` and returns how many of `keys` it holds.
    fn keys_in_copy(&self, dest: &Path, keys: &[[u8; KEY_LEN]]) -> Res<usize>;
}

struct Zverse(zverse::Db);

impl Subject for Zverse {
    fn put_batch(&self, pairs: &[([u8; KEY_LEN], &[u8])]) -> Res<()> {
        let mut batch = self.0.batch();
        for (key, value) in pairs {
            batch.put(key, value);
        }
        batch.commit()?;
        Ok(())
    }

    fn flush_and_compact(&self) -> Res<&'static str> {
        self.0.flush()?;
        self.0.compact()?;
        Ok("flush() + compact()")
    }

    fn checkpoint(&self, dest: &Path) -> Res<()> {
        self.0.checkpoint(dest)?;
        Ok(())
    }

    fn keys_in_copy(&self, dest: &Path, keys: &[[u8; KEY_LEN]]) -> Res<usize> {
        let copy = zverse::Db::open(dest, zverse::Options::default())?;
        let mut found = 0;
        for key in keys {
            found += usize::from(copy.get(key)?.is_some());
        }
        copy.close()?;
        Ok(found)
    }
}

struct Rocks(rocksdb::DB);

impl Subject for Rocks {
    fn put_batch(&self, pairs: &[([u8; KEY_LEN], &[u8])]) -> Res<()> {
        let mut batch = rocksdb::WriteBatch::default();
        for (key, value) in pairs {
            batch.put(key, value);
        }
        let mut options = rocksdb::WriteOptions::default();
        options.set_sync(false);
        self.0.write_opt(batch, &options)?;
        Ok(())
    }

    fn flush_and_compact(&self) -> Res<&'static str> {
        self.0.flush()?;
        self.0.compact_range::<&[u8], &[u8]>(None, None);
        Ok("flush() + compact_range(all)")
    }

    fn checkpoint(&self, dest: &Path) -> Res<()> {
        rocksdb::checkpoint::Checkpoint::new(&self.0)?.create_checkpoint(dest)?;
        Ok(())
    }

    fn keys_in_copy(&self, dest: &Path, keys: &[[u8; KEY_LEN]]) -> Res<usize> {
        let copy = rocksdb::DB::open(&rocks_options(), dest)?;
        let mut found = 0;
        for key in keys {
            found += usize::from(copy.get_pinned(key)?.is_some());
        }
        Ok(found)
    }
}

/// The options of the peers harness's RocksDB, less its block cache and filter (this bench
/// reads almost nothing).
fn rocks_options() -> rocksdb::Options {
    let mut options = rocksdb::Options::default();
    options.create_if_missing(true);
    let parallelism = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    options.increase_parallelism(i32::try_from(parallelism).unwrap_or(2));
    options.set_level_compaction_dynamic_level_bytes(true);
    options.set_bytes_per_sync(1 << 20);
    options
}

fn open(name: &str, dir: &Path) -> Res<Box<dyn Subject>> {
    match name {
        "zverse" => {
            let options = zverse::Options::default().durability(zverse::Durability::None);
            Ok(Box::new(Zverse(zverse::Db::open(dir, options)?)))
        }
        "rocksdb" => Ok(Box::new(Rocks(rocksdb::DB::open(&rocks_options(), dir)?))),
        other => Err(format!("no engine {other:?} (known: {ENGINES:?})").into()),
    }
}

/// The keys, in write order, and the value pool.
struct Data {
    keys: Vec<[u8; KEY_LEN]>,
    values: Vec<[u8; VALUE_LEN]>,
}

impl Data {
    fn new(key_count: usize) -> Data {
        let mut rng = fastrand::Rng::with_seed(SEED_KEYS);
        let keys = (0..key_count).map(|_| rng.u128(..).to_be_bytes()).collect();
        let mut rng = fastrand::Rng::with_seed(SEED_VALUES);
        let values = (0..VALUE_POOL_LEN)
            .map(|_| {
                let mut value = [0; VALUE_LEN];
                rng.fill(&mut value);
                value
            })
            .collect();
        Data { keys, values }
    }

    fn value(&self, index: usize) -> &[u8] {
        &self.values[index % VALUE_POOL_LEN]
    }
}

/// Fills `subject` with every key, in batches; returns the time taken.
fn fill(subject: &dyn Subject, data: &Data) -> Res<Duration> {
    let start = Instant::now();
    for (chunk_index, chunk) in data.keys.chunks(BATCH_LEN).enumerate() {
        let first = chunk_index * BATCH_LEN;
        let pairs: Vec<([u8; KEY_LEN], &[u8])> = chunk
            .iter()
            .enumerate()
            .map(|(offset, key)| (*key, data.value(first + offset)))
            .collect();
        subject.put_batch(&pairs)?;
    }
    Ok(start.elapsed())
}

/// What one checkpoint cost.
#[derive(Debug, Default)]
struct Measured {
    elapsed: Duration,
    files_linked: usize,
    files_written: usize,
    bytes_written_files: u64,
    /// Linked files whose names were not in the source before the call (a flush it made).
    files_new_linked: usize,
    bytes_new_linked: u64,
    /// `/proc/self/io` `write_bytes` during the call (background work included).
    process_write_bytes: u64,
}

/// The file names directly in `dir`.
fn names(dir: &Path) -> Res<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(dir)? {
        names.insert(entry?.file_name().to_string_lossy().into_owned());
    }
    Ok(names)
}

/// Bytes the process has sent to storage so far (`write_bytes` less `cancelled_write_bytes`).
fn process_write_bytes() -> Res<u64> {
    let io = std::fs::read_to_string("/proc/self/io")?;
    let field = |name: &str| -> Res<u64> {
        let line =
            io.lines().find(|line| line.starts_with(name)).ok_or("no field in /proc/self/io")?;
        Ok(line[name.len()..].trim().parse()?)
    };
    Ok(field("write_bytes:")?.saturating_sub(field("cancelled_write_bytes:")?))
}

fn measure(subject: &dyn Subject, source: &Path, dest: &Path) -> Res<Measured> {
    let before = names(source)?;
    let written_before = process_write_bytes()?;
    let start = Instant::now();
    subject.checkpoint(dest)?;
    let mut measured = Measured {
        elapsed: start.elapsed(),
        process_write_bytes: process_write_bytes()?.saturating_sub(written_before),
        ..Measured::default()
    };
    for entry in std::fs::read_dir(dest)? {
        let entry = entry?;
        let metadata = entry.metadata()?;
        if metadata.nlink() >= 2 {
            measured.files_linked += 1;
            if !before.contains(entry.file_name().to_string_lossy().as_ref()) {
                measured.files_new_linked += 1;
                measured.bytes_new_linked += metadata.len();
            }
        } else {
            measured.files_written += 1;
            measured.bytes_written_files += metadata.len();
        }
    }
    Ok(measured)
}

/// Apparent bytes of the files directly in `dir`.
fn dir_bytes(dir: &Path) -> Res<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        total += entry?.metadata()?.len();
    }
    Ok(total)
}

struct Args {
    mib: u64,
    engines: Vec<String>,
    base: PathBuf,
    compact: bool,
}

fn parse_args() -> Res<Args> {
    let mut args = Args {
        mib: 1024,
        engines: ENGINES.iter().map(|name| (*name).to_owned()).collect(),
        base: std::env::var_os("ZVERSE_PEERS_DIR").map_or_else(std::env::temp_dir, PathBuf::from),
        compact: true,
    };
    let mut words = std::env::args().skip(1);
    while let Some(arg) = words.next() {
        match arg.as_str() {
            "--mib" => args.mib = words.next().ok_or("--mib needs a size")?.parse()?,
            "--engines" => {
                let list = words.next().ok_or("--engines needs a list")?.to_lowercase();
                args.engines = list.split(',').map(str::to_owned).collect();
            }
            "--dir" => args.base = words.next().ok_or("--dir needs a directory")?.into(),
            "--no-compact" => args.compact = false,
            "--bench" => {}
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    Ok(args)
}

#[allow(clippy::cast_precision_loss, reason = "display only")]
fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

fn row(engine: &str, state: &str, m: &Measured) {
    println!(
        "| {engine} | {state} | {:.3} s | {} | {} ({} B) | {} ({:.1} MiB) | {:.1} MiB |",
        m.elapsed.as_secs_f64(),
        m.files_linked,
        m.files_written,
        m.bytes_written_files,
        m.files_new_linked,
        mib(m.bytes_new_linked),
        mib(m.process_write_bytes),
    );
}

/// Fills one engine in a fresh directory under `base`, checkpoints it and checks the copies;
/// deletes everything before returning.
fn run_engine(name: &str, args: &Args, data: &Data) -> Res<()> {
    let dir = tempfile::Builder::new().prefix("zverse-checkpoint-").tempdir_in(&args.base)?;
    let source = dir.path().join("db");
    let subject = open(name, &source)?;
    let fill_time = fill(subject.as_ref(), data)?;
    eprintln!(
        "peers_checkpoint: {name}: filled {} keys in {:.1} s, {:.0} MiB on disk",
        data.keys.len(),
        fill_time.as_secs_f64(),
        mib(dir_bytes(&source)?)
    );
    let probes = [data.keys[0], data.keys[data.keys.len() - 1]];
    let mut states = vec![("after fill", "nothing")];
    if args.compact {
        states.push(("after flush + compaction", ""));
    }
    for (index, (state, mut settle)) in states.into_iter().enumerate() {
        if index > 0 {
            settle = subject.flush_and_compact()?;
        }
        let dest = dir.path().join(format!("checkpoint-{index}"));
        let measured = measure(subject.as_ref(), &source, &dest)?;
        let found = subject.keys_in_copy(&dest, &probes)?;
        if found != probes.len() {
            return Err(format!("{name}: the copy {state} holds {found} of 2 probe keys").into());
        }
        eprintln!("peers_checkpoint: {name} {state} (settled by {settle}): {measured:?}");
        row(name, state, &measured);
    }
    drop(subject);
    dir.close()?;
    Ok(())
}

fn main() -> Res<()> {
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("peers_checkpoint: run with `cargo bench` (skipped under `cargo test`)");
        return Ok(());
    }
    let args = parse_args()?;
    let key_count = usize::try_from(args.mib << 20)? / (KEY_LEN + VALUE_LEN);
    let data = Data::new(key_count);
    println!(
        "{key_count} keys of {KEY_LEN} B, values of {VALUE_LEN} B ({} MiB of keys and values), \
         batches of {BATCH_LEN}, no sync; load average at the start: {}",
        args.mib,
        std::fs::read_to_string("/proc/loadavg")?.trim()
    );
    println!(
        "\n| engine | checkpoint taken | call time | files linked | files written or copied \
         (bytes) | linked files new since the call began (bytes) | process write_bytes during \
         the call |\n|---|---|---|---|---|---|---|"
    );
    for name in &args.engines {
        run_engine(name, &args, &data)?;
    }
    println!("\nload average at the end: {}", std::fs::read_to_string("/proc/loadavg")?.trim());
    Ok(())
}
