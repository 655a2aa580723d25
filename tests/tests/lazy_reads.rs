//! Reads set up only what they read.
//!
//! `history` is lazy: taking the newest versions of a key with a long history costs what it
//! yields, not the length of the history (it used to collect every version first); and a
//! version window starts where the window does (a search in each segment's key index), not at
//! the key's newest version.
//!
//! A range sets up each end's merge on its first read from that end: `last()` and `.rev()`
//! never set up the forward scan (nor its read-ahead advice).

use std::time::{Duration, Instant};

use zverse::{Db, Durability, Options};
use zverse_tests::backend;

/// Versions of the one key: half in segments, half in the memtable.
const VERSION_COUNT: u32 = 20_000;

fn fastest_of_five(mut read: impl FnMut() -> usize) -> (Duration, usize) {
    let mut fastest = Duration::MAX;
    let mut count = 0;
    for _ in 0..5 {
        let started = Instant::now();
        count = read();
        fastest = fastest.min(started.elapsed());
    }
    (fastest, count)
}

#[test]
fn taking_the_newest_versions_does_not_read_the_whole_history() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default().durability(Durability::None);
    let db: Db = backend::open(dir.path(), options).unwrap();
    let mut versions = Vec::new();
    for index in 0..VERSION_COUNT {
        versions.push(db.put(b"key", &index.to_le_bytes()).unwrap());
        if index == VERSION_COUNT / 2 {
            db.flush().unwrap();
        }
    }
    let (all, all_count) = fastest_of_five(|| db.history(b"key").unwrap().count());
    let (newest, newest_count) = fastest_of_five(|| db.history(b"key").unwrap().take(3).count());
    assert_eq!((all_count, newest_count), (VERSION_COUNT as usize, 3));
    eprintln!("history of {VERSION_COUNT} versions: all {all:?}, take(3) {newest:?}");
    // Eager, both take about as long; lazy, `take(3)` is thousands of times faster. A factor
    // of 20 leaves room for a loaded machine.
    assert!(newest * 20 < all, "take(3) took {newest:?}, the whole history {all:?}");

    // The 100th version: in the segment, below 19,900 newer ones.
    let old = versions[99];
    let (window, window_count) =
        fastest_of_five(|| db.history_range(b"key", old..=old).unwrap().count());
    assert_eq!(window_count, 1);
    eprintln!("history_range of one old version: {window:?}");
    assert!(window * 20 < all, "one old version took {window:?}, the whole history {all:?}");
}

#[test]
fn a_reverse_walk_never_sets_up_the_forward_scan() {
    let dir = tempfile::tempdir().unwrap();
    let db: Db = backend::open(dir.path(), Options::default()).unwrap();
    for index in 0..1_000_u32 {
        db.put(&index.to_be_bytes(), &[0; 100]).unwrap();
    }
    db.flush().unwrap();
    let advice_calls = || db.stats().locality.advice_calls;

    let before = advice_calls();
    let (last, _) = db.last().unwrap().unwrap();
    assert_eq!(&last[..], 999_u32.to_be_bytes());
    assert_eq!(db.range(..).unwrap().rev().count(), 1_000);
    assert_eq!(advice_calls(), before, "no forward read-ahead for a backward walk");

    let (first, _) = db.first().unwrap().unwrap();
    assert_eq!(&first[..], 0_u32.to_be_bytes());
    // A long forward scan (short ones, such as `first`, give no advice: under 16 pages).
    assert_eq!(db.range(..).unwrap().count(), 1_000);
    if cfg!(unix) {
        // Where madvise exists: proof that the test can see advice at all.
        assert!(advice_calls() > before, "a forward scan is advised");
    }
}

/// A range over a key written thousands of times (a Zipfian workload's hot key) yields the key
/// once, and passes over its older versions, in the memtable and in a segment, in a few seeks:
/// a short scan from the hot key costs what it yields, not the length of the key's history.
#[test]
fn a_short_range_from_a_hot_key_does_not_walk_its_versions() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default().durability(Durability::None);
    let db: Db = backend::open(dir.path(), options).unwrap();
    for key in [b"a", b"z"] {
        db.put(key, b"cold").unwrap();
    }
    let mut versions = Vec::new();
    for index in 0..VERSION_COUNT {
        versions.push(db.put(b"hot", &index.to_le_bytes()).unwrap());
        if index == VERSION_COUNT / 2 {
            db.flush().unwrap();
        }
    }
    let (all, all_count) = fastest_of_five(|| db.history(b"hot").unwrap().count());
    assert_eq!(all_count, VERSION_COUNT as usize);
    let scan = || db.range(&b"hot"[..]..).unwrap().take(2).count();
    let (short, short_count) = fastest_of_five(scan);
    assert_eq!(short_count, 2, "the hot key once, then z");
    eprintln!("history of {VERSION_COUNT} versions: {all:?}; range(hot..).take(2): {short:?}");
    assert!(short * 20 < all, "the short range took {short:?}, the whole history {all:?}");

    // As of a version inside each half: the newer versions are passed over too.
    for index in [VERSION_COUNT / 4, VERSION_COUNT * 3 / 4] {
        let at = versions[index as usize];
        let items: Vec<_> = db.range_at(.., at).unwrap().map(Result::unwrap).collect();
        let keys: Vec<&[u8]> = items.iter().map(|(key, _)| &key[..]).collect();
        assert_eq!(keys, [&b"a"[..], b"hot", b"z"], "as of version {index}");
        assert_eq!(&items[1].1[..], index.to_le_bytes(), "the hot key's value then");
        let back: Vec<_> = db.range_at(.., at).unwrap().rev().map(Result::unwrap).collect();
        assert_eq!(back.len(), 3, "backwards as of version {index}");
        assert_eq!(&back[1].1[..], index.to_le_bytes());
    }
}
