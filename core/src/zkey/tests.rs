use super::*;

#[test]
fn byte_layout_is_p0_t0_p1_t1() {
    let p = u64::from_be_bytes([0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17]);
    let t = u64::from_be_bytes([0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27]);
    let m = interleave(p, t).to_be_bytes();
    assert_eq!(
        m,
        [
            0x10, 0x20, 0x11, 0x21, 0x12, 0x22, 0x13, 0x23, 0x14, 0x24, 0x15, 0x25, 0x16, 0x26,
            0x17, 0x27
        ]
    );
    assert_eq!(deinterleave(interleave(p, t)), (p, t));
}

#[test]
fn key_prefix_pads_short_keys() {
    assert_eq!(key_prefix(b""), 0);
    assert_eq!(key_prefix(b"a"), 0x61 << 56);
    assert_eq!(key_prefix(b"abcdefghXYZ"), u64::from_be_bytes(*b"abcdefgh"));
}

/// Brute force over a small domain: every box and every code, BIGMIN and LITMAX against a scan.
#[test]
fn bigmin_litmax_match_brute_force_on_small_domain() {
    // Prefixes and versions below 2^9 use the two least significant bytes of each dimension,
    // so byte boundaries are crossed.
    let domain: u64 = 1 << 9;
    let step = 37;
    let codes = |b: &ZBox| {
        let mut in_box = std::vec::Vec::new();
        for p in 0..domain {
            for t in 0..domain {
                if b.contains_point(p, t) {
                    in_box.push(interleave(p, t));
                }
            }
        }
        in_box.sort_unstable();
        in_box
    };
    for (plo, phi, tlo, thi) in
        [(3, 300, 5, 7), (0, 511, 256, 257), (255, 256, 0, 511), (17, 17, 9, 400)]
    {
        let b = ZBox::new(plo, phi, tlo, thi).unwrap();
        let in_box = codes(&b);
        for p in (0..domain).step_by(step) {
            for t in (0..domain).step_by(3) {
                let m = interleave(p, t);
                let next = in_box.iter().copied().find(|&c| c >= m);
                let prev = in_box.iter().rev().copied().find(|&c| c <= m);
                assert_eq!(b.next_at_or_after(m), next, "bigmin {b:?} at ({p}, {t})");
                assert_eq!(b.prev_at_or_before(m), prev, "litmax {b:?} at ({p}, {t})");
            }
        }
    }
}

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
