//! What both CLI test files share: running the `zverse` binary and reading what it printed.
#![allow(dead_code, reason = "each test file uses a different part")]

use std::path::Path;

use assert_cmd::Command;
use serde_json::Value as Json;

/// What the tool says on stderr when it falls back from io_uring to std.
pub const FALLBACK_SAID: &str = "io_uring is unavailable";

/// What one run printed and how it exited.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "expected success; stderr: {}", self.stderr);
        self
    }

    pub fn fails(self, code: i32) -> Run {
        assert_eq!(self.code, code, "stdout: {} stderr: {}", self.stdout, self.stderr);
        // Where the kernel refuses io_uring, the fallback is said once before the error.
        let lines = self.stderr.lines().filter(|line| !line.contains(FALLBACK_SAID));
        assert_eq!(lines.count(), 1, "one line on stderr: {}", self.stderr);
        self
    }

    pub fn json(&self) -> Json {
        serde_json::from_str(self.stdout.trim()).expect("stdout is one JSON object")
    }

    pub fn json_lines(&self) -> Vec<Json> {
        self.stdout.lines().map(|line| serde_json::from_str(line).expect("a JSON line")).collect()
    }
}

/// Runs `zverse --db DB ARGS`, with `stdin` if given.
pub fn run_in(db: &Path, args: &[&str], stdin: Option<&str>) -> Run {
    let mut command = command_in(db, args);
    if let Some(stdin) = stdin {
        command.write_stdin(stdin.to_owned());
    }
    finish(&mut command)
}

pub fn command_in(db: &Path, args: &[&str]) -> Command {
    let mut command = Command::cargo_bin("zverse").expect("the zverse binary");
    command.env_remove("ZVERSE_DB").env_remove(zverse_linux::IO_URING_ENV);
    command.arg("--db").arg(db).args(args);
    command
}

pub fn finish(command: &mut Command) -> Run {
    let output = command.output().expect("zverse runs");
    Run {
        code: output.status.code().expect("an exit code"),
        stdout: String::from_utf8(output.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("utf-8 stderr"),
    }
}
