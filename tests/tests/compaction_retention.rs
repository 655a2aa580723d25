//! Compaction merges segments and applies retention; snapshots pin what they read; readers
//! keep the segments they started with.

use zverse::{Db, Durability, Options, Retention, Version};
use zverse_tests::backend;

fn options(retention: Retention) -> Options {
    Options::default()
        .durability(Durability::None)
        .retention(retention)
        .memtable_bytes_max(4 << 10)
        .compaction_trigger_segments(1_000)
}

fn segment_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".seg"))
        .count()
}

/// Five rounds of writes to 100 keys, a flush after each: five segments.
fn write_rounds(db: &Db) -> Vec<Version> {
    let mut round_versions = Vec::new();
    for round in 0..5u32 {
        let mut last = Version::ZERO;
        for key in 0..100u32 {
            let key = format!("k{key:03}");
            last = if round == 3 && key == "k007" {
                db.delete(key.as_bytes()).unwrap()
            } else {
                db.put(key.as_bytes(), format!("r{round}").as_bytes()).unwrap()
            };
        }
        db.flush().unwrap();
        round_versions.push(last);
    }
    round_versions
}

#[test]
fn retention_all_keeps_every_version_through_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options(Retention::All)).unwrap();
    let rounds = write_rounds(&db);
    assert!(db.stats().segment_count >= 5);
    db.compact().unwrap();
    let stats = db.stats();
    assert_eq!(stats.level_segment_counts, [0, 1], "one current segment, at level 1");
    assert!(stats.history_segment_count >= 1, "the older versions were demoted: {stats:?}");
    assert_eq!(stats.history_reads, 0);
    let files = stats.segment_count;
    assert_eq!(segment_files(dir.path()), files, "retired inputs are deleted");
    assert_eq!(db.history(b"k042").unwrap().count(), 5);
    for (round, &version) in rounds.iter().enumerate() {
        let value = db.get_at(b"k042", version).unwrap().unwrap();
        assert_eq!(value.to_vec(), format!("r{round}").into_bytes());
    }
    assert_eq!(db.get_at(b"k007", rounds[3]).unwrap(), None);
    drop(db);
    let db = backend::open(dir.path(), options(Retention::All)).unwrap();
    assert_eq!(db.history(b"k042").unwrap().count(), 5);
}

#[test]
fn retention_by_count_keeps_the_newest_versions_and_snapshots_pin_older_ones() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options(Retention::Versions(2))).unwrap();
    let mut rounds = write_rounds(&db)[..2].to_vec();
    rounds.truncate(2);
    // A snapshot taken now pins round 4's values (the newest when it was taken).
    let snapshot = db.snapshot();
    db.put(b"k042", b"r5").unwrap();
    db.compact().unwrap();
    let history: Vec<_> =
        db.history(b"k042").unwrap().map(|r| r.unwrap().1.unwrap().to_vec()).collect();
    assert_eq!(history, [b"r5".to_vec(), b"r4".to_vec()], "the newest two versions");
    assert_eq!(snapshot.get(b"k042").unwrap().unwrap(), b"r4");
    assert_eq!(db.history(b"k001").unwrap().count(), 2, "r4 and r3 of an untouched key");
    // k007 was deleted in round 3 and rewritten in round 4: its two newest are r4 and the
    // tombstone. The tombstone is the floor (rule 2 of `KeyGc`) with nothing older surviving
    // at the bottom, so it goes. Its older puts went too, so a read below r4 could be wrong
    // (below the tombstone, r2's value is gone): it is refused, below the horizon.
    let k007: Vec<_> = db.history(b"k007").unwrap().map(|r| r.unwrap().1.is_some()).collect();
    assert_eq!(k007, [true]);
    let r4 = db.history(b"k007").unwrap().next().unwrap().unwrap().0;
    let before_r4 = Version::new(r4.get() - 1);
    assert!(db.horizon() > before_r4, "{}", db.horizon());
    assert!(matches!(db.get_at(b"k007", before_r4), Err(zverse::Error::BelowHorizon { .. })));
    assert_eq!(db.get_at(b"k007", db.horizon()).unwrap().as_deref(), Some(&b"r4"[..]));
    let _ = rounds;
}

#[test]
fn a_deleted_key_disappears_at_the_bottom_when_nothing_pins_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options(Retention::Versions(1))).unwrap();
    db.put(b"gone", b"1").unwrap();
    db.flush().unwrap();
    db.delete(b"gone").unwrap();
    db.put(b"kept", b"1").unwrap();
    db.compact().unwrap();
    assert_eq!(db.history(b"gone").unwrap().count(), 0);
    assert_eq!(db.history(b"kept").unwrap().count(), 1);
    assert_eq!(db.stats().versions, 1);
}

#[test]
fn a_reader_keeps_its_segments_across_a_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options(Retention::Versions(1))).unwrap();
    write_rounds(&db);
    let inputs = segment_files(dir.path());
    assert!(inputs >= 5);
    let mut range = db.range(..).unwrap();
    let first = range.next().unwrap().unwrap();
    db.compact().unwrap();
    assert_eq!(segment_files(dir.path()), 1 + inputs, "inputs stay while a reader holds them");
    let rest: Vec<_> = range.map(Result::unwrap).collect();
    assert_eq!(rest.len() + 1, 100, "every key, k007 rewritten after its delete");
    assert_eq!(first.0, b"k000");
    drop(rest);
    assert_eq!(segment_files(dir.path()), 2, "the value still read keeps its one segment");
    drop(first);
    assert_eq!(segment_files(dir.path()), 1, "the last reader let go: inputs deleted");
}

#[test]
fn background_compaction_keeps_the_segment_count_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let db =
        backend::open(dir.path(), options(Retention::All).compaction_trigger_segments(4)).unwrap();
    for round in 0..12u32 {
        for key in 0..50u32 {
            db.put(format!("k{key:03}").as_bytes(), format!("r{round}").as_bytes()).unwrap();
        }
        db.flush().unwrap();
        // Compaction runs on its own thread, after the flush: give it a moment.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while db.stats().segment_count_open >= 4 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let stats = db.stats();
        assert!(stats.segment_count_open < 4, "round {round}: {stats:?}");
        assert!(stats.level_segment_counts.iter().skip(1).sum::<usize>() <= 1, "{stats:?}");
        assert!(stats.history_segment_count <= round as usize / 3 + 1, "{stats:?}");
    }
    assert_eq!(db.history(b"k010").unwrap().count(), 12);
}

#[test]
fn scans_merge_more_tiers_than_the_merge_fan_in() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options(Retention::All)).unwrap();
    let mut first = None;
    for round in 0..70u32 {
        let version =
            db.put(format!("k{:02}", round % 7).as_bytes(), format!("r{round}").as_bytes());
        first.get_or_insert(version.unwrap());
        db.flush().unwrap();
    }
    assert!(db.stats().segment_count > 64, "{:?}", db.stats());
    let latest: Vec<_> = db.range(..).unwrap().map(|r| r.unwrap().1.to_vec()).collect();
    let expected: Vec<_> = (63..70).map(|r| format!("r{r}").into_bytes()).collect();
    assert_eq!(latest, expected, "the newest tier wins each key");
    assert_eq!(db.changes(.., first.unwrap()..).unwrap().count(), 70);
    assert_eq!(db.history(b"k03").unwrap().count(), 10);
}
