//! One process per engine run: the parent runs each (repetition, engine) pair as a child
//! process of this same binary (`--child-out FILE --engines NAME`), which writes its samples
//! and notes as JSON; the parent merges them. Engines then share no allocator state, page-cache
//! mappings, thread pools or heap fragmentation: ZVerse's rows swung 3-4x when it ran in the
//! process after SurrealKV.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::data::KeySet;
use crate::engines::{EngineKind, Res};
use crate::workloads::Sample;
use crate::{EngineNotes, Samples, Scale};

/// Runs `kind` once in a child process and adds what it measured to `samples` and `notes`.
pub fn run_child(
    kind: &EngineKind,
    scale: &Scale,
    key_set: KeySet,
    samples: &mut Samples,
    notes: &mut EngineNotes,
) -> Res<()> {
    let out = tempfile::NamedTempFile::new()?;
    let mut command = Command::new(std::env::current_exe()?);
    command.args(["--engines", kind.name, "--reps", "1", "--key-sets", key_set.name()]);
    command.arg("--child-out").arg(out.path());
    // The child's scale: `--bench` (not criterion's test mode) is the full one.
    command.arg(if scale.name == "quick" { "--quick" } else { "--bench" });
    let status = command.status()?;
    if !status.success() {
        return Err(format!("the child process for {} failed: {status}", kind.name).into());
    }
    let text = std::fs::read_to_string(out.path())?;
    merge(&serde_json::from_str(&text)?, kind.name, samples, notes)
}

/// Writes what one engine run measured to `path` (in the child).
pub fn write_child(path: &Path, samples: &Samples, notes: &EngineNotes) -> Res<()> {
    let samples: BTreeMap<&str, Vec<Value>> = samples
        .iter()
        .map(|(workload, by_engine)| {
            let list = by_engine.values().flatten().map(sample_json).collect();
            (workload.as_str(), list)
        })
        .collect();
    let notes = json!({
        "bytes_after_fill": notes.bytes_after_fill,
        "bytes_after_compaction": notes.bytes_after_compaction,
        "measured_write_amp_fill": notes.measured_write_amp_fill,
        "measured_write_amp_compaction": notes.measured_write_amp_compaction,
        "reported_write_amp": notes.reported_write_amp.map(|(amp, how)| json!([amp, how])),
        "settle": notes.settle,
        "compaction": notes.compaction,
    });
    std::fs::write(path, serde_json::to_string(&json!({"samples": samples, "notes": notes}))?)?;
    Ok(())
}

fn sample_json(sample: &Sample) -> Value {
    let nanos = |duration: Duration| u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    json!({
        "ops": sample.ops,
        "elapsed_ns": nanos(sample.elapsed),
        "p99_ns": sample.p99.map(nanos),
        "check": sample.check,
    })
}

fn merge(
    child: &Value,
    name: &'static str,
    samples: &mut Samples,
    notes: &mut EngineNotes,
) -> Res<()> {
    let bad = || format!("the child process for {name} wrote an unexpected report");
    for (workload, list) in child["samples"].as_object().ok_or_else(bad)? {
        for sample in list.as_array().ok_or_else(bad)? {
            let sample = Sample {
                ops: sample["ops"].as_u64().ok_or_else(bad)?,
                elapsed: Duration::from_nanos(sample["elapsed_ns"].as_u64().ok_or_else(bad)?),
                p99: sample["p99_ns"].as_u64().map(Duration::from_nanos),
                check: sample["check"].as_u64().ok_or_else(bad)?,
            };
            crate::push(samples, workload, name, sample);
        }
    }
    let child_notes = &child["notes"];
    let u64s = |field: &str| -> Vec<u64> {
        child_notes[field].as_array().into_iter().flatten().filter_map(Value::as_u64).collect()
    };
    let f64s = |field: &str| -> Vec<f64> {
        child_notes[field].as_array().into_iter().flatten().filter_map(Value::as_f64).collect()
    };
    notes.bytes_after_fill.extend(u64s("bytes_after_fill"));
    notes.bytes_after_compaction.extend(u64s("bytes_after_compaction"));
    notes.measured_write_amp_fill.extend(f64s("measured_write_amp_fill"));
    notes.measured_write_amp_compaction.extend(f64s("measured_write_amp_compaction"));
    if let Some([amp, how]) = child_notes["reported_write_amp"].as_array().map(Vec::as_slice) {
        notes.reported_write_amp = amp.as_f64().zip(how.as_str().map(leak));
    }
    notes.settle = child_notes["settle"].as_str().map_or("", leak);
    notes.compaction = child_notes["compaction"].as_str().map_or("", leak);
    Ok(())
}

/// The report keeps `&'static str`s; the parent leaks the few a child sends (one per run).
fn leak(text: &str) -> &'static str {
    Box::leak(text.to_owned().into_boxed_str())
}
