//! Opening a database: the directory checks, the lock, the manifest, leftovers of a crash,
//! and recovery (the manifest's segments opened, its logs replayed into a memtable).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use zverse_core::Version;

use crate::background::write_memtable;
use crate::compaction::Horizons;
use crate::error::{Error, Result};
use crate::io::{Io, IoLock};
use crate::locality::LocalityAdvisor;
use crate::log::{self, ActiveLog, Mode};
use crate::manifest::{
    MANIFEST_NAME, MANIFEST_TEMP_NAME, Manifest, ManifestFile as _, SegmentMeta, Tier,
};
use crate::memtable::Memtable;
use crate::options::Options;
use crate::segment_file::{FenceBudget, HistoryFile, SegmentFile};
use crate::state::{Edit, FILE_NUMBERS_RESERVED, numbers_exhausted, write_edit};

/// The lock file's name.
pub(crate) const LOCK_NAME: &str = "LOCK";
/// How many times a read-only open starts over when the manifest changed under it (a writer
/// in another process flushed or compacted, deleting files the manifest it read named).
const READ_ONLY_ATTEMPTS_MAX: u32 = 8;

/// What an open found and rebuilt, for `Inner::assemble`.
pub(crate) struct Opened {
    pub manifest: Manifest,
    pub recovered: Recovered,
    pub advisor: Arc<LocalityAdvisor>,
    pub fence_budget: Arc<FenceBudget>,
    /// The directory lock: `None` for a read-only open, which takes none.
    pub lock: Option<IoLock>,
    /// The log appended to: `None` for a read-only open.
    pub log: Option<ActiveLog>,
}

/// Whether an open may write: [`Access::ReadOnly`] creates, writes, syncs and deletes
/// nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Writable,
    ReadOnly,
}

/// Opens the database in `dir`: writable (lock, leftovers removed, logs replayed into one
/// memtable, flushing whenever they fill one, the newest log kept for appends) or, with
/// `Options::read_only`, read-only.
pub(crate) fn open(dir: &Path, options: &Options, io: &Arc<dyn Io>) -> Result<Opened> {
    if options.read_only {
        return open_read_only(dir, options, io);
    }
    prepare_dir(io.as_ref(), dir, options)?;
    // Refuse a foreign directory or a manifest that does not decode before locking, so
    // that not even a LOCK file is left.
    refuse_foreign(dir, &io.list_dir(dir)?)?;
    Manifest::read(io.as_ref(), dir)?;
    let dir_lock = io
        .try_lock(&dir.join(LOCK_NAME))?
        .ok_or_else(|| Error::Locked { path: dir.to_path_buf() })?;
    let names = io.list_dir(dir)?;
    refuse_foreign(dir, &names)?;
    // Only a writable open probes (a read-only one writes nothing); a failed probe leaves
    // the backend's default routing: nothing to report.
    let _ = io.probe_dir(dir);
    let mut manifest = if let Some(manifest) = Manifest::read(io.as_ref(), dir)? {
        manifest
    } else {
        // A new database (a crash may have left the first manifest's temporary, which
        // `write` replaces). Its first file numbers are reserved at once.
        let mut manifest = Manifest::default();
        let file_number_next = 1 + FILE_NUMBERS_RESERVED;
        write_edit(io.as_ref(), dir, &mut manifest, Edit::Reserve { file_number_next })?;
        manifest
    };
    let (advisor, fence_budget) = read_parts(options);
    remove_leftovers(io.as_ref(), dir, &manifest, &names)?;
    let recovery = Recovery { io, dir, options, advisor: &advisor, fence_budget: &fence_budget };
    let mut recovered = recover(&recovery, &mut manifest, &names, Access::Writable)?;
    let mut file_number_next = recovered.file_number_next;
    let log = if let Some(log) = recovered.log.take() {
        log
    } else {
        let number = file_number_next;
        file_number_next = number.checked_add(1).ok_or_else(|| numbers_exhausted(dir))?;
        recovered.memtable = Memtable::with_budget(number, options.memtable_bytes_max);
        start_first_log(io.as_ref(), dir, &mut manifest, number, options.log_fill_ahead_bytes())?
    };
    recovered.file_number_next = file_number_next;
    Ok(Opened { manifest, recovered, advisor, fence_budget, lock: Some(dir_lock), log: Some(log) })
}

/// A read-only open: no lock, nothing created, written, synced or deleted. A writer in
/// another process may replace the manifest and delete the files the old one named while
/// this reads them: when recovery fails and the manifest changed meanwhile, it starts over
/// (at most `READ_ONLY_ATTEMPTS_MAX` times).
fn open_read_only(dir: &Path, options: &Options, io: &Arc<dyn Io>) -> Result<Opened> {
    let mut attempt = 1;
    loop {
        let names = io.list_dir(dir)?;
        refuse_foreign(dir, &names)?;
        let manifest = Manifest::read(io.as_ref(), dir)?.ok_or_else(|| {
            let what = format!("no ZVerse database in {}: no MANIFEST", dir.display());
            Error::Io(std::io::Error::new(std::io::ErrorKind::NotFound, what))
        })?;
        let mut read = manifest.clone();
        let (advisor, fence_budget) = read_parts(options);
        let recovery =
            Recovery { io, dir, options, advisor: &advisor, fence_budget: &fence_budget };
        match recover(&recovery, &mut read, &names, Access::ReadOnly) {
            Ok(mut recovered) => {
                // A read-only open hands out no numbers: the manifest's next will do.
                recovered.file_number_next = manifest.file_number_next;
                let (lock, log) = (None, None);
                return Ok(Opened { manifest, recovered, advisor, fence_budget, lock, log });
            }
            Err(error) => {
                let changed = Manifest::read(io.as_ref(), dir).ok().flatten() != Some(manifest);
                if !changed || attempt >= READ_ONLY_ATTEMPTS_MAX {
                    return Err(error);
                }
                attempt += 1;
            }
        }
    }
}

/// Creates the directory if allowed, or checks that it exists.
fn prepare_dir(io: &dyn Io, dir: &Path, options: &Options) -> Result<()> {
    match io.list_dir(dir) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && options.create_if_missing => {
            io.create_dir_all(dir)?;
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

/// Refuses a directory that holds files but no manifest. The lock file and the temporary of a
/// first manifest (a crash while creating the database) do not count. If everything else is
/// logs and segments, it is a database that lost its manifest (`Error::Corruption` naming the
/// missing `MANIFEST`); otherwise it is not a ZVerse database.
fn refuse_foreign(dir: &Path, names: &[String]) -> Result<()> {
    if names.iter().any(|name| name == MANIFEST_NAME) {
        return Ok(());
    }
    let others: Vec<&String> =
        names.iter().filter(|name| *name != LOCK_NAME && *name != MANIFEST_TEMP_NAME).collect();
    if others.is_empty() {
        return Ok(());
    }
    let is_data = |name: &&String| {
        parse_file_number(name, ".log").is_some() || parse_file_number(name, ".seg").is_some()
    };
    if others.iter().all(is_data) {
        return Err(Error::Corruption {
            file: dir.join(MANIFEST_NAME),
            offset: 0,
            what: "missing: the directory holds ZVerse logs or segments but no manifest".into(),
        });
    }
    Err(Error::NotADatabase { path: dir.to_path_buf() })
}

/// The first number for a new file: above every file the manifest records, skipping numbers
/// a file in the directory has. (Unrecorded files below `file_number_next` were deleted as
/// leftovers; files numbered at or above it are not the engine's: skipped, never used to
/// derive the next number.)
fn first_unused_number(dir: &Path, manifest: &Manifest, names: &[String]) -> Result<u64> {
    let used: std::collections::BTreeSet<u64> = names
        .iter()
        .filter_map(|name| parse_file_number(name, ".log").or(parse_file_number(name, ".seg")))
        .collect();
    let recorded =
        manifest.logs.iter().copied().chain(manifest.segments.iter().map(|m| m.file_number));
    let mut number = match recorded.max() {
        Some(max) => max.checked_add(1).ok_or_else(|| numbers_exhausted(dir))?,
        None => 1,
    };
    while used.contains(&number) {
        number = number.checked_add(1).ok_or_else(|| numbers_exhausted(dir))?;
    }
    Ok(number)
}

/// Starts the first log of a database whose manifest records none (a new one, or one whose
/// creation a crash interrupted): reserves its number if needed, creates it, then records it.
fn start_first_log(
    io: &dyn Io,
    dir: &Path,
    manifest: &mut Manifest,
    number: u64,
    preallocation_bytes: u64,
) -> Result<ActiveLog> {
    if number >= manifest.file_number_next {
        let file_number_next =
            number.checked_add(1 + FILE_NUMBERS_RESERVED).ok_or_else(|| numbers_exhausted(dir))?;
        write_edit(io, dir, manifest, Edit::Reserve { file_number_next })?;
    }
    let log = ActiveLog::create(io, dir, number, preallocation_bytes)?;
    write_edit(io, dir, manifest, Edit::AddLog { number })?;
    Ok(log)
}

/// The number in a file name `{number:020}{suffix}`.
pub(crate) fn parse_file_number(name: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_suffix(suffix)?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())?
}

/// Removes a file a crash left behind; one already gone is fine.
fn remove_if_present(io: &dyn Io, path: &Path) -> Result<()> {
    match io.remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error.into()),
        _ => Ok(()),
    }
}

/// What recovery rebuilt.
pub(crate) struct Recovered {
    pub memtable: Memtable,
    /// Level 0, newest first.
    pub segments: Vec<Arc<SegmentFile>>,
    /// Levels 1 and down, each in key order.
    pub levels: Vec<Vec<Arc<SegmentFile>>>,
    /// History segments, newest first.
    pub history: Vec<Arc<HistoryFile>>,
    pub version_max: Version,
    /// The newest log, open for appends (writable opens whose manifest records a log).
    pub log: Option<ActiveLog>,
    /// Where the newest log's intact frames end.
    pub log_bytes: u64,
    /// The next free file number after recovery's (above every recorded one).
    pub file_number_next: u64,
    /// Memtables recovery flushed because the logs held more than `memtable_bytes_max`.
    pub flush_count: u64,
}

/// What every open segment of a database shares: the locality advisor and the fence keys'
/// memory budget, made anew for each open (and each read-only attempt).
fn read_parts(options: &Options) -> (Arc<LocalityAdvisor>, Arc<FenceBudget>) {
    let advisor =
        LocalityAdvisor::new(options.locality_advisor, options.segment_block_bytes as usize);
    (Arc::new(advisor), Arc::new(FenceBudget::new(options.fence_keys_budget_bytes())))
}

/// Where recovery works, and with which options.
#[derive(Clone, Copy)]
struct Recovery<'a> {
    io: &'a Arc<dyn Io>,
    dir: &'a Path,
    options: &'a Options,
    advisor: &'a Arc<LocalityAdvisor>,
    fence_budget: &'a Arc<FenceBudget>,
}

/// During recovery, once the replayed logs fill a memtable: writes it as segments and records
/// them in the manifest, dropping the logs replayed (below `log_number_min`), so that recovery
/// never holds more than one memtable, however many logs a crash left. The segments' numbers
/// are reserved in the manifest first (a generous count: the memtable's bytes over the target
/// segment size, plus slack), from `file_number_next` on.
fn flush_during_recovery(
    recovery: &Recovery<'_>,
    manifest: &mut Manifest,
    memtable: &Memtable,
    log_number_min: u64,
    file_number_next: &mut u64,
) -> Result<Vec<Arc<SegmentFile>>> {
    let Recovery { io, dir, options, advisor, fence_budget } = *recovery;
    let outputs_max = memtable.size_bytes() / options.segment_bytes_target.max(1) + 16;
    let reserved = file_number_next
        .checked_add(outputs_max)
        .and_then(|n| n.checked_add(FILE_NUMBERS_RESERVED))
        .ok_or_else(|| numbers_exhausted(dir))?;
    if reserved > manifest.file_number_next {
        write_edit(io.as_ref(), dir, manifest, Edit::Reserve { file_number_next: reserved })?;
    }
    let counter = AtomicU64::new(*file_number_next);
    let allocate = Box::new(|| counter.fetch_add(1, Ordering::Relaxed));
    let (metas, new_files) = write_memtable(io.as_ref(), dir, options, allocate, memtable)?;
    *file_number_next = counter.load(Ordering::Relaxed);
    let segments = metas
        .iter()
        .map(|meta| SegmentFile::open(io, dir, *meta, advisor, fence_budget).map(Arc::new))
        .collect::<Result<Vec<_>>>()?;
    let mut segment_metas: Vec<SegmentMeta> = metas.iter().rev().copied().collect();
    segment_metas.extend_from_slice(&manifest.segments);
    let edit = Edit::Segments {
        segments: segment_metas,
        log_number_min: Some(log_number_min),
        file_number_next: *file_number_next,
        version_last: memtable.version_last(),
        horizons: Horizons::default(),
    };
    new_files.keep();
    write_edit(io.as_ref(), dir, manifest, edit)?;
    ::log::info!(
        "zverse: recovery flushed {} versions into {} segments",
        memtable.entry_count(),
        segments.len()
    );
    Ok(segments)
}

/// Opens the manifest's segments and replays its logs, oldest first, into one memtable. Every
/// file the manifest records must exist: a missing one is [`Error::Corruption`] naming it.
/// [`Access::Writable`]: the newest log is kept for appends (its torn tail cut), and the
/// logs replayed are flushed whenever they fill a memtable.
fn recover(
    recovery: &Recovery<'_>,
    manifest: &mut Manifest,
    names: &[String],
    access: Access,
) -> Result<Recovered> {
    let Recovery { io, dir, options, .. } = *recovery;
    for &number in &manifest.logs {
        let name = log::log_file_name(number);
        if !names.contains(&name) {
            return Err(Error::Corruption {
                file: dir.join(name),
                offset: 0,
                what: "missing: the manifest records this log".into(),
            });
        }
    }
    let (mut segments, levels, history) = open_segments(recovery, &manifest.segments)?;
    let log_first = manifest.logs.first().copied().unwrap_or(0);
    let mut memtable = Memtable::with_budget(log_first, recovery.options.memtable_bytes_max);
    let mut version_max = manifest.version_last;
    let mut active = None;
    let mut log_bytes = 0;
    let mut flush_count = 0;
    let mut file_number_next = first_unused_number(dir, manifest, names)?;
    let logs = manifest.logs.clone();
    for (index, &number) in logs.iter().enumerate() {
        let log_next = logs.get(index + 1).copied();
        let mode = match (log_next, access) {
            (Some(_), _) => Mode::Older,
            (None, Access::Writable) => {
                Mode::Reuse { preallocation_bytes: options.log_fill_ahead_bytes() }
            }
            (None, Access::ReadOnly) => Mode::ReadOnly,
        };
        let replayed = log::replay(io.as_ref(), dir, number, mode, &memtable)?;
        version_max = version_max.max(replayed.version_max.unwrap_or(Version::ZERO));
        active = replayed.active.or(active);
        log_bytes = replayed.offset_end;
        if let Some(log_next) = log_next
            && access == Access::Writable
            && memtable.size_bytes() >= options.memtable_bytes_max
        {
            // Logs hold whole commit groups, so the logs replayed so far are covered.
            let flushed = flush_during_recovery(
                recovery,
                manifest,
                &memtable,
                log_next,
                &mut file_number_next,
            )?;
            segments.extend(flushed);
            flush_count += 1;
            for &old in &logs[..=index] {
                remove_if_present(io.as_ref(), &dir.join(log::log_file_name(old)))?;
            }
            memtable = memtable.successor(log_next);
        }
    }
    crate::compaction::sort_newest_first(&mut segments);
    let current = segments.iter().chain(levels.iter().flatten());
    for meta in current.map(|s| s.meta()).chain(history.iter().map(|h| h.meta())) {
        version_max = version_max.max(meta.version_max);
    }
    let log = active;
    Ok(Recovered {
        memtable,
        segments,
        levels,
        history,
        version_max,
        log,
        log_bytes,
        file_number_next,
        flush_count,
    })
}

/// The tiers of the manifest's segments, opened: level 0 (unsorted), the levels (each in key
/// order) and history. Key bounds that overlap within a level are corruption.
type OpenedTiers = (Vec<Arc<SegmentFile>>, Vec<Vec<Arc<SegmentFile>>>, Vec<Arc<HistoryFile>>);

fn open_segments(recovery: &Recovery<'_>, metas: &[SegmentMeta]) -> Result<OpenedTiers> {
    let Recovery { io, dir, advisor, fence_budget, .. } = *recovery;
    let (mut level_0, mut levels, mut history) = (Vec::new(), Vec::new(), Vec::new());
    for meta in metas {
        match meta.tier {
            Tier::History => history.push(Arc::new(HistoryFile::open(io, dir, *meta)?)),
            Tier::Level(level) => {
                let segment = Arc::new(SegmentFile::open(io, dir, *meta, advisor, fence_budget)?);
                let Some(index) = usize::from(level).checked_sub(1) else {
                    level_0.push(segment);
                    continue;
                };
                if levels.len() <= index {
                    levels.resize(index + 1, Vec::new());
                }
                levels[index].push(segment);
            }
        }
    }
    for level in &mut levels {
        level.sort_by(|a: &Arc<SegmentFile>, b| a.key_first().cmp(b.key_first()));
        if let Some(pair) = level.windows(2).find(|pair| pair[0].key_last() >= pair[1].key_first())
        {
            return Err(Error::Corruption {
                file: dir.join(MANIFEST_NAME),
                offset: 0,
                what: format!(
                    "segments {} and {} of level {} overlap in keys",
                    pair[0].meta().file_number,
                    pair[1].meta().file_number,
                    match pair[0].meta().tier {
                        Tier::Level(level) => level,
                        Tier::History => 0,
                    }
                ),
            });
        }
    }
    crate::state::sort_history_newest_first(&mut history);
    Ok((level_0, levels, history))
}

/// Deletes what a crash left behind: `MANIFEST.tmp`, and logs and segments the manifest does
/// not record whose numbers it reserved (so the engine made them: a log created before it was
/// recorded, a segment written before it was, a log or segment retired but not yet deleted).
/// A file numbered at or above the manifest's `file_number_next` is not the engine's and is
/// left alone.
fn remove_leftovers(io: &dyn Io, dir: &Path, manifest: &Manifest, names: &[String]) -> Result<()> {
    for name in names {
        let log_number = parse_file_number(name, ".log");
        let segment_number = parse_file_number(name, ".seg");
        let leftover_log = log_number
            .is_some_and(|n| n < manifest.file_number_next && !manifest.logs.contains(&n));
        let leftover_segment = segment_number.is_some_and(|n| {
            n < manifest.file_number_next
                && !manifest.segments.iter().any(|meta| meta.file_number == n)
        });
        if leftover_log || leftover_segment || name == MANIFEST_TEMP_NAME {
            remove_if_present(io, &dir.join(name))?;
        }
    }
    Ok(())
}

#[cfg(all(test, not(loom)))]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use crate::Db;
    use crate::options::{Durability, Options};

    /// A crash leaves many logs no segment covers (here: every flush is held back while the
    /// logs are copied). Recovery flushes whenever the replayed logs
    /// fill a memtable, so it never holds more than one memtable and one log.
    #[test]
    fn recovery_of_logs_larger_than_the_memtable_limit_flushes_as_it_goes() {
        const MEMTABLE_BYTES: u64 = 16 << 10;
        let options =
            || Options::default().durability(Durability::None).memtable_bytes_max(MEMTABLE_BYTES);
        let (dir, copy) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let db = Db::open(dir.path(), options()).unwrap();
        let key = |index: u32| format!("key{index:05}").into_bytes();
        {
            db.inner.flush_paused.store(true, std::sync::atomic::Ordering::Release);
            for index in 0..2_000 {
                db.put(&key(index), &[7; 100]).unwrap();
            }
            let log_count = db.stats().memtable_count;
            assert!(log_count >= 10, "{log_count} memtables wait for their flush");
            // The active log holds its newest frames in memory (`Durability::None`).
            db.inner.sync_log().unwrap();
            for entry in std::fs::read_dir(dir.path()).unwrap() {
                let name = entry.unwrap().file_name();
                if name != "LOCK" {
                    std::fs::copy(dir.path().join(&name), copy.path().join(&name)).unwrap();
                }
            }
        }
        drop(db);
        let db = Db::open(copy.path(), options()).unwrap();
        let stats = db.stats();
        assert!(stats.flushes >= 5, "recovery flushed {} times", stats.flushes);
        assert!(stats.memtable_bytes <= 3 * MEMTABLE_BYTES, "{stats:?}");
        for index in 0..2_000 {
            assert_eq!(db.get(&key(index)).unwrap().as_deref(), Some(&[7; 100][..]), "{index}");
        }
        drop(db);
        let db = Db::open(copy.path(), options()).unwrap();
        assert_eq!(db.get(&key(1_999)).unwrap().as_deref(), Some(&[7; 100][..]));
        assert_eq!(db.history(&key(5)).unwrap().count(), 1, "no version replayed twice");
    }
}
