//! After a failed write or sync the database turns read-only (the `PostgreSQL` fsync lesson: a
//! failed sync is never retried as if nothing happened): every later write fails with
//! `Error::ReadOnly`, reads keep working on the data written before, the failed write is never
//! visible, and a restart recovers. The failure is injected on the simulated disk.

use std::sync::Arc;

use zverse::{Db, Durability, Error, Options};
use zverse_tests::sim_io::{CrashVariant, SimIo};

const KEY_COUNT: usize = 30;

fn key(index: usize) -> Vec<u8> {
    format!("key:{index:03}").into_bytes()
}

fn open(io: &SimIo) -> Db {
    let options = Options::default().durability(Durability::Sync);
    Db::open_with_io("/db", options, Arc::new(io.clone())).unwrap()
}

/// A database with keys `0..20` in a segment and `20..30` in the memtable.
fn database(io: &SimIo) -> Db {
    let db = open(io);
    for index in 0..KEY_COUNT {
        db.put(&key(index), &key(index)).unwrap();
        if index == 19 {
            db.flush().unwrap();
        }
    }
    db
}

/// Every kind of write fails with `ReadOnly`; every kind of read still answers, with the
/// `KEY_COUNT` keys written before and nothing else.
fn check_read_only(db: &Db, ctx: &str) {
    let writes = [db.put(b"new", b"value"), db.delete(&key(0)), {
        let mut batch = db.batch();
        batch.put(b"new", b"value").delete(&key(1));
        batch.commit()
    }];
    for write in writes {
        match write {
            Err(Error::ReadOnly(reason)) => assert!(!reason.is_empty(), "{ctx}: a reason"),
            other => panic!("{ctx}: a write on a read-only database returned {other:?}"),
        }
    }
    assert!(db.flush().is_err(), "{ctx}: flush on a read-only database");
    for index in 0..KEY_COUNT {
        let found = db.get(&key(index)).unwrap_or_else(|e| panic!("{ctx}: get {index}: {e}"));
        assert_eq!(found.as_deref(), Some(key(index).as_slice()), "{ctx}: key {index}");
        assert_eq!(db.history(&key(index)).unwrap().count(), 1, "{ctx}: history of {index}");
    }
    let snapshot = db.snapshot();
    let range: Vec<_> = snapshot.range(..).unwrap().collect::<Result<_, _>>().unwrap();
    let keys: Vec<Vec<u8>> = range.iter().map(|(k, _)| k.to_vec()).collect();
    assert_eq!(keys, (0..KEY_COUNT).map(key).collect::<Vec<_>>(), "{ctx}: range");
    assert_eq!(db.changes(.., ..).unwrap().count(), KEY_COUNT, "{ctx}: changes");
}

/// Restarted after the failure, the database holds the same keys and takes writes again.
fn check_restart(io: &SimIo, ctx: &str) {
    let io = io.after_crash(CrashVariant::KeepUnsynced);
    let db = open(&io);
    for index in 0..KEY_COUNT {
        let found = db.get(&key(index)).unwrap();
        assert_eq!(found.as_deref(), Some(key(index).as_slice()), "{ctx}, restarted: key {index}");
    }
    db.put(b"after", b"restart").unwrap_or_else(|e| panic!("{ctx}, restarted: write: {e}"));
}

#[test]
fn a_failed_log_write_makes_the_database_read_only_and_reads_still_work() {
    let io = SimIo::new();
    let db = database(&io);
    io.crash_at(io.call_count()); // The log write of the next put.
    let failed = db.put(b"failed", b"write");
    assert!(matches!(failed, Err(Error::ReadOnly(_) | Error::Io(_))), "{failed:?}");
    assert_eq!(db.get(b"failed").unwrap(), None, "the failed write is not visible");
    check_read_only(&db, "failed log write");
    drop(db);
    check_restart(&io, "failed log write");
}

#[test]
fn a_failed_log_sync_makes_the_database_read_only_and_hides_the_unsynced_write() {
    let io = SimIo::new();
    let db = database(&io);
    io.crash_at(io.call_count() + 1); // The write lands, its sync fails.
    let failed = db.put(b"failed", b"sync");
    assert!(matches!(failed, Err(Error::ReadOnly(_) | Error::Io(_))), "{failed:?}");
    assert_eq!(db.get(b"failed").unwrap(), None, "a write whose sync failed is not visible");
    check_read_only(&db, "failed log sync");
    drop(db);
    check_restart(&io, "failed log sync");
}

#[test]
fn a_failed_flush_makes_the_database_read_only_and_the_sealed_memtable_stays_readable() {
    // Calls of a flush after Sync writes: create the new log, sync the directory, then (on the
    // background thread) create the segment, write it, ...: fail at the segment's write.
    let io = SimIo::new();
    let db = database(&io);
    io.crash_at(io.call_count() + 3);
    let flushed = db.flush();
    assert!(matches!(flushed, Err(Error::ReadOnly(_))), "{flushed:?}");
    assert_eq!(db.stats().segment_count, 1, "no second segment");
    check_read_only(&db, "failed flush");
    drop(db);
    check_restart(&io, "failed flush");
}
