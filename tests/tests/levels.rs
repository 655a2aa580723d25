//! Current levels and history segments: a snapshot reads what compaction demoted, latest reads
//! never open a history segment, background compaction moves segments down the levels and
//! merges small history segments, and every version stays readable throughout.

use std::ops::Bound;

use zverse::{Db, Version};
use zverse_tests::backend;
use zverse_tests::tiny_tiers_options as options;

/// The segment target `tiny_tiers_options` sets.
const TARGET_BYTES: u64 = 4 << 10;

fn key(index: u32) -> Vec<u8> {
    format!("key:{index:05}").into_bytes()
}

/// Writes `rounds` rounds over `count` keys (round `r` writes `r{r}` to every key), flushing
/// after each round; returns the version each round ended at.
fn write_rounds(db: &Db, count: u32, rounds: u32) -> Vec<Version> {
    let mut ends = Vec::new();
    for round in 0..rounds {
        let mut last = Version::ZERO;
        for index in 0..count {
            last = db.put(&key(index), format!("r{round}:{index}").as_bytes()).unwrap();
        }
        db.flush().unwrap();
        ends.push(last);
    }
    ends
}

#[test]
fn a_snapshot_reads_the_version_compaction_demoted() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options()).unwrap();
    db.put(b"k", b"old").unwrap();
    let old = db.put(b"other", b"x").unwrap();
    let snapshot = db.snapshot();
    db.put(b"k", b"new").unwrap();
    db.compact().unwrap();
    let stats = db.stats();
    assert!(stats.history_segment_count >= 1, "the old version was demoted: {stats:?}");
    assert_eq!(stats.segment_count_open, 0, "{stats:?}");
    let before = db.stats().history_reads;
    assert_eq!(db.get(b"k").unwrap().unwrap(), b"new");
    assert_eq!(db.stats().history_reads, before, "a latest read opens no history segment");
    assert_eq!(snapshot.get(b"k").unwrap().unwrap(), b"old");
    assert_eq!(db.get_at(b"k", old).unwrap().unwrap(), b"old");
    assert!(db.stats().history_reads > before, "an older read does");
    let range: Vec<_> = snapshot.range(..).unwrap().map(|r| r.unwrap().1.to_vec()).collect();
    assert_eq!(range, [b"old".to_vec(), b"x".to_vec()]);
    let versions: Vec<_> = db.history(b"k").unwrap().map(|r| r.unwrap().1.unwrap()).collect();
    assert_eq!(versions, [&b"new"[..], b"old"]);
    let changes = db.changes(.., ..=old).unwrap().count();
    assert_eq!(changes, 2, "k's old version from history, other's from level 1");
}

#[test]
fn latest_reads_open_no_history_segment_and_older_reads_find_every_round() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options()).unwrap();
    let ends = write_rounds(&db, 300, 6);
    db.compact().unwrap();
    let stats = db.stats();
    assert!(stats.level_segment_counts.len() >= 3, "more than one level: {stats:?}");
    assert!(stats.history_segment_count >= 2, "{stats:?}");
    let before = stats.history_reads;
    for index in [0, 7, 150, 299] {
        let value = db.get(&key(index)).unwrap().unwrap();
        assert_eq!(value.to_vec(), format!("r5:{index}").into_bytes());
    }
    assert_eq!(db.range(..).unwrap().count(), 300);
    let middle = db.range(key(100)..key(200)).unwrap().rev().count();
    assert_eq!(middle, 100);
    assert_eq!(db.get_at(&key(3), Version::MAX).unwrap().unwrap(), b"r5:3");
    assert_eq!(db.stats().history_reads, before, "latest reads opened a history segment");
    for (round, &end) in ends.iter().enumerate() {
        let value = db.get_at(&key(42), end).unwrap().unwrap();
        assert_eq!(value.to_vec(), format!("r{round}:42").into_bytes());
        let values: Vec<_> =
            db.range_at(key(10)..key(13), end).unwrap().map(|r| r.unwrap().1.to_vec()).collect();
        let expected: Vec<_> = (10..13).map(|i| format!("r{round}:{i}").into_bytes()).collect();
        assert_eq!(values, expected, "round {round}");
    }
    assert_eq!(db.history(&key(42)).unwrap().count(), 6);
    let window = (Bound::Excluded(ends[1]), Bound::Included(ends[2]));
    assert_eq!(db.changes(.., window).unwrap().count(), 300, "round 2's writes");
    assert!(db.stats().history_reads > before);
}

/// A level-0 step takes every level-0 segment, whatever the fan-in: at fan-in 2 it took one,
/// and level 0 stayed one segment under its trigger.
#[test]
fn a_level_0_step_takes_every_level_0_segment() {
    let dir = tempfile::tempdir().unwrap();
    let options = options().compaction_fan_in(2).compaction_trigger_segments(4);
    let db = backend::open(dir.path(), options.level_base_bytes(1 << 30)).unwrap();
    for round in 0..4 {
        for index in 0..20 {
            db.put(&key(round * 100 + index), b"value").unwrap();
        }
        db.flush().unwrap();
    }
    db.wait_for_compact().unwrap();
    let stats = db.stats();
    assert_eq!(stats.level_segment_counts.first(), Some(&0), "level 0 emptied: {stats:?}");
    assert_eq!(stats.compactions, 1, "in one step: {stats:?}");
    assert_eq!(db.range(..).unwrap().count(), 80);
}

#[test]
fn background_compaction_moves_segments_down_the_levels() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options()).unwrap();
    write_rounds(&db, 400, 8);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while db.stats().segment_count_open >= 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Small history segments are merged once `compaction_trigger_segments` of them exist:
    // at most one below half the target stays.
    let history_bounded = |stats: &zverse::Stats| {
        stats.history_segment_count as u64 <= stats.history_bytes / (TARGET_BYTES / 2) + 1
    };
    while !history_bounded(&db.stats()) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let stats = db.stats();
    assert!(history_bounded(&stats), "{stats:?}");
    assert!(stats.segment_count_open < 2, "{stats:?}");
    assert!(stats.level_segment_counts.len() >= 3, "level 2 reached: {stats:?}");
    assert!(stats.bytes_demoted > 0, "{stats:?}");
    assert_eq!(db.range(..).unwrap().count(), 400);
    assert_eq!(db.history(&key(399)).unwrap().count(), 8);
    db.check().unwrap();
    drop(db);
    let db = backend::open(dir.path(), options()).unwrap();
    let reopened = db.stats();
    assert!(reopened.level_segment_counts.len() >= 3, "levels reopened: {reopened:?}");
    assert_eq!(db.history(&key(0)).unwrap().count(), 8);
}

#[test]
fn small_history_segments_are_merged_and_every_version_stays() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options()).unwrap();
    write_rounds(&db, 400, 1);
    // Many steps that each demote a few versions: a small history segment each.
    for round in 1..=30u32 {
        for index in (round % 7..400).step_by(80) {
            db.put(&key(index), format!("r{round}:{index}").as_bytes()).unwrap();
        }
        db.flush().unwrap();
    }
    let small_count = |stats: &zverse::Stats| {
        stats.history_segment_count as u64 > stats.history_bytes / (TARGET_BYTES / 2) + 1
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while (db.stats().segment_count_open >= 2 || small_count(&db.stats()))
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let stats = db.stats();
    assert!(stats.bytes_demoted > 0 && !small_count(&stats), "{stats:?}");
    let versions: usize = (0..400).map(|i| db.history(&key(i)).unwrap().count()).sum();
    assert_eq!(versions, 400 + 30 * 5, "every version, in current levels or history");
    db.check().unwrap();
}

#[test]
fn changes_opens_each_history_segment_only_when_it_reaches_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options()).unwrap();
    let ends = write_rounds(&db, 300, 6);
    db.compact().unwrap();
    let history_segments = db.stats().history_segment_count;
    assert!(history_segments >= 2, "{:?}", db.stats());
    // Every round is in the window, so every history segment overlaps it.
    let window = (Bound::Unbounded, Bound::Included(ends[5]));
    let before = db.stats().history_reads;
    let first = db.changes(.., window).unwrap().next().unwrap().unwrap();
    assert!(first.version <= ends[5]);
    assert_eq!(db.stats().history_reads, before, "the first hit came from a current segment");
    let all: Vec<_> = db.changes(.., window).unwrap().map(Result::unwrap).collect();
    assert_eq!(all.len(), 300 * 6, "every version once");
    let opened = db.stats().history_reads - before;
    assert_eq!(opened, history_segments as u64, "each history segment opened once");
}

/// Writes `count` fresh keys named `name:i` twice (64-byte values) and compacts: the first
/// versions go to history, in segments holding this round's versions only. Returns the first
/// pass's version range.
fn round_of_fresh_keys(db: &Db, name: &str, count: u32) -> (Version, Version) {
    let mut first_pass = (Version::MAX, Version::ZERO);
    for pass in 0..2u32 {
        for index in 0..count {
            let key = format!("{name}:{index:04}");
            let version = db.put(key.as_bytes(), format!("{pass}{index:063}").as_bytes()).unwrap();
            if pass == 0 {
                first_pass = (first_pass.0.min(version), first_pass.1.max(version));
            }
        }
    }
    db.compact().unwrap();
    first_pass
}

/// Small history segments merge only with their neighbours in time: a larger segment between
/// them in time stays out of their merge, so a narrow window over its versions opens it alone
/// (counted by `Stats::history_reads`). Before, the oldest small segments merged whatever lay
/// between them, and the output covered the larger one's versions too.
#[test]
fn history_merges_pick_neighbours_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options()).unwrap();
    round_of_fresh_keys(&db, "a", 2);
    let big = round_of_fresh_keys(&db, "b", 30);
    for name in ["c", "d", "e"] {
        round_of_fresh_keys(&db, name, 2);
    }
    // Flushes wake background compaction, which merges small history segments.
    let mut stable_rounds = 0;
    let mut count = db.stats().history_segment_count;
    for round in 0..200u32 {
        db.put(format!("z:{round}").as_bytes(), b"x").unwrap();
        db.flush().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let now = db.stats().history_segment_count;
        stable_rounds = if now == count { stable_rounds + 1 } else { 0 };
        count = now;
        if stable_rounds >= 10 {
            break;
        }
    }
    let stats = db.stats();
    let count = stats.history_segment_count;
    assert!((2..5).contains(&count), "small ones merged, the big one not: {stats:?}");
    let before = stats.history_reads;
    let changes = db.changes(.., big.0..=big.1).unwrap().map(Result::unwrap).count();
    assert_eq!(changes, 30, "the big round's first versions");
    let opened = db.stats().history_reads - before;
    assert_eq!(opened, 1, "only the segment of the big round: {:?}", db.stats());
    let versions: usize = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|name| db.prefix(name.as_bytes()).unwrap().count())
        .sum();
    assert_eq!(versions, 2 + 30 + 3 * 2, "every key");
}

/// `Stats::changes_bytes_read` counts the segment blocks a `changes` query reads: all of them
/// (about the segment bytes) for the whole window, a small share for a narrow window over keys
/// written in order (the zone maps prune the rest), nothing for what the memtable answers.
#[test]
fn changes_count_the_bytes_of_the_blocks_they_read() {
    let dir = tempfile::tempdir().unwrap();
    let options = options().memtable_bytes_max(1 << 20).compaction_trigger_segments(1_000);
    let db = backend::open(dir.path(), options).unwrap();
    let versions: Vec<Version> = (0..2_000).map(|i| db.put(&key(i), &[7; 64]).unwrap()).collect();
    assert_eq!(db.changes(.., ..).unwrap().count(), 2_000);
    assert_eq!(db.stats().changes_bytes_read, 0, "the memtable reads no block");
    db.flush().unwrap();
    for tier in ["level 0, Z order", "levels, key order"] {
        let before = db.stats().changes_bytes_read;
        assert_eq!(db.changes(.., ..).unwrap().count(), 2_000, "{tier}");
        let stats = db.stats();
        let all = stats.changes_bytes_read - before;
        let data_bytes = stats.segment_bytes * 6 / 10;
        assert!(all >= data_bytes && all <= stats.segment_bytes, "{tier}: {all} of {stats:?}");
        let window = versions[1_000]..=versions[1_019];
        let found = db.changes(.., window).unwrap().count();
        assert_eq!(found, 20, "{tier}");
        let narrow = db.stats().changes_bytes_read - before - all;
        assert!(narrow > 0 && narrow * 20 < all, "{tier}: {narrow} of {all}");
        db.compact().unwrap();
    }
    for index in 0..2_000 {
        db.put(&key(index), &[8; 64]).unwrap();
    }
    db.compact().unwrap();
    assert!(db.stats().history_segment_count >= 1, "{:?}", db.stats());
    let before = db.stats().changes_bytes_read;
    let old = db.changes(.., ..=versions[1_999]).unwrap().count();
    assert_eq!(old, 2_000, "the first round, from history");
    let history = db.stats().changes_bytes_read - before;
    assert!(history >= db.stats().history_bytes / 2, "{history} of {:?}", db.stats());
}
