//! [`SegmentWriter`]: writes a stream of entries in Z order (or, [`SegmentWriter::with_order`],
//! in key order) as one or more segment files of at most a target size, streaming each block
//! to its file as it fills. In key order a split falls only between two keys, never between
//! two versions of one key, so that each key's versions are in one segment of a level.
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
    BuildError, KEY_REF_BYTES, Order, SegmentBuilder, SegmentOptions, Sink, VecStorage,
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
    /// The smallest and the largest key added (in key order, the first and the last); `None`
    /// before the first entry.
    keys: Option<KeyBounds>,
}

/// The smallest and the largest key of a segment a [`SegmentWriter`] wrote: in key order its
/// first and last key, which keep a level's segments apart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct KeyBounds {
    pub first: Vec<u8>,
    pub last: Vec<u8>,
}

impl KeyBounds {
    /// The bounds of a segment whose first key is `key`.
    fn of(key: &[u8]) -> KeyBounds {
        KeyBounds { first: key.to_vec(), last: key.to_vec() }
    }

    /// Widens the bounds to `key`, added after the keys they cover, in `order`.
    fn extend(&mut self, key: &[u8], order: Order) {
        let replace = |bound: &mut Vec<u8>| {
            bound.clear();
            bound.extend_from_slice(key);
        };
        let is_new_last = match order {
            // In key order each new key is the largest so far.
            Order::Key => self.last.as_slice() != key,
            _ => key > self.last.as_slice(),
        };
        if is_new_last {
            replace(&mut self.last);
        }
        if order != Order::Key && key < self.first.as_slice() {
            replace(&mut self.first);
        }
    }
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
    order: Order,
    current: Option<Open>,
    finished: Vec<(SegmentMeta, KeyBounds)>,
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
            order: Order::Z,
            current: None,
            finished: Vec::new(),
            created: NewFiles::new(io),
        }
    }

    /// The same writer, taking entries in `order` (default Z order) and writing segments in
    /// it. In [`Order::Key`] entries come key ascending, version descending, and a split
    /// waits for the next key: a segment can pass its target by the rest of one key's
    /// versions (one entry for a current segment, which holds a key's newest version only).
    pub(crate) fn with_order(mut self, order: Order) -> SegmentWriter<'a> {
        assert!(self.current.is_none() && self.finished.is_empty(), "set before the first add");
        self.order = order;
        self
    }

    /// Adds one entry; starts a new segment first if the current one reached a limit (in key
    /// order, only at a new key).
    pub(crate) fn add(&mut self, entry: &Entry<'_>) -> Result<()> {
        let splits = self.current.as_ref().is_some_and(|open| {
            let same_key = open.keys.as_ref().is_some_and(|keys| keys.last == entry.key);
            self.is_full(open) && (self.order != Order::Key || !same_key)
        });
        if splits {
            self.finish_current()?;
        }
        if self.current.is_none() {
            self.current = Some(self.create()?);
        }
        let open = self.current.as_mut().expect("opened above");
        open.builder.add(entry.key, entry.version, entry.value).map_err(build_error)?;
        open.payload_bytes += (entry.key.len() + entry.value.map_or(0, <[u8]>::len)) as u64;
        open.key_bytes += entry.key.len() as u64;
        match &mut open.keys {
            Some(keys) => keys.extend(entry.key, self.order),
            None => open.keys = Some(KeyBounds::of(entry.key)),
        }
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
        let options = SegmentOptions::default()
            .with_block_bytes_target(self.limits.block_bytes as usize)
            .with_order(self.order);
        let builder = SegmentBuilder::new(sink, options);
        Ok(Open { number, builder, payload_bytes: 0, key_bytes: 0, keys: None })
    }

    fn finish_current(&mut self) -> Result<()> {
        let Some(open) = self.current.take() else { return Ok(()) };
        let (sink, summary) = open.builder.finish().map_err(build_error)?;
        sink.finish()?;
        assert!(summary.entry_count > 0, "a segment is only created for an entry");
        let meta = SegmentMeta {
            file_number: open.number,
            entry_count: summary.entry_count,
            file_bytes: summary.file_len,
            payload_bytes: open.payload_bytes,
            version_min: summary.version_min.unwrap_or(Version::ZERO),
            version_max: summary.version_max.unwrap_or(Version::ZERO),
            tier: Tier::Level(0),
        };
        self.finished.push((meta, open.keys.unwrap_or_default()));
        Ok(())
    }

    /// Finishes the last segment. Returns every segment written, synced (their directory
    /// entries are not: the caller syncs the directory once), in the order written, and the
    /// files, which are removed when dropped unless kept.
    pub(crate) fn finish(self) -> Result<(Vec<SegmentMeta>, NewFiles<'a>)> {
        let (written, files) = self.finish_with_key_bounds()?;
        Ok((written.into_iter().map(|(meta, _)| meta).collect(), files))
    }

    /// [`SegmentWriter::finish`], with each segment's smallest and largest key. In key order
    /// the segments come in key order and their bounds do not overlap.
    pub(crate) fn finish_with_key_bounds(
        mut self,
    ) -> Result<(Vec<(SegmentMeta, KeyBounds)>, NewFiles<'a>)> {
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
            // Entries come from the memtable or a merge in strictly increasing order (Z or
            // key), and the writer splits before the format limit: anything else is a broken
            // invariant.
            panic!("segment build failed on engine-produced input: {other}")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use zverse_core::segment::{Order, Segment};
    use zverse_core::zkey::cmp_z;
    use zverse_core::{Entry, Version};

    use super::{KeyBounds, SegmentWriter, WriterLimits};
    use crate::io::StdIo;
    use crate::manifest::SegmentMeta;
    use crate::segment_file::segment_file_name;

    /// 60 keys of 5 versions each, with 30-byte values: (key, version, value).
    fn entries() -> Vec<(Vec<u8>, u64, Vec<u8>)> {
        let mut entries = Vec::new();
        for key in 0u32..60 {
            for version in (1u64..=5).rev() {
                entries.push((format!("key{key:04}").into_bytes(), version, vec![key as u8; 30]));
            }
        }
        entries
    }

    /// Writes `entries` in `order` with a 300-byte segment target; returns each output with
    /// its key bounds and its entries, read back from the file.
    fn write(
        entries: &[(Vec<u8>, u64, Vec<u8>)],
        order: Order,
    ) -> Vec<(SegmentMeta, KeyBounds, Segment<'static>)> {
        let dir = tempfile::tempdir().unwrap();
        let io = StdIo;
        let next = Cell::new(1u64);
        let allocate = Box::new(|| next.replace(next.get() + 1));
        let limits = WriterLimits {
            block_bytes: 128,
            segment_bytes_target: 300,
            metadata_bytes_max: 1 << 20,
        };
        let mut writer = SegmentWriter::new(&io, dir.path(), allocate, limits).with_order(order);
        for (key, version, value) in entries {
            let entry = Entry { key, version: Version::new(*version), value: Some(value) };
            writer.add(&entry).unwrap();
        }
        let (written, files) = writer.finish_with_key_bounds().unwrap();
        let outputs = written
            .into_iter()
            .map(|(meta, bounds)| {
                let path = dir.path().join(segment_file_name(meta.file_number));
                // Leaked: a test's few small files, read by `Segment<'static>`.
                let bytes: &'static [u8] = Vec::leak(std::fs::read(path).unwrap());
                (meta, bounds, Segment::open(bytes).unwrap())
            })
            .collect();
        drop(files);
        outputs
    }

    #[test]
    fn key_order_splits_only_between_keys_and_returns_each_output_s_key_bounds() {
        let outputs = write(&entries(), Order::Key);
        assert!(outputs.len() > 5, "{} outputs", outputs.len());
        let mut previous_last: Option<Vec<u8>> = None;
        let mut entry_count = 0;
        for (meta, bounds, segment) in &outputs {
            assert_eq!(segment.order(), Order::Key);
            assert_eq!(segment.first_key().unwrap(), Some(bounds.first.as_slice()));
            assert_eq!(segment.last_key().unwrap(), Some(bounds.last.as_slice()));
            assert_eq!(segment.entry_count(), meta.entry_count);
            // Every key has all of its 5 versions here: no split between two versions.
            assert_eq!(segment.entry_count(), 5 * segment.key_count(), "{bounds:?}");
            if let Some(previous) = &previous_last {
                assert!(previous < &bounds.first, "{previous:?} overlaps {bounds:?}");
            }
            previous_last = Some(bounds.last.clone());
            entry_count += meta.entry_count;
        }
        assert_eq!(entry_count, 300);
    }

    #[test]
    fn z_order_bounds_are_each_output_s_smallest_and_largest_key() {
        let mut entries = entries();
        entries.sort_by(|a, b| cmp_z(&a.0, Version::new(a.1), &b.0, Version::new(b.1)));
        let outputs = write(&entries, Order::Z);
        assert!(outputs.len() > 1);
        for (_, bounds, segment) in &outputs {
            assert_eq!(segment.order(), Order::Z);
            let keys: Vec<&[u8]> = segment.iter().map(|entry| entry.unwrap().key).collect();
            assert_eq!(Some(bounds.first.as_slice()), keys.iter().copied().min());
            assert_eq!(Some(bounds.last.as_slice()), keys.iter().copied().max());
            assert_eq!(segment.first_key().unwrap(), Some(bounds.first.as_slice()));
        }
    }
}
