//! Fence keys sample the key index of Z-order segments, which flushes no longer write (the
//! budget tests, on a level 0 built in Z order, are `segment_file`'s unit tests). Level 0 is
//! key-ordered: a point read or a range start reads the one block the in-memory block keys
//! name, so whatever the budget and the key shape, reads answer right and build no fence keys.

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

/// Keys sharing their first 8 bytes, as `SurrealDB`'s (`shared`), or whose first 8 bytes
/// differ.
fn key(index: u32, shared: bool) -> Vec<u8> {
    if shared {
        format!("/*ns*db*tb*{index:08}").into_bytes()
    } else {
        format!("{:08x}{index:08}", index.wrapping_mul(2_654_435_761)).into_bytes()
    }
}

fn fill(db: &Db, shared: bool) {
    for round in 0..3u32 {
        for index in 0..KEY_COUNT {
            db.put(&key(index, shared), format!("{round}:{index}").as_bytes()).unwrap();
        }
    }
    db.flush().unwrap();
}

fn check_reads(db: &Db, shared: bool) {
    for index in (0..KEY_COUNT).step_by(7) {
        let value = db.get(&key(index, shared)).unwrap().unwrap();
        assert_eq!(value.as_ref(), format!("2:{index}").as_bytes(), "key {index}");
    }
    assert_eq!(db.get(&key(KEY_COUNT, shared)).unwrap(), None);
    let mut sorted: Vec<Vec<u8>> = (0..KEY_COUNT).map(|index| key(index, shared)).collect();
    sorted.sort();
    let (start, end) = (&sorted[100], &sorted[200]);
    assert_eq!(db.range(start.as_slice()..end.as_slice()).unwrap().count(), 100);
}

#[test]
fn key_ordered_level_0_reads_build_no_fence_keys_under_any_budget() {
    for (budget, shared) in [(3000, true), (64 << 20, true), (0, true), (64 << 20, false)] {
        let dir = tempfile::tempdir().unwrap();
        let db = backend::open(dir.path(), options(budget)).unwrap();
        fill(&db, shared);
        check_reads(&db, shared);
        let stats = db.stats();
        assert!(stats.segment_count >= 4, "{stats:?}");
        assert_eq!(stats.fence_keys_bytes, 0, "budget {budget}, shared {shared}: {stats:?}");
        db.compact().unwrap();
        check_reads(&db, shared);
        db.close().unwrap();
        let db = backend::open(dir.path(), options(budget)).unwrap();
        check_reads(&db, shared);
        assert_eq!(db.stats().fence_keys_bytes, 0, "budget {budget}, shared {shared}");
    }
}
