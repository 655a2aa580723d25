//! After a failed write or sync the database turns read-only (the `PostgreSQL` fsync lesson: a
//! failed sync is never retried as if nothing happened): every later write fails with
//! `Error::ReadOnly`, reads keep working on the data written before, the failed write is never
//! visible, and a restart recovers. The failure is injected on the simulated disk.
//!
//! The sweep fails the k-th I/O call of the crash tests' workload (writes, batches, flushes, a
//! compaction, a reopen) for every k, with every [`Fault`], once and persistently, and checks
//! that no write was acknowledged before it was durable, that a failed sync turns the database
//! read-only, and that a restart finds a prefix of the commits holding every acknowledged one.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use zverse::{Db, Durability, Error, Options};
use zverse_tests::crash_workload::{
    self, OnError, Step, check_running_db, run, workload, workload_seed,
};
use zverse_tests::sim_io::{CrashVariant, Fault, SimIo};

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

/// What the fault sweep saw, per fault and mode.
#[derive(Debug, Default)]
struct SweepTally {
    /// Faults injected (one per call the fault applies to).
    cases: usize,
    /// Restarted disks checked.
    restarts: usize,
    /// Cases where the database refused writes afterwards, as required.
    read_only: usize,
    /// Cases where the fault hit a compaction.
    in_compaction: usize,
}

/// Runs the workload with `fault` injected at call `call`; returns `None` if the fault applies
/// to no call from `call` on before some later one (that case is another `call`'s), else the
/// failures found.
fn fault_case(
    work: &crash_workload::Workload,
    fault: Fault,
    call: u64,
    persistent: bool,
    tally: &mut SweepTally,
) -> Option<Vec<String>> {
    let io = SimIo::new();
    io.inject(fault, call, persistent);
    let (outcome, db) = run(&io, work, Durability::Sync, OnError::Continue);
    let fired_in_workload = io.fault_fired_at() == Some(call);
    let mut failures = Vec::new();
    let step = outcome.step_at_call(call).map(|index| &work.steps[index]);
    let in_compaction = matches!(step, Some(Step::Compact));
    // A failed commit, or a failed sync outside a compaction (whose output file is simply
    // abandoned), leaves data of unknown durability: the database must refuse writes.
    let must_refuse = outcome.in_flight || (fault == Fault::SyncFailure && !in_compaction);
    if let Some(db) = db {
        if fired_in_workload {
            match check_running_db(&db, work, &outcome, must_refuse) {
                Ok(()) => tally.read_only += usize::from(must_refuse),
                Err(why) => failures.push(format!("running database: {why}")),
            }
        }
        // Closes the database: the fault may hit the close.
        drop(db);
    }
    if io.fault_fired_at() != Some(call) {
        return None;
    }
    tally.cases += 1;
    tally.in_compaction += usize::from(in_compaction);
    let variants = [
        CrashVariant::LoseUnsynced,
        CrashVariant::KeepUnsynced,
        CrashVariant::RandomDirOps { seed: call },
    ];
    for variant in variants {
        tally.restarts += 1;
        // LoseUnsynced proves every acknowledged commit was synced before it was acknowledged.
        let disk = io.after_crash(variant);
        if let Err(why) =
            crash_workload::check_restart(work, Durability::Sync, &disk, &outcome, false)
        {
            failures.push(format!("restarted ({variant:?}): {why}"));
        }
    }
    Some(failures)
}

#[test]
fn every_fault_at_every_io_call_loses_no_acknowledged_write() {
    let started = Instant::now();
    let seed = workload_seed();
    let work = workload(seed);
    let call_count = {
        let io = SimIo::new();
        let (outcome, db) = run(&io, &work, Durability::Sync, OnError::Stop);
        assert_eq!(outcome.failed_steps, [], "the workload runs without faults");
        db.unwrap().close().unwrap();
        io.call_count()
    };
    let mut tallies: BTreeMap<String, SweepTally> = BTreeMap::new();
    let mut report = String::new();
    for fault in Fault::ALL {
        for persistent in [false, true] {
            let mode = if persistent { "persistent" } else { "once" };
            let tally = tallies.entry(format!("{fault:?} {mode}")).or_default();
            for call in 0..call_count {
                let Some(failures) = fault_case(&work, fault, call, persistent, tally) else {
                    continue;
                };
                for why in failures {
                    writeln!(report, "  {fault:?} {mode} at I/O call k={call}: {why}").unwrap();
                }
            }
        }
    }
    let cases: usize = tallies.values().map(|t| t.cases).sum();
    let restarts: usize = tallies.values().map(|t| t.restarts).sum();
    eprintln!(
        "workload seed {seed}: {cases} fault cases ({call_count} I/O calls), {restarts} \
         restarts checked in {:.1?}",
        started.elapsed()
    );
    for (name, tally) in &tallies {
        eprintln!(
            "  {name}: {} cases, {} read-only as required, {} in the compaction",
            tally.cases, tally.read_only, tally.in_compaction
        );
    }
    assert!(report.is_empty(), "workload seed {seed} (ZVERSE_CRASH_SEED):\n{report}");
    for (name, tally) in &tallies {
        assert!(tally.cases >= 20 && tally.in_compaction > 0, "{name}: {tally:?}");
    }
    let sync_failures = &tallies["SyncFailure once"];
    assert!(sync_failures.read_only >= 20, "{sync_failures:?}");
}

/// The segment files on `io`, sorted.
fn segment_files(io: &SimIo) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        io.file_paths().into_iter().filter(|p| p.extension().is_some_and(|e| e == "seg")).collect();
    files.sort();
    files
}

/// A full disk at every I/O call of a compaction of three segments: the compaction fails, the
/// three segments stay (in the tiers and on disk), every key reads back, and a restart finds
/// them all and can compact.
#[test]
fn a_full_disk_during_compaction_keeps_the_old_segments_and_loses_nothing() {
    let build = |io: &SimIo| {
        let db = open(io);
        for index in 0..KEY_COUNT {
            db.put(&key(index), &key(index)).unwrap();
            if index % 10 == 9 {
                db.flush().unwrap();
            }
        }
        assert_eq!(db.stats().segment_count, 3);
        db
    };
    let compaction_calls = {
        let io = SimIo::new();
        let db = build(&io);
        let before = io.call_count();
        db.compact().unwrap();
        io.call_count() - before
    };
    let mut cases = 0;
    for k in 0..compaction_calls {
        let io = SimIo::new();
        let db = build(&io);
        let segments = segment_files(&io);
        let start = io.call_count();
        io.inject(Fault::NoSpace, start + k, true);
        let compacted = db.compact();
        if io.fault_fired_at() != Some(start + k) {
            continue;
        }
        cases += 1;
        let ctx = format!("ENOSPC from compaction call {k}");
        assert!(compacted.is_err(), "{ctx}: compact() returned {compacted:?}");
        assert_eq!(db.stats().segment_count, 3, "{ctx}: the old segments stay in the tiers");
        for index in 0..KEY_COUNT {
            let found = db.get(&key(index)).unwrap_or_else(|e| panic!("{ctx}: get {index}: {e}"));
            assert_eq!(found.as_deref(), Some(key(index).as_slice()), "{ctx}: key {index}");
        }
        drop(db);
        let disk = io.after_crash(CrashVariant::LoseUnsynced);
        for segment in &segments {
            assert!(disk.read_file(segment).is_some(), "{ctx}: {} is gone", segment.display());
        }
        let db = open(&disk);
        db.check().unwrap_or_else(|e| panic!("{ctx}, restarted: check: {e}"));
        db.compact().unwrap_or_else(|e| panic!("{ctx}, restarted: compact: {e}"));
        assert_eq!(db.stats().segment_count, 1, "{ctx}");
        for index in 0..KEY_COUNT {
            let found = db.get(&key(index)).unwrap();
            assert_eq!(found.as_deref(), Some(key(index).as_slice()), "{ctx}, restarted: {index}");
        }
    }
    eprintln!("{cases} ENOSPC points in a compaction of 3 segments ({compaction_calls} calls)");
    assert!(cases >= 3, "only {cases} ENOSPC points");
}
