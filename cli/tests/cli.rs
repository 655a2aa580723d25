//! The `zverse` binary, run as a user runs it: every command, `--json` parsed, the dump/load
//! round trip compared at several versions, `check` on a flipped byte, and the errors a user
//! meets (missing key, bad range, bad escape, missing, locked or foreign directory).

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value as Json;

mod common;

use common::{Run, command_in, finish, run_in};

/// A temporary directory with the database at `<dir>/db`.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch { dir: tempfile::tempdir().expect("a temporary directory") }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("db")
    }

    fn run(&self, args: &[&str]) -> Run {
        run_in(&self.db(), args, None)
    }

    /// `run` with `ZVERSE_IO_URING=off`: the io_uring probe fails as on a refusing kernel.
    fn run_without_io_uring(&self, args: &[&str]) -> Run {
        let mut command = command_in(&self.db(), args);
        command.env(zverse_linux::IO_URING_ENV, "off");
        finish(&mut command)
    }

    /// `put` with `--json`; returns the version.
    fn put(&self, key: &str, value: &str) -> u64 {
        self.run(&["--json", "put", key, value]).ok().json()["version"].as_u64().expect("version")
    }

    fn del(&self, key: &str) -> u64 {
        self.run(&["--json", "del", key]).ok().json()["version"].as_u64().expect("version")
    }
}

#[test]
fn put_get_del_in_text_and_json() {
    let scratch = Scratch::new();
    let put = scratch.run(&["put", "user:1", "alice"]).ok();
    assert!(put.stdout.contains("Z)"), "a version prints with its time: {}", put.stdout);
    assert_eq!(scratch.run(&["get", "user:1"]).ok().stdout, "alice\n");
    let json = scratch.run(&["--json", "get", "user:1"]).ok().json();
    assert_eq!(json["key"], "user:1");
    assert_eq!(json["value"], "alice");
    assert!(json["version"].as_u64().is_some() && json["time"].as_str().is_some());
    scratch.del("user:1");
    let run = scratch.run(&["get", "user:1"]).fails(1);
    assert!(run.stderr.contains("key not found"), "{}", run.stderr);
}

#[test]
fn escape_form_round_trips_arbitrary_bytes() {
    let scratch = Scratch::new();
    scratch.put("k\\x00\\xff", "a\\\\b\\x0a");
    assert_eq!(scratch.run(&["get", "k\\x00\\xff"]).ok().stdout, "a\\\\b\\x0a\n");
    let run = scratch.run(&["get", "k\\q"]).fails(2);
    assert!(run.stderr.contains("bad escape"), "{}", run.stderr);
}

#[test]
fn get_at_takes_versions_absolute_and_relative_times() {
    let scratch = Scratch::new();
    let v1 = scratch.put("k", "one");
    let v2 = scratch.put("k", "two");
    assert_eq!(scratch.run(&["get", "k", "--at", &v1.to_string()]).ok().stdout, "one\n");
    assert_eq!(scratch.run(&["get", "k", "--at", &(v2 - 1).to_string()]).ok().stdout, "one\n");
    assert_eq!(scratch.run(&["get", "k", "--at", "now"]).ok().stdout, "two\n");
    let time = scratch.run(&["--json", "get", "k", "--at", &v1.to_string()]).ok().json()["time"]
        .as_str()
        .expect("time")
        .to_owned();
    assert_eq!(scratch.run(&["get", "k", "--at", &time]).ok().stdout, "one\n");
    scratch.run(&["get", "k", "--at", "1970-01-01T00:00:00Z"]).fails(1);
    // `date -Iseconds` prints an offset; any offset names the same instant.
    let rfc = time.trim_end_matches('Z');
    let east = chrono_like_shift(rfc, 2);
    assert_eq!(scratch.run(&["get", "k", "--at", &east]).ok().stdout, "one\n", "{east}");
    for before in ["yesterday", "2 days ago", "1h ago"] {
        scratch.run(&["get", "k", "--at", before]).fails(1);
    }
    assert_eq!(scratch.run(&["get", "k", "--at", "1 minute"]).ok().stdout, "two\n");
    let run = scratch.run(&["get", "k", "--at", "the other day"]).fails(2);
    assert!(run.stderr.contains("1h ago"), "the error shows the forms: {}", run.stderr);
}

/// `2026-11-22T03:10:00.123456` (UTC) as the same instant `hours` east of UTC, or west of it
/// late in the day, as `date -Iseconds` prints it there.
fn chrono_like_shift(utc: &str, hours: u32) -> String {
    let (date, time) = utc.split_once('T').unwrap();
    let hour: u32 = time[..2].parse().unwrap();
    if hour + hours < 24 {
        format!("{date}T{:02}{}+{hours:02}:00", hour + hours, &time[2..])
    } else {
        format!("{date}T{:02}{}-{hours:02}:00", hour - hours, &time[2..])
    }
}

#[test]
fn scan_by_range_prefix_limit_and_version() {
    let scratch = Scratch::new();
    for key in ["a:1", "a:2", "b:1", "c:1"] {
        scratch.put(key, &format!("v-{key}"));
    }
    let v = scratch.put("a:3", "later");
    let keys = |run: Run| -> Vec<String> {
        run.ok().stdout.lines().map(|line| line.split('\t').next().unwrap().to_owned()).collect()
    };
    assert_eq!(keys(scratch.run(&["scan"])), ["a:1", "a:2", "a:3", "b:1", "c:1"]);
    assert_eq!(keys(scratch.run(&["scan", "a:2..c:1"])), ["a:2", "a:3", "b:1"]);
    assert_eq!(keys(scratch.run(&["scan", "a:2..=c:1"])), ["a:2", "a:3", "b:1", "c:1"]);
    assert_eq!(keys(scratch.run(&["scan", "--prefix", "a:", "--limit", "2"])), ["a:1", "a:2"]);
    let before = (v - 1).to_string();
    assert_eq!(keys(scratch.run(&["scan", "--prefix", "a:", "--at", &before])), ["a:1", "a:2"]);
    let lines = scratch.run(&["--json", "scan", "b.."]).ok().json_lines();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["key"], "b:1");
    assert_eq!(lines[0]["value"], "v-b:1");
    for bad in ["c..a", "a", "a..=", "b..b"] {
        let run = scratch.run(&["scan", bad]).fails(2);
        assert!(run.stderr.contains("bad range"), "{}", run.stderr);
    }
}

#[test]
fn history_and_changes() {
    let scratch = Scratch::new();
    let v1 = scratch.put("k", "one");
    let v2 = scratch.put("other", "x");
    let v3 = scratch.del("k");
    let history = scratch.run(&["--json", "history", "k"]).ok().json_lines();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["version"], v3);
    assert_eq!(history[0]["value"], Json::Null);
    assert_eq!(history[1]["value"], "one");
    assert!(scratch.run(&["history", "k"]).ok().stdout.contains("(deleted)"));
    scratch.run(&["history", "never"]).fails(1);
    let all = scratch.run(&["--json", "changes"]).ok().json_lines();
    let versions: Vec<u64> = all.iter().map(|c| c["version"].as_u64().unwrap()).collect();
    assert_eq!(versions, [v1, v2, v3], "oldest first");
    let (from, to) = (v2.to_string(), v3.to_string());
    let window = ["--json", "changes", "--keys", "a..l", "--from", &from, "--to", &to];
    let window = scratch.run(&window).ok().json_lines();
    assert_eq!(window.len(), 1);
    assert_eq!(window[0]["key"], "k");
    scratch.run(&["changes", "--from", &to, "--to", &from]).fails(2);
}

#[test]
fn stat_flush_compact_check() {
    let scratch = Scratch::new();
    scratch.put("a", "1");
    let stat = scratch.run(&["--json", "stat"]).ok().json();
    let backend = if zverse_linux::probe().is_ok() { "io_uring" } else { "std" };
    assert_eq!(stat["io_backend"], backend, "io_uring wherever the kernel allows it");
    let forced = scratch.run_without_io_uring(&["--json", "stat"]).ok();
    assert_eq!(forced.json()["io_backend"], "std");
    assert!(forced.stderr.contains("ZVERSE_IO_URING=off"), "said once: {}", forced.stderr);
    assert_eq!(forced.stderr.lines().count(), 1, "said once: {}", forced.stderr);
    assert_eq!(stat["memtable_versions"], 1);
    assert_eq!(stat["advisor"]["enabled"], true, "the advisor is on by default");
    assert_eq!(stat["advisor"]["advice_calls"], 0, "a stat reads nothing");
    assert_eq!(stat["segment_pages"], 0);
    let text = scratch.run(&["stat"]).ok().stdout;
    assert!(text.contains("advisor") && text.contains("on ("), "{text}");
    assert!(text.contains("segments in memory   no segments"), "{text}");
    assert_eq!(scratch.run(&["--json", "flush"]).ok().json()["segment_count"], 1);
    let stat = scratch.run(&["--json", "stat"]).ok().json();
    assert!(stat["segment_pages"].as_u64().is_some_and(|pages| pages >= 1), "{stat}");
    let resident = stat["segment_pages_resident"].as_u64().expect("mincore works on Linux");
    assert!(resident <= stat["segment_pages"].as_u64().unwrap(), "{stat}");
    scratch.put("b", "2");
    scratch.run(&["flush"]).ok();
    assert_eq!(scratch.run(&["--json", "compact"]).ok().json()["segment_count"], 1);
    let check = scratch.run(&["--json", "check"]).ok().json();
    assert_eq!(check["ok"], true);
    assert_eq!(check["entry_count"], 2);
    assert!(scratch.run(&["check"]).ok().stdout.starts_with("ok: 1 segments"));
}

#[test]
fn check_reports_a_flipped_byte_with_its_file() {
    let scratch = Scratch::new();
    for index in 0..50 {
        scratch.put(&format!("key:{index:03}"), "some value bytes");
    }
    scratch.run(&["flush"]).ok();
    let segment = std::fs::read_dir(scratch.db())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .expect("a segment after flush");
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[20] ^= 0x40; // inside data block 0 (blocks start at offset 0)
    std::fs::write(&segment, bytes).unwrap();
    let name = segment.file_name().unwrap().to_str().unwrap();
    let run = scratch.run(&["check"]).fails(4);
    assert!(run.stderr.contains(name) && run.stderr.contains("checksum"), "{}", run.stderr);
    let json = scratch.run(&["--json", "check"]).fails(4).json();
    assert_eq!(json["ok"], false);
    assert!(json["error"].as_str().unwrap().contains(name));
}

/// Damage that `Db::open` already finds (a segment's footer, the manifest): `check` fails
/// with exit code 4 and names the file, in text and JSON.
#[test]
fn check_reports_a_damaged_segment_footer_and_manifest_found_at_open() {
    for target in ["seg", "MANIFEST"] {
        let scratch = Scratch::new();
        for index in 0..20 {
            scratch.put(&format!("key:{index:03}"), "some value bytes");
        }
        scratch.run(&["flush"]).ok();
        let file = std::fs::read_dir(scratch.db())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .find(|path| {
                path.extension().is_some_and(|ext| ext == target)
                    || path.file_name().is_some_and(|name| name == target)
            })
            .expect("the file to damage");
        let mut bytes = std::fs::read(&file).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01; // The footer's (or manifest's) checksum.
        std::fs::write(&file, bytes).unwrap();
        let name = file.file_name().unwrap().to_str().unwrap();
        let run = scratch.run(&["check"]).fails(4);
        assert!(run.stderr.contains(name), "{target}: {}", run.stderr);
        let json = scratch.run(&["--json", "check"]).fails(4).json();
        assert_eq!(json["ok"], false, "{target}");
        assert!(json["error"].as_str().unwrap().contains(name), "{target}: {json}");
    }
}

#[test]
fn dump_and_load_reproduce_every_as_of_read() {
    let scratch = Scratch::new();
    let mut versions = vec![scratch.put("a", "1"), scratch.put("b\\x00\\xff", "\\x01\\\\")];
    versions.push(scratch.put("a", "2"));
    scratch.run(&["flush"]).ok();
    versions.push(scratch.del("b\\x00\\xff"));
    versions.push(scratch.put("c", ""));
    versions.push(scratch.put("a", "3"));
    let dump = scratch.run(&["dump", "--all-versions"]).ok();
    let lines = dump.json_lines();
    assert_eq!(lines.len(), 7, "a header and six versions");
    assert_eq!(lines[0]["zverse_dump"], 1);
    assert_eq!(lines[0]["all_versions"], true);
    assert!(lines[0]["snapshot_version"].as_u64().unwrap() >= versions[5]);
    let dumped: Vec<u64> =
        lines[1..].iter().map(|line| line["version"].as_u64().unwrap()).collect();
    assert_eq!(dumped, versions, "oldest first");
    assert_eq!(lines[2]["key"], serde_json::json!({ "base64": "YgD/" }), "not UTF-8: base64");
    assert_eq!(lines[2]["value"], "\u{1}\\", "UTF-8 as it is");
    assert_eq!(lines[4]["value"], Json::Null, "a delete");
    let copy = scratch.dir.path().join("copy");
    let loaded = run_in(&copy, &["--json", "load"], Some(&dump.stdout)).ok().json();
    assert_eq!((loaded["loaded"].as_u64(), loaded["versions"].as_u64()), (Some(6), Some(6)));
    let again = run_in(&copy, &["dump", "--all-versions"], None).ok().json_lines();
    assert_eq!(again[1..], lines[1..], "the same versions");
    for version in versions.iter().flat_map(|&v| [v - 1, v]) {
        let at = version.to_string();
        let original = scratch.run(&["--json", "scan", "--at", &at]).ok().stdout;
        let restored = run_in(&copy, &["--json", "scan", "--at", &at], None).ok().stdout;
        assert_eq!(original, restored, "scan as of {at}");
        for key in ["a", "b\\x00\\xff", "c"] {
            let original = scratch.run(&["get", key, "--at", &at]);
            let restored = run_in(&copy, &["get", key, "--at", &at], None);
            assert_eq!((original.code, original.stdout), (restored.code, restored.stdout));
        }
    }
    let latest = scratch.run(&["dump"]).ok().json_lines();
    assert_eq!(latest[0]["all_versions"], false);
    let keys: Vec<&str> = latest[1..].iter().map(|line| line["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["c", "a"], "the latest live value of each key, oldest first");
    assert_eq!(latest[2]["version"], versions[5]);
    let same = scratch.put("c", "");
    let latest = scratch.run(&["dump"]).ok().json_lines();
    assert_eq!(latest.len(), 3, "{latest:?}");
    assert_eq!(latest[1]["version"], versions[5]);
    assert_eq!(latest[2]["version"], same, "the same value written again: the newer version");
    let copy = scratch.dir.path().join("latest");
    let latest = scratch.run(&["dump"]).ok().stdout;
    run_in(&copy, &["load"], Some(&latest)).ok();
    assert_eq!(
        run_in(&copy, &["--json", "scan"], None).ok().stdout,
        scratch.run(&["--json", "scan"]).ok().stdout
    );
}

/// `changes --json` prints what `load` reads (with an extra `time`): a window of one
/// database's history loads into another.
#[test]
fn changes_json_loads() {
    let scratch = Scratch::new();
    scratch.put("a", "1");
    let from = scratch.put("b", "caf\\xc3\\xa9");
    scratch.put("c\\xff", "\\xff");
    scratch.del("a");
    let changes = scratch.run(&["--json", "changes", "--from", &from.to_string()]).ok().stdout;
    let lines: Vec<Json> =
        changes.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(lines[0]["value"], "café", "UTF-8 as a JSON string, so jq reads it");
    assert_eq!(lines[1]["key"]["base64"], "Y/8=");
    let copy = scratch.dir.path().join("copy");
    let loaded = run_in(&copy, &["--json", "load"], Some(&changes)).ok().json();
    assert_eq!(loaded["loaded"], 3);
    let again = run_in(&copy, &["--json", "changes"], None).ok().stdout;
    assert_eq!(again, changes);
}

#[test]
fn load_refuses_older_versions_and_bad_lines() {
    let scratch = Scratch::new();
    scratch.put("a", "1");
    let dump = scratch.run(&["dump", "--all-versions"]).ok().stdout;
    scratch.put("a", "2");
    let run = run_in(&scratch.db(), &["load"], Some(&dump)).fails(3);
    assert!(run.stderr.contains("empty database"), "{}", run.stderr);
    let new = scratch.dir.path().join("new");
    let bad = "{\"key\": {\"base64\": \"!\"}, \"version\": 1, \"value\": \"x\"}\n";
    let run = run_in(&new, &["load"], Some(bad)).fails(2);
    assert!(run.stderr.contains("stdin:1") && run.stderr.contains("base64"), "{}", run.stderr);
    assert!(run.stderr.contains("nothing was loaded"), "{}", run.stderr);
    let unordered = "{\"key\":\"a\",\"version\":5,\"value\":\"x\"}\n\
                     {\"key\":\"b\",\"version\":5,\"value\":\"y\"}\n\
                     {\"key\":\"c\",\"version\":6,\"value\":\"z\"}\n\
                     {\"key\":\"a\",\"version\":4,\"value\":\"z\"}\n";
    let run = run_in(&new, &["load"], Some(unordered)).fails(2);
    assert!(
        run.stderr.contains("stdin:4") && run.stderr.contains("oldest first"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("2 writes at 1 versions up to 5"), "{}", run.stderr);
    assert_eq!(run_in(&new, &["get", "b"], None).ok().stdout, "y\n", "version 5 is whole");
    run_in(&new, &["get", "c"], None).fails(1);
    for header in [
        "{\"zverse_dump\":2,\"all_versions\":true,\"snapshot_version\":9}",
        "{\"zverse_dump\":1,\"all_versions\":true,\"snapshot_version\":9,\"parts\":3}",
    ] {
        let run = run_in(&scratch.dir.path().join("h"), &["load"], Some(header)).fails(2);
        assert!(run.stderr.contains("newer zverse"), "{}", run.stderr);
    }
}

/// A version with many keys loads as one batch at its version; the next version after it.
#[test]
fn load_commits_a_large_version_whole() {
    let scratch = Scratch::new();
    let mut dump =
        String::from("{\"zverse_dump\":1,\"all_versions\":true,\"snapshot_version\":8}\n");
    for index in 0..3_000 {
        let line = serde_json::json!({ "key": format!("k{index:05}"), "version": 7, "value": "v" });
        dump.push_str(&line.to_string());
        dump.push('\n');
    }
    dump.push_str("{\"key\":\"k00000\",\"version\":8,\"value\":null}\n");
    let loaded = run_in(&scratch.db(), &["--json", "load"], Some(&dump)).ok().json();
    assert_eq!((loaded["loaded"].as_u64(), loaded["versions"].as_u64()), (Some(3_001), Some(2)));
    let at_seven = scratch.run(&["scan", "--at", "7"]).ok().stdout;
    assert_eq!(at_seven.lines().count(), 3_000);
    assert_eq!(scratch.run(&["scan", "--at", "6"]).ok().stdout, "");
    let history = scratch.run(&["--json", "history", "k00000"]).ok().json_lines();
    let versions: Vec<u64> = history.iter().map(|line| line["version"].as_u64().unwrap()).collect();
    assert_eq!(versions, [8, 7]);
}

/// Issue 11 item 9: version 0, a foreign MANIFEST and a missing one used to give misleading
/// messages ("already holds versions up to 0", "corruption ... run check", "not a ZVerse
/// database").
#[test]
fn load_says_what_is_wrong_with_version_zero_and_a_foreign_or_missing_manifest() {
    let scratch = Scratch::new();
    let line = "{\"key\":\"a\",\"version\":0,\"value\":\"x\"}\n";
    let run = run_in(&scratch.db(), &["load"], Some(line)).fails(2);
    assert!(run.stderr.contains("version 0 is not a version"), "{}", run.stderr);

    let foreign = scratch.dir.path().join("perl");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("MANIFEST"), "lib/Foo.pm\n").unwrap();
    let line = "{\"key\":\"a\",\"version\":5,\"value\":\"x\"}\n";
    for args in [&["load"][..], &["get", "a"], &["check"]] {
        let run = run_in(&foreign, args, Some(line)).fails(3);
        assert!(run.stderr.contains("is not a ZVerse manifest"), "{}", run.stderr);
        assert!(!run.stderr.contains("check"), "no advice to run check: {}", run.stderr);
    }
    assert_eq!(std::fs::read_to_string(foreign.join("MANIFEST")).unwrap(), "lib/Foo.pm\n");

    scratch.put("a", "1");
    std::fs::remove_file(scratch.db().join("MANIFEST")).unwrap();
    for args in [&["load"][..], &["get", "a"], &["put", "b", "2"]] {
        let run = run_in(&scratch.db(), args, Some(line)).fails(4);
        assert!(run.stderr.contains("no MANIFEST"), "{}", run.stderr);
        assert!(run.stderr.contains(".log"), "names a file: {}", run.stderr);
    }
}

/// Values from a file or stdin (200 KB on the command line fails with "Argument list too
/// long"), written back byte for byte by `get --raw`.
#[test]
fn put_value_file_and_get_raw_round_trip_any_bytes() {
    let scratch = Scratch::new();
    let value: Vec<u8> = (0..200_000_u32).map(|index| (index * 7 % 256) as u8).collect();
    let path = scratch.dir.path().join("value.bin");
    std::fs::write(&path, &value).unwrap();
    scratch.run(&["put", "big", "--value-file", path.to_str().unwrap()]).ok();
    let mut get = command_in(&scratch.db(), &["get", "big", "--raw"]);
    assert_eq!(get.output().unwrap().stdout, value);
    let mut put = command_in(&scratch.db(), &["put", "piped", "--value-file", "-"]);
    put.write_stdin(b"\xff\x00 from stdin\n".to_vec());
    assert!(put.output().unwrap().status.success());
    let mut get = command_in(&scratch.db(), &["get", "piped", "--raw"]);
    assert_eq!(get.output().unwrap().stdout, b"\xff\x00 from stdin\n");
    scratch.run(&["--json", "get", "piped", "--raw"]).fails(2);
    assert_eq!(scratch.run(&["put", "k"]).code, 2, "clap: VALUE or --value-file");
    assert_eq!(scratch.run(&["put", "k", "v", "--value-file", "-"]).code, 2, "not both");
    let missing = scratch.dir.path().join("missing");
    let run = scratch.run(&["put", "k", "--value-file", missing.to_str().unwrap()]).fails(2);
    assert!(run.stderr.contains("cannot read the value"), "{}", run.stderr);
}

/// Completions and the man page come from the clap definitions, so they know every command.
#[test]
fn completions_and_man_page_name_every_command() {
    let scratch = Scratch::new();
    let commands = ["put", "get", "scan", "history", "changes", "dump", "load", "bench", "man"];
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = scratch.run(&["completions", shell]).ok().stdout;
        for command in commands {
            assert!(script.contains(command), "{shell} completes {command}");
        }
        assert!(script.contains("value-file"), "{shell} completes flags");
    }
    assert!(scratch.run(&["completions", "bash"]).ok().stdout.contains("complete -F _zverse"));
    let man = scratch.run(&["man"]).ok().stdout;
    assert!(man.starts_with(".ie") && man.contains(".TH zverse 1"), "{man}");
    for command in commands {
        assert!(man.contains(command), "the man page names {command}");
    }
    assert_eq!(scratch.run(&["completions", "tcsh"]).code, 2);
    assert!(!scratch.db().exists(), "neither touches a database");
}

#[test]
fn json_output_keeps_utf8_as_is_and_other_bytes_as_base64() {
    let scratch = Scratch::new();
    scratch.put("café", "naïve");
    scratch.put("k\\xff", "\\x00\\xfe");
    let get = scratch.run(&["--json", "get", "café"]).ok().json();
    assert_eq!((get["key"].as_str(), get["value"].as_str()), (Some("café"), Some("naïve")));
    let get = scratch.run(&["--json", "get", "k\\xff"]).ok().json();
    assert_eq!(get["key"], serde_json::json!({ "base64": "a/8=" }));
    assert_eq!(get["value"], serde_json::json!({ "base64": "AP4=" }));
    let scan = scratch.run(&["--json", "scan"]).ok().json_lines();
    assert_eq!(scan[0]["key"], "café");
    let history = scratch.run(&["--json", "history", "café"]).ok().json_lines();
    assert_eq!(history[0]["value"], "naïve");
}

#[test]
fn missing_locked_and_foreign_directories_fail_clearly() {
    let scratch = Scratch::new();
    let run = scratch.run(&["get", "a"]).fails(3);
    assert!(run.stderr.contains("no database at"), "{}", run.stderr);
    scratch.run(&["stat"]).fails(3);
    assert!(!scratch.db().exists(), "a read does not create the database");

    scratch.put("a", "1");
    let db = zverse::Db::open(scratch.db(), zverse::Options::default()).unwrap();
    let run = scratch.run(&["put", "b", "2"]).fails(3);
    assert!(run.stderr.contains("in use by another process"), "{}", run.stderr);
    // Reads open read-only: they work beside the writer, as of their open.
    db.put(b"c", b"3").unwrap();
    let run = scratch.run(&["get", "c"]).ok();
    assert_eq!(run.stdout.trim(), "3", "{}", run.stderr);
    drop(db);

    let foreign = scratch.dir.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    for args in [&["put", "a", "1"][..], &["get", "a"]] {
        let run = run_in(&foreign, args, None).fails(3);
        assert!(run.stderr.contains("not a ZVerse database"), "{}", run.stderr);
    }
    let run = run_in(&foreign, &["bench", "--keys", "10"], None).fails(3);
    assert!(run.stderr.contains("not created by `zverse bench`"), "{}", run.stderr);
}

#[test]
fn bench_runs_every_query_kind_and_refuses_a_used_database() {
    let scratch = Scratch::new();
    let args = ["--json", "bench", "--keys", "300", "--versions", "2", "--queries", "20"];
    let report = scratch.run(&args).ok().json();
    let operations: Vec<&str> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["operation"].as_str().unwrap())
        .collect();
    assert_eq!(
        operations,
        ["fill", "read latest", "read as-of", "range 100", "history", "changes"]
    );
    for row in report["results"].as_array().unwrap() {
        assert!(row["ops_per_sec"].as_f64().unwrap() > 0.0);
        assert!(row["p99_ns"].as_u64().unwrap() >= row["p50_ns"].as_u64().unwrap());
    }
    assert_eq!(report["results"][0]["ops"], 600);
    assert!(scratch.db().join(BENCH_MARKER).is_file(), "bench marks its directory");
    let run = scratch.run(&["bench", "--keys", "300"]).fails(2);
    assert!(run.stderr.contains("--fresh"), "{}", run.stderr);
    let table = scratch.run(&["bench", "--keys", "300", "--queries", "5", "--fresh"]).ok().stdout;
    assert!(table.contains("p99") && table.contains("changes"), "{table}");
    assert!(scratch.db().join(BENCH_MARKER).is_file(), "still marked after --fresh");
    scratch.run(&["get", "user:0000000001"]).ok();
}

/// The marker `zverse bench` leaves in a directory it created.
const BENCH_MARKER: &str = "ZVERSE-BENCH";

/// Every path under `dir` with its contents (directories as `/`), sorted.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.push((path.clone(), b"/".to_vec()));
            found.extend(tree(&path));
        } else {
            found.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    found.sort();
    found
}

/// Issue 11 item 1: a Perl/CPAN checkout has a `MANIFEST`; `bench --fresh` used to take it
/// for a database and delete `lib/` and `.git/`.
#[test]
fn bench_fresh_never_deletes_a_checkout_with_a_foreign_manifest() {
    let scratch = Scratch::new();
    let checkout = scratch.dir.path().join("Foo-Bar-1.0");
    std::fs::create_dir_all(checkout.join("lib/Foo")).unwrap();
    std::fs::create_dir_all(checkout.join(".git")).unwrap();
    std::fs::write(checkout.join("MANIFEST"), "lib/Foo/Bar.pm\nMakefile.PL\n").unwrap();
    std::fs::write(checkout.join("lib/Foo/Bar.pm"), "package Foo::Bar; 1;\n").unwrap();
    std::fs::write(checkout.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    let before = tree(&checkout);
    for args in [&["bench", "--keys", "10", "--fresh"][..], &["bench", "--keys", "10"]] {
        let run = run_in(&checkout, args, None).fails(3);
        assert!(run.stderr.contains("not created by `zverse bench`"), "{}", run.stderr);
    }
    assert_eq!(tree(&checkout), before, "not one byte changed");
}

/// A real database (not bench's), with a file of the user's in it: bench refuses it, `--fresh`
/// or not; in its own directory `--fresh` still refuses a file the engine did not write.
#[test]
fn bench_fresh_never_deletes_a_database_it_did_not_create_or_a_users_file() {
    let scratch = Scratch::new();
    scratch.put("precious", "data");
    std::fs::write(scratch.db().join("notes.txt"), "mine").unwrap();
    let run = scratch.run(&["bench", "--keys", "10", "--fresh"]).fails(3);
    assert!(run.stderr.contains("not created by `zverse bench`"), "{}", run.stderr);
    std::fs::remove_file(scratch.db().join("notes.txt")).unwrap();
    scratch.run(&["bench", "--keys", "10", "--fresh"]).fails(3);
    assert_eq!(scratch.run(&["get", "precious"]).ok().stdout, "data\n");

    let own = scratch.dir.path().join("bench");
    run_in(&own, &["bench", "--keys", "20", "--queries", "2"], None).ok();
    std::fs::write(own.join("results.txt"), "my notes").unwrap();
    std::fs::create_dir(own.join("lib")).unwrap();
    let before = tree(&own);
    let run = run_in(&own, &["bench", "--keys", "20", "--fresh"], None).fails(3);
    assert!(run.stderr.contains("nothing was deleted"), "{}", run.stderr);
    assert_eq!(tree(&own), before, "not one byte changed");
}

/// The README's first command, run where `./zverse-data` holds the database every other
/// command uses: bench works in `./zverse-bench` and leaves `./zverse-data` alone.
#[test]
fn bench_by_default_never_touches_zverse_data() {
    let scratch = Scratch::new();
    let cwd = scratch.dir.path();
    run_in(&cwd.join("zverse-data"), &["put", "precious", "data"], None).ok();
    let before = tree(&cwd.join("zverse-data"));
    let bench = || {
        let mut command = Command::cargo_bin("zverse").expect("the zverse binary");
        command.env_remove("ZVERSE_DB").current_dir(cwd);
        command.args(["bench", "--fresh", "--keys", "20", "--queries", "2"]);
        finish(&mut command)
    };
    bench().ok();
    bench().ok();
    assert_eq!(tree(&cwd.join("zverse-data")), before, "not one byte changed");
    assert!(cwd.join("zverse-bench").join(BENCH_MARKER).is_file());
}
