use std::vec;
use std::vec::Vec;

use crate::merge::same_key;

/// Every key of up to 9 bytes over {0x00, 0x01, 0xff} of length 0, 1 and 6 to 9: both sides of
/// the 8-byte head, heads that differ only in their last byte, keys that differ only past it.
fn keys() -> Vec<Vec<u8>> {
    let mut keys = vec![Vec::new()];
    let mut last: Vec<Vec<u8>> = vec![Vec::new()];
    for len in 1..=9 {
        last = last
            .iter()
            .flat_map(|key| {
                [0x00_u8, 0x01, 0xff].map(|byte| {
                    let mut longer = key.clone();
                    longer.push(byte);
                    longer
                })
            })
            .collect();
        if len == 1 || len >= 6 {
            keys.extend(last.iter().cloned());
        }
    }
    keys
}

#[test]
fn same_key_is_byte_equality() {
    let keys = keys();
    let sample: Vec<&Vec<u8>> = keys.iter().step_by(7).collect();
    for a in &sample {
        for b in &keys {
            assert_eq!(same_key(a, b), a == &b, "{a:?} against {b:?}");
        }
    }
}
