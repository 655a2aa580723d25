//! `dump` and `load`: the database as JSON lines, one version per line:
//! `{"key": KEY, "version": u64, "value": VALUE | null}`, keys and values in the escape form
//! (lossless for any bytes), `null` for a delete. `load` commits each version's lines as one
//! batch at that version, oldest first, so a dump loaded into an empty database answers every
//! as-of read the way the original did.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use zverse::{Durability, Options, Version};

use crate::commands::{Context, stdout};
use crate::escape::{escape, unescape};
use crate::fail::Fail;

/// One line of a dump.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    key: String,
    version: u64,
    value: Option<String>,
}

/// One version of one key, decoded from a dump line.
struct Write1 {
    version: u64,
    key: Vec<u8>,
    value: Option<Vec<u8>>,
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

pub fn dump(context: &Context, all_versions: bool) -> Result<(), Fail> {
    let db = context.open_existing()?;
    let snapshot = db.snapshot();
    let bar = progress(None, "dump");
    let mut out = stdout();
    let mut write_line = |key: &[u8], version: Version, value: Option<&[u8]>| {
        let line = Line { key: escape(key), version: version.get(), value: value.map(escape) };
        bar.inc(1);
        serde_json::to_writer(&mut out, &line).map_err(std::io::Error::from)?;
        out.write_all(b"\n")
    };
    if all_versions {
        let changes = snapshot.changes(.., ..).map_err(|error| context.fail(error))?;
        let mut changes: Vec<zverse::Change> =
            changes.collect::<Result<_, _>>().map_err(|error| context.fail(error))?;
        // Z order clusters by key and time; a dump reads (and loads) oldest first.
        changes.sort_by(|a, b| (a.version, &a.key).cmp(&(b.version, &b.key)));
        for change in &changes {
            write_line(&change.key, change.version, change.value.as_deref())?;
        }
    } else {
        for item in snapshot.range(..).map_err(|error| context.fail(error))? {
            let (key, value) = item.map_err(|error| context.fail(error))?;
            let version = latest_version(context, &snapshot, &key)?;
            write_line(&key, version, Some(&value))?;
        }
    }
    bar.finish_and_clear();
    out.flush()?;
    drop(snapshot);
    context.close(&db)
}

/// The version of `key`'s newest write visible in `snapshot`.
fn latest_version(
    context: &Context,
    snapshot: &zverse::Snapshot,
    key: &[u8],
) -> Result<Version, Fail> {
    match snapshot.history(key).map_err(|error| context.fail(error))?.next() {
        Some(Ok((version, _))) => Ok(version),
        Some(Err(error)) => Err(context.fail(error)),
        None => Err(Fail::database(format!(
            "key {} is in the scan but has no history; run `zverse check`",
            escape(key)
        ))),
    }
}

pub fn load(context: &Context, file: Option<&Path>) -> Result<(), Fail> {
    let mut writes = match file {
        Some(path) => {
            let reader = std::fs::File::open(path).map_err(|error| {
                Fail::usage(format!("cannot open the dump {}: {error}", path.display()))
            })?;
            read_lines(BufReader::new(reader), &path.display().to_string())?
        }
        None => read_lines(std::io::stdin().lock(), "stdin")?,
    };
    // Same version = one batch; batches in increasing version order.
    writes.sort_by_key(|write| write.version);
    let db = context.open_or_create_with(Options::default().durability(Durability::None))?;
    let bar = progress(Some(writes.len() as u64), "load");
    let mut loaded: u64 = 0;
    for group in writes.chunk_by(|a, b| a.version == b.version) {
        let version = Version::new(group[0].version);
        let mut batch = db.batch();
        for write in group {
            match &write.value {
                Some(value) => batch.put(&write.key, value),
                None => batch.delete(&write.key),
            };
        }
        batch.commit_at(version).map_err(|error| load_error(context, error, loaded))?;
        loaded += group.len() as u64;
        bar.inc(group.len() as u64);
    }
    bar.finish_and_clear();
    // Durability::None for speed: the flush makes every loaded version durable in a segment.
    db.flush().map_err(|error| context.fail(error))?;
    context.close(&db)?;
    let mut out = stdout();
    if context.json {
        writeln!(out, "{}", serde_json::json!({ "loaded": loaded }))?;
    } else {
        writeln!(out, "loaded {loaded} versions into {}", context.db.display())?;
    }
    out.flush()?;
    Ok(())
}

fn load_error(context: &Context, error: zverse::Error, loaded: u64) -> Fail {
    match error {
        zverse::Error::VersionNotAfter { version, last } => Fail::database(format!(
            "cannot load version {version}: {} already holds versions up to {last} \
             ({loaded} versions loaded before this one); load into an empty database (a new \
             --db) to keep the dump's versions",
            context.db.display()
        )),
        other => context.fail(other),
    }
}

/// Reads and decodes every line, refusing the whole input at the first bad line.
fn read_lines(reader: impl BufRead, name: &str) -> Result<Vec<Write1>, Fail> {
    let mut writes = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let number = index + 1;
        let line = line.map_err(|error| Fail::usage(format!("{name}:{number}: {error}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: String| {
            Fail::usage(format!(
                "{name}:{number}: {why}; expected {{\"key\": KEY, \"version\": N, \"value\": \
                 VALUE or null}} as `zverse dump` writes; nothing was loaded"
            ))
        };
        let parsed: Line = serde_json::from_str(&line).map_err(|error| bad(error.to_string()))?;
        let key = unescape(&parsed.key).map_err(bad)?;
        let value = parsed.value.as_deref().map(unescape).transpose().map_err(bad)?;
        writes.push(Write1 { version: parsed.version, key, value });
    }
    Ok(writes)
}
