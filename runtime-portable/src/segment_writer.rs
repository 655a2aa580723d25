//! [`SegmentWriter`]: writes a stream of entries in Z order as one or more segment files of at
//! most a target size, streaming each block to its file as it fills.
//!
//! Memory is bounded by the options, never by the data: the write buffer
//! ([`WRITE_BUFFER_BYTES`]), the block being filled, and the metadata of the one segment being
//! built (per entry its key and a `KEY_REF_BYTES` reference; per block a 56-byte handle), which
//! the split at `segment_bytes_target` (or at `metadata_bytes_max`, whichever comes first)
//! bounds. A segment's file is synced when it is finished.
//!
//! Every file the writer creates is removed again unless the caller keeps it ([`NewFiles`]):
//! a failed flush or compaction (a full disk) leaves no partial output behind.

use std::path::{Path, PathBuf};

use zverse_core::segment::{
    BuildError, KEY_REF_BYTES, SegmentBuilder, SegmentOptions, Sink, VecStorage,
};
use zverse_core::{Entry, Version};

use crate::error::{Error, Result};
use crate::io::{Io, IoFile};
use crate::manifest::{SegmentMeta, Tier};
use crate::segment_file::segment_file_name;

/// Bytes a segment file's writes are gathered into before they go to the file.
pub(crate) const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// The segment files a flush or compaction created, removed on drop unless kept: the caller
/// keeps them once the manifest may name them.
#[derive(Debug)]
pub(crate) struct NewFiles<'a> {
    io: &'a dyn Io,
    paths: Vec<PathBuf>,
}

impl<'a> NewFiles<'a> {
    /// No files yet.
    pub(crate) fn new(io: &'a dyn Io) -> NewFiles<'a> {
        NewFiles { io, paths: Vec::new() }
    }

    /// Creates the file at `path` (it must not exist), removed on drop unless kept.
    pub(crate) fn create(&mut self, path: PathBuf) -> Result<FileSink> {
        let file = self.io.create_new(&path)?;
        self.paths.push(path);
        Ok(FileSink { file, buffer: Vec::with_capacity(WRITE_BUFFER_BYTES), offset: 0 })
    }

    /// Takes `other`'s files into this set.
    pub(crate) fn adopt(&mut self, mut other: NewFiles<'a>) {
        self.paths.append(&mut other.paths);
    }

    /// The files stay: the manifest names them, or may.
    pub(crate) fn keep(mut self) {
        self.paths.clear();
    }
}

impl Drop for NewFiles<'_> {
    fn drop(&mut self) {
        for path in &self.paths {
            // Created by this writer (`create_new`), so ours; a failed removal leaves an
            // orphan that the next open removes (the manifest does not name it).
            let _ = self.io.remove_file(path);
        }
    }
}

/// An append-only segment file: writes gathered into [`WRITE_BUFFER_BYTES`] and written at
/// increasing offsets.
pub(crate) struct FileSink {
    file: Box<dyn IoFile>,
    buffer: Vec<u8>,
    /// Bytes already written to the file.
    offset: u64,
}

impl FileSink {
    fn drain(&mut self) -> std::io::Result<()> {
        if !self.buffer.is_empty() {
            self.file.write_all_at(&self.buffer, self.offset)?;
            self.offset += self.buffer.len() as u64;
            self.buffer.clear();
        }
        Ok(())
    }

    /// Writes what is buffered and syncs the file.
    pub(crate) fn finish(mut self) -> std::io::Result<()> {
        let tail = std::mem::take(&mut self.buffer);
        self.file.write_all_at_and_sync(&[&tail], self.offset)
    }
}

impl Sink for FileSink {
    type Error = std::io::Error;

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.buffer.len() + bytes.len() > WRITE_BUFFER_BYTES {
            self.drain()?;
        }
        if bytes.len() >= WRITE_BUFFER_BYTES {
            self.file.write_all_at(bytes, self.offset)?;
            self.offset += bytes.len() as u64;
        } else {
            self.buffer.extend_from_slice(bytes);
        }
        Ok(())
    }
}

/// The segment being built.
struct Open {
    number: u64,
    builder: SegmentBuilder<FileSink, VecStorage>,
    payload_bytes: u64,
    /// Bytes of the keys added: what the builder holds of each entry besides its reference.
    key_bytes: u64,
}

/// Limits of a [`SegmentWriter`]'s outputs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WriterLimits {
    pub block_bytes: u32,
    /// A new segment starts once the current one holds this many bytes of data blocks.
    pub segment_bytes_target: u64,
    /// ... or once its metadata takes this many bytes of memory.
    pub metadata_bytes_max: u64,
}

/// Writes entries in strictly increasing Z order as segments of at most the target size.
pub(crate) struct SegmentWriter<'a> {
    dir: &'a Path,
    allocate_number: Box<dyn Fn() -> u64 + 'a>,
    limits: WriterLimits,
    current: Option<Open>,
    finished: Vec<SegmentMeta>,
    created: NewFiles<'a>,
}

impl<'a> SegmentWriter<'a> {
    pub(crate) fn new(
        io: &'a dyn Io,
        dir: &'a Path,
        allocate_number: Box<dyn Fn() -> u64 + 'a>,
        limits: WriterLimits,
    ) -> SegmentWriter<'a> {
        assert!(limits.segment_bytes_target > 0, "the options keep the target positive");
        SegmentWriter {
            dir,
            allocate_number,
            limits,
            current: None,
            finished: Vec::new(),
            created: NewFiles::new(io),
        }
    }

    /// Adds one entry; starts a new segment first if the current one reached a limit.
    pub(crate) fn add(&mut self, entry: &Entry<'_>) -> Result<()> {
        if self.current.as_ref().is_some_and(|open| self.is_full(open)) {
            self.finish_current()?;
        }
        if self.current.is_none() {
            self.current = Some(self.create()?);
        }
        let open = self.current.as_mut().expect("opened above");
        open.builder.add(entry.key, entry.version, entry.value).map_err(build_error)?;
        open.payload_bytes += (entry.key.len() + entry.value.map_or(0, <[u8]>::len)) as u64;
        open.key_bytes += entry.key.len() as u64;
        Ok(())
    }

    /// The split rule: data at the target, or metadata (each entry's `KEY_REF_BYTES` and its
    /// key) at the maximum. `compaction::is_full` recognizes a segment split either way from
    /// its manifest entry (which counts keys with values, so it may also call a remainder with
    /// large values full: that one is then merged by `Db::compact` only).
    fn is_full(&self, open: &Open) -> bool {
        let metadata_bytes = open.builder.entry_count() * KEY_REF_BYTES as u64 + open.key_bytes;
        open.builder.data_len() >= self.limits.segment_bytes_target
            || metadata_bytes >= self.limits.metadata_bytes_max
    }

    fn create(&mut self) -> Result<Open> {
        let number = (self.allocate_number)();
        let sink = self.created.create(self.dir.join(segment_file_name(number)))?;
        let options =
            SegmentOptions::default().with_block_bytes_target(self.limits.block_bytes as usize);
        let builder = SegmentBuilder::new(sink, options);
        Ok(Open { number, builder, payload_bytes: 0, key_bytes: 0 })
    }

    fn finish_current(&mut self) -> Result<()> {
        let Some(open) = self.current.take() else { return Ok(()) };
        let (sink, summary) = open.builder.finish().map_err(build_error)?;
        sink.finish()?;
        assert!(summary.entry_count > 0, "a segment is only created for an entry");
        self.finished.push(SegmentMeta {
            file_number: open.number,
            entry_count: summary.entry_count,
            file_bytes: summary.file_len,
            payload_bytes: open.payload_bytes,
            version_min: summary.version_min.unwrap_or(Version::ZERO),
            version_max: summary.version_max.unwrap_or(Version::ZERO),
            tier: Tier::Level(0),
        });
        Ok(())
    }

    /// Finishes the segment being written, if any: the next entry starts a new one.
    pub(crate) fn split(&mut self) -> Result<()> {
        self.finish_current()
    }

    /// Finishes the last segment. Returns every segment written, synced (their directory
    /// entries are not: the caller syncs the directory once), in the order written, and the
    /// files, which are removed when dropped unless kept.
    pub(crate) fn finish(mut self) -> Result<(Vec<SegmentMeta>, NewFiles<'a>)> {
        self.finish_current()?;
        Ok((self.finished, self.created))
    }
}

fn build_error(error: BuildError<std::io::Error>) -> Error {
    match error {
        BuildError::Sink(error) => Error::Io(error),
        BuildError::Limit(limit) => limit.into(),
        BuildError::Failed => Error::Io(std::io::Error::other("an earlier segment write failed")),
        other => {
            // Entries come from the memtable or a merge in strictly increasing Z order, and the
            // writer splits before the format limit: anything else is a broken invariant.
            panic!("segment build failed on engine-produced input: {other}")
        }
    }
}
