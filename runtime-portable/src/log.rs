//! Log files: the first tier of the data. Every commit group is appended to the active log;
//! recovery replays the logs the manifest does not cover yet. Record framing is
//! `zverse_core::record`; a log file is records back to back from offset 0.

use std::path::Path;

use zverse_core::Version;
use zverse_core::record::{LogEnd, LogReader};

use crate::error::{Error, Result};
use crate::io::{Io, IoFile};
use crate::memtable::Memtable;

/// The file name of log `number`.
pub(crate) fn log_file_name(number: u64) -> String {
    format!("{number:020}.log")
}

/// The log being appended to. Owned by the commit leader (behind a mutex the periodic syncer
/// also takes).
#[derive(Debug)]
pub(crate) struct ActiveLog {
    pub number: u64,
    pub file: Box<dyn IoFile>,
    /// Where the next group goes: the bytes before it are whole records.
    pub offset_end: u64,
    /// Whether bytes were appended since the last sync.
    pub unsynced: bool,
}

impl ActiveLog {
    /// Creates log `number` in `dir` and makes its directory entry durable, so that synced
    /// appends to it survive a crash.
    pub(crate) fn create(io: &dyn Io, dir: &Path, number: u64) -> Result<ActiveLog> {
        let file = io.create_new(&dir.join(log_file_name(number)))?;
        io.sync_dir(dir)?;
        Ok(ActiveLog { number, file, offset_end: 0, unsynced: false })
    }
}

/// What replaying one log found.
#[derive(Debug)]
pub(crate) struct Replayed {
    pub record_count: u64,
    pub version_max: Option<Version>,
}

/// Replays log `number` into `memtable`. A damaged tail of the last log (`is_last`) is a torn
/// write that was never acknowledged: the file is truncated to its last whole record. Any
/// other damage is [`Error::Corruption`].
pub(crate) fn replay(
    io: &dyn Io,
    dir: &Path,
    number: u64,
    is_last: bool,
    memtable: &Memtable,
) -> Result<Replayed> {
    let path = dir.join(log_file_name(number));
    let file = io.open_read_write(&path)?;
    let len = file.len_bytes()?;
    let mut bytes = vec![
        0;
        usize::try_from(len).map_err(|_| Error::Corruption {
            file: path.clone(),
            offset: 0,
            what: "log file larger than the address space".into(),
        })?
    ];
    file.read_exact_at(&mut bytes, 0)?;
    let mut reader = LogReader::new(&bytes);
    let mut replayed = Replayed { record_count: 0, version_max: None };
    for (_, record) in reader.by_ref() {
        let Ok(record) = record else { break };
        for entry in record.entries() {
            memtable.insert(entry.key, entry.version, entry.value);
        }
        replayed.record_count += 1;
        replayed.version_max = replayed.version_max.max(Some(record.version()));
    }
    match reader.end() {
        LogEnd::Clean => {}
        LogEnd::Tail { offset, .. } if is_last => {
            file.set_len(offset as u64)?;
            file.sync_data()?;
        }
        LogEnd::Tail { offset, cause } | LogEnd::Corrupt { offset, cause, .. } => {
            return Err(Error::Corruption {
                file: path,
                offset: offset as u64,
                what: format!("log record does not decode: {cause}"),
            });
        }
        _ => {
            return Err(Error::Corruption {
                file: path,
                offset: 0,
                what: "log ends in a way this version does not know".into(),
            });
        }
    }
    Ok(replayed)
}
