//! [`Fail`]: how a command fails, as one line on stderr and a documented exit code.

use std::path::Path;

/// The exit codes, documented in `--help` and the README.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0: stdout was closed early (`zverse scan | head`): not an error, nothing printed.
    Quiet = 0,
    /// 1: the key (or anything asked for) does not exist at the version asked.
    NotFound = 1,
    /// 2: bad arguments or bad input (clap uses 2 for its own usage errors too).
    Usage = 2,
    /// 3: the database could not be opened, read or written (missing, locked, foreign, I/O).
    Database = 3,
    /// 4: corruption: bytes on disk failed their checksum or did not decode.
    Corruption = 4,
}

/// A failed command: the exit code and the one line to print.
#[derive(Debug)]
pub struct Fail {
    pub exit: Exit,
    pub message: String,
}

impl Fail {
    pub fn usage(message: impl Into<String>) -> Fail {
        Fail { exit: Exit::Usage, message: message.into() }
    }

    pub fn not_found(message: impl Into<String>) -> Fail {
        Fail { exit: Exit::NotFound, message: message.into() }
    }

    pub fn database(message: impl Into<String>) -> Fail {
        Fail { exit: Exit::Database, message: message.into() }
    }

    /// A database error on `path`, with what to do about it.
    pub fn from_db(path: &Path, error: zverse::Error) -> Fail {
        let path = path.display();
        match error {
            zverse::Error::Corruption { ref file, offset: 0, ref what }
                if file.file_name().is_some_and(|name| name == "MANIFEST")
                    && what.contains("bad magic") =>
            {
                Fail::database(format!(
                    "{} is not a ZVerse manifest, so {path} is not a ZVerse database (or its \
                     manifest was overwritten); pass --db with a ZVerse database or a new \
                     directory",
                    file.display()
                ))
            }
            zverse::Error::Corruption { ref file, offset: 0, ref what }
                if file.file_name().is_some_and(|name| name == "MANIFEST")
                    && what.starts_with("missing") =>
            {
                let dir = file.parent().unwrap_or(file);
                let name = engine_file_in(dir).unwrap_or_else(|| "logs or segments".into());
                Fail {
                    exit: Exit::Corruption,
                    message: format!(
                        "{path} holds ZVerse files ({name}) but no MANIFEST: the manifest is \
                         missing, so which files are live is unknown; nothing was changed \
                         (restore MANIFEST from a backup)"
                    ),
                }
            }
            zverse::Error::Corruption { .. } => Fail {
                exit: Exit::Corruption,
                message: format!("{error}; run `zverse --db {path} check` for a full report"),
            },
            zverse::Error::Locked { .. } => Fail::database(format!(
                "database {path} is in use by another process; stop it, or pass --db for another \
                 database"
            )),
            zverse::Error::NotADatabase { path: ref dir } => match engine_file_in(dir) {
                Some(name) => Fail {
                    exit: Exit::Corruption,
                    message: format!(
                        "{path} holds ZVerse files ({name}) but no MANIFEST: the manifest is \
                         missing, so which files are live is unknown; nothing was changed \
                         (restore MANIFEST from a backup)"
                    ),
                },
                None => Fail::database(format!(
                    "{path} is not a ZVerse database (it holds other files); pass --db with a \
                     database directory or a new one"
                )),
            },
            zverse::Error::KeyTooLarge { .. }
            | zverse::Error::ValueTooLarge { .. }
            | zverse::Error::BatchTooLarge { .. } => Fail::usage(error.to_string()),
            zverse::Error::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
                Fail::database(no_database(&path))
            }
            other => Fail::database(format!("database {path}: {other}")),
        }
    }
}

/// The first segment or log (by name) in `dir`, if any.
fn engine_file_in(dir: &Path) -> Option<String> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| crate::bench_dir::is_numbered_file(name))
        .min()
}

/// An I/O error writing the output: a closed pipe ends the command quietly.
impl From<std::io::Error> for Fail {
    fn from(error: std::io::Error) -> Fail {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            Fail { exit: Exit::Quiet, message: String::new() }
        } else {
            Fail::database(format!("cannot write the output: {error}"))
        }
    }
}

/// The message for a read command on a database that does not exist.
pub fn no_database(path: &impl std::fmt::Display) -> String {
    format!(
        "no database at {path}; write one with `zverse put` or `zverse load`, or point --db \
         (or ZVERSE_DB) at an existing one"
    )
}
