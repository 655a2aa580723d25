//! The reading and writing commands: put, get, del, scan, history, changes, stat, check,
//! flush, compact. Each opens the database, does one thing, and prints text or JSON.

use std::io::{BufWriter, Read, Write};
use std::ops::Bound;
use std::path::{Path, PathBuf};

use serde_json::json;
use zverse::{Db, LocalityStats, Options, SegmentResidency, Version};

use crate::escape::{escape, unescape};
use crate::fail::{Fail, no_database};
use crate::oldest_first::{self, BUDGET};
use crate::{dump, json, timefmt};

/// What every command gets from the global flags.
#[derive(Debug)]
pub struct Context {
    pub db: PathBuf,
    pub json: bool,
}

/// A key range with owned bounds.
pub type KeyBounds = (Bound<Vec<u8>>, Bound<Vec<u8>>);

impl Context {
    /// Opens the database for a read, read-only (no lock, nothing written): it must exist.
    pub fn open_existing(&self) -> Result<Db, Fail> {
        self.open_existing_with(Options::default().read_only(true))
    }

    /// Opens the database for maintenance (flush, compact): it must exist already.
    pub fn open_existing_for_write(&self) -> Result<Db, Fail> {
        self.open_existing_with(Options::default())
    }

    fn open_existing_with(&self, options: Options) -> Result<Db, Fail> {
        let is_empty_dir = std::fs::read_dir(&self.db).map(|mut entries| entries.next().is_none());
        match is_empty_dir {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(Fail::database(no_database(&self.db.display())));
            }
            Err(error) => {
                return Err(Fail::database(format!("cannot read {}: {error}", self.db.display())));
            }
            Ok(true) => return Err(Fail::database(no_database(&self.db.display()))),
            Ok(false) => {}
        }
        self.open(options.create_if_missing(false))
    }

    /// Opens the database for a write, creating it if missing.
    pub fn open_or_create(&self) -> Result<Db, Fail> {
        self.open(Options::default())
    }

    /// Opens the database for a write with `options`, creating it if missing.
    pub fn open_or_create_with(&self, options: Options) -> Result<Db, Fail> {
        self.open(options)
    }

    /// Opens on io_uring where the kernel allows it, else on the std backend (said once on
    /// stderr; `ZVERSE_IO_URING=off` forces std).
    pub fn open(&self, options: Options) -> Result<Db, Fail> {
        zverse_linux::open(&self.db, options).map_err(|error| self.fail(error))
    }

    /// A database error, with the path and what to do.
    pub fn fail(&self, error: zverse::Error) -> Fail {
        Fail::from_db(&self.db, error)
    }

    /// Closes `db`, reporting a failed final sync.
    pub fn close(&self, db: &Db) -> Result<(), Fail> {
        db.close().map_err(|error| self.fail(error))
    }
}

/// Buffered stdout.
pub fn stdout() -> BufWriter<std::io::StdoutLock<'static>> {
    BufWriter::new(std::io::stdout().lock())
}

/// Parses a key in the escape form.
pub fn parse_key(text: &str) -> Result<Vec<u8>, Fail> {
    unescape(text).map_err(Fail::usage)
}

/// Parses an optional TIME, `default` if absent.
pub fn parse_time(text: Option<&str>, default: Version) -> Result<Version, Fail> {
    text.map_or(Ok(default), |text| timefmt::parse(text).map_err(Fail::usage))
}

/// A version as JSON fields: the raw number and the RFC 3339 time.
fn version_json(version: Version) -> serde_json::Value {
    json!({ "version": version.get(), "time": timefmt::rfc3339(version) })
}

/// Parses a RANGE: `A..B`, `A..=B`, `A..`, `..B` or `..`; refuses an empty or inverted one.
pub fn parse_range(text: &str) -> Result<KeyBounds, Fail> {
    let bad = |why: &str| {
        Fail::usage(format!(
            "bad range {text:?}: {why}; write A..B, A..=B, A.., ..B or .. (a key's own dots as \
             \\x2e)"
        ))
    };
    let split = text.find("..").ok_or_else(|| bad("no `..`"))?;
    let (start_text, rest) = (&text[..split], &text[split + 2..]);
    let (inclusive, end_text) = match rest.strip_prefix('=') {
        Some(end_text) => (true, end_text),
        None => (false, rest),
    };
    if inclusive && end_text.is_empty() {
        return Err(bad("`..=` needs an end key"));
    }
    let start = if start_text.is_empty() {
        Bound::Unbounded
    } else {
        Bound::Included(unescape(start_text).map_err(Fail::usage)?)
    };
    let end = match (end_text.is_empty(), inclusive) {
        (true, _) => Bound::Unbounded,
        (false, true) => Bound::Included(unescape(end_text).map_err(Fail::usage)?),
        (false, false) => Bound::Excluded(unescape(end_text).map_err(Fail::usage)?),
    };
    let empty = match (&start, &end) {
        (Bound::Included(start), Bound::Included(end)) => start > end,
        (Bound::Included(start), Bound::Excluded(end)) => start >= end,
        _ => false,
    };
    if empty {
        return Err(bad("the start key is not before the end key"));
    }
    Ok((start, end))
}

/// Borrows owned bounds as the engine's `RangeBounds<&[u8]>`.
pub fn borrow_bounds(bounds: &KeyBounds) -> (Bound<&[u8]>, Bound<&[u8]>) {
    (bounds.0.as_ref().map(Vec::as_slice), bounds.1.as_ref().map(Vec::as_slice))
}

/// Where `put` takes its value from.
#[derive(Debug)]
pub enum ValueSource<'a> {
    /// The command line, in the escape form.
    Text(&'a str),
    /// A file's bytes as they are; `-` is stdin.
    File(&'a Path),
}

/// The engine's value limit (`zverse_core::limits::VALUE_LEN_MAX`): reading stops one byte
/// past it, and the engine refuses the value with its own error.
const VALUE_BYTES_MAX: u64 = 64 << 20;

impl ValueSource<'_> {
    fn read(&self) -> Result<Vec<u8>, Fail> {
        let path = match self {
            ValueSource::Text(text) => return unescape(text).map_err(Fail::usage),
            ValueSource::File(path) => path,
        };
        let cannot = |error: std::io::Error| {
            Fail::usage(format!("cannot read the value from {}: {error}", path.display()))
        };
        let mut value = Vec::new();
        if path.as_os_str() == "-" {
            let stdin = std::io::stdin().lock();
            stdin.take(VALUE_BYTES_MAX + 1).read_to_end(&mut value).map_err(cannot)?;
        } else {
            let file = std::fs::File::open(path).map_err(cannot)?;
            file.take(VALUE_BYTES_MAX + 1).read_to_end(&mut value).map_err(cannot)?;
        }
        Ok(value)
    }
}

pub fn put(context: &Context, key: &str, value: &ValueSource<'_>) -> Result<(), Fail> {
    let (key, value) = (parse_key(key)?, value.read()?);
    let db = context.open_or_create()?;
    let version = db.put(&key, &value).map_err(|error| context.fail(error))?;
    context.close(&db)?;
    print_version(context, version)
}

pub fn del(context: &Context, key: &str) -> Result<(), Fail> {
    let key = parse_key(key)?;
    let db = context.open_or_create()?;
    let version = db.delete(&key).map_err(|error| context.fail(error))?;
    context.close(&db)?;
    print_version(context, version)
}

fn print_version(context: &Context, version: Version) -> Result<(), Fail> {
    let mut out = stdout();
    if context.json {
        writeln!(out, "{}", version_json(version))?;
    } else {
        writeln!(out, "{}", timefmt::display(version))?;
    }
    out.flush()?;
    Ok(())
}

pub fn get(context: &Context, key_text: &str, at: Option<&str>, raw: bool) -> Result<(), Fail> {
    if raw && context.json {
        return Err(Fail::usage("get --raw writes the bytes alone; leave out --json"));
    }
    let key = parse_key(key_text)?;
    let at = parse_time(at, Version::MAX)?;
    let db = context.open_existing()?;
    // The history (newest first) gives the version along with the value.
    let mut found = None;
    for item in db.history(&key).map_err(|error| context.fail(error))? {
        let (version, value) = item.map_err(|error| context.fail(error))?;
        if version <= at {
            found = Some((version, value));
            break;
        }
    }
    let Some((version, Some(value))) = found else {
        let when = if at == Version::MAX { String::new() } else { format!(" at {}", at.get()) };
        return Err(Fail::not_found(format!("key not found: {key_text}{when}")));
    };
    let mut out = stdout();
    if raw {
        out.write_all(&value)?;
    } else if context.json {
        let mut object = version_json(version);
        object["key"] = json::encode(&key);
        object["value"] = json::encode(&value);
        writeln!(out, "{object}")?;
    } else {
        writeln!(out, "{}", escape(&value))?;
    }
    out.flush()?;
    Ok(())
}

/// The arguments of `scan`.
#[derive(Debug)]
pub struct ScanArgs<'a> {
    pub range: Option<&'a str>,
    pub prefix: Option<&'a str>,
    pub at: Option<&'a str>,
    pub limit: Option<u64>,
}

pub fn scan(context: &Context, args: &ScanArgs<'_>) -> Result<(), Fail> {
    let bounds = match (args.range, args.prefix) {
        (_, Some(prefix)) => zverse::prefix_bounds(&parse_key(prefix)?),
        (Some(range), None) => parse_range(range)?,
        (None, None) => (Bound::Unbounded, Bound::Unbounded),
    };
    let at = parse_time(args.at, Version::MAX)?;
    let db = context.open_existing()?;
    let range = db.range_at(borrow_bounds(&bounds), at).map_err(|error| context.fail(error))?;
    let mut out = stdout();
    for item in range.take(usize::try_from(args.limit.unwrap_or(u64::MAX)).unwrap_or(usize::MAX)) {
        let (key, value) = item.map_err(|error| context.fail(error))?;
        if context.json {
            writeln!(
                out,
                "{}",
                json!({ "key": json::encode(&key), "value": json::encode(&value) })
            )?;
        } else {
            writeln!(out, "{}\t{}", escape(&key), escape(&value))?;
        }
    }
    out.flush()?;
    Ok(())
}

pub fn history(context: &Context, key_text: &str) -> Result<(), Fail> {
    let key = parse_key(key_text)?;
    let db = context.open_existing()?;
    let mut out = stdout();
    let mut count: u64 = 0;
    for item in db.history(&key).map_err(|error| context.fail(error))? {
        let (version, value) = item.map_err(|error| context.fail(error))?;
        count += 1;
        if context.json {
            let mut object = version_json(version);
            object["value"] = value.map_or(serde_json::Value::Null, |value| json::encode(&value));
            writeln!(out, "{object}")?;
        } else {
            let value = value.map_or_else(|| "(deleted)".to_owned(), |value| escape(&value));
            writeln!(out, "{}\t{value}", timefmt::display(version))?;
        }
    }
    out.flush()?;
    if count == 0 {
        return Err(Fail::not_found(format!("key not found: {key_text} has no versions")));
    }
    Ok(())
}

pub fn changes(
    context: &Context,
    keys: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(), Fail> {
    let bounds = keys.map_or(Ok((Bound::Unbounded, Bound::Unbounded)), parse_range)?;
    let from = parse_time(from, Version::ZERO)?;
    let to = parse_time(to, Version::MAX)?;
    if from > to {
        return Err(Fail::usage(format!(
            "bad window: --from {} is after --to {}; swap them",
            from.get(),
            to.get()
        )));
    }
    let db = context.open_existing()?;
    let snapshot = db.snapshot();
    let mut out = stdout();
    // The engine promises no order; a shell user reads a log, oldest first.
    oldest_first::for_each(context, &snapshot, &bounds, (from, to), BUDGET, |change| {
        if context.json {
            dump::write_line(&mut out, &dump::change_line(&change, true))?;
        } else {
            let value = change.value.as_deref().map_or_else(|| "(deleted)".to_owned(), escape);
            let (version, key) = (timefmt::display(change.version), escape(&change.key));
            writeln!(out, "{version}\t{key}\t{value}")?;
        }
        Ok(())
    })?;
    out.flush()?;
    Ok(())
}

pub fn stat(context: &Context) -> Result<(), Fail> {
    let db = context.open_existing()?;
    let stats = db.stats();
    let residency = db.segment_residency();
    let mut out = stdout();
    if context.json {
        let object = json!({
            "path": context.db.display().to_string(),
            "io_backend": stats.io_backend,
            "version_visible": version_json(stats.version_visible),
            "memtable_count": stats.memtable_count,
            "memtable_versions": stats.memtable_versions,
            "memtable_bytes": stats.memtable_bytes,
            "segment_count": stats.segment_count,
            "segment_versions": stats.segment_versions,
            "segment_bytes": stats.segment_bytes,
            "log_bytes": stats.log_bytes,
            "log_count": stats.log_count,
            "file_count": stats.file_count,
            "horizon": version_json(stats.horizon),
            "versions": stats.versions,
            "keys_upper_bound": stats.keys_upper_bound,
            "payload_bytes": stats.payload_bytes,
            "space_amplification": stats.space_amplification,
            "advisor": advisor_json(&stats.locality),
            "segment_pages": residency.map(|r| r.pages_total),
            "segment_pages_resident": residency.map(|r| r.pages_resident),
        });
        writeln!(out, "{object}")?;
    } else {
        let rows = [
            ("database", context.db.display().to_string()),
            ("io backend", stats.io_backend.to_owned()),
            ("newest version", timefmt::display(stats.version_visible)),
            ("versions", stats.versions.to_string()),
            ("keys (upper bound)", stats.keys_upper_bound.to_string()),
            (
                "hot tier",
                format!(
                    "{} memtables, {} versions, {}",
                    stats.memtable_count,
                    stats.memtable_versions,
                    bytes(stats.memtable_bytes)
                ),
            ),
            (
                "segments",
                format!(
                    "{} segments, {} versions, {}",
                    stats.segment_count,
                    stats.segment_versions,
                    bytes(stats.segment_bytes)
                ),
            ),
            ("log", format!("{} logs, active {}", stats.log_count, bytes(stats.log_bytes))),
            ("files", stats.file_count.to_string()),
            ("retention horizon", timefmt::display(stats.horizon)),
            ("stored keys+values", bytes(stats.payload_bytes)),
            ("space amplification", format!("{:.2}", stats.space_amplification)),
            ("segments in memory", residency_text(residency)),
        ];
        for (name, value) in rows.into_iter().chain(advisor_rows(&stats.locality)) {
            writeln!(out, "{name:<21}{value}")?;
        }
    }
    out.flush()?;
    context.close(&db)
}

/// The locality advisor's counters as JSON (since this process opened the database).
fn advisor_json(locality: &LocalityStats) -> serde_json::Value {
    json!({
        "enabled": locality.enabled,
        "advice_calls": locality.advice_calls,
        "advice_errors": locality.advice_errors,
        "pages_advised": locality.pages_advised,
        "pages_prefetched": locality.pages_prefetched,
        "prefetch_pages_resident": locality.prefetch_pages_resident,
        "prefetch_pages_missed": locality.prefetch_pages_missed,
        "prefetch_accuracy": locality.prefetch_accuracy,
        "scan_queries": locality.scan_queries,
        "scan_pages_touched": locality.scan_pages_touched,
        "segments_random": locality.segments_random,
        "segments_cold": locality.segments_cold,
    })
}

/// The locality advisor's rows of `stat`: its state, then its counters since this process
/// opened the database (one `stat` reads nothing, so they show what the open itself did).
fn advisor_rows(locality: &LocalityStats) -> [(&'static str, String); 4] {
    let state = if locality.enabled { "on" } else { "off" };
    let measured = locality.prefetch_pages_resident + locality.prefetch_pages_missed;
    [
        ("advisor", format!("{state} (counters since this process opened the database)")),
        (
            "advice",
            format!(
                "{} calls, {} pages advised, {} prefetched",
                locality.advice_calls, locality.pages_advised, locality.pages_prefetched
            ),
        ),
        (
            "prefetch accuracy",
            format!(
                "{:.1}% of {measured} measured pages resident when reached",
                locality.prefetch_accuracy * 100.0
            ),
        ),
        (
            "scan pages touched",
            format!("{} over {} queries", locality.scan_pages_touched, locality.scan_queries),
        ),
    ]
}

/// Pages of the segments in memory, for a human.
#[allow(clippy::cast_precision_loss, reason = "a percentage printed with one decimal")]
fn residency_text(residency: Option<SegmentResidency>) -> String {
    match residency {
        None => "unknown".to_owned(),
        Some(r) if r.pages_total == 0 => "no segments".to_owned(),
        Some(r) => format!(
            "{} of {} pages ({:.1}%)",
            r.pages_resident,
            r.pages_total,
            r.pages_resident as f64 * 100.0 / r.pages_total as f64
        ),
    }
}

/// `bytes` for a human: B, KiB, MiB or GiB.
#[allow(clippy::cast_precision_loss, reason = "a size printed with one decimal")]
pub fn bytes(bytes: u64) -> String {
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{:.1} KiB", bytes as f64 / 1024.0),
        1_048_576..1_073_741_824 => format!("{:.1} MiB", bytes as f64 / 1_048_576.0),
        _ => format!("{:.1} GiB", bytes as f64 / 1_073_741_824.0),
    }
}

pub fn check(context: &Context) -> Result<(), Fail> {
    // A file that fails at open (manifest, segment footer, log record) is corruption too.
    let report = context.open_existing().and_then(|db| {
        let report = db.check().map_err(|error| context.fail(error));
        context.close(&db)?;
        report
    });
    let mut out = stdout();
    match report {
        Ok(report) => {
            if context.json {
                let object = json!({
                    "ok": true,
                    "segment_count": report.segment_count,
                    "block_count": report.block_count,
                    "entry_count": report.entry_count,
                    "segment_bytes": report.segment_bytes,
                    "memtable_versions": report.memtable_versions,
                });
                writeln!(out, "{object}")?;
            } else {
                writeln!(
                    out,
                    "ok: {} segments, {} blocks, {} entries, {} verified; {} versions in the log \
                     verified on replay",
                    report.segment_count,
                    report.block_count,
                    report.entry_count,
                    bytes(report.segment_bytes),
                    report.memtable_versions
                )?;
            }
            out.flush()?;
            Ok(())
        }
        Err(mut fail) if fail.exit == crate::fail::Exit::Corruption => {
            // The hint to run `check` is for the other commands.
            fail.message = fail.message.split("; run `zverse").next().unwrap_or_default().into();
            if context.json {
                writeln!(out, "{}", json!({ "ok": false, "error": fail.message }))?;
                out.flush()?;
            }
            Err(fail)
        }
        Err(fail) => Err(fail),
    }
}

/// The maintenance commands.
#[derive(Clone, Copy, Debug)]
pub enum Maintenance {
    Flush,
    Compact,
}

pub fn maintain(context: &Context, what: Maintenance) -> Result<(), Fail> {
    let db = context.open_existing_for_write()?;
    let result = match what {
        Maintenance::Flush => db.flush(),
        Maintenance::Compact => db.compact(),
    };
    result.map_err(|error| context.fail(error))?;
    let stats = db.stats();
    context.close(&db)?;
    let mut out = stdout();
    if context.json {
        let object = json!({
            "ok": true,
            "segment_count": stats.segment_count,
            "segment_bytes": stats.segment_bytes,
            "versions": stats.versions,
        });
        writeln!(out, "{object}")?;
    } else {
        let done = match what {
            Maintenance::Flush => "flushed",
            Maintenance::Compact => "compacted",
        };
        writeln!(
            out,
            "{done}: {} segments, {}, {} versions",
            stats.segment_count,
            bytes(stats.segment_bytes),
            stats.versions
        )?;
    }
    out.flush()?;
    Ok(())
}
