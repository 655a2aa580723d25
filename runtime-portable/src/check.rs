//! [`Db::check`](crate::Db::check): read every byte of every segment and verify its checksum.
//!
//! Opening a database verifies the manifest, each segment's footer and metadata, and every
//! log record it replays; data blocks are verified lazily, when a read first touches them.
//! `check` touches them all, so a flipped bit anywhere in a live segment is found now rather
//! than by the read that happens to land on it.

use std::path::PathBuf;

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
        let mut entry_count: u64 = 0;
        for entry in Advised::new(segment.iter(), advice) {
            entry.map_err(|corruption| Error::corruption(segment_file.path(), 0, corruption))?;
            entry_count += 1;
        }
        if entry_count != segment.entry_count() {
            return Err(Error::Corruption {
                file: segment_file.path().to_owned(),
                offset: 0,
                what: format!(
                    "segment yields {entry_count} entries, its footer says {}",
                    segment.entry_count()
                ),
            });
        }
        report.segment_count += 1;
        report.block_count += segment.block_count() as u64;
        report.entry_count += entry_count;
        report.segment_bytes += segment_file.meta().file_bytes;
        report.segment_files.push(segment_file.path().to_owned());
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
    let mut entry_count: u64 = 0;
    for entry in segment.iter_key_order() {
        entry.map_err(|corruption| Error::corruption(history_file.path(), 0, corruption))?;
        entry_count += 1;
    }
    if entry_count != segment.entry_count() {
        return Err(Error::Corruption {
            file: history_file.path().to_owned(),
            offset: 0,
            what: format!(
                "history segment yields {entry_count} entries, its footer says {}",
                segment.entry_count()
            ),
        });
    }
    report.segment_count += 1;
    report.block_count += segment.block_count() as u64;
    report.entry_count += entry_count;
    report.segment_bytes += history_file.meta().file_bytes;
    report.segment_files.push(history_file.path().to_owned());
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::{Db, Error, Options};

    #[test]
    fn check_verifies_every_block_and_names_a_corrupt_file() {
        let dir = tempfile::tempdir().unwrap();
        let options = || Options::default().segment_block_bytes(256);
        let db = Db::open(dir.path(), options()).unwrap();
        for index in 0..100u32 {
            db.put(format!("key:{index:03}").as_bytes(), &[7; 40]).unwrap();
        }
        db.flush().unwrap();
        db.put(b"in the log", b"only").unwrap();
        let report = db.check().unwrap();
        assert_eq!((report.segment_count, report.entry_count), (1, 100));
        assert!(report.block_count > 1, "small blocks: {report:?}");
        assert_eq!(report.memtable_versions, 1);
        db.close().unwrap();
        drop(db);

        let segment = report.segment_files[0].clone();
        let mut bytes = std::fs::read(&segment).unwrap();
        bytes[300] ^= 1; // inside the second data block, past the first (256-byte target)
        std::fs::write(&segment, bytes).unwrap();
        let db = Db::open(dir.path(), options()).unwrap();
        match db.check() {
            Err(Error::Corruption { file, what, .. }) => {
                assert_eq!(file, segment);
                assert!(what.contains("checksum"), "{what}");
            }
            other => panic!("expected corruption, got {other:?}"),
        }
    }
}
