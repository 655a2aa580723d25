//! The engine against a model of every version ever written: a `BTreeMap` from
//! `(key, version)` to the value (`None` for a tombstone). Random sequences of puts, deletes,
//! batches, every read kind (latest, as of a version, history, ranges, the changes box query),
//! snapshots read after later writes, flushes and reopens run on the engine and the model side
//! by side, on real files (the backend `ZVERSE_TEST_BACKEND` names: std or io_uring) and on
//! the simulated disk.
//!
//! The memtable is the smallest allowed (4 KiB) and segment blocks the smallest (256 bytes), so
//! memtables flush every few dozen writes and reads cross many segments and blocks. Keys come
//! from a small set built to collide and to sit on the Z-order edge cases: the empty key, keys
//! shorter than the 8-byte Z prefix, keys that differ only by trailing zero bytes (one padded
//! prefix), and keys sharing their first 8 bytes (ordered by time first in Z order).
//!
//! `PROPTEST_CASES` overrides the case count (default [`CASES_DEFAULT`] per backend). On failure
//! proptest prints the smallest failing sequence it found; the message names the failing op's
//! index. Known engine faults are asserted as they are today by the `fixme_*` tests at the end.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Bound, RangeBounds};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::strategy::{Union, ValueTree};
use proptest::test_runner::{TestCaseError, TestRunner};
use zverse::{Change, Db, Durability, Error, Isolation, Options, Slice, Snapshot, Version};
use zverse_tests::backend;
use zverse_tests::oracle::Oracle;
use zverse_tests::sim_io::SimIo;

type Key = Bytes;
type KeyRange = (Bound<Key>, Bound<Key>);
type VersionWindow = (Bound<VersionPick>, Bound<VersionPick>);

/// Key or value bytes, printed as an escaped byte string (long values abbreviated) so that a
/// failing sequence reads as text.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Bytes(Vec<u8>);

impl From<&[u8]> for Bytes {
    fn from(bytes: &[u8]) -> Bytes {
        Bytes(bytes.to_vec())
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN_LEN_MAX: usize = 24;
        let shown = &self.0[..self.0.len().min(SHOWN_LEN_MAX)];
        write!(f, "b\"{}\"", shown.escape_ascii())?;
        if self.0.len() > SHOWN_LEN_MAX {
            write!(f, "..({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

/// Cases per backend unless `PROPTEST_CASES` says otherwise.
const CASES_DEFAULT: u32 = 32;
/// Shrink steps after a failure: each reruns a whole sequence, ~10 to 100 ms.
const SHRINK_ITERS_MAX: u32 = 4096;
/// Ops per generated sequence: with the tiny memtable a case flushes ~9 times (25 seen at most),
/// and background compaction merges the segments as they pile up.
const OPS_PER_CASE_MAX: usize = 300;
/// Snapshots held at once; taking one more drops the oldest.
const SNAPSHOTS_LIVE_MAX: usize = 4;
/// Where the database lives on the simulated disk.
const SIM_PATH: &str = "/db";

/// Keys that collide on purpose: equal 8-byte padded prefixes (`a`, `a\0`, `a\0\0`, ...),
/// shared 8-byte prefixes with different tails (`prefix00*`), the empty key, the extremes.
const KEYS_FIXED: &[&[u8]] = &[
    b"",
    b"\0",
    b"\0\0",
    b"a",
    b"a\0",
    b"a\0\0",
    b"a\0\0\0\0\0\0\0",
    b"a\0\0\0\0\0\0\0\0",
    b"ab",
    b"b",
    b"prefix0",
    b"prefix00",
    b"prefix00\0",
    b"prefix00a",
    b"prefix00b",
    b"prefix00ab",
    b"prefix01",
    b"\xff",
    b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
];
/// The bytes of generated keys: few, so that short keys collide.
const KEY_ALPHABET: &[u8] = &[0, 1, b'a', b'b', 0xff];

fn options() -> Options {
    // Small segments and levels: compactions write several current and history segments and
    // move segments down more than one level.
    Options::default()
        .durability(Durability::None)
        .memtable_bytes_max(4 << 10)
        .segment_block_bytes(256)
        .segment_bytes_target(4 << 10)
        .level_base_bytes(4 << 10)
        .level_size_ratio(2)
        .compaction_trigger_segments(2)
}

// ---------------------------------------------------------------------------------------------
// Operations and their strategies.

/// A version to read at, resolved against the versions written so far when the op runs.
#[derive(Clone, Debug)]
enum VersionPick {
    Zero,
    Max,
    /// A written version plus `offset`: -1 and +1 land between two writes, or on the neighbour
    /// write when the two versions are consecutive.
    Written {
        index: Index,
        offset: i8,
    },
}

#[derive(Clone, Debug)]
enum Read {
    Get(Key),
    GetAt(Key, VersionPick),
    History(Key),
    Range(KeyRange),
    RangeAt(KeyRange, VersionPick),
    /// `range_at(..).rev()`: descending key order.
    RangeRev(KeyRange, VersionPick),
    /// `range_at` read from both ends: bit `i` of the pattern (cycled) says whether the `i`-th
    /// step takes from the back. The answer is put back in key order.
    RangeEnds(KeyRange, VersionPick, u64),
    PrefixAt(Key, VersionPick),
    FirstAt(VersionPick),
    LastAt(VersionPick),
    /// The last key before a key: `range_at(..key, v).next_back()`.
    LastBefore(Key, VersionPick),
    HistoryRange(Key, VersionWindow),
    Changes(KeyRange, VersionWindow),
}

#[derive(Clone, Debug)]
enum Op {
    Put(Key, Bytes),
    Delete(Key),
    /// `None` is a delete; a later write of the same key in the batch wins.
    Batch(Vec<(Key, Option<Bytes>)>),
    Read(Read),
    Snapshot,
    /// A read through a live snapshot (any, chosen by the index); nothing if none is live.
    SnapshotRead(Index, Read),
    SnapshotDrop(Index),
    Flush,
    /// A full compaction now (retention keeps everything, so the model does not change).
    Compact,
    /// Close and open again; `close_first: false` leaves the close to `Drop`.
    Reopen {
        close_first: bool,
    },
    /// A transaction: its writes, then reads through it (the model at its start plus its
    /// writes), then maybe a plain put after its start, then a commit that must conflict
    /// exactly when its isolation level says so.
    Transaction {
        serializable: bool,
        writes: Vec<(Key, Option<Bytes>)>,
        reads: Vec<TxRead>,
        interloper: Option<(Key, Bytes)>,
    },
}

/// A read through a transaction.
#[derive(Clone, Debug)]
enum TxRead {
    Get(Key),
    /// A scan with a limit, reversed or not.
    Scan(KeyRange, u8, bool),
}

fn key() -> BoxedStrategy<Key> {
    let letter = select(KEY_ALPHABET);
    prop_oneof![
        4 => select(KEYS_FIXED).prop_map(Bytes::from),
        1 => vec(letter.clone(), 0..=12).prop_map(Bytes),
        1 => vec(letter, 0..=4).prop_map(|tail| Bytes([b"prefix00".as_slice(), &tail].concat())),
    ]
    .boxed()
}

fn value() -> BoxedStrategy<Bytes> {
    prop_oneof![
        3 => Just(Bytes::default()),
        16 => vec(any::<u8>(), 1..16).prop_map(Bytes),
        5 => vec(any::<u8>(), 100..400).prop_map(Bytes),
        // Bigger than the whole memtable (4 KiB).
        1 => vec(any::<u8>(), 4000..6000).prop_map(Bytes),
    ]
    .boxed()
}

/// `offset_max` 0 picks only written versions (and zero and max): reads whose answers do not
/// depend on the gaps between versions, which differ from run to run.
fn version_pick(offset_max: i8) -> BoxedStrategy<VersionPick> {
    prop_oneof![
        1 => Just(VersionPick::Zero),
        1 => Just(VersionPick::Max),
        8 => (any::<Index>(), -offset_max..=offset_max)
            .prop_map(|(index, offset)| VersionPick::Written { index, offset }),
    ]
    .boxed()
}

fn bound<T: Clone + fmt::Debug + 'static>(inner: BoxedStrategy<T>) -> BoxedStrategy<Bound<T>> {
    prop_oneof![
        1 => Just(Bound::Unbounded),
        2 => inner.clone().prop_map(Bound::Included),
        2 => inner.prop_map(Bound::Excluded),
    ]
    .boxed()
}

/// Any bounds, inverted and empty ranges included (they must read as empty).
fn key_range() -> BoxedStrategy<KeyRange> {
    (bound(key()), bound(key())).boxed()
}

fn version_window(offset_max: i8) -> BoxedStrategy<VersionWindow> {
    (bound(version_pick(offset_max)), bound(version_pick(offset_max))).boxed()
}

fn read(offset_max: i8) -> BoxedStrategy<Read> {
    let pick = || version_pick(offset_max);
    let arms = vec![
        (3, key().prop_map(Read::Get).boxed()),
        (4, (key(), version_pick(offset_max)).prop_map(|(k, v)| Read::GetAt(k, v)).boxed()),
        (3, key().prop_map(Read::History).boxed()),
        (2, key_range().prop_map(Read::Range).boxed()),
        (
            3,
            (key_range(), version_window(offset_max))
                .prop_map(|(k, w)| Read::Changes(k, w))
                .boxed(),
        ),
        (3, (key_range(), pick()).prop_map(|(k, v)| Read::RangeAt(k, v)).boxed()),
        (2, (key_range(), pick()).prop_map(|(k, v)| Read::RangeRev(k, v)).boxed()),
        (
            2,
            (key_range(), pick(), any::<u64>())
                .prop_map(|(k, v, pattern)| Read::RangeEnds(k, v, pattern))
                .boxed(),
        ),
        (2, (prefix(), pick()).prop_map(|(k, v)| Read::PrefixAt(k, v)).boxed()),
        (1, pick().prop_map(Read::FirstAt).boxed()),
        (1, pick().prop_map(Read::LastAt).boxed()),
        (1, (key(), pick()).prop_map(|(k, v)| Read::LastBefore(k, v)).boxed()),
        (
            2,
            (key(), version_window(offset_max)).prop_map(|(k, w)| Read::HistoryRange(k, w)).boxed(),
        ),
    ];
    Union::new_weighted(arms).boxed()
}

/// Prefixes: a generated key or a short cut of one (`prefix00`, `a`, `\xff`, ...).
fn prefix() -> BoxedStrategy<Key> {
    (key(), 0..=9_usize)
        .prop_map(|(key, len)| Bytes(key.0[..len.min(key.0.len())].to_vec()))
        .boxed()
}

fn write() -> BoxedStrategy<Op> {
    let batch_write = (key(), prop::option::weighted(0.75, value()));
    prop_oneof![
        5 => (key(), value()).prop_map(|(k, v)| Op::Put(k, v)),
        2 => key().prop_map(Op::Delete),
        2 => vec(batch_write, 0..6).prop_map(Op::Batch),
    ]
    .boxed()
}

fn op(offset_max: i8) -> BoxedStrategy<Op> {
    prop_oneof![
        45 => write(),
        35 => read(offset_max).prop_map(Op::Read),
        3 => Just(Op::Snapshot),
        6 => (any::<Index>(), read(offset_max)).prop_map(|(i, r)| Op::SnapshotRead(i, r)),
        1 => any::<Index>().prop_map(Op::SnapshotDrop),
        5 => Just(Op::Flush),
        2 => Just(Op::Compact),
        1 => any::<bool>().prop_map(|close_first| Op::Reopen { close_first }),
        4 => transaction(),
    ]
    .boxed()
}

fn transaction() -> BoxedStrategy<Op> {
    let tx_write = (key(), proptest::option::of(value()));
    let tx_read = prop_oneof![
        key().prop_map(TxRead::Get),
        (key_range(), 1..5_u8, any::<bool>()).prop_map(|(r, l, rev)| TxRead::Scan(r, l, rev)),
    ];
    let interloper = proptest::option::of((key(), value()));
    (any::<bool>(), vec(tx_write, 0..4), vec(tx_read, 0..4), interloper)
        .prop_map(|(serializable, writes, reads, interloper)| Op::Transaction {
            serializable,
            writes,
            reads,
            interloper,
        })
        .boxed()
}

fn ops(offset_max: i8) -> impl Strategy<Value = Vec<Op>> {
    vec(op(offset_max), 1..=OPS_PER_CASE_MAX)
}

// ---------------------------------------------------------------------------------------------
// The model.

/// Every version ever written, the tests' one oracle (`zverse_tests::oracle`). Retention keeps
/// everything (compaction only merges), so the engine must answer every read exactly as it does.
type Model = Oracle<Bytes>;

fn slices(keys: &KeyRange) -> (Bound<&[u8]>, Bound<&[u8]>) {
    (keys.0.as_ref().map(|key| key.0.as_slice()), keys.1.as_ref().map(|key| key.0.as_slice()))
}

impl VersionPick {
    fn resolve(&self, written: &[Version]) -> Version {
        match self {
            VersionPick::Zero => Version::ZERO,
            VersionPick::Max => Version::MAX,
            VersionPick::Written { .. } if written.is_empty() => Version::new(1),
            VersionPick::Written { index, offset } => {
                let base = written[index.index(written.len())];
                Version::new(base.get().saturating_add_signed(i64::from(*offset)))
            }
        }
    }
}

fn resolve_window(window: &VersionWindow, written: &[Version]) -> (Bound<Version>, Bound<Version>) {
    let resolve = |bound: &Bound<VersionPick>| bound.as_ref().map(|pick| pick.resolve(written));
    (resolve(&window.0), resolve(&window.1))
}

// ---------------------------------------------------------------------------------------------
// What a read saw, on the engine or in the model.

#[derive(Clone, Debug, PartialEq)]
enum Observation {
    Value(Option<Bytes>),
    /// Newest first.
    History(Vec<(Version, Option<Bytes>)>),
    /// In key order.
    Entries(Vec<(Key, Bytes)>),
    /// Sorted by (key, version): the engine yields Z order, checked separately.
    Changes(Vec<(Key, Version, Option<Bytes>)>),
}

impl Observation {
    /// The observation with every version replaced by its ordinal among the writes, so that
    /// two runs of one op sequence (whose versions differ) can be compared.
    fn normalized(self, written: &[Version]) -> Observation {
        let ordinal = |version: Version| {
            let index = written.binary_search(&version).map_or(u64::MAX, |i| i as u64);
            Version::new(index)
        };
        match self {
            Observation::History(history) => Observation::History(
                history.into_iter().map(|(version, value)| (ordinal(version), value)).collect(),
            ),
            Observation::Changes(changes) => Observation::Changes(
                changes
                    .into_iter()
                    .map(|(key, version, value)| (key, ordinal(version), value))
                    .collect(),
            ),
            other => other,
        }
    }
}

/// Which handle of the harness a read runs on.
#[derive(Clone, Copy)]
enum On {
    Db,
    /// A live snapshot, by its index in `Harness::snapshots`.
    Snapshot(usize),
}

/// What a read runs on: the database (reads as of now) or a snapshot (as of its version).
#[derive(Clone, Copy)]
enum Target<'a> {
    Db(&'a Db),
    Snapshot(&'a Snapshot),
}

impl Target<'_> {
    fn range_at(self, keys: impl zverse::KeyRange, at: Version) -> zverse::Result<zverse::Range> {
        match self {
            Target::Db(db) => db.range_at(keys, at),
            Target::Snapshot(snapshot) => snapshot.range_at(keys, at),
        }
    }

    fn prefix_at(self, prefix: &[u8], at: Version) -> zverse::Result<zverse::Range> {
        match self {
            Target::Db(db) => db.prefix_at(prefix, at),
            Target::Snapshot(snapshot) => snapshot.prefix_at(prefix, at),
        }
    }

    fn first_at(self, at: Version) -> zverse::Result<Option<zverse::KeyValue>> {
        match self {
            Target::Db(db) => db.first_at(at),
            Target::Snapshot(snapshot) => snapshot.first_at(at),
        }
    }

    fn last_at(self, at: Version) -> zverse::Result<Option<zverse::KeyValue>> {
        match self {
            Target::Db(db) => db.last_at(at),
            Target::Snapshot(snapshot) => snapshot.last_at(at),
        }
    }

    fn history_range(
        self,
        key: &[u8],
        versions: (Bound<Version>, Bound<Version>),
    ) -> zverse::Result<zverse::History> {
        match self {
            Target::Db(db) => db.history_range(key, versions),
            Target::Snapshot(snapshot) => snapshot.history_range(key, versions),
        }
    }

    /// The newest version the target can see, for the model.
    fn cap(self) -> Version {
        match self {
            Target::Db(_) => Version::MAX,
            Target::Snapshot(snapshot) => snapshot.version(),
        }
    }
}

fn engine<T>(result: zverse::Result<T>) -> Result<T, String> {
    result.map_err(|error| format!("engine error: {error:?}"))
}

fn bytes(value: Option<Slice>) -> Option<Bytes> {
    value.map(|value| Bytes(value.to_vec()))
}

fn observe(target: Target<'_>, read: &Read, written: &[Version]) -> Result<Observation, String> {
    let observation = match (read, target) {
        (Read::Get(key), Target::Db(db)) => Observation::Value(bytes(engine(db.get(key))?)),
        (Read::Get(key), Target::Snapshot(s)) => Observation::Value(bytes(engine(s.get(key))?)),
        (Read::GetAt(key, pick), target) => {
            let version = pick.resolve(written);
            let value = match target {
                Target::Db(db) => db.get_at(key, version),
                Target::Snapshot(snapshot) => snapshot.get_at(key, version),
            };
            Observation::Value(bytes(engine(value)?))
        }
        (Read::History(key), target) => {
            let history = match target {
                Target::Db(db) => engine(db.history(key))?,
                Target::Snapshot(snapshot) => engine(snapshot.history(key))?,
            };
            let history: Vec<_> = engine(history.collect::<zverse::Result<_>>())?;
            let history = history.into_iter().map(|(version, value)| (version, bytes(value)));
            Observation::History(history.collect())
        }
        (Read::Range(keys), target) => {
            let range = match target {
                Target::Db(db) => engine(db.range(slices(keys)))?,
                Target::Snapshot(snapshot) => engine(snapshot.range(slices(keys)))?,
            };
            entries(range)?
        }
        (Read::RangeAt(keys, pick), target) => {
            entries(engine(target.range_at(slices(keys), pick.resolve(written)))?)?
        }
        (Read::RangeRev(keys, pick), target) => {
            entries(engine(target.range_at(slices(keys), pick.resolve(written)))?.rev())?
        }
        (Read::RangeEnds(keys, pick, pattern), target) => {
            let range = engine(target.range_at(slices(keys), pick.resolve(written)))?;
            entries_from_both_ends(range, *pattern)?
        }
        (Read::PrefixAt(prefix, pick), target) => {
            entries(engine(target.prefix_at(prefix, pick.resolve(written)))?)?
        }
        (Read::FirstAt(pick), target) => {
            entries(engine(target.first_at(pick.resolve(written)))?.into_iter().map(Ok))?
        }
        (Read::LastAt(pick), target) => {
            entries(engine(target.last_at(pick.resolve(written)))?.into_iter().map(Ok))?
        }
        (Read::LastBefore(key, pick), target) => {
            let before = (Bound::Unbounded, Bound::Excluded(&key[..]));
            let mut range = engine(target.range_at(before, pick.resolve(written)))?;
            entries(range.next_back().into_iter())?
        }
        (Read::HistoryRange(key, window), target) => {
            let window = resolve_window(window, written);
            let history = engine(target.history_range(key, window))?;
            let history: Vec<_> = engine(history.collect::<zverse::Result<_>>())?;
            let history = history.into_iter().map(|(version, value)| (version, bytes(value)));
            Observation::History(history.collect())
        }
        (Read::Changes(keys, window), target) => {
            let window = resolve_window(window, written);
            let changes = match target {
                Target::Db(db) => engine(db.changes(slices(keys), window))?,
                Target::Snapshot(snapshot) => engine(snapshot.changes(slices(keys), window))?,
            };
            changes_sorted(engine(changes.collect::<zverse::Result<Vec<Change>>>())?)?
        }
    };
    Ok(observation)
}

/// Reads `range` from both ends as `pattern` says (bit `i`, cycled: take from the back), and
/// returns what was read in key order.
fn entries_from_both_ends(mut range: zverse::Range, pattern: u64) -> Result<Observation, String> {
    let (mut front, mut back) = (Vec::new(), Vec::new());
    for step in 0.. {
        let from_back = pattern.rotate_right(step % 64) & 1 == 1;
        let item = if from_back { range.next_back() } else { range.next() };
        let Some(item) = item else { break };
        let (key, value) = engine(item)?;
        let entry = (Bytes(key.to_vec()), Bytes(value.to_vec()));
        if from_back { back.push(entry) } else { front.push(entry) }
    }
    if range.next().is_some() || range.next_back().is_some() {
        return Err("a range that ended yields again".into());
    }
    front.extend(back.into_iter().rev());
    Ok(Observation::Entries(front))
}

fn entries(
    range: impl Iterator<Item = zverse::Result<(Slice, Slice)>>,
) -> Result<Observation, String> {
    let entries: Vec<(Slice, Slice)> = engine(range.collect::<zverse::Result<_>>())?;
    Ok(Observation::Entries(
        entries.into_iter().map(|(k, v)| (Bytes(k.to_vec()), Bytes(v.to_vec()))).collect(),
    ))
}

/// Checks that the engine yielded each change once, then sorts them
/// by (key, version) to compare with the model.
fn changes_sorted(changes: Vec<Change>) -> Result<Observation, String> {
    let mut changes: Vec<_> = changes
        .into_iter()
        .map(|change| (Bytes(change.key.to_vec()), change.version, bytes(change.value)))
        .collect();
    changes.sort();
    // `changes` promises no order, but each version exactly once.
    if let Some(pair) =
        changes.windows(2).find(|pair| pair[0].0 == pair[1].0 && pair[0].1 == pair[1].1)
    {
        return Err(format!("changes yielded {:?} twice", (&pair[0].0, pair[0].1)));
    }
    Ok(Observation::Changes(changes))
}

fn expect(model: &Model, cap: Version, read: &Read, written: &[Version]) -> Observation {
    match read {
        Read::Get(key) => Observation::Value(model.value_at(key, cap)),
        Read::GetAt(key, pick) => {
            Observation::Value(model.value_at(key, pick.resolve(written).min(cap)))
        }
        Read::History(key) => Observation::History(model.history(key, cap)),
        Read::Range(keys) => Observation::Entries(model.range_at(slices(keys), cap)),
        Read::RangeAt(keys, pick) | Read::RangeEnds(keys, pick, _) => {
            Observation::Entries(model.range_at(slices(keys), pick.resolve(written).min(cap)))
        }
        Read::RangeRev(keys, pick) => {
            let mut entries = model.range_at(slices(keys), pick.resolve(written).min(cap));
            entries.reverse();
            Observation::Entries(entries)
        }
        Read::PrefixAt(prefix, pick) => {
            let all = model
                .range_at((Bound::Unbounded, Bound::Unbounded), pick.resolve(written).min(cap));
            Observation::Entries(
                all.into_iter().filter(|(key, _)| key.starts_with(prefix)).collect(),
            )
        }
        Read::FirstAt(pick) => {
            let all = model
                .range_at((Bound::Unbounded, Bound::Unbounded), pick.resolve(written).min(cap));
            Observation::Entries(all.into_iter().take(1).collect())
        }
        Read::LastAt(pick) => {
            let all = model
                .range_at((Bound::Unbounded, Bound::Unbounded), pick.resolve(written).min(cap));
            Observation::Entries(all.into_iter().last().into_iter().collect())
        }
        Read::LastBefore(key, pick) => {
            let before = (Bound::Unbounded, Bound::Excluded(key.clone()));
            let all = model.range_at(slices(&before), pick.resolve(written).min(cap));
            Observation::Entries(all.into_iter().last().into_iter().collect())
        }
        Read::HistoryRange(key, window) => {
            let window = resolve_window(window, written);
            let history = model.history(key, cap).into_iter();
            Observation::History(history.filter(|(version, _)| window.contains(version)).collect())
        }
        Read::Changes(keys, window) => {
            Observation::Changes(model.changes(slices(keys), &resolve_window(window, written), cap))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The harness: one database, its model, and what was read.

enum Backend {
    Files(tempfile::TempDir),
    Sim(SimIo),
}

impl Backend {
    fn files() -> Backend {
        Backend::Files(tempfile::tempdir().expect("a temporary directory"))
    }

    fn sim() -> Backend {
        Backend::Sim(SimIo::new())
    }

    fn open(&self) -> zverse::Result<Db> {
        match self {
            Backend::Files(dir) => backend::open(dir.path(), options()),
            Backend::Sim(io) => Db::open_with_io(SIM_PATH, options(), Arc::new(io.clone())),
        }
    }
}

struct Harness {
    /// `None` only inside `reopen`, between the close and the open.
    db: Option<Db>,
    model: Model,
    /// Every version the engine returned for a write, ascending.
    written: Vec<Version>,
    snapshots: Vec<Snapshot>,
    /// Every read's observation, versions normalized to write ordinals.
    transcript: Vec<Observation>,
    reopen_count: u32,
    /// The lowest version a new snapshot may have: the last version a write returned (but see
    /// `reopen`).
    snapshot_version_min: Version,
    // Last: the directory outlives the database in it.
    backend: Backend,
}

impl Harness {
    fn open(backend: Backend) -> Result<Harness, String> {
        let db = engine(backend.open())?;
        Ok(Harness {
            db: Some(db),
            model: Model::default(),
            written: Vec::new(),
            snapshots: Vec::new(),
            transcript: Vec::new(),
            reopen_count: 0,
            snapshot_version_min: Version::ZERO,
            backend,
        })
    }

    fn db(&self) -> &Db {
        self.db.as_ref().expect("the database is open between ops")
    }

    fn apply(&mut self, op: &Op) -> Result<(), String> {
        match op {
            Op::Put(key, value) => {
                let version = engine(self.db().put(key, value))?;
                self.record_write(version, &[(key.clone(), Some(value.clone()))])
            }
            Op::Delete(key) => {
                let version = engine(self.db().delete(key))?;
                self.record_write(version, &[(key.clone(), None)])
            }
            Op::Batch(writes) => {
                let mut batch = self.db().batch();
                for (key, value) in writes {
                    match value {
                        Some(value) => batch.put(key, value),
                        None => batch.delete(key),
                    };
                }
                let version = engine(batch.commit())?;
                self.record_write(version, writes)
            }
            Op::Read(read) => self.check_read(On::Db, read),
            Op::Snapshot => self.take_snapshot(),
            Op::SnapshotRead(index, read) => match self.snapshots.len() {
                0 => Ok(()),
                live => self.check_read(On::Snapshot(index.index(live)), read),
            },
            Op::SnapshotDrop(index) => {
                if !self.snapshots.is_empty() {
                    self.snapshots.remove(index.index(self.snapshots.len()));
                }
                Ok(())
            }
            Op::Flush => {
                engine(self.db().flush())?;
                self.check_stats(true)
            }
            Op::Compact => {
                engine(self.db().compact())?;
                // Everything current is in the deepest level; the rest is history.
                let stats = self.db().stats();
                let (deepest, above) = stats.level_segment_counts.split_last().unwrap_or((&0, &[]));
                if above.iter().any(|&count| count > 0) || (above.is_empty() && *deepest > 0) {
                    return Err(format!("segments left above the bottom: {stats:?}"));
                }
                self.check_stats(true)
            }
            Op::Reopen { close_first } => self.reopen(*close_first),
            Op::Transaction { serializable, writes, reads, interloper } => {
                self.transaction(*serializable, writes, reads, interloper.as_ref())
            }
        }
    }

    /// Runs [`Op::Transaction`]: checks each read against the model, and the commit's outcome
    /// against the conflict the isolation level must find.
    fn transaction(
        &mut self,
        serializable: bool,
        writes: &[(Key, Option<Bytes>)],
        reads: &[TxRead],
        interloper: Option<&(Key, Bytes)>,
    ) -> Result<(), String> {
        let isolation = if serializable { Isolation::Serializable } else { Isolation::Snapshot };
        let db = self.db.as_ref().expect("the database is open between ops");
        let mut tx = db.transaction_with(isolation);
        let start = tx.start_version();
        let mut own: BTreeMap<Key, Option<Bytes>> = BTreeMap::new();
        for (key, value) in writes {
            match value {
                Some(value) => engine(tx.set(key, value))?,
                None => engine(tx.del(key))?,
            }
            own.insert(key.clone(), value.clone());
        }
        let mut tracked = TxTracked::default();
        for read in reads {
            check_tx_read(&mut tx, &self.model, start, &own, read, &mut tracked)?;
        }
        let interloper_version = match interloper {
            Some((key, value)) => Some(engine(db.put(key, value))?),
            None => None,
        };
        let conflict_expected = !own.is_empty()
            && interloper.is_some_and(|(key, _)| {
                own.contains_key(key) || (serializable && tracked.covers(key))
            });
        let outcome = tx.commit();
        drop(tx);
        if let (Some(version), Some((key, value))) = (interloper_version, interloper) {
            self.record_write(version, &[(key.clone(), Some(value.clone()))])?;
        }
        match (outcome, conflict_expected) {
            (Err(Error::Conflict(_)), true) | (Ok(None), false) => Ok(()),
            (Ok(Some(version)), false) => {
                let writes: Vec<_> = own.into_iter().collect();
                self.record_write(version, &writes)
            }
            (outcome, expected) => {
                Err(format!("commit gave {outcome:?}; a conflict expected: {expected}"))
            }
        }
    }

    fn record_write(
        &mut self,
        version: Version,
        writes: &[(Key, Option<Bytes>)],
    ) -> Result<(), String> {
        if let Some(&last) = self.written.last()
            && version <= last
        {
            return Err(format!("version {version:?} not above the previous write's {last:?}"));
        }
        if let Some(snapshot) = self.snapshots.iter().find(|s| s.version() >= version) {
            let pinned = snapshot.version();
            return Err(format!("write version {version:?} at or below snapshot {pinned:?}"));
        }
        self.model.write(version, writes.iter().map(|(key, value)| (key, value)));
        self.written.push(version);
        self.snapshot_version_min = version;
        Ok(())
    }

    fn take_snapshot(&mut self) -> Result<(), String> {
        if self.snapshots.len() == SNAPSHOTS_LIVE_MAX {
            self.snapshots.remove(0);
        }
        let snapshot = self.db().snapshot();
        let (pinned, floor) = (snapshot.version(), self.snapshot_version_min);
        if pinned < floor {
            return Err(format!("snapshot at {pinned:?} is below the returned write {floor:?}"));
        }
        self.snapshots.push(snapshot);
        Ok(())
    }

    fn check_read(&mut self, on: On, read: &Read) -> Result<(), String> {
        let observed = self.compare(on, read)?;
        self.transcript.push(observed);
        Ok(())
    }

    /// The read on the engine and in the model; the engine's answer, versions normalized.
    fn compare(&self, on: On, read: &Read) -> Result<Observation, String> {
        let target = match on {
            On::Db => Target::Db(self.db()),
            On::Snapshot(index) => Target::Snapshot(&self.snapshots[index]),
        };
        let observed = observe(target, read, &self.written)?;
        let cap = target.cap();
        let expected = expect(&self.model, cap, read, &self.written);
        if observed != expected {
            let (engine, model) = (observed, expected);
            return Err(format!(
                "{read:?} (visible up to {cap:?})\n engine: {engine:?}\n model:  {model:?}"
            ));
        }
        Ok(observed.normalized(&self.written))
    }

    /// Counters that follow from the model: every version is stored once (no compaction,
    /// everything retained), and a flush leaves the memtables empty.
    fn check_stats(&self, flushed: bool) -> Result<(), String> {
        let stats = self.db().stats();
        let model_versions = self.model.version_count() as u64;
        if stats.versions != model_versions {
            return Err(format!(
                "stats.versions {} != model {model_versions}: {stats:?}",
                stats.versions
            ));
        }
        if flushed && stats.memtable_versions != 0 {
            return Err(format!("versions left in memtables after flush: {stats:?}"));
        }
        Ok(())
    }

    /// Closes (dropping the snapshots first: they hold the directory lock), reopens, and checks
    /// that every write survived: even with `Durability::None` a clean close or drop leaves
    /// every write in the log.
    fn reopen(&mut self, close_first: bool) -> Result<(), String> {
        self.snapshots.clear();
        let db = self.db.take().expect("open before reopen");
        if close_first {
            engine(db.close())?;
        }
        drop(db);
        self.db = Some(engine(self.backend.open())?);
        self.reopen_count += 1;
        // `snapshot_version_min` stays the last version returned: a reopen never goes back below
        // a version handed out, empty batches included.
        self.check_everything()
    }

    /// Every key's history, the whole range and every change, against the model.
    fn check_everything(&mut self) -> Result<(), String> {
        for key in self.model.keys() {
            self.check_read(On::Db, &Read::History(key))?;
        }
        let all = (Bound::Unbounded, Bound::Unbounded);
        self.check_read(On::Db, &Read::Range(all.clone()))?;
        self.check_read(On::Db, &Read::Changes(all, (Bound::Unbounded, Bound::Unbounded)))?;
        self.check_stats(false)
    }
}

/// What a transaction read from its snapshot: point keys and (possibly narrowed) ranges.
#[derive(Default)]
struct TxTracked {
    keys: Vec<Key>,
    ranges: Vec<KeyRange>,
}

impl TxTracked {
    fn covers(&self, key: &Key) -> bool {
        self.keys.contains(key) || self.ranges.iter().any(|r| slices(r).contains(&key.0.as_slice()))
    }
}

/// One read through a transaction, against the model at `start` with `own` writes over it.
fn check_tx_read(
    tx: &mut zverse::Transaction<'_>,
    model: &Model,
    start: Version,
    own: &BTreeMap<Key, Option<Bytes>>,
    read: &TxRead,
    tracked: &mut TxTracked,
) -> Result<(), String> {
    match read {
        TxRead::Get(key) => {
            let got = bytes(engine(tx.get(key, None))?);
            let want = if let Some(value) = own.get(key) {
                value.clone()
            } else {
                tracked.keys.push(key.clone());
                model.value_at(key, start)
            };
            if got != want {
                return Err(format!("tx get {key:?}: {got:?}, the model has {want:?}"));
            }
        }
        TxRead::Scan(range, limit, reverse) => {
            let mut merged: BTreeMap<Key, Bytes> =
                model.range_at(slices(range), start).into_iter().collect();
            for (key, value) in own.iter().filter(|(k, _)| slices(range).contains(&k.0.as_slice()))
            {
                match value {
                    Some(value) => merged.insert(key.clone(), value.clone()),
                    None => merged.remove(key),
                };
            }
            let limit = usize::from(*limit);
            let mut want: Vec<(Key, Bytes)> = merged.into_iter().collect();
            let truncated = want.len() > limit;
            if *reverse {
                want.reverse();
            }
            want.truncate(limit);
            let slice = (range.0.as_ref().map(|k| &k.0[..]), range.1.as_ref().map(|k| &k.0[..]));
            let got = if *reverse {
                engine(tx.scanr(slice, limit, None))?
            } else {
                engine(tx.scan(slice, limit, None))?
            };
            let got: Vec<(Key, Bytes)> =
                got.iter().map(|(k, v)| (Bytes::from(&k[..]), Bytes::from(&v[..]))).collect();
            if got != want {
                return Err(format!("tx scan {range:?} limit {limit}: {got:?}, model {want:?}"));
            }
            let edge = want.last().map(|(key, _)| Bound::Included(key.clone()));
            tracked.ranges.push(match (truncated, edge, reverse) {
                (true, Some(edge), true) => (edge, range.1.clone()),
                (true, Some(edge), false) => (range.0.clone(), edge),
                _ => range.clone(),
            });
        }
    }
    Ok(())
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic.downcast_ref::<String>().map(String::as_str);
    let text = text.or_else(|| panic.downcast_ref::<&str>().copied());
    format!("panicked: {}", text.unwrap_or("(not a string)"))
}

/// Runs `ops` on a fresh database and the model, checks everything at the end, and returns the
/// harness (its transcript and database) for more checks. The error names the failing op.
fn run(backend: Backend, ops: &[Op]) -> Result<Harness, String> {
    let mut harness = Harness::open(backend)?;
    for (index, op) in ops.iter().enumerate() {
        let outcome = catch_unwind(AssertUnwindSafe(|| harness.apply(op)));
        let message = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(message)) => message,
            Err(panic) => panic_message(&*panic),
        };
        return Err(format!("op #{index} of {}: {op:?}\n{message}", ops.len()));
    }
    let outcome = catch_unwind(AssertUnwindSafe(|| harness.check_everything()));
    match outcome {
        Ok(Ok(())) => Ok(harness),
        Ok(Err(message)) => Err(format!("final check after {} ops: {message}", ops.len())),
        Err(panic) => {
            Err(format!("final check after {} ops: {}", ops.len(), panic_message(&*panic)))
        }
    }
}

/// [`CASES_DEFAULT`] cases, and room to shrink a 300-op sequence (proptest's automatic limit is
/// 4 shrink steps per case); `PROPTEST_CASES` and `PROPTEST_MAX_SHRINK_ITERS` override.
fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = CASES_DEFAULT;
    }
    if std::env::var_os("PROPTEST_MAX_SHRINK_ITERS").is_none() {
        config.max_shrink_iters = SHRINK_ITERS_MAX;
    }
    config
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn real_files_agree_with_the_model(ops in ops(1)) {
        run(Backend::files(), &ops).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn the_simulated_disk_agrees_with_the_model(ops in ops(1)) {
        run(Backend::sim(), &ops).map_err(TestCaseError::fail)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Deterministic tests.

/// One op sequence from a fixed seed, versions only at written versions (so that the answers
/// cannot depend on the gaps between versions, which differ between runs).
fn fixed_ops(length: usize) -> Vec<Op> {
    let mut runner = TestRunner::deterministic();
    let strategy = vec(op(0), length);
    strategy.new_tree(&mut runner).expect("a generated sequence").current()
}

#[test]
fn std_files_and_the_simulated_disk_read_the_same() {
    let ops = fixed_ops(OPS_PER_CASE_MAX);
    let on_files = run(Backend::files(), &ops)
        .unwrap_or_else(|message| panic!("files ({}): {message}", backend::name()));
    let on_sim = run(Backend::sim(), &ops).unwrap_or_else(|message| panic!("sim: {message}"));
    // The sequence exercises what it is meant to: segments, reopens, non-empty answers.
    assert!(on_files.db().stats().segment_count >= 1, "{:?}", on_files.db().stats());
    assert!(ops.iter().filter(|op| matches!(op, Op::Flush)).count() >= 3, "the sequence flushes");
    assert!(ops.iter().any(|op| matches!(op, Op::Compact)), "the sequence compacts");
    assert!(on_files.reopen_count >= 1, "the fixed sequence reopens");
    let changes_seen =
        on_files.transcript.iter().filter(|o| matches!(o, Observation::Changes(c) if c.len() > 1));
    assert!(changes_seen.count() >= 5);
    assert_eq!(on_files.transcript.len(), on_sim.transcript.len());
    for (at, (files, sim)) in on_files.transcript.iter().zip(&on_sim.transcript).enumerate() {
        assert_eq!(files, sim, "read #{at} differs between real files and the simulated disk");
    }
    assert_eq!(on_files.db().stats().versions, on_sim.db().stats().versions);
}

#[test]
fn a_read_before_the_first_write_finds_nothing() {
    for backend in [Backend::files(), Backend::sim()] {
        let harness = run(backend, &fixed_ops(OPS_PER_CASE_MAX)).unwrap_or_else(|m| panic!("{m}"));
        let db = harness.db();
        let first = harness.written[0];
        let before = [Version::ZERO, Version::new(first.get() - 1)];
        let snapshot = db.snapshot();
        let keys = harness.model.keys();
        assert!(keys.len() >= 10, "the sequence writes many keys");
        for version in before {
            for key in &keys {
                assert_eq!(db.get_at(key, version).unwrap(), None, "{key:?} at {version:?}");
                assert_eq!(snapshot.get_at(key, version).unwrap(), None, "{key:?} at {version:?}");
            }
            assert_eq!(db.range_at(.., version).unwrap().count(), 0, "range at {version:?}");
            assert_eq!(db.changes(.., ..=version).unwrap().count(), 0, "changes to {version:?}");
            assert_eq!(snapshot.changes(.., ..=version).unwrap().count(), 0);
        }
        for key in &keys {
            let history: Vec<_> = db.history(key).unwrap().map(Result::unwrap).collect();
            assert!(history.iter().all(|(version, _)| *version >= first), "{key:?}: {history:?}");
            assert!(!history.is_empty(), "{key:?} was written");
        }
    }
}

/// More tiers than the merge fan-in (`zverse_core::merge::FAN_IN_MAX`, 64), with compaction
/// held off: `range`, `history` and `changes` merge in stages and still answer.
#[test]
fn range_history_and_changes_work_past_64_tiers() {
    let options = options().compaction_trigger_segments(1_000);
    let db = Db::open_with_io(SIM_PATH, options, Arc::new(SimIo::new())).unwrap();
    for flush_count in 1..=64u32 {
        db.put(&flush_count.to_be_bytes(), b"v").unwrap();
        db.flush().unwrap();
    }
    db.put(&64u32.to_be_bytes(), b"newest").unwrap();
    let stats = db.stats();
    assert_eq!((stats.segment_count, stats.memtable_count), (64, 1), "{stats:?}");
    assert_eq!(db.range(..).unwrap().count(), 64);
    assert_eq!(db.range_at(.., Version::MAX).unwrap().count(), 64);
    let descending: Vec<_> = db.range(..).unwrap().rev().map(Result::unwrap).collect();
    assert_eq!(descending.len(), 64);
    assert_eq!(
        (&descending[0].0[..], &descending[0].1[..]),
        (&64u32.to_be_bytes()[..], &b"newest"[..])
    );
    assert!(descending.windows(2).all(|pair| pair[0].0 > pair[1].0), "descending key order");
    assert_eq!(db.changes(.., ..).unwrap().count(), 65);
    assert_eq!(db.get(&1u32.to_be_bytes()).unwrap().unwrap(), b"v");
    let history: Vec<_> = db.history(&64u32.to_be_bytes()).unwrap().map(Result::unwrap).collect();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].1.as_deref(), Some(&b"newest"[..]));
}

/// The version of an empty batch is handed out like any other, so it must never be handed
/// out again: a flush records the newest version its memtable covers, entries or not.
/// Found by the model test (put, empty batch, flush, reopen, snapshot).
#[test]
fn an_empty_batch_version_survives_flush_and_reopen() {
    for backend in [Backend::files(), Backend::sim()] {
        let db = backend.open().unwrap();
        let put = db.put(b"k", b"v").unwrap();
        let empty = db.batch().commit().unwrap();
        assert!(put < empty);
        db.flush().unwrap();
        db.close().unwrap();
        drop(db);
        let db = backend.open().unwrap();
        assert!(db.snapshot().version() >= empty);
        assert!(db.put(b"k", b"w").unwrap() > empty, "no version is handed out twice");
    }
}
