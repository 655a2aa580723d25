//! Under `Durability::Periodic` and `None` the log holds commit groups' frames in memory and
//! writes them to the file in one call once 64 KiB are held, at every periodic sync, at a
//! rotation's seal and at close (as fjall's journal buffers its writes; RocksDB by default
//! writes each group): a crash can lose what a `Periodic` sync has not reached or what `None`
//! has not flushed, which the durability modes allow, and nothing else. On the simulated disk.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zverse::{Db, Durability, Error, Options};
use zverse_tests::sim_io::{CrashVariant, Fault, SimIo};

/// The bytes the log holds before it writes them (`log::LOG_BUFFER_BYTES` in the engine).
const HELD_BYTES_MAX: usize = 64 << 10;
/// How long a test waits for the periodic sync before it gives up.
const DEADLINE: Duration = Duration::from_secs(20);

fn open(io: &SimIo, durability: Durability) -> Db {
    let options = Options::default().durability(durability);
    Db::open_with_io("/db", options, Arc::new(io.clone())).unwrap()
}

fn key(index: usize) -> Vec<u8> {
    format!("key:{index:06}").into_bytes()
}

/// The path of the database's only log.
fn log_path(io: &SimIo) -> PathBuf {
    let logs: Vec<PathBuf> = io
        .file_paths()
        .into_iter()
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    assert_eq!(logs.len(), 1, "one log: {logs:?}");
    logs.into_iter().next().unwrap()
}

fn file_len(io: &SimIo, path: &Path) -> usize {
    io.read_file(path).map_or(0, |bytes| bytes.len())
}

/// The keys `0..count` a restarted machine finds under `variant`.
fn keys_after_crash(io: &SimIo, variant: CrashVariant, count: usize) -> usize {
    let restarted = open(&io.after_crash(variant), Durability::Sync);
    (0..count).filter(|&index| restarted.get(&key(index)).unwrap().is_some()).count()
}

#[test]
fn unsynced_writes_are_held_until_64_kib_then_written_in_one_call_and_close_writes_the_rest() {
    let io = SimIo::new();
    let db = open(&io, Durability::None);
    let log = log_path(&io);
    let len_at_open = file_len(&io, &log);
    let calls_at_open = io.call_count();
    for index in 0..100 {
        db.put(&key(index), b"value").unwrap();
    }
    assert_eq!(file_len(&io, &log), len_at_open, "100 small puts are held, not written");
    assert_eq!(io.call_count(), calls_at_open, "and make no I/O call");
    assert_eq!(db.get(&key(99)).unwrap().as_deref(), Some(&b"value"[..]));
    let mut count = 100;
    while file_len(&io, &log) == len_at_open {
        db.put(&key(count), b"value").unwrap();
        count += 1;
        assert!(count < 10_000, "the held frames are never written");
    }
    let written = file_len(&io, &log) - len_at_open;
    assert!((HELD_BYTES_MAX..2 * HELD_BYTES_MAX).contains(&written), "{written} bytes at once");
    for index in count..count + 10 {
        db.put(&key(index), b"value").unwrap();
    }
    count += 10;
    assert!(keys_after_crash(&io, CrashVariant::KeepUnsynced, count) < count, "some are held");
    db.close().unwrap();
    assert_eq!(keys_after_crash(&io, CrashVariant::LoseUnsynced, count), count);
}

#[test]
fn a_periodic_write_is_durable_within_its_period() {
    let io = SimIo::new();
    let db = open(&io, Durability::Periodic(Duration::from_millis(5)));
    db.put(&key(0), b"value").unwrap();
    let started = Instant::now();
    while keys_after_crash(&io, CrashVariant::LoseUnsynced, 1) == 0 {
        assert!(started.elapsed() < DEADLINE, "the periodic sync never made the write durable");
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(db);
}

#[test]
fn a_rotation_writes_the_held_frames_before_the_seal() {
    let io = SimIo::new();
    let db = open(&io, Durability::None);
    for index in 0..10 {
        db.put(&key(index), b"value").unwrap();
    }
    // The power fails right after the rotation's write of the held frames, its seal, and its
    // sync: before the new log exists and before the flush, so only the sealed log holds
    // the 10 writes.
    io.crash_at(io.call_count() + 3);
    assert!(db.flush().is_err(), "the power failed during the flush");
    drop(db);
    assert_eq!(keys_after_crash(&io, CrashVariant::LoseUnsynced, 10), 10);
}

#[test]
fn a_failed_write_of_the_held_frames_turns_the_database_read_only() {
    let io = SimIo::new();
    let db = open(&io, Durability::Periodic(Duration::from_millis(5)));
    db.put(&key(0), b"value").unwrap();
    io.inject(Fault::NoSpace, io.call_count(), true);
    // The periodic sync's write fails, not one of a full buffer: 200 puts hold less.
    let mut puts = 0;
    let error = loop {
        match db.put(&key(1), b"value") {
            Err(error) => break error,
            Ok(_) => puts += 1,
        }
        assert!(puts < 200, "the failed write went unnoticed");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(matches!(error, Error::ReadOnly(_)), "{error:?}");
    assert_eq!(db.get(&key(0)).unwrap().as_deref(), Some(&b"value"[..]), "reads still answer");
    drop(db);
}
