//! The engine end to end through its public API, on real files (the backend `ZVERSE_TEST_BACKEND`
//! names): writes, every read kind, snapshots, flush to segments, reopen.

use zverse::{Db, Durability, Error, Options, Version};
use zverse_tests::backend;

fn options() -> Options {
    Options::default().durability(Durability::None).memtable_bytes_max(4 << 10)
}

#[test]
fn writes_are_readable_latest_and_as_of_every_version() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options()).unwrap();
    let v1 = db.put(b"user:1", b"alice").unwrap();
    let v2 = db.put(b"user:1", b"alicia").unwrap();
    let v3 = db.delete(b"user:1").unwrap();
    assert!(v1 < v2 && v2 < v3);
    assert_eq!(db.get(b"user:1").unwrap(), None);
    assert_eq!(db.get_at(b"user:1", v1).unwrap().unwrap(), b"alice");
    assert_eq!(db.get_at(b"user:1", v2).unwrap().unwrap(), b"alicia");
    assert_eq!(db.get_at(b"user:1", Version::new(v1.get() - 1)).unwrap(), None);
    let history: Vec<_> = db.history(b"user:1").unwrap().map(Result::unwrap).collect();
    let history: Vec<_> =
        history.into_iter().map(|(v, value)| (v, value.map(|b| b.to_vec()))).collect();
    assert_eq!(
        history,
        [(v3, None), (v2, Some(b"alicia".to_vec())), (v1, Some(b"alice".to_vec()))]
    );
}

#[test]
fn data_survives_flushes_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut versions = Vec::new();
    {
        let db = backend::open(dir.path(), options()).unwrap();
        for round in 0..5u32 {
            for key in 0..200u32 {
                let value = format!("value-{round}-{key}");
                versions
                    .push(db.put(format!("key:{key:05}").as_bytes(), value.as_bytes()).unwrap());
            }
            if round == 2 {
                db.flush().unwrap();
            }
        }
        let stats = db.stats();
        // Counted as flushes: background compaction may have merged the segments already.
        assert!(stats.flushes >= 2, "small memtables flushed: {stats:?}");
        db.close().unwrap();
        assert!(matches!(db.get(b"key:00001"), Err(Error::Closed)));
    }
    let db = backend::open(dir.path(), options()).unwrap();
    assert_eq!(db.get(b"key:00007").unwrap().unwrap(), b"value-4-7");
    let at_round_one = versions[200 + 199];
    assert_eq!(db.get_at(b"key:00007", at_round_one).unwrap().unwrap(), b"value-1-7");
    let range: Vec<_> = db
        .range(b"key:00010".as_slice()..b"key:00013".as_slice())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let keys: Vec<_> = range.iter().map(|(k, _)| k.to_vec()).collect();
    assert_eq!(keys, [b"key:00010".to_vec(), b"key:00011".to_vec(), b"key:00012".to_vec()]);
    assert!(range.iter().all(|(_, v)| v.starts_with(b"value-4-")));
    let old: Vec<_> = db.range_at(.., at_round_one).unwrap().map(Result::unwrap).collect();
    assert_eq!(old.len(), 200);
    assert!(old.iter().all(|(_, v)| v.starts_with(b"value-1-")));
    let window = versions[400]..=versions[409];
    let changes: Vec<_> = db.changes(.., window).unwrap().map(Result::unwrap).collect();
    assert_eq!(changes.len(), 10);
    assert_eq!(db.history(b"key:00003").unwrap().count(), 5);
}

#[test]
fn a_snapshot_never_changes() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options()).unwrap();
    db.put(b"k", b"before").unwrap();
    let snapshot = db.snapshot();
    db.put(b"k", b"after").unwrap();
    db.flush().unwrap();
    assert_eq!(snapshot.get(b"k").unwrap().unwrap(), b"before");
    assert_eq!(db.get(b"k").unwrap().unwrap(), b"after");
    let batch_version = {
        let mut batch = db.batch();
        batch.put(b"a", b"1").delete(b"k").put(b"b", b"2");
        batch.commit().unwrap()
    };
    assert_eq!(db.get(b"k").unwrap(), None);
    assert_eq!(db.history(b"a").unwrap().next().unwrap().unwrap().0, batch_version);
    assert_eq!(snapshot.range(..).unwrap().count(), 1);
}

#[test]
fn a_second_open_is_locked_and_a_foreign_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options()).unwrap();
    assert!(matches!(backend::open(dir.path(), options()), Err(Error::Locked { .. })));
    drop(db);
    let foreign = tempfile::tempdir().unwrap();
    std::fs::write(foreign.path().join("notes.txt"), b"mine").unwrap();
    assert!(matches!(backend::open(foreign.path(), options()), Err(Error::NotADatabase { .. })));
    assert_eq!(std::fs::read(foreign.path().join("notes.txt")).unwrap(), b"mine");
}

#[test]
fn oversized_input_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options()).unwrap();
    let key = vec![b'k'; 65_536];
    assert!(matches!(db.put(&key, b"v"), Err(Error::KeyTooLarge { len: 65_536 })));
    let mut batch = db.batch();
    batch.put(b"fine", b"v").put(&key, b"v");
    assert!(matches!(batch.commit(), Err(Error::KeyTooLarge { .. })));
    assert_eq!(db.get(b"fine").unwrap(), None);
    assert_eq!(db.stats().commit_records, 0);
}

#[test]
fn concurrent_writers_share_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), Options::default().durability(Durability::Sync)).unwrap();
    std::thread::scope(|scope| {
        for thread in 0..4u32 {
            let db = &db;
            scope.spawn(move || {
                for i in 0..200u32 {
                    db.put(format!("t{thread}:{i}").as_bytes(), b"v").unwrap();
                }
            });
        }
    });
    let stats = db.stats();
    assert_eq!(stats.commit_records, 800);
    assert_eq!(db.range(..).unwrap().count(), 800);
    eprintln!("800 Sync writes from 4 threads took {} syncs", stats.commit_groups);
}

#[test]
fn flush_gets_its_turn_under_a_steady_stream_of_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options().memtable_bytes_max(1 << 20)).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        for thread in 0..4u32 {
            let (db, stop) = (&db, &stop);
            scope.spawn(move || {
                let mut i = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    db.put(format!("t{thread}:{i}").as_bytes(), b"v").unwrap();
                    i += 1;
                }
            });
        }
        for _ in 0..3 {
            std::thread::sleep(std::time::Duration::from_millis(50));
            db.flush().unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    assert!(db.stats().flushes >= 3, "{:?}", db.stats());
}

#[test]
fn commit_at_keeps_a_chosen_version_only_above_every_version_handed_out() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options()).unwrap();
    let ahead = Version::new(db.put(b"a", b"1").unwrap().get() + 1_000_000);
    let mut batch = db.batch();
    batch.put(b"b", b"restored");
    assert_eq!(batch.commit_at(ahead).unwrap(), ahead);
    assert_eq!(db.history(b"b").unwrap().next().unwrap().unwrap().0, ahead);
    let mut stale = db.batch();
    stale.put(b"c", b"too old");
    assert!(matches!(stale.commit_at(ahead), Err(Error::VersionNotAfter { .. })));
    assert_eq!(db.get(b"c").unwrap(), None);
    assert!(db.put(b"d", b"after").unwrap() > ahead, "the clock moved past the chosen version");
    drop(db);
    let db = backend::open(dir.path(), options()).unwrap();
    assert_eq!(db.history(b"b").unwrap().next().unwrap().unwrap().0, ahead);
}

#[test]
fn periodic_durability_syncs_within_its_period() {
    use std::sync::Arc;
    use zverse_tests::sim_io::{CrashVariant, SimIo};
    let io = SimIo::new();
    // The first periodic sync comes a period after open: long enough that the check right after
    // the write runs before it.
    let period = std::time::Duration::from_secs(1);
    let options = Options::default().durability(Durability::Periodic(period));
    let db = Db::open_with_io("/db", options.clone(), Arc::new(io.clone())).unwrap();
    db.put(b"k", b"v").unwrap();
    let unsynced = io.after_crash(CrashVariant::LoseUnsynced);
    let lost = Db::open_with_io("/db", options.clone(), Arc::new(unsynced)).unwrap();
    assert_eq!(lost.get(b"k").unwrap(), None, "right after the write it is not yet durable");
    drop(lost);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let crashed = io.after_crash(CrashVariant::LoseUnsynced);
        let reopened = Db::open_with_io("/db", options.clone(), Arc::new(crashed)).unwrap();
        if reopened.get(b"k").unwrap().is_some() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the periodic sync never happened");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    drop(db);
}
