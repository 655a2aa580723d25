//! BIGMIN / LITMAX against two oracles: brute force over every code of small domains, and a
//! search over aligned Z-order blocks that is exact on the full 64-bit range.

use proptest::prelude::*;
use std::vec::Vec;

use super::super::*;

/// The codes `[block_lo, block_lo + 2^free_bits)` share their high bits, so they are the
/// rectangle between the block's first and last codes: the free bits are the low bits of
/// each dimension. Returns that rectangle's corners.
fn block_corners(block_lo: u128, free_bits: u32) -> (u128, (u64, u64), (u64, u64)) {
    let block_hi = block_lo | u128::MAX.checked_shr(u128::BITS - free_bits).unwrap_or(0);
    (block_hi, deinterleave_scalar(block_lo), deinterleave_scalar(block_hi))
}

/// Oracle for BIGMIN: the leftmost in-box code `>= x`, searching the halves of each block
/// that meets the box from the left; a block wholly inside the box answers at once. Only
/// blocks holding `x` can fail after meeting the box, so the search visits O(128) blocks.
fn bigmin_by_blocks(zbox: &ZBox, x: u128, block_lo: u128, free_bits: u32) -> Option<u128> {
    let (block_hi, (p_lo, t_lo), (p_hi, t_hi)) = block_corners(block_lo, free_bits);
    if block_hi < x || !zbox.intersects(p_lo, p_hi, t_lo, t_hi) {
        return None;
    }
    if zbox.contains_point(p_lo, t_lo) && zbox.contains_point(p_hi, t_hi) {
        return Some(block_lo.max(x));
    }
    let half_bits = free_bits - 1;
    bigmin_by_blocks(zbox, x, block_lo, half_bits)
        .or_else(|| bigmin_by_blocks(zbox, x, block_lo | 1 << half_bits, half_bits))
}

/// Oracle for LITMAX: the mirror image of [`bigmin_by_blocks`].
fn litmax_by_blocks(zbox: &ZBox, x: u128, block_lo: u128, free_bits: u32) -> Option<u128> {
    let (block_hi, (p_lo, t_lo), (p_hi, t_hi)) = block_corners(block_lo, free_bits);
    if block_lo > x || !zbox.intersects(p_lo, p_hi, t_lo, t_hi) {
        return None;
    }
    if zbox.contains_point(p_lo, t_lo) && zbox.contains_point(p_hi, t_hi) {
        return Some(block_hi.min(x));
    }
    let half_bits = free_bits - 1;
    litmax_by_blocks(zbox, x, block_lo | 1 << half_bits, half_bits)
        .or_else(|| litmax_by_blocks(zbox, x, block_lo, half_bits))
}

/// Checks BIGMIN and LITMAX of `zbox` at `x` against the block oracles, and their contract.
fn check_against_blocks(zbox: &ZBox, x: u128) {
    let next = zbox.next_at_or_after(x);
    let prev = zbox.prev_at_or_before(x);
    assert_eq!(next, bigmin_by_blocks(zbox, x, 0, u128::BITS), "bigmin {zbox:?} at {x:#x}");
    assert_eq!(prev, litmax_by_blocks(zbox, x, 0, u128::BITS), "litmax {zbox:?} at {x:#x}");
    assert!(next.is_none_or(|next| next >= x && zbox.contains(next)), "{zbox:?} {x:#x}");
    assert!(prev.is_none_or(|prev| prev <= x && zbox.contains(prev)), "{zbox:?} {x:#x}");
}

/// Which of BIGMIN and LITMAX a grid's brute force is exact for.
#[derive(Clone, Copy, PartialEq)]
enum Exact {
    Both,
    Bigmin,
    Litmax,
}

/// Every box with corners in `corners` x `corners`, at every code of `grid` x `grid`, against
/// a scan of the box's codes on the grid, and against the block oracles.
///
/// Brute force over the grid is exact when the in-box code after (or before) any grid code is
/// on the grid. It is for both when the grid holds a contiguous range around the corners. It
/// is for BIGMIN when grid and corners are multiples of 2^56: clearing the low 7 bytes of
/// both coordinates of an in-box code `c >= x` keeps it in the box and `>= x`. It is for
/// LITMAX when they are all `v * 2^56 + (2^56 - 1)`: setting those bytes keeps it so.
fn check_every_box(corners: &[u64], grid: &[u64], exact: Exact) {
    for (i, &prefix_lo) in corners.iter().enumerate() {
        for &prefix_hi in &corners[i..] {
            for (j, &version_lo) in corners.iter().enumerate() {
                for &version_hi in &corners[j..] {
                    let zbox = ZBox::new(prefix_lo, prefix_hi, version_lo, version_hi).unwrap();
                    check_every_code(&zbox, grid, exact);
                }
            }
        }
    }
}

fn check_every_code(zbox: &ZBox, grid: &[u64], exact: Exact) {
    let mut in_box: Vec<u128> = grid
        .iter()
        .flat_map(|&p| grid.iter().map(move |&t| (p, t)))
        .filter(|&(p, t)| zbox.contains_point(p, t))
        .map(|(p, t)| interleave(p, t))
        .collect();
    in_box.sort_unstable();
    for &p in grid {
        for &t in grid {
            let x = interleave(p, t);
            let after = in_box.partition_point(|&code| code < x);
            let before = in_box.partition_point(|&code| code <= x);
            let next = in_box.get(after).copied();
            let prev = before.checked_sub(1).map(|i| in_box[i]);
            if exact != Exact::Litmax {
                assert_eq!(zbox.next_at_or_after(x), next, "bigmin {zbox:?} at ({p:#x}, {t:#x})");
            }
            if exact != Exact::Bigmin {
                assert_eq!(zbox.prev_at_or_before(x), prev, "litmax {zbox:?} at ({p:#x}, {t:#x})");
            }
        }
    }
    // The oracle itself, cross-checked on a few codes (all of them would be slow in debug).
    for &(p, t) in &[(grid[0], grid[grid.len() - 1]), (grid[grid.len() / 2], grid[1])] {
        check_against_blocks(zbox, interleave(p, t));
    }
}

/// `v << shift` for each `v`, with the bits below `shift` all set when `low_ones`.
fn values(range: core::ops::RangeInclusive<u64>, shift: u32, low_ones: bool) -> Vec<u64> {
    let low = if low_ones { (1 << shift) - 1 } else { 0 };
    range.map(|v| v << shift | low).collect()
}

#[test]
fn every_box_in_the_low_byte() {
    check_every_box(&values(0..=7, 0, false), &values(0..=9, 0, false), Exact::Both);
}

#[test]
fn every_box_across_a_byte_boundary() {
    check_every_box(&values(252..=259, 0, false), &values(250..=261, 0, false), Exact::Both);
}

#[test]
fn every_box_in_the_high_byte() {
    check_every_box(&values(0..=7, 56, false), &values(0..=9, 56, false), Exact::Bigmin);
    check_every_box(&values(0..=7, 56, true), &values(0..=9, 56, true), Exact::Litmax);
}

#[test]
fn every_box_at_the_top_corner() {
    let corners = values(u64::MAX - 7..=u64::MAX, 0, false);
    check_every_box(&corners, &values(u64::MAX - 9..=u64::MAX, 0, false), Exact::Both);
}

#[test]
fn extreme_boxes_and_codes() {
    let full = ZBox::new(0, u64::MAX, 0, u64::MAX).unwrap();
    let top = ZBox::new(u64::MAX, u64::MAX, u64::MAX, u64::MAX).unwrap();
    let origin = ZBox::new(0, 0, 0, 0).unwrap();
    for x in [0, 1, u128::MAX - 1, u128::MAX, PREFIX_MASK, VERSION_MASK] {
        assert_eq!(full.next_at_or_after(x), Some(x));
        assert_eq!(full.prev_at_or_before(x), Some(x));
        assert_eq!(top.next_at_or_after(x), Some(u128::MAX));
        assert_eq!(top.prev_at_or_before(x), (x == u128::MAX).then_some(u128::MAX));
        assert_eq!(origin.next_at_or_after(x), (x == 0).then_some(0));
        assert_eq!(origin.prev_at_or_before(x), Some(0));
        for zbox in [full, top, origin] {
            check_against_blocks(&zbox, x);
        }
    }
}

/// A coordinate: any, an edge value, or a value with a few set (or a few clear) bits, so that
/// boxes and points often share long runs of bits.
fn coordinate() -> impl Strategy<Value = u64> {
    let few_bits = prop::collection::vec(0..u64::BITS, 0..4)
        .prop_map(|bits| bits.into_iter().fold(0u64, |value, bit| value | 1 << bit));
    prop_oneof![
        any::<u64>(),
        prop::sample::select(&[0, 1, 0xFF, 0x100, u64::MAX - 1, u64::MAX][..]),
        few_bits.clone(),
        few_bits.prop_map(|value| !value),
    ]
}

/// A box, and a point that is anywhere, on the box's corner coordinates (and next to them),
/// or built from coordinates like the box's.
fn box_and_point() -> impl Strategy<Value = (ZBox, u128)> {
    (coordinate(), coordinate(), coordinate(), coordinate()).prop_flat_map(|(a, b, c, d)| {
        let zbox = ZBox::new(a.min(b), a.max(b), c.min(d), c.max(d)).unwrap();
        let near: Vec<u64> =
            [a, b, c, d].iter().flat_map(|&v| [v.wrapping_sub(1), v, v.wrapping_add(1)]).collect();
        let near = prop::sample::select(near);
        let point = prop_oneof![
            any::<u128>(),
            (near.clone(), near).prop_map(|(p, t)| interleave(p, t)),
            (coordinate(), coordinate()).prop_map(|(p, t)| interleave(p, t)),
        ];
        (Just(zbox), point)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn bigmin_litmax_match_the_block_oracle_on_the_full_range(
        (zbox, x) in box_and_point(),
    ) {
        check_against_blocks(&zbox, x);
    }
}
