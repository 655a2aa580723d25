//! The locality advisor on cold data: a range scan and a `changes` box query over a dataset
//! whose pages were dropped from the page cache, with the advisor on and off.
//!
//! The dataset (about 320 MB of segments: 240,000 16-byte keys x 3 versions x 400-byte
//! values, `Durability::None`, flushed into 64 MiB-memtable segments) is written once. Then
//! every sample closes the database (mapped pages cannot be dropped), drops every file from
//! the page cache with `posix_fadvise(POSIX_FADV_DONTNEED)`, reopens it with the advisor on or
//! off (alternating, so both see the same disk weather), and times one query:
//!
//! - `range`: `range` over 2% of the key space (the newest of 3 versions of ~4,800 keys);
//! - `changes`: `changes` over another 2% of the keys x the second round of writes.
//!
//! For each it prints the median time of the cold query, of the same query run again at once
//! (warm: what the advice and its counting cost when nothing is read from disk) and of the
//! reopen, and, from `Db::stats` and `Db::segment_residency`, the pages the query touched, the
//! segment pages it brought into memory, the pages the advisor prefetched and its prefetch
//! accuracy (prefetched pages whose read had finished when the scan reached them, by
//! `mincore`).
//!
//! "Off" is the kernel's default advice (`MADV_NORMAL`) everywhere: each page fault reads the
//! device's read-ahead window around it (`read_ahead_kb`, 8 MiB on the development VM).
//!
//! Run: `cargo bench -p zverse-benches --bench locality` (a few minutes; set
//! `ZVERSE_LOCALITY_SAMPLES` for more or fewer samples than 7). Under `cargo test --benches` it
//! runs once on a 3,000-key dataset to check that it works.
#![allow(missing_docs, reason = "a bench binary")]

#[cfg(target_os = "linux")]
fn main() {
    linux::main();
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("the locality bench drops pages with posix_fadvise: Linux only");
}

#[cfg(target_os = "linux")]
mod linux {
    use std::ops::Bound;
    use std::os::fd::AsRawFd;
    use std::path::Path;
    use std::time::{Duration, Instant};

    use zverse::{Db, Durability, Options, Stats, Version};

    const VALUE: [u8; 400] = [0x5A; 400];
    const KEY_COUNT: u64 = 240_000;
    const KEY_COUNT_TEST: u64 = 3_000;
    const ROUNDS: usize = 3;
    const SAMPLES_DEFAULT: usize = 7;
    /// The key space share each query covers: 1/50 = 2%.
    const SLICE_PARTS: u64 = 50;

    /// A key whose first 8 bytes spread over the key space (a multiplicative hash of
    /// `index`), so key order and Z order agree at block scale, as for random keys.
    fn key(index: u64) -> [u8; 16] {
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&index.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
        key[8..].copy_from_slice(&index.to_be_bytes());
        key
    }

    /// The keys whose first 8 bytes fall in slice `slice` of `SLICE_PARTS`.
    fn slice_bounds(slice: u64) -> ([u8; 8], [u8; 8]) {
        let width = u64::MAX / SLICE_PARTS;
        ((slice * width).to_be_bytes(), ((slice + 1) * width).to_be_bytes())
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Query {
        Range,
        Changes,
    }

    /// One cold run of one query.
    struct Sample {
        elapsed: Duration,
        /// The same query right after, warm.
        warm_elapsed: Duration,
        /// The reopen before the query (reads and checks every segment's metadata).
        open_elapsed: Duration,
        items: usize,
        /// Segment pages in memory after the reopen, before the query.
        resident_before: u64,
        /// Segment pages the query brought into memory.
        pages_read_in: u64,
        stats: Stats,
    }

    pub(super) fn main() {
        let test_mode = zverse_benches::is_test_mode();
        let key_count = if test_mode { KEY_COUNT_TEST } else { KEY_COUNT };
        let samples = if test_mode {
            1
        } else {
            std::env::var("ZVERSE_LOCALITY_SAMPLES")
                .ok()
                .and_then(|count| count.parse().ok())
                .unwrap_or(SAMPLES_DEFAULT)
        };
        // Under target/, not /tmp: a tmpfs keeps its files in the page cache.
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temporary dir");
        println!("locality: load average {} at start", load_average());
        let second_round = fill(dir.path(), key_count);
        let mut results: Vec<(Query, bool, Vec<Sample>)> = Vec::new();
        for query in [Query::Range, Query::Changes] {
            for advisor in [true, false] {
                results.push((query, advisor, Vec::new()));
            }
        }
        for _ in 0..samples {
            for (query, advisor, runs) in &mut results {
                runs.push(cold_run(dir.path(), *query, *advisor, second_round));
            }
        }
        for (query, advisor, runs) in &results {
            report(*query, *advisor, runs);
        }
        check_same_answers(&results);
        println!("locality: load average {} at end", load_average());
    }

    /// Writes the dataset: `ROUNDS` rounds of every key; returns the versions of round 2.
    fn fill(dir: &Path, key_count: u64) -> (Version, Version) {
        let options = Options::default().durability(Durability::None);
        let db = Db::open(dir, options).expect("open the dataset");
        let keys: Vec<[u8; 16]> = (0..key_count).map(key).collect();
        let mut round_ends = Vec::new();
        let start = Instant::now();
        for _ in 0..ROUNDS {
            zverse_benches::timed_fill(&db, &keys, &VALUE, 1);
            round_ends.push(db.stats().version_visible);
        }
        db.flush().expect("flush");
        let stats = db.stats();
        println!(
            "locality: {} keys x {ROUNDS} versions, {} segments, {:.1} MB, written in {:.1} s",
            key_count,
            stats.segment_count,
            mb(stats.segment_bytes),
            start.elapsed().as_secs_f64()
        );
        db.close().expect("close");
        (round_ends[0], round_ends[1])
    }

    /// Drops the dataset from the page cache, reopens it and times one query.
    fn cold_run(dir: &Path, query: Query, advisor: bool, round: (Version, Version)) -> Sample {
        drop_from_page_cache(dir);
        let options = Options::default().durability(Durability::None).locality_advisor(advisor);
        let open_start = Instant::now();
        let db = Db::open(dir, options).expect("reopen the dataset");
        let open_elapsed = open_start.elapsed();
        let resident_before = resident_pages(&db);
        let start = Instant::now();
        let items = run_query(&db, query, round);
        let elapsed = start.elapsed();
        let stats = db.stats();
        let pages_read_in = resident_pages(&db).saturating_sub(resident_before);
        // The same query again, on pages now in memory: what the advice and counting cost.
        let start = Instant::now();
        assert_eq!(run_query(&db, query, round), items, "the same answer warm");
        let warm_elapsed = start.elapsed();
        db.close().expect("close");
        assert!(items > 0, "the query finds something");
        Sample { elapsed, warm_elapsed, open_elapsed, items, resident_before, pages_read_in, stats }
    }

    /// Runs `query` to its end; returns the items it yielded.
    fn run_query(db: &Db, query: Query, round: (Version, Version)) -> usize {
        match query {
            Query::Range => {
                let (low, high) = slice_bounds(7);
                let bounds = (Bound::Included(&low[..]), Bound::Excluded(&high[..]));
                count_items(db.range(bounds).expect("range"))
            }
            Query::Changes => {
                let (low, high) = slice_bounds(31);
                let bounds = (Bound::Included(&low[..]), Bound::Excluded(&high[..]));
                let versions = (Bound::Excluded(round.0), Bound::Included(round.1));
                let changes = db.changes(bounds, versions).expect("changes");
                count_items(changes)
            }
        }
    }

    /// Reads every item of a query, failing on the first error.
    fn count_items<T>(items: impl Iterator<Item = zverse::Result<T>>) -> usize {
        items.fold(0, |count, item| {
            item.expect("a query item");
            count + 1
        })
    }

    fn resident_pages(db: &Db) -> u64 {
        db.segment_residency().expect("mincore works on Linux").pages_resident
    }

    /// `posix_fadvise(POSIX_FADV_DONTNEED)` on every file of the closed database: their clean
    /// pages leave the page cache (nothing maps them any more).
    fn drop_from_page_cache(dir: &Path) {
        for entry in std::fs::read_dir(dir).expect("list the dataset") {
            let path = entry.expect("a directory entry").path();
            let file = std::fs::File::open(&path).expect("open a dataset file");
            file.sync_all().expect("sync: dirty pages cannot be dropped");
            // SAFETY: posix_fadvise reads no memory of ours; the descriptor is open.
            let result =
                unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            assert_eq!(result, 0, "posix_fadvise on {}", path.display());
        }
    }

    fn report(query: Query, advisor: bool, runs: &[Sample]) {
        let median = |mut values: Vec<f64>| {
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        #[allow(clippy::cast_precision_loss, reason = "page counts printed as figures")]
        let median_of =
            |f: &dyn Fn(&Sample) -> u64| median(runs.iter().map(|s| f(s) as f64).collect());
        let times_ms: Vec<f64> = runs.iter().map(|s| s.elapsed.as_secs_f64() * 1e3).collect();
        let (low, high) =
            times_ms.iter().fold((f64::MAX, 0.0f64), |(lo, hi), &t| (lo.min(t), hi.max(t)));
        let resident: u64 = runs.iter().map(|s| s.stats.locality.prefetch_pages_resident).sum();
        let missed: u64 = runs.iter().map(|s| s.stats.locality.prefetch_pages_missed).sum();
        #[allow(clippy::cast_precision_loss, reason = "a percentage")]
        let accuracy = if resident + missed == 0 {
            "n/a".to_owned()
        } else {
            format!(
                "{:.1}% of {} pages",
                resident as f64 * 100.0 / (resident + missed) as f64,
                resident + missed
            )
        };
        println!(
            "locality/{query:?}/advisor_{}: median {:.1} ms (min {low:.1}, max {high:.1}, \
             {} runs), warm {:.2} ms, open {:.1} ms, {} items, pages touched {:.0}, \
             pages read in {:.0} (resident before {:.0}), prefetched {:.0}, \
             prefetch accuracy {accuracy}, advice calls {:.0}",
            if advisor { "on" } else { "off" },
            median(times_ms.clone()),
            runs.len(),
            median(runs.iter().map(|s| s.warm_elapsed.as_secs_f64() * 1e3).collect()),
            median(runs.iter().map(|s| s.open_elapsed.as_secs_f64() * 1e3).collect()),
            runs[0].items,
            median_of(&|s| s.stats.locality.scan_pages_touched),
            median_of(&|s| s.pages_read_in),
            median_of(&|s| s.resident_before),
            median_of(&|s| s.stats.locality.pages_prefetched),
            median_of(&|s| s.stats.locality.advice_calls),
        );
        assert_eq!(runs[0].stats.locality.enabled, advisor);
        if !advisor {
            assert!(runs.iter().all(|s| s.stats.locality.advice_calls == 0), "off means no advice");
        }
    }

    /// The advisor changes timing, never answers.
    fn check_same_answers(results: &[(Query, bool, Vec<Sample>)]) {
        for (query, _, runs) in results {
            let items = runs[0].items;
            let same = results.iter().filter(|(q, _, _)| q == query);
            assert!(same.flat_map(|(_, _, r)| r).all(|s| s.items == items), "{query:?} differs");
        }
    }

    fn load_average() -> String {
        std::fs::read_to_string("/proc/loadavg").map_or_else(
            |_| "unknown".to_owned(),
            |line| line.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        )
    }

    #[allow(clippy::cast_precision_loss, reason = "a size printed with one decimal")]
    fn mb(bytes: u64) -> f64 {
        bytes as f64 / 1e6
    }
}
