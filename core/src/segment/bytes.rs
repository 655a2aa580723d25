//! The segment's byte helpers: the core's checked random-access reads ([`crate::bytes`]),
//! which the sections use because they are searched in place, and the binary search over an
//! index range with a fallible predicate that the key index, block index and fence keys use.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

pub(super) use crate::bytes::{array_at, slice_at, u32_at, u64_at, u128_at};

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
