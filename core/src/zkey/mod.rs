//! The interleaving codec: (key, version) pairs ordered along a Z-curve.
//!
//! For a key `k` and a version `t`:
//! - `p` = the first [`PREFIX_LEN`] bytes of `k`, zero-padded, read big-endian;
//! - the Morton prefix `M` (a `u128`) = bytes `[p0, t0, p1, t1, ..., p7, t7]`, where `p0` and
//!   `t0` are the most significant bytes: a Z-curve over (p, t) with 8-bit digits.
//!
//! Entries sort by `(M, full key)`. Since `t` is inside `M`, `(M, key)` is unique per
//! (key, version). Keys that share their first 8 bytes are therefore ordered by time first:
//! point lookups use a key-order index, not this order.
//!
//! [`ZKey`] is one such pair. Its byte form ([`ZKey::encode_into`]) is
//! `M (16 bytes, big-endian) || min(len, 8) (1 byte) || key[8..]`, and byte-wise comparison of
//! two byte forms gives the same order as comparing the [`ZKey`]s: for keys with equal `M`,
//! the padded prefixes are equal, so the shorter key (below 8 bytes) is a prefix of the
//! other, and longer keys differ only in their suffixes.

mod interleave;
mod scan;
mod zbox;

pub use interleave::{INTERLEAVE_BITS_FIRST_MASK, deinterleave, interleave, interleave_bits};
#[doc(hidden)]
pub use interleave::{
    deinterleave_scalar, interleave_scalar, simd::deinterleave as deinterleave_simd,
    simd::interleave as interleave_simd,
};
pub use scan::{BoxScan, ScanStats, SliceCursor, ZCursor};
pub use zbox::{CodeBox, PREFIX_MASK, VERSION_MASK, ZBox};

use core::cmp::Ordering;

use crate::Version;
use crate::error::Corruption;
use crate::limits::KEY_LEN_MAX;

/// Bytes of the key that go into the Morton prefix.
pub const PREFIX_LEN: usize = 8;
/// Bytes of the Morton prefix `M`.
pub const MORTON_LEN: usize = 16;
/// Bytes of a [`ZKey`]'s byte form before the key's suffix: `M` and the prefix length byte.
pub const ZKEY_HEADER_LEN: usize = MORTON_LEN + 1;
/// The longest byte form of a [`ZKey`].
pub const ZKEY_LEN_MAX: usize = ZKEY_HEADER_LEN + KEY_LEN_MAX - PREFIX_LEN;

const _: () = assert!(MORTON_LEN == 2 * PREFIX_LEN);
const _: () = assert!(MORTON_LEN == core::mem::size_of::<u128>());

/// The key's first [`PREFIX_LEN`] bytes, zero-padded, as a big-endian `u64`: the key's
/// coordinate on the Z-curve. Monotone: `a <= b` implies `key_prefix(a) <= key_prefix(b)`.
#[must_use]
#[inline]
pub fn key_prefix(key: &[u8]) -> u64 {
    if let Some(head) = key.first_chunk::<PREFIX_LEN>() {
        return u64::from_be_bytes(*head);
    }
    let mut padded = [0u8; PREFIX_LEN];
    padded[..key.len()].copy_from_slice(key);
    u64::from_be_bytes(padded)
}

/// The Morton prefix `M` of (key, version).
#[must_use]
#[inline]
pub fn morton(key: &[u8], version: Version) -> u128 {
    interleave(key_prefix(key), version.get())
}

/// Compares two (key, version) pairs in Z order: by `M`, then by full key.
#[must_use]
pub fn cmp_z(a_key: &[u8], a_version: Version, b_key: &[u8], b_version: Version) -> Ordering {
    morton(a_key, a_version).cmp(&morton(b_key, b_version)).then_with(|| a_key.cmp(b_key))
}

/// A (key, version) pair with its Morton prefix computed once. Orders by `(M, key)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ZKey<'a> {
    morton: u128,
    key: &'a [u8],
}

impl<'a> ZKey<'a> {
    /// The Z key of `key` at `version`.
    #[must_use]
    pub fn new(key: &'a [u8], version: Version) -> ZKey<'a> {
        ZKey { morton: morton(key, version), key }
    }

    /// The Morton prefix `M`.
    #[must_use]
    pub fn morton(&self) -> u128 {
        self.morton
    }

    /// The full key.
    #[must_use]
    pub fn key(&self) -> &'a [u8] {
        self.key
    }

    /// The version, recovered from `M`.
    #[must_use]
    pub fn version(&self) -> Version {
        Version::new(deinterleave(self.morton).1)
    }

    /// Bytes of this key's byte form.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        ZKEY_HEADER_LEN + self.key.len().saturating_sub(PREFIX_LEN)
    }

    /// Writes the byte form into `out` and returns its length, or `None` (writing nothing)
    /// when `out` is shorter than [`ZKey::encoded_len`].
    pub fn encode_into(&self, out: &mut [u8]) -> Option<usize> {
        debug_assert!(self.key.len() <= KEY_LEN_MAX, "key over KEY_LEN_MAX: decode refuses it");
        let len = self.encoded_len();
        let out = out.get_mut(..len)?;
        let (header, suffix) = out.split_at_mut(ZKEY_HEADER_LEN);
        header[..MORTON_LEN].copy_from_slice(&self.morton.to_be_bytes());
        header[MORTON_LEN] = self.key.len().min(PREFIX_LEN) as u8;
        suffix.copy_from_slice(self.key.get(PREFIX_LEN..).unwrap_or_default());
        Some(len)
    }
}

impl Ord for ZKey<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.morton.cmp(&other.morton).then_with(|| self.key.cmp(other.key))
    }
}

impl PartialOrd for ZKey<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Decodes a [`ZKey`] byte form into `key_out`, returning the key's length and its version.
///
/// `key_out` must hold the whole key (up to [`KEY_LEN_MAX`] bytes). Only the canonical byte
/// form of some (key, version) is accepted: a form shorter than its header, whose prefix
/// length byte is over 8 (or under 8 with a suffix after it), whose padding bytes are not
/// zero, or whose key is over the limit or does not fit `key_out` is [`Corruption`].
#[deny(clippy::indexing_slicing, clippy::unwrap_used)]
pub fn decode_from(bytes: &[u8], key_out: &mut [u8]) -> Result<(usize, Version), Corruption> {
    const SHORT: Corruption = Corruption::new(0, "zkey shorter than its header");
    const PREFIX_LEN_OFFSET: u64 = MORTON_LEN as u64;
    const SUFFIX_OFFSET: u64 = ZKEY_HEADER_LEN as u64;
    let (morton_bytes, rest) = bytes.split_first_chunk::<MORTON_LEN>().ok_or(SHORT)?;
    let (&prefix_len_byte, suffix) = rest.split_first().ok_or(SHORT)?;
    let (prefix, version) = deinterleave(u128::from_be_bytes(*morton_bytes));
    let prefix_len = usize::from(prefix_len_byte);
    let prefix_bytes = prefix.to_be_bytes();
    let (prefix_bytes, padding) = prefix_bytes
        .split_at_checked(prefix_len)
        .ok_or(Corruption::new(PREFIX_LEN_OFFSET, "zkey prefix length out of range"))?;
    if prefix_len < PREFIX_LEN && !suffix.is_empty() {
        return Err(Corruption::new(PREFIX_LEN_OFFSET, "zkey prefix length out of range"));
    }
    if padding.iter().any(|&b| b != 0) {
        return Err(Corruption::new(0, "zkey padding is not zero"));
    }
    let key_len = prefix_len + suffix.len();
    if key_len > KEY_LEN_MAX {
        return Err(Corruption::new(SUFFIX_OFFSET, "zkey longer than the key limit"));
    }
    let (out_prefix, out_suffix) = key_out
        .get_mut(..key_len)
        .and_then(|out| out.split_at_mut_checked(prefix_len))
        .ok_or(Corruption::new(SUFFIX_OFFSET, "zkey does not fit the key buffer"))?;
    out_prefix.copy_from_slice(prefix_bytes);
    out_suffix.copy_from_slice(suffix);
    Ok((key_len, Version::new(version)))
}

#[cfg(all(test, not(loom)))]
mod tests;
