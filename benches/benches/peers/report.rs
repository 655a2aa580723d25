//! The results: medians over repetitions, the ZVerse / best peer ratio, the machine, and the
//! markdown table and JSON written to `benches/results/` (and, with `--write-readme`, into the
//! README between its `peers:begin` and `peers:end` markers).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::data::KeySet;
use crate::engines::{Durability, EngineKind, Res};
use crate::workloads::YcsbMix;
use crate::{EngineNotes, Samples, Scale};

pub const FILL_PER_OP: &str = "fill random, 1 write per op (durability none)";
pub const FILL_BATCH: &str = "fill random, batches of 1000 (durability none)";
pub const READ_1: &str = "read random latest, 1 thread";
pub const READ_2: &str = "read random latest, 2 threads";
pub const RANGE_1PCT: &str = "range scan, 1% of the keys";
pub const FULL_SCAN: &str = "full scan";
pub const VERSIONED_FILL: &str = "versioned fill, 20 versions per key, batches of 1000";
pub const AS_OF: &str = "versioned: read as of a random version";
pub const HISTORY: &str = "versioned: history of a key";
pub const RANGE_AT: &str = "versioned: range (1% of keys) at a past version";
pub const CHANGES_ALL_KEYS: &str = "changes: all keys x 1% of time";
pub const CHANGES_BOX: &str = "changes: 10% of keys x 10% of time";
/// Not a throughput row: each sample's `ops` is the bytes one query of [`CHANGES_ALL_KEYS`]
/// read and its `check` the database's bytes, for the engines that count them
/// ([`bytes_read_sample`]); the report prints their ratio under the table.
pub const CHANGES_ALL_KEYS_BYTES: &str = "changes: all keys x 1% of time, bytes read per query";

/// The sample of [`CHANGES_ALL_KEYS_BYTES`]: bytes read per query, and the database's bytes.
pub fn bytes_read_sample(per_query_bytes: u64, database_bytes: u64) -> crate::workloads::Sample {
    crate::workloads::Sample {
        ops: per_query_bytes,
        elapsed: Duration::ZERO,
        p99: None,
        check: database_bytes,
    }
}

/// The bytes-read lines: for each key set and engine that counted them, the median share of
/// the database one `changes` query over all keys and 1% of the time read (the goal: 3%).
fn bytes_read_markdown(summary: &Summary<'_>, md: &mut String) {
    for key_set in summary.key_sets {
        let row = format!("{CHANGES_ALL_KEYS_BYTES}{}", key_set.row_suffix());
        for (engine, samples) in summary.samples.get(&row).into_iter().flatten() {
            #[allow(clippy::cast_precision_loss, reason = "a ratio of byte counts")]
            let shares: Vec<f64> =
                samples.iter().map(|s| s.ops as f64 / s.check.max(1) as f64 * 100.0).collect();
            let Some(median) = median_f64(&shares) else { continue };
            let bytes: Vec<u64> = samples.iter().map(|s| s.ops).collect();
            let database: Vec<u64> = samples.iter().map(|s| s.check).collect();
            let _ = writeln!(
                md,
                "\n{engine}, {CHANGES_ALL_KEYS}{}: each query read {median:.2}% of the \
                 database's bytes (median of the repetitions; {} of {}; the goal is at most 3%).",
                key_set.row_suffix(),
                bytes_text(median_u64(&bytes).unwrap_or(0)),
                bytes_text(median_u64(&database).unwrap_or(0)),
            );
        }
    }
}

pub fn ycsb_name(mix: YcsbMix) -> String {
    format!("YCSB {}", mix.name)
}

/// Every row in table order, with its unit: the rows of each key set in turn.
fn rows(key_sets: &[KeySet]) -> Vec<(String, &'static str)> {
    key_sets
        .iter()
        .flat_map(|key_set| {
            let suffix = key_set.row_suffix();
            base_rows().into_iter().map(move |(name, unit)| (format!("{name}{suffix}"), unit))
        })
        .collect()
}

/// A row's name without its key set's suffix.
fn base_name(name: &str) -> &str {
    name.strip_suffix(crate::data::SHARED_PREFIX_ROW_SUFFIX).unwrap_or(name)
}

/// Every row of one key set in table order, with its unit (what one op is).
fn base_rows() -> Vec<(String, &'static str)> {
    let mut rows: Vec<(String, &'static str)> =
        vec![(FILL_PER_OP.into(), "writes/s"), (FILL_BATCH.into(), "writes/s")];
    rows.extend(
        crate::sync::SWEEP_WRITERS.map(|writers| (crate::sync::sweep_row(writers), "writes/s")),
    );
    rows.extend([
        (READ_1.into(), "reads/s"),
        (READ_2.into(), "reads/s"),
        (RANGE_1PCT.into(), "scans/s"),
        (FULL_SCAN.into(), "items/s"),
    ]);
    for mix in crate::workloads::YCSB {
        rows.push((ycsb_name(mix), "ops/s"));
    }
    rows.extend([
        (VERSIONED_FILL.into(), "writes/s"),
        (AS_OF.into(), "reads/s"),
        (HISTORY.into(), "queries/s"),
        (RANGE_AT.into(), "queries/s"),
        (CHANGES_ALL_KEYS.into(), "queries/s"),
        (CHANGES_BOX.into(), "queries/s"),
    ]);
    rows
}

/// The machine and its load at one moment.
#[derive(Clone, Debug)]
pub struct Machine {
    pub cpus: usize,
    pub memory: String,
    pub kernel: String,
    pub cpu_model: String,
    pub load_average: String,
    pub time_unix: u64,
}

impl Machine {
    pub fn now() -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| {
                line.strip_prefix("model name")
                    .map(|rest| rest.trim_start_matches([' ', '\t', ':']))
            })
            .unwrap_or("unknown")
            .to_owned();
        let meminfo = read("/proc/meminfo");
        let memory = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .map_or_else(|| "unknown".to_owned(), |rest| rest.trim().to_owned());
        let load = read("/proc/loadavg");
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
            memory,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            cpu_model,
            load_average: load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
            time_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_secs()),
        }
    }
}

pub struct Summary<'a> {
    pub scale: Scale,
    pub backend: &'static str,
    pub key_sets: &'a [KeySet],
    pub kinds: &'a [EngineKind],
    pub samples: &'a Samples,
    pub notes: &'a BTreeMap<&'static str, EngineNotes>,
    pub audits: &'a BTreeMap<&'static str, crate::sync::Audit>,
    pub started: Machine,
    pub finished: Machine,
    pub elapsed: Duration,
}

fn median_f64(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied()
}

fn median_u64(values: &[u64]) -> Option<u64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied()
}

/// A rate with three significant figures: 184k, 1.23M, 45.6.
fn rate_text(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.3}M", rate / 1e6)
    } else if rate >= 1e3 {
        format!("{:.1}k", rate / 1e3)
    } else if rate >= 10.0 {
        format!("{rate:.0}")
    } else {
        format!("{rate:.2}")
    }
}

fn duration_text(duration: Duration) -> String {
    let micros = duration.as_secs_f64() * 1e6;
    if micros >= 1e3 { format!("{:.2} ms", micros / 1e3) } else { format!("{micros:.1} µs") }
}

#[allow(clippy::cast_precision_loss, reason = "display only")]
fn bytes_text(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

/// One row's medians per engine, and the ratio.
struct Row {
    name: String,
    unit: &'static str,
    rate: BTreeMap<&'static str, f64>,
    p99: BTreeMap<&'static str, Duration>,
    checks: BTreeMap<&'static str, Vec<u64>>,
    /// Engines shown but left out of the ratio: on a Sync row, those the audit caught not
    /// syncing every write.
    unsynced: BTreeSet<&'static str>,
}

impl Row {
    /// ZVerse's median / the best peer's, and the best peer's name.
    fn ratio(&self) -> Option<(f64, &'static str)> {
        let zverse = *self.rate.get("ZVerse")?;
        let (best, rate) = self
            .rate
            .iter()
            .filter(|(name, _)| **name != "ZVerse" && !self.unsynced.contains(*name))
            .max_by(|a, b| a.1.total_cmp(b.1))?;
        Some((zverse / rate, best))
    }

    fn checks_agree(&self) -> bool {
        let mut all = self.checks.values().flatten();
        let first = all.next();
        all.all(|check| Some(check) == first)
    }
}

fn collect_rows(summary: &Summary<'_>) -> Vec<Row> {
    rows(summary.key_sets)
        .into_iter()
        .map(|(name, unit)| {
            let mut row = Row {
                name: name.clone(),
                unit,
                rate: BTreeMap::new(),
                p99: BTreeMap::new(),
                checks: BTreeMap::new(),
                unsynced: BTreeSet::new(),
            };
            if let Some(by_engine) = summary.samples.get(&name) {
                for (engine, samples) in by_engine {
                    let rates: Vec<f64> =
                        samples.iter().map(crate::workloads::Sample::rate).collect();
                    if let Some(rate) = median_f64(&rates) {
                        row.rate.insert(engine, rate);
                    }
                    let p99s: Vec<u64> =
                        samples.iter().filter_map(|s| s.p99).map(|p| p.as_nanos() as u64).collect();
                    if let Some(p99) = median_u64(&p99s) {
                        row.p99.insert(engine, Duration::from_nanos(p99));
                    }
                    row.checks.insert(engine, samples.iter().map(|s| s.check).collect());
                    if is_sync_row(&name) && crate::sync::audited_unsynced(summary.audits, engine) {
                        row.unsynced.insert(engine);
                    }
                }
            }
            row
        })
        .collect()
}

fn engine_cell<T>(
    kind: &EngineKind,
    row: &Row,
    map: &BTreeMap<&'static str, T>,
    text: impl Fn(&T) -> String,
) -> String {
    match map.get(kind.name) {
        Some(value) => text(value),
        None if is_versioned_row(&row.name) && !kind.has_versions => "not supported".to_owned(),
        None if base_name(&row.name) == RANGE_AT => "not supported".to_owned(),
        None => "–".to_owned(),
    }
}

/// Whether `name` is a Sync fill row, whose ratio counts only engines that sync every write.
fn is_sync_row(name: &str) -> bool {
    base_name(name).starts_with("fill random, sync,")
}

fn is_versioned_row(name: &str) -> bool {
    [VERSIONED_FILL, AS_OF, HISTORY, RANGE_AT, CHANGES_ALL_KEYS, CHANGES_BOX]
        .contains(&base_name(name))
}

fn ratio_text(row: &Row) -> String {
    match row.ratio() {
        Some((ratio, best)) if ratio >= 1.0 => format!("**{ratio:.2}** (ahead of {best})"),
        Some((ratio, best)) => format!("**{ratio:.2}** (behind {best})"),
        None => "–".to_owned(),
    }
}

fn header(kinds: &[EngineKind], first: &str, last: Option<&str>) -> String {
    let mut text = format!("| {first} |");
    for kind in kinds {
        let _ = write!(text, " {} |", kind.name);
    }
    if let Some(last) = last {
        let _ = write!(text, " {last} |");
    }
    text.push('\n');
    text.push('|');
    for _ in 0..kinds.len() + 1 + usize::from(last.is_some()) {
        text.push_str("---|");
    }
    text.push('\n');
    text
}

fn scale_text(scale: &Scale, key_sets: &[KeySet]) -> String {
    let key_sets = key_sets
        .iter()
        .map(|key_set| match key_set {
            KeySet::Random => "random 16-byte keys".to_owned(),
            KeySet::SharedPrefix => format!(
                "shared-prefix keys (the 24-byte prefix {:?} then an 8-byte id; rows marked{})",
                String::from_utf8_lossy(crate::data::SHARED_PREFIX),
                crate::data::SHARED_PREFIX_ROW_SUFFIX
            ),
        })
        .collect::<Vec<_>>()
        .join(", then ");
    format!(
        "{key_sets}; {} keys with 100 B values (fills, reads, scans, YCSB); sync fills {} writes; \
         {} random reads per read row; {} range scans; {} ops per YCSB workload (1 thread, \
         Zipfian 0.99); versioned: {} keys x {} versions, {} as-of reads, {} histories, {} ranges \
         at a version, {} queries per changes row; {} repetition(s), median shown",
        scale.key_count,
        scale.sync_write_count,
        scale.read_count,
        scale.range_scan_count,
        scale.ycsb_op_count,
        scale.versioned_key_count,
        scale.version_count,
        scale.as_of_count,
        scale.history_count,
        scale.range_at_count,
        scale.changes_count,
        scale.repetitions
    )
}

fn command_text() -> String {
    std::env::var("ZVERSE_PEERS_COMMAND")
        .unwrap_or_else(|_| std::env::args().collect::<Vec<_>>().join(" "))
}

/// The markdown report (also the README's generated section).
fn markdown(summary: &Summary<'_>, rows: &[Row]) -> String {
    let kinds = summary.kinds;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Generated by `{}` ({} scale, {:.0} min). Machine: {} CPUs ({}), {} memory, Linux {}. \
         Load average (1/5/15 min) {} at the start, {} at the end: the machine is shared with \
         other builds, so the figures are contended and vary between runs. ZVerse opens through \
         `zverse_linux::open` and ran on the **{}** backend.\n",
        command_text(),
        summary.scale.name,
        summary.elapsed.as_secs_f64() / 60.0,
        summary.started.cpus,
        summary.started.cpu_model,
        summary.started.memory,
        summary.started.kernel,
        summary.started.load_average,
        summary.finished.load_average,
        summary.backend,
    );
    let _ = writeln!(md, "Scale: {}.\n", scale_text(&summary.scale, summary.key_sets));
    let _ = writeln!(
        md,
        "Throughput, median of the repetitions (higher is better). **ZVerse / best peer** is \
         ZVerse's median divided by the best peer's: above 1 ZVerse is faster, below 1 it is behind.\n"
    );
    md.push_str(&header(kinds, "workload (unit)", Some("ZVerse / best peer")));
    for row in rows {
        let _ = write!(md, "| {} ({}) |", row.name, row.unit);
        for kind in kinds {
            let _ = write!(md, " {} |", engine_cell(kind, row, &row.rate, |rate| rate_text(*rate)));
        }
        let _ = writeln!(md, " {} |", ratio_text(row));
    }
    let _ = writeln!(
        md,
        "\np99 latency of one operation (one batch for the batch fill), median of the repetitions:\n"
    );
    md.push_str(&header(kinds, "workload", None));
    for row in rows.iter().filter(|row| !row.p99.is_empty()) {
        let _ = write!(md, "| {} |", row.name);
        for kind in kinds {
            let _ =
                write!(md, " {} |", engine_cell(kind, row, &row.p99, |p99| duration_text(*p99)));
        }
        md.push('\n');
    }
    bytes_read_markdown(summary, &mut md);
    crate::sync::markdown(summary.samples, kinds, summary.notes, summary.audits, &mut md);
    space_markdown(summary, &mut md);
    checks_markdown(rows, &mut md);
    settings_markdown(summary, &mut md);
    md
}

fn space_markdown(summary: &Summary<'_>, md: &mut String) {
    let _ = writeln!(
        md,
        "\nSpace and write amplification after the batch fill (medians). Bytes on disk are \
         allocated blocks (`du`). Measured write amplification is what the process sent to \
         storage (`/proc/self/io` write_bytes less cancelled_write_bytes) over the key and value \
         bytes written; the reported one is the engine's own figure, where it has one.\n"
    );
    md.push_str("| engine | after fill | after compaction | measured WA, fill | measured WA, fill + compaction | engine-reported WA, after compaction |\n|---|---|---|---|---|---|\n");
    let zverse_fill = summary.notes.get("ZVerse").and_then(|n| median_u64(&n.bytes_after_fill));
    for kind in summary.kinds {
        let Some(notes) = summary.notes.get(kind.name) else { continue };
        if notes.bytes_after_fill.is_empty() {
            continue; // the two-table anchors run no batch fill
        }
        let reported = notes
            .reported_write_amp
            .map_or_else(|| "not reported".to_owned(), |(wa, how)| format!("{wa:.2} ({how})"));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.2} | {:.2} | {} |",
            kind.name,
            median_u64(&notes.bytes_after_fill).map_or_else(String::new, bytes_text),
            median_u64(&notes.bytes_after_compaction).map_or_else(String::new, bytes_text),
            median_f64(&notes.measured_write_amp_fill).unwrap_or(0.0),
            median_f64(&notes.measured_write_amp_compaction).unwrap_or(0.0),
            reported,
        );
    }
    let smallest_peer = summary
        .notes
        .iter()
        .filter(|(name, _)| **name != "ZVerse")
        .filter_map(|(name, notes)| Some((median_u64(&notes.bytes_after_fill)?, *name)))
        .min();
    if let (Some(zverse), Some((peer, name))) = (zverse_fill, smallest_peer) {
        #[allow(clippy::cast_precision_loss, reason = "display only")]
        let ratio = zverse as f64 / peer.max(1) as f64;
        let _ = writeln!(
            md,
            "\nSpace after fill, ZVerse / smallest peer ({name}): **{ratio:.2}** (below 1 ZVerse is smaller)."
        );
    }
}

fn checks_markdown(rows: &[Row], md: &mut String) {
    let bad: Vec<&str> =
        rows.iter().filter(|row| !row.checks_agree()).map(|row| row.name.as_str()).collect();
    if bad.is_empty() {
        let _ = writeln!(
            md,
            "\nEvery engine returned the same item counts for every workload (checked)."
        );
    } else {
        let _ = writeln!(md, "\n**Item counts disagree between engines** in: {}.", bad.join("; "));
    }
}

fn settings_markdown(summary: &Summary<'_>, md: &mut String) {
    let _ = writeln!(md, "\nEngines and settings (durability none / sync, exactly):\n");
    for kind in summary.kinds {
        let notes = summary.notes.get(kind.name).cloned().unwrap_or_default();
        let _ = write!(
            md,
            "- **{}** ({}). None: {}. Sync: {}.",
            kind.name,
            kind.library,
            (kind.settings)(Durability::None),
            (kind.settings)(Durability::Sync),
        );
        if kind.plain {
            let _ = write!(
                md,
                " Before the space figure and the read rows: {}. Compaction: {}.",
                notes.settle, notes.compaction
            );
        } else {
            md.push_str(" Runs the versioned rows only.");
        }
        md.push('\n');
    }
}

fn json(summary: &Summary<'_>, rows: &[Row]) -> Value {
    let machine = |m: &crate::report::Machine| {
        json!({"cpus": m.cpus, "cpu_model": m.cpu_model, "memory": m.memory, "kernel": m.kernel,
               "load_average": m.load_average, "time_unix": m.time_unix})
    };
    let workloads: Vec<Value> = rows
        .iter()
        .map(|row| {
            let engines: BTreeMap<&str, Value> = row
                .rate
                .iter()
                .map(|(name, rate)| {
                    let rates: Vec<f64> = summary.samples[&row.name][name].iter().map(crate::workloads::Sample::rate).collect();
                    let p99 = row.p99.get(name).map(|p| p.as_nanos() as u64);
                    (*name, json!({"median_per_s": rate, "per_s_each_repetition": rates, "p99_ns": p99, "checks": row.checks[name]}))
                })
                .collect();
            json!({"workload": row.name, "unit": row.unit, "engines": engines,
                   "zverse_over_best_peer": row.ratio().map(|(ratio, best)| json!({"ratio": ratio, "best_peer": best})),
                   "checks_agree": row.checks_agree()})
        })
        .collect();
    let engines: Vec<Value> = summary
        .kinds
        .iter()
        .map(|kind| {
            let notes = summary.notes.get(kind.name).cloned().unwrap_or_default();
            json!({"name": kind.name, "library": kind.library,
                   "settings_none": (kind.settings)(Durability::None), "settings_sync": (kind.settings)(Durability::Sync),
                   "settle": notes.settle, "compaction": notes.compaction,
                   "bytes_after_fill": notes.bytes_after_fill, "bytes_after_compaction": notes.bytes_after_compaction,
                   "measured_write_amp_fill": notes.measured_write_amp_fill,
                   "measured_write_amp_fill_and_compaction": notes.measured_write_amp_compaction,
                   "reported_write_amp": notes.reported_write_amp.map(|(wa, how)| json!({"value": wa, "definition": how}))})
        })
        .collect();
    json!({"command": command_text(), "scale": format!("{:?}", summary.scale), "zverse_backend": summary.backend,
           "machine_start": machine(&summary.started), "machine_end": machine(&summary.finished),
           "elapsed_s": summary.elapsed.as_secs_f64(), "workloads": workloads, "engines": engines,
           "sync": crate::sync::json(summary.samples, summary.notes, summary.audits)})
}

const README_BEGIN: &str = "<!-- peers:begin (generated by benches/run-peers.sh; do not edit) -->";
const README_END: &str = "<!-- peers:end -->";

pub fn write(summary: &Summary<'_>, out: &Path, write_readme: bool) -> Res<()> {
    let rows = collect_rows(summary);
    let md = markdown(summary, &rows);
    std::fs::create_dir_all(out)?;
    let stem = if summary.scale.name == "full" { "latest" } else { "latest-quick" };
    std::fs::write(out.join(format!("{stem}.md")), format!("# Side-by-side benchmark\n\n{md}"))?;
    std::fs::write(
        out.join(format!("{stem}.json")),
        serde_json::to_string_pretty(&json(summary, &rows))?,
    )?;
    println!("{md}");
    eprintln!("peers: wrote {}", out.join(format!("{stem}.md")).display());
    if write_readme {
        let readme_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
        let readme = std::fs::read_to_string(&readme_path)?;
        let begin = readme.find(README_BEGIN).ok_or("README.md has no peers:begin marker")?;
        let end = readme.find(README_END).ok_or("README.md has no peers:end marker")?;
        let updated = format!("{}{README_BEGIN}\n{md}{}", &readme[..begin], &readme[end..]);
        std::fs::write(&readme_path, updated)?;
        eprintln!("peers: rewrote the README's peers section");
    }
    Ok(())
}
