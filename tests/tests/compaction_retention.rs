//! Compaction merges segments and applies retention; snapshots pin what they read; readers
//! keep the segments they started with.

use zverse::{Db, Durability, Error, Options, Retention, Version};
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

/// A tombstone that was the newest write, dropped at the bottom, puts the horizon one past
/// it, above every written version: the horizon `Db::horizon` gives is still readable (it
/// was refused with `BelowHorizon`, the view being capped at the watermark below it).
#[test]
fn the_horizon_is_readable_when_a_dropped_tombstone_was_the_newest_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options(Retention::Versions(1))).unwrap();
    db.put(b"kept", b"1").unwrap();
    db.put(b"gone", b"1").unwrap();
    let deleted = db.delete(b"gone").unwrap();
    db.compact().unwrap();
    let horizon = db.horizon();
    assert!(horizon > deleted, "the horizon passed the newest write: {horizon} {deleted}");
    assert_eq!(db.get_at(b"gone", horizon).unwrap(), None);
    assert_eq!(db.get_at(b"kept", horizon).unwrap().as_deref(), Some(&b"1"[..]));
    let keys: Vec<_> = db.range_at(.., horizon).unwrap().map(|kv| kv.unwrap().0).collect();
    assert_eq!(keys, [&b"kept"[..]]);
    assert_eq!(db.snapshot().get_at(b"kept", horizon).unwrap().as_deref(), Some(&b"1"[..]));
    // Below the watermark the horizon still refuses.
    let below = Version::new(deleted.get() - 1);
    assert!(matches!(db.get_at(b"gone", below), Err(Error::BelowHorizon { .. })));
    assert!(matches!(db.range_at(.., below), Err(Error::BelowHorizon { .. })));
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

/// Every version written, per key, oldest first (`None`: a delete).
type Model = std::collections::BTreeMap<Vec<u8>, Vec<(Version, Option<Vec<u8>>)>>;

/// `rounds` rounds over `keys` keys (every 7th round deletes key 3), a `Db::compact` after
/// each: each compaction demotes the versions the round before wrote into history.
fn write_compacted_rounds(db: &Db, model: &mut Model, rounds: std::ops::Range<u32>, keys: u32) {
    for round in rounds {
        for key in 0..keys {
            let name = format!("k{key:03}").into_bytes();
            let value = format!("r{round}-{key}").into_bytes();
            let (version, value) = if key == 3 && round % 7 == 6 {
                (db.delete(&name).unwrap(), None)
            } else {
                (db.put(&name, &value).unwrap(), Some(value))
            };
            model.entry(name).or_default().push((version, value));
        }
        db.compact().unwrap();
    }
}

/// Every read at or above the horizon, at each version written and at the horizon (when a
/// version was written after it: a tombstone dropped at the bottom puts the horizon one past
/// it), answers what the model says (a read the horizon passed meanwhile is skipped).
fn assert_exact_above_horizon(db: &Db, model: &Model) {
    let horizon = db.horizon();
    let last = model.values().flatten().map(|(version, _)| *version).max();
    let horizon_read = last.filter(|last| *last >= horizon).map(|_| horizon);
    for (key, versions) in model {
        let reads = versions.iter().map(|(version, _)| *version).chain(horizon_read);
        for at in reads.filter(|version| *version >= horizon) {
            let expected = versions.iter().rev().find(|(version, _)| *version <= at);
            let expected = expected.and_then(|(_, value)| value.clone());
            let found = match db.get_at(key, at) {
                Ok(found) => found.map(|v| v.to_vec()),
                // Background compaction raised it since.
                Err(Error::BelowHorizon { .. }) if at < db.horizon() => continue,
                Err(error) => panic!("{error}"),
            };
            assert_eq!(
                found,
                expected,
                "{} at {at} (horizon {horizon})",
                String::from_utf8_lossy(key)
            );
        }
    }
}

fn history_versions(db: &Db, keys: u32) -> usize {
    (0..keys).map(|key| db.history(format!("k{key:03}").as_bytes()).unwrap().count()).sum()
}

/// Versions demoted to history by earlier compactions go through GC again: under
/// `Versions(2)` each key keeps its newest two, and the history shrinks.
#[test]
fn retention_by_count_reaches_versions_demoted_by_earlier_compactions() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options(Retention::Versions(2))).unwrap();
    let mut model = Model::new();
    write_compacted_rounds(&db, &mut model, 0..8, 100);
    let stats = db.stats();
    assert!(stats.history_segment_count >= 1, "{stats:?}");
    // Key 3's round-6 tombstone is its floor with nothing older kept: it goes too.
    assert_eq!(history_versions(&db, 100), 199, "every key's newest two");
    assert!(stats.versions <= 200 + 2, "no other version stored: {stats:?}");
    let before = stats.history_bytes;
    write_compacted_rounds(&db, &mut model, 8..10, 100);
    assert!(db.stats().history_bytes <= before + before / 4, "{:?}", db.stats());
    assert_exact_above_horizon(&db, &model);
}

/// Under `Retention::Duration`, versions demoted by earlier compactions go once every read at
/// or above the horizon can do without them, and history files go whole once everything in
/// them is past it: by `Db::compact`, and by background compaction.
#[test]
fn retention_by_duration_reaches_demoted_versions_and_drops_whole_files() {
    let dir = tempfile::tempdir().unwrap();
    // Long enough that a round's writes and compaction finish well within it.
    let age = std::time::Duration::from_secs(1);
    let retention = Retention::Duration(age);
    let db = backend::open(dir.path(), options(retention).compaction_trigger_segments(2)).unwrap();
    let mut model = Model::new();
    write_compacted_rounds(&db, &mut model, 0..5, 100);
    let before = db.stats();
    assert!(before.history_segment_count >= 1, "{before:?}");
    std::thread::sleep(age * 3 / 2);
    write_compacted_rounds(&db, &mut model, 5..6, 100);
    // Rounds 0 to 3 are gone; round 4 stays, the newest at or below the horizon.
    assert_eq!(history_versions(&db, 100), 200, "{:?}", db.stats());
    assert!(db.stats().history_bytes < before.history_bytes, "{:?} {before:?}", db.stats());
    assert_exact_above_horizon(&db, &model);
    std::thread::sleep(age * 3 / 2);
    db.compact().unwrap();
    assert_eq!(db.stats().history_segment_count, 0, "whole files dropped: {:?}", db.stats());
    assert_eq!(history_versions(&db, 100), 100);
    assert_exact_above_horizon(&db, &model);
    // The same through background compaction: demote round 6, then let it pass the horizon
    // and write (flushes wake compaction).
    write_compacted_rounds(&db, &mut model, 6..8, 100);
    assert!(db.stats().history_segment_count >= 1, "{:?}", db.stats());
    std::thread::sleep(age * 3 / 2);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    for round in 0u32.. {
        db.put(b"other", &round.to_be_bytes()).unwrap();
        db.flush().unwrap();
        if db.stats().history_segment_count == 0 || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(db.stats().history_segment_count, 0, "background: {:?}", db.stats());
    assert_exact_above_horizon(&db, &model);
}

/// A snapshot pins the versions it reads through history GC; the rest goes.
#[test]
fn a_snapshot_pins_its_versions_through_history_gc() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options(Retention::Versions(1))).unwrap();
    let mut model = Model::new();
    write_compacted_rounds(&db, &mut model, 0..3, 20);
    let snapshot = db.snapshot();
    write_compacted_rounds(&db, &mut model, 3..8, 20);
    for key in 0..20u32 {
        let name = format!("k{key:03}");
        let pinned = snapshot.get(name.as_bytes()).unwrap().map(|v| v.to_vec());
        assert_eq!(pinned, Some(format!("r2-{key}").into_bytes()), "{name}");
        // A history shows the newest version only (`Versions(1)`); the pinned one is stored.
        assert_eq!(db.history(name.as_bytes()).unwrap().count(), 1, "{name}");
    }
    assert_eq!(db.stats().versions, 40, "each key's newest and pinned: {:?}", db.stats());
    drop(snapshot);
    db.compact().unwrap();
    assert_eq!(db.stats().versions, 20, "the pin let go: {:?}", db.stats());
    assert_exact_above_horizon(&db, &model);
}

/// Background history GC under `Versions(n)`: with no `Db::compact`, the versions flushes
/// and leveled steps demote go again once users wrote as many bytes as the history holds,
/// so the stored versions stay bounded as rounds of writes go on.
#[test]
fn background_history_gc_bounds_the_versions_kept_by_count() {
    let dir = tempfile::tempdir().unwrap();
    let options = options(Retention::Versions(2)).compaction_trigger_segments(2);
    let db = backend::open(dir.path(), options).unwrap();
    let mut model = Model::new();
    for round in 0..40u32 {
        for key in 0..100u32 {
            let name = format!("k{key:03}").into_bytes();
            let value = format!("r{round}-{key}").into_bytes();
            let version = db.put(&name, &value).unwrap();
            model.entry(name).or_default().push((version, Some(value)));
        }
        db.flush().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while db.stats().segment_count_open >= 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    let stats = db.stats();
    // Without history GC each step's second newest stays: about 4,000 versions.
    assert!(stats.versions <= 1_500, "{stats:?}");
    assert_exact_above_horizon(&db, &model);
}

fn open_sim(io: &zverse_tests::sim_io::SimIo, retention: Retention) -> Db {
    let options = options(retention).segment_bytes_target(4 << 10).compaction_fan_in(4);
    Db::open_with_io("/db", options, std::sync::Arc::new(io.clone())).unwrap()
}

fn sim_segment_files(io: &zverse_tests::sim_io::SimIo) -> usize {
    io.file_paths().into_iter().filter(|p| p.extension().is_some_and(|e| e == "seg")).count()
}

/// History for a GC to shrink, written under `Retention::All`; returns the model.
fn history_to_gc(io: &zverse_tests::sim_io::SimIo) -> Model {
    let db = open_sim(io, Retention::All);
    let mut model = Model::new();
    write_compacted_rounds(&db, &mut model, 0..6, 100);
    assert!(db.stats().history_segment_count >= 4, "{:?}", db.stats());
    model
}

/// How many I/O calls `Db::compact`'s history GC makes on `history_to_gc`'s database under
/// `Versions(2)`, checking on the way that it collects what it should.
fn history_gc_call_count() -> u64 {
    let probe = zverse_tests::sim_io::SimIo::new();
    history_to_gc(&probe);
    let db = open_sim(&probe, Retention::Versions(2));
    let before = probe.call_count();
    db.compact().unwrap();
    assert_eq!(history_versions(&db, 100), 200, "{:?}", db.stats());
    probe.call_count() - before
}

/// The power fails at each I/O call of `Db::compact`'s history GC in turn; whatever of the
/// unsynced writes survive, the reopened database has exactly its live segments on disk and
/// every read at or above the horizon exact.
#[test]
fn a_crash_at_every_call_of_a_history_gc_loses_nothing() {
    use zverse_tests::sim_io::{CrashVariant, SimIo};
    let gc_calls = history_gc_call_count();
    for k in 0..gc_calls {
        let io = SimIo::new();
        let model = history_to_gc(&io);
        let db = open_sim(&io, Retention::Versions(2));
        io.crash_at(io.call_count() + k);
        let _ = db.compact();
        drop(db);
        assert!(io.has_crashed(), "call {k}");
        for variant in [CrashVariant::LoseUnsynced, CrashVariant::KeepUnsynced] {
            let after = io.after_crash(variant);
            let db = open_sim(&after, Retention::Versions(2));
            let live = db.stats().segment_count;
            assert_eq!(sim_segment_files(&after), live, "call {k} {variant:?}: no stray file");
            assert_exact_above_horizon(&db, &model);
        }
    }
}

/// History written under `Retention::All`, then reopened under `Versions(2)`: `Db::compact`'s
/// history GC (which writes each key's second newest again) fails with ENOSPC at one I/O
/// call after another. Each failure leaves exactly the live segments on disk and every read
/// at or above the horizon exact; then it succeeds.
#[test]
fn enospc_during_history_gc_leaves_no_stray_files_and_loses_nothing() {
    use zverse_tests::sim_io::{CrashVariant, Fault, SimIo};
    let gc_calls = history_gc_call_count();
    let mut io = SimIo::new();
    let model = history_to_gc(&io);
    let mut db = open_sim(&io, Retention::Versions(2));
    let (mut failures, mut read_only) = (0, 0);
    for k in 0..gc_calls {
        io.inject(Fault::NoSpace, io.call_count() + k, true);
        let compacted = db.compact();
        io.inject(Fault::NoSpace, u64::MAX, false);
        match compacted {
            Ok(()) => continue,
            Err(Error::ReadOnly(_)) => {
                // The manifest update failed: it may be on disk, so the outputs stay until
                // the next open sorts out which files the manifest names.
                read_only += 1;
                drop(db);
                io = io.after_crash(CrashVariant::KeepUnsynced);
                db = open_sim(&io, Retention::Versions(2));
            }
            Err(_) => failures += 1,
        }
        let live = db.stats().segment_count;
        assert_eq!(sim_segment_files(&io), live, "ENOSPC at call {k}: files = live segments");
        assert_exact_above_horizon(&db, &model);
    }
    assert!(failures >= 2 && read_only >= 1, "{failures} failed, {read_only} read-only");
    db.compact().unwrap();
    assert_eq!(history_versions(&db, 100), 200, "{:?}", db.stats());
    assert_eq!(sim_segment_files(&io), db.stats().segment_count);
    assert_exact_above_horizon(&db, &model);
}

/// Random writes, deletes, flushes, compactions and snapshots under `Versions(n)` with small
/// segments, so that leveled steps demote and history GC (background and `Db::compact`)
/// drops: every read at or above the horizon, and every live snapshot's reads, stay exact.
#[test]
fn random_workloads_stay_exact_through_history_gc() {
    let seeds = std::env::var("ZVERSE_SEED").ok().and_then(|s| s.parse().ok());
    for seed in seeds.map_or_else(|| (1..=6).collect(), |seed: u64| vec![seed]) {
        eprintln!("random_workloads_stay_exact_through_history_gc: seed {seed}");
        random_workload(seed);
    }
}

fn random_workload(seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default()
        .durability(Durability::None)
        .retention(Retention::Versions(rng.u32(1..4)))
        .memtable_bytes_max(2 << 10)
        .segment_block_bytes(256)
        .segment_bytes_target(2 << 10)
        .level_base_bytes(4 << 10)
        .level_size_ratio(2)
        .compaction_fan_in(rng.u32(2..5))
        .compaction_trigger_segments(2);
    let db = backend::open(dir.path(), options).unwrap();
    let mut model = Model::new();
    let mut snapshots = Vec::new();
    for step in 0..3_000u32 {
        let name = format!("k{:03}", rng.u32(0..40)).into_bytes();
        match rng.u32(0..100) {
            0..=79 => {
                let value = format!("s{step}").into_bytes();
                let version = db.put(&name, &value).unwrap();
                model.entry(name).or_default().push((version, Some(value)));
            }
            80..=91 => {
                let version = db.delete(&name).unwrap();
                model.entry(name).or_default().push((version, None));
            }
            92..=95 => db.flush().unwrap(),
            96 => db.compact().unwrap(),
            97 if snapshots.len() < 3 => snapshots.push(db.snapshot()),
            _ => drop(snapshots.pop()),
        }
        if step % 500 == 499 {
            db.compact().unwrap();
            assert_exact_above_horizon(&db, &model);
            assert_snapshots_exact(&snapshots, &model, seed);
        }
    }
    assert!(db.stats().compactions > 0, "seed {seed}: {:?}", db.stats());
}

fn assert_snapshots_exact(snapshots: &[zverse::Snapshot], model: &Model, seed: u64) {
    for snapshot in snapshots {
        let at = snapshot.version();
        for (key, versions) in model {
            let expected = versions.iter().rev().find(|(version, _)| *version <= at);
            let expected = expected.and_then(|(_, value)| value.clone());
            let found = snapshot.get(key).unwrap().map(|v| v.to_vec());
            assert_eq!(found, expected, "seed {seed}: snapshot at {at}");
        }
    }
}

/// Polls `done` every 20 ms for up to 20 s, with no write and no `Db::compact`.
fn eventually(db: &Db, done: impl Fn(&Db) -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if done(db) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    done(db)
}

/// Under `Retention::Duration`, an idle database collects history once it is due by time:
/// the background thread wakes for it (it used to wait for the next write's flush).
#[test]
fn an_idle_database_collects_history_due_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let age = std::time::Duration::from_secs(1);
    let db = backend::open(dir.path(), options(Retention::Duration(age))).unwrap();
    let mut model = Model::new();
    write_compacted_rounds(&db, &mut model, 0..4, 20);
    assert!(db.stats().history_segment_count >= 1, "{:?}", db.stats());
    // No write from here on.
    let collected = eventually(&db, |db| db.stats().history_segment_count == 0);
    assert!(collected, "idle: {:?}", db.stats());
    assert_eq!(history_versions(&db, 20), 20, "the current versions only");
    assert_exact_above_horizon(&db, &model);
}

/// Releasing a snapshot makes the history versions it pinned due: background GC drops them
/// without a write or `Db::compact` (their segments were stamped never due by time, and
/// nothing woke the background thread). Fails with the idle wake-up alone.
#[test]
fn releasing_a_snapshot_makes_its_pinned_history_due() {
    let dir = tempfile::tempdir().unwrap();
    let age = std::time::Duration::from_secs(1);
    let db = backend::open(dir.path(), options(Retention::Duration(age))).unwrap();
    let mut model = Model::new();
    write_compacted_rounds(&db, &mut model, 0..3, 20);
    let snapshot = db.snapshot();
    write_compacted_rounds(&db, &mut model, 3..6, 20);
    // Past the age, GC keeps only what the snapshot reads: round 2 beside the current round
    // (flushes wake the background thread).
    let pinned_only = eventually(&db, |db| {
        db.put(b"other", b"x").unwrap();
        db.flush().unwrap();
        history_versions(db, 20) == 40
    });
    assert!(pinned_only, "{} versions: {:?}", history_versions(&db, 20), db.stats());
    assert_eq!(snapshot.get(b"k005").unwrap().as_deref(), Some(&b"r2-5"[..]));
    drop(snapshot);
    let released = eventually(&db, |db| db.stats().history_segment_count == 0);
    assert!(released, "{} versions: {:?}", history_versions(&db, 20), db.stats());
    assert_eq!(history_versions(&db, 20), 20);
    assert_exact_above_horizon(&db, &model);
}

/// Under `Versions(n)` a history shows at most the newest `n` versions, whatever compaction
/// still holds: here five flushed versions that no compaction has reached, then the same after
/// a compaction that a snapshot's pin makes keep an older one. As-of reads still find what is
/// stored above the horizon.
#[test]
fn a_history_shows_at_most_the_newest_n_versions_under_retention_by_count() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options(Retention::Versions(2))).unwrap();
    let mut versions = Vec::new();
    for round in 0..5_u8 {
        versions.push(db.put(b"k", &[round]).unwrap());
        db.flush().unwrap();
    }
    assert_eq!(db.stats().segment_count, 5, "no compaction ran: all five versions are stored");
    let newest_two = |history: zverse::History| -> Vec<Version> {
        history.map(|item| item.unwrap().0).collect()
    };
    assert_eq!(newest_two(db.history(b"k").unwrap()), [versions[4], versions[3]]);
    assert_eq!(newest_two(db.history_range(b"k", versions[0]..).unwrap()).len(), 2);
    assert_eq!(db.get_at(b"k", versions[0]).unwrap().as_deref(), Some(&[0][..]), "stored");
    let snapshot = db.snapshot();
    for round in 5..8_u8 {
        versions.push(db.put(b"k", &[round]).unwrap());
    }
    db.compact().unwrap();
    assert_eq!(newest_two(db.history(b"k").unwrap()), [versions[7], versions[6]]);
    assert_eq!(snapshot.get(b"k").unwrap().as_deref(), Some(&[4][..]), "the pin kept it");
    assert_eq!(newest_two(snapshot.history(b"k").unwrap()), [versions[4]]);
}
