//! The peer comparison's temporal rows for ZVerse alone, one at a time and for as long as
//! asked, so that `perf record` sees one workload: the versioned fill of `benches/peers`
//! (100,000 keys, 20 rounds, batches of 1,000, its `data.rs` compiled in) and its settle
//! (`flush()`, `wait_for_compact()`), then one query in a loop.
//!
//! `cargo bench -p zverse-benches --bench temporal_profile -- WORKLOAD [SECONDS [KEY_SET]]`,
//! where `KEY_SET` is `random` (the default) or `shared-prefix`, and `WORKLOAD` is `asof`
//! (`get_at` of a random key as of a random batch's version), `history` (every version of a
//! random key), `changes1pct` (all keys x 1% of the batches) or `changes10x10` (10% of the keys
//! x 10% of the batches). A `-compacted` suffix runs after `compact()` instead. Prints
//! operations per second of wall time and of the reading thread's CPU time, and for `changes`
//! the bytes its queries read (`Stats::changes_bytes_read`) against the database's bytes.
#![allow(missing_docs, reason = "a bench binary, not an API")]

#[path = "peers/data.rs"]
#[allow(
    dead_code,
    unused_imports,
    reason = "the peer run's data module, of which this uses a part"
)]
mod data;

use std::hint::black_box;
use std::time::{Duration, Instant};

use zverse::{Db, Durability, Options, Version};
use zverse_benches::{print_rates, thread_cpu_ns};

const KEY_COUNT: usize = 100_000;
const ROUNDS: usize = 20;
const BATCH_LEN: usize = 1000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|arg| arg != "--bench").collect();
    let requested = args.first().map_or("history", String::as_str);
    let (workload, compacted) = match requested.strip_suffix("-compacted") {
        Some(workload) => (workload, true),
        None => (requested, false),
    };
    let seconds: u64 = args.get(1).map_or(10, |text| text.parse().expect("SECONDS"));
    if zverse_benches::is_test_mode() {
        return; // `cargo test --benches`: nothing to profile.
    }
    let key_set = args.get(2).map_or(data::KeySet::Random, |name| {
        data::KeySet::from_name(name).expect("KEY_SET: random or shared-prefix")
    });
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = Db::open(dir.path(), Options::default().durability(Durability::None)).expect("open");
    let keys = key_set.keys(data::SEED_VERSIONED_KEYS, KEY_COUNT);
    let versions = fill(&db, &keys, &data::Values::new());
    if compacted {
        db.compact().expect("compact");
    }
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    let before = db.stats();
    eprintln!(
        "temporal_profile: {requested} for {seconds} s; {} segments (per level {:?}), {} history \
         ({} bytes), {} memtable versions, {} segment bytes; pid {}",
        before.segment_count,
        before.level_segment_counts,
        before.history_segment_count,
        before.history_bytes,
        before.memtable_versions,
        before.segment_bytes,
        std::process::id()
    );
    let query = Query { db: &db, keys: &keys, sorted: &sorted, versions: &versions };
    let mut rng = fastrand::Rng::with_seed(data::SEED_QUERIES);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (start, cpu_start_ns) = (Instant::now(), thread_cpu_ns());
    let (mut ops, mut items) = (0_u64, 0_u64);
    while Instant::now() < deadline {
        let batch = if workload.starts_with("changes") { 1 } else { 100 };
        for _ in 0..batch {
            items += query.one(workload, &mut rng);
            ops += 1;
        }
    }
    print_rates(requested, ops, items, start.elapsed().as_secs_f64(), cpu_start_ns);
    let bytes_read = db.stats().changes_bytes_read - before.changes_bytes_read;
    if bytes_read > 0 {
        #[allow(clippy::cast_precision_loss, reason = "a ratio")]
        let share = bytes_read as f64 / ops as f64 / before.segment_bytes.max(1) as f64;
        println!("{requested}: {:.2}% of the segment bytes read per query", share * 100.0);
    }
}

/// The peer run's versioned fill: `ROUNDS` rounds, each writing every key in batches of
/// `BATCH_LEN`, then its settle; returns each batch's version.
fn fill(db: &Db, keys: &[data::Key], values: &data::Values) -> Vec<u64> {
    let mut versions = Vec::new();
    for round in 0..ROUNDS {
        for (chunk_index, chunk) in keys.chunks(BATCH_LEN).enumerate() {
            let first = round * keys.len() + chunk_index * BATCH_LEN;
            let mut batch = db.batch();
            for (offset, key) in chunk.iter().enumerate() {
                batch.put(key, values.get(first + offset));
            }
            versions.push(batch.commit().expect("commit").get());
        }
    }
    db.flush().expect("flush");
    db.wait_for_compact().expect("wait_for_compact");
    versions
}

struct Query<'a> {
    db: &'a Db,
    keys: &'a [data::Key],
    sorted: &'a [data::Key],
    versions: &'a [u64],
}

impl Query<'_> {
    /// One query of `workload`, chosen as the peer harness chooses them; returns its items.
    fn one(&self, workload: &str, rng: &mut fastrand::Rng) -> u64 {
        let key = &self.keys[rng.usize(..self.keys.len())];
        match workload {
            "asof" => {
                let version = Version::new(self.versions[rng.usize(..self.versions.len())]);
                u64::from(self.db.get_at(key, version).expect("get_at").is_some())
            }
            "history" => {
                let history = self.db.history(key).expect("history");
                count_items(history)
            }
            "changes1pct" => self.changes(rng, self.sorted.len(), self.versions.len() / 100),
            "changes10x10" => self.changes(rng, self.sorted.len() / 10, self.versions.len() / 10),
            other => panic!("unknown workload {other:?}"),
        }
    }

    fn changes(&self, rng: &mut fastrand::Rng, key_span: usize, batch_span: usize) -> u64 {
        let batch = rng.usize(..=self.versions.len() - batch_span);
        let versions = Version::new(self.versions[batch])
            ..=Version::new(self.versions[batch + batch_span - 1]);
        let changes = if key_span >= self.sorted.len() {
            self.db.changes(.., versions)
        } else {
            let start = rng.usize(..self.sorted.len() - key_span);
            self.db.changes(&self.sorted[start][..]..&self.sorted[start + key_span][..], versions)
        };
        count_items(changes.expect("changes"))
    }
}

/// The items of a query's iterator, each passed to `black_box`.
fn count_items<T, E: std::fmt::Debug>(items: impl Iterator<Item = Result<T, E>>) -> u64 {
    let mut count = 0;
    for item in items {
        black_box(item.expect("a query item"));
        count += 1;
    }
    count
}
