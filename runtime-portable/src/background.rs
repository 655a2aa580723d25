//! The background work: the flush thread (and the periodic sync), the compaction thread, and
//! their scheduling and back-off.

use std::path::Path;

use crate::error::Result;
use crate::io::Io;
use crate::manifest::SegmentMeta;
use crate::memtable::Memtable;
use crate::options::Options;
use crate::segment_writer::{SegmentWriter, WriterLimits};

/// Writes `memtable` as segments (sorted into Z order, split at the options' limits); returns
/// their manifest entries, synced, and the files (removed when dropped unless kept).
pub(crate) fn write_memtable<'a>(
    io: &'a dyn Io,
    dir: &'a Path,
    options: &Options,
    allocate_number: Box<dyn Fn() -> u64 + 'a>,
    memtable: &Memtable,
) -> Result<(Vec<SegmentMeta>, crate::segment_writer::NewFiles<'a>)> {
    let mut entries: Vec<_> = memtable.entries().collect();
    entries.sort_unstable_by(|a, b| zverse_core::zkey::cmp_z(a.key, a.version, b.key, b.version));
    let mut writer = SegmentWriter::new(io, dir, allocate_number, writer_limits(options));
    for entry in &entries {
        writer.add(entry)?;
    }
    drop(entries);
    let (metas, new_files) = writer.finish()?;
    if !metas.is_empty() {
        io.sync_dir(dir)?;
    }
    Ok((metas, new_files))
}

pub(crate) fn writer_limits(options: &Options) -> WriterLimits {
    WriterLimits {
        block_bytes: options.segment_block_bytes,
        segment_bytes_target: options.segment_bytes_target,
        metadata_bytes_max: options.segment_metadata_bytes_max(),
    }
}
