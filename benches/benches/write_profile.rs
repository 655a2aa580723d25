//! The peer comparison's write rows for ZVerse alone, one at a time, so that `perf record` sees
//! one workload and an A/B pair runs in seconds: the same keys and values as `benches/peers`
//! (its `data.rs` is compiled in), opened as the peer run opens ZVerse (`zverse_linux::open`,
//! default options, `Durability::None`).
//!
//! `cargo bench -p zverse-benches --bench write_profile -- WORKLOAD [REPS [KEY_SET]]`, where
//! `KEY_SET` is `random` (the default) or `shared-prefix`, and `WORKLOAD` is
//! - `fill1`: the peer run's fill, one `put` per key, 1M keys into a fresh database;
//! - `fill1000`: the same in batches of 1,000 (`Db::batch`);
//! - `memory1000`: batches of 1,000 into a memtable that holds every write (issue 13's
//!   in-memory figure: no flush runs; the log is written, never synced);
//! - `recover`: the batches of `memory1000`, closed without a flush, then timed: the open
//!   that replays the whole log into the memtable.
//!
//! Each repetition (default 3) uses a fresh database and prints writes per second of wall
//! time and per second of the writing thread's CPU time (steadier on a loaded machine; the
//! flush thread's CPU is not in it), or for `recover`, MB and entries replayed per second.
#![allow(missing_docs, reason = "a bench binary, not an API")]

#[path = "peers/data.rs"]
#[allow(
    dead_code,
    unused_imports,
    reason = "the peer run's data module, of which this uses a part"
)]
mod data;

use std::time::Instant;

use zverse::{Db, Durability, Options};
use zverse_benches::thread_cpu_ns;

const KEY_COUNT: usize = 1_000_000;
const BATCH_LEN: usize = 1000;
/// A memtable budget that holds every write of the 1M-key fill (about 170 MB of nodes).
const MEMTABLE_ALL_BYTES: u64 = 1 << 30;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|arg| arg != "--bench").collect();
    if zverse_benches::is_test_mode() {
        return; // `cargo test --benches`: nothing to profile.
    }
    let workload = args.first().map_or("fill1", String::as_str).to_owned();
    let reps: usize = args.get(1).map_or(3, |text| text.parse().expect("REPS"));
    let key_set = args.get(2).map_or(data::KeySet::Random, |name| {
        data::KeySet::from_name(name).expect("KEY_SET: random or shared-prefix")
    });
    let keys = key_set.keys(data::SEED_KEYS, KEY_COUNT);
    let values = data::Values::new();
    eprintln!("write_profile: {workload} x {reps}; pid {}", std::process::id());
    for rep in 0..reps {
        let dir = tempfile::tempdir().expect("a temporary directory");
        match workload.as_str() {
            "fill1" | "fill1000" | "memory1000" => {
                let memory = workload == "memory1000";
                let db = open(dir.path(), memory);
                let (wall_s, cpu_s) = timed(|| {
                    if workload == "fill1" {
                        fill_per_op(&db, &keys, &values);
                    } else {
                        fill_batches(&db, &keys, &values);
                    }
                });
                print_rate(&workload, rep, KEY_COUNT, wall_s, cpu_s);
                db.close().expect("close");
            }
            "recover" => recover(dir.path(), &keys, &values, rep),
            other => panic!("unknown workload {other}: fill1, fill1000, memory1000 or recover"),
        }
    }
}

/// The database the peer run opens, or with `memory`, one whose memtable holds every write.
fn open(path: &std::path::Path, memory: bool) -> Db {
    let mut options = Options::default().durability(Durability::None);
    if memory {
        options = options.memtable_bytes_max(MEMTABLE_ALL_BYTES).memory_bytes_max(4 << 30);
    }
    zverse_linux::open(path, options).expect("open")
}

fn fill_per_op(db: &Db, keys: &[data::Key], values: &data::Values) {
    for (index, key) in keys.iter().enumerate() {
        db.put(key, values.get(index)).expect("put");
    }
}

fn fill_batches(db: &Db, keys: &[data::Key], values: &data::Values) {
    for (chunk_index, chunk) in keys.chunks(BATCH_LEN).enumerate() {
        let mut batch = db.batch();
        for (offset, key) in chunk.iter().enumerate() {
            batch.put(key, values.get(chunk_index * BATCH_LEN + offset));
        }
        batch.commit().expect("commit");
    }
}

/// Writes the batches into a memtable that holds them all, closes without a flush, and times
/// the open that replays the log.
fn recover(path: &std::path::Path, keys: &[data::Key], values: &data::Values, rep: usize) {
    let db = open(path, true);
    fill_batches(&db, keys, values);
    let log_bytes = db.stats().log_bytes;
    db.close().expect("close");
    drop(db);
    let (wall_s, cpu_s) = timed(|| {
        let db = open(path, true);
        assert_eq!(db.stats().memtable_versions, keys.len() as u64, "every write replayed");
        // Closed outside the timing would need the handle out; the close syncs nothing new.
        db.close().expect("close");
    });
    #[allow(clippy::cast_precision_loss, reason = "a rate")]
    let mb = log_bytes as f64 / 1e6;
    println!(
        "recover rep {rep}: {mb:.1} MB of log, {:.0} MB/s and {:.0} entries/s wall; \
         {:.0} MB/s per thread CPU s",
        mb / wall_s,
        per_second(keys.len(), wall_s),
        mb / cpu_s,
    );
}

/// Wall seconds and this thread's CPU seconds `work` took.
fn timed(work: impl FnOnce()) -> (f64, f64) {
    let cpu_start_ns = thread_cpu_ns().unwrap_or(0);
    let start = Instant::now();
    work();
    let wall_s = start.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss, reason = "a duration")]
    let cpu_s = thread_cpu_ns().unwrap_or(0).saturating_sub(cpu_start_ns) as f64 / 1e9;
    (wall_s, cpu_s)
}

fn per_second(count: usize, seconds: f64) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "a rate")]
    let count = count as f64;
    count / seconds
}

fn print_rate(workload: &str, rep: usize, count: usize, wall_s: f64, cpu_s: f64) {
    println!(
        "{workload} rep {rep}: {:.0} writes/s wall ({wall_s:.2} s), {:.0} per thread CPU s",
        per_second(count, wall_s),
        per_second(count, cpu_s),
    );
}
