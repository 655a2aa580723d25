use std::io;
use std::ops::Range;
use std::sync::Mutex;

use super::{
    ADVISE_AFTER_PAGES, CHUNK_BYTES, CHUNKS_AHEAD, LocalityAdvisor, ScanPurpose, ScanWindow, Step,
};
use crate::io::{Advice, Mapping};

/// A window over a 1,000-byte file: chunks of 100 bytes, pages of 10, 2 chunks ahead.
fn window() -> ScanWindow {
    ScanWindow::new(1000, 100, 2, 10)
}

fn step(measure: Option<Range<usize>>, prefetch: Option<Range<usize>>) -> Step {
    Step { measure, prefetch }
}

/// Feeds `offsets` to `window` and compares every step with `expected`.
fn check(mut window: ScanWindow, offsets: &[usize], expected: &[Step]) -> ScanWindow {
    assert_eq!(offsets.len(), expected.len(), "one expected step per offset");
    for (&offset, expected) in offsets.iter().zip(expected) {
        assert_eq!(&window.reached(offset), expected, "at offset {offset}");
    }
    window
}

#[test]
fn a_scan_prefetches_its_first_chunks_from_the_cursor_page() {
    let window = check(window(), &[35], &[step(None, Some(30..300))]);
    assert_eq!(window.advised_span(), Some(30..300));
}

#[test]
fn the_window_advances_a_chunk_at_a_time_and_measures_what_it_prefetched() {
    let none = Step::default();
    let window = check(
        window(),
        &[0, 50, 100, 150, 200, 700, 800, 900, 999],
        &[
            step(None, Some(0..300)),
            none.clone(),
            step(Some(110..200), Some(300..400)),
            none.clone(),
            // The scan jumped ahead of its window at 700 (chunk 7, not advised): a new run.
            step(Some(210..300), Some(400..500)),
            step(None, Some(700..1000)),
            step(Some(810..900), None),
            step(Some(910..1000), None),
            none,
        ],
    );
    assert_eq!(window.advised_span(), Some(0..1000), "one range covers every advised byte");
}

#[test]
fn going_back_asks_for_nothing() {
    let none = Step::default();
    check(
        window(),
        &[250, 120, 260, 310],
        &[step(None, Some(250..500)), none.clone(), none, step(Some(320..400), Some(500..600))],
    );
}

#[test]
fn the_block_under_the_cursor_is_not_measured() {
    // The block under the cursor (45 bytes here) was read with the entry: measuring it would
    // count pages the scan faulted in itself as prefetched.
    let window = window().with_skip_bytes(45);
    check(
        window,
        &[0, 120, 160],
        &[step(None, Some(0..300)), step(Some(170..200), Some(300..400)), Step::default()],
    );
    let window = ScanWindow::new(1000, 100, 2, 10).with_skip_bytes(95);
    check(window, &[0, 110], &[step(None, Some(0..300)), step(None, Some(300..400))]);
}

#[test]
fn a_span_bounds_what_is_prefetched_and_measured() {
    let mut bounded = window().with_span(250..420);
    assert_eq!(bounded.reached(260), step(None, Some(260..420)), "the first window, clipped");
    assert_eq!(bounded.reached(330), step(Some(340..400), None));
    assert_eq!(bounded.reached(410), Step::default(), "nothing past the span to measure");
    assert_eq!(bounded.advised_span(), Some(260..420));
    let mut clipped = window().with_span(50..2000);
    assert_eq!(clipped.reached(60), step(None, Some(60..300)), "a span past the end is clipped");
    assert_eq!(clipped.reached(950), step(None, Some(950..1000)));
    let mut empty = window().with_span(0..0);
    assert_eq!(empty.reached(10), Step::default(), "an empty span prefetches nothing");
}

#[test]
fn a_file_shorter_than_the_window_is_prefetched_once() {
    let mut window = ScanWindow::new(130, 100, 2, 10);
    assert_eq!(window.reached(5), step(None, Some(0..130)));
    assert_eq!(window.reached(105), step(Some(110..130), None));
    assert_eq!(window.advised_span(), Some(0..130));
}

/// A mapping that records the advice it gets and says every page is resident, or none.
#[derive(Debug)]
struct Recording {
    bytes: Vec<u8>,
    resident: bool,
    calls: Mutex<Vec<(Range<usize>, Advice)>>,
}

impl Recording {
    fn new(len: usize, resident: bool) -> Recording {
        Recording { bytes: vec![0; len], resident, calls: Mutex::new(Vec::new()) }
    }

    fn calls(&self) -> Vec<(Range<usize>, Advice)> {
        self.calls.lock().unwrap().clone()
    }
}

impl Mapping for Recording {
    fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn advise_range(&self, offset: usize, len: usize, advice: Advice) -> io::Result<()> {
        assert!(offset + len <= self.bytes.len(), "advice stays inside the mapping");
        self.calls.lock().unwrap().push((offset..offset + len, advice));
        Ok(())
    }

    fn resident_pages(&self, offset: usize, len: usize) -> io::Result<usize> {
        let pages = (offset + len).div_ceil(4096) - offset / 4096;
        Ok(if self.resident { pages } else { 0 })
    }
}

#[test]
fn an_opened_segment_rests_random_and_its_metadata_is_prefetched() {
    let advisor = LocalityAdvisor::new(true, 4096);
    let mapping = Recording::new(20_000, true);
    advisor.opening(&mapping);
    advisor.reading_metadata(&mapping, 15_000..20_000);
    assert_eq!(mapping.calls(), [(0..20_000, Advice::Random), (15_000..20_000, Advice::WillNeed)]);
    let stats = advisor.stats();
    assert_eq!((stats.segments_random, stats.advice_calls), (1, 2));
    assert_eq!(stats.pages_advised, 5 + 2);
    assert_eq!(stats.pages_prefetched, 0, "metadata is not a scan's prefetch");
}

#[test]
fn retired_segments_are_advised_cold() {
    let advisor = LocalityAdvisor::new(true, 4096);
    let mapping = Recording::new(8192, true);
    advisor.retired(&mapping);
    assert_eq!(mapping.calls(), [(0..8192, Advice::Cold)]);
    assert_eq!((advisor.stats().segments_cold, advisor.stats().pages_advised), (1, 2));
}

/// Scans `mapping` as if entries were at `offsets`, on a fresh advisor; returns the advisor.
fn scan(enabled: bool, mapping: &Recording, offsets: &[usize]) -> LocalityAdvisor {
    let advisor = LocalityAdvisor::new(enabled, 4096);
    advisor.query_started();
    let mut advice = advisor.scan(mapping, 0..mapping.bytes().len(), ScanPurpose::Query);
    for &offset in offsets {
        advice.reached(&mapping.bytes()[offset..offset + 16]);
    }
    drop(advice);
    advisor
}

/// Where the advice starts in a scan of entries `step` bytes apart from offset 0: the first
/// entry on the page that makes [`ADVISE_AFTER_PAGES`] pages touched, and that page's start.
fn advice_start(step: usize) -> (usize, usize) {
    let page = (ADVISE_AFTER_PAGES as usize - 1) * 4096;
    (page.div_ceil(step) * step, page)
}

#[test]
fn a_short_scan_gives_no_advice() {
    let mapping = Recording::new(4 * CHUNK_BYTES, true);
    let pages = ADVISE_AFTER_PAGES as usize - 1;
    let offsets: Vec<usize> = (0..pages * 4096).step_by(1000).collect();
    let advisor = scan(true, &mapping, &offsets);
    assert_eq!(mapping.calls(), [], "{pages} pages touched: no call");
    let stats = advisor.stats();
    assert_eq!((stats.advice_calls, stats.scan_pages_touched), (0, pages as u64));
}

#[test]
fn a_scan_prefetches_ahead_then_restores_the_advice_it_changed() {
    let len = 4 * CHUNK_BYTES + 1000;
    let mapping = Recording::new(len, true);
    let offsets: Vec<usize> = (0..len - 16).step_by(1000).collect();
    let advisor = scan(true, &mapping, &offsets);
    let (_, start) = advice_start(1000);
    let ahead = (CHUNKS_AHEAD + 1) * CHUNK_BYTES;
    let mut expected = vec![(start..ahead, Advice::Sequential), (start..ahead, Advice::WillNeed)];
    for chunk in CHUNKS_AHEAD + 1..5 {
        let range = chunk * CHUNK_BYTES..((chunk + 1) * CHUNK_BYTES).min(len);
        expected.push((range.clone(), Advice::Sequential));
        expected.push((range, Advice::WillNeed));
    }
    expected.push((start..len, Advice::Random));
    assert_eq!(mapping.calls(), expected);
    let stats = advisor.stats();
    assert_eq!(stats.pages_prefetched, (len - start).div_ceil(4096) as u64);
    assert!(stats.prefetch_pages_resident > 0, "{stats:?}");
    assert_eq!(stats.prefetch_pages_missed, 0);
    assert!((stats.prefetch_accuracy - 1.0).abs() < f64::EPSILON);
    // Entries 1,000 bytes apart: each 4 KiB page holds 4 or 5 of them.
    assert_eq!(stats.scan_pages_touched, len.div_ceil(4096) as u64);
    assert_eq!(stats.scan_queries, 1);
}

#[test]
fn missing_pages_lower_the_accuracy() {
    let mapping = Recording::new(2 * CHUNK_BYTES, false);
    let offsets: Vec<usize> = (0..2 * CHUNK_BYTES).step_by(4096).collect();
    let advisor = scan(true, &mapping, &offsets);
    let stats = advisor.stats();
    assert_eq!(stats.prefetch_pages_resident, 0);
    // The second chunk's pages past the cursor's page and the 4 KiB block after it: the
    // first chunk was prefetched from the page where the advice started.
    assert_eq!(stats.prefetch_pages_missed, (CHUNK_BYTES / 4096 - 2) as u64);
    assert!(stats.prefetch_accuracy.abs() < f64::EPSILON);
}

#[test]
fn a_disabled_advisor_gives_no_advice_but_counts_pages_touched() {
    let mapping = Recording::new(4 * CHUNK_BYTES, true);
    let offsets: Vec<usize> = (0..4 * CHUNK_BYTES - 16).step_by(4096).collect();
    let advisor = scan(false, &mapping, &offsets);
    advisor.opening(&mapping);
    advisor.reading_metadata(&mapping, 0..4096);
    advisor.retired(&mapping);
    assert_eq!(mapping.calls(), []);
    let stats = advisor.stats();
    assert!(!stats.enabled);
    assert_eq!((stats.advice_calls, stats.pages_advised, stats.pages_prefetched), (0, 0, 0));
    assert_eq!(stats.scan_pages_touched, offsets.len() as u64);
}

#[test]
fn slices_from_outside_the_mapping_are_ignored() {
    let mapping = Recording::new(CHUNK_BYTES, true);
    let advisor = LocalityAdvisor::new(true, 4096);
    let mut advice = advisor.scan(&mapping, 0..0, ScanPurpose::Maintenance);
    advice.reached(b"not in the mapping");
    drop(advice);
    assert_eq!(mapping.calls(), []);
    assert_eq!(advisor.stats().scan_pages_touched, 0, "compaction does not count pages");
}
