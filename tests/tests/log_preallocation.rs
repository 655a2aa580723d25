//! The preallocated log (`Options::log_preallocation_bytes`): in `Sync` mode the log is filled
//! with zeros ahead of its appends, so that synced commits do not grow the file. Its zero tail
//! ends a log cleanly, in the newest log and in older ones, and never hides damage: damage in
//! the tail loses nothing, damage to the frames before it is still `Error::Corruption`.
//! (The crash sweep runs with a small fill, so that the tail is extended under its crashes.)
//!
//! Unix only: it writes and reads single bytes at offsets (`FileExt`).
#![cfg(unix)]

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use zverse::{Durability, Error, Options};
use zverse_tests::backend;

const FILL_BYTES: u64 = 64 << 10;
const KEY_COUNT: usize = 40;

fn options() -> Options {
    Options::default().durability(Durability::Sync).log_preallocation_bytes(FILL_BYTES)
}

fn key(index: usize) -> Vec<u8> {
    format!("key{index:04}").into_bytes()
}

fn value(index: usize) -> Vec<u8> {
    format!("value-{index}-{}", "v".repeat(index % 50)).into_bytes()
}

fn logs(dir: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    logs.sort();
    logs
}

/// A database with `KEY_COUNT` synced puts, closed; returns its newest log.
fn closed_database(dir: &Path) -> PathBuf {
    let db = backend::open(dir, options()).unwrap();
    let log = logs(dir).pop().unwrap();
    let created_len = fs::metadata(&log).unwrap().len();
    assert!(created_len >= FILL_BYTES, "filled ahead at creation: {created_len}");
    for index in 0..KEY_COUNT {
        db.put(&key(index), &value(index)).unwrap();
    }
    assert_eq!(fs::metadata(&log).unwrap().len(), created_len, "no commit grew the file");
    db.close().unwrap();
    log
}

fn check_every_key(dir: &Path, what: &str) {
    let db = backend::open(dir, options()).unwrap_or_else(|error| panic!("{what}: {error}"));
    for index in 0..KEY_COUNT {
        let found = db.get(&key(index)).unwrap();
        assert_eq!(found.as_deref(), Some(value(index).as_slice()), "{what}: key {index}");
    }
}

/// Where the frames of a closed log end (its seal included): the zero tail starts there.
fn frames_end(log: &Path) -> u64 {
    let bytes = fs::read(log).unwrap();
    let last_nonzero = bytes.iter().rposition(|&byte| byte != 0).unwrap();
    last_nonzero as u64 + 1
}

#[test]
fn zero_filled_logs_replay_every_commit_as_newest_and_as_older_logs() {
    let dir = tempfile::tempdir().unwrap();
    closed_database(dir.path());
    // Each reopen replays the newest log, sealed and followed by zeros, and appends to it
    // after the seal (the next close seals it again, in the zeros).
    for round in 0..3 {
        check_every_key(dir.path(), &format!("reopen {round}"));
    }
}

#[test]
fn a_log_filled_past_its_tail_is_extended_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let big = vec![0xB7; 20_000];
    {
        let db = backend::open(dir.path(), options()).unwrap();
        for index in 0..10 {
            db.put(&key(index), &big).unwrap();
        }
        let log = logs(dir.path()).pop().unwrap();
        let len = fs::metadata(&log).unwrap().len();
        assert!(len >= 200_000 && len.is_multiple_of(4096), "extended in whole pages: {len}");
    }
    let db = backend::open(dir.path(), options()).unwrap();
    for index in 0..10 {
        assert_eq!(db.get(&key(index)).unwrap().as_deref(), Some(big.as_slice()));
    }
}

/// A copy of the database in `from`, with `damage` applied to its log `log_name`.
fn damaged_copy(
    from: &Path,
    log_name: &std::ffi::OsStr,
    damage: impl FnOnce(&fs::File),
) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        fs::copy(&path, copy.path().join(path.file_name().unwrap())).unwrap();
    }
    let log = fs::OpenOptions::new().read(true).write(true).open(copy.path().join(log_name));
    damage(&log.unwrap());
    copy
}

#[test]
fn damage_in_the_zero_tail_loses_nothing_and_damage_before_it_is_corruption() {
    let origin = tempfile::tempdir().unwrap();
    let log = closed_database(origin.path());
    let log_name = log.file_name().unwrap();
    let end = frames_end(&log);
    let len = fs::metadata(&log).unwrap().len();
    assert!(len - end > 4096, "a zero tail follows the frames: {end} of {len}");
    // A stray byte anywhere in the tail: garbage after the seal of the newest log, which
    // nothing vouches for (a torn append); every commit is before it.
    for at in [end, end + 1, end + 39, end + 4096, u64::midpoint(end, len), len - 1] {
        let copy = damaged_copy(origin.path(), log_name, |file| {
            file.write_all_at(&[0x42], at).unwrap();
        });
        check_every_key(copy.path(), &format!("a stray byte at {at} in the zero tail"));
    }
    // Damage to a frame before the seal (the last 40 bytes): the seal says it was synced.
    for at in [100, end / 2, end - 40 - 5] {
        let copy = damaged_copy(origin.path(), log_name, |file| {
            let mut byte = [0];
            file.read_exact_at(&mut byte, at).unwrap();
            file.write_all_at(&[byte[0] ^ 0x10], at).unwrap();
        });
        match backend::open(copy.path(), options()) {
            Err(Error::Corruption { offset, .. }) => assert!(offset <= at, "damage at {at}"),
            Err(other) => panic!("damage at {at}: {other}"),
            Ok(_) => panic!("damage at {at} before the zero tail went unnoticed"),
        }
    }
}

/// A reopened newest log keeps its zero tail: appends go after its last frame (the close's
/// seal), into the zeros, without growing the file; once they pass its end, the fill goes on.
#[test]
fn a_reopened_log_appends_into_its_zero_tail_and_fills_on() {
    let dir = tempfile::tempdir().unwrap();
    let log = closed_database(dir.path());
    let len = fs::metadata(&log).unwrap().len();
    let end = frames_end(&log);
    let big = vec![0xC3; 20_000];
    {
        let db = backend::open(dir.path(), options()).unwrap();
        assert_eq!(logs(dir.path()), vec![log.clone()], "the newest log is appended to");
        db.put(b"after", b"reopen").unwrap();
        assert_eq!(fs::metadata(&log).unwrap().len(), len, "the put landed in the zeros");
        assert!(frames_end(&log) > end, "after the seal");
        for index in 0..8 {
            db.put(format!("big{index}").as_bytes(), &big).unwrap();
        }
        let grown = fs::metadata(&log).unwrap().len();
        assert!(grown > len && grown.is_multiple_of(4096), "the fill went on: {grown}");
        assert!(grown - frames_end(&log) >= FILL_BYTES - 4096, "zeros ahead: {grown}");
        db.close().unwrap();
    }
    check_every_key(dir.path(), "reopened after appends into the tail");
    let db = backend::open(dir.path(), options()).unwrap();
    assert_eq!(db.get(b"after").unwrap().as_deref(), Some(&b"reopen"[..]));
    for index in 0..8 {
        assert_eq!(db.get(format!("big{index}").as_bytes()).unwrap().as_deref(), Some(&big[..]));
    }
}

/// A read-only open of a database whose newest log ends in zeros reads every commit and
/// writes nothing: no file changes, and no entry of the directory is created or removed (not
/// even by a backend's routing probe, which runs for writable opens only).
#[test]
fn a_read_only_open_reads_a_zero_tail_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    closed_database(dir.path());
    let files = |dir: &Path| {
        let mut files: Vec<(PathBuf, Vec<u8>)> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .map(|path| (path.clone(), fs::read(&path).unwrap()))
            .collect();
        files.sort();
        files
    };
    let before = files(dir.path());
    let modified = fs::metadata(dir.path()).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let db = backend::open(dir.path(), options().read_only(true)).unwrap();
    for index in 0..KEY_COUNT {
        let found = db.get(&key(index)).unwrap();
        assert_eq!(found.as_deref(), Some(value(index).as_slice()), "key {index}");
    }
    db.close().unwrap();
    drop(db);
    assert!(files(dir.path()) == before, "a read-only open changed a file");
    let after = fs::metadata(dir.path()).unwrap().modified().unwrap();
    assert_eq!(after, modified, "a read-only open changed the directory");
}
