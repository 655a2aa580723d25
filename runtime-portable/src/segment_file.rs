//! [`SegmentFile`]: an immutable segment on disk, memory-mapped, shared by `Arc` between the
//! tiers and every reader that started with it. When compaction retires it, the file is
//! deleted once the last `Arc` goes: no reader ever loses the segment it is reading. Segments
//! are written by `segment_writer.rs`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use zverse_core::segment::history::HistorySegment;
use zverse_core::segment::{FenceKeys, KeyVersions, Segment};
use zverse_core::zkey::ZBox;
use zverse_core::{Entry, Version};

use crate::error::{Error, Result};
use crate::io::{Io, Mapping};
use crate::locality::{LocalityAdvisor, ScanAdvice, ScanPurpose, ScanSpan};
use crate::manifest::SegmentMeta;
use crate::sync;

/// What a segment view borrows: the mapped bytes, and one flag per data block that is set once
/// the block has passed its checksum, so that each block is hashed once per open segment rather
/// than on every read (the mapped bytes never change; `Db::check` hashes everything again).
struct SegmentBytes {
    mapping: Box<dyn Mapping>,
    verified: Box<[AtomicBool]>,
}

self_cell::self_cell! {
    /// A mapping and the segment view that reads it.
    struct MappedSegment {
        owner: SegmentBytes,
        #[covariant]
        dependent: Segment,
    }
}

impl std::fmt::Debug for MappedSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.borrow_dependent().fmt(f)
    }
}

/// A file whose mapped bytes a [`Slice`](crate::Slice) may point into.
pub(crate) trait MappedFile: Send + Sync + 'static {
    /// The mapped bytes.
    fn bytes(&self) -> &[u8];
}

/// A segment file, open and mapped.
#[derive(Debug)]
pub(crate) struct SegmentFile {
    meta: SegmentMeta,
    path: PathBuf,
    mapped: MappedSegment,
    /// The smallest and the largest key it holds: a current level's key bounds, in memory.
    key_first: Box<[u8]>,
    key_last: Box<[u8]>,
    io: Arc<dyn Io>,
    /// Set when compaction has replaced the segment: the file goes with the last reference.
    retirement: Retirement,
    /// The database's locality advisor.
    advisor: Arc<LocalityAdvisor>,
    /// The key index sampled in memory, built by the first point read the budget has room
    /// for (after a flush or compaction the inputs' fence keys are still held when the new
    /// segment opens; reads of segments nobody reads cost no memory).
    fence_keys: OnceLock<FenceKeys>,
    /// After a build found no room: the budget's generation then, plus one (a build is tried
    /// again once memory was given back); `u64::MAX` after a damaged block: never again.
    fence_keys_tried: AtomicU64,
    /// Where the bytes of this segment's fence keys are counted; given back on drop.
    fence_budget: Arc<FenceBudget>,
}

/// The memory all open segments' fence keys may use (`Options::fence_keys_bytes_max`): a
/// segment opened when the budget is spent reads through the on-disk fences instead.
#[derive(Debug)]
pub(crate) struct FenceBudget {
    bytes_max: u64,
    bytes_used: AtomicU64,
    /// Incremented each time bytes are given back.
    generation: AtomicU64,
}

impl FenceBudget {
    pub(crate) fn new(bytes_max: u64) -> FenceBudget {
        FenceBudget { bytes_max, bytes_used: AtomicU64::new(0), generation: AtomicU64::new(0) }
    }

    /// Bytes the fence keys of the open segments hold now.
    pub(crate) fn bytes_used(&self) -> u64 {
        self.bytes_used.load(Ordering::Relaxed)
    }

    /// Bytes still free (a hint: another open may take them first).
    fn bytes_free(&self) -> u64 {
        self.bytes_max.saturating_sub(self.bytes_used())
    }

    /// Counts `bytes` if they fit under the maximum.
    fn try_take(&self, bytes: u64) -> bool {
        // Relaxed: the counter orders nothing but itself.
        self.bytes_used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.bytes_max)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: u64) {
        let before = self.bytes_used.fetch_sub(bytes, Ordering::Relaxed);
        assert!(before >= bytes, "only bytes taken are given back");
        self.generation.fetch_add(1, Ordering::Relaxed);
    }
}

/// A segment's fence keys take at most this fraction of its file (1/32: at 16 references
/// per sample, 16-byte keys, 100-byte values and 4 KiB blocks they take about 20 MiB per GiB,
/// 1/50).
const FENCE_KEYS_FILE_FRACTION: u64 = 32;

/// Samples `segment`'s key index into fence keys within the budget: `Ok(None)` when there is
/// no room, an error for a damaged block on the way (which the reads that touch it report, as
/// without fence keys).
fn build_fence_keys(
    segment: &Segment<'_>,
    budget: &FenceBudget,
) -> std::result::Result<Option<FenceKeys>, zverse_core::Corruption> {
    let bytes_max = budget.bytes_free().min(segment.file_len() / FENCE_KEYS_FILE_FRACTION);
    let Some(fence_keys) = FenceKeys::build(segment, usize::try_from(bytes_max).unwrap_or(0))?
    else {
        return Ok(None);
    };
    Ok(budget.try_take(fence_keys.heap_bytes() as u64).then_some(fence_keys))
}

/// Whether a segment was retired, and so whether the drop of its last `Arc` deletes its file.
///
/// The protocol: compaction swaps the segment out of the tiers (under the tiers lock), then
/// calls [`Retirement::retire`] through its own `Arc`; readers that cloned the tiers before the
/// swap keep their `Arc`s; whichever drop is last runs `SegmentFile::drop`, which asks
/// [`Retirement::file_goes`]. `Arc`'s drop orders every other holder's last use before the
/// last drop, and the flag's `Release` store / `Acquire` load order the retirement before it
/// too, so the file is deleted exactly once, after every reader, whichever thread lets go last.
/// Model-checked under loom (`loom_models` below).
#[derive(Debug, Default)]
pub(crate) struct Retirement(sync::AtomicBool);

impl Retirement {
    /// Marks the segment retired; called once, by compaction, after the swap.
    pub(crate) fn retire(&self) {
        self.0.store(true, sync::Ordering::Release);
    }

    /// In the segment's `Drop`: whether its file must be deleted now.
    pub(crate) fn file_goes(&self) -> bool {
        self.0.load(sync::Ordering::Acquire)
    }
}

/// The file name of segment `number`.
pub(crate) fn segment_file_name(number: u64) -> String {
    format!("{number:020}.seg")
}

impl SegmentFile {
    /// Opens and maps the segment `meta` names in `dir`, checking its footer and metadata.
    pub(crate) fn open(
        io: &Arc<dyn Io>,
        dir: &Path,
        meta: SegmentMeta,
        advisor: &Arc<LocalityAdvisor>,
        fence_budget: &Arc<FenceBudget>,
    ) -> Result<SegmentFile> {
        let path = dir.join(segment_file_name(meta.file_number));
        let mapping = map_file(io, &path, &meta)?;
        let corrupt = |corruption| Error::corruption(&path, 0, corruption);
        // Random first, so that reading the footer faults in one page, not a read-ahead
        // window; then the metadata the open checks in full, as one read.
        advisor.opening(mapping.as_ref());
        let metadata_offset = Segment::metadata_offset(mapping.bytes()).map_err(corrupt)?;
        let metadata = metadata_offset as usize..mapping.bytes().len();
        advisor.reading_metadata(mapping.as_ref(), metadata);
        let block_count = Segment::open(mapping.bytes()).map_err(corrupt)?.block_count();
        let verified = (0..block_count).map(|_| AtomicBool::new(false)).collect();
        let mapped = MappedSegment::try_new(SegmentBytes { mapping, verified }, |bytes| {
            Segment::open(bytes.mapping.bytes())
                .map(|segment| segment.with_verified_blocks(&bytes.verified))
        })
        .map_err(corrupt)?;
        let (key_first, key_last) = key_bounds(mapped.borrow_dependent()).map_err(corrupt)?;
        Ok(SegmentFile {
            meta,
            path,
            mapped,
            key_first,
            key_last,
            io: Arc::clone(io),
            retirement: Retirement::default(),
            advisor: Arc::clone(advisor),
            fence_keys: OnceLock::new(),
            fence_keys_tried: AtomicU64::new(0),
            fence_budget: Arc::clone(fence_budget),
        })
    }

    /// Bytes of heap this segment's fence keys hold (0: none).
    fn fence_keys_bytes(&self) -> u64 {
        self.fence_keys.get().map_or(0, |f| f.heap_bytes() as u64)
    }

    /// The newest version `<= version` of `key` in this segment, tombstones included. The
    /// filter is asked first: a segment without the key costs one filter block. The fence keys
    /// are used where they are in memory, and built (if the budget has room) only for a key
    /// the on-disk fences leave a wide window for (`Segment::get_at_fenced`: keys sharing
    /// their first 8 bytes), so a segment of keys with distinct prefixes spends nothing.
    pub(crate) fn get_at(
        &self,
        key: &[u8],
        version: Version,
    ) -> std::result::Result<Option<Entry<'_>>, zverse_core::Corruption> {
        let segment = self.segment();
        match self.fence_keys.get() {
            Some(fence_keys) => segment.with_fence_keys(fence_keys.view()).get_at(key, version),
            None => segment
                .get_at_fenced(key, version, || self.fence_keys_or_build().map(FenceKeys::view)),
        }
    }

    /// The versions of `key` at or below `version`, newest first, with the fence keys used
    /// and built as [`SegmentFile::get_at`] does.
    pub(crate) fn history_at(&self, key: &[u8], version: Version) -> KeyVersions<'_> {
        let segment = self.segment();
        match self.fence_keys.get() {
            Some(fence_keys) => segment.with_fence_keys(fence_keys.view()).history_at(key, version),
            None => segment.history_at_fenced(key, version, || {
                self.fence_keys_or_build().map(FenceKeys::view)
            }),
        }
    }

    /// The reader with the fence keys if they are built, without building them.
    pub(crate) fn indexed_if_built(&self) -> Segment<'_> {
        let segment = *self.segment();
        match self.fence_keys.get() {
            Some(fence_keys) => segment.with_fence_keys(fence_keys.view()),
            None => segment,
        }
    }

    fn fence_keys_or_build(&self) -> Option<&FenceKeys> {
        if let Some(fence_keys) = self.fence_keys.get() {
            return Some(fence_keys);
        }
        // Relaxed: a stale view costs one build attempt too many or too few, never a result.
        let generation = self.fence_budget.generation.load(Ordering::Relaxed);
        let tried = self.fence_keys_tried.load(Ordering::Relaxed);
        if tried == u64::MAX || tried == generation.wrapping_add(1) {
            return None;
        }
        match build_fence_keys(self.segment(), &self.fence_budget) {
            Ok(Some(fence_keys)) => {
                let bytes = fence_keys.heap_bytes() as u64;
                if self.fence_keys.set(fence_keys).is_err() {
                    self.fence_budget.give_back(bytes); // Another reader built them first.
                }
                self.fence_keys.get()
            }
            Ok(None) => {
                self.fence_keys_tried.store(generation.wrapping_add(1), Ordering::Relaxed);
                None
            }
            Err(_) => {
                self.fence_keys_tried.store(u64::MAX, Ordering::Relaxed);
                None
            }
        }
    }

    pub(crate) fn meta(&self) -> &SegmentMeta {
        &self.meta
    }

    /// Its smallest key.
    pub(crate) fn key_first(&self) -> &[u8] {
        &self.key_first
    }

    /// Its largest key.
    pub(crate) fn key_last(&self) -> &[u8] {
        &self.key_last
    }

    /// Whether `key` lies within its key bounds.
    pub(crate) fn covers(&self, key: &[u8]) -> bool {
        *self.key_first <= *key && *key <= *self.key_last
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The reader over the mapped bytes.
    pub(crate) fn segment(&self) -> &Segment<'_> {
        self.mapped.borrow_dependent()
    }

    /// The mapped bytes (through the reader's slice: no call through the `Mapping` trait,
    /// which every `Slice` deref would pay).
    pub(crate) fn bytes(&self) -> &[u8] {
        self.segment().bytes()
    }

    fn mapping(&self) -> &dyn Mapping {
        self.mapped.borrow_owner().mapping.as_ref()
    }

    /// The advice and counting of a scan over the segment that reads only entries of `zbox`
    /// (`None`: no entry), fed the entries it yields.
    pub(crate) fn scan_advice(&self, zbox: Option<&ZBox>, purpose: ScanPurpose) -> ScanAdvice<'_> {
        // The span costs two binary searches of the block index: found only once the scan is
        // advised (a short scan never is), and only by an advisor that is on.
        let span = match zbox {
            Some(zbox) if self.advisor.is_enabled() => ScanSpan::Box(self.segment(), *zbox),
            _ => ScanSpan::Bytes(0..0),
        };
        self.advisor.scan(self.mapping(), span, purpose)
    }

    /// The segment's pages in memory now and its pages in all, or `None` where the backend
    /// cannot tell.
    pub(crate) fn residency(&self) -> Option<(u64, u64)> {
        let mapping = self.mapping();
        let len = mapping.bytes().len();
        let resident = mapping.resident_pages(0, len).ok()?;
        Some((resident as u64, len.div_ceil(mapping.page_bytes().max(1)) as u64))
    }

    /// Marks the file for deletion when the last reference to it goes, and advises its pages
    /// cold: readers still holding it keep reading correct bytes, only their pages go first.
    pub(crate) fn retire(&self) {
        self.retirement.retire();
        self.advisor.retired(self.mapping());
    }
}

impl MappedFile for SegmentFile {
    fn bytes(&self) -> &[u8] {
        SegmentFile::bytes(self)
    }
}

/// A segment's smallest and largest key.
type KeyBounds = (Box<[u8]>, Box<[u8]>);

/// The smallest and the largest key of `segment` (empty for an empty segment, which no
/// writer produces).
fn key_bounds(segment: &Segment<'_>) -> std::result::Result<KeyBounds, zverse_core::Corruption> {
    let mut keys = segment.iter_key_order();
    let first = keys.next().transpose()?.map(|entry| Box::from(entry.key));
    let last = keys.next_back().transpose()?.map(|entry| Box::from(entry.key));
    let first: Box<[u8]> = first.unwrap_or_default();
    let last = last.unwrap_or_else(|| first.clone());
    Ok((first, last))
}

self_cell::self_cell! {
    /// A mapping and the history segment view that reads it.
    struct MappedHistory {
        owner: SegmentBytes,
        #[covariant]
        dependent: HistorySegment,
    }
}

impl std::fmt::Debug for MappedHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.borrow_dependent().fmt(f)
    }
}

/// A history segment file (rank-space Z order, `zverse_core::segment::history`), open and
/// mapped: the versions compaction demoted. Retired and deleted as a [`SegmentFile`] is.
#[derive(Debug)]
pub(crate) struct HistoryFile {
    meta: SegmentMeta,
    path: PathBuf,
    mapped: MappedHistory,
    io: Arc<dyn Io>,
    /// Set once a history merge replaced it: the file goes with the last reference.
    retirement: Retirement,
    /// Reads that opened this segment (point reads, range and history sources, `changes`).
    reads: AtomicU64,
    /// When history GC should look at it again (`compaction.rs`); set once.
    gc_stamp: OnceLock<GcStamp>,
}

/// When history GC should look at a history segment again: under `Retention::Duration`, once
/// the horizon reaches `due`; under `Retention::Versions`, once the bytes users wrote since
/// `user_bytes` reach the history's size; and under either, once no live pin lies in
/// `pinned` (the versions from the oldest version a pin kept to the newest next newer
/// version of one: the pins that kept them were released).
#[derive(Clone, Copy, Debug)]
pub(crate) struct GcStamp {
    pub due: Version,
    pub user_bytes: u64,
    pub pinned: Option<(Version, Version)>,
}

impl HistoryFile {
    /// Opens and maps the history segment `meta` names in `dir`, checking every section.
    pub(crate) fn open(io: &Arc<dyn Io>, dir: &Path, meta: SegmentMeta) -> Result<HistoryFile> {
        let path = dir.join(segment_file_name(meta.file_number));
        let mapping = map_file(io, &path, &meta)?;
        let corrupt = |corruption| Error::corruption(&path, 0, corruption);
        let block_count = HistorySegment::open(mapping.bytes()).map_err(corrupt)?.block_count();
        let verified = (0..block_count).map(|_| AtomicBool::new(false)).collect();
        let mapped = MappedHistory::try_new(SegmentBytes { mapping, verified }, |bytes| {
            HistorySegment::open(bytes.mapping.bytes())
                .map(|segment| segment.with_verified_blocks(&bytes.verified))
        })
        .map_err(corrupt)?;
        Ok(HistoryFile {
            meta,
            path,
            mapped,
            io: Arc::clone(io),
            retirement: Retirement::default(),
            reads: AtomicU64::new(0),
            gc_stamp: OnceLock::new(),
        })
    }

    /// Its GC stamp, set to `init()` if it has none yet.
    pub(crate) fn gc_stamp(&self, init: impl FnOnce() -> GcStamp) -> GcStamp {
        *self.gc_stamp.get_or_init(init)
    }

    pub(crate) fn meta(&self) -> &SegmentMeta {
        &self.meta
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Marks the file for deletion when the last reference to it goes.
    pub(crate) fn retire(&self) {
        self.retirement.retire();
    }

    /// Counts a read that opened this segment.
    pub(crate) fn count_read(&self) {
        // Relaxed: a statistic.
        self.reads.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads that opened this segment since it was opened.
    pub(crate) fn read_count(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// The reader over the mapped bytes.
    pub(crate) fn segment(&self) -> &HistorySegment<'_> {
        self.mapped.borrow_dependent()
    }
}

impl MappedFile for HistoryFile {
    fn bytes(&self) -> &[u8] {
        self.mapped.borrow_owner().mapping.bytes()
    }
}

impl Drop for HistoryFile {
    fn drop(&mut self) {
        if self.retirement.file_goes() {
            // As for `SegmentFile`: an orphan left by a failed removal goes at the next open.
            let _ = self.io.remove_file(&self.path);
        }
    }
}

/// Opens and maps `path`, checking its length against the manifest's `meta`.
fn map_file(io: &Arc<dyn Io>, path: &Path, meta: &SegmentMeta) -> Result<Box<dyn Mapping>> {
    let file = io.open_read(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => Error::Corruption {
            file: path.to_path_buf(),
            offset: 0,
            what: "segment named by the manifest is missing".into(),
        },
        _ => Error::Io(error),
    })?;
    let mapping = file.map()?;
    if mapping.bytes().len() as u64 != meta.file_bytes {
        return Err(Error::Corruption {
            file: path.to_path_buf(),
            offset: mapping.bytes().len() as u64,
            what: format!(
                "segment is {} bytes, the manifest says {}",
                mapping.bytes().len(),
                meta.file_bytes
            ),
        });
    }
    Ok(mapping)
}

impl Drop for SegmentFile {
    fn drop(&mut self) {
        self.fence_budget.give_back(self.fence_keys_bytes());
        if self.retirement.file_goes() {
            // A failed removal leaves an orphan file, which the next open deletes (it is not in
            // the manifest); nothing is lost, so the error is not worth a panic in drop.
            let _ = self.io.remove_file(&self.path);
        }
    }
}

/// Loom model of segment retirement: a reader holding a segment while compaction retires it.
/// The tiers are a mutex-guarded `Arc` of segment `Arc`s as in the engine, with loom's `Arc`
/// and `Mutex` (loom tracks the ordering `Arc`'s drop provides), and segments that run the
/// real [`Retirement`] in their `Drop` as `SegmentFile` does. Checked in every interleaving
/// (up to a preemption bound): a reader never sees its segment's file deleted while it holds
/// the segment; each retired file is deleted exactly once; a live file never.
///
/// Run with `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p zverse
/// --release --lib loom_`.
#[cfg(all(test, loom))]
#[allow(clippy::unwrap_used, reason = "tests")]
mod loom_models {
    use loom::sync::{Arc, Mutex};

    use super::Retirement;

    /// The files deleted, in order, by segment id.
    type Deleted = Arc<Mutex<Vec<u8>>>;

    /// A segment: its id, its retirement flag, and the "disk" its drop deletes from.
    struct Segment {
        id: u8,
        retirement: Retirement,
        deleted: Deleted,
    }

    impl Segment {
        fn new(id: u8, deleted: &Deleted) -> Arc<Segment> {
            Arc::new(Segment {
                id,
                retirement: Retirement::default(),
                deleted: Arc::clone(deleted),
            })
        }

        /// A read: the file must still be there.
        fn read(&self) {
            let deleted = self.deleted.lock().unwrap();
            assert!(!deleted.contains(&self.id), "segment {} read after its file went", self.id);
        }
    }

    impl Drop for Segment {
        fn drop(&mut self) {
            if self.retirement.file_goes() {
                self.deleted.lock().unwrap().push(self.id);
            }
        }
    }

    type Tiers = Arc<Mutex<Arc<Vec<Arc<Segment>>>>>;

    /// A reader: takes the current tiers (as `Db::tiers` does), reads every segment, lets go.
    fn reader(tiers: &Tiers) -> loom::thread::JoinHandle<()> {
        let tiers = Arc::clone(tiers);
        loom::thread::spawn(move || {
            let view = Arc::clone(&tiers.lock().unwrap());
            for segment in view.iter() {
                segment.read();
            }
        })
    }

    /// Two readers race a compaction that merges segments 1 and 2 into segment 3: swap the
    /// tiers under the lock, then retire the inputs (as `install_compaction` does).
    #[test]
    fn loom_readers_holding_segments_while_compaction_retires_them() {
        let mut builder = loom::model::Builder::new();
        if builder.preemption_bound.is_none() {
            builder.preemption_bound = Some(4);
        }
        let bound = builder.preemption_bound;
        let executions = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = std::sync::Arc::clone(&executions);
        builder.check(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let deleted: Deleted = Arc::new(Mutex::new(Vec::new()));
            let inputs = vec![Segment::new(1, &deleted), Segment::new(2, &deleted)];
            let tiers: Tiers = Arc::new(Mutex::new(Arc::new(inputs.clone())));
            let readers = [reader(&tiers), reader(&tiers)];
            let compaction = {
                let (tiers, deleted) = (Arc::clone(&tiers), Arc::clone(&deleted));
                loom::thread::spawn(move || {
                    let output = Segment::new(3, &deleted);
                    *tiers.lock().unwrap() = Arc::new(vec![output]);
                    for input in &inputs {
                        input.retirement.retire();
                    }
                })
            };
            for thread in readers.into_iter().chain([compaction]) {
                thread.join().unwrap();
            }
            let mut gone = deleted.lock().unwrap().clone();
            gone.sort_unstable();
            assert_eq!(gone, [1, 2], "each retired file exactly once, the live one never");
            drop(tiers);
            assert_eq!(deleted.lock().unwrap().len(), 2, "the live segment's file stays");
        });
        let executions = executions.load(std::sync::atomic::Ordering::Relaxed);
        println!("{executions} interleavings, preemption bound {bound:?}");
    }
}

/// Fence keys sample the key index of a Z-order segment, which only databases flushed before
/// level 0 was key-ordered hold: these build their level 0 in Z order (`Options::flush_order`).
/// They stay within `Options::fence_keys_bytes_max` across flushes, compaction and reopen, and
/// reads answer the same with them, with a budget too small for every segment, and without.
#[cfg(all(test, not(loom)))]
mod tests {
    use zverse_core::segment::Order;

    use crate::{Db, Durability, Options};

    const KEY_COUNT: u32 = 3000;

    fn options(fence_keys_bytes_max: Option<u64>) -> Options {
        let mut options = Options::default()
            .durability(Durability::None)
            .memtable_bytes_max(64 << 10)
            .compaction_trigger_segments(1000);
        if let Some(bytes) = fence_keys_bytes_max {
            options = options.fence_keys_bytes_max(bytes);
        }
        options.flush_order = Order::Z;
        options
    }

    /// Keys sharing their first 8 bytes, as `SurrealDB`'s: the on-disk fences cannot narrow
    /// them.
    fn key(index: u32) -> Vec<u8> {
        format!("/*ns*db*tb*{index:08}").into_bytes()
    }

    fn fill(db: &Db) {
        for round in 0..3u32 {
            for index in 0..KEY_COUNT {
                db.put(&key(index), format!("{round}:{index}").as_bytes()).unwrap();
            }
        }
        db.flush().unwrap();
    }

    fn check_reads(db: &Db) {
        for index in (0..KEY_COUNT).step_by(7) {
            let value = db.get(&key(index)).unwrap().unwrap();
            assert_eq!(value.as_ref(), format!("2:{index}").as_bytes(), "key {index}");
        }
        assert_eq!(db.get(b"/*ns*db*tb*").unwrap(), None);
        assert_eq!(db.get(&key(KEY_COUNT)).unwrap(), None);
        let (start, end) = (key(100), key(200));
        assert_eq!(db.range(start.as_slice()..end.as_slice()).unwrap().count(), 100);
    }

    /// Whether level 0 is all in Z order, as these tests need.
    fn level_0_is_z_order(db: &Db) -> bool {
        db.inner.tiers().segments.iter().all(|segment| segment.segment().order() == Order::Z)
    }

    #[test]
    fn fence_keys_stay_within_the_budget_and_reads_agree() {
        let budget = 3000;
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), options(Some(budget))).unwrap();
        fill(&db);
        assert!(level_0_is_z_order(&db));
        assert_eq!(db.stats().fence_keys_bytes, 0, "built by the first point read, not the open");
        check_reads(&db);
        let stats = db.stats();
        assert!(stats.segment_count >= 4, "{stats:?}");
        assert!(stats.fence_keys_bytes > 0 && stats.fence_keys_bytes <= budget, "{stats:?}");
        db.compact().unwrap();
        check_reads(&db);
        // Compaction writes key-ordered segments, which need no fence keys.
        assert!(db.stats().fence_keys_bytes <= budget, "{:?}", db.stats());
        db.close().unwrap();
        let db = Db::open(dir.path(), options(Some(budget))).unwrap();
        check_reads(&db);
        assert!(db.stats().fence_keys_bytes <= budget, "{:?}", db.stats());
    }

    #[test]
    fn reads_agree_with_a_generous_budget_and_with_none() {
        for budget in [64 << 20, 0] {
            let dir = tempfile::tempdir().unwrap();
            let db = Db::open(dir.path(), options(Some(budget))).unwrap();
            fill(&db);
            assert!(level_0_is_z_order(&db));
            check_reads(&db);
            let held = db.stats().fence_keys_bytes;
            assert_eq!(held == 0, budget == 0, "budget {budget}: {held} bytes held");
        }
    }

    /// High-entropy keys: their 8-byte prefixes differ, so the on-disk fences narrow a search.
    fn random_key(index: u32) -> Vec<u8> {
        let spread = index.wrapping_mul(2_654_435_761);
        format!("{spread:08x}{index:08}").into_bytes()
    }

    /// With the default budget (1/16 of `memory_bytes_max`), point reads of keys sharing their
    /// first 8 bytes build fence keys; point reads of keys whose prefixes differ build none
    /// (the on-disk fences leave them a narrow window, which measured faster), and answer the
    /// same.
    #[test]
    fn the_default_budget_builds_fence_keys_only_where_prefixes_are_shared() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), options(None)).unwrap();
        for index in 0..KEY_COUNT {
            db.put(&random_key(index), &index.to_le_bytes()).unwrap();
        }
        db.flush().unwrap();
        assert!(level_0_is_z_order(&db));
        for index in 0..KEY_COUNT {
            let value = db.get(&random_key(index)).unwrap().unwrap();
            assert_eq!(value.as_ref(), index.to_le_bytes(), "key {index}");
        }
        assert_eq!(db.get(&random_key(KEY_COUNT)).unwrap(), None);
        assert_eq!(db.stats().fence_keys_bytes, 0, "distinct prefixes: none built");
        drop(db);
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), options(None)).unwrap();
        fill(&db);
        check_reads(&db);
        let held = db.stats().fence_keys_bytes;
        assert!(held > 0 && held <= (1 << 30) / 16, "shared prefixes: {held} bytes");
    }
}
