//! The two-table layout a user builds for versions on an engine without them (issue 12's honest
//! anchors for the temporal rows), shared by the peer harness's `LMDB-temporal` and
//! `RocksDB-temporal`: every write
//! goes to a key-major table (`key ‖ !version -> value`: a key's versions adjacent, newest
//! first) and a time-major table (`version ‖ key -> value`: a version's writes adjacent), both in
//! one transaction per batch. As-of is one seek in the key-major table, history one prefix scan,
//! `changes` a scan of the cheaper table with a filter ([`plan`]).
//!
//! Versions are a counter the engine keeps (1, 2, ...), one per batch. The layout relies on
//! every key of a dataset having the same length, as the harness's keys do (a user with keys of
//! several lengths would length-prefix them); entries of another length are skipped.

/// Bytes of a version in either table.
pub const VERSION_LEN: usize = 8;

/// The key-major table's key: `key ‖ !version`, big-endian, so a key's versions sort newest
/// first and a seek to `key ‖ !v` lands on the newest version at or below `v`.
#[must_use]
pub fn key_major(key: &[u8], version: u64) -> Vec<u8> {
    let mut entry = Vec::with_capacity(key.len() + VERSION_LEN);
    entry.extend_from_slice(key);
    entry.extend_from_slice(&(!version).to_be_bytes());
    entry
}

/// The key-major key just after every version of `key` (a seek there lands on the next key).
#[must_use]
pub fn after_key(key: &[u8]) -> Vec<u8> {
    let mut entry = key_major(key, 0);
    entry.push(0);
    entry
}

/// `(key, version)` of a key-major entry of a `key_len`-byte key, or `None` for another length.
#[must_use]
pub fn split_key_major(entry: &[u8], key_len: usize) -> Option<(&[u8], u64)> {
    if entry.len() != key_len + VERSION_LEN {
        return None;
    }
    let (key, version) = entry.split_at(key_len);
    Some((key, !u64::from_be_bytes(version.try_into().ok()?)))
}

/// The time-major table's key: `version ‖ key`, big-endian.
#[must_use]
pub fn time_major(version: u64, key: &[u8]) -> Vec<u8> {
    let mut entry = Vec::with_capacity(VERSION_LEN + key.len());
    entry.extend_from_slice(&version.to_be_bytes());
    entry.extend_from_slice(key);
    entry
}

/// The key of a time-major entry.
#[must_use]
pub fn time_major_key(entry: &[u8]) -> Option<&[u8]> {
    entry.get(VERSION_LEN..)
}

/// Whether `key` is in `[start, end)` (`None`: unbounded).
#[must_use]
pub fn in_range(key: &[u8], start: Option<&[u8]>, end: Option<&[u8]>) -> bool {
    start.is_none_or(|start| key >= start) && end.is_none_or(|end| key < end)
}

/// Which table a `changes` query scans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// The key range's entries, filtered by version.
    KeyMajor,
    /// The version window's entries, filtered by key.
    TimeMajor,
}

/// The cheaper table for keys `[start, end)` x versions `[version_first, version_last]`: the
/// smaller of the two fractions the query covers, estimating the key fraction by interpolating
/// the bounds between the table's first and last keys (`key_first`, `key_last`: two seeks), on
/// the 8 bytes after their common prefix, and the time fraction against versions
/// `1..=version_latest`.
#[must_use]
pub fn plan(
    start: Option<&[u8]>,
    end: Option<&[u8]>,
    (version_first, version_last): (u64, u64),
    (key_first, key_last): (&[u8], &[u8]),
    version_latest: u64,
) -> Plan {
    let shared = key_first.iter().zip(key_last).take_while(|(a, b)| a == b).count();
    let position = |key: &[u8]| -> f64 {
        let mut bytes = [0; 8];
        for (byte, source) in bytes.iter_mut().zip(key.iter().skip(shared)) {
            *byte = *source;
        }
        #[allow(clippy::cast_precision_loss, reason = "an estimate")]
        let position = u64::from_be_bytes(bytes) as f64;
        position
    };
    let (low, high) = (position(key_first), position(key_last));
    let key_fraction = if high > low {
        let from = start.map_or(low, position).clamp(low, high);
        let to = end.map_or(high, position).clamp(low, high);
        (to - from).max(0.0) / (high - low)
    } else {
        1.0
    };
    let window = version_last.min(version_latest).saturating_sub(version_first).saturating_add(1);
    #[allow(clippy::cast_precision_loss, reason = "an estimate")]
    let time_fraction = window as f64 / version_latest.max(1) as f64;
    if time_fraction <= key_fraction { Plan::TimeMajor } else { Plan::KeyMajor }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_major_orders_a_keys_versions_newest_first_and_seeks_as_of() {
        let mut entries = [key_major(b"b", 1), key_major(b"a", 2), key_major(b"a", 7)];
        entries.sort();
        assert_eq!(entries[0], key_major(b"a", 7));
        assert_eq!(entries[1], key_major(b"a", 2));
        assert!(key_major(b"a", 5) > entries[0] && key_major(b"a", 5) < entries[1]);
        assert!(after_key(b"a") > entries[1] && after_key(b"a") < entries[2]);
        assert_eq!(split_key_major(&entries[1], 1), Some((&b"a"[..], 2)));
        assert_eq!(split_key_major(&entries[1], 2), None);
    }

    #[test]
    fn plan_scans_the_narrower_dimension() {
        let (first, last) = ([0_u8; 16], [0xFF_u8; 16]);
        let all_keys_one_percent = plan(None, None, (1, 10), (&first, &last), 1000);
        assert_eq!(all_keys_one_percent, Plan::TimeMajor);
        let (from, to) = ([0x10_u8; 16], [0x12_u8; 16]);
        let narrow_keys = plan(Some(&from), Some(&to), (1, 500), (&first, &last), 1000);
        assert_eq!(narrow_keys, Plan::KeyMajor);
        // Shared prefixes: the estimate reads the bytes after them.
        let prefix = b"/*ns*db*tb*".as_slice();
        let (first, last) = ([prefix, &[0; 8]].concat(), [prefix, &[0xFF; 8]].concat());
        let (from, to) = ([prefix, &[0x80; 8]].concat(), [prefix, &[0x81; 8]].concat());
        assert_eq!(plan(Some(&from), Some(&to), (1, 100), (&first, &last), 1000), Plan::KeyMajor);
    }
}
