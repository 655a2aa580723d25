use super::super::*;

#[test]
fn box_scan_over_a_slice_returns_exactly_the_in_box_entries() {
    let mut codes: std::vec::Vec<u128> =
        (0..64u64).flat_map(|p| (0..64u64).map(move |t| interleave(p << 56, t))).collect();
    codes.sort_unstable();
    let zbox = ZBox::new(10 << 56, 20 << 56, 30, 33).unwrap();
    let mut scan = BoxScan::new(SliceCursor::new(&codes, |&m| m), zbox);
    let mut found = std::vec::Vec::new();
    while scan.advance().unwrap() {
        found.push(*scan.cursor().current().unwrap());
    }
    let expected: std::vec::Vec<u128> =
        codes.iter().copied().filter(|&m| zbox.contains(m)).collect();
    assert_eq!(found, expected);
    assert!(scan.stats().entries_touched < 2 * expected.len() as u64, "{:?}", scan.stats());
}
