//! The locality advisor on real files: the mapping's advice and residency calls, and the
//! counters a real database's reads move, on the std and io_uring backends; off, no advice.

use std::io::ErrorKind;
use std::sync::Arc;

use zverse::io::{Advice, Io, StdIo};
use zverse::{Db, Durability, LocalityStats, Options, Version};

/// Keys whose first 8 bytes differ, so key order and Z order agree at block scale.
fn key(index: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&index.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
    key[8..].copy_from_slice(&index.to_be_bytes());
    key
}

const KEY_COUNT: u64 = 24_000;

/// A database of about 3 MB in several segments of about 1 MB (each spans several of the
/// advisor's 256 KiB chunks), two versions per key; returns it with the first round's end.
fn filled_db(io: Arc<dyn Io>, dir: &std::path::Path, advisor: bool) -> (Db, Version) {
    let options = Options::default()
        .durability(Durability::None)
        .memtable_bytes_max(1 << 20)
        .compaction_trigger_segments(64)
        .locality_advisor(advisor);
    let db = Db::open_with_io(dir, options, io).unwrap();
    let value = [7u8; 100];
    let mut round_end = Version::ZERO;
    for round in 0..2 {
        for index in 0..KEY_COUNT {
            round_end = db.put(&key(index), &value).unwrap();
        }
        if round == 0 {
            db.flush().unwrap();
        }
    }
    db.flush().unwrap();
    assert!(db.stats().segment_count >= 3, "{:?}", db.stats());
    (db, round_end)
}

fn locality(db: &Db) -> LocalityStats {
    db.stats().locality
}

/// Reads through every kind of query and checks how each moves the counters.
fn check_counters(io: Arc<dyn Io>) {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = filled_db(io, dir.path(), true);
    let segment_count = db.stats().segment_count as u64;
    let before = locality(&db);
    assert!(before.enabled);
    // Every open (flushes open their segment too) advised it random, then its metadata.
    assert_eq!(before.segments_random, segment_count, "{before:?}");
    assert_eq!(before.advice_calls, 2 * segment_count, "{before:?}");
    assert_eq!(before.advice_errors, 0, "{before:?}");

    // Point reads make no call.
    for index in (0..KEY_COUNT).step_by(97) {
        assert!(db.get(&key(index)).unwrap().is_some());
        assert_eq!(db.history(&key(index)).unwrap().count(), 2);
    }
    assert_eq!(locality(&db).advice_calls, before.advice_calls, "gets give no advice");

    // A short range (2% of the keys, a few pages per segment) gives no advice at all.
    let low = (u64::MAX / 50 * 7).to_be_bytes();
    let high = (u64::MAX / 50 * 8).to_be_bytes();
    let narrow = db.range(&low[..]..&high[..]).unwrap().map(Result::unwrap).count() as u64;
    assert!(narrow > 0 && narrow < KEY_COUNT / 20, "{narrow} keys");
    let after_narrow = locality(&db);
    assert_eq!(after_narrow.advice_calls, before.advice_calls, "{after_narrow:?}");

    // A longer range (20% of the keys) prefetches only the Z-range it can read.
    let high = (u64::MAX / 50 * 17).to_be_bytes();
    let wide = db.range(&low[..]..&high[..]).unwrap().map(Result::unwrap).count() as u64;
    assert!(wide > KEY_COUNT / 10 && wide < KEY_COUNT / 4, "{wide} keys");
    let after_wide = locality(&db);
    let segment_pages = db.segment_residency().unwrap().pages_total;
    assert!(after_wide.pages_prefetched > 0, "{after_wide:?}");
    assert!(
        after_wide.pages_prefetched * 3 < segment_pages,
        "{} of {segment_pages} pages prefetched for 20% of the keys",
        after_wide.pages_prefetched
    );

    // A full range scan: prefetched ahead, measured, pages counted.
    let count = db.range(..).unwrap().map(Result::unwrap).count();
    assert_eq!(count as u64, KEY_COUNT);
    let after_range = locality(&db);
    assert_eq!(after_range.scan_queries, 3);
    assert!(after_range.pages_prefetched > 0, "{after_range:?}");
    assert!(after_range.scan_pages_touched > 0, "{after_range:?}");
    let measured = after_range.prefetch_pages_resident + after_range.prefetch_pages_missed;
    assert!(measured > 0, "the scan entered prefetched chunks: {after_range:?}");
    assert!((0.0..=1.0).contains(&after_range.prefetch_accuracy));
    assert_eq!(after_range.advice_errors, 0, "{after_range:?}");

    // A changes query over every key and version touches at least the pages the range did.
    let changed = db.changes(.., ..).unwrap().map(Result::unwrap).count();
    assert_eq!(changed as u64, 2 * KEY_COUNT);
    let after_changes = locality(&db);
    assert_eq!(after_changes.scan_queries, 4);
    assert!(after_changes.pages_prefetched > after_range.pages_prefetched);
    assert!(after_changes.scan_pages_touched > after_range.scan_pages_touched);

    // `check` reads every block with prefetching too, and is not a query.
    db.check().unwrap();
    let after_check = locality(&db);
    assert!(after_check.pages_prefetched > after_changes.pages_prefetched);
    assert_eq!(after_check.scan_queries, after_changes.scan_queries);
    assert_eq!(after_check.scan_pages_touched, after_changes.scan_pages_touched);

    // Compaction reads its inputs with prefetching and retires them cold.
    db.compact().unwrap();
    let after_compact = locality(&db);
    // Every input, and the remainder of a step that the next step merged again (compact()
    // goes in steps of at most the fan-in).
    assert!(after_compact.segments_cold >= segment_count, "{after_compact:?}");
    assert!(after_compact.pages_prefetched > after_check.pages_prefetched);
    assert_eq!(after_compact.scan_queries, 4, "compaction is not a query");
    assert_eq!(after_compact.advice_errors, 0, "{after_compact:?}");
    db.close().unwrap();
}

#[test]
fn reads_move_the_advisor_counters_on_std() {
    check_counters(Arc::new(StdIo));
}

#[cfg(target_os = "linux")]
#[test]
fn reads_move_the_advisor_counters_on_io_uring() {
    match zverse_linux::UringIo::new() {
        Ok(io) => check_counters(Arc::new(io)),
        Err(error) => eprintln!("io_uring refused by this kernel ({error}); not checked"),
    }
}

#[test]
fn a_disabled_advisor_gives_no_advice() {
    let dir = tempfile::tempdir().unwrap();
    let (db, round_end) = filled_db(Arc::new(StdIo), dir.path(), false);
    for index in (0..KEY_COUNT).step_by(101) {
        db.get(&key(index)).unwrap();
    }
    assert_eq!(db.range(..).unwrap().count() as u64, KEY_COUNT);
    assert_eq!(db.changes(.., round_end..).unwrap().count() as u64, 1);
    db.compact().unwrap();
    let stats = locality(&db);
    assert!(!stats.enabled);
    assert_eq!(
        (stats.advice_calls, stats.pages_advised, stats.pages_prefetched),
        (0, 0, 0),
        "{stats:?}"
    );
    assert_eq!((stats.prefetch_pages_resident, stats.prefetch_pages_missed), (0, 0));
    assert_eq!((stats.segments_random, stats.segments_cold), (0, 0));
    db.close().unwrap();
    let db = Db::open(dir.path(), Options::default().locality_advisor(false)).unwrap();
    db.get(&key(1)).unwrap();
    assert_eq!(locality(&db).advice_calls, 0, "reopened without it: no advice at open");
    assert_eq!(stats.scan_queries, 2);
    assert!(stats.scan_pages_touched > 0, "pages touched are counted either way: {stats:?}");
}

#[test]
fn a_std_mapping_advises_ranges_and_reports_residency() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let file = StdIo.create_new(&path).unwrap();
    let len = 1 << 20;
    file.write_all_at_and_sync(&[&vec![3u8; len]], 0).unwrap();
    let mapping = StdIo.open_read(&path).unwrap().map().unwrap();
    let page = mapping.page_bytes();
    assert!(page.is_power_of_two());
    for advice in
        [Advice::Random, Advice::Sequential, Advice::WillNeed, Advice::Normal, Advice::Cold]
    {
        mapping.advise_range(page + 1, 3 * page, advice).unwrap();
    }
    mapping.advise_range(0, len, Advice::DontNeed).unwrap();
    let sum: u64 = mapping.bytes().iter().step_by(page).map(|&b| u64::from(b)).sum();
    assert_eq!(sum, 3 * (len / page) as u64, "the bytes read back after DONTNEED");
    // Every page was just read through the mapping, so all of them are resident.
    assert_eq!(mapping.resident_pages(0, len).unwrap(), len / page);
    assert_eq!(mapping.resident_pages(page - 1, 2).unwrap(), 2, "a range spanning two pages");
    assert_eq!(mapping.resident_pages(0, 0).unwrap(), 0);
    let past_end = mapping.resident_pages(len - 1, 2).unwrap_err();
    assert_eq!(past_end.kind(), ErrorKind::InvalidInput);
    let past_end = mapping.advise_range(len, 1, Advice::WillNeed).unwrap_err();
    assert_eq!(past_end.kind(), ErrorKind::InvalidInput);
}
