//! [`Stats`]: what the database holds and what it cost to write.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use zverse_core::Version;

use crate::inner::Inner;
use crate::locality::{LocalityStats, ratio};
use crate::segment_file::SegmentFile;

/// A snapshot of the database's counters, from [`Db::stats`](crate::Db::stats).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// The I/O backend in use ("std", "io_uring", ...).
    pub io_backend: &'static str,
    /// How the backend does each class of operation, e.g. "log writes: pwrite, syncs:
    /// fdatasync, segment writes: ring, reads: ring" (io_uring routes each the way it measured
    /// fastest on the database's file system when it opened); empty if the backend does not say.
    pub io_routing: &'static str,
    /// The newest version readers can see.
    pub version_visible: Version,
    /// Memtables (active and sealed).
    pub memtable_count: usize,
    /// Versions in the memtables.
    pub memtable_versions: u64,
    /// Bytes of keys, values and bookkeeping in the memtables.
    pub memtable_bytes: u64,
    /// Segments on disk.
    pub segment_count: usize,
    /// Versions in the segments.
    pub segment_versions: u64,
    /// Bytes of the segment files.
    pub segment_bytes: u64,
    /// Bytes of memory the open segments' fence keys hold (at most
    /// `Options::fence_keys_bytes_max`).
    pub fence_keys_bytes: u64,
    /// Bytes of the active log file.
    pub log_bytes: u64,
    /// Live log files (the manifest's): the active one, and one per sealed memtable.
    pub log_count: usize,
    /// Files the database has: `MANIFEST`, `LOCK`, and the live logs and
    /// segments the manifest records. Counted without I/O. Segments retired by a compaction
    /// but still read by an iterator, and leftovers of a crash (deleted at the next open), are
    /// not counted.
    pub file_count: u64,
    /// The retention horizon ([`Db::horizon`](crate::Db::horizon)): reads below it are refused.
    pub horizon: Version,
    /// Every version stored, in memtables and segments (tombstones included).
    pub versions: u64,
    /// An upper bound on the distinct keys: the sum over tiers of each tier's distinct keys.
    pub keys_upper_bound: u64,
    /// Bytes of keys and values written by callers since open.
    pub bytes_written_user: u64,
    /// Bytes written to logs and segments since open.
    pub bytes_written_disk: u64,
    /// `bytes_written_disk / bytes_written_user` since open (0 before any write).
    pub write_amplification: f64,
    /// Bytes of the keys and values of every version stored (memtables and segments).
    pub payload_bytes: u64,
    /// `(segment_bytes + log_bytes) / payload_bytes`: the disk space per byte of stored keys
    /// and values, for the versions retention keeps (0 when empty). Indexes, filters and
    /// checksums make it exceed 1; versions dropped by compaction leave it.
    pub space_amplification: f64,
    /// Commit groups since open; `commit_records / commit_groups` writes shared each sync.
    pub commit_groups: u64,
    /// Writes (records) committed since open.
    pub commit_records: u64,
    /// Memtables flushed to segments since open.
    pub flushes: u64,
    /// Compaction steps that merged segments since open.
    pub compactions: u64,
    /// Compaction steps that failed since open (each is retried after a growing delay).
    pub compaction_failures: u64,
    /// Bytes of the largest segment file.
    pub segment_bytes_max: u64,
    /// Level-0 segments (flush outputs): what the compaction trigger and write stalls count.
    pub segment_count_open: usize,
    /// Current segments per level: `[0]` is level 0 (flush outputs), `[n]` level `n`.
    pub level_segment_counts: Vec<usize>,
    /// Bytes of the current segment files per level, indexed as `level_segment_counts`.
    pub level_segment_bytes: Vec<u64>,
    /// History segments: the versions compaction demoted.
    pub history_segment_count: usize,
    /// Bytes of the history segment files (included in `segment_bytes`).
    pub history_bytes: u64,
    /// Bytes of history segments compaction wrote since open (included in
    /// `bytes_written_disk`).
    pub bytes_demoted: u64,
    /// Reads that opened a history segment (a point read's lookup, a range's or a key
    /// history's source, a `changes` box) since the segment was opened. Reads at or above
    /// every current segment's newest version open none.
    pub history_reads: u64,
    /// Bytes of segment blocks, checksums included, that `changes` queries (of [`Db`] and
    /// snapshots) read since open, counted as each segment's scan ends: compare it with
    /// `segment_bytes`. Memtable hits read no block and count nothing.
    ///
    /// [`Db`]: crate::Db
    pub changes_bytes_read: u64,
    /// Writes that waited for a flush or a compaction (memtables all full, or
    /// `write_stop_segments` reached) since open.
    pub write_stalls: u64,
    /// Time writers spent in those waits, summed over writers, in microseconds.
    pub write_stall_micros: u64,
    /// Writes delayed by 1 ms because `write_slowdown_segments` was reached, since open.
    pub write_slowdowns: u64,
    /// The locality advisor's counters since open: advice given, prefetch accuracy, pages
    /// touched by scans.
    pub locality: LocalityStats,
}

/// [`Db::stats`](crate::Db::stats).
pub(crate) fn collect(inner: &Inner) -> Stats {
    let tiers = inner.tiers();
    let counters = &inner.counters;
    let memtable_versions: u64 = tiers.memtables().map(|m| m.entry_count() as u64).sum();
    let metas: Vec<_> =
        tiers.current().map(|s| *s.meta()).chain(tiers.history.iter().map(|h| *h.meta())).collect();
    let segment_versions: u64 = metas.iter().map(|m| m.entry_count).sum();
    let segment_keys: u64 = tiers.current().map(|s| s.segment().key_count()).sum::<u64>()
        + tiers.history.iter().map(|h| h.segment().key_count()).sum::<u64>();
    let bytes_written_user = counters.bytes_user.load(Ordering::Relaxed);
    let payload_bytes = tiers.memtables().map(|m| m.payload_bytes()).sum::<u64>()
        + metas.iter().map(|m| m.payload_bytes).sum::<u64>();
    let segment_bytes = metas.iter().map(|m| m.file_bytes).sum();
    let history_bytes = tiers.history.iter().map(|h| h.meta().file_bytes).sum();
    let level_segment_counts =
        std::iter::once(tiers.segments.len()).chain(tiers.levels.iter().map(Vec::len)).collect();
    let file_bytes = |segments: &[Arc<SegmentFile>]| -> u64 {
        segments.iter().map(|s| s.meta().file_bytes).sum()
    };
    let level_segment_bytes = std::iter::once(file_bytes(&tiers.segments))
        .chain(tiers.levels.iter().map(|level| file_bytes(level)))
        .collect();
    let log_bytes = inner.log_bytes();
    let log_count = inner.state.logs().len();
    let bytes_written_disk = counters.bytes_written_log.load(Ordering::Relaxed)
        + counters.bytes_written_segments.load(Ordering::Relaxed);
    Stats {
        io_backend: inner.io.name(),
        io_routing: inner.io.routing(),
        version_visible: inner.visible_version(),
        memtable_count: tiers.memtables().count(),
        memtable_versions,
        memtable_bytes: tiers.memtables().map(|m| m.size_bytes()).sum(),
        segment_count: metas.len(),
        fence_keys_bytes: inner.fence_budget.bytes_used(),
        segment_versions,
        segment_bytes,
        log_bytes,
        log_count,
        file_count: inner.state.file_count(),
        horizon: inner.horizon(),
        versions: memtable_versions + segment_versions,
        keys_upper_bound: memtable_versions + segment_keys,
        bytes_written_user,
        bytes_written_disk,
        write_amplification: ratio(bytes_written_disk, bytes_written_user),
        payload_bytes,
        space_amplification: ratio(segment_bytes + log_bytes, payload_bytes),
        commit_groups: counters.commit_groups.load(Ordering::Relaxed),
        commit_records: counters.commit_records.load(Ordering::Relaxed),
        flushes: counters.flushes.load(Ordering::Relaxed),
        compactions: counters.compactions.load(Ordering::Relaxed),
        compaction_failures: counters.compaction_failures.load(Ordering::Relaxed),
        segment_bytes_max: metas.iter().map(|m| m.file_bytes).max().unwrap_or(0),
        segment_count_open: tiers.segments.len(),
        level_segment_counts,
        level_segment_bytes,
        history_segment_count: tiers.history.len(),
        history_bytes,
        bytes_demoted: counters.bytes_demoted.load(Ordering::Relaxed),
        history_reads: tiers.history.iter().map(|h| h.read_count()).sum(),
        changes_bytes_read: counters.changes_bytes_read.load(Ordering::Relaxed),
        write_stalls: counters.write_stalls.load(Ordering::Relaxed),
        write_stall_micros: counters.write_stall_micros.load(Ordering::Relaxed),
        write_slowdowns: counters.write_slowdowns.load(Ordering::Relaxed),
        locality: inner.advisor.stats(),
    }
}

/// How much of the segment files is in the page cache, from
/// [`Db::segment_residency`](crate::Db::segment_residency).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentResidency {
    /// Pages of the segment files in memory now.
    pub pages_resident: u64,
    /// Pages of the segment files.
    pub pages_total: u64,
}

/// [`Db::segment_residency`](crate::Db::segment_residency).
pub(crate) fn segment_residency(inner: &Inner) -> Option<SegmentResidency> {
    let tiers = inner.tiers();
    let mut residency = SegmentResidency { pages_resident: 0, pages_total: 0 };
    for segment in tiers.current() {
        let (resident, total) = segment.residency()?;
        residency.pages_resident += resident;
        residency.pages_total += total;
    }
    Some(residency)
}
