//! Checked little-endian reads: every decoder of the segment format reads integers through
//! these, so a short or truncated buffer is `None`, never a panic.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

/// The `N` bytes at `at`, or `None` when they run past the end of `bytes`.
pub(super) fn array_at<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    let end = at.checked_add(N)?;
    bytes.get(at..end)?.try_into().ok()
}

/// The little-endian `u16` at `at`.
pub(super) fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    array_at(bytes, at).map(u16::from_le_bytes)
}

/// The little-endian `u32` at `at`.
pub(super) fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    array_at(bytes, at).map(u32::from_le_bytes)
}

/// The little-endian `u64` at `at`.
pub(super) fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    array_at(bytes, at).map(u64::from_le_bytes)
}

/// The little-endian `u128` at `at`.
pub(super) fn u128_at(bytes: &[u8], at: usize) -> Option<u128> {
    array_at(bytes, at).map(u128::from_le_bytes)
}

/// The `len` bytes at `at`.
pub(super) fn slice_at(bytes: &[u8], at: usize, len: usize) -> Option<&[u8]> {
    bytes.get(at..at.checked_add(len)?)
}

/// Binary search over the index range `[lo, hi)` for the first index where `before` is false,
/// assuming `before` is true on a prefix of the range and false on the rest (as
/// `slice::partition_point`). `before` may fail; the first error ends the search.
pub(super) fn try_partition_point<E>(
    lo: usize,
    hi: usize,
    mut before: impl FnMut(usize) -> Result<bool, E>,
) -> Result<usize, E> {
    let (mut lo, mut hi) = (lo, hi);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if before(mid)? {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// [`try_partition_point`] for an infallible predicate.
pub(super) fn partition_point(
    lo: usize,
    hi: usize,
    mut before: impl FnMut(usize) -> bool,
) -> usize {
    let found: Result<usize, core::convert::Infallible> =
        try_partition_point(lo, hi, |index| Ok(before(index)));
    match found {
        Ok(index) => index,
    }
}
