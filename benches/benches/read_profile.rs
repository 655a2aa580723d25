//! The peer comparison's read rows for ZVerse alone, one at a time and for as long as asked, so
//! that `perf record` sees one workload: the same keys, values, fill, settle and YCSB key
//! chooser as `benches/peers` (its `data.rs` is compiled in), without the peers' builds.
//!
//! `cargo bench -p zverse-benches --bench read_profile -- WORKLOAD [SECONDS [KEY_SET]]`, where
//! `KEY_SET` is `random` (the default) or `shared-prefix`, and `WORKLOAD` is
//! `read1` (random gets), `range1pct` (scans of 1% of the keys), `full` (full scans), after the
//! fill and settle (`flush()`, `wait_for_compact()`) as in the peer run; or `ycsbc` (Zipfian
//! gets) or `ycsbe` (Zipfian open-ended scans of 1 to 100 items, without the inserts) after
//! `compact()` and the updates YCSB A, B and D leave in the memtable. `read1`, `range1pct` and
//! `full` take a `-compacted` suffix (`full-compacted`) to run after `compact()` instead: one
//! key-ordered level. The scan rows (`range1pct`, `full`, `ycsbe`) read through `Db::scan`,
//! the cursor that lends its items, as the peer harness does; an `-owned` suffix before any
//! `-compacted` (`full-owned`) reads through `Db::range` and its owned `(Slice, Slice)` items
//! instead. The temporal rows `asof` (a random key as of a random batch's version), `history`
//! (every version of a random key), `changes1pct` (all keys x 1% of the versions) and
//! `changesbox` (10% of the keys x 10% of the versions) run after the peer run's versioned fill
//! (100,000 keys written 20 times in batches of 1,000) and its settle. Prints
//! operations per second for the whole timed loop (default 10 s), after a fill that is not
//! timed, and per second of the reading thread's CPU time (steadier on a loaded machine).
#![allow(missing_docs, reason = "a bench binary, not an API")]

#[path = "peers/data.rs"]
#[allow(dead_code, reason = "the peer run's data module, of which this uses a part")]
mod data;

use std::hint::black_box;
use std::ops::Bound::{self, Excluded, Included};
use std::time::{Duration, Instant};

use zverse::{Db, Durability, Options};
use zverse_benches::{print_rates, thread_cpu_ns};

/// Updates YCSB A, B and D leave in the memtable before E runs (50% of A's and 5% of B's
/// 100,000 operations are updates; D inserts 5%).
const YCSB_UPDATES_BEFORE_E: usize = 60_000;
const KEY_COUNT: usize = 1_000_000;
const BATCH_LEN: usize = 1000;
const YCSB_SCAN_LEN_MAX: usize = 100;
/// The temporal rows' keys and the rounds that write each of them (as the peer run's).
const VERSIONED_KEY_COUNT: usize = 100_000;
const VERSION_ROUNDS: usize = 20;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|arg| arg != "--bench").collect();
    let requested = args.first().map_or("read1", String::as_str);
    let (workload, compacted) = match requested.strip_suffix("-compacted") {
        Some(workload) => (workload, true),
        None => (requested, false),
    };
    let (workload, owned) = match workload.strip_suffix("-owned") {
        Some(workload) => (workload, true),
        None => (workload, false),
    };
    let seconds: u64 = args.get(1).map_or(10, |text| text.parse().expect("SECONDS"));
    if zverse_benches::is_test_mode() {
        return; // `cargo test --benches`: nothing to profile.
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = Db::open(dir.path(), Options::default().durability(Durability::None)).expect("open");
    let key_set = args.get(2).map_or(data::KeySet::Random, |name| {
        data::KeySet::from_name(name).expect("KEY_SET: random or shared-prefix")
    });
    let temporal = matches!(workload, "asof" | "history" | "changes1pct" | "changesbox");
    let values = data::Values::new();
    let (keys, versions) = if temporal {
        let keys = key_set.keys(data::SEED_VERSIONED_KEYS, VERSIONED_KEY_COUNT);
        let versions = versioned_fill(&db, &keys, &values);
        (keys, versions)
    } else {
        let keys = key_set.keys(data::SEED_KEYS, KEY_COUNT);
        fill(&db, &keys, &values);
        (keys, Vec::new())
    };
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    let zipfian = data::Zipfian::new(keys.len());
    if compacted {
        db.compact().expect("compact");
    }
    if workload.starts_with("ycsb") {
        db.compact().expect("compact");
        let mut rng = fastrand::Rng::with_seed(data::SEED_YCSB);
        for index in 0..YCSB_UPDATES_BEFORE_E {
            let key = &keys[data::scramble(zipfian.next(&mut rng), KEY_COUNT)];
            db.put(key, values.get(index)).expect("update");
        }
        // YCSB C's gets run before E in the peer run: they build the segments' fence keys.
        for key in keys.iter().take(1000) {
            black_box(db.get(key).expect("get"));
        }
    }
    let stats = db.stats();
    eprintln!(
        "read_profile: {requested} for {seconds} s; {} segments (per level {:?}), {} memtable \
         versions; pid {}",
        stats.segment_count,
        stats.level_segment_counts,
        stats.memtable_versions,
        std::process::id()
    );
    let mut rng = fastrand::Rng::with_seed(data::SEED_READS);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let cpu_start_ns = thread_cpu_ns();
    let mut ops = 0_u64;
    let mut items = 0_u64;
    while Instant::now() < deadline {
        let batch = if matches!(workload, "full" | "range1pct" | "changes1pct" | "changesbox") {
            1
        } else {
            100
        };
        for _ in 0..batch {
            items += if temporal {
                temporal_op(workload, &db, &sorted, &versions, &mut rng)
            } else {
                one_op(workload, owned, &db, &keys, &sorted, &zipfian, &mut rng)
            };
            ops += 1;
        }
    }
    print_rates(requested, ops, items, start.elapsed().as_secs_f64(), cpu_start_ns);
}

/// The peer run's fill: batches of 1,000 in load order, then its settle: `flush()` and
/// `wait_for_compact()`.
fn fill(db: &Db, keys: &[data::Key], values: &data::Values) {
    for (chunk_index, chunk) in keys.chunks(BATCH_LEN).enumerate() {
        let mut batch = db.batch();
        for (offset, key) in chunk.iter().enumerate() {
            batch.put(key, values.get(chunk_index * BATCH_LEN + offset));
        }
        batch.commit().expect("commit");
    }
    db.flush().expect("flush");
    db.wait_for_compact().expect("wait_for_compact");
}

/// The peer run's versioned fill: `VERSION_ROUNDS` rounds over `keys` in batches; returns
/// each batch's version, after the settle.
fn versioned_fill(db: &Db, keys: &[data::Key], values: &data::Values) -> Vec<zverse::Version> {
    let mut versions = Vec::new();
    for round in 0..VERSION_ROUNDS {
        for (chunk_index, chunk) in keys.chunks(BATCH_LEN).enumerate() {
            let mut batch = db.batch();
            for (offset, key) in chunk.iter().enumerate() {
                batch.put(key, values.get(round * keys.len() + chunk_index * BATCH_LEN + offset));
            }
            versions.push(batch.commit().expect("commit"));
        }
    }
    db.flush().expect("flush");
    db.wait_for_compact().expect("wait_for_compact");
    versions
}

/// One temporal query of `workload`; returns the items it found.
fn temporal_op(
    workload: &str,
    db: &Db,
    sorted: &[data::Key],
    versions: &[zverse::Version],
    rng: &mut fastrand::Rng,
) -> u64 {
    let key = &sorted[rng.usize(..sorted.len())];
    let mut changes = |key_span: usize, version_span: usize| -> u64 {
        let first = rng.usize(..=versions.len() - version_span);
        let window = versions[first]..=versions[first + version_span - 1];
        let changes = if key_span >= sorted.len() {
            db.changes(.., window)
        } else {
            let start = rng.usize(..sorted.len() - key_span);
            db.changes(&sorted[start][..]..&sorted[start + key_span][..], window)
        };
        let changes = changes.expect("changes");
        changes.fold(0, |count, change| count + u64::from(black_box(change.is_ok())))
    };
    match workload {
        "asof" => {
            let version = versions[rng.usize(..versions.len())];
            u64::from(db.get_at(key, version).expect("get_at").is_some())
        }
        "history" => {
            let history = db.history(key).expect("history");
            history.fold(0, |count, item| count + u64::from(black_box(item.is_ok())))
        }
        "changes1pct" => changes(sorted.len(), versions.len() / 100),
        "changesbox" => changes(sorted.len() / 10, versions.len() / 10),
        other => panic!("unknown workload {other:?}"),
    }
}

/// A key range by its bounds.
type Range<'k> = (Bound<&'k data::Key>, Bound<&'k data::Key>);

/// One operation of `workload`; returns the items it found.
fn one_op(
    workload: &str,
    owned: bool,
    db: &Db,
    keys: &[data::Key],
    sorted: &[data::Key],
    zipfian: &data::Zipfian,
    rng: &mut fastrand::Rng,
) -> u64 {
    // Items of the range, at most `limit`, each passed to `black_box`.
    let count = |range: Range<'_>, limit: usize| -> u64 {
        let (start, end) = (range.0.map(|key| &key[..]), range.1.map(|key| &key[..]));
        if owned {
            let range = db.range((start, end)).expect("range");
            let items = range.take(limit).map(|item| black_box(item.expect("range")));
            return items.count() as u64;
        }
        let mut scan = db.scan((start, end)).expect("scan");
        let mut found = 0;
        while found < limit as u64 {
            let Some(item) = scan.next() else { break };
            black_box(item.expect("scan"));
            found += 1;
        }
        found
    };
    let unbounded = std::ops::Bound::Unbounded;
    match workload {
        "read1" => u64::from(db.get(&keys[rng.usize(..keys.len())]).expect("get").is_some()),
        "ycsbc" => {
            let key = &keys[data::scramble(zipfian.next(rng), keys.len())];
            u64::from(db.get(key).expect("get").is_some())
        }
        "range1pct" => {
            let span = sorted.len() / 100;
            let start = rng.usize(..sorted.len() - span);
            let bounds = (Included(&sorted[start]), Excluded(&sorted[start + span]));
            count(bounds, usize::MAX)
        }
        "full" => count((unbounded, unbounded), usize::MAX),
        "ycsbe" => {
            let key = &keys[data::scramble(zipfian.next(rng), keys.len())];
            let len = rng.usize(1..=YCSB_SCAN_LEN_MAX);
            count((Included(key), unbounded), len)
        }
        other => panic!("unknown workload {other:?}"),
    }
}
