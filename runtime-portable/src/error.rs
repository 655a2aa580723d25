//! [`Error`]: everything that can go wrong, typed, with what the caller can do about it.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use zverse_core::Version;

/// The result of every fallible ZVerse call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong. `#[non_exhaustive]`: match the variants you handle and keep a fallback.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The key is longer than [`zverse_core::limits::KEY_LEN_MAX`]; nothing was written.
    KeyTooLarge {
        /// The key's length in bytes.
        len: usize,
    },
    /// The value is longer than [`zverse_core::limits::VALUE_LEN_MAX`]; nothing was written.
    ValueTooLarge {
        /// The value's length in bytes.
        len: usize,
    },
    /// A batch is larger than one log record may be; nothing was written.
    BatchTooLarge {
        /// The batch's encoded size in bytes.
        len: u64,
        /// The largest allowed, in bytes.
        len_max: u64,
    },
    /// Bytes on disk are not what ZVerse wrote: a checksum mismatch, a truncated file, a
    /// record that does not decode. Nothing was silently skipped.
    Corruption {
        /// The file.
        file: PathBuf,
        /// Byte offset in the file of the structure that failed to decode.
        offset: u64,
        /// What was wrong.
        what: String,
    },
    /// Another process, or another open `Db` in this one, holds the directory's lock.
    Locked {
        /// The database directory.
        path: PathBuf,
    },
    /// The directory exists, is not empty, and is not a ZVerse database; it was not touched.
    NotADatabase {
        /// The directory.
        path: PathBuf,
    },
    /// The database refuses writes because an earlier write or sync failed; the reason says
    /// which. Reads still work. Reopen the database to recover from the log.
    ReadOnly(Arc<str>),
    /// The database was closed.
    Closed,
    /// Every version up to `u64::MAX` has been handed out.
    VersionsExhausted,
    /// `Batch::commit_at` asked for a version not above every version already handed out;
    /// nothing was written.
    VersionNotAfter {
        /// The version asked for.
        version: Version,
        /// The newest version the database has handed out.
        last: Version,
    },
    /// `Batch::commit_at` asked for a version further in the future than
    /// `Options::version_ahead_max` allows (a wrong clock or a wrong number); nothing was
    /// written.
    VersionTooFarAhead {
        /// The version asked for.
        version: Version,
        /// The largest version accepted now: the wall clock plus `version_ahead_max`.
        version_max: Version,
    },
    /// A read as of `version`, below the retention horizon: compaction may have dropped
    /// versions that read would need, so its answer could be wrong. Read at or above
    /// `horizon` ([`crate::Db::horizon`]) or through a snapshot pinned before the compaction.
    BelowHorizon {
        /// The version the read asked for.
        version: Version,
        /// The lowest version every read is exact at.
        horizon: Version,
    },
    /// A write, flush or compaction on a database opened with `Options::read_only(true)`.
    OpenedReadOnly,
    /// A file of the database is in a format this build does not read (written by an older
    /// ZVerse); nothing was changed. Dump it with the build that wrote it and load the dump.
    FormatUnsupported {
        /// The file.
        file: PathBuf,
        /// Its format version.
        version: u32,
        /// The version this build reads.
        version_supported: u32,
    },
    /// A checkpoint's destination exists already, or the `{dest}.checkpoint-partial`
    /// directory an interrupted checkpoint left (delete it); nothing was written to it.
    DestinationExists {
        /// The destination.
        path: PathBuf,
    },
    /// An I/O call failed.
    Io(io::Error),
    /// A transaction, `Db::update` or `Db::compare_and_swap` lost to a write committed after
    /// it read: nothing was written. Retry it from the start.
    Conflict(crate::transaction::Conflict),
    /// A transaction's tracked bytes (read set, scanned ranges, write set) passed
    /// `Options::transaction_bytes_max`; the transaction is cancelled and wrote nothing.
    TransactionTooLarge {
        /// The bytes it tracked with the operation that failed.
        bytes: u64,
        /// The limit.
        bytes_max: u64,
    },
    /// The transaction was committed or cancelled already.
    TransactionClosed,
    /// A write on a read-only transaction (`Db::read_transaction`).
    TransactionReadOnly,
    /// `Transaction::put` found the key present; the transaction is unchanged.
    KeyExists {
        /// The key.
        key: Vec<u8>,
    },
    /// `Transaction::putc` or `delc` found a value other than the expected one; the
    /// transaction is unchanged.
    ConditionNotMet {
        /// The key.
        key: Vec<u8>,
    },
    /// `Transaction::rollback_to_savepoint` or `release_savepoint` without a savepoint set.
    NoSavepoint,
    /// `Db::update` lost to concurrent writers this many times in a row and gave up; nothing
    /// was written.
    RetriesExhausted {
        /// The attempts made.
        attempts: u32,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::KeyTooLarge { len } => write!(
                f,
                "key of {len} bytes exceeds the limit of {} bytes",
                zverse_core::limits::KEY_LEN_MAX
            ),
            Error::ValueTooLarge { len } => write!(
                f,
                "value of {len} bytes exceeds the limit of {} bytes",
                zverse_core::limits::VALUE_LEN_MAX
            ),
            Error::BatchTooLarge { len, len_max } => {
                write!(f, "batch of {len} bytes exceeds the limit of {len_max} bytes")
            }
            Error::Corruption { file, offset, what } => {
                write!(f, "corruption in {} at offset {offset}: {what}", file.display())
            }
            Error::Locked { path } => write!(
                f,
                "database {} is locked by another process or another open handle",
                path.display()
            ),
            Error::NotADatabase { path } => write!(
                f,
                "{} is not empty and is not a ZVerse database; refusing to touch it",
                path.display()
            ),
            Error::ReadOnly(reason) => write!(f, "database is read-only: {reason}"),
            Error::Closed => f.write_str("database is closed"),
            Error::VersionsExhausted => f.write_str("every version up to u64::MAX is used"),
            Error::VersionNotAfter { version, last } => write!(
                f,
                "cannot commit at version {version}: the database has handed out {last} already"
            ),
            Error::VersionTooFarAhead { version, version_max } => write!(
                f,
                "cannot commit at version {version}: it is beyond now plus the allowed skew \
                 ({version_max}); see Options::version_ahead_max"
            ),
            Error::BelowHorizon { version, horizon } => write!(
                f,
                "cannot read as of version {version}: it is below the retention horizon \
                 {horizon}, so versions it needs may have been dropped"
            ),
            Error::OpenedReadOnly => f.write_str("database was opened read-only"),
            Error::FormatUnsupported { file, version, version_supported } => write!(
                f,
                "{} is format version {version}; this build reads version {version_supported} \
                 (dump it with the ZVerse that wrote it, then load the dump)",
                file.display()
            ),
            Error::DestinationExists { path } => {
                write!(f, "{} exists; a checkpoint goes to a new directory", path.display())
            }
            Error::Io(error) => write!(f, "I/O error: {error}"),
            Error::Conflict(conflict) => write!(f, "transaction conflict: {conflict}"),
            Error::TransactionTooLarge { bytes, bytes_max } => {
                write!(f, "transaction tracks {bytes} bytes, over the limit of {bytes_max} bytes")
            }
            Error::TransactionClosed => f.write_str("transaction already committed or cancelled"),
            Error::TransactionReadOnly => f.write_str("write on a read-only transaction"),
            Error::KeyExists { key } => write!(f, "key {} exists", key.escape_ascii()),
            Error::ConditionNotMet { key } => {
                write!(f, "key {} does not hold the expected value", key.escape_ascii())
            }
            Error::NoSavepoint => f.write_str("no savepoint is set"),
            Error::RetriesExhausted { attempts } => {
                write!(f, "gave up after {attempts} attempts lost to concurrent writers")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(error) => Some(error),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(error: io::Error) -> Error {
        Error::Io(error)
    }
}

impl From<zverse_core::LimitError> for Error {
    fn from(error: zverse_core::LimitError) -> Error {
        match error {
            zverse_core::LimitError::KeyTooLarge { len } => Error::KeyTooLarge { len },
            zverse_core::LimitError::ValueTooLarge { len } => Error::ValueTooLarge { len },
            zverse_core::LimitError::TooLarge { len, len_max, .. } => {
                Error::BatchTooLarge { len, len_max }
            }
            // LimitError is non_exhaustive; a new limit is reported by its own message.
            other => Error::Io(io::Error::new(io::ErrorKind::InvalidInput, other.to_string())),
        }
    }
}

impl Error {
    /// A [`Error::Corruption`] in `file` from a core decoder's error, whose offset is relative
    /// to `base` in the file.
    pub(crate) fn corruption(
        file: impl Into<PathBuf>,
        base: u64,
        corruption: zverse_core::Corruption,
    ) -> Error {
        Error::Corruption {
            file: file.into(),
            offset: base + corruption.offset,
            what: corruption.what.to_owned(),
        }
    }
}
