//! The seam between the segment and its key filter ([`crate::filter`], a split-block Bloom
//! filter over [`crate::filter::key_hash`] at [`crate::filter::BITS_PER_KEY_DEFAULT`] bits per
//! key).
//!
//! The filter section is a byte region whose offset, length and checksum are in the footer.
//! These three functions are the only code that looks inside it. An empty section means "no
//! filter, every key may be present": the builder writes one for a segment without keys.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

#[cfg(feature = "alloc")]
use alloc::vec::Vec;

use crate::Corruption;
use crate::filter::Filter;

/// Appends the filter over `keys` (each distinct key once, in key order) to `out`.
#[cfg(feature = "alloc")]
pub(super) fn encode_into<'k>(keys: impl Iterator<Item = &'k [u8]>, out: &mut Vec<u8>) {
    let hashes: Vec<u64> = keys.map(crate::filter::key_hash).collect();
    if hashes.is_empty() {
        return;
    }
    let mut builder =
        crate::filter::FilterBuilder::new(hashes.len(), crate::filter::BITS_PER_KEY_DEFAULT);
    for hash in hashes {
        builder.insert_hash(hash);
    }
    out.extend_from_slice(&builder.finish());
}

/// Checks a filter section at open, so that `may_contain` can trust its structure.
/// `section_offset` is where the section starts in the file, for errors.
pub(super) fn validate(section: &[u8], section_offset: u64) -> Result<(), Corruption> {
    if section.is_empty() {
        return Ok(());
    }
    Filter::decode_from(section)
        .map(drop)
        .map_err(|corruption| Corruption::new(section_offset + corruption.offset, corruption.what))
}

/// Whether `key` may be in the segment; `false` only when it certainly is not.
pub(super) fn may_contain(section: &[u8], key: &[u8]) -> bool {
    if section.is_empty() {
        return true;
    }
    // `validate` accepted this section at open, so decoding succeeds; were it ever to fail,
    // "may contain" is the answer that cannot lose data.
    Filter::decode_from(section).map_or(true, |filter| filter.may_contain(key))
}
