//! Fence keys (the key index sampled in memory per open segment) stay within
//! `Options::fence_keys_bytes_max` across flushes, compaction and reopen, and reads answer the
//! same with them, with a budget too small for every segment, and without them.

use zverse::{Db, Durability, Options};
use zverse_tests::backend;

const KEY_COUNT: u32 = 3000;

fn options(fence_keys_bytes_max: u64) -> Options {
    Options::default()
        .durability(Durability::None)
        .memtable_bytes_max(64 << 10)
        .compaction_trigger_segments(1000)
        .fence_keys_bytes_max(fence_keys_bytes_max)
}

/// Keys sharing their first 8 bytes, as `SurrealDB`'s: the on-disk fences cannot narrow them.
fn key(index: u32) -> Vec<u8> {
    format!("/*ns*db*tb*{index:08}").into_bytes()
}

fn fill(db: &Db) {
    for round in 0..3u32 {
        for index in 0..KEY_COUNT {
            db.put(&key(index), format!("{round}:{index}").as_bytes()).unwrap();
        }
    }
    db.flush().unwrap();
}

fn check_reads(db: &Db) {
    for index in (0..KEY_COUNT).step_by(7) {
        let value = db.get(&key(index)).unwrap().unwrap();
        assert_eq!(value.as_ref(), format!("2:{index}").as_bytes(), "key {index}");
    }
    assert_eq!(db.get(b"/*ns*db*tb*").unwrap(), None);
    assert_eq!(db.get(&key(KEY_COUNT)).unwrap(), None);
    let start = key(100);
    let end = key(200);
    let scanned = db.range(start.as_slice()..end.as_slice()).unwrap().count();
    assert_eq!(scanned, 100);
}

#[test]
fn fence_keys_stay_within_the_budget_and_reads_agree() {
    let budget = 3000;
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options(budget)).unwrap();
    fill(&db);
    assert_eq!(db.stats().fence_keys_bytes, 0, "built by the first point read, not the open");
    check_reads(&db);
    let stats = db.stats();
    assert!(stats.segment_count >= 4, "{stats:?}");
    assert!(stats.fence_keys_bytes > 0 && stats.fence_keys_bytes <= budget, "{stats:?}");
    db.compact().unwrap();
    check_reads(&db);
    // Compaction writes key-order segments, whose in-memory fences are per block (the
    // sampled key index is for Z-order segments): within the budget, maybe none at all.
    let stats = db.stats();
    assert!(stats.fence_keys_bytes <= budget, "{stats:?}");
    db.close().unwrap();
    let db = backend::open(dir.path(), options(budget)).unwrap();
    check_reads(&db);
    let reopened = db.stats();
    assert!(reopened.fence_keys_bytes <= budget, "{reopened:?}");
}

#[test]
fn reads_agree_with_a_generous_budget_and_with_none() {
    for budget in [64 << 20, 0] {
        let dir = tempfile::tempdir().unwrap();
        let db = backend::open(dir.path(), options(budget)).unwrap();
        fill(&db);
        check_reads(&db);
        let held = db.stats().fence_keys_bytes;
        assert_eq!(held == 0, budget == 0, "budget {budget}: {held} bytes held");
    }
}

/// High-entropy keys: their 8-byte prefixes differ, so the on-disk fences narrow a search.
fn random_key(index: u32) -> Vec<u8> {
    let spread = index.wrapping_mul(2_654_435_761);
    format!("{spread:08x}{index:08}").into_bytes()
}

/// With the default budget (1/16 of `memory_bytes_max`), point reads of keys sharing their
/// first 8 bytes build fence keys; point reads of keys whose prefixes differ build none (the
/// on-disk fences leave them a narrow window, which measured faster), and answer the same.
#[test]
fn the_default_budget_builds_fence_keys_only_where_prefixes_are_shared() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default().durability(Durability::None);
    let db = backend::open(dir.path(), options.clone()).unwrap();
    for index in 0..KEY_COUNT {
        db.put(&random_key(index), &index.to_le_bytes()).unwrap();
    }
    db.flush().unwrap();
    for index in 0..KEY_COUNT {
        let value = db.get(&random_key(index)).unwrap().unwrap();
        assert_eq!(value.as_ref(), index.to_le_bytes(), "key {index}");
    }
    assert_eq!(db.get(&random_key(KEY_COUNT)).unwrap(), None);
    assert_eq!(db.stats().fence_keys_bytes, 0, "distinct prefixes: none built");
    drop(db);
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options).unwrap();
    fill(&db);
    check_reads(&db);
    let held = db.stats().fence_keys_bytes;
    assert!(held > 0 && held <= (1 << 30) / 16, "shared prefixes: {held} bytes");
}
