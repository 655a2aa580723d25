//! Entry points into private decoders for the fuzz targets (`fuzz/`) and their corpus replay
//! (`zverse-tests`). Not part of the API: hidden from the docs, and free to change.

use zverse_core::Corruption;

use crate::manifest::Manifest;

/// Decodes `bytes` as a manifest and encodes the result again: a manifest that decodes must
/// re-encode to exactly its bytes.
pub fn manifest_round_trip(bytes: &[u8]) -> Result<Vec<u8>, Corruption> {
    Manifest::decode_from(bytes).map(|manifest| manifest.encode())
}
