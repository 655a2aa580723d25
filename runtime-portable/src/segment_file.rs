//! [`SegmentFile`]: an immutable segment on disk, memory-mapped, shared by `Arc` between the
//! tiers and every reader that started with it. When compaction retires it, the file is
//! deleted once the last `Arc` goes: no reader ever loses the segment it is reading. Segments
//! are written by `segment_writer.rs`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use zverse_core::segment::Segment;
use zverse_core::zkey::ZBox;

use crate::error::{Error, Result};
use crate::io::{Io, Mapping};
use crate::locality::{LocalityAdvisor, ScanAdvice, ScanPurpose};
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

/// A segment file, open and mapped.
#[derive(Debug)]
pub(crate) struct SegmentFile {
    meta: SegmentMeta,
    path: PathBuf,
    mapped: MappedSegment,
    io: Arc<dyn Io>,
    /// Set when compaction has replaced the segment: the file goes with the last reference.
    retirement: Retirement,
    /// The database's locality advisor.
    advisor: Arc<LocalityAdvisor>,
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
    ) -> Result<SegmentFile> {
        let path = dir.join(segment_file_name(meta.file_number));
        let file = io.open_read(&path).map_err(|error| match error.kind() {
            std::io::ErrorKind::NotFound => Error::Corruption {
                file: path.clone(),
                offset: 0,
                what: "segment named by the manifest is missing".into(),
            },
            _ => Error::Io(error),
        })?;
        let mapping = file.map()?;
        if mapping.bytes().len() as u64 != meta.file_bytes {
            return Err(Error::Corruption {
                file: path,
                offset: mapping.bytes().len() as u64,
                what: format!(
                    "segment is {} bytes, the manifest says {}",
                    mapping.bytes().len(),
                    meta.file_bytes
                ),
            });
        }
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
        Ok(SegmentFile {
            meta,
            path,
            mapped,
            io: Arc::clone(io),
            retirement: Retirement::default(),
            advisor: Arc::clone(advisor),
        })
    }

    pub(crate) fn meta(&self) -> &SegmentMeta {
        &self.meta
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The reader over the mapped bytes.
    pub(crate) fn segment(&self) -> &Segment<'_> {
        self.mapped.borrow_dependent()
    }

    /// The mapped bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.mapped.borrow_owner().mapping.bytes()
    }

    fn mapping(&self) -> &dyn Mapping {
        self.mapped.borrow_owner().mapping.as_ref()
    }

    /// The advice and counting of a scan over the segment that reads only entries of `zbox`
    /// (`None`: no entry), fed the entries it yields.
    pub(crate) fn scan_advice(&self, zbox: Option<&ZBox>, purpose: ScanPurpose) -> ScanAdvice<'_> {
        // The span costs two binary searches of the block index: only for an advisor that is on.
        let span = match zbox {
            Some(zbox) if self.advisor.is_enabled() => self.segment().data_span(zbox),
            _ => 0..0,
        };
        let span = span.start as usize..span.end as usize;
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

impl Drop for SegmentFile {
    fn drop(&mut self) {
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
