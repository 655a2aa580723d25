//! The seam between the segment and its key filter.
//!
//! The filter section is an opaque byte region; its offset, length and checksum are in the
//! footer. These three functions are the only code that looks inside it.
//!
//! **PLACEHOLDER, to be replaced by `crate::filter`** (the split-block Bloom filter over
//! `filter::key_hash`, being written in parallel): today the builder writes an empty section
//! and the reader answers "may contain" for every key, which is correct (a filter may only
//! ever answer false for absent keys) but filters nothing. Contract for the replacement: an
//! empty section keeps meaning "no filter, every key may be present".
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

#[cfg(feature = "alloc")]
use alloc::vec::Vec;

use crate::Corruption;

/// Appends the filter over `keys` (each distinct key once, in key order) to `out`.
#[cfg(feature = "alloc")]
pub(super) fn encode_into<'k>(keys: impl Iterator<Item = &'k [u8]>, out: &mut Vec<u8>) {
    // PLACEHOLDER: no filter. The real one hashes each key with `filter::key_hash`.
    let _ = (keys, out);
}

/// Checks a filter section at open, so that `may_contain` can trust its structure.
/// `section_offset` is where the section starts in the file, for errors.
pub(super) fn validate(section: &[u8], section_offset: u64) -> Result<(), Corruption> {
    // PLACEHOLDER: only the empty "no filter" section is known.
    if section.is_empty() {
        Ok(())
    } else {
        Err(Corruption::new(section_offset, "unknown filter section"))
    }
}

/// Whether `key` may be in the segment; `false` only when it certainly is not.
pub(super) fn may_contain(section: &[u8], key: &[u8]) -> bool {
    // PLACEHOLDER: no filter, every key may be present.
    let _ = (section, key);
    true
}
