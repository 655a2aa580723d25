//! Counting a process's sync system calls from an `strace -f -o FILE` trace, between marker
//! calls the process makes around the work to count (the peers harness's Sync audit).
//!
//! A marker is an `openat` of a path under [`MARKER_DIR`] that does not exist
//! (`MARKER_DIR/begin/N`, `MARKER_DIR/end/N`, N a label such as a writer count), so the trace
//! needs only `openat` besides the calls counted, and the markers cannot be confused with an
//! engine's own files.

use std::collections::BTreeMap;

/// The system calls that sync data to the device. `sync_file_range` is counted too, but is not
/// one of them: it starts write-back and waits for no device cache.
pub const SYNC_CALLS: [&str; 4] = ["fsync", "fdatasync", "msync", "syncfs"];

/// Where the marker paths live (a directory that does not exist).
pub const MARKER_DIR: &str = "/zverse-sync-audit";

/// The `-e` argument that traces what [`parse_trace`] needs.
#[must_use]
pub fn trace_filter() -> String {
    format!("trace={},sync_file_range,openat", SYNC_CALLS.join(","))
}

/// Makes a marker call: an `openat` of a path that never exists (the error is the point).
pub fn marker(phase: Phase, label: usize) {
    let phase = match phase {
        Phase::Begin => "begin",
        Phase::End => "end",
    };
    let _ = std::fs::File::open(format!("{MARKER_DIR}/{phase}/{label}"));
}

/// Which side of the counted work a marker is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Before the work.
    Begin,
    /// After it.
    End,
}

/// System call name -> calls, between one pair of markers.
pub type CallCounts = BTreeMap<String, u64>;

/// Why a trace could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TraceError {
    /// A marker line whose label is not a number.
    BadLabel {
        /// The trace line.
        line: String,
    },
    /// An end without its begin, or a begin inside another pair.
    Unpaired {
        /// The trace line.
        line: String,
    },
    /// The trace ended between a begin and its end.
    Unterminated {
        /// The label of the begin.
        label: usize,
    },
}

impl std::fmt::Display for TraceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TraceError::BadLabel { line } => write!(f, "a marker with a bad label: {line}"),
            TraceError::Unpaired { line } => write!(f, "an unpaired marker: {line}"),
            TraceError::Unterminated { label } => write!(f, "the trace ends inside {label}"),
        }
    }
}

impl std::error::Error for TraceError {}

/// The calls each marker pair encloses, by label. Calls outside every pair, the markers
/// themselves and every other `openat` are not counted; a call that strace shows as
/// `<unfinished ...>` and later `resumed` counts once, where it started.
///
/// # Errors
///
/// [`TraceError`] when the markers do not pair up.
pub fn parse_trace(text: &str) -> Result<BTreeMap<usize, CallCounts>, TraceError> {
    let marker_prefix = format!("\"{MARKER_DIR}/");
    let mut fills = BTreeMap::new();
    let mut open: Option<(usize, CallCounts)> = None;
    for line in text.lines() {
        if let Some((_, rest)) = line.split_once(&marker_prefix) {
            let (phase, label) = parse_marker(rest, line)?;
            match (phase, open.take()) {
                (Phase::Begin, None) => open = Some((label, CallCounts::new())),
                (Phase::End, Some((begun, counts))) if begun == label => {
                    fills.insert(label, counts);
                }
                _ => return Err(TraceError::Unpaired { line: line.to_owned() }),
            }
            continue;
        }
        if let (Some((_, counts)), Some(name)) = (open.as_mut(), call_name(line))
            && name != "openat"
        {
            *counts.entry(name.to_owned()).or_default() += 1;
        }
    }
    match open {
        Some((label, _)) => Err(TraceError::Unterminated { label }),
        None => Ok(fills),
    }
}

/// `begin/16", O_RDONLY...` -> (Begin, 16).
fn parse_marker(rest: &str, line: &str) -> Result<(Phase, usize), TraceError> {
    let bad = || TraceError::BadLabel { line: line.to_owned() };
    let (phase, label) = rest.split_once('/').ok_or_else(bad)?;
    let label = label.split('"').next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
    match phase {
        "begin" => Ok((Phase::Begin, label)),
        "end" => Ok((Phase::End, label)),
        _ => Err(bad()),
    }
}

/// The system call a trace line starts (`PID name(...` with `-o`, `[pid PID] name(...` on a
/// terminal), or `None` for a resumed call, a signal or an exit line.
fn call_name(line: &str) -> Option<&str> {
    let call = match line.strip_prefix("[pid ") {
        Some(rest) => rest.split_once("] ")?.1,
        None => match line.split_once(' ') {
            // strace pads the pid to a width: `123   name(`.
            Some((pid, rest)) if pid.bytes().all(|byte| byte.is_ascii_digit()) => rest.trim_start(),
            _ => line,
        },
    };
    let name = call.split_once('(')?.0;
    let is_name =
        !name.is_empty() && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_');
    is_name.then_some(name)
}

/// The syncs among `counts`: [`SYNC_CALLS`] only.
#[must_use]
pub fn sync_count(counts: &CallCounts) -> u64 {
    SYNC_CALLS.iter().filter_map(|name| counts.get(*name)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "\
100 fdatasync(3) = 0
100 openat(AT_FDCWD, \"/zverse-sync-audit/begin/4\", O_RDONLY|O_CLOEXEC) = -1 ENOENT
101 fdatasync(5 <unfinished ...>
102 fsync(6) = 0
9667  fdatasync(4)                      = 0
101 <... fdatasync resumed>) = 0
[pid 103] sync_file_range(7, 0, 4096, SYNC_FILE_RANGE_WRITE) = 0
102 openat(AT_FDCWD, \"/tmp/x/000001.log\", O_RDWR|O_CLOEXEC) = 9
101 --- SIGCHLD {si_signo=SIGCHLD} ---
100 openat(AT_FDCWD, \"/zverse-sync-audit/end/4\", O_RDONLY|O_CLOEXEC) = -1 ENOENT
100 fdatasync(3) = 0
100 +++ exited with 0 +++
";

    #[test]
    fn calls_are_counted_between_markers_only_and_resumed_calls_once() {
        let fills = parse_trace(TRACE).expect("parses");
        let counts = &fills[&4];
        assert_eq!(counts.get("fdatasync"), Some(&2), "one of them after a padded pid");
        assert_eq!(counts.get("fsync"), Some(&1));
        assert_eq!(counts.get("sync_file_range"), Some(&1));
        assert_eq!(counts.get("openat"), None);
        assert_eq!(sync_count(counts), 3, "sync_file_range is no sync");
    }

    #[test]
    fn unpaired_and_unterminated_markers_are_errors() {
        let end = "1 openat(AT_FDCWD, \"/zverse-sync-audit/end/1\", O_RDONLY) = -1 ENOENT\n";
        assert!(matches!(parse_trace(end), Err(TraceError::Unpaired { .. })));
        let begin = end.replace("end/1", "begin/1");
        assert_eq!(parse_trace(&begin), Err(TraceError::Unterminated { label: 1 }));
        let bad = end.replace("end/1", "end/x");
        assert!(matches!(parse_trace(&bad), Err(TraceError::BadLabel { .. })));
    }

    #[test]
    fn a_real_trace_of_sync_calls_is_counted() {
        // Only where strace runs: `status()` fails when it is not installed.
        let file = std::env::temp_dir().join(format!("zverse-audit-{}", std::process::id()));
        let script = format!(
            "echo x >{f}; cat {m}/begin/7 2>/dev/null; sync {f}; sync {f}; \
             cat {m}/end/7 2>/dev/null; true",
            f = file.display(),
            m = MARKER_DIR
        );
        let trace = file.with_extension("trace");
        let status = std::process::Command::new("strace")
            .args(["-f", "-qq", "-e", &trace_filter(), "-o"])
            .arg(&trace)
            .args(["sh", "-c", &script])
            .status();
        let _ = std::fs::remove_file(&file);
        let Ok(status) = status else { return };
        assert!(status.success(), "strace sh failed: {status}");
        let text = std::fs::read_to_string(&trace).expect("trace written");
        let _ = std::fs::remove_file(&trace);
        let fills = parse_trace(&text).expect("parses");
        assert_eq!(sync_count(&fills[&7]), 2, "two `sync FILE` calls, each one fsync: {text}");
    }
}
