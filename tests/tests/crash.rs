//! Crash tests: the deterministic workload of [`zverse_tests::crash_workload`] (puts, deletes,
//! batches, flushes, a compaction, a close and reopen) runs on the simulated disk, the power
//! fails at every one of its I/O calls in turn, and the disk a restarted machine finds (under
//! every [`CrashVariant`], several seeds each) must open, verify (`Db::check`), and hold the
//! state after a prefix of the workload's commits:
//! - `Sync`: the prefix holds every acknowledged commit; the commit in flight at the crash is
//!   there entirely or not at all; acknowledged versions are unchanged;
//! - `None`: any prefix that holds every commit before the last successful `flush()`,
//!   `compact()` or close.
//!
//! The database the crash hit must keep answering reads with exactly its acknowledged commits
//! and refuse writes (under `None`, which holds writes in memory without an I/O call, a write
//! may be taken, and then close must fail), and the recovered one must take a new write (at a
//! version above every recovered one) and survive a clean reopen. A second crash during the
//! first recovery is checked too.
//!
//! Every failure prints the crash point, the variant (with its seed) and the workload seed.
//! `ZVERSE_CRASH_SEED` picks another workload; `ZVERSE_CRASH_WORKLOADS=N` runs N workloads
//! (seeds `SEED`, `SEED + 1`, ...; CI runs 2) for a long run.

use std::fmt::Write as _;
use std::time::Instant;

use zverse::{Durability, Version};
use zverse_tests::crash_workload::{
    COMMIT_COUNT, Check, DURABLE_AT_END, History, KEY_AFTER, OnError, Outcome, SEGMENTS_AT_END,
    Step, Workload, allowed_prefixes, check_restart, check_running_db, matching_prefix, open,
    read_history, read_state, run, workload, workload_seed,
};
use zverse_tests::sim_io::{CrashVariant, SimIo};

/// Seeds for the randomized crash variants.
const SEEDS: [u64; 4] = [1, 2, 3, 4];

/// Workloads each crash sweep runs by default (in CI).
const WORKLOAD_COUNT: u64 = 2;

/// The workload seeds to run: `ZVERSE_CRASH_WORKLOADS` (default [`WORKLOAD_COUNT`]) seeds from
/// the base seed.
fn workload_seeds() -> Vec<u64> {
    let count = std::env::var("ZVERSE_CRASH_WORKLOADS").map_or(WORKLOAD_COUNT, |count| {
        count.parse().unwrap_or_else(|_| panic!("ZVERSE_CRASH_WORKLOADS={count:?} is not a count"))
    });
    (0..count).map(|i| workload_seed().wrapping_add(i)).collect()
}

/// The crash variants every crash point is checked under.
fn variants() -> Vec<CrashVariant> {
    let mut variants = vec![CrashVariant::LoseUnsynced, CrashVariant::KeepUnsynced];
    for seed in SEEDS {
        variants.push(CrashVariant::RandomSectors { seed });
        variants.push(CrashVariant::TornLastWrite { seed });
        variants.push(CrashVariant::RandomDirOps { seed });
    }
    variants
}

/// Counts over the crash states checked.
#[derive(Debug, Default)]
struct Tally {
    states: usize,
    /// States with a commit in flight at the crash.
    in_flight: usize,
    /// States whose recovery kept commits that were never acknowledged.
    unacked_kept: usize,
    /// States whose recovery lost acknowledged commits (allowed only without `Sync`).
    acked_lost: usize,
}

/// A crash state that failed its checks.
struct Failure {
    seed: u64,
    call: u64,
    variant: Option<CrashVariant>,
    why: String,
}

/// Checks one crash point under every variant; counts the crash states checked and adds the
/// failed ones to `failures`.
fn check_crash_point(
    work: &Workload,
    seed: u64,
    durability: Durability,
    call: u64,
    tally: &mut Tally,
    failures: &mut Vec<Failure>,
) {
    let io = SimIo::new();
    io.crash_at(call);
    let (outcome, db) = run(&io, work, durability, OnError::Stop);
    let crashed_in_workload = io.has_crashed();
    if let Some(db) = db {
        // Under `None` a write is held in memory without an I/O call, so it can be taken
        // after the power failed; the failure shows at the latest at close, which writes it.
        let refuses_writes = crashed_in_workload && durability == Durability::Sync;
        if let Err(why) = check_running_db(&db, work, &outcome, refuses_writes) {
            failures.push(Failure { seed, call, variant: None, why });
        }
        if crashed_in_workload
            && !refuses_writes
            && db.put(KEY_AFTER, b"held").is_ok()
            && db.close().is_ok()
        {
            let why = "a write after the power failed was taken, and close returned Ok".to_owned();
            failures.push(Failure { seed, call, variant: None, why });
        }
        drop(db);
    }
    assert!(io.has_crashed(), "k={call}: the workload and close never reached the crash point");
    for variant in variants() {
        tally.states += 1;
        tally.in_flight += usize::from(outcome.in_flight);
        // As-of reads at every acknowledged version cost a scan each: checked under one variant.
        let as_of = variant == CrashVariant::LoseUnsynced;
        match check_restart(work, durability, &io.after_crash(variant), &outcome, as_of) {
            Ok(prefix) => {
                tally.unacked_kept += usize::from(prefix > outcome.acked.len());
                tally.acked_lost += usize::from(prefix < outcome.acked.len());
            }
            Err(why) => failures.push(Failure { seed, call, variant: Some(variant), why }),
        }
    }
}

/// Runs the workload without a crash and returns the number of I/O calls it makes, open to
/// close; checks the result and that the count is the same on a second run.
fn count_calls(work: &Workload, durability: Durability) -> u64 {
    let mut counts = Vec::new();
    for _ in 0..2 {
        let io = SimIo::new();
        let (outcome, db) = run(&io, work, durability, OnError::Stop);
        let db = db.expect("the workload opens without a crash");
        assert_eq!(outcome.failed_steps, [], "{durability:?}: a step failed");
        assert_eq!(outcome.acked.len(), COMMIT_COUNT, "{durability:?}: a commit failed");
        assert_eq!(outcome.flushed_commit_count, DURABLE_AT_END, "{durability:?}: flushes");
        let stats = db.stats();
        let segment_count = stats.segment_count;
        assert!(segment_count >= SEGMENTS_AT_END, "{durability:?}: {segment_count} segments");
        // The sweep crashes inside compactions that write both kinds of outputs.
        assert!(stats.history_segment_count >= 2, "{durability:?}: {stats:?}");
        assert_eq!(stats.level_segment_counts.first(), Some(&0), "{stats:?}");
        db.close().unwrap();
        counts.push(io.call_count());
    }
    assert_eq!(counts[0], counts[1], "{durability:?}: the workload's I/O is not deterministic");
    counts[0]
}

fn crash_at_every_call(durability: Durability) {
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    let mut call_counts = Vec::new();
    for seed in workload_seeds() {
        let work = workload(seed);
        let transactions = work.steps.iter().filter(|s| matches!(s, Step::Transaction(_)));
        assert!(transactions.count() >= 2, "the workload commits transactions (seed {seed})");
        let call_count = count_calls(&work, durability);
        call_counts.push(call_count);
        for call in 0..call_count {
            check_crash_point(&work, seed, durability, call, &mut tally, &mut failures);
        }
    }
    let state_count = tally.states;
    eprintln!(
        "{durability:?}, workload seeds {:?}: {state_count} crash states checked ({call_counts:?} \
         crash points x {} variants) in {:.1?}; a commit in flight in {}, unacknowledged \
         commits recovered in {}, acknowledged commits lost in {}",
        workload_seeds(),
        variants().len(),
        started.elapsed(),
        tally.in_flight,
        tally.unacked_kept,
        tally.acked_lost,
    );
    let mut report = String::new();
    for Failure { seed, call, variant, why } in &failures {
        let variant = variant.map_or_else(|| "before restart".into(), |v| format!("{v:?}"));
        writeln!(
            report,
            "  workload seed {seed} (ZVERSE_CRASH_SEED), crash at I/O call k={call}, \
             {durability:?}, {variant}: {why}"
        )
        .unwrap();
    }
    assert!(
        failures.is_empty(),
        "{} of {state_count} crash states failed:\n{report}",
        failures.len()
    );
    assert!(state_count >= 4000, "{durability:?}: only {state_count} crash states");
}

#[test]
fn sync_crash_at_every_io_call_recovers_a_prefix_with_every_acknowledged_commit() {
    crash_at_every_call(Durability::Sync);
}

#[test]
fn unsynced_crash_at_every_io_call_recovers_a_prefix_of_the_commits() {
    crash_at_every_call(Durability::None);
}

/// The checks above can fail: a state missing one key of a batch, or an acknowledged commit,
/// or with a changed version, matches no allowed prefix.
#[test]
fn the_prefix_check_rejects_a_partial_batch_a_lost_commit_and_a_changed_version() {
    let work = workload(workload_seed());
    let io = SimIo::new();
    let (outcome, db) = run(&io, &work, Durability::Sync, OnError::Stop);
    let db = db.unwrap();
    let state = read_state(&db).unwrap();
    let all = work.commits.len();
    assert_eq!(matching_prefix(&state, &work, &outcome.acked, all..=all), Ok(all));
    let last_batch = (0..all).rev().find(|&c| work.commits[c].len() >= 2).unwrap();
    // Drop one key of the batch from the recovered state: a partial batch.
    let mut partial = read_state(&db).unwrap();
    let key = work.commits[last_batch].keys().next().unwrap();
    let history = partial.histories.get_mut(key).unwrap();
    let position = history.iter().position(|(v, _)| *v == outcome.acked[last_batch]).unwrap();
    history.remove(position);
    let unacked = &outcome.acked[..last_batch];
    assert!(matching_prefix(&partial, &work, unacked, last_batch..=last_batch + 1).is_err());
    // Everything acknowledged but with the last commit missing.
    let fewer = all - 1;
    assert!(matching_prefix(&state, &work, &outcome.acked, fewer..=fewer).is_err());
    // A version changed.
    let mut moved = read_state(&db).unwrap();
    let (_, history) = moved.histories.iter_mut().find(|(_, h)| !h.is_empty()).unwrap();
    history[0].0 = Version::new(history[0].0.get() + 1);
    assert!(matching_prefix(&moved, &work, &outcome.acked, all..=all).is_err());
}

/// One session on a recovered disk: open, one write, close; stops at the first error. Returns
/// the write's version if it was acknowledged.
fn recovery_session(disk: &SimIo, durability: Durability) -> Option<Version> {
    let db = open(disk, durability).ok()?;
    let version = db.put(KEY_AFTER, b"after").ok()?;
    let _ = db.close();
    Some(version)
}

/// Opens `disk` and returns the commits it holds (checked against `outcome`) and the history
/// of `KEY_AFTER`.
fn recovered(disk: &SimIo, work: &Workload, outcome: &Outcome) -> Check<(usize, History)> {
    let db = match open(disk, Durability::Sync) {
        Ok(db) => db,
        Err(error) => return Err(format!("open failed: {error}")),
    };
    let mut state = read_state(&db)?;
    state.latest.retain(|(key, _)| key != KEY_AFTER);
    let prefix =
        matching_prefix(&state, work, &outcome.acked, allowed_prefixes(outcome, Durability::Sync))?;
    Ok((prefix, read_history(&db, KEY_AFTER)?))
}

/// The power fails again during recovery, at every I/O call of the first session after a
/// crash (open, one write, close), for every fifth crash point of the Sync workload: the
/// second recovery must find exactly the commits a clean recovery finds, plus the write after
/// recovery if it was acknowledged (and if not, that write entirely or not at all).
#[test]
fn a_crash_during_recovery_recovers_the_same_commits() {
    let started = Instant::now();
    let work = workload(workload_seed());
    let mut state_count = 0;
    let mut failures = String::new();
    for call in (0..count_calls(&work, Durability::Sync)).step_by(5) {
        let io = SimIo::new();
        io.crash_at(call);
        let (outcome, db) = run(&io, &work, Durability::Sync, OnError::Stop);
        drop(db);
        for first in
            [CrashVariant::TornLastWrite { seed: 1 }, CrashVariant::RandomSectors { seed: 2 }]
        {
            let disk = io.after_crash(first);
            let ctx = format!("crash at k={call}, {first:?}");
            // `after_crash` of a disk with nothing unsynced is an exact copy.
            let expected =
                match recovered(&disk.after_crash(CrashVariant::LoseUnsynced), &work, &outcome) {
                    Ok((prefix, _)) => prefix,
                    Err(why) => panic!("{ctx}, clean recovery: {why}"),
                };
            let session_calls = {
                let copy = disk.after_crash(CrashVariant::LoseUnsynced);
                recovery_session(&copy, Durability::Sync).expect("the session runs");
                copy.call_count()
            };
            for second_call in 0..session_calls {
                let copy = disk.after_crash(CrashVariant::LoseUnsynced);
                copy.crash_at(second_call);
                let after = recovery_session(&copy, Durability::Sync);
                for second in
                    [CrashVariant::LoseUnsynced, CrashVariant::TornLastWrite { seed: second_call }]
                {
                    state_count += 1;
                    let ctx = format!("{ctx}, then at recovery call {second_call}, {second:?}");
                    match recovered(&copy.after_crash(second), &work, &outcome) {
                        Ok((prefix, history)) => {
                            let after_ok = match after {
                                Some(version) => history == [(version, Some(b"after".to_vec()))],
                                None => {
                                    history.len() <= 1
                                        && history
                                            .iter()
                                            .all(|(_, v)| v.as_deref() == Some(&b"after"[..]))
                                }
                            };
                            if prefix != expected || !after_ok {
                                writeln!(failures, "  {ctx}: {prefix} commits (a clean recovery finds {expected}), write after recovery acked {after:?}, found {history:?}").unwrap();
                            }
                        }
                        Err(why) => writeln!(failures, "  {ctx}: {why}").unwrap(),
                    }
                }
            }
        }
    }
    eprintln!(
        "{state_count} double-crash states checked (every 5th crash point of the Sync workload) \
         in {:.1?}",
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "workload seed {}: double crashes failed:\n{failures}",
        workload_seed()
    );
    assert!(state_count >= 3000, "only {state_count} double-crash states");
}
