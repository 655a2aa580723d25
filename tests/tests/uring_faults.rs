//! A failed `fdatasync` completion on io_uring turns the database read-only exactly as on the
//! portable backend (`io_failure.rs`, on the simulated disk): the write whose sync failed
//! fails with `Error::ReadOnly` naming the error, every later write fails the same way, reads
//! keep answering with the data from before, and a restart takes writes again.
//!
//! The failure comes through the real completion path: `UringIo::fail_syncs_after` replaces
//! the result of `fdatasync` completions the ring reaps with `-EIO` (the kernel's own report
//! of a failed writeback), in the group commit's linked submission, in a segment's windowed
//! write and in a bare sync alike.
#![cfg(target_os = "linux")]

use std::path::Path;
use std::sync::Arc;

use zverse::{Db, Durability, Error, Options};
use zverse_linux::UringIo;
use zverse_tests::backend;

const KEY_COUNT: usize = 30;

fn key(index: usize) -> Vec<u8> {
    format!("key:{index:03}").into_bytes()
}

/// The io_uring backend, or `None` (said on stderr) where the kernel refuses it; a run that
/// asked for io_uring (`ZVERSE_TEST_BACKEND=io_uring`) fails instead.
fn uring() -> Option<UringIo> {
    match UringIo::new() {
        Ok(io) => Some(io),
        Err(error) if backend::name() == "io_uring" => panic!("io_uring was asked for: {error}"),
        Err(error) => {
            eprintln!("io_uring refused by this kernel ({error}): the fault tests cannot run");
            None
        }
    }
}

fn open(io: &UringIo, dir: &Path) -> Db {
    let options = Options::default().durability(Durability::Sync);
    let db = Db::open_with_io(dir, options, Arc::new(io.clone())).unwrap();
    assert_eq!(db.stats().io_backend, "io_uring");
    db
}

/// A database with keys `0..20` in a segment and `20..30` in the memtable.
fn database(io: &UringIo, dir: &Path) -> Db {
    let db = open(io, dir);
    for index in 0..KEY_COUNT {
        db.put(&key(index), &key(index)).unwrap();
        if index == 19 {
            db.flush().unwrap();
        }
    }
    db
}

/// A read-only error whose reason names `what` and the injected EIO.
fn assert_read_only_by_eio<T: std::fmt::Debug>(result: zverse::Result<T>, what: &str) {
    match result {
        Err(Error::ReadOnly(reason)) => {
            assert!(reason.contains(what), "the reason names the {what}: {reason}");
            assert!(reason.contains("os error 5"), "the reason names EIO: {reason}");
        }
        other => panic!("the failed {what} returned {other:?}, not ReadOnly"),
    }
}

/// Every kind of write fails with the first failure's reason; reads answer with the
/// `KEY_COUNT` keys written before the failure.
fn check_read_only(db: &Db, what: &str) {
    let writes = [db.put(b"new", b"value"), db.delete(&key(0)), {
        let mut batch = db.batch();
        batch.put(b"new", b"value").delete(&key(1));
        batch.commit()
    }];
    for write in writes {
        assert_read_only_by_eio(write, what);
    }
    assert!(db.flush().is_err(), "flush on a read-only database");
    for index in 0..KEY_COUNT {
        let found = db.get(&key(index)).unwrap();
        assert_eq!(found.as_deref(), Some(key(index).as_slice()), "{what}: key {index}");
    }
    let range: Vec<_> = db.range(..).unwrap().collect::<Result<_, _>>().unwrap();
    let keys: Vec<Vec<u8>> = range.iter().map(|(k, _)| k.to_vec()).collect();
    assert_eq!(keys, (0..KEY_COUNT).map(key).collect::<Vec<_>>(), "{what}: range");
}

/// Reopened after the failure (syncs working again), every key is there and writes work.
fn check_restart(io: &UringIo, dir: &Path, what: &str) {
    io.fail_syncs_after(0, 0);
    let db = open(io, dir);
    for index in 0..KEY_COUNT {
        let found = db.get(&key(index)).unwrap();
        assert_eq!(found.as_deref(), Some(key(index).as_slice()), "{what}, restarted: {index}");
    }
    db.put(b"after", b"restart").unwrap();
    db.close().unwrap();
}

/// Linux's errno for an I/O error.
const EIO: i32 = 5;

#[test]
fn a_failed_log_sync_completion_makes_the_database_read_only() {
    let Some(io) = uring() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = database(&io, dir.path());
    io.fail_syncs_after(0, EIO);
    assert_read_only_by_eio(db.put(b"failed", b"sync"), "log append");
    assert_eq!(db.get(b"failed").unwrap(), None, "a write whose sync failed is not visible");
    check_read_only(&db, "log append");
    drop(db);
    // The write itself reached the file (only its sync's result was replaced), so a restart
    // may find it: after a failed fdatasync the bytes "may or may not be durable".
    check_restart(&io, dir.path(), "log append");
}

/// A flush syncs the new log, then (on the background thread) the segment, written in
/// windows of chunks, then the manifest. Failing the first, second, third... of those syncs
/// in turn: each failure turns the database read-only, and one of them is the segment's.
#[test]
fn a_failed_sync_completion_during_a_flush_makes_the_database_read_only() {
    const SYNCS_PER_FLUSH_MAX: u64 = 8;
    let Some(io) = uring() else { return };
    let mut reasons = Vec::new();
    for ok_count in 0..SYNCS_PER_FLUSH_MAX {
        let dir = tempfile::tempdir().unwrap();
        let db = database(&io, dir.path());
        io.fail_syncs_after(ok_count, EIO);
        let flushed = db.flush();
        if flushed.is_ok() {
            io.fail_syncs_after(0, 0);
            assert!(ok_count > 1, "a flush syncs a new log and a segment at least");
            break;
        }
        assert_read_only_by_eio(flushed, "failed");
        let Err(Error::ReadOnly(reason)) = db.put(b"new", b"value") else { panic!("read-only") };
        assert_eq!(db.stats().segment_count, 1, "no second segment after sync {ok_count} failed");
        check_read_only(&db, &reason);
        drop(db);
        check_restart(&io, dir.path(), &reason);
        reasons.push(reason);
    }
    eprintln!("read-only reasons, one per failed sync of a flush: {reasons:#?}");
    assert!(
        reasons.iter().any(|reason| reason.starts_with("flush failed")),
        "a failure in the flush itself, after the new log: {reasons:?}"
    );
}
