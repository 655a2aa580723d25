//! Sync, three ways. The **sweep**: a Sync fill at 1, 4, 16 and 64 writer threads on every
//! engine, with ZVerse's writes per sync from its own counters (`stats()`). The **audit**: the
//! same fills once more per engine in a child process run under `strace -f --seccomp-bpf`, which
//! counts the sync system calls (`fsync`, `fdatasync`, `msync`, `syncfs`, and `sync_file_range`,
//! which is no durability sync and is shown apart) made between two marker calls around each
//! fill: that is how the report shows that every engine's Sync setting syncs every write (at
//! one writer, at least one sync per write) and how many writes share a sync for the peers.
//! The **probe**: this file system's `fdatasync` rate after a 100-byte write into bytes already
//! written, and after an append that grows the file, in the same run, so "Sync 1 writer
//! against the prewritten-file rate" can be read off the report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use zverse_benches::sync_audit::{self, CallCounts, Phase, sync_count};

use crate::data::{Key, Values};
use crate::engines::{Durability, EngineKind, Res};
use crate::workloads::{self, Sample};
use crate::{EngineNotes, Samples, Scale};

/// The writer counts of the sweep.
pub const SWEEP_WRITERS: [usize; 4] = [1, 4, 16, 64];

/// The probe's rows (in `Samples` under [`PROBE_ENGINE`]).
pub const PROBE_WRITTEN: &str = "fdatasync after a 100 B write into written bytes";
pub const PROBE_APPEND: &str = "fdatasync after a 100 B append that grows the file";
const PROBE_ENGINE: &str = "(probe)";

/// The bytes of one probe write.
const PROBE_WRITE_BYTES: usize = 100;
/// The probe alternates its two kinds in this many rounds, so that a change in the machine's
/// load during the probe falls on both alike.
const PROBE_ROUNDS: usize = 4;

/// The sweep row of `writers` writers (1 and 4 keep the names the table always had).
pub fn sweep_row(writers: usize) -> String {
    if writers == 1 {
        "fill random, sync, 1 writer".to_owned()
    } else {
        format!("fill random, sync, {writers} writers")
    }
}

/// The writes of the sweep at `writers`: the scale's Sync count, at least two per writer.
fn sweep_write_count(scale: &Scale, writers: usize) -> usize {
    scale.sync_write_count.max(writers * 2)
}

/// Runs the sweep on one engine: each writer count on a fresh database.
pub fn run_sweep(
    kind: &EngineKind,
    scale: &Scale,
    keys: &[Key],
    values: &Values,
    base: &Path,
    samples: &mut Samples,
    notes: &mut EngineNotes,
) -> Res<()> {
    for writers in SWEEP_WRITERS {
        let dir = crate::fresh_dir(base, kind.name)?;
        let engine = (kind.open)(dir.path(), Durability::Sync, false)?;
        let sync_keys = &keys[..sweep_write_count(scale, writers).min(keys.len())];
        let before = engine.commit_counts();
        let sample = workloads::fill_per_op(&*engine, sync_keys, values, writers)?;
        if let (Some(before), Some(after)) = (before, engine.commit_counts()) {
            let records = after.records.saturating_sub(before.records);
            let groups = after.groups.saturating_sub(before.groups);
            notes.writes_per_sync.entry(writers).or_default().push(crate::ratio(records, groups));
        }
        crate::push(samples, &sweep_row(writers), kind.name, sample);
    }
    Ok(())
}

/// The audit's child: the sweep's fills, each between two marker calls, untimed.
pub fn run_audit_child(
    kind: &EngineKind,
    scale: &Scale,
    keys: &[Key],
    values: &Values,
    base: &Path,
) -> Res<()> {
    for writers in SWEEP_WRITERS {
        let dir = crate::fresh_dir(base, kind.name)?;
        let engine = (kind.open)(dir.path(), Durability::Sync, false)?;
        let sync_keys = &keys[..sweep_write_count(scale, writers).min(keys.len())];
        sync_audit::marker(Phase::Begin, writers);
        workloads::fill_per_op(&*engine, sync_keys, values, writers)?;
        sync_audit::marker(Phase::End, writers);
    }
    Ok(())
}

/// One engine's audit: writer count -> (writes, the calls counted around the fill).
#[derive(Clone, Debug, Default)]
pub struct Audit {
    pub fills: BTreeMap<usize, (u64, CallCounts)>,
}

/// Whether `strace` can be run here.
pub fn strace_available() -> bool {
    Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Runs the audit child of `kind` under strace and counts what it traced.
pub fn run_audit(kind: &EngineKind, scale: &Scale) -> Res<Audit> {
    let trace = tempfile::NamedTempFile::new()?;
    let status = Command::new("strace")
        .args(["-f", "--seccomp-bpf", "-qq", "-e", &sync_audit::trace_filter(), "-o"])
        .arg(trace.path())
        .arg(std::env::current_exe()?)
        .args(["--engines", kind.name, "--sync-audit-child"])
        .arg(if scale.name == "quick" { "--quick" } else { "--bench" })
        .status()?;
    if !status.success() {
        return Err(format!("the audit child for {} failed: {status}", kind.name).into());
    }
    let fills = sync_audit::parse_trace(&std::fs::read_to_string(trace.path())?)?;
    let fills = fills
        .into_iter()
        .map(|(writers, counts)| (writers, (sweep_write_count(scale, writers) as u64, counts)))
        .collect();
    Ok(Audit { fills })
}

/// Runs the probe once in `base` and adds its two rows to `samples`.
pub fn run_probe(base: &Path, scale: &Scale, samples: &mut Samples) -> Res<()> {
    let dir = crate::fresh_dir(base, "sync-probe")?;
    let count = scale.sync_write_count.div_ceil(PROBE_ROUNDS);
    let written = File::create_new(dir.path().join("written"))?;
    written.write_all_at(&vec![0x5a; count * PROBE_WRITE_BYTES], 0)?;
    written.sync_all()?;
    let appended = File::create_new(dir.path().join("appended"))?;
    appended.sync_all()?;
    let (mut written_time, mut append_time) = (Duration::ZERO, Duration::ZERO);
    for round in 0..PROBE_ROUNDS {
        let first = round * count;
        written_time += timed_syncs(&written, count, |index| {
            u64::try_from((index % count) * PROBE_WRITE_BYTES).unwrap_or(0)
        })?;
        append_time += timed_syncs(&appended, count, |index| {
            u64::try_from((first + index) * PROBE_WRITE_BYTES).unwrap_or(u64::MAX)
        })?;
    }
    let ops = (count * PROBE_ROUNDS) as u64;
    for (row, elapsed) in [(PROBE_WRITTEN, written_time), (PROBE_APPEND, append_time)] {
        let sample = Sample { ops, elapsed, p99: None, check: ops };
        crate::push(samples, row, PROBE_ENGINE, sample);
    }
    Ok(())
}

/// `count` times: a 100-byte write at `offset(index)`, then `fdatasync`; the time of all.
fn timed_syncs(file: &File, count: usize, offset: impl Fn(usize) -> u64) -> Res<Duration> {
    let bytes = [0xa5; PROBE_WRITE_BYTES];
    let start = Instant::now();
    for index in 0..count {
        file.write_all_at(&bytes, offset(index))?;
        file.sync_data()?;
    }
    Ok(start.elapsed())
}

/// The median rate of `row` for `engine`.
fn median_rate(samples: &Samples, row: &str, engine: &str) -> Option<f64> {
    let mut rates: Vec<f64> = samples.get(row)?.get(engine)?.iter().map(Sample::rate).collect();
    rates.sort_by(f64::total_cmp);
    rates.get(rates.len() / 2).copied()
}

fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied()
}

/// The report's Sync section: the probe, the sweep with writes per sync, and the audit.
pub fn markdown(
    samples: &Samples,
    kinds: &[EngineKind],
    notes: &BTreeMap<&'static str, EngineNotes>,
    audits: &BTreeMap<&'static str, Audit>,
    md: &mut String,
) {
    let _ = writeln!(md, "\n### Sync: the probe, the sweep and the audit\n");
    let written = median_rate(samples, PROBE_WRITTEN, PROBE_ENGINE);
    let append = median_rate(samples, PROBE_APPEND, PROBE_ENGINE);
    if let (Some(written), Some(append)) = (written, append) {
        let _ = writeln!(
            md,
            "Probe (this file system, same run, median of the repetitions): {PROBE_WRITTEN}: \
             **{written:.0}/s**; {PROBE_APPEND}: **{append:.0}/s**."
        );
        if let Some(zverse) = median_rate(samples, &sweep_row(1), "ZVerse") {
            let _ = writeln!(
                md,
                "ZVerse Sync 1 writer / the written-bytes rate: **{:.2}** (goal: at least 0.8).",
                zverse / written
            );
        }
    }
    let _ = writeln!(
        md,
        "\nSync fills, writes/s (median), and writes per sync: ZVerse's from `stats()` \
         (records / commit groups) in the timed run; every engine's from the audit (a second, \
         untimed run under `strace -f --seccomp-bpf`: writes / (fsync + fdatasync + msync + \
         syncfs) between markers around the fill; tracing slows each sync, which can change \
         how writes group).\n"
    );
    md.push_str("| engine |");
    for writers in SWEEP_WRITERS {
        let _ = write!(md, " {writers} |");
    }
    md.push_str(" syncs every write (1 writer, audit) |\n|---|");
    md.push_str(&"---|".repeat(SWEEP_WRITERS.len() + 1));
    md.push('\n');
    // The engines that run the plain rows (the temporal anchors run the versioned ones only).
    let kinds: Vec<&EngineKind> = kinds.iter().filter(|kind| kind.plain).collect();
    for kind in &kinds {
        let _ = write!(md, "| {} |", kind.name);
        for writers in SWEEP_WRITERS {
            let _ = write!(md, " {} |", sweep_cell(samples, kind.name, notes, audits, writers));
        }
        let _ = writeln!(md, " {} |", audit_verdict(audits.get(kind.name)));
    }
    durable_ratios(samples, &kinds, audits, md);
}

/// Whether the audit saw `name` sync at least once per write at one writer.
/// Whether the audit ran for `name` and caught it not syncing every write (an engine the
/// audit did not run for is not judged).
pub fn audited_unsynced(audits: &BTreeMap<&'static str, Audit>, name: &str) -> bool {
    audits.contains_key(name) && !syncs_every_write(audits, name)
}

fn syncs_every_write(audits: &BTreeMap<&'static str, Audit>, name: &str) -> bool {
    audits
        .get(name)
        .and_then(|audit| audit.fills.get(&1))
        .is_some_and(|(writes, counts)| sync_count(counts) >= *writes)
}

/// ZVerse over the best peer whose Sync setting the audit saw sync every write, per writer
/// count: the main table's ratio counts every engine, including any that does not.
fn durable_ratios(
    samples: &Samples,
    kinds: &[&EngineKind],
    audits: &BTreeMap<&'static str, Audit>,
    md: &mut String,
) {
    if audits.is_empty() {
        return;
    }
    let not_durable: Vec<&str> = kinds
        .iter()
        .map(|kind| kind.name)
        .filter(|name| !syncs_every_write(audits, name))
        .collect();
    let _ = writeln!(
        md,
        "
Not syncing every write in the audit (their Sync rows are not comparable): {}.",
        if not_durable.is_empty() { "none".to_owned() } else { not_durable.join(", ") }
    );
    let mut cells = Vec::new();
    for writers in SWEEP_WRITERS {
        let row = sweep_row(writers);
        let zverse = median_rate(samples, &row, "ZVerse");
        let best = kinds
            .iter()
            .filter(|kind| kind.name != "ZVerse" && syncs_every_write(audits, kind.name))
            .filter_map(|kind| Some((median_rate(samples, &row, kind.name)?, kind.name)))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        if let (Some(zverse), Some((rate, name))) = (zverse, best) {
            cells.push(format!("{writers} (w) {:.2} against {name}", zverse / rate));
        }
    }
    let _ = writeln!(
        md,
        "ZVerse / best peer that syncs every write, by writer count (w): {}.",
        cells.join("; ")
    );
}

fn sweep_cell(
    samples: &Samples,
    name: &'static str,
    notes: &BTreeMap<&'static str, EngineNotes>,
    audits: &BTreeMap<&'static str, Audit>,
    writers: usize,
) -> String {
    let Some(rate) = median_rate(samples, &sweep_row(writers), name) else {
        return "–".to_owned();
    };
    let mut cell = format!("{rate:.0}/s");
    if let Some(own) = notes.get(name).and_then(|n| median(n.writes_per_sync.get(&writers)?)) {
        let _ = write!(cell, "; {own:.1} w/sync (stats)");
    }
    if let Some((writes, counts)) = audits.get(name).and_then(|a| a.fills.get(&writers)) {
        let _ = write!(cell, "; {:.1} w/sync (audit)", crate::ratio(*writes, sync_count(counts)));
    }
    cell
}

fn audit_verdict(audit: Option<&Audit>) -> String {
    let Some((writes, counts)) = audit.and_then(|audit| audit.fills.get(&1)) else {
        return "not audited".to_owned();
    };
    let mut calls: Vec<String> =
        counts.iter().map(|(name, count)| format!("{count} {name}")).collect();
    if calls.is_empty() {
        calls.push("no sync call".to_owned());
    }
    let verdict = if sync_count(counts) >= *writes { "yes" } else { "**no**" };
    format!("{verdict}: {writes} writes, {}", calls.join(", "))
}

/// The Sync section as JSON.
pub fn json(
    samples: &Samples,
    notes: &BTreeMap<&'static str, EngineNotes>,
    audits: &BTreeMap<&'static str, Audit>,
) -> Value {
    let probe = json!({
        "written_per_s": median_rate(samples, PROBE_WRITTEN, PROBE_ENGINE),
        "append_per_s": median_rate(samples, PROBE_APPEND, PROBE_ENGINE),
    });
    let writes_per_sync: BTreeMap<&str, &BTreeMap<usize, Vec<f64>>> =
        notes.iter().map(|(name, notes)| (*name, &notes.writes_per_sync)).collect();
    let audits: BTreeMap<&str, BTreeMap<usize, Value>> = audits
        .iter()
        .map(|(name, audit)| {
            let fills = audit
                .fills
                .iter()
                .map(|(writers, (writes, counts))| {
                    (*writers, json!({"writes": writes, "calls": counts}))
                })
                .collect();
            (*name, fills)
        })
        .collect();
    json!({"probe": probe, "writes_per_sync_stats": writes_per_sync, "audit": audits})
}
