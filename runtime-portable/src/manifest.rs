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
