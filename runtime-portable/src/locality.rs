//! [`LocalityAdvisor`]: madvise hints fed by the engine's own reads, and the counters that say
//! whether they paid.
//!
//! What it advises, on a segment's mapping:
//! - when the segment is opened: `MADV_RANDOM` on the whole of it, its resting state, once per
//!   segment (point reads and the binary search that starts each scan read single entries;
//!   under the kernel's default advice every page fault reads a whole read-ahead window around
//!   it, 8 MiB on the development VM), then `MADV_WILLNEED` on its metadata sections, which
//!   the open reads and checks in full. Point reads themselves make no call and pay nothing;
//! - a scan (`range`, `range_at`, `changes`, compaction's two passes, `check`): its span is
//!   the bytes of the data blocks its Z-box can touch (`Segment::data_span`, from the block
//!   index). Once it has touched [`ADVISE_AFTER_PAGES`] pages (a short scan is never advised:
//!   on a warm cache the calls cost more than the scan), and then each time its cursor enters
//!   a new chunk of [`CHUNK_BYTES`], `MADV_SEQUENTIAL` + `MADV_WILLNEED` on the chunks up to
//!   [`CHUNKS_AHEAD`] beyond the cursor's that are not advised yet, clipped to the span: the
//!   reads run a window ahead of the cursor, never over the whole file nor past what the query
//!   can read. When the scan ends, what it advised goes back to `MADV_RANDOM`;
//! - a maintenance scan (compaction, `check`): `MADV_DONTNEED` on what lies more than
//!   [`RELEASE_BEHIND_BYTES`] behind its cursor, each time that grows by as much, so that
//!   the process's resident set holds a window of each input, not all it read;
//! - a segment retired by compaction: `MADV_COLD` (or `MADV_DONTNEED` where the kernel has no
//!   `MADV_COLD`) on the whole of it.
//!
//! The cursor's position is where the entry it yielded lies in the mapping (entries are
//! zero-copy slices of it), so the advisor needs nothing from the segment format. Scans move
//! forward through the file in Z order (`changes`, compaction's second pass); key-order scans
//! (`range`, compaction's first pass) move forward only where keys differ in their first 8
//! bytes, which is what the window follows.
//!
//! What it measures (all relaxed atomics, read by `Db::stats`):
//! - pages advised, and of them pages prefetched (`MADV_WILLNEED`);
//! - prefetch accuracy: when a scan enters a prefetched chunk, `mincore` counts how many of
//!   the chunk's pages past the block under the cursor are resident (one system call per
//!   chunk entered, only while the advisor is on). Linux's mincore reports a page cached but
//!   still being read as not resident, so this is the share of prefetched pages whose read had
//!   finished when the scan got to their chunk: a lower bound on what the prefetch saved;
//! - pages touched by queries: distinct consecutive pages holding the entries a `range` or
//!   `changes` yielded from segments (a compare per entry; counted with the advisor off too).
//!
//! **Architecture Invariant: advice is only ever a hint.** Every call may fail or be ignored
//! without changing a result; errors are counted, never returned. Point reads make no system
//! call.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

use zverse_core::segment::Segment;
use zverse_core::zkey::ZBox;
use zverse_core::{Corruption, Entry};

use crate::io::{Advice, Mapping};

/// Bytes of one chunk: a scan advises and measures a chunk at a time.
pub(crate) const CHUNK_BYTES: usize = 256 << 10;

/// Chunks prefetched beyond the one a scan is in: the window runs 512 KiB to 768 KiB ahead.
pub(crate) const CHUNKS_AHEAD: usize = 2;

/// Pages a scan touches before it is advised at all: a short scan (YCSB E's 1 to 100 items, a
/// prefix of a few keys) makes no system call, where three madvise calls and the kernel's
/// read-ahead over a 768 KiB window cost more than the scan itself on a warm cache. A long
/// scan loses the prefetch of its first 64 KiB only.
pub(crate) const ADVISE_AFTER_PAGES: u64 = 16;

/// How far behind its cursor a maintenance scan (compaction, `check`) gives its pages back
/// (`MADV_DONTNEED`, in steps of this much): a compaction reads each input once, and without
/// it every input page it read stayed in the process's resident set until the input was
/// retired, gigabytes for a step of large levels (the scale run in
/// `benches/results/scale.md`). The pages stay in the page cache.
pub(crate) const RELEASE_BEHIND_BYTES: usize = 4 << 20;

/// What a scan reads for: queries count the pages they touch, maintenance does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScanPurpose {
    /// `range`, `range_at`, `changes`.
    Query,
    /// Compaction's reads of its inputs, and `Db::check`'s of every segment.
    Maintenance,
}

/// The advisor of one database: on or off, and its counters.
#[derive(Debug)]
pub(crate) struct LocalityAdvisor {
    enabled: bool,
    /// The segments' data block target: what a scan has read around its cursor already.
    block_bytes: usize,
    counters: AdviceCounters,
}

/// Every counter is a relaxed atomic: they order nothing, and a `stats()` taken during reads
/// may see one counter of a step and not the other.
#[derive(Debug, Default)]
struct AdviceCounters {
    advice_calls: AtomicU64,
    advice_errors: AtomicU64,
    pages_advised: AtomicU64,
    pages_prefetched: AtomicU64,
    prefetch_pages_resident: AtomicU64,
    prefetch_pages_missed: AtomicU64,
    scan_queries: AtomicU64,
    scan_pages_touched: AtomicU64,
    segments_random: AtomicU64,
    segments_cold: AtomicU64,
}

/// The locality advisor's counters since open, in [`crate::Stats::locality`].
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct LocalityStats {
    /// Whether the advisor is on (`Options::locality_advisor`).
    pub enabled: bool,
    /// madvise calls made.
    pub advice_calls: u64,
    /// madvise calls that failed (hints: the failure changes no result).
    pub advice_errors: u64,
    /// Pages covered by `MADV_RANDOM` and `MADV_WILLNEED` (metadata at open, windows ahead of
    /// scans) and `MADV_COLD` advice (the `MADV_SEQUENTIAL` that goes with each window, and the
    /// `MADV_RANDOM` restored after a scan, are not counted again).
    pub pages_advised: u64,
    /// Pages covered by `MADV_WILLNEED` ahead of scans.
    pub pages_prefetched: u64,
    /// Prefetched pages found resident (`mincore`) when a scan reached their chunk.
    pub prefetch_pages_resident: u64,
    /// Prefetched pages found not resident when a scan reached their chunk.
    pub prefetch_pages_missed: u64,
    /// `prefetch_pages_resident / (resident + missed)`; 0 before any was measured.
    pub prefetch_accuracy: f64,
    /// `range`, `range_at` and `changes` queries started.
    pub scan_queries: u64,
    /// Segment pages holding the entries those queries yielded (distinct consecutive pages
    /// per segment); divided by `scan_queries`, the pages a query touched.
    pub scan_pages_touched: u64,
    /// Segments advised `MADV_RANDOM` when opened (once each).
    pub segments_random: u64,
    /// Segments advised `MADV_COLD` after compaction retired them.
    pub segments_cold: u64,
}

impl LocalityAdvisor {
    /// An advisor, on or off. `block_bytes` is the data block target of the segments.
    pub(crate) fn new(enabled: bool, block_bytes: usize) -> LocalityAdvisor {
        LocalityAdvisor { enabled, block_bytes, counters: AdviceCounters::default() }
    }

    /// Whether the advisor gives advice (its counters of pages touched count either way).
    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// A segment is being opened: `MADV_RANDOM` on all of it, its resting state (point reads,
    /// and the binary searches that start every scan, read single entries; a fault under the
    /// kernel's default advice reads a whole read-ahead window around it, up to megabytes).
    /// Called before anything of the mapping is read.
    pub(crate) fn opening(&self, mapping: &dyn Mapping) {
        if !self.enabled {
            return;
        }
        let pages = self.advise(mapping, 0..mapping.bytes().len(), Advice::Random);
        add(&self.counters.pages_advised, pages);
        add(&self.counters.segments_random, 1);
    }

    /// The segment's metadata (`metadata`, up to the end of the file) is about to be read and
    /// checked in full: `MADV_WILLNEED` on it, so that it comes in as one read.
    pub(crate) fn reading_metadata(&self, mapping: &dyn Mapping, metadata: Range<usize>) {
        if !self.enabled {
            return;
        }
        let pages = self.advise(mapping, metadata, Advice::WillNeed);
        add(&self.counters.pages_advised, pages);
    }

    /// Compaction retired the segment mapped by `mapping`: its pages are reclaimed first.
    pub(crate) fn retired(&self, mapping: &dyn Mapping) {
        if !self.enabled {
            return;
        }
        let pages = self.advise(mapping, 0..mapping.bytes().len(), Advice::Cold);
        add(&self.counters.pages_advised, pages);
        add(&self.counters.segments_cold, 1);
    }

    /// A `range` or `changes` query started.
    pub(crate) fn query_started(&self) {
        add(&self.counters.scan_queries, 1);
    }

    /// The advice and counting of one scan over the segment mapped by `mapping`.
    /// `span` is the bytes the scan can read (`Segment::data_span`): nothing outside it is
    /// ever prefetched. Nothing is advised until the scan has touched [`ADVISE_AFTER_PAGES`]
    /// pages; from then on a window runs ahead of its cursor.
    pub(crate) fn scan<'m>(
        &'m self,
        mapping: &'m dyn Mapping,
        span: impl Into<ScanSpan<'m>>,
        purpose: ScanPurpose,
    ) -> ScanAdvice<'m> {
        let bytes = mapping.bytes();
        let page_bytes = mapping.page_bytes().max(1);
        let (span, span_box) = match span.into() {
            ScanSpan::Bytes(span) => (span, None),
            ScanSpan::Box(segment, zbox) => (0..bytes.len(), Some((segment, zbox))),
        };
        ScanAdvice {
            span_box,
            advisor: self,
            mapping,
            base_addr: bytes.as_ptr().addr(),
            file_bytes: bytes.len(),
            // 4 to 64 KiB pages: chunks are whole pages, so `reached` may skip within a page.
            window: ScanWindow::new(bytes.len(), CHUNK_BYTES, CHUNKS_AHEAD, page_bytes)
                .with_skip_bytes(self.block_bytes)
                .with_span(span),
            page_bytes,
            page_span: 0..0,
            pages_touched: 0,
            released_to: 0,
            purpose,
        }
    }

    /// The counters as they are now.
    pub(crate) fn stats(&self) -> LocalityStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let c = &self.counters;
        let resident = load(&c.prefetch_pages_resident);
        let missed = load(&c.prefetch_pages_missed);
        LocalityStats {
            enabled: self.enabled,
            advice_calls: load(&c.advice_calls),
            advice_errors: load(&c.advice_errors),
            pages_advised: load(&c.pages_advised),
            pages_prefetched: load(&c.pages_prefetched),
            prefetch_pages_resident: resident,
            prefetch_pages_missed: missed,
            prefetch_accuracy: ratio(resident, resident + missed),
            scan_queries: load(&c.scan_queries),
            scan_pages_touched: load(&c.scan_pages_touched),
            segments_random: load(&c.segments_random),
            segments_cold: load(&c.segments_cold),
        }
    }

    /// One madvise call on `range` of `mapping`; returns the pages it covered (0 if empty).
    fn advise(&self, mapping: &dyn Mapping, range: Range<usize>, advice: Advice) -> u64 {
        assert!(self.enabled, "a disabled advisor gives no advice");
        if range.is_empty() {
            return 0;
        }
        add(&self.counters.advice_calls, 1);
        if mapping.advise_range(range.start, range.len(), advice).is_err() {
            add(&self.counters.advice_errors, 1);
        }
        pages_spanned(&range, mapping.page_bytes().max(1))
    }
}

fn add(counter: &AtomicU64, count: u64) {
    counter.fetch_add(count, Ordering::Relaxed);
}

/// The pages `range` overlaps, for pages of `page_bytes`.
fn pages_spanned(range: &Range<usize>, page_bytes: usize) -> u64 {
    if range.is_empty() {
        return 0;
    }
    let first = range.start / page_bytes;
    let last = (range.end - 1) / page_bytes;
    (last - first + 1) as u64
}

/// The bytes a scan can read: a byte range, or a segment's Z-box, whose byte range
/// (`Segment::data_span`: two binary searches of the block index) is found only if the scan
/// gets long enough to be advised, so that a short scan does not pay for it.
pub(crate) enum ScanSpan<'m> {
    Bytes(Range<usize>),
    Box(&'m Segment<'m>, ZBox),
}

impl From<Range<usize>> for ScanSpan<'_> {
    fn from(span: Range<usize>) -> Self {
        ScanSpan::Bytes(span)
    }
}

/// The advice and counters of one scan over one segment: fed the entries the scan yields,
/// it prefetches a window ahead and counts what the scan touched; dropping it restores the
/// advice of the span it changed and adds its count to the advisor's.
#[derive(Debug)]
pub(crate) struct ScanAdvice<'m> {
    advisor: &'m LocalityAdvisor,
    mapping: &'m dyn Mapping,
    /// The segment and Z-box whose byte span the window gets before its first advice.
    span_box: Option<(&'m Segment<'m>, ZBox)>,
    /// The address of the mapping's first byte: an entry's offset is its address minus it.
    base_addr: usize,
    file_bytes: usize,
    window: ScanWindow,
    page_bytes: usize,
    /// The bytes of the page reached last (empty before the first): a step inside it asks
    /// for nothing, without a division (chunks are whole pages).
    page_span: Range<usize>,
    pages_touched: u64,
    /// A maintenance scan gave back every page below this offset.
    released_to: usize,
    purpose: ScanPurpose,
}

impl ScanAdvice<'_> {
    /// The scan yielded an entry whose key is `key`, a slice of the mapped bytes (a slice
    /// from elsewhere, which no segment yields, is ignored).
    pub(crate) fn reached(&mut self, key: &[u8]) {
        let Some(offset) = key.as_ptr().addr().checked_sub(self.base_addr) else { return };
        if self.page_span.contains(&offset) || offset >= self.file_bytes {
            return;
        }
        let page_start = offset / self.page_bytes * self.page_bytes;
        self.page_span = page_start..page_start + self.page_bytes;
        self.pages_touched += 1;
        if !self.advisor.enabled || self.pages_touched < ADVISE_AFTER_PAGES {
            return;
        }
        if let Some((segment, zbox)) = self.span_box.take() {
            let span = segment.data_span(&zbox);
            let span = usize::try_from(span.start).unwrap_or(usize::MAX)
                ..usize::try_from(span.end).unwrap_or(usize::MAX);
            self.window = self.window.clone().with_span(span);
        }
        let step = self.window.reached(offset);
        self.apply(step);
        if self.purpose == ScanPurpose::Maintenance {
            self.release_behind(offset);
        }
    }

    /// `MADV_DONTNEED` on the pages more than [`RELEASE_BEHIND_BYTES`] behind `offset` not
    /// given back yet, once they reach that much. A scan that comes back to them faults them
    /// in again from the page cache: a hint, not a result.
    fn release_behind(&mut self, offset: usize) {
        let behind = offset.saturating_sub(RELEASE_BEHIND_BYTES);
        let behind = behind - behind % self.page_bytes;
        if behind >= self.released_to.saturating_add(RELEASE_BEHIND_BYTES) {
            let pages =
                self.advisor.advise(self.mapping, self.released_to..behind, Advice::DontNeed);
            add(&self.advisor.counters.pages_advised, pages);
            self.released_to = behind;
        }
    }

    /// Measures and prefetches what `step` asks.
    fn apply(&self, step: Step) {
        if let Some(measure) = step.measure {
            self.measure(measure);
        }
        if let Some(prefetch) = step.prefetch {
            self.advisor.advise(self.mapping, prefetch.clone(), Advice::Sequential);
            let pages = self.advisor.advise(self.mapping, prefetch, Advice::WillNeed);
            add(&self.advisor.counters.pages_advised, pages);
            add(&self.advisor.counters.pages_prefetched, pages);
        }
    }

    /// Counts the resident and missing pages of `range`, which was prefetched.
    fn measure(&self, range: Range<usize>) {
        let pages = pages_spanned(&range, self.page_bytes);
        // A backend that cannot tell (a simulated disk) leaves accuracy unmeasured.
        if let Ok(resident) = self.mapping.resident_pages(range.start, range.len()) {
            let resident = (resident as u64).min(pages);
            let counters = &self.advisor.counters;
            add(&counters.prefetch_pages_resident, resident);
            add(&counters.prefetch_pages_missed, pages - resident);
        }
    }
}

impl Drop for ScanAdvice<'_> {
    fn drop(&mut self) {
        if self.purpose == ScanPurpose::Query {
            add(&self.advisor.counters.scan_pages_touched, self.pages_touched);
        }
        if let Some(span) = self.window.advised_span() {
            // Back to the resting state (a scan running at the same time on the same segment
            // loses its sequential hint for what remains of this span: a hint, not a result).
            self.advisor.advise(self.mapping, span, Advice::Random);
        }
    }
}

/// An iterator of segment entries that feeds each entry it yields to a [`ScanAdvice`].
#[derive(Debug)]
pub(crate) struct Advised<'m, I> {
    inner: I,
    advice: ScanAdvice<'m>,
}

impl<'m, I> Advised<'m, I> {
    pub(crate) fn new(inner: I, advice: ScanAdvice<'m>) -> Advised<'m, I> {
        Advised { inner, advice }
    }

    /// The iterator it advises for.
    pub(crate) fn inner(&self) -> &I {
        &self.inner
    }
}

impl<'a, I> Iterator for Advised<'_, I>
where
    I: Iterator<Item = Result<Entry<'a>, Corruption>>,
{
    type Item = Result<Entry<'a>, Corruption>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.inner.next();
        if let Some(Ok(entry)) = &item {
            self.advice.reached(entry.key);
        }
        item
    }
}

/// What a scan's step asks for: byte ranges of the mapping.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Step {
    /// Prefetched bytes the scan just reached: count which pages are resident.
    pub measure: Option<Range<usize>>,
    /// Bytes to advise `MADV_SEQUENTIAL` + `MADV_WILLNEED`.
    pub prefetch: Option<Range<usize>>,
}

/// The decisions of one scan over one file, without I/O: where the cursor is, which chunks
/// are advised, what to prefetch and measure next. Chunks are `chunk_bytes` long from offset
/// 0; nothing outside the scan's span (the bytes it can read) is prefetched or measured.
#[derive(Clone, Debug)]
pub(crate) struct ScanWindow {
    chunk_bytes: usize,
    chunks_ahead: usize,
    page_bytes: usize,
    /// The bytes the scan can read (the whole file unless told).
    span: Range<usize>,
    /// Bytes after the cursor the scan has read already (the block under it).
    skip_bytes: usize,
    /// The chunk of the last offset reached.
    chunk_last: Option<usize>,
    /// The furthest chunk reached.
    chunk_reached: Option<usize>,
    /// The chunks of the current run of prefetching (empty before the first).
    advised: Range<usize>,
    /// The bytes advised so far, as one covering range.
    advised_bytes: Option<Range<usize>>,
}

impl ScanWindow {
    pub(crate) fn new(
        file_bytes: usize,
        chunk_bytes: usize,
        chunks_ahead: usize,
        page_bytes: usize,
    ) -> ScanWindow {
        assert!(chunk_bytes > 0 && page_bytes > 0, "chunks and pages have a size");
        ScanWindow {
            chunk_bytes,
            chunks_ahead,
            page_bytes,
            span: 0..file_bytes,
            skip_bytes: 0,
            chunk_last: None,
            chunk_reached: None,
            advised: 0..0,
            advised_bytes: None,
        }
    }

    /// The same window, not measuring the `skip_bytes` after the cursor (read with it).
    pub(crate) fn with_skip_bytes(self, skip_bytes: usize) -> ScanWindow {
        ScanWindow { skip_bytes, ..self }
    }

    /// The same window, prefetching and measuring only inside `span` (clipped to the file).
    pub(crate) fn with_span(self, span: Range<usize>) -> ScanWindow {
        let span = span.start.min(self.span.end)..span.end.min(self.span.end);
        ScanWindow { span, ..self }
    }

    /// The scan reached `offset`. The first time it enters a chunk further than any before:
    /// measure the rest of that chunk if it was prefetched, and prefetch the chunks up to
    /// `chunks_ahead` beyond it that are not advised yet. Anything else (the same chunk, or
    /// ground already covered) asks for nothing.
    pub(crate) fn reached(&mut self, offset: usize) -> Step {
        let chunk = offset / self.chunk_bytes;
        if self.chunk_last == Some(chunk) {
            return Step::default();
        }
        self.chunk_last = Some(chunk);
        if self.chunk_reached.is_some_and(|reached| chunk <= reached) {
            return Step::default();
        }
        self.chunk_reached = Some(chunk);
        let measure_end = ((chunk + 1) * self.chunk_bytes).min(self.span.end);
        let measure_start =
            (offset + self.skip_bytes) / self.page_bytes * self.page_bytes + self.page_bytes;
        let measure = (self.advised.contains(&chunk) && measure_start < measure_end)
            .then_some(measure_start..measure_end);
        Step { measure, prefetch: self.prefetch_from(chunk, offset) }
    }

    /// Prefetches the chunks from `chunk` (the cursor's, at `offset`) to `chunks_ahead` beyond
    /// it that are not advised yet, inside the span; returns the bytes, if any.
    fn prefetch_from(&mut self, chunk: usize, offset: usize) -> Option<Range<usize>> {
        let ahead_end = chunk + 1 + self.chunks_ahead;
        let from_byte = if self.advised.contains(&chunk) {
            self.advised.end * self.chunk_bytes
        } else {
            // A new run: from the cursor's page, not the chunk's start.
            self.advised = chunk..chunk;
            offset / self.page_bytes * self.page_bytes
        };
        self.advised.end = self.advised.end.max(ahead_end);
        let prefetch =
            from_byte.max(self.span.start)..(ahead_end * self.chunk_bytes).min(self.span.end);
        if prefetch.is_empty() {
            return None;
        }
        self.advised_bytes = Some(match self.advised_bytes.take() {
            Some(bytes) => bytes.start.min(prefetch.start)..bytes.end.max(prefetch.end),
            None => prefetch.clone(),
        });
        Some(prefetch)
    }

    /// The bytes advised so far (one range covering them all), or `None`.
    pub(crate) fn advised_span(&self) -> Option<Range<usize>> {
        self.advised_bytes.clone()
    }
}

/// `numerator / denominator`, or 0 when the denominator is 0.
#[allow(clippy::cast_precision_loss, reason = "a ratio of byte counts needs no more precision")]
pub(crate) fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 { 0.0 } else { numerator as f64 / denominator as f64 }
}

#[cfg(test)]
mod tests;
