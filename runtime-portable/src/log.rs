//! Log files: the first tier of the data. Every commit group is appended to the active log as
//! one frame; recovery replays the logs the manifest does not cover yet. The frame codec and
//! the damage rule (which damage is a torn write to cut off, which is corruption) are the
//! core's, `zverse_core::log` (byte layout: docs/format.md, "Log files"); this module keeps
//! the files: creating, appending, zero-filling ahead, reading back, truncating.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use zverse_core::Version;
use zverse_core::log::{
    FRAME_BODY_LEN_MAX, Frame, Frames, LOG_HEADER_LEN, LogPosition, Verdict, encode_log_header,
    seal,
};
pub(crate) use zverse_core::log::{FRAME_HEADER_LEN, seal_frame};

use crate::error::{Error, Result};
use crate::io::{Io, IoFile};
use crate::memtable::{Memtable, Op};

/// The file name of log `number`.
pub(crate) fn log_file_name(number: u64) -> String {
    format!("{number:020}.log")
}

const _: () = assert!(
    FRAME_BODY_LEN_MAX >= crate::commit::GROUP_BYTES_MAX + zverse_core::record::RECORD_LEN_MAX
);

/// Bytes of frames a log under `Durability::Periodic` or `None` holds in memory before it
/// writes them to the file in one call (they are also written at every periodic sync, at the
/// seal of a rotation and at close). A frame this long or longer is written at once.
pub(crate) const LOG_BUFFER_BYTES: usize = 64 << 10;

/// A fresh random nonce for a new log (`SipHash` keys come from the OS's randomness).
fn new_nonce() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::process::id())
}

/// The log being appended to, owned by the commit leader (behind a mutex the periodic syncer
/// also takes, but never holds through a sync: it syncs its own handle to the file).
#[derive(Debug)]
pub(crate) struct ActiveLog {
    pub number: u64,
    pub file: Arc<dyn IoFile>,
    /// Where the next frame goes: the bytes before it are whole frames.
    pub offset_end: u64,
    /// Every byte before it is durable.
    pub offset_synced: u64,
    /// Seeds the frame header checksums of this log.
    pub nonce: u64,
    /// The file's length: the bytes from `offset_end` to it are zeros written ahead (see
    /// [`ActiveLog::reserve`]).
    pub offset_filled: u64,
    /// Bytes zero-filled ahead of the end at a time; 0 for none.
    pub preallocation_bytes: u64,
    /// The frames before `offset_end` not written to the file yet (see
    /// [`ActiveLog::append_held`]): they start at `offset_end - held.len()`. Empty under
    /// `Durability::Sync`, whose frames are written and synced one group at a time.
    held: HeldFrames,
}

/// The frames a log holds in memory, shown by their length.
#[derive(Default)]
struct HeldFrames(Vec<u8>);

impl std::fmt::Debug for HeldFrames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes", self.0.len())
    }
}

/// Zero bytes written per call when a log is filled ahead.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// Where a zero-fill ahead of `need` ends: `preallocation_bytes` past it, in whole pages.
fn fill_end(need: u64, preallocation_bytes: u64) -> u64 {
    need.saturating_add(preallocation_bytes).next_multiple_of(4096)
}

impl ActiveLog {
    /// Creates log `number` in `dir`, zero-filled `preallocation_bytes` ahead (0: none), and
    /// makes it and its directory entry durable, so that synced appends to it survive a crash
    /// and, until they pass the filled length, change no file size.
    pub(crate) fn create(
        io: &dyn Io,
        dir: &Path,
        number: u64,
        preallocation_bytes: u64,
    ) -> Result<ActiveLog> {
        let file: Arc<dyn IoFile> = Arc::from(io.create_new(&dir.join(log_file_name(number)))?);
        let nonce = new_nonce();
        let end = LOG_HEADER_LEN as u64;
        let mut log = ActiveLog {
            number,
            file,
            offset_end: end,
            offset_synced: end,
            nonce,
            offset_filled: end,
            preallocation_bytes,
            held: HeldFrames::default(),
        };
        log.file.write_all_at(&encode_log_header(nonce), 0)?;
        if preallocation_bytes > 0 {
            log.fill_to(fill_end(end, preallocation_bytes))?;
        }
        log.file.sync_data()?;
        io.sync_dir(dir)?;
        Ok(log)
    }

    /// Makes sure the `len` bytes after the end lie inside the zero-filled length, writing
    /// zeros up to [`ActiveLog::preallocation_bytes`] past them if not (unsynced: the next
    /// commit's sync carries them and the size change, so that the syncs of the commits after
    /// it find the file's size and extents unchanged). Returns the zero bytes written.
    pub(crate) fn reserve(&mut self, len: u64) -> std::io::Result<u64> {
        let need = self.offset_end.saturating_add(len);
        if self.preallocation_bytes == 0 || need <= self.offset_filled {
            return Ok(0);
        }
        self.fill_to(fill_end(need, self.preallocation_bytes))
    }

    /// Writes zeros from the end of the data or the filled length, whichever is further, to
    /// `end`; returns the zero bytes written.
    fn fill_to(&mut self, end: u64) -> std::io::Result<u64> {
        let start = self.offset_filled.max(self.offset_end);
        let mut position = start;
        while position < end {
            let chunk = usize::try_from(end - position).unwrap_or(usize::MAX).min(ZEROS.len());
            self.file.write_all_at(ZEROS.get(..chunk).unwrap_or_default(), position)?;
            position += chunk as u64;
        }
        self.offset_filled = self.offset_filled.max(end);
        Ok(end.saturating_sub(start))
    }

    /// The newest log of a database, reopened for appends after its last intact frame at
    /// `offset_end`, every byte before which is durable, and zeros (if any) from there to
    /// `offset_filled`, the file's length: its fill ahead continues from there.
    fn reopened(
        number: u64,
        file: Box<dyn IoFile>,
        offset_end: u64,
        offset_filled: u64,
        nonce: u64,
        preallocation_bytes: u64,
    ) -> ActiveLog {
        ActiveLog {
            number,
            file: Arc::from(file),
            offset_end,
            offset_synced: offset_end,
            nonce,
            offset_filled: offset_filled.max(offset_end),
            preallocation_bytes,
            held: HeldFrames::default(),
        }
    }

    /// Appends `frame` after the end, held in memory rather than written (for
    /// `Durability::Periodic` and `None`, whose writers never wait for the disk): the held
    /// frames go to the file in one write once [`LOG_BUFFER_BYTES`] are held, or at
    /// [`ActiveLog::write_held`]. A frame of that size or more is written at once, after the
    /// held ones. Returns the zero bytes written ahead.
    pub(crate) fn append_held(&mut self, frame: &[u8]) -> std::io::Result<u64> {
        if frame.len() >= LOG_BUFFER_BYTES {
            let zero_bytes = self.write_held()?;
            let zero_bytes_frame = self.reserve(frame.len() as u64)?;
            self.file.write_all_at(frame, self.offset_end)?;
            self.offset_end += frame.len() as u64;
            return Ok(zero_bytes + zero_bytes_frame);
        }
        if self.held.0.capacity() == 0 {
            // Less than LOG_BUFFER_BYTES are held before a frame of less than that is added.
            self.held.0.reserve_exact(2 * LOG_BUFFER_BYTES);
        }
        self.held.0.extend_from_slice(frame);
        self.offset_end += frame.len() as u64;
        if self.held.0.len() >= LOG_BUFFER_BYTES { self.write_held() } else { Ok(0) }
    }

    /// Writes the held frames to the file (unsynced); returns the zero bytes written ahead.
    /// On an error the held frames are dropped and the end moves back to where they started,
    /// as a crash would leave the log (the caller turns the database read-only).
    pub(crate) fn write_held(&mut self) -> std::io::Result<u64> {
        if self.held.0.is_empty() {
            return Ok(0);
        }
        let start = self.offset_end - self.held.0.len() as u64;
        let written = self.reserve(0).and_then(|zero_bytes| {
            self.file.write_all_at(&self.held.0, start)?;
            Ok(zero_bytes)
        });
        if written.is_err() {
            self.offset_end = start;
        }
        self.held.0.clear();
        written
    }

    /// Whether frames are held in memory, not yet written to the file.
    pub(crate) fn holds_frames(&self) -> bool {
        !self.held.0.is_empty()
    }

    /// Appends the seal that ends this log (not synced: the caller syncs the log next).
    pub(crate) fn append_seal(&mut self) -> std::io::Result<()> {
        self.write_held()?;
        let seal = seal(self.nonce, self.offset_end, self.offset_synced);
        self.reserve(seal.len() as u64)?;
        self.file.write_all_at(&seal, self.offset_end)?;
        self.offset_end += seal.len() as u64;
        Ok(())
    }
}

/// What replaying one log found.
#[derive(Debug)]
pub(crate) struct Replayed {
    /// Frames holding writes (seals and other empty frames not counted).
    pub frame_count: u64,
    pub version_max: Option<Version>,
    /// Where the log's intact frames end.
    pub offset_end: u64,
    /// The newest log, ready for appends after its last intact frame (`Mode::Reuse` only).
    pub active: Option<ActiveLog>,
}

/// How `replay` treats a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A log older than the newest: it must end with its seal; any damage is corruption.
    Older,
    /// The newest log, to be appended to next: a torn tail is truncated, the rest synced,
    /// and the log is returned open for appends, zero-filled `preallocation_bytes` ahead
    /// from then on (a zero tail it has already is kept: appends overwrite it).
    Reuse { preallocation_bytes: u64 },
    /// The newest log of a read-only open: read only. Damage anywhere after the last intact
    /// frame is the end of what is seen, since a writer in another process may be appending
    /// to it right now; nothing is truncated, written or synced.
    ReadOnly,
}

impl Mode {
    /// Which row of the core's damage rule applies to the log.
    fn position(self) -> LogPosition {
        match self {
            Mode::Older => LogPosition::Older,
            Mode::Reuse { .. } => LogPosition::Newest,
            Mode::ReadOnly => LogPosition::NewestReadOnly,
        }
    }
}

/// Replays log `number` into `memtable`. See [`Mode`] for the newest log; an older log that
/// is damaged or does not end with its seal is [`Error::Corruption`]; the rule is the core's
/// (`zverse_core::log::RULES`).
pub(crate) fn replay(
    io: &dyn Io,
    dir: &Path,
    number: u64,
    mode: Mode,
    memtable: &Memtable,
) -> Result<Replayed> {
    let path = dir.join(log_file_name(number));
    let file = if matches!(mode, Mode::Reuse { .. }) {
        io.open_read_write(&path)?
    } else {
        io.open_read(&path)?
    };
    let len = usize::try_from(file.len_bytes()?).unwrap_or(usize::MAX);
    let mut log = Vec::new();
    log.try_reserve_exact(len).map_err(|_| corruption(&path, 0, "log file too large to read"))?;
    log.resize(len, 0);
    file.read_exact_at(&mut log, 0)?;
    let mut replayed = Replayed { frame_count: 0, version_max: None, offset_end: 0, active: None };
    // A log's header is synced (with the zeros written ahead of it) before the manifest
    // records the log, so a recorded log without one was damaged after.
    let mut frames = Frames::new(&log).map_err(|c| Error::corruption(path.clone(), 0, c))?;
    let nonce = frames.nonce();
    let mut pending = Vec::new();
    for frame in frames.by_ref() {
        let version_max = ops_of_frame(&frame, &mut pending).map_err(|(at, what)| {
            corruption(&path, (frame.offset() + FRAME_HEADER_LEN + at) as u64, what)
        })?;
        if pending.len() >= REPLAY_OPS_MAX {
            memtable.insert_group(&mut pending);
            pending.clear();
        }
        if let Some(version) = version_max {
            memtable.cover(version);
        }
        replayed.frame_count += u64::from(!frame.is_seal());
        replayed.version_max = replayed.version_max.max(version_max);
    }
    memtable.insert_group(&mut pending);
    drop(pending);
    let end = frames.end(mode.position());
    replayed.offset_end = end.offset as u64;
    let truncate = match end.verdict {
        Verdict::Corrupt(what) => return Err(corruption(&path, end.offset as u64, what)),
        Verdict::Truncate => true,
        Verdict::End => false,
    };
    if let Mode::Reuse { preallocation_bytes } = mode {
        let mut filled = log.len() as u64;
        if truncate {
            file.set_len(end.offset as u64)?;
            filled = end.offset as u64;
        }
        // Every intact frame (and the zeros after it) is made durable before a frame written
        // after it says so.
        file.sync_data()?;
        replayed.active = Some(ActiveLog::reopened(
            number,
            file,
            end.offset as u64,
            filled,
            nonce,
            preallocation_bytes,
        ));
    }
    Ok(replayed)
}

/// Replay gathers the ops of whole frames until it holds at least this many, then inserts
/// them as one group ([`Memtable::insert_group`]: sorted, searched in lockstep). It bounds
/// replay's memory beyond the log's bytes to this many ops plus one frame's.
const REPLAY_OPS_MAX: usize = 4096;

/// Appends a frame's ops to `ops`, in log order; returns the newest version, or where in the
/// body a record failed to decode (a frame whose checksum matched holds whole records, so that
/// is corruption, not a torn write).
fn ops_of_frame<'a>(
    frame: &Frame<'a>,
    ops: &mut Vec<Op<'a>>,
) -> Result<Option<Version>, (usize, String)> {
    let mut version_max = None;
    for record in frame.records() {
        let record = record.map_err(|bad| {
            let what = format!("record in an intact frame does not decode: {}", bad.cause);
            (bad.offset, what)
        })?;
        ops.extend(record.entries().map(|entry| (entry.key, entry.version, entry.value)));
        version_max = version_max.max(Some(record.version()));
    }
    Ok(version_max)
}

fn corruption(path: &Path, offset: u64, what: impl Into<String>) -> Error {
    Error::Corruption { file: path.to_path_buf(), offset, what: what.into() }
}
