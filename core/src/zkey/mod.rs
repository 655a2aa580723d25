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
//! [`ZKey`] is one such pair with its `M` computed once. No format stores `M`: segments keep
//! the full key and version and recompute it where they need it (ARCHITECTURE.md, "Segments
//! store the full key").

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

/// Bytes of the key that go into the Morton prefix.
pub const PREFIX_LEN: usize = 8;
/// Bytes of the Morton prefix `M`.
pub const MORTON_LEN: usize = 16;

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

#[cfg(all(test, not(loom)))]
mod tests;
