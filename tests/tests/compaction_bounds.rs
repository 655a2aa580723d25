//! Bounded compaction: outputs split at the target size, `compact()` reaches every segment
//! however many there are, and a failed compaction leaves no file behind.

use std::path::PathBuf;
use std::sync::Arc;

use zverse::{Db, Durability, Error, Options};
use zverse_tests::backend;
use zverse_tests::sim_io::{CrashVariant, Fault, SimIo};

const TARGET_BYTES: u64 = 64 << 10;

fn key(index: u32) -> Vec<u8> {
    // High-entropy keys: the first bytes spread over the whole range.
    let spread = index.wrapping_mul(2_654_435_761);
    format!("{spread:08x}-{index:06}").into_bytes()
}

fn value(index: u32) -> Vec<u8> {
    vec![(index % 251) as u8; 200]
}

fn options() -> Options {
    Options::default()
        .durability(Durability::None)
        .segment_bytes_target(TARGET_BYTES)
        .compaction_trigger_segments(1_000)
}

fn assert_all_present(db: &Db, count: u32, ctx: &str) {
    for index in 0..count {
        let found = db.get(&key(index)).unwrap_or_else(|e| panic!("{ctx}: get {index}: {e}"));
        assert_eq!(found.as_deref(), Some(value(index).as_slice()), "{ctx}: key {index}");
    }
}

/// Every segment's data is at most the target plus one block: the file adds only its metadata
/// (a 4-byte reference per entry, fences, filter, block index, footer).
fn assert_segments_near_target(db: &Db, ctx: &str) {
    let stats = db.stats();
    let metadata_allowance = stats.segment_versions * 16 + (16 << 10);
    assert!(
        stats.segment_bytes_max <= TARGET_BYTES + metadata_allowance,
        "{ctx}: largest segment {} bytes, target {TARGET_BYTES}",
        stats.segment_bytes_max
    );
}

#[test]
fn a_flush_larger_than_the_target_writes_several_segments() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options().memtable_bytes_max(8 << 20)).unwrap();
    for index in 0..2_000 {
        db.put(&key(index), &value(index)).unwrap();
    }
    db.flush().unwrap();
    let stats = db.stats();
    assert_eq!(stats.flushes, 1);
    // ~430 KB of entries: seven segments of 64 KiB.
    assert!(stats.segment_count >= 6, "one flush, {} segments", stats.segment_count);
    assert_segments_near_target(&db, "flush");
    assert_all_present(&db, 2_000, "after the flush");
    drop(db);
    let db = backend::open(dir.path(), options()).unwrap();
    assert_all_present(&db, 2_000, "after a reopen");
}

#[test]
fn compaction_splits_its_output_at_the_target_size() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options().memtable_bytes_max(32 << 10)).unwrap();
    for index in 0..2_000 {
        db.put(&key(index), &value(index)).unwrap();
    }
    db.compact().unwrap();
    let stats = db.stats();
    assert!(stats.segment_count >= 6, "{} segments after compact", stats.segment_count);
    assert!(stats.segment_count_open <= 1, "at most one segment below the target: {stats:?}");
    assert_segments_near_target(&db, "compaction");
    assert_all_present(&db, 2_000, "after compact");
    drop(db);
    let db = backend::open(dir.path(), options()).unwrap();
    assert_all_present(&db, 2_000, "after a reopen");
}

/// `compact()` merges every segment, not only the first 64 (the merge's fan-in limit): 70
/// small segments become one.
#[test]
fn compact_reaches_every_segment_past_the_fan_in_limit() {
    let dir = tempfile::tempdir().unwrap();
    let options =
        Options::default().durability(Durability::None).compaction_trigger_segments(1_000);
    let db = backend::open(dir.path(), options).unwrap();
    for index in 0..70 {
        db.put(&key(index), &value(index)).unwrap();
        db.flush().unwrap();
    }
    assert_eq!(db.stats().segment_count, 70);
    db.compact().unwrap();
    assert_eq!(db.stats().segment_count, 1, "compact() leaves one segment below the target");
    assert_all_present(&db, 70, "after compact");
}

fn open(io: &SimIo) -> Db {
    let options = options().memtable_bytes_max(16 << 10).compaction_fan_in(4);
    Db::open_with_io("/db", options, Arc::new(io.clone())).unwrap()
}

fn segment_files(io: &SimIo) -> Vec<PathBuf> {
    io.file_paths().into_iter().filter(|p| p.extension().is_some_and(|e| e == "seg")).collect()
}

/// ENOSPC at every I/O call of a compaction with several outputs, one after another on the
/// same database: each failure removes the files it created, so the disk holds exactly the
/// live segments; then the disk has room again and compaction succeeds.
#[test]
fn failed_compactions_leave_no_partial_outputs() {
    const COUNT: u32 = 2_000;
    let io = SimIo::new();
    let db = open(&io);
    fill_twice(&db, COUNT);
    let segment_count = db.stats().segment_count;
    assert!(segment_count >= 20, "{segment_count} segments");
    let compaction_calls = {
        let probe = SimIo::new();
        let probe_db = open(&probe);
        fill_twice(&probe_db, COUNT);
        let before = probe.call_count();
        probe_db.compact().unwrap();
        probe.call_count() - before
    };
    let (mut io, mut db) = (io, db);
    let mut failures = 0;
    for k in (0..compaction_calls).step_by(2) {
        let start = io.call_count();
        io.inject(Fault::NoSpace, start + k, true);
        let compacted = db.compact();
        io.inject(Fault::NoSpace, u64::MAX, false);
        let ctx = format!("ENOSPC from compaction call {k}");
        match compacted {
            Ok(()) => continue,
            Err(Error::ReadOnly(_)) => {
                // The manifest update failed: it may be on disk, so the outputs stay until
                // the next open sorts out which files the manifest names.
                drop(db);
                io = io.after_crash(CrashVariant::KeepUnsynced);
                db = open(&io);
            }
            Err(_) => failures += 1,
        }
        let live = db.stats().segment_count;
        assert_eq!(segment_files(&io).len(), live, "{ctx}: files on disk = live segments");
        assert!(db.stats().compaction_failures <= failures);
    }
    assert!(failures >= 10, "{failures} failed compactions of {compaction_calls} calls");
    db.compact().unwrap();
    assert_eq!(segment_files(&io).len(), db.stats().segment_count);
    assert!(db.stats().history_segment_count >= 1, "history outputs too: {:?}", db.stats());
    assert_all_present(&db, COUNT, "after the disk has room again");
}

/// Writes `count` keys, then every third again (the same value, a newer version: compaction
/// demotes the older one into a history segment), flushing after each pass.
fn fill_twice(db: &Db, count: u32) {
    for index in 0..count {
        db.put(&key(index), &value(index)).unwrap();
    }
    db.flush().unwrap();
    for index in (0..count).step_by(3) {
        db.put(&key(index), &value(index)).unwrap();
    }
    db.flush().unwrap();
}

/// The metadata a segment being written holds (a reference and the key per entry) is bounded
/// by `memory_bytes_max / 8`: many small entries split a flush long before the target size.
#[test]
fn a_segment_splits_when_its_key_index_metadata_reaches_the_bound() {
    const COUNT: u32 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default()
        .durability(Durability::None)
        .memtable_bytes_max(16 << 20)
        .memory_bytes_max(1 << 20)
        .compaction_trigger_segments(1_000);
    let db = backend::open(dir.path(), options).unwrap();
    for index in 0..COUNT {
        db.put(&key(index), b"").unwrap();
    }
    db.flush().unwrap();
    let stats = db.stats();
    // 128 KiB of metadata at 24 + 15 bytes per entry: about 3,360 entries per segment.
    assert!(stats.segment_count >= 6, "{} segments", stats.segment_count);
    assert!(stats.segment_bytes_max < 256 << 10, "{stats:?}");
    for index in (0..COUNT).step_by(97) {
        assert_eq!(db.get(&key(index)).unwrap().as_deref(), Some(&b""[..]), "key {index}");
    }
}
