//! Crash tests: a small deterministic workload runs on the simulated disk, the power fails at
//! every one of its I/O calls in turn, and the disk a restarted machine finds (under every
//! [`CrashVariant`], several seeds each) must open to the state after a prefix of the
//! workload's commits:
//! - `Sync`: the prefix holds every acknowledged commit; the commit in flight at the crash is
//!   there entirely or not at all; acknowledged versions are unchanged;
//! - `None`: any prefix that holds every commit before the last successful `flush()`.
//!
//! The database the crash hit must keep answering reads with exactly its acknowledged commits,
//! and the recovered one must take a new write (at a version above every recovered one) and
//! survive a clean reopen.
//!
//! The I/O call order is deterministic because the memtable limit is far above the workload,
//! so only the workload's explicit `flush()` calls (which block until the background thread
//! is done) make the background thread do I/O.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use zverse::{Db, Durability, Error, Options, Version};
use zverse_tests::sim_io::{CrashVariant, SimIo};

/// The database directory on the simulated disk.
const DIR: &str = "/db";
/// Seed of the workload generator. Changing it changes every crash state; the environment
/// variable `ZVERSE_CRASH_SEED` overrides it, to explore more workloads outside CI.
const WORKLOAD_SEED: u64 = 0x2e5f_0c0d_a7a1_1e55;
/// Commits in the workload.
const COMMIT_COUNT: usize = 40;
/// A `flush()` runs after the commit with each of these indexes.
const FLUSH_AFTER: [usize; 3] = [9, 22, 31];
/// Keys the workload writes; the empty key is a legal key.
const KEYS: [&[u8]; 7] = [b"", b"a", b"apple", b"b", b"banana:0001", b"banana:0002", b"zz"];
/// A key no workload commit writes, written once after recovery.
const KEY_AFTER: &[u8] = b"written-after-recovery";
/// Seeds for the randomized crash variants.
const SEEDS: [u64; 4] = [1, 2, 3, 4];

type Bytes = Vec<u8>;

/// One step of the workload.
#[derive(Clone, Debug)]
enum Step {
    Put(Bytes, Bytes),
    Delete(Bytes),
    /// Writes in order: `Some` is a put, `None` a delete; a key written twice keeps the later.
    Batch(Vec<(Bytes, Option<Bytes>)>),
    Flush,
}

/// The workload and what each of its commits does to the state.
struct Workload {
    steps: Vec<Step>,
    /// For each commit, in order: its effect per key (a batch's later write of a key wins).
    commits: Vec<BTreeMap<Bytes, Option<Bytes>>>,
}

fn value_for(rng: &mut fastrand::Rng, commit: usize) -> Bytes {
    // Lengths up to 1.5 sectors, so that frames straddle sector boundaries; zero-length values
    // are legal and must not read as deletes.
    let len = if rng.u8(..8) == 0 { 0 } else { rng.usize(1..=768) };
    let tag = format!("c{commit}:");
    tag.bytes().chain((0..len).map(|i| (i % 251) as u8)).take(len.max(tag.len())).collect()
}

fn workload_seed() -> u64 {
    std::env::var("ZVERSE_CRASH_SEED").map_or(WORKLOAD_SEED, |seed| {
        seed.parse().unwrap_or_else(|_| panic!("ZVERSE_CRASH_SEED={seed:?} is not a u64"))
    })
}

fn workload() -> Workload {
    let mut rng = fastrand::Rng::with_seed(workload_seed());
    let mut steps = Vec::new();
    let mut commits = Vec::new();
    for commit in 0..COMMIT_COUNT {
        let key = |rng: &mut fastrand::Rng| KEYS[rng.usize(..KEYS.len())].to_vec();
        let step = match rng.u8(..10) {
            0..=3 => Step::Put(key(&mut rng), value_for(&mut rng, commit)),
            4..=5 => Step::Delete(key(&mut rng)),
            _ => {
                let mut writes = Vec::new();
                for _ in 0..rng.usize(2..=5) {
                    let value = (rng.u8(..4) != 0).then(|| value_for(&mut rng, commit));
                    writes.push((key(&mut rng), value));
                }
                // Every batch overwrites at least one of its own keys.
                let again = writes[0].0.clone();
                writes.push((again, Some(value_for(&mut rng, commit))));
                Step::Batch(writes)
            }
        };
        let effect: BTreeMap<Bytes, Option<Bytes>> = match &step {
            Step::Put(key, value) => [(key.clone(), Some(value.clone()))].into(),
            Step::Delete(key) => [(key.clone(), None)].into(),
            Step::Batch(writes) => writes.iter().cloned().collect(),
            Step::Flush => unreachable!("flushes are added below"),
        };
        steps.push(step);
        commits.push(effect);
        if FLUSH_AFTER.contains(&commit) {
            steps.push(Step::Flush);
        }
    }
    Workload { steps, commits }
}

fn options(durability: Durability) -> Options {
    // Far above the workload's bytes: no automatic rotation, so the I/O order is deterministic.
    Options::default().durability(durability).memtable_bytes_max(64 << 20)
}

fn open(io: &SimIo, durability: Durability) -> zverse::Result<Db> {
    Db::open_with_io(DIR, options(durability), Arc::new(io.clone()))
}

/// What a run of the workload saw.
#[derive(Debug, Default)]
struct Outcome {
    /// Versions of the acknowledged commits, in order (a prefix of the workload's commits).
    acked: Vec<Version>,
    /// Whether the commit after the acknowledged ones failed (it may or may not be durable).
    in_flight: bool,
    /// Commits before the last `flush()` that returned `Ok`.
    flushed_commit_count: usize,
}

/// Runs the workload until the first error; returns what was acknowledged and, if the open
/// succeeded, the database (still open, possibly failed).
fn run(io: &SimIo, work: &Workload, durability: Durability) -> (Outcome, Option<Db>) {
    let mut outcome = Outcome::default();
    let Ok(db) = open(io, durability) else { return (outcome, None) };
    for step in &work.steps {
        let result = match step {
            Step::Put(key, value) => db.put(key, value),
            Step::Delete(key) => db.delete(key),
            Step::Batch(writes) => {
                let mut batch = db.batch();
                for (key, value) in writes {
                    match value {
                        Some(value) => batch.put(key, value),
                        None => batch.delete(key),
                    };
                }
                batch.commit()
            }
            Step::Flush => match db.flush() {
                Ok(()) => {
                    outcome.flushed_commit_count = outcome.acked.len();
                    continue;
                }
                Err(_) => break,
            },
        };
        let Ok(version) = result else {
            outcome.in_flight = true;
            break;
        };
        outcome.acked.push(version);
    }
    (outcome, Some(db))
}

/// A key's versions as `history` returns them, newest first, values copied out.
type History = Vec<(Version, Option<Bytes>)>;

/// Everything the checks look at: every workload key's history, and the latest range.
#[derive(Debug, PartialEq, Eq)]
struct State {
    histories: BTreeMap<Bytes, History>,
    latest: Vec<(Bytes, Bytes)>,
}

/// A failed check, with what was expected and seen (the caller adds the crash point).
type Check<T = ()> = Result<T, String>;

fn read_history(db: &Db, key: &[u8]) -> Check<History> {
    let history = db.history(key).map_err(|e| format!("history({key:?}): {e}"))?;
    history
        .map(|item| {
            let (version, value) = item.map_err(|e| format!("history({key:?}) item: {e}"))?;
            Ok((version, value.map(|v| v.to_vec())))
        })
        .collect()
}

fn read_state(db: &Db) -> Check<State> {
    let mut histories = BTreeMap::new();
    for &key in &KEYS {
        histories.insert(key.to_vec(), read_history(db, key)?);
    }
    let range = db.range(..).map_err(|e| format!("range(..): {e}"))?;
    let latest = range
        .map(|item| {
            let (key, value) = item.map_err(|e| format!("range(..) item: {e}"))?;
            Ok((key.to_vec(), value.to_vec()))
        })
        .collect::<Check<_>>()?;
    Ok(State { histories, latest })
}

/// Why `state` is not the state after the first `prefix` commits, or `None` if it is.
/// Versions of acknowledged commits must be exactly theirs; the versions of a commit that was
/// not acknowledged must be one version, shared by all its keys, above every acknowledged one.
fn mismatch(state: &State, work: &Workload, acked: &[Version], prefix: usize) -> Option<String> {
    let mut unacked_versions: BTreeMap<usize, Version> = BTreeMap::new();
    for &key in &KEYS {
        let expected: Vec<(usize, &Option<Bytes>)> = (0..prefix)
            .rev()
            .filter_map(|commit| work.commits[commit].get(key).map(|value| (commit, value)))
            .collect();
        let actual = &state.histories[key];
        if actual.len() != expected.len() {
            return Some(format!(
                "key {key:?}: {} versions, expected {} (commits {:?})",
                actual.len(),
                expected.len(),
                expected.iter().map(|e| e.0).collect::<Vec<_>>()
            ));
        }
        for ((version, value), &(commit, expected_value)) in actual.iter().zip(&expected) {
            if value != expected_value {
                return Some(format!("key {key:?}: value at {version:?} is not commit {commit}'s"));
            }
            match acked.get(commit) {
                Some(acked_version) if acked_version != version => {
                    return Some(format!(
                        "key {key:?}: commit {commit} was acknowledged at {acked_version:?} \
                         but recovered at {version:?}"
                    ));
                }
                Some(_) => {}
                None => {
                    let shared = *unacked_versions.entry(commit).or_insert(*version);
                    let above = acked.last().is_none_or(|last| version > last);
                    if shared != *version || !above {
                        return Some(format!(
                            "key {key:?}: unacknowledged commit {commit} at {version:?}, \
                             not one version above every acknowledged one"
                        ));
                    }
                }
            }
        }
    }
    let expected_latest = latest_after(work, prefix);
    (state.latest != expected_latest).then(|| {
        format!(
            "range(..) = {:?}, expected {:?}",
            keys_of(&state.latest),
            keys_of(&expected_latest)
        )
    })
}

fn latest_after(work: &Workload, prefix: usize) -> Vec<(Bytes, Bytes)> {
    let mut latest: BTreeMap<Bytes, Option<Bytes>> = BTreeMap::new();
    for effect in &work.commits[..prefix] {
        latest.extend(effect.clone());
    }
    latest.into_iter().filter_map(|(key, value)| Some((key, value?))).collect()
}

fn keys_of(entries: &[(Bytes, Bytes)]) -> Vec<String> {
    entries.iter().map(|(key, _)| String::from_utf8_lossy(key).into_owned()).collect()
}

/// The prefix length in `prefixes` that `state` matches, or every mismatch.
fn matching_prefix(
    state: &State,
    work: &Workload,
    acked: &[Version],
    prefixes: std::ops::RangeInclusive<usize>,
) -> Check<usize> {
    let mut why = format!("the state is no prefix of the commits in {prefixes:?}:");
    for prefix in prefixes {
        match mismatch(state, work, acked, prefix) {
            None => return Ok(prefix),
            Some(reason) => write!(why, "\n    prefix {prefix}: {reason}").unwrap(),
        }
    }
    Err(why)
}

/// Which prefixes of the commits a restarted database may hold after `outcome`.
fn allowed_prefixes(outcome: &Outcome, durability: Durability) -> std::ops::RangeInclusive<usize> {
    let acked = outcome.acked.len();
    let most = acked + usize::from(outcome.in_flight);
    match durability {
        Durability::Sync => acked..=most,
        _ => outcome.flushed_commit_count..=most,
    }
}

/// The crash variants every crash point is checked under.
fn variants() -> Vec<CrashVariant> {
    let mut variants = vec![CrashVariant::LoseUnsynced, CrashVariant::KeepUnsynced];
    for seed in SEEDS {
        variants.push(CrashVariant::RandomSectors { seed });
        variants.push(CrashVariant::TornLastWrite { seed });
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
    call: u64,
    variant: Option<CrashVariant>,
    why: String,
}

/// Checks one crash point under every variant; returns the crash states checked and adds
/// the failed ones to `failures`.
fn check_crash_point(
    work: &Workload,
    durability: Durability,
    call: u64,
    tally: &mut Tally,
    failures: &mut Vec<Failure>,
) {
    let io = SimIo::new();
    io.crash_at(call);
    let (outcome, db) = run(&io, work, durability);
    let crashed_in_workload = io.has_crashed();
    if let Some(db) = db {
        if let Err(why) = check_crashed_db(&db, work, &outcome, crashed_in_workload) {
            failures.push(Failure { call, variant: None, why });
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
            Ok(Restart::Recovered { prefix }) => {
                tally.unacked_kept += usize::from(prefix > outcome.acked.len());
                tally.acked_lost += usize::from(prefix < outcome.acked.len());
            }
            Err(why) => failures.push(Failure { call, variant: Some(variant), why }),
        }
    }
}

/// The database the crash hit still answers reads, with exactly the acknowledged commits (a
/// failed write is never visible), and refuses writes.
fn check_crashed_db(
    db: &Db,
    work: &Workload,
    outcome: &Outcome,
    crashed_in_workload: bool,
) -> Check {
    let state = read_state(db).map_err(|e| format!("before restart: {e}"))?;
    let acked = outcome.acked.len();
    if let Some(why) = mismatch(&state, work, &outcome.acked, acked) {
        return Err(format!("before restart, reads are not the {acked} acked commits: {why}"));
    }
    if crashed_in_workload {
        let write = db.put(KEY_AFTER, b"refused");
        if !matches!(write, Err(Error::ReadOnly(_) | Error::Io(_))) {
            return Err(format!("a write after the crash returned {write:?}"));
        }
    }
    Ok(())
}

/// Opens the disk a restarted machine finds, checks it (with `as_of`, also reads as of every
/// acknowledged version), writes once more, reopens, checks.
fn check_restart(
    work: &Workload,
    durability: Durability,
    disk: &SimIo,
    outcome: &Outcome,
    as_of: bool,
) -> Check<Restart> {
    let db = match open(disk, durability) {
        Ok(db) => db,
        Err(error) => return Err(format!("reopen failed: {error}")),
    };
    let state = read_state(&db)?;
    let prefixes = allowed_prefixes(outcome, durability);
    let prefix = matching_prefix(&state, work, &outcome.acked, prefixes)?;
    if as_of {
        check_as_of_reads(&db, work, &outcome.acked[..prefix.min(outcome.acked.len())])?;
    }
    let version_max = state.histories.values().flatten().map(|(v, _)| *v).max();
    let after = db.put(KEY_AFTER, b"after").map_err(|e| format!("write after recovery: {e}"))?;
    if version_max.is_some_and(|max| after <= max) {
        return Err(format!(
            "the write after recovery got {after:?}, not above the recovered {version_max:?}"
        ));
    }
    db.close().map_err(|e| format!("close after recovery: {e}"))?;
    drop(db);
    let db = open(disk, durability).map_err(|e| format!("second reopen failed: {e}"))?;
    let again = read_state(&db).map_err(|e| format!("second reopen: {e}"))?;
    if again.histories != state.histories {
        return Err(format!("the second reopen changed the history (prefix {prefix})"));
    }
    let after_history = read_history(&db, KEY_AFTER)?;
    if after_history != [(after, Some(b"after".to_vec()))] {
        return Err(format!(
            "after the second reopen, the write after recovery reads {after_history:?}"
        ));
    }
    Ok(Restart::Recovered { prefix })
}

/// Reads as of each acknowledged commit's version give the state right after that commit.
fn check_as_of_reads(db: &Db, work: &Workload, acked: &[Version]) -> Check {
    for (commit, &version) in acked.iter().enumerate() {
        let range = db.range_at(.., version).map_err(|e| format!("range_at {version:?}: {e}"))?;
        let found: Vec<(Bytes, Bytes)> = range
            .map(|item| item.map(|(key, value)| (key.to_vec(), value.to_vec())))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("range_at {version:?} item: {e}"))?;
        let expected = latest_after(work, commit + 1);
        if found != expected {
            return Err(format!(
                "range_at(.., {version:?}) after commit {commit} = {:?}, expected {:?}",
                keys_of(&found),
                keys_of(&expected)
            ));
        }
    }
    Ok(())
}

/// What a restart found.
enum Restart {
    Recovered {
        /// Commits in the state.
        prefix: usize,
    },
}

/// Runs the workload without a crash and returns the number of I/O calls it makes, open to
/// close; checks the result and that the count is the same on a second run.
fn count_calls(work: &Workload, durability: Durability) -> u64 {
    let mut counts = Vec::new();
    for _ in 0..2 {
        let io = SimIo::new();
        let (outcome, db) = run(&io, work, durability);
        let db = db.expect("the workload opens without a crash");
        assert_eq!(outcome.acked.len(), work.commits.len(), "{durability:?}: a commit failed");
        assert_eq!(outcome.flushed_commit_count, FLUSH_AFTER[2] + 1, "{durability:?}: flushes");
        assert_eq!(db.stats().segment_count, FLUSH_AFTER.len(), "{durability:?}");
        db.close().unwrap();
        counts.push(io.call_count());
    }
    assert_eq!(counts[0], counts[1], "{durability:?}: the workload's I/O is not deterministic");
    counts[0]
}

fn crash_at_every_call(durability: Durability) {
    let started = Instant::now();
    let work = workload();
    let call_count = count_calls(&work, durability);
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    for call in 0..call_count {
        check_crash_point(&work, durability, call, &mut tally, &mut failures);
    }
    let state_count = tally.states;
    eprintln!(
        "{durability:?}, workload seed {}: {state_count} crash states checked ({call_count} crash points x {} \
         variants) in {:.1?}; a commit in flight in {}, unacknowledged commits recovered in {}, \
         acknowledged commits lost in {}",
        workload_seed(),
        variants().len(),
        started.elapsed(),
        tally.in_flight,
        tally.unacked_kept,
        tally.acked_lost,
    );
    let mut report = String::new();
    for failure in &failures {
        let Failure { call, variant, why } = failure;
        let variant = variant.map_or_else(|| "before restart".into(), |v| format!("{v:?}"));
        writeln!(report, "  crash at I/O call k={call}, {durability:?}, {variant}: {why}").unwrap();
    }
    if !failures.is_empty() {
        writeln!(report, "  workload seed {} (ZVERSE_CRASH_SEED)", workload_seed()).unwrap();
    }
    assert!(
        failures.is_empty(),
        "{} of {state_count} crash states failed:\n{report}",
        failures.len()
    );
    assert!(state_count >= 1000, "{durability:?}: only {state_count} crash states");
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
    let work = workload();
    let io = SimIo::new();
    let (outcome, db) = run(&io, &work, Durability::Sync);
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
    let work = workload();
    let mut state_count = 0;
    let mut failures = String::new();
    for call in (0..count_calls(&work, Durability::Sync)).step_by(5) {
        let io = SimIo::new();
        io.crash_at(call);
        let (outcome, db) = run(&io, &work, Durability::Sync);
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
    assert!(state_count >= 500, "only {state_count} double-crash states");
}
