//! The shared state behind a [`Db`](crate::Db), also held by snapshots, iterators and the
//! background threads: what every other room of the engine reaches through one `Arc<Inner>`.
//! `db.rs` is the facade over it; `stats.rs`, `check.rs` and `checkpoint.rs` read it without
//! importing the facade.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use zverse_core::Version;

use crate::background::Background;
use crate::commit::Stage;
use crate::error::{Error, Result};
use crate::io::{Io, IoLock};
use crate::locality::LocalityAdvisor;
use crate::options::{Durability, Options};
use crate::pins::Pins;
use crate::recovery::{self, Opened};
use crate::segment_file::FenceBudget;
use crate::state::State;
use crate::tiers::Tiers;
use crate::transaction::RecentWrites;
use crate::write::WritePath;

/// The shared state behind a [`Db`], also held by snapshots and iterators.
#[derive(Debug)]
pub(crate) struct Inner {
    pub dir: PathBuf,
    pub io: Arc<dyn Io>,
    pub options: Options,
    /// The directory lock, released by `close` (snapshots may outlive it). `None` for a
    /// read-only open, which takes none.
    pub(crate) lock: Mutex<Option<IoLock>>,
    pub(crate) stage: Stage,
    /// The clock, the watermark, the active log and the stall (`write.rs`).
    pub(crate) write: WritePath,
    /// The tiers, the manifest, file numbers, horizons and the read-only latch.
    pub(crate) state: State,
    /// The newest version written per bucket of keys: the conflict check's shortcut.
    pub(crate) recent_writes: RecentWrites,
    /// Versions pinned by live snapshots, with their counts.
    pub(crate) pins: Pins,
    /// The newest version a pin kept in a history segment (the top of a `GcStamp::pinned`):
    /// releasing a pin below it wakes the compaction thread, whose history GC may now drop
    /// what the pin kept. Only rises.
    pub(crate) pinned_history_max: AtomicU64,
    pub(crate) closed: AtomicBool,
    /// Checkpoints copying logs now: while any runs, flushes leave retired logs in place.
    pub(crate) checkpoints_running: AtomicUsize,
    /// The flush and compaction threads' requests and rounds.
    pub(crate) background: Background,
    pub counters: EngineCounters,
    /// madvise hints from the reads, shared with every open segment.
    pub advisor: Arc<LocalityAdvisor>,
    /// The memory the open segments' fence keys share (`Options::fence_keys_bytes_max`).
    pub fence_budget: Arc<FenceBudget>,
    /// Tests only: flushes wait while set (sealed memtables and their logs pile up).
    #[cfg(test)]
    pub(crate) flush_paused: AtomicBool,
}

/// What the engine did since open (writes, syncs, flushes, compactions, stalls), for `stats()`.
#[derive(Debug, Default)]
pub(crate) struct EngineCounters {
    pub bytes_written_log: AtomicU64,
    pub bytes_written_segments: AtomicU64,
    pub bytes_user: AtomicU64,
    pub commit_groups: AtomicU64,
    pub commit_records: AtomicU64,
    pub flushes: AtomicU64,
    pub compactions: AtomicU64,
    pub compaction_failures: AtomicU64,
    /// Bytes of history segments compaction wrote (the versions it demoted).
    pub bytes_demoted: AtomicU64,
    pub write_stalls: AtomicU64,
    pub write_stall_micros: AtomicU64,
    pub write_slowdowns: AtomicU64,
    /// Bytes of segment blocks `changes` queries read (shared with their iterators).
    pub changes_bytes_read: Arc<AtomicU64>,
}

impl Inner {
    /// Opens the database in `dir` (see `recovery.rs`) and assembles its state.
    pub(crate) fn open(dir: &Path, options: Options, io: Arc<dyn Io>) -> Result<Inner> {
        let opened = recovery::open(dir, &options, &io)?;
        Ok(Inner::assemble(dir, options, io, opened))
    }

    /// The state of an open database around what its open found and recovered.
    pub(crate) fn assemble(dir: &Path, options: Options, io: Arc<dyn Io>, opened: Opened) -> Inner {
        let Opened { manifest, recovered, advisor, fence_budget, lock: dir_lock, log } = opened;
        let tiers = Tiers::new(
            Arc::new(recovered.memtable),
            Vec::new(),
            recovered.segments,
            recovered.levels,
            recovered.history,
        );
        let file_number_next = recovered.file_number_next;
        let db_state = State::new(Arc::clone(&io), dir, manifest, tiers, file_number_next);
        // Leaders let late joiners board only where a group shares a sync.
        let stage = Stage::new(options.durability == Durability::Sync);
        Inner {
            dir: dir.to_path_buf(),
            io,
            options,
            lock: Mutex::new(dir_lock),
            stage,
            write: WritePath::new(recovered.version_max, log, recovered.log_bytes),
            state: db_state,
            recent_writes: RecentWrites::default(),
            pins: Pins::default(),
            pinned_history_max: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            checkpoints_running: AtomicUsize::new(0),
            background: Background::default(),
            counters: EngineCounters {
                flushes: AtomicU64::new(recovered.flush_count),
                ..EngineCounters::default()
            },
            advisor,
            fence_budget,
            #[cfg(test)]
            flush_paused: AtomicBool::new(false),
        }
    }

    /// The tiers as they are now (an owned `Arc`; readers of one call use `tiers_ref`).
    pub(crate) fn tiers(&self) -> Arc<Tiers> {
        self.state.tiers()
    }

    /// The newest version a reader may read at: every version at or below it is applied.
    pub(crate) fn visible_version(&self) -> Version {
        self.write.visible_version()
    }

    /// The retention horizon: every read at or above it is exact.
    pub(crate) fn horizon(&self) -> Version {
        self.state.horizon()
    }

    /// Refuses a read as of `version` below the horizon, unless a live snapshot pins exactly
    /// `version` (compaction keeps every version a read there needs). Call it after taking
    /// the tiers: a compaction raises the horizon before it swaps them.
    pub(crate) fn check_horizon(&self, version: Version) -> Result<()> {
        if self.is_exact(version) {
            return Ok(());
        }
        Err(Error::BelowHorizon { version, horizon: self.horizon() })
    }

    /// Whether every read as of `version` is exact: at or above the horizon, or a version a
    /// live snapshot pins.
    pub(crate) fn is_exact(&self, version: Version) -> bool {
        version >= self.horizon() || self.pins.contains(version)
    }

    pub(crate) fn log_bytes(&self) -> u64 {
        self.write.log_bytes()
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        self.check_open()?;
        if self.options.read_only {
            return Err(Error::OpenedReadOnly);
        }
        match self.state.read_only_reason() {
            Some(reason) => Err(Error::ReadOnly(reason)),
            None => Ok(()),
        }
    }

    /// Turns the database read-only for `reason` and returns the error writers get.
    pub(crate) fn fail(&self, reason: String) -> Error {
        let (reason, first) = self.state.latch_read_only(reason);
        if first {
            ::log::error!("zverse: {} turned read-only: {reason}", self.dir.display());
        }
        self.wake_stalled_writers();
        Error::ReadOnly(reason)
    }

    /// Whether `close` has started.
    pub(crate) fn is_closing(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// A new file number (see [`State::allocate_file_number`]); a failed reservation turns
    /// the database read-only.
    pub(crate) fn allocate_file_number(&self) -> u64 {
        self.state.allocate_file_number().unwrap_or_else(|unreserved| {
            let _ = self.fail(unreserved.reason);
            unreserved.number
        })
    }
}
