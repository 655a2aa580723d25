//! `dump` and `load`: the database as JSON lines, streamed both ways in memory bounded by a
//! constant.
//!
//! The format (version [`DUMP_FORMAT`]): a header line, then one line per version of a key,
//! oldest first (ties in key order):
//!
//! ```text
//! {"zverse_dump":1,"all_versions":true,"snapshot_version":1795316944794952}
//! {"key":"user:1","version":1795316944794001,"value":"alice"}
//! {"key":{"base64":"AP8="},"version":1795316944794002,"value":null}
//! ```
//!
//! Keys and values are `json.rs`'s reversible form (UTF-8 as a string, other bytes as
//! `{"base64": ...}`), `null` for a delete. `dump` writes the latest live value of each key,
//! `dump --all-versions` every version, deletes included; both are consistent as of
//! `snapshot_version` (the newest version of the database).
//!
//! `dump --all-versions --since BASE` writes an increment: every version above `BASE`, with
//! `"since":BASE` in the header. `load` applies it only to a database whose newest version is
//! exactly `BASE` (a checkpoint taken at `BASE`, or the database an increment ending at `BASE`
//! was loaded into): one that ends before is a gap, one that ends after the increment an
//! overlap, both refused before anything is written. One that ends inside the increment had
//! it loaded in part by a killed `load` (versions commit whole, oldest first): the load
//! resumes after its newest version. A later format may add header fields: `load` refuses a
//! header with fields it does not know rather than load it wrongly.
//!
//! `load` reads the header if there is one (the lines of `changes --json`, which carry an
//! extra `time`, load as they are) and commits each run of lines with one version as one batch
//! at that version (`Batch::commit_at`), oldest first, while it reads: it holds one version's
//! writes at a time, at most one log record (the engine's batch limit, 128 MiB), so one
//! version is always atomic, and a version bigger than that cannot have come from a ZVerse
//! database and is refused (`BatchTooLarge`). Lines out of order are refused.

use std::io::{BufRead, BufReader, Read, Write};
use std::ops::Bound;
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use zverse::{Batch, Change, Db, Durability, Options, Version};

use crate::commands::{Context, stdout};
use crate::fail::Fail;
use crate::{json, oldest_first};

/// The dump format this tool writes and reads.
const DUMP_FORMAT: u64 = 1;

/// The longest line `load` reads: a key and a value at their limits (64 KiB, 64 MiB), every
/// byte a 6-byte JSON escape, plus the rest of the line.
const LINE_BYTES_MAX: u64 = 6 * ((64 << 10) + (64 << 20)) + 1024;

/// Lines between two progress-bar updates.
const PROGRESS_STEP: u64 = 4_096;

/// The first line of a dump.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    /// The format version.
    zverse_dump: u64,
    /// Every version (true) or the latest live value of each key.
    all_versions: bool,
    /// The version the dump is consistent at: the newest version in the database it was
    /// taken from.
    snapshot_version: u64,
    /// An increment's base (`dump --all-versions --since BASE`): the dump holds every version
    /// above it up to `snapshot_version`, and loads only into a database that ends at it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<u64>,
}

/// One version of one key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    key: Json,
    version: u64,
    value: Json,
    /// `changes --json` prints the version as a time too; `load` does not need it.
    #[serde(default, rename = "time")]
    _time: Option<Json>,
}

/// A spinner (or bar, when the total is known) on stderr; hidden when stderr is no terminal.
pub fn progress(total: Option<u64>, what: &str) -> ProgressBar {
    let bar = match total {
        Some(total) => ProgressBar::new(total).with_style(
            ProgressStyle::with_template(
                "{prefix:>14} [{bar:40}] {human_pos}/{human_len} elapsed {elapsed} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{prefix:>14} {spinner} {human_pos} lines, {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_prefix(what.to_owned());
    bar
}

/// A progress bar over the bytes of a file being read.
fn progress_bytes(total: u64, what: &str) -> ProgressBar {
    ProgressBar::new(total).with_prefix(what.to_owned()).with_style(
        ProgressStyle::with_template(
            "{prefix:>14} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    )
}

/// One line of output for a change, its fields in this order.
#[derive(Debug, Serialize)]
pub struct ChangeLine {
    key: Json,
    version: u64,
    /// `changes --json` prints the version as a time too; a dump does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    time: Option<Json>,
    value: Json,
}

/// The dump's line for a change, and `changes --json`'s with `time`.
pub fn change_line(change: &Change, time: bool) -> ChangeLine {
    ChangeLine {
        key: json::encode(&change.key),
        version: change.version.get(),
        time: time.then(|| crate::timefmt::rfc3339(change.version).map_or(Json::Null, Json::from)),
        value: change.value.as_deref().map_or(Json::Null, json::encode),
    }
}

/// Writes `line` as one JSON line.
pub fn write_line(out: &mut impl Write, line: &impl Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, line).map_err(std::io::Error::from)?;
    out.write_all(b"\n")
}

/// `dump`; with `since`, an increment: every version above it (`all_versions` only).
pub fn dump(context: &Context, all_versions: bool, since: Option<u64>) -> Result<(), Fail> {
    if since.is_some() && !all_versions {
        return Err(Fail::usage("--since needs --all-versions: an increment holds every version"));
    }
    let db = context.open_existing()?;
    let snapshot = db.snapshot();
    let newest = snapshot.version().get();
    if let Some(base) = since.filter(|&base| base > newest) {
        return Err(Fail::usage(format!(
            "--since {base} is newer than the database's newest version {newest}"
        )));
    }
    let bar = progress(None, "dump");
    let mut out = stdout();
    let header = Header { zverse_dump: DUMP_FORMAT, all_versions, snapshot_version: newest, since };
    write_line(&mut out, &header)?;
    let mut written: u64 = 0;
    let all = (Bound::Unbounded, Bound::Unbounded);
    // Above the base: `since < newest` here, or the window is empty (from > to).
    let from = since.map_or(0, |base| base.saturating_add(1));
    let versions = (Version::new(from), snapshot.version());
    oldest_first::for_each(context, &snapshot, &all, versions, oldest_first::BUDGET, |change| {
        if !all_versions && !is_latest_live(context, &snapshot, &change)? {
            return Ok(());
        }
        write_line(&mut out, &change_line(&change, false))?;
        written += 1;
        if written.is_multiple_of(PROGRESS_STEP) {
            bar.set_position(written);
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    out.flush()?;
    drop(snapshot);
    context.close(&db)
}

/// Whether `change` is a put and the newest version of its key in `snapshot`. A point read
/// (which stops at the newest version) rules most older versions out by their value; the
/// history confirms the version of the rest.
fn is_latest_live(
    context: &Context,
    snapshot: &zverse::Snapshot,
    change: &Change,
) -> Result<bool, Fail> {
    let Some(value) = &change.value else {
        return Ok(false);
    };
    match snapshot.get(&change.key).map_err(|error| context.fail(error))? {
        Some(latest) if latest[..] == value[..] => {}
        _ => return Ok(false),
    }
    match snapshot.history(&change.key).map_err(|error| context.fail(error))?.next() {
        Some(Ok((version, _))) => Ok(version == change.version),
        Some(Err(error)) => Err(context.fail(error)),
        None => Err(Fail::database(format!(
            "key {} is in `changes` but has no history; run `zverse check`",
            json::encode(&change.key)
        ))),
    }
}

pub fn load(context: &Context, file: Option<&Path>) -> Result<(), Fail> {
    let (reader, name, bar): (Box<dyn BufRead>, String, ProgressBar) = match file {
        Some(path) => {
            let cannot = |error: std::io::Error| {
                Fail::usage(format!("cannot open the dump {}: {error}", path.display()))
            };
            let file = std::fs::File::open(path).map_err(cannot)?;
            let len = file.metadata().map_err(cannot)?.len();
            let bar = progress_bytes(len, "load");
            (Box::new(BufReader::new(file)), path.display().to_string(), bar)
        }
        None => (Box::new(std::io::stdin().lock()), "stdin".to_owned(), progress(None, "load")),
    };
    let db = context.open_or_create_with(Options::default().durability(Durability::None))?;
    let mut loader = Loader {
        context,
        db: &db,
        name,
        pending: None,
        loaded: Loaded::default(),
        present_through: None,
    };
    let read = loader.read_all(reader, &bar);
    bar.finish_and_clear();
    let done = loader.loaded;
    // Durability::None for speed: the flush makes every loaded version durable in a segment,
    // also those loaded before a bad line.
    db.flush().map_err(|error| context.fail(error))?;
    context.close(&db)?;
    read?;
    let mut out = stdout();
    if context.json {
        let object = serde_json::json!({ "loaded": done.writes, "versions": done.versions });
        writeln!(out, "{object}")?;
    } else {
        writeln!(
            out,
            "loaded {} writes at {} versions into {}",
            done.writes,
            done.versions,
            context.db.display()
        )?;
    }
    out.flush()?;
    Ok(())
}

/// What `load` committed so far.
#[derive(Clone, Copy, Debug, Default)]
struct Loaded {
    writes: u64,
    versions: u64,
    version_last: Option<u64>,
}

/// `load`'s state: the version being gathered into one batch.
struct Loader<'a> {
    context: &'a Context,
    db: &'a Db,
    name: String,
    /// The version being gathered, its batch and its line count.
    pending: Option<(u64, Batch<'a>, u64)>,
    loaded: Loaded,
    /// Resuming an increment a killed `load` applied in part: its versions up to this one are
    /// in the database already and are skipped.
    present_through: Option<u64>,
}

impl Loader<'_> {
    fn read_all(&mut self, mut reader: Box<dyn BufRead>, bar: &ProgressBar) -> Result<(), Fail> {
        let mut buffer = Vec::new();
        let mut number: u64 = 0;
        let mut header_allowed = true;
        loop {
            buffer.clear();
            let read = (&mut reader).take(LINE_BYTES_MAX + 1).read_until(b'\n', &mut buffer);
            let len = read.map_err(|error| self.bad(number + 1, &error.to_string()))?;
            if len == 0 {
                break;
            }
            number += 1;
            bar.inc(len as u64);
            if len as u64 > LINE_BYTES_MAX {
                return Err(self.bad(number, &format!("longer than {LINE_BYTES_MAX} bytes")));
            }
            let text = std::str::from_utf8(&buffer)
                .map_err(|error| self.bad(number, &format!("not UTF-8 ({error})")))?;
            if text.trim().is_empty() {
                continue;
            }
            if std::mem::take(&mut header_allowed) && is_header(text) {
                let header = check_header(text).map_err(|why| self.bad(number, &why))?;
                if let Some(base) = header.since {
                    self.check_base(base, header.snapshot_version)?;
                }
                continue;
            }
            self.add(number, text)?;
        }
        self.commit()
    }

    /// An increment from `base` to `end` applies to a database that ends at `base` (its
    /// newest version); one that ends inside the increment had it applied in part by a killed
    /// `load`, which resumes after what is there. Anything else is a gap or an overlap.
    fn check_base(&mut self, base: u64, end: u64) -> Result<(), Fail> {
        let newest = self.db.snapshot().version().get();
        let db = self.context.db.display();
        if newest < base {
            return Err(Fail::database(format!(
                "gap: {db} ends at version {newest}, but this increment holds the versions \
                 after {base} (up to {end}); load the checkpoint or increment that ends at \
                 {base} first; nothing was loaded"
            )));
        }
        if newest > end {
            return Err(Fail::database(format!(
                "overlap: {db} holds versions up to {newest}, past this increment's end {end} \
                 (it was loaded already, or an increment after it was); nothing was loaded"
            )));
        }
        if newest > base {
            eprintln!("resuming: {db} holds this increment's versions up to {newest} already");
            self.present_through = Some(newest);
        }
        Ok(())
    }

    /// Adds one line to the pending version, committing the one before when it changes.
    fn add(&mut self, number: u64, text: &str) -> Result<(), Fail> {
        let line: Line = serde_json::from_str(text)
            .map_err(|error| self.bad(number, &format!("{error}; expected {LINE_SHAPE}")))?;
        if self.present_through.is_some_and(|present| line.version <= present) {
            return Ok(());
        }
        let key = json::decode(&line.key).map_err(|why| self.bad(number, &why))?;
        let value = match &line.value {
            Json::Null => None,
            value => Some(json::decode(value).map_err(|why| self.bad(number, &why))?),
        };
        if line.version == 0 {
            return Err(self.bad(number, "version 0 is not a version (versions start at 1)"));
        }
        let previous = self.pending.as_ref().map(|(version, ..)| *version);
        let previous = previous.or(self.loaded.version_last);
        match previous {
            Some(previous) if line.version < previous => {
                return Err(self.bad(
                    number,
                    &format!(
                        "version {} is older than the line before ({previous}); a dump loads \
                         oldest first, as `zverse dump` and `zverse changes --json` write it",
                        line.version
                    ),
                ));
            }
            Some(previous) if line.version == previous && self.pending.is_some() => {}
            _ => {
                self.commit()?;
                self.pending = Some((line.version, self.db.batch(), 0));
            }
        }
        let (_, batch, lines) = self.pending.as_mut().expect("a pending version was just set");
        match &value {
            Some(value) => batch.put(&key, value),
            None => batch.delete(&key),
        };
        *lines += 1;
        Ok(())
    }

    /// Commits the pending version, if any, as one batch at its version.
    fn commit(&mut self) -> Result<(), Fail> {
        let Some((version, mut batch, lines)) = self.pending.take() else {
            return Ok(());
        };
        batch.commit_at(Version::new(version)).map_err(|error| self.commit_error(error))?;
        self.loaded.writes += lines;
        self.loaded.versions += 1;
        self.loaded.version_last = Some(version);
        Ok(())
    }

    fn commit_error(&self, error: zverse::Error) -> Fail {
        let loaded = self.loaded_so_far();
        match error {
            zverse::Error::VersionNotAfter { version, last } => Fail::database(format!(
                "cannot load version {version}: {} already holds versions up to {last}{loaded}; \
                 load into an empty database (a new --db) to keep the dump's versions",
                self.context.db.display()
            )),
            other => {
                let mut fail = self.context.fail(other);
                fail.message.push_str(&loaded);
                fail
            }
        }
    }

    /// A bad line: where, why, and what was loaded before it.
    fn bad(&self, number: u64, why: &str) -> Fail {
        Fail::usage(format!("{}:{number}: {why}{}", self.name, self.loaded_so_far()))
    }

    fn loaded_so_far(&self) -> String {
        match self.loaded.version_last {
            None => "; nothing was loaded".to_owned(),
            Some(last) => format!(
                " ({} writes at {} versions up to {last} were loaded before it)",
                self.loaded.writes, self.loaded.versions
            ),
        }
    }
}

const LINE_SHAPE: &str = "{\"key\": KEY, \"version\": N, \"value\": VALUE or null} as `zverse \
                          dump` writes it";

/// Whether a line is a dump header (an object with `zverse_dump`).
fn is_header(text: &str) -> bool {
    serde_json::from_str::<Json>(text).is_ok_and(|value| value.get("zverse_dump").is_some())
}

fn check_header(text: &str) -> Result<Header, String> {
    let value: Json = serde_json::from_str(text).map_err(|error| error.to_string())?;
    let format = value.get("zverse_dump").and_then(Json::as_u64);
    if format != Some(DUMP_FORMAT) {
        return Err(format!(
            "dump format {}; this zverse reads format {DUMP_FORMAT} (a newer zverse wrote it?)",
            value.get("zverse_dump").map_or_else(String::new, ToString::to_string)
        ));
    }
    serde_json::from_value::<Header>(value).map_err(|error| {
        format!("a dump header this zverse does not know ({error}): a newer zverse wrote it")
    })
}

/// `checkpoint DEST`: a consistent copy of the database in the new directory `dest`, made
/// with hard links where it can; prints the version it is consistent at.
pub fn checkpoint(context: &Context, dest: &Path) -> Result<(), Fail> {
    let db = context.open_existing_for_write()?;
    let bar = ProgressBar::new(0).with_prefix("checkpoint").with_style(
        ProgressStyle::with_template("{prefix:>14} [{bar:40}] {pos}/{len} files, {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut last = None;
    let version = db.checkpoint_with_progress(dest, |progress| {
        bar.set_length(progress.files_total as u64);
        bar.set_position(progress.files_done as u64);
        bar.set_message(format!("{} bytes copied", progress.bytes_copied));
        last = Some(progress);
    });
    bar.finish_and_clear();
    let version = version.map_err(|error| match error {
        zverse::Error::DestinationExists { .. } => Fail::usage(error.to_string()),
        other => context.fail(other),
    })?;
    context.close(&db)?;
    let (files, bytes_copied) = last.map_or((0, 0), |p| (p.files_total, p.bytes_copied));
    let mut out = stdout();
    if context.json {
        let object = serde_json::json!({
            "version": version.get(),
            "dest": dest.display().to_string(),
            "files": files,
            "bytes_copied": bytes_copied,
        });
        writeln!(out, "{object}")?;
    } else {
        writeln!(
            out,
            "checkpoint of {} as of version {version} in {}: {files} files, {bytes_copied} \
             bytes copied (the rest hard-linked); next increment: zverse dump --all-versions \
             --since {version}",
            context.db.display(),
            dest.display()
        )?;
    }
    out.flush()?;
    Ok(())
}
