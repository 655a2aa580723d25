//! Backups with the `zverse` binary: `checkpoint`, then increments (`dump --all-versions
//! --since`), restored in order, equal the source; out of order or with one missing they are
//! refused; a `load` of an increment killed with SIGKILL resumes to the same result.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value as Json;

mod common;

use common::{Run, run_in};

fn zverse(db: &Path, args: &[&str]) -> Run {
    run_in(db, args, None)
}

/// Writes `count` puts (and every fifth a delete) starting at `first`.
fn write_some(db: &Path, first: usize, count: usize) {
    for index in first..first + count {
        let key = format!("k{:02}", index % 13);
        if index % 5 == 4 {
            zverse(db, &["del", &key]).ok();
        } else {
            zverse(db, &["put", &key, &format!("v{index}")]).ok();
        }
    }
}

/// `dump --all-versions --since base` into `file`; returns the increment's end version.
fn increment(db: &Path, base: u64, file: &Path) -> u64 {
    let dump = zverse(db, &["dump", "--all-versions", "--since", &base.to_string()]).ok();
    std::fs::write(file, &dump.stdout).unwrap();
    let header: Json = serde_json::from_str(dump.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(header["since"], base);
    header["snapshot_version"].as_u64().unwrap()
}

/// A copy of the checkpoint directory `from` (its files, as a restore copies them).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn full_dump(db: &Path) -> String {
    zverse(db, &["dump", "--all-versions"]).ok().stdout
}

fn load(db: &Path, file: &Path) -> Run {
    zverse(db, &["load", file.to_str().unwrap()])
}

#[test]
fn checkpoint_and_three_increments_restore_the_source_and_refuse_gaps_and_overlaps() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    write_some(&source, 0, 12);
    let checkpoint = dir.path().join("checkpoint");
    let made = zverse(&source, &["--json", "checkpoint", checkpoint.to_str().unwrap()]).ok();
    let mut base = made.json()["version"].as_u64().unwrap();
    let refused = zverse(&source, &["checkpoint", checkpoint.to_str().unwrap()]);
    assert_eq!(refused.code, 2, "an existing destination: {}", refused.stderr);
    let mut increments = Vec::new();
    for round in 0..3 {
        write_some(&source, 100 * (round + 1), 9);
        let file = dir.path().join(format!("inc{round}.jsonl"));
        base = increment(&source, base, &file);
        increments.push(file);
    }
    let restored = dir.path().join("restored");
    copy_dir(&checkpoint, &restored);
    for file in &increments {
        load(&restored, file).ok();
    }
    assert_eq!(full_dump(&restored), full_dump(&source), "restored equals the source");

    let out_of_order = dir.path().join("out-of-order");
    copy_dir(&checkpoint, &out_of_order);
    let run = load(&out_of_order, &increments[1]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("gap") && run.stderr.contains("nothing was loaded"),
        "{}",
        run.stderr
    );
    load(&out_of_order, &increments[0]).ok();
    let missing = load(&out_of_order, &increments[2]);
    assert_eq!(missing.code, 3, "one missing: {}", missing.stderr);
    assert!(missing.stderr.contains("gap"), "{}", missing.stderr);
    load(&out_of_order, &increments[1]).ok();
    let before = full_dump(&out_of_order);
    let overlap = load(&out_of_order, &increments[0]);
    assert_eq!(overlap.code, 3, "an older increment again: {}", overlap.stderr);
    assert!(overlap.stderr.contains("overlap"), "{}", overlap.stderr);
    assert_eq!(full_dump(&out_of_order), before, "a refused increment changes nothing");
    let again = load(&out_of_order, &increments[1]).ok();
    assert!(again.stderr.contains("resuming"), "the same increment twice: {}", again.stderr);
    assert_eq!(full_dump(&out_of_order), before, "loading one twice changes nothing");
    load(&out_of_order, &increments[2]).ok();
    assert_eq!(full_dump(&out_of_order), full_dump(&source));
    let usage = zverse(&source, &["dump", "--since", "1"]);
    assert_eq!(usage.code, 2, "--since without --all-versions: {}", usage.stderr);
}

/// Versions in the increment the kill test loads (about 1.5 s to load in a debug build).
const VERSIONS: u64 = 20_000;

/// An increment of `count` one-key versions after `base`.
fn synthetic_increment(base: u64, count: u64) -> String {
    let end = base + count;
    let mut text = format!(
        "{{\"zverse_dump\":1,\"all_versions\":true,\"snapshot_version\":{end},\"since\":{base}}}\n"
    );
    for version in base + 1..=end {
        let line = serde_json::json!({
            "key": format!("key{:04}", version % 5_000),
            "version": version,
            "value": format!("value at {version}"),
        });
        text.push_str(&line.to_string());
        text.push('\n');
    }
    text
}

#[test]
fn a_killed_load_of_an_increment_resumes_to_the_same_database() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    zverse(&source, &["put", "first", "1"]).ok();
    let checkpoint = dir.path().join("checkpoint");
    let made = zverse(&source, &["--json", "checkpoint", checkpoint.to_str().unwrap()]).ok();
    let base = made.json()["version"].as_u64().unwrap();
    let file = dir.path().join("inc.jsonl");
    std::fs::write(&file, synthetic_increment(base, VERSIONS)).unwrap();
    let reference = dir.path().join("reference");
    copy_dir(&checkpoint, &reference);
    load(&reference, &file).ok();
    let expected = full_dump(&reference);
    let (mut killed_midway, mut resumed) = (0, 0);
    for (attempt, delay_ms) in [5_u64, 100, 400].into_iter().enumerate() {
        let restored: PathBuf = dir.path().join(format!("restored{attempt}"));
        copy_dir(&checkpoint, &restored);
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("zverse"))
            .env_remove("ZVERSE_DB")
            .arg("--db")
            .arg(&restored)
            .arg("load")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        killed_midway += u32::from(!status.success());
        zverse(&restored, &["check"]).ok();
        let newest = full_dump(&restored);
        let header: Json = serde_json::from_str(newest.lines().next().unwrap()).unwrap();
        let newest = header["snapshot_version"].as_u64().unwrap();
        assert!((base..=base + VERSIONS).contains(&newest), "a prefix: {newest}");
        let resuming = load(&restored, &file).ok().stderr.contains("resuming");
        assert_eq!(resuming, newest > base, "resumes exactly when part was loaded");
        resumed += u32::from(resuming);
        assert_eq!(full_dump(&restored), expected, "killed after {delay_ms} ms, then resumed");
    }
    println!("{killed_midway} of 3 loads killed before they finished, {resumed} resumed");
    assert!(killed_midway > 0, "at least one load was killed part way");
}
