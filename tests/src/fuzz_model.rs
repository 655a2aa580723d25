//! The check of fuzz target `db_model`, shared with the corpus replay test
//! (`tests/tests/fuzz_corpus.rs`): the input is read as a sequence of operations (puts,
//! deletes, batches, flushes, compactions, clean reopens, snapshots, every read kind, and
//! power failures at a chosen I/O call) run on the engine over [`SimIo`] and on a model, a list
//! of the acknowledged commits, side by side.
//!
//! What must hold:
//! - every read answers exactly what the model answers, as of any version, through any
//!   snapshot;
//! - nothing fails unless the power failed;
//! - after a power failure the database the failure hit still reads its acknowledged commits;
//!   the disk a restarted machine finds opens, passes `Db::check`, and holds a prefix of the
//!   commits containing every durable one (every acknowledged one in `Sync` mode; those
//!   before the last `flush`, `compact` or clean close otherwise), the commit in flight at the
//!   crash entirely or not at all, acknowledged versions unchanged;
//! - after a clean close and reopen, exactly the acknowledged commits.
//!
//! Input layout (hand-rolled, so that every byte string is a valid input and libFuzzer's
//! mutations stay meaningful): one configuration byte, then operations of one opcode byte and
//! its argument bytes each, until the input or [`OPS_MAX`] runs out. The I/O call order is
//! deterministic: the memtable limit is far above what an input writes, so the background
//! thread does I/O only in the rounds `flush` and `compact` wait for.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Bound;
use std::sync::Arc;

use zverse::{Db, Durability, Options, Snapshot, Version};

use crate::oracle::Oracle;
use crate::sim_io::{CrashVariant, SimIo};

/// The database directory on the simulated disk.
const DIR: &str = "/db";
/// The most operations one input runs.
pub const OPS_MAX: usize = 64;
/// Snapshots held at once; taking one more drops the oldest.
const SNAPSHOTS_LIVE_MAX: usize = 4;
/// Writes per batch at most.
const BATCH_LEN_MAX: usize = 4;
/// Value length per unit of its length byte: values reach 765 bytes, 1.5 sectors.
const VALUE_LEN_UNIT: usize = 3;
/// Keys the operations pick from: the empty key, keys shorter than the 8-byte Z prefix, keys
/// equal after zero padding, keys sharing their first 8 bytes, the extremes.
const KEYS: [&[u8]; 8] = [
    b"",
    b"a",
    b"a\0",
    b"apple",
    b"prefix00a",
    b"prefix00b",
    b"zz",
    b"\xff\xff\xff\xff\xff\xff\xff\xff\xff",
];

type Bytes = Vec<u8>;
/// A commit's effect: per key, the value written (`None`: a delete); a batch's later write of
/// a key wins.
type Effects = BTreeMap<Bytes, Option<Bytes>>;
/// A key's versions, newest first.
type History = Vec<(Version, Option<Bytes>)>;

/// Target `db_model`: runs `data` as operations on the engine and the model; panics, naming
/// the operation and the trace so far, where they disagree.
pub fn check_db_model(data: &[u8]) {
    let _summary = run_db_model(data);
}

/// What a run of [`check_db_model`] did, for tests that its inputs reach what they should.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModelSummary {
    /// Operations run.
    pub op_count: usize,
    /// Commits acknowledged.
    pub commit_count: usize,
    /// Restarts after a power failure.
    pub restart_count: usize,
    /// Restarts that recovered the commit in flight at the power failure.
    pub in_flight_recovered_count: usize,
    /// Restarts that lost acknowledged commits (allowed only for commits not yet durable).
    pub acked_lost_count: usize,
}

/// [`check_db_model`], returning what the run did.
#[must_use]
pub fn run_db_model(data: &[u8]) -> ModelSummary {
    let mut input = Input::new(data);
    let Some(config) = input.byte() else { return ModelSummary::default() };
    let mut run = Run::new(config);
    for index in 0..OPS_MAX {
        let Some(opcode) = input.byte() else { break };
        run.op_index = index;
        run.summary.op_count += 1;
        run.step(opcode, &mut input);
    }
    run.finish()
}

/// A cursor over the input; every read past its end is `None`, which ends the run. The other
/// fuzz checks read their inputs through it too.
pub(crate) struct Input<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Input<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Input<'a> {
        Input { bytes, position: 0 }
    }

    pub(crate) fn byte(&mut self) -> Option<u8> {
        let byte = *self.bytes.get(self.position)?;
        self.position += 1;
        Some(byte)
    }

    fn key(&mut self) -> Option<&'static [u8]> {
        Some(KEYS[usize::from(self.byte()?) % KEYS.len()])
    }

    /// A value of `VALUE_LEN_UNIT * byte` bytes, tagged with `tag` so that values differ.
    fn value(&mut self, tag: usize) -> Option<Bytes> {
        let len = usize::from(self.byte()?) * VALUE_LEN_UNIT;
        let tag = format!("#{tag}:");
        Some(tag.bytes().chain((0..).map(|i: usize| (i % 251) as u8)).take(len).collect())
    }

    /// A key range: each bound unbounded, included or excluded, at one of the keys.
    fn key_range(&mut self) -> Option<KeyBounds> {
        Some((self.bound(|k| k)?, self.bound(|k| k)?))
    }

    fn bound<T>(&mut self, pick: impl FnOnce(&'static [u8]) -> T) -> Option<Bound<T>> {
        let byte = self.byte()?;
        let key = pick(KEYS[usize::from(byte >> 2) % KEYS.len()]);
        Some(match byte % 3 {
            0 => Bound::Unbounded,
            1 => Bound::Included(key),
            _ => Bound::Excluded(key),
        })
    }
}

/// The acknowledged commits, in order, with their versions.
#[derive(Default)]
struct Model {
    commits: Vec<(Version, Effects)>,
    /// Commits a power failure may not lose.
    durable_count: usize,
}

impl Model {
    /// The commits as the one oracle of the tests.
    fn oracle(&self) -> Oracle {
        let mut oracle = Oracle::default();
        for (version, effects) in &self.commits {
            oracle.write(*version, effects);
        }
        oracle
    }

    fn history(&self, key: &[u8]) -> History {
        self.oracle().history(key, Version::MAX)
    }

    /// The latest value of each key in `keys` as of `version`, deletes dropped.
    fn range_at(&self, keys: &KeyBounds, version: Version) -> Vec<(Bytes, Bytes)> {
        self.oracle().range_at(*keys, version)
    }

    /// Every write to a key in `keys` at a version in `versions`, sorted by (key, version).
    fn changes(&self, keys: &KeyBounds, versions: (Bound<Version>, Bound<Version>)) -> ChangeSet {
        self.oracle().changes(*keys, &versions, Version::MAX)
    }

    /// The prefix length of the commits (with the one in flight after them) that `state` is,
    /// from the durable ones up, or why none is.
    fn matching_prefix(&self, state: &State, in_flight: Option<&Effects>) -> Result<usize, String> {
        let acked = self.commits.len();
        let mut why = String::from("the recovered state is no allowed prefix of the commits:");
        for prefix in self.durable_count..=acked {
            let model = Model { commits: self.commits[..prefix].to_vec(), durable_count: 0 };
            match state_mismatch(state, &model) {
                None => return Ok(prefix),
                Some(reason) => write!(why, "\n    {prefix} commits: {reason}").unwrap(),
            }
        }
        if let Some(effects) = in_flight {
            let mut model = Model { commits: self.commits.clone(), durable_count: 0 };
            match recovered_version(state, effects) {
                Some(version) if self.version_last().is_none_or(|last| version > last) => {
                    model.commits.push((version, effects.clone()));
                    match state_mismatch(state, &model) {
                        None => return Ok(acked + 1),
                        Some(reason) => write!(why, "\n    with the commit in flight: {reason}"),
                    }
                    .unwrap();
                }
                version => write!(why, "\n    the commit in flight is at {version:?}").unwrap(),
            }
        }
        Err(why)
    }

    fn version_last(&self) -> Option<Version> {
        self.commits.last().map(|(version, _)| *version)
    }

    /// The version an input's byte picks: zero, the largest, an acknowledged commit's, or one
    /// below it.
    fn version_pick(&self, byte: u8) -> Version {
        let pick = usize::from(byte) % (self.commits.len() * 2 + 2);
        match pick.checked_sub(2) {
            None if pick == 0 => Version::ZERO,
            None => Version::MAX,
            Some(index) => {
                let version = self.commits[index / 2].0;
                if index % 2 == 0 { version } else { Version::new(version.get().saturating_sub(1)) }
            }
        }
    }
}

type KeyBounds = (Bound<&'static [u8]>, Bound<&'static [u8]>);
type ChangeSet = Vec<(Bytes, Version, Option<Bytes>)>;

/// The engine side of a run, with the model and a trace of the operations for failure
/// messages.
struct Run {
    io: SimIo,
    durability: Durability,
    options: Options,
    db: Db,
    /// Live snapshots, oldest first.
    snapshots: Vec<Snapshot>,
    model: Model,
    /// How the next power failure treats unsynced data.
    crash_variant: CrashVariant,
    /// Tags values, so that every write's value differs.
    write_count: usize,
    op_index: usize,
    trace: String,
    summary: ModelSummary,
}

impl Run {
    fn new(config: u8) -> Run {
        let durability = if config & 1 == 0 { Durability::Sync } else { Durability::None };
        let block_bytes = [256, 1024, 4096, 256][usize::from(config >> 1) % 4];
        // Half the runs split flushes and compactions into segments of 4 KiB.
        let segment_bytes: u64 = if config & 0x80 == 0 { 256 << 20 } else { 4 << 10 };
        let options = Options::default()
            .durability(durability)
            .memtable_bytes_max(64 << 20)
            // One page of zero-filled log ahead: the tail is exercised, and each log's creation
            // on the simulated disk stays small (the 1 MiB default made the corpus replay slow).
            .log_preallocation_bytes(4096)
            .segment_block_bytes(block_bytes)
            .segment_bytes_target(segment_bytes)
            .compaction_trigger_segments(3 + u32::from(config >> 3) % 3);
        let io = SimIo::new();
        let db = open(&io, &options).expect("a new database opens on an empty disk");
        let mut trace = String::new();
        writeln!(
            trace,
            "config {config:#04x}: {durability:?}, {block_bytes}-byte blocks, \
             {segment_bytes}-byte segments"
        )
        .unwrap();
        Run {
            io,
            durability,
            options,
            db,
            snapshots: Vec::new(),
            model: Model::default(),
            crash_variant: CrashVariant::LoseUnsynced,
            write_count: 0,
            op_index: 0,
            trace,
            summary: ModelSummary::default(),
        }
    }

    /// Fails the run: the operation, what went wrong, and every operation before it.
    fn fail(&self, why: &str) -> ! {
        panic!("db_model, op {}: {why}\ntrace:\n{}", self.op_index, self.trace)
    }

    fn step(&mut self, opcode: u8, input: &mut Input<'_>) {
        if self.step_with(opcode, input).is_none() {
            let _ = writeln!(self.trace, "  (input ended inside op {})", self.op_index);
        }
        if self.io.has_crashed() {
            self.restart(None, true);
        }
    }

    /// Runs one operation; `None` if the input ended before its arguments.
    fn step_with(&mut self, opcode: u8, input: &mut Input<'_>) -> Option<()> {
        match opcode % 16 {
            0..=2 => {
                let key = input.key()?;
                let value = input.value(self.write_count)?;
                self.write(&[(key, Some(value))]);
            }
            3 => {
                let key = input.key()?;
                self.write(&[(key, None)]);
            }
            4 => {
                let len = usize::from(input.byte()?) % (BATCH_LEN_MAX + 1);
                let mut writes = Vec::with_capacity(len);
                for _ in 0..len {
                    let key = input.key()?;
                    let is_put = input.byte()? % 4 != 0;
                    let value = if is_put { Some(input.value(self.write_count)?) } else { None };
                    writes.push((key, value));
                }
                self.write(&writes);
            }
            5 => self.flush_or_compact(false),
            6 => self.flush_or_compact(true),
            7 => self.reopen(),
            8 => self.take_snapshot(),
            9 => self.read_snapshot(input.byte()?, input.key()?, input.key_range()?),
            10 => self.read_get_at(input.key()?, input.byte()?),
            11 => self.read_history(input.key()?),
            12 => self.read_range_at(input.key_range()?, input.byte()?),
            13 => self.read_changes(input.key_range()?, input.byte()?, input.byte()?),
            14 => self.schedule_crash(input.byte()?, input.byte()?),
            _ => {
                let dropped = (!self.snapshots.is_empty()).then(|| self.snapshots.remove(0));
                let _ = writeln!(self.trace, "  drop oldest snapshot: {}", dropped.is_some());
            }
        }
        Some(())
    }

    /// Commits `writes` (one put or delete, or a batch of any length) and records the outcome.
    fn write(&mut self, writes: &[(&[u8], Option<Bytes>)]) {
        self.write_count += 1;
        let effects: Effects = writes.iter().map(|(k, v)| (k.to_vec(), v.clone())).collect();
        let result = match writes {
            [(key, Some(value))] => self.db.put(key, value),
            [(key, None)] => self.db.delete(key),
            _ => {
                let mut batch = self.db.batch();
                for (key, value) in writes {
                    match value {
                        Some(value) => batch.put(key, value),
                        None => batch.delete(key),
                    };
                }
                batch.commit()
            }
        };
        let _ = writeln!(self.trace, "  write {:?}: {:?}", brief(&effects), result);
        match result {
            Ok(version) => {
                if self.model.version_last().is_some_and(|last| version <= last) {
                    self.fail(&format!("version {version:?} is not above the last commit's"));
                }
                self.model.commits.push((version, effects));
                self.summary.commit_count += 1;
                if self.durability == Durability::Sync {
                    self.model.durable_count = self.model.commits.len();
                }
            }
            // In flight at the crash: on disk entirely or not at all.
            Err(_) if self.io.has_crashed() => self.restart(Some(effects), true),
            Err(error) => self.fail(&format!("a write failed without a power failure: {error}")),
        }
    }

    fn flush_or_compact(&mut self, compact: bool) {
        let result = if compact { self.db.compact() } else { self.db.flush() };
        let _ = writeln!(self.trace, "  {}: {result:?}", if compact { "compact" } else { "flush" });
        match result {
            Ok(()) => self.model.durable_count = self.model.commits.len(),
            Err(_) if self.io.has_crashed() => {}
            Err(error) => {
                self.fail(&format!("flush/compact failed without a power failure: {error}"))
            }
        }
    }

    /// A clean close and reopen: exactly the acknowledged commits survive.
    fn reopen(&mut self) {
        self.snapshots.clear();
        let closed = self.db.close();
        let _ = writeln!(self.trace, "  close: {closed:?}");
        if closed.is_err() {
            if !self.io.has_crashed() {
                self.fail(&format!("close failed without a power failure: {closed:?}"));
            }
            // A closed database answers no reads: nothing to check before the restart.
            return self.restart(None, false);
        }
        self.model.durable_count = self.model.commits.len();
        match open(&self.io, &self.options) {
            Ok(db) => self.db = db,
            Err(error) if self.io.has_crashed() => {
                let _ = writeln!(self.trace, "  reopen: {error}");
                return self.restart(None, false);
            }
            Err(error) => self.fail(&format!("reopen after a clean close failed: {error}")),
        }
        let _ = writeln!(self.trace, "  reopened");
        if let Err(why) = self.check_state_exact() {
            self.fail(&format!("after a clean reopen: {why}"));
        }
    }

    fn take_snapshot(&mut self) {
        if self.snapshots.len() == SNAPSHOTS_LIVE_MAX {
            self.snapshots.remove(0);
        }
        let snapshot = self.db.snapshot();
        let _ = writeln!(self.trace, "  snapshot at {:?}", snapshot.version());
        if self.model.version_last().is_some_and(|last| snapshot.version() < last) {
            self.fail("a snapshot below the last acknowledged commit");
        }
        self.snapshots.push(snapshot);
    }

    fn read_snapshot(&mut self, pick: u8, key: &'static [u8], keys: KeyBounds) {
        let Some(snapshot) = self.snapshots.get(usize::from(pick) % self.snapshots.len().max(1))
        else {
            return;
        };
        let version = snapshot.version();
        let _ = writeln!(self.trace, "  snapshot {version:?}: get {key:?}, range {keys:?}");
        let expected = self.model.range_at(&(Bound::Included(key), Bound::Included(key)), version);
        let got = snapshot.get(key).map(|v| v.map(|v| v.to_vec()));
        if got.as_ref().ok() != Some(&expected.first().map(|(_, v)| v.clone())) {
            self.fail(&format!(
                "snapshot {version:?}.get({key:?}) = {got:?}, expected {expected:?}"
            ));
        }
        let got = snapshot.range(keys).and_then(collect_range);
        self.expect_equal("snapshot range", got, &self.model.range_at(&keys, version));
    }

    fn read_get_at(&mut self, key: &'static [u8], pick: u8) {
        let version = self.model.version_pick(pick);
        let _ = writeln!(self.trace, "  get_at {key:?} {version:?}");
        let expected = self.model.range_at(&(Bound::Included(key), Bound::Included(key)), version);
        let got = self.db.get_at(key, version).map(|v| v.map(|v| v.to_vec()));
        self.expect_equal("get_at", got, &expected.first().map(|(_, v)| v.clone()));
    }

    fn read_history(&mut self, key: &'static [u8]) {
        let _ = writeln!(self.trace, "  history {key:?}");
        self.expect_equal("history", read_history(&self.db, key), &self.model.history(key));
    }

    fn read_range_at(&mut self, keys: KeyBounds, pick: u8) {
        let version = self.model.version_pick(pick);
        let _ = writeln!(self.trace, "  range_at {keys:?} {version:?}");
        let got = self.db.range_at(keys, version).and_then(collect_range);
        self.expect_equal("range_at", got, &self.model.range_at(&keys, version));
    }

    fn read_changes(&mut self, keys: KeyBounds, low: u8, high: u8) {
        let bound = |version, byte: u8| match byte % 3 {
            0 => Bound::Unbounded,
            1 => Bound::Included(version),
            _ => Bound::Excluded(version),
        };
        let versions = (
            bound(self.model.version_pick(low / 3), low),
            bound(self.model.version_pick(high / 3), high),
        );
        let _ = writeln!(self.trace, "  changes {keys:?} {versions:?}");
        let got = self.db.changes(keys, versions).and_then(|changes| {
            let mut set: ChangeSet = changes
                .map(|c| c.map(|c| (c.key.to_vec(), c.version, c.value.map(|v| v.to_vec()))))
                .collect::<zverse::Result<_>>()?;
            set.sort();
            Ok(set)
        });
        self.expect_equal("changes", got, &self.model.changes(&keys, versions));
    }

    fn expect_equal<T: PartialEq + std::fmt::Debug>(
        &self,
        what: &str,
        got: zverse::Result<T>,
        expected: &T,
    ) {
        match got {
            Ok(got) if got == *expected => {}
            got => self.fail(&format!("{what} = {got:?}, expected {expected:?}")),
        }
    }

    /// Makes the power fail at the `calls`-th I/O call from now (0: the next one).
    fn schedule_crash(&mut self, calls: u8, variant: u8) {
        let seed = u64::from(variant >> 2);
        self.crash_variant = match variant % 4 {
            0 => CrashVariant::LoseUnsynced,
            1 => CrashVariant::KeepUnsynced,
            2 => CrashVariant::RandomSectors { seed },
            _ => CrashVariant::TornLastWrite { seed },
        };
        let call = self.io.call_count() + u64::from(calls);
        let _ = writeln!(self.trace, "  power fails at I/O call {call}, {:?}", self.crash_variant);
        self.io.crash_at(call);
    }

    /// The power failed: checks the database it hit (with `check_hit`: it is still open), then
    /// restarts on the disk it left (which has no crash scheduled, so it must open) and finds
    /// which prefix of the commits, `in_flight` last, it holds.
    fn restart(&mut self, in_flight: Option<Effects>, check_hit: bool) {
        if check_hit && let Err(why) = self.check_state_exact() {
            self.fail(&format!("the database the power failure hit: {why}"));
        }
        self.snapshots.clear();
        let _ = self.db.close();
        let disk = self.io.after_crash(self.crash_variant);
        let _ =
            writeln!(self.trace, "  restart after the power failure ({:?})", self.crash_variant);
        self.io = disk;
        self.db = match open(&self.io, &self.options) {
            Ok(db) => db,
            Err(error) => self.fail(&format!("the restarted disk does not open: {error}")),
        };
        match self.db.check() {
            Ok(_) => {}
            Err(error) => self.fail(&format!("Db::check after the restart: {error}")),
        }
        let state = match read_state(&self.db) {
            Ok(state) => state,
            Err(error) => self.fail(&format!("reading after the restart: {error}")),
        };
        let prefix = match self.model.matching_prefix(&state, in_flight.as_ref()) {
            Ok(prefix) => prefix,
            Err(why) => self.fail(&why),
        };
        let acked = self.model.commits.len();
        self.summary.restart_count += 1;
        self.summary.in_flight_recovered_count += usize::from(prefix > acked);
        self.summary.acked_lost_count += usize::from(prefix < acked);
        if prefix > acked {
            let effects = in_flight.expect("a prefix past the acknowledged commits has one more");
            let version = recovered_version(&state, &effects).expect("matched: it is visible");
            self.model.commits.push((version, effects));
        }
        self.model.commits.truncate(prefix);
        self.model.durable_count = prefix;
        let _ = writeln!(self.trace, "  recovered {prefix} commits ({acked} acknowledged)");
    }

    /// The database holds exactly the acknowledged commits.
    fn check_state_exact(&self) -> Result<(), String> {
        let state = read_state(&self.db).map_err(|error| format!("read failed: {error}"))?;
        state_mismatch(&state, &self.model).map_or(Ok(()), Err)
    }

    /// The end of the input: cancel any crash not reached, close, reopen, compare.
    fn finish(mut self) -> ModelSummary {
        self.io.crash_at(u64::MAX);
        self.op_index = OPS_MAX;
        self.reopen();
        if let Err(error) = self.db.close() {
            self.fail(&format!("the final close failed: {error}"));
        }
        self.summary
    }
}

/// What a restart compares: every key's history and the latest range.
struct State {
    histories: Vec<History>,
    latest: Vec<(Bytes, Bytes)>,
}

fn read_state(db: &Db) -> zverse::Result<State> {
    let histories = KEYS.iter().map(|key| read_history(db, key)).collect::<zverse::Result<_>>()?;
    let latest = db.range(..).and_then(collect_range)?;
    Ok(State { histories, latest })
}

fn state_mismatch(state: &State, model: &Model) -> Option<String> {
    for (key, history) in KEYS.iter().zip(&state.histories) {
        let expected = model.history(key);
        if *history != expected {
            return Some(format!("history({key:?}) = {history:?}, expected {expected:?}"));
        }
    }
    let expected = model.range_at(&(Bound::Unbounded, Bound::Unbounded), Version::MAX);
    (state.latest != expected)
        .then(|| format!("range(..) = {:?}, expected {expected:?}", state.latest))
}

/// The version the commit `effects` has in `state`: that of its first key's newest version,
/// if it has one.
fn recovered_version(state: &State, effects: &Effects) -> Option<Version> {
    let key = effects.keys().next()?;
    let index = KEYS.iter().position(|k| k == key)?;
    state.histories[index].first().map(|(version, _)| *version)
}

fn read_history(db: &Db, key: &[u8]) -> zverse::Result<History> {
    db.history(key)?
        .map(|item| item.map(|(version, value)| (version, value.map(|v| v.to_vec()))))
        .collect()
}

fn collect_range(range: zverse::Range) -> zverse::Result<Vec<(Bytes, Bytes)>> {
    range.map(|item| item.map(|(key, value)| (key.to_vec(), value.to_vec()))).collect()
}

fn open(io: &SimIo, options: &Options) -> zverse::Result<Db> {
    Db::open_with_io(DIR, options.clone(), Arc::new(io.clone()))
}

/// A commit's effects for the trace: keys, and value lengths (`-` for a delete).
fn brief(effects: &Effects) -> Vec<String> {
    effects
        .iter()
        .map(|(key, value)| {
            let len = value.as_ref().map_or_else(|| "-".into(), |v| v.len().to_string());
            format!("{}={len}", key.escape_ascii())
        })
        .collect()
}

/// The seed inputs of target `db_model`: a workload per durability with every operation, one
/// with a power failure in the middle of a batch, one with a failure during compaction, and
/// one that loses commits not yet synced.
#[must_use]
pub fn seeds_db_model() -> Vec<Vec<u8>> {
    // Opcodes: 0 put, 3 delete, 4 batch, 5 flush, 6 compact, 7 reopen, 8 snapshot,
    // 9 snapshot read, 10 get_at, 11 history, 12 range_at, 13 changes, 14 crash, 15 drop.
    let writes: &[u8] = &[
        0, 1, 10, // put "a", 30 bytes
        0, 3, 200, // put "apple", 600 bytes
        8,   // snapshot
        4, 3, 4, 1, 5, 5, 1, 0, 4, 0, // batch: prefix00a, prefix00b (put), "a" (delete)
        3, 3, // delete "apple"
        9, 0, 3, 0, 0, // snapshot read
        5, // flush
        0, 0, 2, 0, 6, 90, // put "", put "zz"
        5, 4, 2, 1, 2, 13, 5, 8, 6, // flush, batch
        6, // compact
        10, 1, 3, 11, 4, 12, 5, 30, 9, 13, 1, 30, 4, 7, // reads
        7, // reopen
        11, 5, 15, // history, drop a snapshot
    ];
    let crash_in_batch: &[u8] = &[0, 1, 10, 14, 1, 1, 4, 2, 1, 1, 2, 7, 1, 1, 0, 2, 8];
    let crash_in_compaction: &[u8] =
        &[0, 1, 10, 5, 0, 2, 20, 5, 0, 3, 30, 5, 14, 6, 3, 6, 11, 1, 0, 1, 9];
    // Without `Sync`: two commits after a flush, held in the log's memory; then the power
    // fails at the next I/O call, the write of those two at the next flush's rotation.
    let unsynced_lost: &[u8] =
        &[0, 1, 10, 0, 2, 10, 5, 0, 3, 10, 0, 4, 10, 14, 0, 0, 5, 11, 3, 11, 1];
    vec![
        [&[1][..], unsynced_lost].concat(),
        [&[0][..], writes].concat(),
        [&[1][..], writes].concat(),
        [&[2][..], crash_in_batch].concat(),
        [&[0][..], crash_in_compaction].concat(),
        [&[1][..], crash_in_compaction].concat(),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use super::*;

    /// The state a database holding exactly `model`'s commits reads.
    fn state_of(model: &Model) -> State {
        State {
            histories: KEYS.iter().map(|key| model.history(key)).collect(),
            latest: model.range_at(&(Bound::Unbounded, Bound::Unbounded), Version::MAX),
        }
    }

    fn effects(writes: &[(&[u8], Option<&[u8]>)]) -> Effects {
        writes.iter().map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec))).collect()
    }

    /// Three commits, the last a batch of two keys; the first two durable.
    fn model() -> Model {
        let commits = vec![
            (Version::new(10), effects(&[(b"a", Some(b"1"))])),
            (Version::new(20), effects(&[(b"apple", None)])),
            (Version::new(30), effects(&[(b"a", Some(b"2")), (b"zz", Some(b"3"))])),
        ];
        Model { commits, durable_count: 2 }
    }

    #[test]
    fn every_allowed_prefix_matches() {
        let model = model();
        for prefix in 2..=3 {
            let recovered = Model { commits: model.commits[..prefix].to_vec(), durable_count: 0 };
            assert_eq!(model.matching_prefix(&state_of(&recovered), None), Ok(prefix));
        }
        // The commit in flight, recovered whole at a version above the acknowledged ones.
        let in_flight = effects(&[(b"a\0", None), (b"zz", Some(b"4"))]);
        let mut recovered = Model { commits: model.commits.clone(), durable_count: 0 };
        recovered.commits.push((Version::new(31), in_flight.clone()));
        assert_eq!(model.matching_prefix(&state_of(&recovered), Some(&in_flight)), Ok(4));
    }

    #[test]
    fn a_lost_durable_commit_a_partial_batch_and_a_moved_version_match_no_prefix() {
        let model = model();
        let lost = Model { commits: model.commits[..1].to_vec(), durable_count: 0 };
        assert!(model.matching_prefix(&state_of(&lost), None).is_err(), "durable commit lost");
        let mut partial = state_of(&model);
        let zz = KEYS.iter().position(|k| *k == b"zz").unwrap();
        partial.histories[zz].clear();
        partial.latest.retain(|(key, _)| key != b"zz");
        assert!(model.matching_prefix(&partial, None).is_err(), "half a batch");
        let mut moved = model.commits.clone();
        moved[0].0 = Version::new(11);
        let moved = Model { commits: moved, durable_count: 0 };
        assert!(model.matching_prefix(&state_of(&moved), None).is_err(), "a version changed");
        // The commit in flight at a version not above the acknowledged ones.
        let in_flight = effects(&[(b"a\0", None)]);
        let mut below = Model { commits: model.commits.clone(), durable_count: 0 };
        below.commits.insert(0, (Version::new(5), in_flight.clone()));
        assert!(model.matching_prefix(&state_of(&below), Some(&in_flight)).is_err(), "below");
    }
}
