use super::super::*;

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
