//! The check of fuzz target `history_open` (`fuzz/fuzz_targets/history_open.rs`), shared with
//! the corpus replay test (`tests/tests/fuzz_corpus.rs`): [`HistorySegment::open`] over
//! arbitrary bytes, and every query of a history segment that opens, run to exhaustion.

use zverse_core::Version;
use zverse_core::entry::Entry;
use zverse_core::segment::history::{FOOTER_LEN, HistoryBuilder, HistoryOptions, HistorySegment};

use crate::fuzz_checks::{FooterLayout, with_checksums_fixed};

/// Target `history_open`: opens `data` as a history segment, and on success runs `get_at`,
/// `history`, `history_at`, `iter_key_order` and `changes` over keys and versions it holds,
/// none yielding more than every entry (plus one error). Runs twice: on the bytes, and with
/// every checksum the footer locates recomputed ([`history_with_checksums_fixed`]), so that
/// mutations reach the checks behind the checksums.
pub fn check_history(data: &[u8]) {
    check_history_bytes(data);
    check_history_bytes(&history_with_checksums_fixed(data));
}

fn check_history_bytes(data: &[u8]) {
    let Ok(segment) = HistorySegment::open(data) else { return };
    let bound = usize::try_from(segment.entry_count()).unwrap_or(usize::MAX).saturating_add(1);
    let mut keys: Vec<&[u8]> = vec![b"", b"a", b"\xff\xff"];
    let mut versions = vec![Version::new(0), Version::new(1), Version::MAX];
    let all = exhaust(segment.changes(.., ..), bound, |entry| {
        keys.push(entry.key);
        versions.push(entry.version);
    });
    assert!(all <= bound, "changes yields at most every entry");
    let key_order = exhaust(segment.iter_key_order(), bound, |_| {});
    assert!(key_order <= bound, "iter_key_order yields at most every entry");
    keys.truncate(12);
    versions.truncate(12);
    for &key in &keys {
        assert!(exhaust(segment.history(key), bound, |_| {}) <= bound, "history is bounded");
        for &version in &versions {
            let _ = segment.get_at(key, version);
            let at = segment.history_at(key, version);
            assert!(exhaust(at, bound, |_| {}) <= bound, "history_at is bounded");
            let changes = segment.changes(..=key, version..);
            assert!(exhaust(changes, bound, |_| {}) <= bound, "changes is bounded");
        }
    }
}

/// Runs `items` until its first error or its end (no further than `bound + 1` items), calling
/// `visit` on each entry; returns how many items it yielded.
fn exhaust<'a, E>(
    items: impl Iterator<Item = Result<Entry<'a>, E>>,
    bound: usize,
    mut visit: impl FnMut(Entry<'a>),
) -> usize {
    let mut count = 0;
    for item in items.take(bound.saturating_add(1)) {
        count += 1;
        match item {
            Ok(entry) => visit(entry),
            Err(_) => break,
        }
    }
    count
}

/// `data` with the checksums of a history segment recomputed where its footer says they are
/// (data blocks through the block index, then the sections, then the footer).
#[must_use]
pub fn history_with_checksums_fixed(data: &[u8]) -> Vec<u8> {
    let layout = FooterLayout {
        footer_len: FOOTER_LEN,
        sections_at: 40,
        footer_checksum_at: 136,
        block_handle_len: 32,
    };
    with_checksums_fixed(data, &layout)
}

/// The seeds of the `history_open` corpus: an empty history segment, a small one, and one with
/// shared-prefix keys in small blocks.
#[must_use]
pub fn seeds_history() -> Vec<Vec<u8>> {
    let small: Vec<SeedEntry<'_>> = vec![
        (b"a".to_vec(), 1, Some(b"x")),
        (b"b".to_vec(), 2, None),
        (b"c".to_vec(), 3, Some(b"yy")),
    ];
    let mut shared = Vec::new();
    for id in 0..6u64 {
        let mut key = b"/*ns*db*tb*".to_vec();
        key.extend_from_slice(&id.to_be_bytes());
        for round in (0..4u64).rev() {
            let value: Option<&[u8]> = if round == 2 { None } else { Some(b"value") };
            shared.push((key.clone(), round * 10 + id, value));
        }
    }
    vec![build_history(&[], 4096), build_history(&small, 4096), build_history(&shared, 48)]
}

/// A seed's entry: key, version, value (`None`: a tombstone).
type SeedEntry<'a> = (Vec<u8>, u64, Option<&'a [u8]>);

/// A history segment of `entries`, which are in key order (key ascending, versions descending).
fn build_history(entries: &[SeedEntry<'_>], block_bytes: usize) -> Vec<u8> {
    let options = HistoryOptions::default().with_block_bytes_target(block_bytes);
    let mut builder = HistoryBuilder::new(options);
    for (key, version, value) in entries {
        builder.add::<()>(key, Version::new(*version), *value).expect("seed entries in key order");
    }
    let mut bytes = Vec::new();
    builder.finish(&mut bytes).expect("a Vec sink never fails");
    bytes
}
