//! Byte interleaving of two `u64`s into a `u128` and back.

/// Spreads the 8 bytes of `x` into the even bytes of a `u128` (byte i -> byte 2i, counting
/// from the least significant byte).
const fn spread_bytes(x: u64) -> u128 {
    let mut x = x as u128;
    x = (x | (x << 32)) & 0x0000_0000_FFFF_FFFF_0000_0000_FFFF_FFFF;
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF_0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF_00FF_00FF_00FF_00FF;
    x
}

/// Gathers the even bytes of `x` back into a `u64`: the inverse of [`spread_bytes`].
const fn gather_bytes(x: u128) -> u64 {
    let mut x = x & 0x00FF_00FF_00FF_00FF_00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF_0000_FFFF_0000_FFFF;
    x = (x | (x >> 16)) & 0x0000_0000_FFFF_FFFF_0000_0000_FFFF_FFFF;
    x = (x | (x >> 32)) & 0x0000_0000_0000_0000_FFFF_FFFF_FFFF_FFFF;
    x as u64
}

/// The Morton prefix of (prefix, version): big-endian bytes `[p0, t0, p1, t1, ..., p7, t7]`.
#[must_use]
pub const fn interleave(prefix: u64, version: u64) -> u128 {
    (spread_bytes(prefix) << 8) | spread_bytes(version)
}

/// Splits a Morton prefix back into (prefix, version).
#[must_use]
pub const fn deinterleave(morton: u128) -> (u64, u64) {
    (gather_bytes(morton >> 8), gather_bytes(morton))
}
