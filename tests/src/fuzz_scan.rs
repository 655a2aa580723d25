//! The check of fuzz target `scan`, shared with the corpus replay test
//! (`tests/tests/fuzz_corpus.rs`): the input is read as a sequence of writes (puts, deletes),
//! flushes and compactions on the engine over [`SimIo`], and scans, each a key range, a version
//! and a sequence of steps from either end ([`Scan::next`], [`Scan::next_back`], a final
//! [`Scan::for_each`]), checked step by step against a `BTreeMap` model of every version.
//!
//! What must hold: each step yields exactly the model's next key and value from that end (each
//! key's newest value at the scan's version, deletes hidden), the two ends meet without
//! repeating a key, and an end that answered `None` keeps answering `None`. Nothing fails.
//!
//! Input layout (every byte string is a valid input): one configuration byte, then operations
//! of one opcode byte and its argument bytes each, until the input or [`OPS_MAX`] runs out.
//! The memtable limit is far above what an input writes and compaction runs only when asked,
//! so the tiers a scan reads (memtable, level-0 segments, levels, history) follow the input.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Bound;
use std::sync::Arc;

use zverse::{Db, Durability, Options, Scan, Version};

use crate::fuzz_model::Input;
use crate::sim_io::SimIo;

/// The database directory on the simulated disk.
const DIR: &str = "/db";
/// The most operations one input runs.
pub const OPS_MAX: usize = 96;
/// The most steps one scan takes before its final `for_each`.
const STEPS_MAX: usize = 48;
/// Keys the operations pick from (by a byte, modulo the count): short keys, keys equal after
/// zero padding, and keys sharing a 24-byte prefix (as `SurrealDB`'s) whose ids sort apart.
const KEY_COUNT: usize = 40;
/// The shared prefix of the shared-prefix keys.
const PREFIX: &[u8] = b"/*ns\0*db\0*tb\0*table_one";

type Bytes = Vec<u8>;
/// A scan's key range.
type KeyBounds = (Bound<Bytes>, Bound<Bytes>);

/// Key `index` of the fixed key set (see [`KEY_COUNT`]).
fn key(index: u8) -> Bytes {
    let index = usize::from(index) % KEY_COUNT;
    match index {
        0 => Vec::new(),
        1 => b"a".to_vec(),
        2 => b"a\0".to_vec(),
        3..=9 => format!("k{}", index * 7 % 10).into_bytes(),
        _ => {
            let id = u64::try_from(index).unwrap_or(0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            [PREFIX, &id.to_be_bytes()].concat()
        }
    }
}

/// Target `scan`: runs `data` as operations on the engine and the model; panics, naming the
/// operation and the trace so far, where they disagree.
pub fn check_scan(data: &[u8]) {
    let _ = run_scan(data);
}

/// [`check_scan`], returning the number of scan steps checked.
#[must_use]
pub fn run_scan(data: &[u8]) -> usize {
    let mut input = Input::new(data);
    let Some(config) = input.byte() else { return 0 };
    let mut run = Run::new(config);
    for index in 0..OPS_MAX {
        let Some(opcode) = input.byte() else { break };
        run.op_index = index;
        if run.step(opcode, &mut input).is_none() {
            break; // The input ended inside the operation.
        }
    }
    run.steps_checked
}

impl Input<'_> {
    /// A key bound: unbounded, included or excluded, at one of the keys.
    fn key_bound(&mut self) -> Option<Bound<Bytes>> {
        let byte = self.byte()?;
        Some(match byte % 3 {
            0 => Bound::Unbounded,
            1 => Bound::Included(key(byte / 3)),
            _ => Bound::Excluded(key(byte / 3)),
        })
    }
}

/// One engine and its model.
struct Run {
    db: Db,
    /// Every version written: `(key, version)` to the value, `None` for a delete.
    model: BTreeMap<(Bytes, Version), Option<Bytes>>,
    versions: Vec<Version>,
    op_index: usize,
    steps_checked: usize,
    trace: String,
}

impl Run {
    fn new(config: u8) -> Run {
        let block_bytes = [256, 512, 4096, 256][usize::from(config) % 4];
        let segment_bytes: u64 = if config & 0x80 == 0 { 256 << 20 } else { 2 << 10 };
        let options = Options::default()
            .durability(Durability::None)
            .memtable_bytes_max(64 << 20)
            .log_preallocation_bytes(4096)
            .segment_block_bytes(block_bytes)
            .segment_bytes_target(segment_bytes)
            .level_base_bytes(4 << 10)
            .level_size_ratio(2)
            .compaction_trigger_segments(1000);
        let io = SimIo::new();
        let db = Db::open_with_io(DIR, options, Arc::new(io))
            .expect("a new database opens on an empty disk");
        let mut trace = String::new();
        let _ = writeln!(
            trace,
            "config {config:#04x}: {block_bytes}-byte blocks, {segment_bytes}-byte segments"
        );
        Run {
            db,
            model: BTreeMap::new(),
            versions: Vec::new(),
            op_index: 0,
            steps_checked: 0,
            trace,
        }
    }

    fn fail(&self, why: &str) -> ! {
        panic!("scan, op {}: {why}\ntrace:\n{}", self.op_index, self.trace)
    }

    /// Runs one operation; `None` if the input ended before its arguments.
    fn step(&mut self, opcode: u8, input: &mut Input<'_>) -> Option<()> {
        match opcode % 8 {
            0..=2 => {
                let key = key(input.byte()?);
                let value = vec![opcode; usize::from(input.byte()?) * 2];
                let put = self.db.put(&key, &value);
                let version = put.unwrap_or_else(|e| self.fail(&e.to_string()));
                let _ = writeln!(self.trace, "  put {key:?} ({} bytes): {version:?}", value.len());
                self.record(key, version, Some(value));
            }
            3 => {
                let key = key(input.byte()?);
                let version = self.db.delete(&key).unwrap_or_else(|e| self.fail(&e.to_string()));
                let _ = writeln!(self.trace, "  delete {key:?}: {version:?}");
                self.record(key, version, None);
            }
            4 => {
                let _ = writeln!(self.trace, "  flush");
                self.db.flush().unwrap_or_else(|e| self.fail(&e.to_string()));
            }
            5 => {
                let _ = writeln!(self.trace, "  compact");
                self.db.compact().unwrap_or_else(|e| self.fail(&e.to_string()));
            }
            _ => self.scan(input)?,
        }
        Some(())
    }

    fn record(&mut self, key: Bytes, version: Version, value: Option<Bytes>) {
        self.model.insert((key, version), value);
        self.versions.push(version);
    }

    /// Each key's newest live value at `version` in `keys`, in key order.
    fn expected(&self, keys: &KeyBounds, version: Version) -> Vec<(Bytes, Bytes)> {
        let mut newest: BTreeMap<&Bytes, &Option<Bytes>> = BTreeMap::new();
        for ((key, at), value) in &self.model {
            if *at <= version && std::ops::RangeBounds::contains(keys, key) {
                newest.insert(key, value); // Versions ascend: a newer one replaces.
            }
        }
        let live = newest.into_iter().filter_map(|(key, value)| Some((key, value.as_ref()?)));
        live.map(|(key, value)| (key.clone(), value.clone())).collect()
    }

    /// A scan: bounds, a version (the latest, or one written), then steps, one byte each.
    fn scan(&mut self, input: &mut Input<'_>) -> Option<()> {
        let keys = (input.key_bound()?, input.key_bound()?);
        let pick = input.byte()?;
        let step_count = usize::from(input.byte()?) % STEPS_MAX;
        let version = match self.versions.len() {
            len if len > 0 && pick & 1 == 1 => self.versions[usize::from(pick >> 1) % len],
            _ => Version::MAX,
        };
        let _ = writeln!(self.trace, "  scan {keys:?} at {version:?}, {step_count} steps");
        let expected = self.expected(&keys, version);
        let bounds = (keys.0.as_ref().map(Vec::as_slice), keys.1.as_ref().map(Vec::as_slice));
        let scan = if version == Version::MAX {
            self.db.scan(bounds)
        } else {
            self.db.scan_at(bounds, version)
        };
        let mut scan = scan.unwrap_or_else(|e| self.fail(&e.to_string()));
        let (mut front, mut back) = (0, expected.len());
        for _ in 0..step_count {
            let forward = input.byte()? & 1 == 0;
            let want = (front < back).then(|| &expected[if forward { front } else { back - 1 }]);
            let got = if forward { scan.next() } else { scan.next_back() };
            let got = got.map(|item| item.unwrap_or_else(|e| self.fail(&e.to_string())));
            let got = got.map(|(key, value)| (key.to_vec(), value.to_vec()));
            if got.as_ref() != want {
                let end = if forward { "next" } else { "next_back" };
                self.fail(&format!(
                    "step {} ({end}): got {got:?}, want {want:?}",
                    self.steps_checked
                ));
            }
            match (want.is_some(), forward) {
                (true, true) => front += 1,
                (true, false) => back -= 1,
                (false, _) => {}
            }
            self.steps_checked += 1;
        }
        self.finish_scan(scan, &expected[front..back]);
        Some(())
    }

    /// The rest of a scan through `for_each`: exactly `rest`.
    fn finish_scan(&mut self, scan: Scan, rest: &[(Bytes, Bytes)]) {
        let mut seen = Vec::new();
        scan.for_each(|key, value| seen.push((key.to_vec(), value.to_vec())))
            .unwrap_or_else(|e| self.fail(&e.to_string()));
        if seen != rest {
            self.fail(&format!("for_each: got {seen:?}, want {rest:?}"));
        }
        self.steps_checked += 1;
    }
}

/// Seed inputs: writes over every tier (memtable, level 0, levels, history) and scans from
/// both ends, at the latest version and at older ones.
#[must_use]
pub fn seeds_scan() -> Vec<Vec<u8>> {
    // Opcodes: 0-2 put (key, length), 3 delete (key), 4 flush, 5 compact, 6-7 scan (bound,
    // bound, version pick, step count, steps).
    let mut writes = Vec::new();
    for index in 0..KEY_COUNT as u8 {
        writes.extend_from_slice(&[0, index * 3 % 40, 10 + index]);
    }
    let scans: &[u8] = &[
        6, 0, 0, 0, 40, 0, 1, 0, 1, 0, 0, 1, 1, 0, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 6,
        4, 62, 3, 20, 1, 1, 0, 0, 1, 0, 1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 7, 31, 0, 0,
        47, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    ];
    let overwrite: &[u8] = &[1, 12, 5, 3, 14, 2, 20, 9, 3, 30, 0, 2, 7, 3, 2];
    let mut tiers = writes.clone();
    tiers.extend_from_slice(&[4]); // Level 0.
    tiers.extend_from_slice(overwrite);
    tiers.extend_from_slice(scans);
    tiers.extend_from_slice(&[5]); // Levels and history.
    tiers.extend_from_slice(overwrite);
    tiers.extend_from_slice(&[4]);
    tiers.extend_from_slice(&[0, 33, 4, 3, 11]); // The memtable.
    tiers.extend_from_slice(scans);
    vec![
        [&[0][..], &tiers].concat(),
        [&[0x81][..], &tiers].concat(),
        [&[2][..], &writes, scans].concat(),
    ]
}
