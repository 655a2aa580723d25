//! [`Db::checkpoint`]: an openable copy of the database as of one version, taken while
//! writers keep writing. Segments are immutable, so they are hard-linked (copied across file
//! systems); the logs of the sealed memtables are copied (a database reopened from the copy
//! appends to its newest log, which must not be the source's file). The copy is built in
//! `{dest}.checkpoint-partial`, its manifest written last, and renamed to `dest` when
//! complete, so `dest` exists only complete.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use zverse_core::Version;

use crate::error::{Error, Result};
use crate::inner::Inner;
use crate::io::Io;
use crate::log::log_file_name;
use crate::manifest::{Manifest, ManifestFile as _};
use crate::segment_file::segment_file_name;
use crate::tiers::Tiers;

/// What a checkpoint's directory is called until it is complete.
const TEMP_SUFFIX: &str = ".checkpoint-partial";
/// Bytes copied per read and write when a file is copied rather than linked.
const COPY_CHUNK_BYTES: usize = 1 << 20;

/// How far a checkpoint has got, for a progress indication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckpointProgress {
    /// Files linked or copied so far.
    pub files_done: usize,
    /// Files the checkpoint links or copies in all.
    pub files_total: usize,
    /// Bytes copied so far (linked files cost none).
    pub bytes_copied: u64,
}

/// What a checkpoint copies, captured at one version.
struct Captured {
    version: Version,
    manifest: Manifest,
    /// Holds the captured segments open, so that a compaction does not delete their files
    /// before they are linked.
    _tiers: Arc<Tiers>,
}

/// [`Db::checkpoint_with_progress`].
pub(crate) fn checkpoint(
    inner: &Inner,
    dest: &Path,
    mut progress: impl FnMut(CheckpointProgress),
) -> Result<Version> {
    inner.check_open()?;
    if inner.options.read_only {
        return Err(Error::OpenedReadOnly);
    }
    let (parent, temp) = temp_path(dest)?;
    refuse_existing(inner.io.as_ref(), dest)?;
    refuse_existing(inner.io.as_ref(), &temp)?;
    let _guard = LogRemovalHold::new(inner);
    let captured = inner.capture_for_checkpoint()?;
    inner.io.create_dir_all(&temp)?;
    write_files(inner, &temp, &captured, &mut progress)?;
    inner.io.sync_dir(&temp)?;
    captured.manifest.write(inner.io.as_ref(), &temp)?;
    inner.io.rename(&temp, dest)?;
    inner.io.sync_dir(&parent)?;
    Ok(captured.version)
}

impl Inner {
    /// Rotates the memtable (so that every log before the new active one is sealed and
    /// synced) and captures, as of the newest applied version, the manifest to write and the
    /// segments to link. Holds the writers for the rotation only.
    fn capture_for_checkpoint(&self) -> Result<Captured> {
        self.stage.with_leadership(|| {
            self.rotate()?;
            let version = self.visible_version();
            let (mut copy, tiers) = self.state.manifest_and_tiers();
            let log_active = tiers.active.log_number_first();
            copy.segments = crate::state::metas(&tiers);
            copy.logs.retain(|&number| number < log_active);
            copy.file_number_next = self.state.file_number_next();
            Ok(Captured { version, manifest: copy, _tiers: tiers })
        })
    }
}

/// The directory `dest` goes into, and the temporary name the copy is built under there:
/// `{dest}.checkpoint-partial`.
fn temp_path(dest: &Path) -> Result<(PathBuf, PathBuf)> {
    let name = dest.file_name().ok_or_else(|| {
        Error::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("checkpoint destination {} has no directory name", dest.display()),
        ))
    })?;
    let mut temp_name = name.to_os_string();
    temp_name.push(TEMP_SUFFIX);
    let parent = match dest.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let temp = parent.join(temp_name);
    Ok((parent, temp))
}

/// Fails with [`Error::DestinationExists`] if `path` exists.
fn refuse_existing(io: &dyn Io, path: &Path) -> Result<()> {
    match io.list_dir(path) {
        Ok(_) => Err(Error::DestinationExists { path: path.to_path_buf() }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotADirectory => {
            Err(Error::DestinationExists { path: path.to_path_buf() })
        }
        Err(error) => Err(error.into()),
    }
}

/// Links the captured segments and copies the captured logs into `dest`.
fn write_files(
    inner: &Inner,
    dest: &Path,
    captured: &Captured,
    progress: &mut impl FnMut(CheckpointProgress),
) -> Result<()> {
    let io = inner.io.as_ref();
    let segments = captured.manifest.segments.iter().map(|meta| meta.file_number);
    let segments: Vec<PathBuf> = segments.map(segment_file_name).map(PathBuf::from).collect();
    let logs: Vec<PathBuf> =
        captured.manifest.logs.iter().map(|&n| PathBuf::from(log_file_name(n))).collect();
    let mut state = CheckpointProgress {
        files_done: 0,
        files_total: segments.len() + logs.len(),
        bytes_copied: 0,
    };
    for name in &segments {
        state.bytes_copied += link_or_copy(io, &inner.dir.join(name), &dest.join(name))?;
        state.files_done += 1;
        progress(state);
    }
    for name in &logs {
        state.bytes_copied += copy_file(io, &inner.dir.join(name), &dest.join(name))?;
        state.files_done += 1;
        progress(state);
    }
    Ok(())
}

/// Hard-links `from` as `to`, or copies it where links are not possible; returns the bytes
/// copied (0 for a link).
fn link_or_copy(io: &dyn Io, from: &Path, to: &Path) -> Result<u64> {
    match io.hard_link(from, to) {
        Ok(()) => Ok(0),
        Err(error)
            if matches!(
                error.kind(),
                std::io::ErrorKind::CrossesDevices | std::io::ErrorKind::Unsupported
            ) =>
        {
            copy_file(io, from, to)
        }
        Err(error) => Err(error.into()),
    }
}

/// Copies `from` to the new file `to`, synced, in bounded memory; returns the bytes copied.
fn copy_file(io: &dyn Io, from: &Path, to: &Path) -> Result<u64> {
    let source = io.open_read(from)?;
    let len_bytes = source.len_bytes()?;
    let target = io.create_new(to)?;
    let chunk_len =
        usize::try_from(len_bytes).map_or(COPY_CHUNK_BYTES, |l| l.min(COPY_CHUNK_BYTES));
    let mut buffer = vec![0; chunk_len];
    let mut offset = 0;
    while offset < len_bytes {
        let remaining = usize::try_from(len_bytes - offset).unwrap_or(usize::MAX);
        let chunk = buffer.get_mut(..remaining.min(chunk_len)).unwrap_or_default();
        source.read_exact_at(chunk, offset)?;
        target.write_all_at(chunk, offset)?;
        offset += chunk.len() as u64;
    }
    target.sync_data()?;
    Ok(len_bytes)
}

/// Keeps flushes from deleting the logs they retire while a checkpoint copies them; the
/// last one released deletes what they left behind.
struct LogRemovalHold<'a> {
    inner: &'a Inner,
}

impl<'a> LogRemovalHold<'a> {
    fn new(inner: &'a Inner) -> LogRemovalHold<'a> {
        inner.checkpoints_running.fetch_add(1, Ordering::SeqCst);
        LogRemovalHold { inner }
    }
}

impl Drop for LogRemovalHold<'_> {
    fn drop(&mut self) {
        if self.inner.checkpoints_running.fetch_sub(1, Ordering::SeqCst) == 1 {
            let log_first = self.inner.state.logs().first().copied();
            if let Some(log_first) = log_first {
                self.inner.remove_logs_below(log_first);
            }
        }
    }
}
