//! [`ZoneMap`]: the bounding rectangle, in (key prefix, version) space, of one data block's
//! entries. A box query skips every block whose zone map misses its box.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use super::bytes::u64_at;
use crate::zkey::ZBox;

/// Bytes of an encoded [`ZoneMap`]: four little-endian `u64`s.
pub(super) const ZONE_MAP_LEN: usize = 4 * size_of::<u64>();

const PREFIX_MIN_AT: usize = 0;
const PREFIX_MAX_AT: usize = PREFIX_MIN_AT + size_of::<u64>();
const VERSION_MIN_AT: usize = PREFIX_MAX_AT + size_of::<u64>();
const VERSION_MAX_AT: usize = VERSION_MIN_AT + size_of::<u64>();
const _: () = assert!(VERSION_MAX_AT + size_of::<u64>() == ZONE_MAP_LEN);

/// Inclusive bounds of the key prefixes and versions of a block's entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ZoneMap {
    pub(super) prefix_min: u64,
    pub(super) prefix_max: u64,
    pub(super) version_min: u64,
    pub(super) version_max: u64,
}

impl ZoneMap {
    /// The zone map of no entries: every bound inverted, so the first `extend` sets them all.
    pub(super) const EMPTY: ZoneMap =
        ZoneMap { prefix_min: u64::MAX, prefix_max: 0, version_min: u64::MAX, version_max: 0 };

    /// Grows the rectangle to cover `(prefix, version)`.
    pub(super) fn extend(&mut self, prefix: u64, version: u64) {
        self.prefix_min = self.prefix_min.min(prefix);
        self.prefix_max = self.prefix_max.max(prefix);
        self.version_min = self.version_min.min(version);
        self.version_max = self.version_max.max(version);
    }

    /// Whether the rectangle covers at least one point (false only for [`ZoneMap::EMPTY`]-like
    /// bounds, which no written block has).
    pub(super) fn is_valid(&self) -> bool {
        self.prefix_min <= self.prefix_max && self.version_min <= self.version_max
    }

    /// Whether some point of the rectangle lies in `zbox`.
    pub(super) fn meets(&self, zbox: &ZBox) -> bool {
        zbox.intersects(self.prefix_min, self.prefix_max, self.version_min, self.version_max)
    }

    /// Writes the zone map into `out`, which must be [`ZONE_MAP_LEN`] bytes long.
    pub(super) fn encode_into(&self, out: &mut [u8]) {
        assert_eq!(out.len(), ZONE_MAP_LEN, "a zone map is written into its own slot");
        let fields = [self.prefix_min, self.prefix_max, self.version_min, self.version_max];
        for (chunk, field) in out.chunks_exact_mut(size_of::<u64>()).zip(fields) {
            chunk.copy_from_slice(&field.to_le_bytes());
        }
    }

    /// Reads a zone map from the first [`ZONE_MAP_LEN`] bytes of `bytes`.
    pub(super) fn decode_from(bytes: &[u8]) -> Option<ZoneMap> {
        Some(ZoneMap {
            prefix_min: u64_at(bytes, PREFIX_MIN_AT)?,
            prefix_max: u64_at(bytes, PREFIX_MAX_AT)?,
            version_min: u64_at(bytes, VERSION_MIN_AT)?,
            version_max: u64_at(bytes, VERSION_MAX_AT)?,
        })
    }
}
