//! The directory `bench` works in, and the only files it ever deletes.
//!
//! `bench` never touches a database it did not create. It runs in a missing or empty
//! directory, and marks it as its own with [`MARKER_NAME`] right after the engine creates the
//! database there. `--fresh` replaces only such a directory, and only when every entry in it is
//! a file the engine writes (`MANIFEST*`, `LOCK`, `{20 digits}.seg`, `{20 digits}.log`) or the
//! marker, and the database opens (its manifest verified). Anything else is refused with one
//! line and nothing is deleted.

use std::io::Write;
use std::path::Path;

use zverse::Options;

use crate::commands::Context;
use crate::fail::Fail;

/// The file that marks a directory as `zverse bench`'s own.
pub const MARKER_NAME: &str = "ZVERSE-BENCH";

const MARKER_TEXT: &str = "This directory was created by `zverse bench`. \
`zverse bench --fresh` deletes the database in it (the files ZVerse wrote) and runs again.\n";

/// What `bench` finds at its `--db`.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    /// Missing or an empty directory: bench may create its database there.
    New,
    /// A directory holding bench's marker.
    Own,
    /// Anything else: never touched.
    Foreign,
}

/// Makes `context.db` ready for a new bench database, or refuses with one line.
pub fn prepare(context: &Context, fresh: bool) -> Result<(), Fail> {
    let path = &context.db;
    match find(path)? {
        Found::New => Ok(()),
        Found::Own if fresh => wipe_own(context),
        Found::Own => Err(Fail::usage(format!(
            "{} holds the database of an earlier `zverse bench`; pass --fresh to replace it, \
             or --db with a new directory",
            path.display()
        ))),
        Found::Foreign => Err(Fail::database(format!(
            "{} is not empty and was not created by `zverse bench` (no {MARKER_NAME} file), so \
             bench will not touch it{}; pass --db with a new directory",
            path.display(),
            if fresh { ", --fresh included" } else { "" }
        ))),
    }
}

/// Marks the database bench just created as its own (once; an earlier mark is kept).
pub fn mark(context: &Context) -> Result<(), Fail> {
    let path = context.db.join(MARKER_NAME);
    let file = std::fs::OpenOptions::new().write(true).create_new(true).open(&path);
    match file {
        Ok(mut file) => file.write_all(MARKER_TEXT.as_bytes()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
    .map_err(|error| Fail::database(format!("cannot write {}: {error}", path.display())))
}

fn find(path: &Path) -> Result<Found, Fail> {
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Found::New),
        Err(error) => return Err(unreadable(path, &error)),
    };
    let mut empty = true;
    for entry in entries {
        let entry = entry.map_err(|error| unreadable(path, &error))?;
        if entry.file_name() == MARKER_NAME {
            return Ok(Found::Own);
        }
        empty = false;
    }
    Ok(if empty { Found::New } else { Found::Foreign })
}

fn unreadable(path: &Path, error: &std::io::Error) -> Fail {
    Fail::database(format!("cannot read {}: {error}", path.display()))
}

/// Whether `name` is a file the engine writes: `MANIFEST*`, `LOCK`, or a file number (20
/// digits) with `.seg` or `.log`.
pub fn is_engine_file(name: &str) -> bool {
    name.starts_with("MANIFEST") || name == "LOCK" || is_numbered_file(name)
}

/// Whether `name` is a segment or a log: a file number (20 digits) with `.seg` or `.log`.
pub fn is_numbered_file(name: &str) -> bool {
    let numbered = |suffix: &str| {
        name.strip_suffix(suffix)
            .is_some_and(|digits| digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
    };
    numbered(".seg") || numbered(".log")
}

/// Deletes bench's own database: checks every entry first and deletes nothing if one is not
/// the engine's or the marker, opens the database to verify its manifest (and that no one
/// holds it), then removes the files it listed (checked again) and the empty directory.
fn wipe_own(context: &Context) -> Result<(), Fail> {
    let path = &context.db;
    let names = list_owned(path)?;
    if names.iter().any(|name| name == "MANIFEST") {
        let db = context.open(Options::default().create_if_missing(false)).map_err(|fail| {
            refusal(path, &format!("its database does not open ({})", fail.message))
        })?;
        context.close(&db)?;
    } else if names.iter().any(|name| is_numbered_file(name)) {
        return Err(refusal(path, "it holds ZVerse files but no MANIFEST to verify them by"));
    }
    let mut names = list_owned(path)?;
    // The marker goes last, so that an interrupted wipe leaves the directory still marked.
    names.sort_by_key(|name| name == MARKER_NAME);
    for name in &names {
        remove_listed(&path.join(name))?;
    }
    std::fs::remove_dir(path)
        .map_err(|error| Fail::database(format!("cannot remove {}: {error}", path.display())))
}

/// The names in bench's directory, all of them the engine's files or the marker; else the
/// refusal naming the first other entry.
fn list_owned(path: &Path) -> Result<Vec<String>, Fail> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|error| unreadable(path, &error))? {
        let entry = entry.map_err(|error| unreadable(path, &error))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_file = entry.file_type().is_ok_and(|kind| kind.is_file());
        let owned = name == MARKER_NAME || is_engine_file(&name);
        if !is_file || !owned || entry.file_name().to_str().is_none() {
            return Err(refusal(path, &format!("{name} is not a file ZVerse writes")));
        }
        names.push(name);
    }
    Ok(names)
}

fn refusal(path: &Path, why: &str) -> Fail {
    Fail::database(format!(
        "refusing to replace {}: {why}; nothing was deleted (remove it yourself, or pass --db \
         with a new directory)",
        path.display()
    ))
}

/// Removes a file `wipe_own` listed; one the engine removed since (a log at close) is fine.
fn remove_listed(path: &Path) -> Result<(), Fail> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(Fail::database(format!("cannot remove {}: {error}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::is_engine_file;

    #[test]
    fn engine_files_are_named_exactly() {
        for name in ["MANIFEST", "MANIFEST.tmp", "LOCK", "00000000000000000001.seg"] {
            assert!(is_engine_file(name), "{name}");
        }
        assert!(is_engine_file("00000000000000000012.log"));
        for name in ["1.seg", "notes.txt", "lib", ".git", "0000000000000000000a.log", "LOCKS"] {
            assert!(!is_engine_file(name), "{name}");
        }
    }
}
