use proptest::prelude::*;
use std::vec::Vec;

use super::super::*;

#[test]
fn box_scan_over_a_slice_returns_exactly_the_in_box_entries() {
    let mut codes: Vec<u128> =
        (0..64u64).flat_map(|p| (0..64u64).map(move |t| interleave(p << 56, t))).collect();
    codes.sort_unstable();
    let zbox = ZBox::new(10 << 56, 20 << 56, 30, 33).unwrap();
    let mut scan = BoxScan::new(SliceCursor::new(&codes, |&m| m), zbox);
    let mut found = Vec::new();
    while scan.advance().unwrap() {
        found.push(*scan.cursor().current().unwrap());
    }
    let expected: Vec<u128> = codes.iter().copied().filter(|&m| zbox.contains(m)).collect();
    assert_eq!(found, expected);
    assert!(scan.stats().entries_touched < 2 * expected.len() as u64, "{:?}", scan.stats());
}

/// Every entry the scan yields, in order, with the scan's counters.
fn scan_all(entries: &[(u128, usize)], zbox: ZBox) -> (Vec<(u128, usize)>, ScanStats) {
    let mut scan = BoxScan::new(SliceCursor::new(entries, |entry: &(u128, usize)| entry.0), zbox);
    let mut found = Vec::new();
    while scan.advance().unwrap() {
        found.push(*scan.cursor().current().unwrap());
    }
    assert!(!scan.advance().unwrap(), "a finished scan stays finished");
    (found, scan.stats())
}

/// Coordinates from a small set (so that boxes and entries meet), or any.
fn coordinate() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => prop::sample::select(&[0, 1, 2, 3, 0xFF, 0x100, 1 << 56, 2 << 56, u64::MAX][..]),
        1 => any::<u64>(),
    ]
}

fn zbox_strategy() -> impl Strategy<Value = ZBox> {
    (coordinate(), coordinate(), coordinate(), coordinate())
        .prop_map(|(a, b, c, d)| ZBox::new(a.min(b), a.max(b), c.min(d), c.max(d)).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Entries are (M, index) sorted by M with repeats (keys sharing their first 8 bytes
    /// share M), so the scan must also yield every entry of a repeated code.
    #[test]
    fn box_scan_yields_exactly_the_in_box_entries(
        points in prop::collection::vec((coordinate(), coordinate()), 0..120),
        zbox in zbox_strategy(),
    ) {
        let mut codes: Vec<u128> = points.iter().map(|&(p, t)| interleave(p, t)).collect();
        codes.sort_unstable();
        let entries: Vec<(u128, usize)> = codes.into_iter().zip(0..).collect();
        let expected: Vec<(u128, usize)> =
            entries.iter().copied().filter(|entry| zbox.contains(entry.0)).collect();
        let (found, stats) = scan_all(&entries, zbox);
        prop_assert_eq!(found, expected);
        prop_assert!(stats.entries_touched <= entries.len() as u64, "{:?}", stats);
    }
}

#[test]
fn box_scan_of_an_empty_run_or_a_box_beside_the_data_finds_nothing() {
    let zbox = ZBox::new(0, u64::MAX, 0, u64::MAX).unwrap();
    assert_eq!(scan_all(&[], zbox).0, []);
    let entries: Vec<(u128, usize)> = (10..20).map(|t| (interleave(5, t), 0)).collect();
    for beside in [
        ZBox::new(0, 4, 0, u64::MAX).unwrap(),
        ZBox::new(6, u64::MAX, 0, u64::MAX).unwrap(),
        ZBox::new(0, u64::MAX, 0, 9).unwrap(),
        ZBox::new(0, u64::MAX, 20, u64::MAX).unwrap(),
    ] {
        let (found, stats) = scan_all(&entries, beside);
        assert_eq!(found, [], "{beside:?}");
        assert!(stats.entries_touched <= 1, "{beside:?}: {stats:?}");
    }
}

/// A narrow time window over many keys: the shape of a `changes` query. A scan that stepped
/// from the window's first entry to its last would touch nearly every entry (1024 keys x 64
/// versions). BIGMIN touches, per key, one entry past its window (whose BIGMIN is the
/// window at the next prefix, a code that is not in the data) and the next key's first entry
/// (whose BIGMIN is that key's window): two entries and two seeks per key.
#[test]
fn a_narrow_time_window_touches_few_entries_beyond_its_own() {
    const KEY_COUNT: u64 = 1024;
    const VERSION_COUNT: u64 = 64;
    const VERSION_BASE: u64 = 1_700_000_000_000_000;
    let mut codes: Vec<u128> = (0..KEY_COUNT)
        .flat_map(|i| (0..VERSION_COUNT).map(move |j| interleave(i << 40, VERSION_BASE + j)))
        .collect();
    codes.sort_unstable();
    let zbox = ZBox::new(0, u64::MAX, VERSION_BASE + 40, VERSION_BASE + 41).unwrap();
    let entries: Vec<(u128, usize)> = codes.into_iter().zip(0..).collect();
    let (found, stats) = scan_all(&entries, zbox);
    assert_eq!(found.len() as u64, 2 * KEY_COUNT);
    let stepped = found.last().unwrap().1 - found.first().unwrap().1 + 1;
    assert!(stepped as u64 > (VERSION_COUNT - 2) * KEY_COUNT, "stepping would touch {stepped}");
    assert!(stats.entries_touched <= found.len() as u64 + 2 * KEY_COUNT, "{stats:?}");
    assert!(stats.seeks <= 2 * KEY_COUNT + 1, "{stats:?}");
}

#[test]
fn a_finished_scan_touches_nothing_more() {
    let entries: Vec<(u128, usize)> = (0..8).map(|t| (interleave(1, t), 0)).collect();
    let zbox = ZBox::new(1, 1, 2, 3).unwrap();
    let mut scan = BoxScan::new(SliceCursor::new(&entries, |entry: &(u128, usize)| entry.0), zbox);
    while scan.advance().unwrap() {}
    let stats = scan.stats();
    for _ in 0..3 {
        assert!(!scan.advance().unwrap());
    }
    assert_eq!(scan.stats(), stats);
    assert_eq!(stats, ScanStats { entries_touched: 3, seeks: 1 });
}
