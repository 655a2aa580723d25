//! The side-by-side comparison: ZVerse against RocksDB, LMDB (heed), redb, fjall, SurrealKV and
//! sled, on the same keys, values, order and seeds, in the same run on the same machine.
//!
//! Run everything with `benches/run-peers.sh` (it sets `ROCKSDB_LIB_DIR` and runs
//! `cargo bench -p zverse-benches --features peers --bench peers -- --write-readme`);
//! `--quick` for a smoke run at a small scale, `--reps N` for the repetitions (default 3),
//! `--engines a,b` to run a subset, `--out DIR` for the results (default `benches/results`),
//! `--no-sync-probe` / `--no-sync-audit` to skip the fdatasync probe / the strace audit.
//! Each engine run (one engine, one repetition) is a child process of this binary
//! (`process.rs`); `--in-process` runs them all in this one instead.
//! See `benches/README.md` for the workloads and how each engine is configured.
#![allow(missing_docs, reason = "a bench binary, not an API")]

mod data;
mod engines;
mod process;
mod report;
mod sync;
mod workloads;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use data::KeySet;
use engines::{Durability, Engine, EngineKind, Res};
use workloads::Sample;

/// How big each workload is.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    pub name: &'static str,
    pub key_count: usize,
    pub batch_len: usize,
    pub sync_write_count: usize,
    pub read_count: usize,
    pub range_scan_count: usize,
    pub ycsb_op_count: usize,
    pub versioned_key_count: usize,
    pub version_count: usize,
    pub as_of_count: usize,
    pub history_count: usize,
    pub range_at_count: usize,
    pub changes_count: usize,
    pub repetitions: usize,
}

const FULL: Scale = Scale {
    name: "full",
    key_count: 1_000_000,
    batch_len: 1000,
    sync_write_count: 2000,
    read_count: 400_000,
    range_scan_count: 30,
    ycsb_op_count: 100_000,
    versioned_key_count: 100_000,
    version_count: 20,
    as_of_count: 100_000,
    history_count: 20_000,
    range_at_count: 30,
    changes_count: 5,
    repetitions: 3,
};

const QUICK: Scale = Scale {
    name: "quick",
    key_count: 50_000,
    batch_len: 1000,
    sync_write_count: 100,
    read_count: 50_000,
    range_scan_count: 10,
    ycsb_op_count: 10_000,
    versioned_key_count: 10_000,
    version_count: 20,
    as_of_count: 10_000,
    history_count: 2_000,
    range_at_count: 10,
    changes_count: 3,
    repetitions: 1,
};

/// What the command line asked for.
struct Args {
    scale: Scale,
    engines: Option<Vec<String>>,
    out: PathBuf,
    write_readme: bool,
    /// Set in a child process: run one engine once and write what it measured here.
    child_out: Option<PathBuf>,
    /// Run every engine in this process (the old way), not one child process per run.
    in_process: bool,
    /// The key sets every engine runs, each a set of rows (`--key-sets random,shared-prefix`).
    key_sets: Vec<KeySet>,
    sync: SyncFlags,
}

/// What the command line asked of `sync.rs`.
#[derive(Clone, Copy)]
struct SyncFlags {
    /// Set in the Sync audit's child (run under strace): the sweep's fills between markers.
    audit_child: bool,
    /// Run the Sync audit (where `strace` runs; `--no-sync-audit` skips it).
    audit: bool,
    /// Run the fdatasync probe each repetition (`--no-sync-probe` skips it).
    probe: bool,
}

fn parse_args() -> Res<Args> {
    let mut scale = if zverse_benches::is_test_mode() { QUICK } else { FULL };
    let mut engines = None;
    let mut out = Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    let mut write_readme = false;
    let mut child_out = None;
    let mut in_process = false;
    let mut key_sets = None;
    let mut sync = SyncFlags { audit_child: false, audit: true, probe: true };
    let mut args = std::env::args().skip(1);
    let mut reps = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => scale = QUICK,
            "--reps" => reps = Some(args.next().ok_or("--reps needs a count")?.parse()?),
            "--engines" => {
                let list = args.next().ok_or("--engines needs a list")?;
                engines = Some(list.split(',').map(str::to_lowercase).collect());
            }
            "--out" => out = args.next().ok_or("--out needs a directory")?.into(),
            "--write-readme" => write_readme = true,
            "--child-out" => {
                child_out = Some(args.next().ok_or("--child-out needs a file")?.into());
            }
            "--in-process" => in_process = true,
            "--sync-audit-child" => sync.audit_child = true,
            "--no-sync-audit" => sync.audit = false,
            "--no-sync-probe" => sync.probe = false,
            "--key-sets" => {
                let list = args.next().ok_or("--key-sets needs a list")?;
                let sets = list
                    .split(',')
                    .map(|name| KeySet::from_name(name).ok_or(format!("no key set {name:?}")));
                key_sets = Some(sets.collect::<Result<_, _>>()?);
            }
            // cargo bench passes --bench; cargo test passes nothing we need.
            "--bench" => {}
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    if let Some(reps) = reps {
        scale.repetitions = reps;
    }
    // The smoke run stays about a minute: random keys only unless asked.
    let key_sets = key_sets.unwrap_or_else(|| match scale.name {
        "quick" => vec![KeySet::Random],
        _ => KeySet::ALL.to_vec(),
    });
    Ok(Args { scale, engines, out, write_readme, child_out, in_process, key_sets, sync })
}

/// Every measurement, keyed by workload then engine, one sample per repetition.
pub type Samples = BTreeMap<String, BTreeMap<&'static str, Vec<Sample>>>;

/// What one engine run produced besides samples: space, write amplification and settings.
#[derive(Clone, Debug, Default)]
pub struct EngineNotes {
    pub bytes_after_fill: Vec<u64>,
    pub bytes_after_compaction: Vec<u64>,
    pub measured_write_amp_fill: Vec<f64>,
    pub measured_write_amp_compaction: Vec<f64>,
    pub reported_write_amp: Option<(f64, &'static str)>,
    pub settle: &'static str,
    pub compaction: &'static str,
    /// Writer count -> writes per sync in each repetition's Sync fill, where the engine
    /// counts its commit groups (ZVerse).
    pub writes_per_sync: BTreeMap<usize, Vec<f64>>,
}

fn main() {
    if let Err(error) = run() {
        eprintln!("peers: {error}");
        std::process::exit(1);
    }
}

fn run() -> Res<()> {
    let args = parse_args()?;
    let scale = args.scale;
    let started = report::Machine::now();
    let backend = engines::zverse_backend()?;
    if args.child_out.is_none() {
        eprintln!("peers: scale {scale:?}; ZVerse backend {backend}");
    }
    let kinds: Vec<EngineKind> = engines::kinds()
        .into_iter()
        .filter(|kind| {
            args.engines.as_ref().is_none_or(|list| list.contains(&kind.name.to_lowercase()))
        })
        .collect();
    // Generated where an engine runs: in each child, or once per key set here with --in-process.
    let mut datasets: Vec<(KeySet, Dataset)> = Vec::new();
    let base = std::env::var_os("ZVERSE_PEERS_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    if args.sync.audit_child {
        let [kind] = kinds.as_slice() else {
            return Err("the Sync audit's child runs exactly one engine".into());
        };
        let dataset = Dataset::new(&scale, KeySet::Random);
        return sync::run_audit_child(kind, &scale, &dataset.keys, &dataset.values, &base);
    }
    let mut samples = Samples::new();
    let mut notes: BTreeMap<&'static str, EngineNotes> = BTreeMap::new();
    let run_start = Instant::now();
    for (repetition, &key_set) in
        (0..scale.repetitions).flat_map(|rep| args.key_sets.iter().map(move |set| (rep, set)))
    {
        // The probe once per repetition (with its first key set), in the parent.
        if args.child_out.is_none() && args.sync.probe && Some(&key_set) == args.key_sets.first() {
            sync::run_probe(&base, &scale, &mut samples)?;
        }
        // Alternate: each repetition starts one engine later, so none always runs first.
        for offset in 0..kinds.len() {
            let kind = &kinds[(repetition + offset) % kinds.len()];
            eprintln!(
                "peers: repetition {}/{}, {} keys, {} ({:.0} s in)",
                repetition + 1,
                scale.repetitions,
                key_set.name(),
                kind.name,
                run_start.elapsed().as_secs_f64()
            );
            // Space and write amplification are reported for the random keys.
            let mut other_notes = EngineNotes::default();
            let engine_notes = match key_set {
                KeySet::Random => notes.entry(kind.name).or_default(),
                KeySet::SharedPrefix => &mut other_notes,
            };
            let ran = if args.in_process || args.child_out.is_some() {
                let dataset = dataset_for(&mut datasets, &scale, key_set);
                let mut engine_samples = Samples::new();
                let ran =
                    run_engine(kind, &scale, dataset, &base, &mut engine_samples, engine_notes);
                add_samples(&mut samples, engine_samples, key_set.row_suffix());
                ran
            } else {
                process::run_child(kind, &scale, key_set, &mut samples, engine_notes)
            };
            ran.map_err(|error| format!("{} ({} keys): {error}", kind.name, key_set.name()))?;
        }
    }
    if let Some(child_out) = &args.child_out {
        let [kind] = kinds.as_slice() else {
            return Err("a child process runs exactly one engine".into());
        };
        let engine_notes = notes.get(kind.name).cloned().unwrap_or_default();
        return process::write_child(child_out, &samples, &engine_notes);
    }
    let audits = if args.sync.audit && sync::strace_available() {
        run_audits(&kinds, &scale)?
    } else {
        eprintln!("peers: the Sync audit is skipped (--no-sync-audit, or no strace)");
        BTreeMap::new()
    };
    let finished = report::Machine::now();
    let summary = report::Summary {
        scale,
        backend,
        key_sets: &args.key_sets,
        kinds: &kinds,
        samples: &samples,
        notes: &notes,
        audits: &audits,
        started,
        finished,
        elapsed: run_start.elapsed(),
    };
    report::write(&summary, &args.out, args.write_readme)
}

/// The Sync audit of every engine that runs the plain rows, each in a child process under
/// strace (random keys).
fn run_audits(kinds: &[EngineKind], scale: &Scale) -> Res<BTreeMap<&'static str, sync::Audit>> {
    let mut audits = BTreeMap::new();
    for kind in kinds.iter().filter(|kind| kind.plain) {
        eprintln!("peers: Sync audit (strace) of {}", kind.name);
        let audit =
            sync::run_audit(kind, scale).map_err(|error| format!("{}: {error}", kind.name))?;
        audits.insert(kind.name, audit);
    }
    Ok(audits)
}

/// The keys every engine gets, generated once.
struct Dataset {
    keys: Vec<data::Key>,
    sorted: Vec<data::Key>,
    values: data::Values,
    versioned_keys: Vec<data::Key>,
    versioned_sorted: Vec<data::Key>,
    inserts: Vec<data::Key>,
    zipfian: data::Zipfian,
}

impl Dataset {
    fn new(scale: &Scale, key_set: KeySet) -> Dataset {
        let keys = key_set.keys(data::SEED_KEYS, scale.key_count);
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        let versioned_keys = key_set.keys(data::SEED_VERSIONED_KEYS, scale.versioned_key_count);
        let mut versioned_sorted = versioned_keys.clone();
        versioned_sorted.sort_unstable();
        // D and E insert 5% of their ops each.
        let inserts = key_set.keys(data::SEED_INSERTS, scale.ycsb_op_count / 5 + 1);
        let zipfian = data::Zipfian::new(scale.key_count);
        Dataset {
            keys,
            sorted,
            values: data::Values::new(),
            versioned_keys,
            versioned_sorted,
            inserts,
            zipfian,
        }
    }
}

/// The dataset of `key_set`, generated on first use.
fn dataset_for<'d>(
    datasets: &'d mut Vec<(KeySet, Dataset)>,
    scale: &Scale,
    key_set: KeySet,
) -> &'d Dataset {
    if !datasets.iter().any(|(set, _)| *set == key_set) {
        datasets.push((key_set, Dataset::new(scale, key_set)));
    }
    let index = datasets.iter().position(|(set, _)| *set == key_set);
    &datasets[index.expect("pushed above")].1
}

/// Adds one engine run's samples to `samples`, each workload's name followed by `suffix`.
fn add_samples(samples: &mut Samples, run: Samples, suffix: &str) {
    for (workload, by_engine) in run {
        for (engine, list) in by_engine {
            for sample in list {
                push(samples, &format!("{workload}{suffix}"), engine, sample);
            }
        }
    }
}

pub fn push(samples: &mut Samples, workload: &str, engine: &'static str, sample: Sample) {
    samples.entry(workload.to_owned()).or_default().entry(engine).or_default().push(sample);
}

/// A fresh directory for one engine run, removed when dropped.
fn fresh_dir(base: &Path, name: &str) -> Res<tempfile::TempDir> {
    Ok(tempfile::Builder::new().prefix(&format!("zverse-peers-{name}-")).tempdir_in(base)?)
}

/// Bytes the process has sent to storage (`/proc/self/io`: `write_bytes` less
/// `cancelled_write_bytes`), for the measured write amplification.
fn process_write_bytes() -> Res<u64> {
    let io = std::fs::read_to_string("/proc/self/io")?;
    let field = |name: &str| -> Res<u64> {
        let line =
            io.lines().find(|line| line.starts_with(name)).ok_or("no field in /proc/self/io")?;
        Ok(line[name.len()..].trim().parse()?)
    };
    Ok(field("write_bytes:")?.saturating_sub(field("cancelled_write_bytes:")?))
}

/// Bytes allocated on disk under `path` (like `du`): sparse and preallocated files count what
/// they hold.
fn disk_bytes(path: &Path) -> Res<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let metadata = entry.metadata()?;
        total +=
            if metadata.is_dir() { disk_bytes(&entry.path())? } else { metadata.blocks() * 512 };
    }
    Ok(total)
}

#[allow(clippy::cast_precision_loss, reason = "a ratio of byte counts")]
fn ratio(numerator: u64, denominator: u64) -> f64 {
    numerator as f64 / denominator.max(1) as f64
}

fn run_engine(
    kind: &EngineKind,
    scale: &Scale,
    dataset: &Dataset,
    base: &Path,
    samples: &mut Samples,
    notes: &mut EngineNotes,
) -> Res<()> {
    if kind.plain {
        run_plain(kind, scale, dataset, base, samples, notes)?;
    }
    if kind.has_versions {
        let dir = fresh_dir(base, kind.name)?;
        let engine = (kind.open)(dir.path(), Durability::None, true)?;
        run_versioned(&*engine, scale, dataset, samples, kind.name)?;
    }
    Ok(())
}

/// The rows every engine runs: fills, reads, scans, YCSB and the sync fills.
fn run_plain(
    kind: &EngineKind,
    scale: &Scale,
    dataset: &Dataset,
    base: &Path,
    samples: &mut Samples,
    notes: &mut EngineNotes,
) -> Res<()> {
    let name = kind.name;
    let keys = &dataset.keys;
    let values = &dataset.values;
    {
        let dir = fresh_dir(base, name)?;
        let engine = (kind.open)(dir.path(), Durability::None, false)?;
        push(
            samples,
            report::FILL_PER_OP,
            name,
            workloads::fill_per_op(&*engine, keys, values, 1)?,
        );
    }
    let dir = fresh_dir(base, name)?;
    let mut engine = (kind.open)(dir.path(), Durability::None, false)?;
    let written_before = process_write_bytes()?;
    push(
        samples,
        report::FILL_BATCH,
        name,
        workloads::fill_batches(&*engine, keys, values, scale.batch_len)?,
    );
    notes.settle = engine.settle()?;
    let user_bytes = keys.iter().map(|key| key.len() + data::VALUE_LEN).sum::<usize>() as u64;
    notes.measured_write_amp_fill.push(ratio(process_write_bytes()? - written_before, user_bytes));
    notes.bytes_after_fill.push(disk_bytes(dir.path())?);
    read_and_scan(&*engine, scale, dataset, samples, name)?;
    notes.compaction = engine.compact()?;
    notes
        .measured_write_amp_compaction
        .push(ratio(process_write_bytes()? - written_before, user_bytes));
    notes.bytes_after_compaction.push(disk_bytes(dir.path())?);
    notes.reported_write_amp = engine.reported_write_amplification();
    run_ycsb(&*engine, scale, dataset, samples, name)?;
    drop(engine);
    drop(dir);
    sync::run_sweep(kind, scale, keys, values, base, samples, notes)
}

fn read_and_scan(
    engine: &dyn Engine,
    scale: &Scale,
    dataset: &Dataset,
    samples: &mut Samples,
    name: &'static str,
) -> Res<()> {
    let keys = &dataset.keys;
    push(samples, report::READ_1, name, workloads::read_random(engine, keys, scale.read_count, 1)?);
    push(samples, report::READ_2, name, workloads::read_random(engine, keys, scale.read_count, 2)?);
    let span = keys.len() / 100;
    let scans = workloads::range_scans(engine, &dataset.sorted, span, scale.range_scan_count)?;
    push(samples, report::RANGE_1PCT, name, scans);
    push(samples, report::FULL_SCAN, name, workloads::full_scan(engine)?);
    Ok(())
}

fn run_ycsb(
    engine: &dyn Engine,
    scale: &Scale,
    dataset: &Dataset,
    samples: &mut Samples,
    name: &'static str,
) -> Res<()> {
    let mut keys = workloads::YcsbKeys {
        loaded: &dataset.keys,
        inserts: dataset.inserts.clone(),
        inserted_count: 0,
    };
    for mix in workloads::YCSB {
        let sample = workloads::ycsb(
            engine,
            mix,
            &mut keys,
            &dataset.zipfian,
            &dataset.values,
            scale.ycsb_op_count,
        )?;
        push(samples, &report::ycsb_name(mix), name, sample);
    }
    Ok(())
}

fn run_versioned(
    engine: &dyn Engine,
    scale: &Scale,
    dataset: &Dataset,
    samples: &mut Samples,
    name: &'static str,
) -> Res<()> {
    let versioned =
        engine.versioned().ok_or("opened with versions but offers no versioned queries")?;
    let keys = &dataset.versioned_keys;
    let sorted = &dataset.versioned_sorted;
    let (fill, versions) = workloads::versioned_fill(
        versioned,
        keys,
        &dataset.values,
        scale.version_count,
        scale.batch_len,
    )?;
    push(samples, report::VERSIONED_FILL, name, fill);
    engine.settle()?;
    push(
        samples,
        report::AS_OF,
        name,
        workloads::as_of_reads(versioned, keys, &versions, scale.as_of_count)?,
    );
    push(
        samples,
        report::HISTORY,
        name,
        workloads::histories(versioned, keys, scale.history_count)?,
    );
    let span = keys.len() / 100;
    if let Some(sample) =
        workloads::ranges_at(versioned, sorted, &versions, span, scale.range_at_count)?
    {
        push(samples, report::RANGE_AT, name, sample);
    }
    let read_before = versioned.changes_bytes_read();
    let all_time = workloads::changes(
        versioned,
        sorted,
        &versions,
        keys.len(),
        versions.len() / 100,
        scale.changes_count,
    )?;
    push(samples, report::CHANGES_ALL_KEYS, name, all_time);
    if let (Some((before, _)), Some((after, database))) =
        (read_before, versioned.changes_bytes_read())
    {
        let per_query = after.saturating_sub(before) / scale.changes_count.max(1) as u64;
        eprintln!(
            "peers: {name}: {}: {per_query} bytes read per query, {:.2}% of {database}",
            report::CHANGES_ALL_KEYS,
            ratio(per_query, database) * 100.0
        );
        push(
            samples,
            report::CHANGES_ALL_KEYS_BYTES,
            name,
            report::bytes_read_sample(per_query, database),
        );
    }
    let box_query = workloads::changes(
        versioned,
        sorted,
        &versions,
        keys.len() / 10,
        versions.len() / 10,
        scale.changes_count,
    )?;
    push(samples, report::CHANGES_BOX, name, box_query);
    Ok(())
}
