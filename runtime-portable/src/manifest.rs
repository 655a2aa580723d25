//! The manifest file: `MANIFEST`, replaced atomically on every change (written to
//! `MANIFEST.tmp`, synced, renamed over `MANIFEST`, and the directory synced). Its codec,
//! [`Manifest`] and [`SegmentMeta`], is the core's (`zverse_core::manifest`; byte layout:
//! docs/format.md, "Manifest"); this module keeps the file I/O.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::path::Path;

use zverse_core::manifest::{FORMAT_VERSION, MANIFEST_LEN_MAX, format_version_of};
pub(crate) use zverse_core::manifest::{Manifest, SegmentMeta, Tier};

use crate::error::{Error, Result};
use crate::io::Io;

/// The manifest's file name.
pub(crate) const MANIFEST_NAME: &str = "MANIFEST";
/// Where a new manifest is written before it replaces the old one.
pub(crate) const MANIFEST_TEMP_NAME: &str = "MANIFEST.tmp";

/// The manifest as a file: read from a database directory, replaced in one atomically.
pub(crate) trait ManifestFile: Sized {
    /// Reads the manifest in `dir`, or `None` if there is none.
    fn read(io: &dyn Io, dir: &Path) -> Result<Option<Self>>;

    /// Replaces the manifest in `dir` with this one, atomically and durably.
    fn write(&self, io: &dyn Io, dir: &Path) -> Result<()>;
}

impl ManifestFile for Manifest {
    fn read(io: &dyn Io, dir: &Path) -> Result<Option<Manifest>> {
        let path = dir.join(MANIFEST_NAME);
        let file = match io.open_read(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let len = usize::try_from(file.len_bytes()?).unwrap_or(usize::MAX);
        if len > MANIFEST_LEN_MAX {
            return Err(Error::Corruption {
                file: path,
                offset: 0,
                what: "manifest larger than any manifest can be".into(),
            });
        }
        let mut bytes = vec![0; len];
        file.read_exact_at(&mut bytes, 0)?;
        refuse_other_format(&path, &bytes)?;
        Manifest::decode_from(&bytes).map(Some).map_err(|c| Error::corruption(path, 0, c))
    }

    fn write(&self, io: &dyn Io, dir: &Path) -> Result<()> {
        let temp = dir.join(MANIFEST_TEMP_NAME);
        match io.remove_file(&temp) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error.into()),
        }
        let file = io.create_new(&temp)?;
        file.write_all_at_and_sync(&[&self.encode()], 0)?;
        drop(file);
        io.rename(&temp, &dir.join(MANIFEST_NAME))?;
        io.sync_dir(dir)?;
        Ok(())
    }
}

/// Refuses a manifest of an older format (version 1) with a typed error naming it, before its
/// bytes are decoded as ours. Any other unknown version is corruption (`decode_from`).
fn refuse_other_format(path: &Path, bytes: &[u8]) -> Result<()> {
    match format_version_of(bytes) {
        Some(version @ 1) => Err(Error::FormatUnsupported {
            file: path.to_path_buf(),
            version,
            version_supported: FORMAT_VERSION,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use zverse_core::Version;

    use super::*;

    fn sample() -> Manifest {
        Manifest {
            file_number_next: 9,
            version_last: Version::new(1_000),
            logs: vec![7, 8],
            ..Manifest::default()
        }
    }

    /// A manifest of format 2 (no tiers), made from `bytes` of format 3 by dropping each
    /// segment's `tier` field.
    fn as_format_2(bytes: &[u8]) -> Vec<u8> {
        let segment_count = u32::from_le_bytes(bytes[48..52].try_into().unwrap()) as usize;
        let mut out = bytes[..56].to_vec();
        out[8..12].copy_from_slice(&2u32.to_le_bytes());
        for index in 0..segment_count {
            let at = 56 + index * 52;
            out.extend_from_slice(&bytes[at..at + 48]);
        }
        let body_end = bytes.len() - 8;
        out.extend_from_slice(&bytes[56 + segment_count * 52..body_end]);
        let body_len = u32::try_from(out.len() - 16).unwrap();
        out[12..16].copy_from_slice(&body_len.to_le_bytes());
        let sum = zverse_core::checksum::checksum(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// A database whose manifest is format 2 opens with every segment at level 0, reads
    /// everything, and the next manifest write is format 3.
    #[test]
    fn a_format_2_manifest_opens_as_level_0_and_is_rewritten_as_format_3() {
        let dir = tempfile::tempdir().unwrap();
        let options = || {
            let options = crate::Options::default().durability(crate::Durability::None);
            options.compaction_trigger_segments(1_000)
        };
        let db = crate::Db::open(dir.path(), options()).unwrap();
        for round in 0..3u32 {
            for index in 0..50u32 {
                db.put(format!("k{index:02}").as_bytes(), format!("{round}").as_bytes()).unwrap();
            }
            db.flush().unwrap();
        }
        db.put(b"k00", b"3").unwrap();
        db.flush().unwrap();
        db.close().unwrap();
        drop(db);
        let path = dir.path().join(MANIFEST_NAME);
        let tiered = std::fs::read(&path).unwrap();
        let untiered = as_format_2(&tiered);
        assert_eq!(format_version_of(&untiered), Some(2));
        std::fs::write(&path, &untiered).unwrap();
        let db = crate::Db::open(dir.path(), options()).unwrap();
        let stats = db.stats();
        assert_eq!(stats.level_segment_counts, [stats.segment_count], "all at level 0");
        assert_eq!(std::fs::read(&path).unwrap(), untiered, "not rewritten by the open");
        assert_eq!(db.get(b"k00").unwrap().unwrap(), b"3");
        assert_eq!(db.history(b"k01").unwrap().count(), 3);
        assert_eq!(db.range(..).unwrap().count(), 50);
        db.put(b"k01", b"4").unwrap();
        db.flush().unwrap();
        assert_eq!(format_version_of(&std::fs::read(&path).unwrap()), Some(FORMAT_VERSION));
        db.compact().unwrap();
        assert_eq!(db.history(b"k01").unwrap().count(), 4);
        drop(db);
        let db = crate::Db::open(dir.path(), options()).unwrap();
        assert_eq!(db.stats().segment_count_open, 0, "{:?}", db.stats());
        assert_eq!(db.get(b"k01").unwrap().unwrap(), b"4");
    }

    #[test]
    fn writes_atomically_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let io = crate::io::StdIo;
        assert_eq!(Manifest::read(&io, dir.path()).unwrap(), None);
        sample().write(&io, dir.path()).unwrap();
        let mut next = sample();
        next.file_number_next += 1;
        next.write(&io, dir.path()).unwrap();
        assert_eq!(Manifest::read(&io, dir.path()).unwrap(), Some(next));
        assert!(!dir.path().join(MANIFEST_TEMP_NAME).exists(), "the temporary was renamed");
    }
}
