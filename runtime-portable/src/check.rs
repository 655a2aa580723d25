//! [`Db::check`](crate::Db::check): read every byte of every segment and verify its checksum.
//!
//! Opening a database verifies the manifest, each segment's footer and metadata, and every
//! log record it replays; data blocks are verified lazily, when a read first touches them.
//! `check` touches them all, so a flipped bit anywhere in a live segment is found now rather
//! than by the read that happens to land on it.

use std::path::{Path, PathBuf};

use zverse_core::zkey::ZBox;

use crate::error::{Error, Result};
use crate::inner::Inner;
use crate::locality::{Advised, ScanPurpose};
use crate::segment_file::HistoryFile;
use crate::{log, segment_file};

impl Inner {
    /// Every log and segment the manifest records is in the directory: a missing or renamed
    /// one is [`Error::Corruption`] naming it. A read-only open checked that at its open and
    /// is not checked again: a writer in another process may have replaced files since.
    fn check_files_present(&self) -> Result<()> {
        if self.options.read_only {
            return Ok(());
        }
        let names = self.io.list_dir(&self.dir)?;
        let manifest = self.state.manifest();
        let logs = manifest.logs.iter().map(|&n| (log::log_file_name(n), "log"));
        let segments = manifest
            .segments
            .iter()
            .map(|m| (segment_file::segment_file_name(m.file_number), "segment"));
        for (name, kind) in logs.chain(segments) {
            if !names.contains(&name) {
                return Err(Error::Corruption {
                    file: self.dir.join(name),
                    offset: 0,
                    what: format!("missing: the manifest records this {kind}"),
                });
            }
        }
        Ok(())
    }
}

/// What [`Db::check`](crate::Db::check) verified: every count covers data whose checksums
/// all matched.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckReport {
    /// Segment files checked.
    pub segment_count: usize,
    /// Data blocks checked (every block of every segment).
    pub block_count: u64,
    /// Entries (versions) decoded from the segments.
    pub entry_count: u64,
    /// Bytes of the segment files checked.
    pub segment_bytes: u64,
    /// Versions in the memtables, verified when their log records were replayed or written.
    pub memtable_versions: u64,
    /// The segment files checked: level 0 newest first, each level in key order, then
    /// history newest first.
    pub segment_files: Vec<PathBuf>,
}

/// [`Db::check`](crate::Db::check).
pub(crate) fn check(inner: &Inner) -> Result<CheckReport> {
    inner.check_open()?;
    inner.check_files_present()?;
    let tiers = inner.tiers();
    let mut report = CheckReport {
        memtable_versions: tiers.memtables().map(|m| m.entry_count() as u64).sum(),
        ..CheckReport::default()
    };
    for segment_file in tiers.current() {
        // Without the per-block memory of verified blocks: every block is hashed again.
        let segment = segment_file.segment().with_verified_blocks(&[]);
        let everything = ZBox::new(0, u64::MAX, 0, u64::MAX);
        let advice = segment_file.scan_advice(everything.as_ref(), ScanPurpose::Maintenance);
        let entries = Advised::new(segment.iter(), advice);
        let entry_count = count_entries(segment_file.path(), entries, segment.entry_count())?;
        let blocks = segment.block_count();
        report.add(segment_file.path(), blocks, entry_count, segment_file.meta().file_bytes);
    }
    for history_file in &tiers.history {
        check_history(history_file, &mut report)?;
    }
    let count = tiers.current().count() + tiers.history.len();
    assert_eq!(report.segment_count, count, "every segment is checked");
    Ok(report)
}

/// Reads every entry of a history segment (through its key-order index, which reaches every
/// block), hashing every block again.
fn check_history(history_file: &HistoryFile, report: &mut CheckReport) -> Result<()> {
    let segment = history_file.segment().with_verified_blocks(&[]);
    let path = history_file.path();
    let entry_count = count_entries(path, segment.iter_key_order(), segment.entry_count())?;
    report.add(path, segment.block_count(), entry_count, history_file.meta().file_bytes);
    Ok(())
}

/// Reads every entry `entries` yields and checks there are as many as the footer says.
fn count_entries<T>(
    path: &Path,
    entries: impl Iterator<Item = std::result::Result<T, zverse_core::Corruption>>,
    footer_count: u64,
) -> Result<u64> {
    let mut entry_count: u64 = 0;
    for entry in entries {
        entry.map_err(|corruption| Error::corruption(path, 0, corruption))?;
        entry_count += 1;
    }
    if entry_count != footer_count {
        return Err(Error::Corruption {
            file: path.to_owned(),
            offset: 0,
            what: format!("segment yields {entry_count} entries, its footer says {footer_count}"),
        });
    }
    Ok(entry_count)
}

impl CheckReport {
    /// Counts one checked segment file.
    fn add(&mut self, path: &Path, block_count: usize, entry_count: u64, file_bytes: u64) {
        self.segment_count += 1;
        self.block_count += block_count as u64;
        self.entry_count += entry_count;
        self.segment_bytes += file_bytes;
        self.segment_files.push(path.to_owned());
    }
}
