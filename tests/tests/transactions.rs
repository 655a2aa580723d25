//! Transactions: the SurrealDB-shaped surface (read-your-writes in gets and scans, limits,
//! reverse scans, conditions, savepoints, closed and read-only states, as-of reads, all
//! versions, a caller's commit version), the bound on what a transaction tracks, and
//! `Db::update` / `Db::compare_and_swap`, whose conflict check is the transactions' own.

use std::collections::BTreeMap;
use std::ops::Bound;

use zverse::{Conflict, Db, Durability, Error, Isolation, Options, Slice, Version};
use zverse_tests::backend;

fn open(path: &std::path::Path) -> Db {
    backend::open(path, Options::default().durability(Durability::None)).expect("open")
}

fn pairs(found: &[(Slice, Slice)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    found.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
}

fn bytes(value: Option<Slice>) -> Option<Vec<u8>> {
    value.map(|v| v.to_vec())
}

#[test]
fn reads_see_the_start_snapshot_plus_own_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    db.put(b"a", b"1").unwrap();
    db.put(b"b", b"2").unwrap();
    let mut tx = db.transaction();
    db.put(b"c", b"3").unwrap(); // after the start: invisible to tx
    tx.set(b"b", b"20").unwrap();
    tx.set(b"d", b"4").unwrap();
    tx.del(b"a").unwrap();
    assert_eq!(bytes(tx.get(b"b", None).unwrap()), Some(b"20".to_vec()));
    assert_eq!(tx.get(b"a", None).unwrap(), None);
    assert!(!tx.exists(b"c", None).unwrap());
    let expected = vec![(b"b".to_vec(), b"20".to_vec()), (b"d".to_vec(), b"4".to_vec())];
    assert_eq!(pairs(&tx.scan(.., usize::MAX, None).unwrap()), expected);
    let reversed: Vec<_> = expected.iter().rev().cloned().collect();
    assert_eq!(pairs(&tx.scanr(.., usize::MAX, None).unwrap()), reversed);
    assert_eq!(pairs(&tx.scanr(.., 1, None).unwrap()), reversed[..1]);
    assert_eq!(tx.keys(.., 1, None).unwrap(), [Slice::from(b"b".to_vec())]);
    assert_eq!(tx.keysr(.., 1, None).unwrap(), [Slice::from(b"d".to_vec())]);
    // As of a version: committed data only, not the transaction's writes.
    let start = tx.start_version();
    assert_eq!(bytes(tx.get(b"a", Some(start)).unwrap()), Some(b"1".to_vec()));
    assert_eq!(tx.getm(&[b"a", b"b"], Some(start)).unwrap().len(), 2);
    let version = tx.commit().unwrap().expect("it wrote");
    assert!(version > start);
    assert_eq!(db.get(b"a").unwrap(), None);
    assert_eq!(bytes(db.get(b"b").unwrap()), Some(b"20".to_vec()));
    assert_eq!(bytes(db.get_at(b"d", version).unwrap()), Some(b"4".to_vec()));
}

/// Random committed data and random transaction writes; every scan and reverse scan, with
/// random bounds and limits, equals the same query on a `BTreeMap` model.
#[test]
fn scans_match_a_model_of_snapshot_plus_writes() {
    let seed = std::env::var("ZVERSE_SEED").ok().and_then(|s| s.parse().ok());
    let seed = seed.unwrap_or_else(|| fastrand::u64(..));
    eprintln!("seed {seed} (ZVERSE_SEED={seed} repeats it)");
    let mut rng = fastrand::Rng::with_seed(seed);
    let key = |rng: &mut fastrand::Rng| vec![b'k', rng.u8(b'a'..=b'p')];
    for round in 0..20 {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(dir.path());
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for _ in 0..rng.usize(0..12) {
            let k = key(&mut rng);
            db.put(&k, &k).unwrap();
            model.insert(k.clone(), k);
        }
        if rng.bool() {
            db.flush().unwrap();
        }
        let mut tx = db.transaction_with(Isolation::Serializable);
        for _ in 0..rng.usize(0..12) {
            let k = key(&mut rng);
            if rng.bool() {
                tx.set(&k, b"own").unwrap();
                model.insert(k, b"own".to_vec());
            } else {
                tx.del(&k).unwrap();
                model.remove(&k);
            }
        }
        for _ in 0..20 {
            let (a, b) = (key(&mut rng), key(&mut rng));
            let (low, high) = if a <= b { (a, b) } else { (b, a) };
            let limit = rng.usize(1..6);
            let want: Vec<_> = model.range(low.clone()..high.clone()).map(clone_pair).collect();
            let got = pairs(&tx.scan(low.as_slice()..high.as_slice(), limit, None).unwrap());
            assert_eq!(got, want[..want.len().min(limit)], "seed {seed} round {round}");
            let want_rev: Vec<_> = want.iter().rev().take(limit).cloned().collect();
            let got = pairs(&tx.scanr(low.as_slice()..high.as_slice(), limit, None).unwrap());
            assert_eq!(got, want_rev, "seed {seed} round {round} (reverse)");
        }
    }
}

fn clone_pair((k, v): (&Vec<u8>, &Vec<u8>)) -> (Vec<u8>, Vec<u8>) {
    (k.clone(), v.clone())
}

#[test]
fn conditional_writes_check_the_transactions_view() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    db.put(b"k", b"v1").unwrap();
    let mut tx = db.transaction();
    assert!(matches!(tx.put(b"k", b"x"), Err(Error::KeyExists { key }) if key == b"k"));
    tx.put(b"new", b"n").unwrap();
    assert!(matches!(tx.put(b"new", b"again"), Err(Error::KeyExists { .. })));
    assert!(matches!(tx.putc(b"k", b"x", Some(b"other")), Err(Error::ConditionNotMet { .. })));
    tx.putc(b"k", b"v2", Some(b"v1")).unwrap();
    tx.putc(b"absent", b"a", None).unwrap();
    assert!(matches!(tx.delc(b"k", Some(b"v1")), Err(Error::ConditionNotMet { .. })));
    tx.delc(b"k", Some(b"v2")).unwrap();
    tx.commit().unwrap();
    assert_eq!(db.get(b"k").unwrap(), None);
    assert_eq!(bytes(db.get(b"new").unwrap()), Some(b"n".to_vec()));
    assert_eq!(bytes(db.get(b"absent").unwrap()), Some(b"a".to_vec()));
}

#[test]
fn delr_deletes_every_key_the_transaction_sees_in_the_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    for key in [b"a", b"b", b"c", b"d"] {
        db.put(key, b"x").unwrap();
    }
    let mut tx = db.transaction();
    tx.set(b"bb", b"own").unwrap();
    tx.delr(b"b".as_slice()..b"d".as_slice()).unwrap();
    let left: Vec<_> = tx.keys(.., usize::MAX, None).unwrap();
    assert_eq!(left, [Slice::from(b"a".to_vec()), Slice::from(b"d".to_vec())]);
    tx.commit().unwrap();
    let keys: Vec<_> = db.range(..).unwrap().map(|item| item.unwrap().0.to_vec()).collect();
    assert_eq!(keys, [b"a".to_vec(), b"d".to_vec()]);
}

#[test]
fn savepoints_nest_and_roll_back_only_their_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    let mut tx = db.transaction();
    tx.set(b"a", b"1").unwrap();
    tx.set_savepoint().unwrap();
    tx.set(b"a", b"2").unwrap();
    tx.set(b"b", b"2").unwrap();
    tx.set_savepoint().unwrap();
    tx.del(b"a").unwrap();
    tx.rollback_to_savepoint().unwrap();
    assert_eq!(bytes(tx.get(b"a", None).unwrap()), Some(b"2".to_vec()));
    tx.rollback_to_savepoint().unwrap();
    assert_eq!(bytes(tx.get(b"a", None).unwrap()), Some(b"1".to_vec()));
    assert_eq!(tx.get(b"b", None).unwrap(), None);
    assert!(matches!(tx.rollback_to_savepoint(), Err(Error::NoSavepoint)));
    tx.set_savepoint().unwrap();
    tx.set(b"c", b"3").unwrap();
    tx.release_savepoint().unwrap();
    assert!(matches!(tx.release_savepoint(), Err(Error::NoSavepoint)));
    tx.commit().unwrap();
    let all: Vec<_> = db.range(..).unwrap().map(|item| item.unwrap().0.to_vec()).collect();
    assert_eq!(all, [b"a".to_vec(), b"c".to_vec()]);
}

#[test]
fn closed_and_read_only_transactions_refuse_what_they_must() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    let mut tx = db.transaction();
    assert!(tx.writeable() && !tx.closed());
    tx.set(b"k", b"v").unwrap();
    tx.cancel().unwrap();
    assert!(tx.closed());
    assert!(matches!(tx.get(b"k", None), Err(Error::TransactionClosed)));
    assert!(matches!(tx.commit(), Err(Error::TransactionClosed)));
    assert!(matches!(tx.cancel(), Err(Error::TransactionClosed)));
    assert_eq!(db.get(b"k").unwrap(), None, "a cancelled transaction wrote nothing");
    let mut reader = db.read_transaction();
    assert!(!reader.writeable());
    assert!(matches!(reader.set(b"k", b"v"), Err(Error::TransactionReadOnly)));
    assert!(matches!(reader.delr(..), Err(Error::TransactionReadOnly)));
    db.put(b"k", b"later").unwrap();
    assert_eq!(reader.get(b"k", None).unwrap(), None);
    assert_eq!(reader.commit().unwrap(), None, "a read-only transaction never conflicts");
}

/// A read-only transaction at Serializable that read keys written since never conflicts.
#[test]
fn a_transaction_that_wrote_nothing_never_conflicts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    let mut tx = db.transaction_with(Isolation::Serializable);
    tx.get(b"k", None).unwrap();
    tx.scan(.., 10, None).unwrap();
    db.put(b"k", b"v").unwrap();
    assert_eq!(tx.commit().unwrap(), None);
}

/// A plain `put` after a transaction's start conflicts with it: the check runs against every
/// writer, not only transactions, and names the key and the newer version.
#[test]
fn a_plain_put_after_the_start_wins_over_the_transaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    let mut tx = db.transaction();
    tx.set(b"k", b"tx").unwrap();
    let put = db.put(b"k", b"plain").unwrap();
    match tx.commit() {
        Err(Error::Conflict(Conflict::Key { key, version })) => {
            assert_eq!((key, version), (b"k".to_vec(), Some(put)));
        }
        other => panic!("expected a conflict on k, got {other:?}"),
    }
    assert_eq!(bytes(db.get(b"k").unwrap()), Some(b"plain".to_vec()));
}

/// Under Serializable, a scan cut short by its limit tracks only the part it returned: a write
/// past it does not conflict, one inside does (and names the range).
#[test]
fn a_limited_scan_tracks_only_what_it_returned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    for key in [b"a", b"c", b"e"] {
        db.put(key, b"x").unwrap();
    }
    let mut tx = db.transaction_with(Isolation::Serializable);
    assert_eq!(tx.scan(.., 2, None).unwrap().len(), 2); // a, c
    tx.set(b"z", b"tx").unwrap();
    db.put(b"d", b"past the scan").unwrap();
    tx.commit().expect("d is past what the scan returned");
    let mut tx = db.transaction_with(Isolation::Serializable);
    assert_eq!(tx.scanr(.., 2, None).unwrap().len(), 2); // z, e
    tx.set(b"y", b"tx").unwrap();
    db.put(b"b", b"before the reverse scan").unwrap();
    tx.commit().expect("b is before what the reverse scan returned");
    let mut tx = db.transaction_with(Isolation::Serializable);
    tx.scan(b"a".as_slice()..b"c".as_slice(), 10, None).unwrap();
    tx.set(b"z", b"tx").unwrap();
    db.put(b"bb", b"phantom").unwrap();
    match tx.commit() {
        Err(Error::Conflict(Conflict::Range { start, end, key, .. })) => {
            assert_eq!(start, Bound::Included(b"a".to_vec()));
            assert_eq!(end, Bound::Excluded(b"c".to_vec()));
            assert_eq!(key, b"bb");
        }
        other => panic!("expected a range conflict, got {other:?}"),
    }
}

/// `transaction_bytes_max` bounds the read set: past it the operation fails with a typed error
/// and the transaction is closed, never grown further.
#[test]
fn the_read_set_is_bounded_by_transaction_bytes_max() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = Options::default().durability(Durability::None).transaction_bytes_max(4096);
    let db = backend::open(dir.path(), options).expect("open");
    let mut tx = db.transaction_with(Isolation::Serializable);
    let mut failed_at = None;
    for i in 0..1000_u32 {
        let key = format!("key/{i:06}"); // 10 bytes
        match tx.get(key.as_bytes(), None) {
            Ok(_) => {}
            Err(Error::TransactionTooLarge { bytes, bytes_max }) => {
                assert_eq!(bytes_max, 4096);
                assert!(bytes > 4096);
                failed_at = Some(i);
                break;
            }
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(failed_at, Some(409), "409 reads of 10 bytes fit in 4096");
    assert!(tx.closed());
    // At Snapshot, reads are not tracked: the same reads pass.
    let mut tx = db.transaction();
    for i in 0..1000_u32 {
        tx.get(format!("key/{i:06}").as_bytes(), None).unwrap();
    }
    // Writes count at every level.
    assert!(matches!(tx.set(b"k", &[0; 5000]), Err(Error::TransactionTooLarge { .. })));
}

#[test]
fn commit_at_keeps_the_callers_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    let last = db.put(b"k", b"v").unwrap();
    let wanted = Version::new(last.get() + 1_000_000);
    let mut tx = db.transaction();
    tx.set(b"k", b"at").unwrap();
    assert_eq!(tx.commit_at(wanted).unwrap(), Some(wanted));
    assert_eq!(bytes(db.get_at(b"k", wanted).unwrap()), Some(b"at".to_vec()));
    let mut tx = db.transaction();
    tx.set(b"k", b"too early").unwrap();
    assert!(matches!(tx.commit_at(last), Err(Error::VersionNotAfter { .. })));
}

#[test]
fn scan_all_versions_lists_history_key_ascending_newest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    let a1 = db.put(b"a", b"1").unwrap();
    let b1 = db.put(b"b", b"1").unwrap();
    let a2 = db.delete(b"a").unwrap();
    let a3 = db.put(b"a", b"3").unwrap();
    db.flush().unwrap();
    let c1 = db.put(b"c", b"1").unwrap();
    let mut tx = db.transaction();
    db.put(b"a", b"after the start").unwrap();
    let all = tx.scan_all_versions(.., usize::MAX, None).unwrap();
    let all: Vec<_> = all.into_iter().map(|(k, v, value)| (k.to_vec(), v, bytes(value))).collect();
    let expected = vec![
        (b"a".to_vec(), a3, Some(b"3".to_vec())),
        (b"a".to_vec(), a2, None),
        (b"a".to_vec(), a1, Some(b"1".to_vec())),
        (b"b".to_vec(), b1, Some(b"1".to_vec())),
        (b"c".to_vec(), c1, Some(b"1".to_vec())),
    ];
    assert_eq!(all, expected);
    assert_eq!(tx.scan_all_versions(.., 2, None).unwrap().len(), 2);
    let limited = tx.scan_all_versions(b"b".as_slice().., 1, Some(c1)).unwrap();
    assert_eq!(limited.iter().map(|e| e.1).collect::<Vec<_>>(), [b1]);
}

#[test]
fn compare_and_swap_writes_only_over_the_expected_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    assert_eq!(db.get_versioned(b"k").unwrap().map(|e| e.0), None);
    let v1 = db.compare_and_swap(b"k", None, Some(b"one")).unwrap();
    assert!(matches!(
        db.compare_and_swap(b"k", None, Some(b"again")),
        Err(Error::Conflict(Conflict::Key { version: Some(v), .. })) if v == v1
    ));
    let v2 = db.compare_and_swap(b"k", Some(v1), Some(b"two")).unwrap();
    assert!(db.compare_and_swap(b"k", Some(v1), None).is_err());
    let v3 = db.compare_and_swap(b"k", Some(v2), None).unwrap();
    let (version, value) = db.get_versioned(b"k").unwrap().expect("a tombstone is a version");
    assert_eq!((version, value), (v3, None));
}

/// Eight threads increment one counter through `Db::update` with `Durability::Sync`, so group
/// commits gather several updates of the same key: each must see the one ahead of it in its
/// group, and no increment is lost.
#[test]
fn update_from_eight_threads_loses_no_increment() {
    const THREADS: u64 = 8;
    const INCREMENTS: u64 = 200;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = backend::open(dir.path(), Options::default()).expect("open");
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                for _ in 0..INCREMENTS {
                    db.update(b"counter", |old| Some(increment(old))).unwrap();
                }
            });
        }
    });
    let counter = db.get(b"counter").unwrap().expect("written");
    assert_eq!(u64::from_le_bytes(counter[..].try_into().unwrap()), THREADS * INCREMENTS);
}

/// The same with transactions at both levels and a retry loop.
#[test]
fn transactions_from_eight_threads_lose_no_increment() {
    const THREADS: u64 = 8;
    const INCREMENTS: u64 = 100;
    for isolation in [Isolation::Snapshot, Isolation::Serializable] {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = backend::open(dir.path(), Options::default()).expect("open");
        let conflicts = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|scope| {
            for _ in 0..THREADS {
                scope.spawn(|| {
                    for _ in 0..INCREMENTS {
                        loop {
                            let mut tx = db.transaction_with(isolation);
                            let old = tx.get(b"counter", None).unwrap();
                            tx.set(b"counter", &increment(old.as_deref())).unwrap();
                            match tx.commit() {
                                Ok(_) => break,
                                Err(Error::Conflict(_)) => {
                                    conflicts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                }
                                Err(other) => panic!("{other}"),
                            }
                        }
                    }
                });
            }
        });
        let counter = db.get(b"counter").unwrap().expect("written");
        let total = u64::from_le_bytes(counter[..].try_into().unwrap());
        eprintln!("{isolation:?}: {} conflicts retried", conflicts.into_inner());
        assert_eq!(total, THREADS * INCREMENTS, "{isolation:?}");
    }
}

/// A conflict is reported only once the write it lost to is visible: a retry started right
/// after `Error::Conflict` reads that write (else it is bound to conflict again). Eight
/// threads on one counter with `Durability::Sync`, so that commit groups hold several
/// transactions on the key and most conflicts are with a write of the same group, which the
/// leader used to report before it applied the group.
#[test]
fn a_conflict_is_reported_after_the_write_it_lost_to_is_visible() {
    const THREADS: u64 = 8;
    const INCREMENTS: u64 = 50;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = backend::open(dir.path(), Options::default()).expect("open");
    let same_group = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                for _ in 0..INCREMENTS {
                    loop {
                        let mut tx = db.transaction_with(Isolation::Serializable);
                        let old = tx.get(b"counter", None).unwrap();
                        tx.set(b"counter", &increment(old.as_deref())).unwrap();
                        match tx.commit() {
                            Ok(_) => break,
                            Err(Error::Conflict(Conflict::Key { version, .. })) => {
                                let (newest, _) = db.get_versioned(b"counter").unwrap().unwrap();
                                assert!(
                                    newest > tx.start_version(),
                                    "the conflicting write (version {version:?}) is not \
                                     visible: newest {newest}, start {}",
                                    tx.start_version()
                                );
                                if version.is_none() {
                                    same_group.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                }
                            }
                            Err(other) => panic!("{other}"),
                        }
                    }
                }
            });
        }
    });
    let same_group = same_group.into_inner();
    eprintln!("{same_group} conflicts with a write of the same group");
    assert!(same_group > 0, "no conflict within a group: the test checked nothing");
}

fn increment(old: Option<&[u8]>) -> Vec<u8> {
    let old = old.map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    (old + 1).to_le_bytes().to_vec()
}

/// An inverted or empty range is a range without keys, not a panic (the model test found
/// `BTreeMap::range` panicking on the write set).
#[test]
fn an_inverted_range_scans_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    db.put(b"a", b"1").unwrap();
    db.flush().unwrap(); // a segment too
    let mut tx = db.transaction_with(Isolation::Serializable);
    tx.set(b"b", b"own").unwrap();
    assert!(tx.scan(b"c".as_slice()..b"a".as_slice(), 10, None).unwrap().is_empty());
    let excluded = (Bound::Excluded(b"b".as_slice()), Bound::Excluded(b"b".as_slice()));
    assert!(tx.scanr(excluded, 10, None).unwrap().is_empty());
    tx.delr(b"z".as_slice()..b"a".as_slice()).unwrap();
    db.put(b"c", b"after the start").unwrap();
    tx.commit().expect("no scanned range holds c");
}

/// `delr` reads its range in chunks (1,024 keys): a range of several chunks, with the
/// transaction's own writes among the committed keys, is deleted whole.
#[test]
fn delr_deletes_a_range_of_several_chunks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    let mut batch = db.batch();
    for i in 0..2_500_u32 {
        batch.put(format!("k/{i:05}").as_bytes(), b"committed");
    }
    batch.commit().unwrap();
    db.put(b"l", b"outside").unwrap();
    let mut tx = db.transaction();
    for i in (0..2_500_u32).step_by(7) {
        tx.set(format!("k/{i:05}/own").as_bytes(), b"own").unwrap();
    }
    tx.delr(b"k/".as_slice()..b"k0".as_slice()).unwrap();
    assert!(tx.scan(b"k/".as_slice()..b"k0".as_slice(), 10, None).unwrap().is_empty());
    tx.commit().unwrap();
    let left: Vec<_> = db.range(..).unwrap().map(|item| item.unwrap().0.to_vec()).collect();
    assert_eq!(left, [b"l".to_vec()]);
}

/// Every transaction pins its start snapshot, on its own thread's stripe of the pins: a
/// version pinned from any thread is kept through compaction, and a pin released from another
/// thread is released.
#[test]
fn snapshots_pinned_from_many_threads_keep_their_versions_through_compaction() {
    const THREAD_COUNT: u32 = 12;
    let dir = tempfile::tempdir().expect("tempdir");
    let options = Options::default()
        .durability(Durability::None)
        .retention(zverse::Retention::Versions(1))
        .memtable_bytes_max(4 << 10);
    let db = backend::open(dir.path(), options).expect("open");
    let db = &db;
    let mut snapshots: Vec<(u32, zverse::Snapshot)> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..THREAD_COUNT)
            .map(|thread| {
                scope.spawn(move || {
                    // Serialized by the lock, so each snapshot sees its own thread's value.
                    let _turn = PIN_TURN.lock().unwrap();
                    db.put(b"k", &thread.to_le_bytes()).unwrap();
                    (thread, db.snapshot())
                })
            })
            .collect();
        threads.into_iter().map(|thread| thread.join().unwrap()).collect()
    });
    let check = |snapshots: &[(u32, zverse::Snapshot)]| {
        for round in 0..3_u32 {
            db.put(b"k", &(THREAD_COUNT + round).to_le_bytes()).unwrap();
            db.compact().unwrap();
        }
        // Stored versions (of `k`, the only key): a history shows the newest one only.
        let version_count = db.stats().versions;
        assert!(version_count > snapshots.len() as u64, "{version_count} versions");
        for (thread, snapshot) in snapshots {
            let value = snapshot.get(b"k").unwrap().expect("the pinned value");
            assert_eq!(*value, thread.to_le_bytes(), "thread {thread}'s snapshot");
        }
    };
    check(&snapshots);
    // Released here, on another thread than the one that pinned them.
    snapshots.retain(|(thread, _)| thread % 2 == 0);
    check(&snapshots);
    assert!(db.stats().versions <= snapshots.len() as u64 + 2, "released pins let go");
}

static PIN_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
