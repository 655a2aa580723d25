//! [`SegmentFile`]: an immutable segment on disk, memory-mapped, shared by `Arc` between the
//! tiers and every reader that started with it. When compaction retires it, the file is
//! deleted once the last `Arc` goes: no reader ever loses the segment it is reading.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use zverse_core::segment::{Segment, SegmentBuilder, SegmentOptions};
use zverse_core::zkey::ZBox;
use zverse_core::{Entry, Version};

use crate::error::{Error, Result};
use crate::io::{Io, Mapping};
use crate::locality::{LocalityAdvisor, ScanAdvice, ScanPurpose};
use crate::manifest::SegmentMeta;

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
    retired: AtomicBool,
    /// The database's locality advisor.
    advisor: Arc<LocalityAdvisor>,
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
            retired: AtomicBool::new(false),
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
        self.retired.store(true, Ordering::Release);
        self.advisor.retired(self.mapping());
    }
}

impl Drop for SegmentFile {
    fn drop(&mut self) {
        if self.retired.load(Ordering::Acquire) {
            // A failed removal leaves an orphan file, which the next open deletes (it is not in
            // the manifest); nothing is lost, so the error is not worth a panic in drop.
            let _ = self.io.remove_file(&self.path);
        }
    }
}

/// Writes `entries` (in strictly increasing Z order) as segment `number` in `dir`, synced, and
/// returns its manifest entry. The directory entry is not synced: the caller syncs the
/// directory once before recording the segment in the manifest.
pub(crate) fn write_segment<'e>(
    io: &dyn Io,
    dir: &Path,
    number: u64,
    block_bytes: u32,
    entries: impl IntoIterator<Item = Entry<'e>>,
) -> Result<SegmentMeta> {
    let options = SegmentOptions::default().with_block_bytes_target(block_bytes as usize);
    let mut builder = SegmentBuilder::new(Vec::new(), options);
    let mut payload_bytes = 0;
    for entry in entries {
        builder.add(entry.key, entry.version, entry.value).map_err(build_error)?;
        payload_bytes += (entry.key.len() + entry.value.map_or(0, <[u8]>::len)) as u64;
    }
    let (bytes, summary) = builder.finish().map_err(build_error)?;
    let path = dir.join(segment_file_name(number));
    let file = io.create_new(&path)?;
    file.write_all_at_and_sync(&[&bytes], 0)?;
    Ok(SegmentMeta {
        file_number: number,
        entry_count: summary.entry_count,
        file_bytes: summary.file_len,
        payload_bytes,
        version_min: summary.version_min.unwrap_or(Version::ZERO),
        version_max: summary.version_max.unwrap_or(Version::ZERO),
    })
}

fn build_error(error: zverse_core::segment::BuildError<std::convert::Infallible>) -> Error {
    match error {
        zverse_core::segment::BuildError::Limit(limit) => limit.into(),
        other => {
            // Entries come from the memtable or a merge in strictly increasing Z order, and the
            // Vec sink cannot fail: anything else is a broken invariant of the engine.
            panic!("segment build failed on engine-produced input: {other}")
        }
    }
}
