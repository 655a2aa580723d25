//! The workload of the crash and fault tests, and the checks of what a database holds after
//! it was interrupted: a deterministic sequence of puts, deletes, batches, flushes, a
//! compaction and a close-and-reopen on a [`SimIo`], and, for a restarted disk, whether the
//! database holds exactly a prefix of the workload's commits.
//!
//! The I/O call order is deterministic because the memtable limit is far above the workload
//! and the compaction trigger above its segment count, so only the workload's explicit
//! `flush()` and `compact()` calls (which block until the background thread is done) make the
//! background thread do I/O.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Bound;
use std::sync::Arc;

use zverse::{Db, Durability, Error, Isolation, Options, Version};

use crate::oracle::Oracle;
use crate::sim_io::SimIo;

/// The database directory on the simulated disk.
pub const DIR: &str = "/db";
/// The default seed of the workload generator. Changing it changes every crash state; the
/// environment variable `ZVERSE_CRASH_SEED` overrides it.
pub const WORKLOAD_SEED: u64 = 0x2e5f_0c0d_a7a1_1e55;
/// Commits in the workload.
pub const COMMIT_COUNT: usize = 40;
/// Keys the workload writes; the empty key is a legal key.
pub const KEYS: [&[u8]; 7] = [b"", b"a", b"apple", b"b", b"banana:0001", b"banana:0002", b"zz"];
/// A key no workload commit writes, written once after recovery.
pub const KEY_AFTER: &[u8] = b"written-after-recovery";
/// The fewest segments after a complete run: flushes after commits 9 and 22, the compactions
/// after commits 26 and 36 (a flush, then every level-0 segment merged with level 1 into
/// level-1 segments, the versions they supersede demoted into history segments), the flush
/// after 33; with the 4 KiB segment target, level 1 and history are split into several
/// segments (how many depends on the values' random lengths).
pub const SEGMENTS_AT_END: usize = 4;
/// Commits before the last step that makes every earlier commit durable (the compaction after
/// commit 36).
pub const DURABLE_AT_END: usize = 37;

/// The step, if any, that follows the commit with index `commit`.
fn step_after(commit: usize) -> Option<Step> {
    match commit {
        9 | 22 | 33 => Some(Step::Flush),
        26 | 36 => Some(Step::Compact),
        30 => Some(Step::Reopen),
        _ => None,
    }
}

type Bytes = Vec<u8>;

/// One step of the workload.
#[derive(Clone, Debug)]
pub enum Step {
    /// `Db::put`.
    Put(Bytes, Bytes),
    /// `Db::delete`.
    Delete(Bytes),
    /// Writes in order: `Some` is a put, `None` a delete; a key written twice keeps the later.
    Batch(Vec<(Bytes, Option<Bytes>)>),
    /// The same writes through a `Serializable` transaction that first reads the first key:
    /// one record at one version, all or nothing, like a batch.
    Transaction(Vec<(Bytes, Option<Bytes>)>),
    /// `Db::flush`.
    Flush,
    /// `Db::compact`: a flush, then every segment merged (into segments of the target size;
    /// one manifest update per step).
    Compact,
    /// `Db::close`, then `Db::open` again: recovery in the middle of the workload.
    Reopen,
}

/// The workload and what each of its commits does to the state.
pub struct Workload {
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// For each commit, in order: its effect per key (a batch's later write of a key wins).
    pub commits: Vec<BTreeMap<Bytes, Option<Bytes>>>,
}

fn value_for(rng: &mut fastrand::Rng, commit: usize) -> Bytes {
    // Lengths up to 1.5 sectors, so that frames straddle sector boundaries; zero-length values
    // are legal and must not read as deletes.
    let len = if rng.u8(..8) == 0 { 0 } else { rng.usize(1..=768) };
    let tag = format!("c{commit}:");
    tag.bytes().chain((0..len).map(|i| (i % 251) as u8)).take(len.max(tag.len())).collect()
}

/// The workload seed: `ZVERSE_CRASH_SEED` if set, else [`WORKLOAD_SEED`].
#[must_use]
pub fn workload_seed() -> u64 {
    std::env::var("ZVERSE_CRASH_SEED").map_or(WORKLOAD_SEED, |seed| {
        seed.parse().unwrap_or_else(|_| panic!("ZVERSE_CRASH_SEED={seed:?} is not a u64"))
    })
}

/// The workload generated from `seed`.
#[must_use]
pub fn workload(seed: u64) -> Workload {
    let mut rng = fastrand::Rng::with_seed(seed);
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
                // Every third commit of this kind goes through a transaction.
                if commit % 3 == 0 { Step::Transaction(writes) } else { Step::Batch(writes) }
            }
        };
        let effect: BTreeMap<Bytes, Option<Bytes>> = match &step {
            Step::Put(key, value) => [(key.clone(), Some(value.clone()))].into(),
            Step::Delete(key) => [(key.clone(), None)].into(),
            Step::Batch(writes) | Step::Transaction(writes) => writes.iter().cloned().collect(),
            Step::Flush | Step::Compact | Step::Reopen => unreachable!("added below"),
        };
        steps.push(step);
        commits.push(effect);
        steps.extend(step_after(commit));
    }
    Workload { steps, commits }
}

/// The workload's options.
#[must_use]
pub fn options(durability: Durability) -> Options {
    // Far above the workload's bytes and segments: no automatic rotation or compaction, so the
    // I/O order is deterministic. Small blocks: several per segment; a small segment target:
    // flushes and the compaction write several segments, and crashes fall between them.
    Options::default()
        .durability(durability)
        .memtable_bytes_max(64 << 20)
        .compaction_trigger_segments(1000)
        .segment_block_bytes(1024)
        .segment_bytes_target(4 << 10)
        // Small, so that the log's zero-filled tail is extended several times in the sweep.
        .log_preallocation_bytes(8 << 10)
}

/// Opens the workload's database on `io`.
pub fn open(io: &SimIo, durability: Durability) -> zverse::Result<Db> {
    Db::open_with_io(DIR, options(durability), Arc::new(io.clone()))
}

/// What a run of the workload saw.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Versions of the acknowledged commits, in order (a prefix of the workload's commits).
    pub acked: Vec<Version>,
    /// Whether the commit after the acknowledged ones failed (it may or may not be durable).
    pub in_flight: bool,
    /// Commits before the last `flush()`, `compact()` or close that returned `Ok`.
    pub flushed_commit_count: usize,
    /// The steps that failed (index into the workload's steps), with their error.
    pub failed_steps: Vec<(usize, String)>,
    /// The I/O call count of the disk when each step started (while it ran).
    pub step_starts: Vec<u64>,
}

impl Outcome {
    /// The index of the step that was running at I/O call `call`, if any.
    #[must_use]
    pub fn step_at_call(&self, call: u64) -> Option<usize> {
        self.step_starts.iter().rposition(|&start| start <= call)
    }
}

/// How [`run`] treats a failed `flush()` or `compact()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnError {
    /// Stop the workload (after a power failure, nothing else can succeed).
    Stop,
    /// Carry on with the next step; stop only when a commit fails or the reopen fails.
    Continue,
}

/// Runs the workload until the first failed commit (or, with [`OnError::Stop`], the first
/// error of any step); returns what was acknowledged and, if the (last) open succeeded, the
/// database (still open, possibly read-only).
#[must_use]
pub fn run(
    io: &SimIo,
    work: &Workload,
    durability: Durability,
    on_error: OnError,
) -> (Outcome, Option<Db>) {
    let mut outcome = Outcome::default();
    let Ok(mut db) = open(io, durability) else { return (outcome, None) };
    for (index, step) in work.steps.iter().enumerate() {
        outcome.step_starts.push(io.call_count());
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
            Step::Transaction(writes) => transact(&db, writes),
            Step::Flush | Step::Compact | Step::Reopen => {
                let done = match step {
                    Step::Flush => db.flush(),
                    Step::Compact => db.compact(),
                    _ => db.close(),
                };
                if let Err(error) = done {
                    outcome.failed_steps.push((index, error.to_string()));
                    if on_error == OnError::Stop || matches!(step, Step::Reopen) {
                        return (outcome, (!matches!(step, Step::Reopen)).then_some(db));
                    }
                    continue;
                }
                outcome.flushed_commit_count = outcome.acked.len();
                if matches!(step, Step::Reopen) {
                    drop(db);
                    match open(io, durability) {
                        Ok(reopened) => db = reopened,
                        Err(error) => {
                            outcome.failed_steps.push((index, error.to_string()));
                            return (outcome, None);
                        }
                    }
                }
                continue;
            }
        };
        match result {
            Ok(version) => outcome.acked.push(version),
            Err(error) => {
                outcome.failed_steps.push((index, error.to_string()));
                outcome.in_flight = true;
                break;
            }
        }
    }
    (outcome, Some(db))
}

/// Runs [`Step::Transaction`]: a read, the writes, the commit.
fn transact(db: &Db, writes: &[(Bytes, Option<Bytes>)]) -> zverse::Result<Version> {
    let mut tx = db.transaction_with(Isolation::Serializable);
    if let Some((key, _)) = writes.first() {
        tx.get(key, None)?;
    }
    for (key, value) in writes {
        match value {
            Some(value) => tx.set(key, value)?,
            None => tx.del(key)?,
        }
    }
    Ok(tx.commit()?.expect("a transaction step always writes"))
}

/// A key's versions as `history` returns them, newest first, values copied out.
pub type History = Vec<(Version, Option<Bytes>)>;

/// Everything the checks look at: every workload key's history, and the latest range.
#[derive(Debug, PartialEq, Eq)]
pub struct State {
    /// Every workload key's history.
    pub histories: BTreeMap<Bytes, History>,
    /// `range(..)` at the latest version.
    pub latest: Vec<(Bytes, Bytes)>,
}

/// A failed check, with what was expected and seen (the caller adds the crash point).
pub type Check<T = ()> = Result<T, String>;

/// `key`'s history, newest first.
pub fn read_history(db: &Db, key: &[u8]) -> Check<History> {
    let history = db.history(key).map_err(|e| format!("history({key:?}): {e}"))?;
    history
        .map(|item| {
            let (version, value) = item.map_err(|e| format!("history({key:?}) item: {e}"))?;
            Ok((version, value.map(|v| v.to_vec())))
        })
        .collect()
}

/// Every workload key's history and the latest range.
pub fn read_state(db: &Db) -> Check<State> {
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
#[must_use]
pub fn mismatch(
    state: &State,
    work: &Workload,
    acked: &[Version],
    prefix: usize,
) -> Option<String> {
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

/// The live keys and values after the first `prefix` commits.
#[must_use]
pub fn latest_after(work: &Workload, prefix: usize) -> Vec<(Bytes, Bytes)> {
    let mut oracle = Oracle::default();
    for (version, effect) in (1..).zip(&work.commits[..prefix]) {
        oracle.write(Version::new(version), effect);
    }
    oracle.range_at((Bound::Unbounded, Bound::Unbounded), Version::MAX)
}

fn keys_of(entries: &[(Bytes, Bytes)]) -> Vec<String> {
    entries.iter().map(|(key, _)| String::from_utf8_lossy(key).into_owned()).collect()
}

/// The prefix length in `prefixes` that `state` matches, or every mismatch.
pub fn matching_prefix(
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
#[must_use]
pub fn allowed_prefixes(
    outcome: &Outcome,
    durability: Durability,
) -> std::ops::RangeInclusive<usize> {
    let acked = outcome.acked.len();
    let most = acked + usize::from(outcome.in_flight);
    match durability {
        Durability::Sync => acked..=most,
        _ => outcome.flushed_commit_count..=most,
    }
}

/// The database the crash or fault hit still answers reads, with exactly the acknowledged
/// commits (a failed write is never visible), and, if `refuses_writes`, refuses writes.
pub fn check_running_db(
    db: &Db,
    work: &Workload,
    outcome: &Outcome,
    refuses_writes: bool,
) -> Check {
    let state = read_state(db).map_err(|e| format!("before restart: {e}"))?;
    let acked = outcome.acked.len();
    if let Some(why) = mismatch(&state, work, &outcome.acked, acked) {
        return Err(format!("before restart, reads are not the {acked} acked commits: {why}"));
    }
    if refuses_writes {
        let write = db.put(KEY_AFTER, b"refused");
        if !matches!(write, Err(Error::ReadOnly(_) | Error::Io(_))) {
            return Err(format!("a write after the failure returned {write:?}"));
        }
    }
    Ok(())
}

/// Opens the disk a restarted machine finds, checks that every file verifies (`Db::check`)
/// and that it holds an allowed prefix of the commits (with `as_of`, also reads as of every
/// acknowledged version), writes once more, reopens, checks again. Returns the prefix length.
pub fn check_restart(
    work: &Workload,
    durability: Durability,
    disk: &SimIo,
    outcome: &Outcome,
    as_of: bool,
) -> Check<usize> {
    let db = match open(disk, durability) {
        Ok(db) => db,
        Err(error) => return Err(format!("reopen failed: {error}")),
    };
    db.check().map_err(|e| format!("check after reopen: {e}"))?;
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
    Ok(prefix)
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
