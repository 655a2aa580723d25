//! The manifest's codec: which segments and which logs make up a database, and the counters
//! that must survive a restart (the file numbers reserved, the newest version in a segment,
//! the retention horizon). The engine (`zverse`'s `manifest.rs`) keeps the file and its
//! atomic replacement. Byte layout: docs/format.md, "Manifest".
//!
//! ```text
//! header:   magic "ZVERSEMF" | format u32 (= FORMAT_VERSION) | body_len u32
//! body:     file_number_next u64 | version_last u64 | horizon u64 | horizon_found u64
//!           | segment_count u32 | log_count u32
//!           | segment_count x (file_number | entry_count | file_bytes | payload_bytes
//!                              | version_min | version_max, each u64 | tier u32)
//!           | log_count x log number u64
//! trailer:  XXH3-64 of the header and body
//! ```
//!
//! Format 2 had no `tier` (48-byte segment entries): it decodes with every segment at level 0
//! and is written back as format 3 by the next manifest write.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use alloc::vec::Vec;

use crate::Version;
use crate::bytes::{Reader, Writer};
use crate::checksum::{CHECKSUM_LEN, checksum};
use crate::error::Corruption;

/// The manifest's magic bytes.
pub const MAGIC: [u8; 8] = *b"ZVERSEMF";
/// The format this build writes. It reads it and version 2 (no segment tiers: every segment
/// at level 0); version 1 (no log set, no horizon) is refused by name by the engine
/// ([`format_version_of`]).
pub const FORMAT_VERSION: u32 = 3;
/// The older format this build still reads.
pub const FORMAT_VERSION_UNTIERED: u32 = 2;
const MAGIC_LEN: usize = MAGIC.len();
const HEADER_LEN: usize = MAGIC_LEN + size_of::<u32>() + size_of::<u32>();
const COUNTERS_LEN: usize = 4 * size_of::<u64>() + 2 * size_of::<u32>();
const SEGMENT_LEN_V2: usize = 6 * size_of::<u64>();
const SEGMENT_LEN: usize = SEGMENT_LEN_V2 + size_of::<u32>();
/// The deepest current level a manifest may name.
pub const LEVEL_MAX: u8 = 15;
/// The `tier` field of a history segment.
const TIER_HISTORY: u32 = u32::MAX;
const LOG_LEN: usize = size_of::<u64>();
/// More segments than any database of this design reaches; bounds what a decoder trusts.
const SEGMENT_COUNT_MAX: u32 = 1 << 20;
/// More live logs than any database reaches (one per sealed memtable waiting for its flush,
/// plus the active one); bounds what a decoder trusts.
const LOG_COUNT_MAX: u32 = 1 << 16;
/// The largest manifest a reader accepts.
pub const MANIFEST_LEN_MAX: usize = HEADER_LEN
    + COUNTERS_LEN
    + SEGMENT_LEN * SEGMENT_COUNT_MAX as usize
    + LOG_LEN * LOG_COUNT_MAX as usize
    + CHECKSUM_LEN;

const _: () = assert!(HEADER_LEN == 16);
const _: () = assert!(COUNTERS_LEN == 40);
const _: () = assert!(SEGMENT_LEN == 52);
const _: () = assert!(MANIFEST_LEN_MAX <= u32::MAX as usize);

/// Where a segment sits in the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tier {
    /// A current segment of level `n`: level 0 holds flush outputs (Z order, overlapping key
    /// ranges, several versions of a key); levels 1 to [`LEVEL_MAX`] each one sorted run of
    /// segments with disjoint key ranges and one version per key.
    Level(u8),
    /// A history segment: versions compaction demoted (rank-space Z order).
    History,
}

impl Default for Tier {
    fn default() -> Tier {
        Tier::Level(0)
    }
}

impl Tier {
    /// The `tier` field: the level, or `u32::MAX` for history.
    #[must_use]
    pub fn encode(self) -> u32 {
        match self {
            Tier::Level(level) => u32::from(level),
            Tier::History => TIER_HISTORY,
        }
    }

    /// The tier a `tier` field names, if any.
    #[must_use]
    pub fn decode(field: u32) -> Option<Tier> {
        match field {
            TIER_HISTORY => Some(Tier::History),
            level => u8::try_from(level).ok().filter(|&l| l <= LEVEL_MAX).map(Tier::Level),
        }
    }
}

/// One segment as the manifest records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentMeta {
    /// The segment's file number: its file is `{file_number:020}.seg`.
    pub file_number: u64,
    /// Entries (versions) it holds.
    pub entry_count: u64,
    /// The file's length.
    pub file_bytes: u64,
    /// Bytes of the keys and values the segment holds: what space amplification divides by.
    pub payload_bytes: u64,
    /// Its oldest version.
    pub version_min: Version,
    /// Its newest version.
    pub version_max: Version,
    /// Where it sits: level 0, a current level, or history.
    pub tier: Tier,
}

/// A database's durable metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
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

/// The format version a manifest says it has, if `bytes` start with the manifest magic: lets
/// the engine name an older format before the bytes are decoded as this one.
#[must_use]
pub fn format_version_of(bytes: &[u8]) -> Option<u32> {
    let mut reader = Reader::new(bytes, "manifest truncated");
    (reader.array::<MAGIC_LEN>().ok()? == MAGIC).then(|| reader.u32().ok()).flatten()
}

impl Manifest {
    /// The manifest's bytes.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let body_len = COUNTERS_LEN + SEGMENT_LEN * self.segments.len() + LOG_LEN * self.logs.len();
        let len = HEADER_LEN + body_len + CHECKSUM_LEN;
        assert!(len <= MANIFEST_LEN_MAX, "the engine keeps a manifest within its limits");
        let mut writer = Writer::new(Vec::with_capacity(len));
        let written = self.encode_fields(&mut writer, body_len as u32);
        let Ok(()) = written;
        let mut out = writer.into_sink();
        let sum = checksum(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        assert_eq!(out.len(), len, "manifest length");
        out
    }

    fn encode_fields(
        &self,
        writer: &mut Writer<Vec<u8>>,
        body_len: u32,
    ) -> Result<(), core::convert::Infallible> {
        writer.bytes(&MAGIC)?.u32(FORMAT_VERSION)?.u32(body_len)?;
        writer.u64(self.file_number_next)?.u64(self.version_last.get())?;
        writer.u64(self.horizon.get())?.u64(self.horizon_found.get())?;
        writer.u32(self.segments.len() as u32)?.u32(self.logs.len() as u32)?;
        for segment in &self.segments {
            writer.u64(segment.file_number)?.u64(segment.entry_count)?;
            writer.u64(segment.file_bytes)?.u64(segment.payload_bytes)?;
            writer.u64(segment.version_min.get())?.u64(segment.version_max.get())?;
            writer.u32(segment.tier.encode())?;
        }
        for &log in &self.logs {
            writer.u64(log)?;
        }
        Ok(())
    }

    /// Decodes a manifest; every inconsistency is a [`Corruption`] at the offending offset.
    pub fn decode_from(bytes: &[u8]) -> Result<Manifest, Corruption> {
        let mut reader = Reader::new(bytes, "manifest truncated");
        if reader.array::<MAGIC_LEN>()? != MAGIC {
            return Err(Corruption::new(0, "not a ZVerse manifest (bad magic)"));
        }
        let format = reader.u32()?;
        if format != FORMAT_VERSION && format != FORMAT_VERSION_UNTIERED {
            return Err(Corruption::new(MAGIC_LEN as u64, "unknown manifest format version"));
        }
        let body_len = reader.u32()? as usize;
        let short = Corruption::new(MAGIC_LEN as u64 + 4, "manifest shorter than its length");
        let checked_len = HEADER_LEN.checked_add(body_len).ok_or(short)?;
        let (covered, sum) = bytes.split_at_checked(checked_len).ok_or(short)?;
        let stored_sum = Reader::new(sum, "").u64().map_err(|_| short)?;
        if sum.len() != CHECKSUM_LEN {
            return Err(Corruption::new(checked_len as u64, "bytes after the manifest's end"));
        }
        if checksum(covered) != stored_sum {
            return Err(Corruption::new(checked_len as u64, "manifest checksum mismatch"));
        }
        let mut reader = Reader::new(covered, "manifest truncated");
        reader.take(HEADER_LEN)?;
        decode_body(&mut reader, format == FORMAT_VERSION)
    }
}

/// The body, after the header, which the checksum has vouched for; `tiered`: format 3.
fn decode_body(reader: &mut Reader<'_>, tiered: bool) -> Result<Manifest, Corruption> {
    let file_number_next = reader.u64()?;
    let version_last = Version::new(reader.u64()?);
    let horizon = Version::new(reader.u64()?);
    let horizon_found_at = reader.corruption("manifest horizons out of order");
    let horizon_found = Version::new(reader.u64()?);
    if horizon_found > horizon {
        return Err(horizon_found_at);
    }
    let counts_at = reader.position() as u64;
    let segment_count = reader.u32()?;
    let log_count = reader.u32()?;
    if segment_count > SEGMENT_COUNT_MAX {
        return Err(Corruption::new(counts_at, "manifest segment count out of range"));
    }
    if log_count > LOG_COUNT_MAX {
        return Err(Corruption::new(counts_at + 4, "manifest log count out of range"));
    }
    let segments = decode_segments(reader, segment_count, file_number_next, tiered)?;
    let logs = decode_logs(reader, log_count, file_number_next)?;
    if !reader.is_empty() {
        return Err(reader.corruption("manifest body length mismatch"));
    }
    Ok(Manifest { file_number_next, version_last, horizon, horizon_found, segments, logs })
}

fn decode_segments(
    reader: &mut Reader<'_>,
    count: u32,
    file_number_next: u64,
    tiered: bool,
) -> Result<Vec<SegmentMeta>, Corruption> {
    let mut segments = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let out_of_range = reader.corruption("manifest segment entry out of range");
        let mut segment = SegmentMeta {
            file_number: reader.u64()?,
            entry_count: reader.u64()?,
            file_bytes: reader.u64()?,
            payload_bytes: reader.u64()?,
            version_min: Version::new(reader.u64()?),
            version_max: Version::new(reader.u64()?),
            tier: Tier::Level(0),
        };
        if tiered {
            let tier_at = reader.corruption("manifest segment tier unknown");
            segment.tier = Tier::decode(reader.u32()?).ok_or(tier_at)?;
        }
        if segment.file_number >= file_number_next || segment.version_min > segment.version_max {
            return Err(out_of_range);
        }
        segments.push(segment);
    }
    Ok(segments)
}

fn decode_logs(
    reader: &mut Reader<'_>,
    count: u32,
    file_number_next: u64,
) -> Result<Vec<u64>, Corruption> {
    let mut logs: Vec<u64> = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let out_of_range = reader.corruption("manifest log entry out of range");
        let log = reader.u64()?;
        let ascending = logs.last().is_none_or(|&previous| previous < log);
        if log >= file_number_next || !ascending {
            return Err(out_of_range);
        }
        logs.push(log);
    }
    Ok(logs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use alloc::vec;

    use super::*;

    fn segment(file_number: u64, version_min: u64, version_max: u64) -> SegmentMeta {
        SegmentMeta {
            file_number,
            entry_count: 10,
            file_bytes: 4_096,
            payload_bytes: 2_000,
            version_min: Version::new(version_min),
            version_max: Version::new(version_max),
            tier: Tier::Level(0),
        }
    }

    fn sample() -> Manifest {
        Manifest {
            file_number_next: 9,
            version_last: Version::new(1_000),
            horizon: Version::new(700),
            horizon_found: Version::new(650),
            logs: vec![7, 8],
            segments: vec![
                segment(6, 500, 1_000),
                SegmentMeta { tier: Tier::Level(2), ..segment(4, 1, 600) },
                SegmentMeta { tier: Tier::History, ..segment(3, 1, 499) },
            ],
        }
    }

    /// Format 2's bytes as the engine wrote them before the codec moved into the core
    /// (captured from `runtime-portable/src/manifest.rs` at 0759d69): they still decode, with
    /// every segment at level 0, and are written back as format 3 (a `tier` per segment).
    #[test]
    fn format_2_bytes_decode_with_every_segment_at_level_0() {
        let manifest = Manifest { segments: vec![segment(6, 500, 1_000)], ..sample() };
        let format_2 = "5a56455253454d4602000000680000000900000000000000e803000000000000bc0200000000\
             00008a02000000000000010000000200000006000000000000000a00000000000000001000000000\
             0000d007000000000000f401000000000000e8030000000000000700000000000000080000000000\
             00000b0e2cd29f6e0fef";
        let bytes = crate::bytes::unhex(format_2);
        assert_eq!(format_version_of(&bytes), Some(FORMAT_VERSION_UNTIERED));
        assert_eq!(Manifest::decode_from(&bytes), Ok(manifest.clone()));
        let rewritten = manifest.encode();
        assert_eq!(format_version_of(&rewritten), Some(FORMAT_VERSION));
        assert_eq!(rewritten.len(), bytes.len() + 4, "one u32 tier per segment");
        assert_eq!(crate::bytes::hex(&rewritten[104..108]), "00000000", "level 0");
    }

    #[test]
    fn tiers_round_trip_and_unknown_tiers_are_corruption() {
        for tier in [Tier::Level(0), Tier::Level(LEVEL_MAX), Tier::History] {
            assert_eq!(Tier::decode(tier.encode()), Some(tier));
        }
        assert_eq!(Tier::decode(u32::from(LEVEL_MAX) + 1), None);
        assert_eq!(Tier::decode(u32::MAX - 1), None);
        let manifest = Manifest { segments: vec![segment(6, 500, 1_000)], ..sample() };
        let mut bytes = manifest.encode();
        bytes[104] = 16;
        let covered = bytes.len() - CHECKSUM_LEN;
        let sum = checksum(&bytes[..covered]);
        bytes[covered..].copy_from_slice(&sum.to_le_bytes());
        let error = Manifest::decode_from(&bytes).unwrap_err();
        assert_eq!(error, Corruption::new(104, "manifest segment tier unknown"));
    }

    #[test]
    fn round_trips() {
        for manifest in [Manifest::default(), sample()] {
            assert_eq!(Manifest::decode_from(&manifest.encode()), Ok(manifest));
        }
        assert_eq!(format_version_of(&sample().encode()), Some(FORMAT_VERSION));
        assert_eq!(format_version_of(b"ZVERSEMF\x01\0\0\0"), Some(1));
        assert_eq!(format_version_of(b"ZVERSEMX\x02\0\0\0"), None);
        assert_eq!(format_version_of(b"ZVERSEMF\x02\0"), None);
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
