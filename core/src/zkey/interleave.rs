//! Byte interleaving of two `u64`s into a `u128` and back.
//!
//! Two implementations of one function, chosen at compile time:
//! - a scalar bit trick (three shift-and-mask rounds per direction), on every target;
//! - a SIMD one: SSE2 on x86-64 (one `punpcklbw` to interleave; a mask, a shift and one
//!   `packuswb` to split), NEON on little-endian aarch64 (`zip1`/`zip2`, `uzp1`/`uzp2`).
//!
//! Both are tested equal (`zkey::tests`). [`interleave`] and [`deinterleave`] use the SIMD
//! one where there is one. The intrinsics are safe to call inside a
//! `#[target_feature(enable = ..)]` fn; the one `unsafe` per entry point is the call into
//! that fn, sound because the module is compiled only where the feature is on at compile
//! time (`sse2` and `neon` are in the x86-64 and aarch64 baselines).

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

/// Bit interleave of two `u32`s: bit `i` of `first` goes to bit `2i + 1`, bit `i` of
/// `second` to bit `2i`. A Z-curve with 1-bit digits, whose cells stay square at every level
/// (history segments order (key rank, version rank) by it; [`INTERLEAVE_BITS_FIRST_MASK`] marks
/// `first`'s bits for [`super::CodeBox`]).
#[must_use]
pub const fn interleave_bits(first: u32, second: u32) -> u64 {
    (spread_bits(first) << 1) | spread_bits(second)
}

/// The bits of an [`interleave_bits`] code that hold its first argument.
pub const INTERLEAVE_BITS_FIRST_MASK: u128 = 0xAAAA_AAAA_AAAA_AAAA;

/// Spreads the 32 bits of `x` into the even bits of a `u64` (bit i -> bit 2i).
const fn spread_bits(x: u32) -> u64 {
    let mut x = x as u64;
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    x = (x | (x << 1)) & 0x5555_5555_5555_5555;
    x
}

/// The scalar [`interleave`]: the reference the SIMD path is tested against, and usable in
/// `const` context.
#[doc(hidden)]
#[must_use]
pub const fn interleave_scalar(prefix: u64, version: u64) -> u128 {
    (spread_bytes(prefix) << 8) | spread_bytes(version)
}

/// The scalar [`deinterleave`]: the reference the SIMD path is tested against, and usable in
/// `const` context.
#[doc(hidden)]
#[must_use]
pub const fn deinterleave_scalar(morton: u128) -> (u64, u64) {
    (gather_bytes(morton >> 8), gather_bytes(morton))
}

/// The Morton prefix of (prefix, version): big-endian bytes `[p0, t0, p1, t1, ..., p7, t7]`.
#[must_use]
#[inline]
pub fn interleave(prefix: u64, version: u64) -> u128 {
    simd::interleave(prefix, version)
}

/// Splits a Morton prefix back into (prefix, version).
#[must_use]
#[inline]
pub fn deinterleave(morton: u128) -> (u64, u64) {
    simd::deinterleave(morton)
}

/// SSE2. A `u128` in an XMM register is little-endian: byte 0 is the least significant. The
/// least significant byte of `M` is `t7`, the next `p7`, and so on up to `p0`; that is
/// exactly `punpcklbw(t, p)` = `[t.b0, p.b0, t.b1, p.b1, .., t.b7, p.b7]`, where `x.bi` is
/// byte i of `x` counting from the least significant.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[doc(hidden)]
pub mod simd {
    use core::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_cvtsi64_si128, _mm_cvtsi128_si64, _mm_packus_epi16,
        _mm_set_epi64x, _mm_set1_epi16, _mm_srli_epi16, _mm_unpackhi_epi64, _mm_unpacklo_epi8,
    };

    /// The SSE2 [`super::interleave`].
    #[must_use]
    #[inline]
    pub fn interleave(prefix: u64, version: u64) -> u128 {
        // SAFETY: the only requirement of a `#[target_feature(enable = "sse2")]` fn is that the
        // CPU has SSE2, and this module is compiled only with `target_feature = "sse2"` on.
        unsafe { interleave_sse2(prefix, version) }
    }

    /// The SSE2 [`super::deinterleave`].
    #[must_use]
    #[inline]
    pub fn deinterleave(morton: u128) -> (u64, u64) {
        // SAFETY: as in `interleave`: compiled only with `target_feature = "sse2"` on.
        unsafe { deinterleave_sse2(morton) }
    }

    #[target_feature(enable = "sse2")]
    fn interleave_sse2(prefix: u64, version: u64) -> u128 {
        let prefix_lanes = _mm_cvtsi64_si128(prefix.cast_signed());
        let version_lanes = _mm_cvtsi64_si128(version.cast_signed());
        to_u128(_mm_unpacklo_epi8(version_lanes, prefix_lanes))
    }

    /// The even bytes are `t`, the odd bytes `p`. Each 16-bit lane `[t.bi, p.bi]` is split
    /// into two 16-bit values below 256, which `packuswb` packs back to bytes without
    /// saturating: `t` into the low half, `p` into the high half.
    #[target_feature(enable = "sse2")]
    fn deinterleave_sse2(morton: u128) -> (u64, u64) {
        let lanes =
            _mm_set_epi64x(((morton >> 64) as u64).cast_signed(), (morton as u64).cast_signed());
        let version_words = _mm_and_si128(lanes, _mm_set1_epi16(0x00FF));
        let prefix_words = _mm_srli_epi16::<8>(lanes);
        let packed = to_u128(_mm_packus_epi16(version_words, prefix_words));
        ((packed >> 64) as u64, packed as u64)
    }

    #[target_feature(enable = "sse2")]
    fn to_u128(lanes: __m128i) -> u128 {
        let low = _mm_cvtsi128_si64(lanes).cast_unsigned();
        let high = _mm_cvtsi128_si64(_mm_unpackhi_epi64(lanes, lanes)).cast_unsigned();
        (u128::from(high) << 64) | u128::from(low)
    }
}

/// NEON, little-endian only: lane i of a `uint8x8_t` made from a `u64` is its byte i counting
/// from the least significant. `zip1(t, p)` gives the low 8 bytes of `M`
/// (`[t.b0, p.b0, .., t.b3, p.b3]`), `zip2(t, p)` the high 8; `uzp1`/`uzp2` undo it.
///
/// NOT COMPILED ON THE MACHINE THIS WAS WRITTEN ON (only the x86-64 target is installed
/// there): it was checked against the intrinsics' documented signatures only. The first
/// aarch64 build runs the `zkey` tests that compare it with the scalar path.
#[cfg(all(target_arch = "aarch64", target_feature = "neon", target_endian = "little"))]
#[doc(hidden)]
pub mod simd {
    use core::arch::aarch64::{
        uint8x8_t, vcreate_u8, vget_lane_u64, vreinterpret_u64_u8, vuzp1_u8, vuzp2_u8, vzip1_u8,
        vzip2_u8,
    };

    /// The NEON [`super::interleave`].
    #[must_use]
    #[inline]
    pub fn interleave(prefix: u64, version: u64) -> u128 {
        // SAFETY: the only requirement of a `#[target_feature(enable = "neon")]` fn is that the
        // CPU has NEON, and this module is compiled only with `target_feature = "neon"` on.
        unsafe { interleave_neon(prefix, version) }
    }

    /// The NEON [`super::deinterleave`].
    #[must_use]
    #[inline]
    pub fn deinterleave(morton: u128) -> (u64, u64) {
        // SAFETY: as in `interleave`: compiled only with `target_feature = "neon"` on.
        unsafe { deinterleave_neon(morton) }
    }

    #[target_feature(enable = "neon")]
    fn interleave_neon(prefix: u64, version: u64) -> u128 {
        let prefix_lanes = vcreate_u8(prefix);
        let version_lanes = vcreate_u8(version);
        let low = to_u64(vzip1_u8(version_lanes, prefix_lanes));
        let high = to_u64(vzip2_u8(version_lanes, prefix_lanes));
        (u128::from(high) << 64) | u128::from(low)
    }

    /// Even lanes of (low half, high half) are `t`, odd lanes `p`.
    #[target_feature(enable = "neon")]
    fn deinterleave_neon(morton: u128) -> (u64, u64) {
        let low = vcreate_u8(morton as u64);
        let high = vcreate_u8((morton >> 64) as u64);
        (to_u64(vuzp2_u8(low, high)), to_u64(vuzp1_u8(low, high)))
    }

    #[target_feature(enable = "neon")]
    fn to_u64(lanes: uint8x8_t) -> u64 {
        vget_lane_u64::<0>(vreinterpret_u64_u8(lanes))
    }
}

/// No SIMD path on this target: the scalar one under the same names.
#[cfg(not(any(
    all(target_arch = "x86_64", target_feature = "sse2"),
    all(target_arch = "aarch64", target_feature = "neon", target_endian = "little")
)))]
#[doc(hidden)]
pub mod simd {
    pub use super::{deinterleave_scalar as deinterleave, interleave_scalar as interleave};
}
