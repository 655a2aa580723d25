//! `Db::wait_for_compact`: after a fill it returns with every sealed memtable flushed and level 0
//! below the compaction trigger, it returns at once on an idle database, and it reports a
//! failed compaction round and a database turned read-only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use zverse::{Db, Durability, Error, Options};
use zverse_tests::backend;
use zverse_tests::sim_io::{Fault, SimIo};

const TRIGGER_SEGMENTS: u32 = 4;

fn options() -> Options {
    Options::default()
        .durability(Durability::None)
        .memtable_bytes_max(16 << 10)
        .segment_block_bytes(1 << 10)
        .segment_bytes_target(32 << 10)
        .level_base_bytes(64 << 10)
        .compaction_trigger_segments(TRIGGER_SEGMENTS)
}

fn key(index: u32) -> Vec<u8> {
    let spread = index.wrapping_mul(2_654_435_761);
    format!("{spread:08x}-{index:06}").into_bytes()
}

fn fill(db: &Db, count: u32) {
    for index in 0..count {
        db.put(&key(index), &[(index % 251) as u8; 100]).unwrap();
    }
}

/// Writers never wait here (no slowdown, no stop before 1,000 level-0 segments, memory for
/// many sealed memtables), so the fill ends with flushes and compactions still due.
#[test]
fn after_a_fill_it_returns_with_level_0_below_its_trigger_and_nothing_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let options = options()
        .write_slowdown_segments(1_000)
        .write_stop_segments(1_000)
        .memory_bytes_max(64 << 20);
    let db = backend::open(dir.path(), options).unwrap();
    fill(&db, 6_000);
    let before = db.stats();
    db.wait_for_compact().unwrap();
    let stats = db.stats();
    eprintln!(
        "before: {} memtables, level 0 {}; after: {} memtables, level 0 {}",
        before.memtable_count,
        before.level_segment_counts[0],
        stats.memtable_count,
        stats.level_segment_counts[0]
    );
    assert!(stats.flushes >= 20, "the fill rotated many memtables: {stats:?}");
    assert_eq!(stats.memtable_count, 1, "every sealed memtable is flushed: {stats:?}");
    let level_0 = stats.level_segment_counts[0];
    assert!(level_0 < TRIGGER_SEGMENTS as usize, "level 0 below the trigger: {stats:?}");
    assert!(stats.level_segment_counts.len() >= 2, "compaction reached level 1: {stats:?}");
    for index in (0..6_000).step_by(97) {
        assert!(db.get(&key(index)).unwrap().is_some(), "key {index}");
    }
}

#[test]
fn on_an_idle_database_it_returns_at_once_and_keeps_the_active_memtable() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options()).unwrap();
    let started = Instant::now();
    db.wait_for_compact().unwrap();
    db.put(b"k", b"v").unwrap();
    db.wait_for_compact().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let stats = db.stats();
    assert_eq!((stats.memtable_versions, stats.segment_count), (1, 0), "{stats:?}");
    db.close().unwrap();
    assert!(matches!(db.wait_for_compact(), Err(Error::Closed)));
}

/// Fills `io`'s database until level 0 is one segment short of the trigger, then returns the
/// I/O calls one more flush of `extra` keys makes (counted on a database that never compacts).
fn flush_call_count(extra: u32) -> u64 {
    let io = SimIo::new();
    let options = options().compaction_trigger_segments(1_000);
    let db = Db::open_with_io("/db", options, Arc::new(io.clone())).unwrap();
    fill_below_trigger(&db);
    for index in 0..extra {
        db.put(&key(100_000 + index), b"v").unwrap();
    }
    let before = io.call_count();
    db.flush().unwrap();
    io.call_count() - before
}

fn fill_below_trigger(db: &Db) {
    for round in 0..TRIGGER_SEGMENTS - 1 {
        for index in 0..20 {
            db.put(&key(round * 1_000 + index), b"v").unwrap();
        }
        db.flush().unwrap();
    }
}

#[test]
fn it_reports_a_failed_compaction_round_then_succeeds_once_the_disk_has_room() {
    let extra = 20;
    let flush_calls = flush_call_count(extra);
    let io = SimIo::new();
    let db = Db::open_with_io("/db", options(), Arc::new(io.clone())).unwrap();
    fill_below_trigger(&db);
    db.wait_for_compact().unwrap();
    for index in 0..extra {
        db.put(&key(100_000 + index), b"v").unwrap();
    }
    // The flush reaches the trigger and succeeds; every compaction call after it fails.
    io.inject(Fault::NoSpace, io.call_count() + flush_calls, true);
    db.flush().unwrap();
    let failed = db.wait_for_compact();
    assert!(
        matches!(&failed, Err(Error::Io(e)) if e.to_string().contains("compaction")),
        "{failed:?}"
    );
    assert!(db.stats().compaction_failures >= 1);
    assert_eq!(db.stats().level_segment_counts[0], TRIGGER_SEGMENTS as usize);
    io.inject(Fault::NoSpace, u64::MAX, false);
    db.wait_for_compact().unwrap();
    assert!(db.stats().level_segment_counts[0] < TRIGGER_SEGMENTS as usize, "{:?}", db.stats());
    assert_eq!(db.get(&key(100_000)).unwrap().as_deref(), Some(&b"v"[..]));
}

#[test]
fn it_reports_a_database_turned_read_only_by_a_failed_flush() {
    let io = SimIo::new();
    let db = Db::open_with_io("/db", options(), Arc::new(io.clone())).unwrap();
    io.inject(Fault::NoSpace, io.call_count(), true);
    // Enough writes to seal a memtable: its flush fails, which turns the database read-only.
    for index in 0..400 {
        if db.put(&key(index), &[1; 100]).is_err() {
            break;
        }
    }
    let waited = db.wait_for_compact();
    assert!(matches!(waited, Err(Error::ReadOnly(_))), "{waited:?}");
}
