//! Writers and readers on threads, on real files (the backend `ZVERSE_TEST_BACKEND` names), with a
//! small memtable so that flushes run while they work: snapshot reads repeated during writes and
//! flushes give identical answers, a key's latest version never goes backwards, a snapshot sees
//! every write acknowledged before it was taken, an iterator held across flushes keeps yielding its
//! data, and at the end every acknowledged write is readable.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use zverse::{Db, Durability, Options, Snapshot, Version};
use zverse_tests::backend;

const WRITER_COUNT: usize = 4;
const READER_COUNT: usize = 2;
/// Keys per writer; writers overwrite them round and round.
const KEYS_PER_WRITER: usize = 40;
/// Small, so that the writes fill many memtables and flushes run during the test.
const MEMTABLE_BYTES: u64 = 16 << 10;

fn key(writer: usize, index: usize) -> Vec<u8> {
    format!("w{writer}:{index:03}").into_bytes()
}

/// A value naming its writer and sequence number, padded so that memtables fill quickly.
fn value(writer: usize, sequence: usize) -> Vec<u8> {
    let mut value = format!("{writer}:{sequence:08}:").into_bytes();
    value.resize(96, b'.');
    value
}

/// A write a writer saw acknowledged: `None` value for a delete.
type Acked = (Vec<u8>, Version, Option<Vec<u8>>);

/// Writes `write_count` commits as `writer`: puts, every 7th a delete, every 5th a batch of
/// three puts; publishes the latest acknowledged version in `acked_version`.
fn run_writer(db: &Db, writer: usize, write_count: usize, acked_version: &AtomicU64) -> Vec<Acked> {
    let mut acked = Vec::with_capacity(write_count * 3);
    for sequence in 0..write_count {
        let index = sequence % KEYS_PER_WRITER;
        if sequence % 7 == 3 {
            let version = db.delete(&key(writer, index)).unwrap();
            acked.push((key(writer, index), version, None));
        } else if sequence % 5 == 1 {
            let mut batch = db.batch();
            let indexes = [index, (index + 1) % KEYS_PER_WRITER, (index + 2) % KEYS_PER_WRITER];
            for &i in &indexes {
                batch.put(&key(writer, i), &value(writer, sequence));
            }
            let version = batch.commit().unwrap();
            for &i in &indexes {
                acked.push((key(writer, i), version, Some(value(writer, sequence))));
            }
        } else {
            let version = db.put(&key(writer, index), &value(writer, sequence)).unwrap();
            acked.push((key(writer, index), version, Some(value(writer, sequence))));
        }
        let version = acked.last().expect("just pushed").1;
        acked_version.fetch_max(version.get(), Ordering::Release);
    }
    acked
}

/// What a reader reads through a snapshot: some keys, a range, a history, a box query.
#[derive(Debug, PartialEq, Eq)]
struct SnapshotAnswers {
    points: Vec<Option<Vec<u8>>>,
    range: Vec<(Vec<u8>, Vec<u8>)>,
    history: Vec<(Version, Option<Vec<u8>>)>,
    changes: Vec<(Vec<u8>, Version, Option<Vec<u8>>)>,
}

fn read_through(snapshot: &Snapshot, reader: usize) -> SnapshotAnswers {
    let points = (0..WRITER_COUNT)
        .flat_map(|writer| (0..5).map(move |index| key(writer, index * 7 + reader)))
        .map(|key| snapshot.get(&key).unwrap().map(|value| value.to_vec()))
        .collect();
    let (from, to) = (key(1, 10), key(2, 5));
    let range = snapshot
        .range(from.as_slice()..to.as_slice())
        .unwrap()
        .map(|item| item.map(|(k, v)| (k.to_vec(), v.to_vec())))
        .collect::<Result<_, _>>()
        .unwrap();
    let history = snapshot
        .history(&key(3, 3))
        .unwrap()
        .map(|item| item.map(|(version, value)| (version, value.map(|v| v.to_vec()))))
        .collect::<Result<_, _>>()
        .unwrap();
    let (from, to) = (key(reader, 0), key(reader, 10));
    let mut changes: Vec<_> = snapshot
        .changes(from.as_slice()..to.as_slice(), ..)
        .unwrap()
        .map(|item| item.map(|c| (c.key.to_vec(), c.version, c.value.map(|v| v.to_vec()))))
        .collect::<Result<_, _>>()
        .unwrap();
    // `changes` promises the set, not an order: a flush between two reads moves versions
    // from a memtable to a segment, which the tiers are read in a different turn.
    changes.sort();
    SnapshotAnswers { points, range, history, changes }
}

/// Until `done`: takes snapshots and reads through each several times while the writers and
/// flushes go on; asserts the answers never change, snapshots see every write acknowledged
/// before they were taken, and latest versions never go backwards. Returns the rounds run.
fn run_reader(db: &Db, reader: usize, done: &AtomicBool, acked_versions: &[AtomicU64]) -> usize {
    let mut latest_seen: BTreeMap<Vec<u8>, Version> = BTreeMap::new();
    let mut snapshot_version_last = Version::ZERO;
    let mut rounds = 0;
    while !done.load(Ordering::Acquire) {
        let acked_before =
            acked_versions.iter().map(|v| v.load(Ordering::Acquire)).max().unwrap_or(0);
        let snapshot = db.snapshot();
        let version = snapshot.version();
        assert!(
            version.get() >= acked_before,
            "reader {reader}: snapshot at {version:?} misses a write acknowledged at {acked_before}"
        );
        assert!(version >= snapshot_version_last, "reader {reader}: snapshot versions went back");
        snapshot_version_last = version;
        let first = read_through(&snapshot, reader);
        for repeat in 0..4 {
            std::thread::sleep(Duration::from_millis(1));
            let again = read_through(&snapshot, reader);
            assert_eq!(again, first, "reader {reader}: snapshot {version:?}, repeat {repeat}");
        }
        for writer in 0..WRITER_COUNT {
            let key = key(writer, (rounds + reader) % KEYS_PER_WRITER);
            let Some(newest) = db.history(&key).unwrap().next() else { continue };
            let (newest_version, _) = newest.unwrap();
            let last = latest_seen.entry(key.clone()).or_insert(Version::ZERO);
            assert!(newest_version >= *last, "reader {reader}: {key:?} went back in time");
            *last = newest_version;
        }
        rounds += 1;
    }
    rounds
}

/// Every acknowledged write is in its key's history with its value.
fn check_every_acked_write_is_readable(db: &Db, acked: &[Acked]) {
    let mut histories: BTreeMap<Vec<u8>, BTreeMap<Version, Option<Vec<u8>>>> = BTreeMap::new();
    for (key, version, value) in acked {
        let history = histories.entry(key.clone()).or_insert_with(|| {
            let items = db.history(key).unwrap();
            items
                .map(|item| item.map(|(v, value)| (v, value.map(|b| b.to_vec()))))
                .collect::<Result<_, _>>()
                .unwrap()
        });
        assert_eq!(history.get(version), Some(value), "{key:?} at {version:?}");
    }
    let versions: usize = histories.values().map(BTreeMap::len).sum();
    assert_eq!(versions, acked.len(), "no version that was not acknowledged");
    assert_eq!(db.changes(.., ..).unwrap().count(), acked.len(), "changes(.., ..)");
}

fn writers_and_readers(durability: Durability, write_count: usize) {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default().durability(durability).memtable_bytes_max(MEMTABLE_BYTES);
    let db = backend::open(dir.path(), options).unwrap();
    let done = AtomicBool::new(false);
    let acked_versions: Vec<AtomicU64> = (0..WRITER_COUNT).map(|_| AtomicU64::new(0)).collect();
    let (acked, rounds) = std::thread::scope(|scope| {
        let readers: Vec<_> = (0..READER_COUNT)
            .map(|reader| {
                let (db, done, acked_versions) = (&db, &done, &acked_versions);
                scope.spawn(move || run_reader(db, reader, done, acked_versions))
            })
            .collect();
        let writers: Vec<_> = (0..WRITER_COUNT)
            .map(|writer| {
                let (db, acked_version) = (&db, &acked_versions[writer]);
                scope.spawn(move || run_writer(db, writer, write_count, acked_version))
            })
            .collect();
        let acked: Vec<Acked> = writers.into_iter().flat_map(|w| w.join().unwrap()).collect();
        done.store(true, Ordering::Release);
        let rounds: Vec<usize> = readers.into_iter().map(|r| r.join().unwrap()).collect();
        (acked, rounds)
    });
    let flushes = db.stats().flushes;
    check_every_acked_write_is_readable(&db, &acked);
    db.close().unwrap();
    drop(db);
    let db = backend::open(dir.path(), Options::default().durability(durability)).unwrap();
    check_every_acked_write_is_readable(&db, &acked);
    eprintln!(
        "{durability:?}: {} acknowledged writes, {flushes} flushes during the test, reader rounds \
         {rounds:?}, {:.1?}",
        acked.len(),
        started.elapsed()
    );
    assert!(flushes >= 3, "{durability:?}: only {flushes} flushes ran during the test");
    // Scans fail beyond 64 tiers (see `scans_fail_once_there_are_more_than_64_segments`), so
    // the test keeps below that.
    assert!(flushes < 60, "{durability:?}: {flushes} flushes; lower the write count");
    assert!(rounds.iter().all(|&r| r >= 3), "{durability:?}: readers ran {rounds:?} rounds");
}

#[test]
fn snapshots_never_change_under_writers_and_flushes_unsynced() {
    writers_and_readers(Durability::None, 700);
}

#[test]
fn snapshots_never_change_under_writers_and_flushes_synced() {
    writers_and_readers(Durability::Sync, 300);
}

/// A range iterator started before many writes and flushes keeps yielding exactly the data as
/// of its start: the memtables and segments it reads stay alive while it holds them.
#[test]
fn a_range_iterator_held_across_flushes_yields_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let options =
        Options::default().durability(Durability::None).memtable_bytes_max(MEMTABLE_BYTES);
    let db = backend::open(dir.path(), options).unwrap();
    let key_count = 400;
    for index in 0..key_count {
        db.put(&key(0, index), &value(0, index)).unwrap();
    }
    db.flush().unwrap();
    for index in (0..key_count).step_by(2) {
        db.put(&key(0, index), &value(1, index)).unwrap(); // in the memtable
    }
    let expected: Vec<(Vec<u8>, Vec<u8>)> = (0..key_count)
        .map(|index| (key(0, index), value(usize::from(index % 2 == 0), index)))
        .collect();
    let mut iterator = db.range(..).unwrap();
    let mut seen: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for _ in 0..10 {
        let (k, v) = iterator.next().unwrap().unwrap();
        seen.push((k.to_vec(), v.to_vec()));
    }
    let flushes_before = db.stats().flushes;
    for round in 2..6 {
        for index in 0..key_count {
            db.put(&key(0, index), &value(round, index)).unwrap();
        }
        db.delete(&key(0, 11)).unwrap();
        db.flush().unwrap();
    }
    assert!(db.stats().flushes >= flushes_before + 4, "flushes ran while the iterator was held");
    for item in iterator {
        let (k, v) = item.unwrap();
        seen.push((k.to_vec(), v.to_vec()));
    }
    assert_eq!(seen.len(), expected.len());
    assert!(seen == expected, "the held iterator yielded other data than at its start");
    let latest = db.get(&key(0, 12)).unwrap().unwrap();
    assert_eq!(&*latest, value(5, 12).as_slice());
}

/// 64 flushes with the default options: background compaction keeps the level-0 segment
/// count below its trigger (moving them into level 1), and every scan sees every key (scans over more tiers than the merge fan-in are
/// covered by `compaction_retention::scans_merge_more_tiers_than_the_merge_fan_in`).
#[test]
fn scans_keep_working_over_many_flushes() {
    let io = zverse_tests::sim_io::SimIo::new();
    let options = Options::default().durability(Durability::None);
    let db = Db::open_with_io("/db", options, std::sync::Arc::new(io)).unwrap();
    for index in 0..64 {
        db.put(&key(0, index), b"v").unwrap();
        db.flush().unwrap();
    }
    db.put(&key(1, 0), b"in the memtable").unwrap();
    // Compaction runs on its own thread, after the flushes: give it a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while db.stats().segment_count_open >= 8 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(db.stats().segment_count_open < 8, "{:?}", db.stats());
    assert_eq!(db.get(&key(0, 5)).unwrap().as_deref(), Some(&b"v"[..]), "point reads work");
    assert_eq!(db.range(..).unwrap().map(Result::unwrap).count(), 65);
}

/// `close()` while writers are writing: every write returns (none hangs), the ones after the
/// close fail with `Closed`, and every acknowledged write is there after a reopen.
#[test]
fn close_while_writers_write_loses_no_acknowledged_write() {
    for durability in [Durability::Sync, Durability::None] {
        let dir = tempfile::tempdir().unwrap();
        // Large enough that the tier count stays far below the scan limit of 64 however fast
        // the writers are.
        let options = Options::default().durability(durability).memtable_bytes_max(4 << 20);
        let db = backend::open(dir.path(), options).unwrap();
        let acked: Vec<Acked> = std::thread::scope(|scope| {
            let writers: Vec<_> = (0..WRITER_COUNT)
                .map(|writer| {
                    let db = &db;
                    scope.spawn(move || {
                        let mut acked = Vec::new();
                        for sequence in 0.. {
                            let (key, value) = (key(writer, sequence), value(writer, sequence));
                            match db.put(&key, &value) {
                                Ok(version) => acked.push((key, version, Some(value))),
                                Err(zverse::Error::Closed) => return acked,
                                Err(other) => panic!("{durability:?}: writer {writer}: {other}"),
                            }
                        }
                        unreachable!("writers stop at the close")
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_millis(100));
            db.close().unwrap();
            writers.into_iter().flat_map(|w| w.join().unwrap()).collect()
        });
        assert!(!acked.is_empty(), "{durability:?}: writes ran before the close");
        drop(db);
        let db = backend::open(dir.path(), Options::default().durability(durability)).unwrap();
        check_every_acked_write_is_readable(&db, &acked);
    }
}
