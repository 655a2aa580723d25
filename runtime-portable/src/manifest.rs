//! The manifest: which segments and which logs make up the database, and the counters that
//! must survive a restart (the file numbers reserved, the newest version in a segment, the
//! retention horizon). One small file, `MANIFEST`, replaced atomically
//! on every change: written to `MANIFEST.tmp`, synced, renamed over `MANIFEST`, and the
//! directory synced. Byte layout: docs/format.md, "Manifest".
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::path::Path;

use zverse_core::checksum::{CHECKSUM_LEN, checksum};
use zverse_core::{Corruption, Version};

use crate::error::{Error, Result};
use crate::io::Io;

/// The manifest's file name.
pub(crate) const MANIFEST_NAME: &str = "MANIFEST";
/// Where a new manifest is written before it replaces the old one.
pub(crate) const MANIFEST_TEMP_NAME: &str = "MANIFEST.tmp";

const MAGIC: [u8; 8] = *b"ZVERSEMF";
/// The format this build writes and reads. Version 1 (no log set, no horizon) is refused with
/// [`Error::FormatUnsupported`].
pub(crate) const FORMAT_VERSION: u32 = 2;
const MAGIC_LEN: usize = MAGIC.len();
const HEADER_LEN: usize = MAGIC_LEN + size_of::<u32>() + size_of::<u32>();
const COUNTERS_LEN: usize = 4 * size_of::<u64>() + 2 * size_of::<u32>();
const SEGMENT_LEN: usize = 6 * size_of::<u64>();
const LOG_LEN: usize = size_of::<u64>();
/// More segments than any database of this design reaches; bounds what a decoder trusts.
const SEGMENT_COUNT_MAX: u32 = 1 << 20;
/// More live logs than any database reaches (one per sealed memtable waiting for its flush,
/// plus the active one); bounds what a decoder trusts.
const LOG_COUNT_MAX: u32 = 1 << 16;
/// The largest manifest a reader accepts.
const MANIFEST_LEN_MAX: usize = HEADER_LEN
    + COUNTERS_LEN
    + SEGMENT_LEN * SEGMENT_COUNT_MAX as usize
    + LOG_LEN * LOG_COUNT_MAX as usize
    + CHECKSUM_LEN;

const _: () = assert!(HEADER_LEN == 16);
const _: () = assert!(COUNTERS_LEN == 40);
const _: () = assert!(SEGMENT_LEN == 48);

/// One segment as the manifest records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentMeta {
    /// The segment's file number: its file is `{file_number:020}.seg`.
    pub file_number: u64,
    pub entry_count: u64,
    pub file_bytes: u64,
    /// Bytes of the keys and values the segment holds: what space amplification divides by.
    pub payload_bytes: u64,
    pub version_min: Version,
    pub version_max: Version,
}

/// The database's durable metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// Every file number the engine has used or may use before the next manifest is written
    /// is below this (logs and segments share one sequence). A file numbered at or above it
    /// is not the engine's: never used, never deleted, never a source of numbers.
    pub file_number_next: u64,
    /// The largest version ever written to a segment: the clock starts above it.
    pub version_last: Version,
    /// Reads as of a version below it may miss versions compaction dropped; at or above it
    /// every read is exact. `Version::ZERO` until a compaction drops a version.
    pub horizon: Version,
    /// At most `horizon`: a point read at or above it that finds a retained version of its
    /// key is exact (every version compaction dropped below it had no older version kept).
    pub horizon_found: Version,
    /// The live segments, newest first.
    pub segments: Vec<SegmentMeta>,
    /// The live logs, oldest first: replayed in this order on open. Each one must exist.
    pub logs: Vec<u64>,
}

impl Manifest {
    /// The manifest's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let body_len = COUNTERS_LEN + SEGMENT_LEN * self.segments.len() + LOG_LEN * self.logs.len();
        let mut out = Vec::with_capacity(HEADER_LEN + body_len + CHECKSUM_LEN);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(body_len as u32).to_le_bytes());
        out.extend_from_slice(&self.file_number_next.to_le_bytes());
        out.extend_from_slice(&self.version_last.get().to_le_bytes());
        out.extend_from_slice(&self.horizon.get().to_le_bytes());
        out.extend_from_slice(&self.horizon_found.get().to_le_bytes());
        out.extend_from_slice(&(self.segments.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.logs.len() as u32).to_le_bytes());
        for segment in &self.segments {
            for field in [
                segment.file_number,
                segment.entry_count,
                segment.file_bytes,
                segment.payload_bytes,
                segment.version_min.get(),
                segment.version_max.get(),
            ] {
                out.extend_from_slice(&field.to_le_bytes());
            }
        }
        for log in &self.logs {
            out.extend_from_slice(&log.to_le_bytes());
        }
        let sum = checksum(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        assert_eq!(out.len(), HEADER_LEN + body_len + CHECKSUM_LEN, "manifest length");
        out
    }

    /// Decodes a manifest; every inconsistency is a [`Corruption`] at the offending offset.
    pub(crate) fn decode_from(bytes: &[u8]) -> Result<Manifest, Corruption> {
        let mut reader = Reader { bytes, position: 0 };
        if reader.take(MAGIC_LEN)? != MAGIC {
            return Err(Corruption::new(0, "not a ZVerse manifest (bad magic)"));
        }
        if reader.u32()? != FORMAT_VERSION {
            return Err(Corruption::new(MAGIC_LEN as u64, "unknown manifest format version"));
        }

        let body_len = reader.u32()? as usize;
        let checked_len = HEADER_LEN + body_len;
        let stored_sum = bytes
            .get(checked_len..checked_len + CHECKSUM_LEN)
            .and_then(|sum| sum.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or(Corruption::new(MAGIC_LEN as u64 + 4, "manifest shorter than its length"))?;
        if bytes.len() != checked_len + CHECKSUM_LEN {
            return Err(Corruption::new(checked_len as u64, "bytes after the manifest's end"));
        }
        let covered = bytes.get(..checked_len).unwrap_or_default();
        if checksum(covered) != stored_sum {
            return Err(Corruption::new(checked_len as u64, "manifest checksum mismatch"));
        }
        reader.bytes = covered;
        let manifest = reader.body()?;
        Ok(manifest)
    }

    /// Reads the manifest in `dir`, or `None` if there is none.
    pub(crate) fn read(io: &dyn Io, dir: &Path) -> Result<Option<Manifest>> {
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

    /// Replaces the manifest in `dir` with this one, atomically and durably.
    pub(crate) fn write(&self, io: &dyn Io, dir: &Path) -> Result<()> {
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
    let version = bytes.get(MAGIC_LEN..MAGIC_LEN + size_of::<u32>());
    let version = version.and_then(|v| v.try_into().ok()).map(u32::from_le_bytes);
    match version {
        Some(version @ 1) if bytes.starts_with(&MAGIC) => Err(Error::FormatUnsupported {
            file: path.to_path_buf(),
            version,
            version_supported: FORMAT_VERSION,
        }),
        _ => Ok(()),
    }
}

/// A bounds-checked cursor over the manifest's bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], Corruption> {
        let end = self.position.checked_add(len);
        let taken = end.and_then(|end| self.bytes.get(self.position..end));
        let taken = taken.ok_or(Corruption::new(self.position as u64, "manifest truncated"))?;
        self.position += len;
        Ok(taken)
    }

    fn u32(&mut self) -> Result<u32, Corruption> {
        let bytes = self.take(size_of::<u32>())?;
        Ok(u32::from_le_bytes(bytes.try_into().unwrap_or_default()))
    }

    fn u64(&mut self) -> Result<u64, Corruption> {
        let bytes = self.take(size_of::<u64>())?;
        Ok(u64::from_le_bytes(bytes.try_into().unwrap_or_default()))
    }

    fn body(&mut self) -> Result<Manifest, Corruption> {
        let file_number_next = self.u64()?;
        let version_last = Version::new(self.u64()?);
        let horizon = Version::new(self.u64()?);
        let horizon_found_offset = self.position as u64;
        let horizon_found = Version::new(self.u64()?);
        if horizon_found > horizon {
            return Err(Corruption::new(horizon_found_offset, "manifest horizons out of order"));
        }
        let count_offset = self.position as u64;
        let segment_count = self.u32()?;
        let log_count = self.u32()?;
        if segment_count > SEGMENT_COUNT_MAX {
            return Err(Corruption::new(count_offset, "manifest segment count out of range"));
        }
        if log_count > LOG_COUNT_MAX {
            return Err(Corruption::new(count_offset + 4, "manifest log count out of range"));
        }
        let mut segments = Vec::with_capacity(segment_count as usize);
        for _ in 0..segment_count {
            let offset = self.position as u64;
            let segment = SegmentMeta {
                file_number: self.u64()?,
                entry_count: self.u64()?,
                file_bytes: self.u64()?,
                payload_bytes: self.u64()?,
                version_min: Version::new(self.u64()?),
                version_max: Version::new(self.u64()?),
            };
            if segment.file_number >= file_number_next || segment.version_min > segment.version_max
            {
                return Err(Corruption::new(offset, "manifest segment entry out of range"));
            }
            segments.push(segment);
        }
        let mut logs: Vec<u64> = Vec::with_capacity(log_count as usize);
        for _ in 0..log_count {
            let offset = self.position as u64;
            let log = self.u64()?;
            let ascending = logs.last().is_none_or(|&previous| previous < log);
            if log >= file_number_next || !ascending {
                return Err(Corruption::new(offset, "manifest log entry out of range"));
            }
            logs.push(log);
        }
        if self.position != self.bytes.len() {
            return Err(Corruption::new(self.position as u64, "manifest body length mismatch"));
        }
        Ok(Manifest { file_number_next, version_last, horizon, horizon_found, segments, logs })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            file_number_next: 9,
            version_last: Version::new(1_000),
            horizon: Version::new(700),
            horizon_found: Version::new(650),
            logs: vec![7, 8],
            segments: vec![
                SegmentMeta {
                    file_number: 6,
                    entry_count: 10,
                    file_bytes: 4_096,
                    payload_bytes: 2_000,
                    version_min: Version::new(500),
                    version_max: Version::new(1_000),
                },
                SegmentMeta {
                    file_number: 3,
                    entry_count: 2,
                    file_bytes: 300,
                    payload_bytes: 100,
                    version_min: Version::new(1),
                    version_max: Version::new(499),
                },
            ],
        }
    }

    #[test]
    fn round_trips() {
        for manifest in [Manifest::default(), sample()] {
            assert_eq!(Manifest::decode_from(&manifest.encode()), Ok(manifest));
        }
    }

    #[test]
    fn every_flipped_bit_and_every_truncation_is_corruption() {
        let bytes = sample().encode();
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(Manifest::decode_from(&flipped).is_err(), "bit {bit} flipped");
        }
        for len in 0..bytes.len() {
            assert!(Manifest::decode_from(&bytes[..len]).is_err(), "truncated to {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Manifest::decode_from(&longer).is_err(), "trailing byte");
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

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(0u8.., 0..256)) {
            let _ = Manifest::decode_from(&bytes);
        }

        #[test]
        fn arbitrary_bodies_behind_a_valid_frame_never_panic(
            body in proptest::collection::vec(0u8.., 0..200),
        ) {
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
            bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&body);
            let sum = checksum(&bytes);
            bytes.extend_from_slice(&sum.to_le_bytes());
            let _ = Manifest::decode_from(&bytes);
        }
    }
}
