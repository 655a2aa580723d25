//! [`Entry`]: one version of one key, as the segment reader and the merge yield it.

use crate::Version;

/// One version of one key, borrowed from wherever it is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The version the write got.
    pub version: Version,
    /// The value, or `None` for a tombstone (a delete).
    pub value: Option<&'a [u8]>,
}
