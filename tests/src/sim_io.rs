//! [`SimIo`]: an in-memory disk for crash tests. It keeps what was synced and, when the power
//! fails, drops, keeps or tears what was not, in the ways real disks do.
//!
//! A test runs a workload on a `SimIo` with [`SimIo::crash_at`] set to the k-th I/O call; at
//! that call the power fails and every later call errors. [`SimIo::after_crash`] then gives
//! the disk as a restarted machine would find it, under a [`CrashVariant`]:
//! - file bytes written since the file's last `sync_data` are lost, kept, kept sector by
//!   sector at random, or kept up to a torn last write;
//! - directory entries created, renamed or removed since the directory's last `sync_dir` are
//!   lost or kept.
//!
//! Directories themselves are durable when created (the engine creates its one directory once,
//! before anything is written into it).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use zverse::io::{Io, IoFile, IoLock, Mapping};

/// The unit a disk writes atomically: a sector is either old or new after a power failure.
pub const SECTOR_BYTES: u64 = 512;

/// What survives a power failure of the bytes and names that were not synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashVariant {
    /// Every unsynced write and directory change is lost.
    LoseUnsynced,
    /// Every unsynced write and directory change made it to disk after all.
    KeepUnsynced,
    /// Each sector of each unsynced write survives with probability 1/2; directory changes are
    /// lost.
    RandomSectors {
        /// Seed of the coin flips, printed by tests on failure.
        seed: u64,
    },
    /// Every unsynced write but the last of each file survives; the last is cut after a random
    /// number of whole sectors and the sector at the cut holds garbage. Directory changes are
    /// kept.
    TornLastWrite {
        /// Seed of the cut and the garbage, printed by tests on failure.
        seed: u64,
    },
}

/// The simulated disk. Clones share the disk.
#[derive(Clone, Debug, Default)]
pub struct SimIo {
    disk: Arc<Mutex<Disk>>,
}

#[derive(Debug, Default)]
struct Disk {
    files: HashMap<u64, FileData>,
    file_id_next: u64,
    /// Directory entries as the running program sees them.
    names: BTreeMap<PathBuf, u64>,
    /// Directory entries as a restarted machine would find them.
    names_durable: BTreeMap<PathBuf, u64>,
    dirs: BTreeSet<PathBuf>,
    locks: BTreeSet<PathBuf>,
    call_count: u64,
    crash_at_call: Option<u64>,
    crashed: bool,
}

#[derive(Clone, Debug, Default)]
struct FileData {
    durable: Vec<u8>,
    current: Vec<u8>,
    /// Changes since the last sync, oldest first.
    unsynced: Vec<Change>,
}

#[derive(Clone, Debug)]
enum Change {
    Write { offset: u64, bytes: Vec<u8> },
    SetLen(u64),
}

impl SimIo {
    /// An empty disk.
    #[must_use]
    pub fn new() -> SimIo {
        SimIo::default()
    }

    /// The number of I/O calls made so far.
    #[must_use]
    pub fn call_count(&self) -> u64 {
        self.lock_disk().call_count
    }

    /// Makes the power fail at I/O call number `call` (counting from 0 on this disk): that call
    /// and every later one fail without effect.
    pub fn crash_at(&self, call: u64) {
        self.lock_disk().crash_at_call = Some(call);
    }

    /// Whether the power has failed.
    #[must_use]
    pub fn has_crashed(&self) -> bool {
        self.lock_disk().crashed
    }

    /// The disk as a restarted machine finds it, under `variant`: a fresh `SimIo` with no
    /// locks, no open files and no crash scheduled.
    #[must_use]
    pub fn after_crash(&self, variant: CrashVariant) -> SimIo {
        let disk = self.lock_disk();
        let mut rng = fastrand::Rng::with_seed(match variant {
            CrashVariant::RandomSectors { seed } | CrashVariant::TornLastWrite { seed } => seed,
            _ => 0,
        });
        let names = match variant {
            CrashVariant::KeepUnsynced | CrashVariant::TornLastWrite { .. } => &disk.names,
            CrashVariant::LoseUnsynced | CrashVariant::RandomSectors { .. } => &disk.names_durable,
        };
        let mut files = HashMap::new();
        for id in names.values() {
            let file = &disk.files[id];
            let content = file.content_after_crash(variant, &mut rng);
            files.entry(*id).or_insert(FileData {
                durable: content.clone(),
                current: content,
                unsynced: Vec::new(),
            });
        }
        let restarted = Disk {
            files,
            file_id_next: disk.file_id_next,
            names: names.clone(),
            names_durable: names.clone(),
            dirs: disk.dirs.clone(),
            ..Disk::default()
        };
        SimIo { disk: Arc::new(Mutex::new(restarted)) }
    }

    /// The current bytes of the file at `path`, if it exists (not an I/O call).
    #[must_use]
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let disk = self.lock_disk();
        disk.names.get(path).map(|id| disk.files[id].current.clone())
    }

    fn lock_disk(&self) -> MutexGuard<'_, Disk> {
        // A panicking test thread poisons the lock; the disk itself is still consistent
        // (every change is applied under the lock in one step), so keep going.
        self.disk.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts an I/O call and fails it if the power has failed.
    fn enter(&self) -> io::Result<MutexGuard<'_, Disk>> {
        let mut disk = self.lock_disk();
        if disk.crash_at_call == Some(disk.call_count) {
            disk.crashed = true;
        }
        disk.call_count += 1;
        if disk.crashed {
            return Err(io::Error::other("simulated power failure"));
        }
        Ok(disk)
    }
}

impl FileData {
    fn content_after_crash(&self, variant: CrashVariant, rng: &mut fastrand::Rng) -> Vec<u8> {
        let mut content = self.durable.clone();
        let last_write = self.unsynced.iter().rposition(|c| matches!(c, Change::Write { .. }));
        for (index, change) in self.unsynced.iter().enumerate() {
            match (variant, change) {
                (CrashVariant::LoseUnsynced, _) => {}
                (_, Change::SetLen(len)) => {
                    content
                        .resize(usize::try_from(*len).expect("simulated files fit in memory"), 0);
                }
                (CrashVariant::KeepUnsynced, Change::Write { offset, bytes }) => {
                    apply_write(&mut content, *offset, bytes);
                }
                (CrashVariant::RandomSectors { .. }, Change::Write { offset, bytes }) => {
                    for (sector_offset, sector) in sectors(*offset, bytes) {
                        if rng.bool() {
                            apply_write(&mut content, sector_offset, sector);
                        }
                    }
                }
                (CrashVariant::TornLastWrite { .. }, Change::Write { offset, bytes }) => {
                    if Some(index) == last_write {
                        apply_torn_write(&mut content, *offset, bytes, rng);
                    } else {
                        apply_write(&mut content, *offset, bytes);
                    }
                }
            }
        }
        content
    }
}

/// Splits a write at sector boundaries of the file.
fn sectors(offset: u64, bytes: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    let mut position = offset;
    let mut rest = bytes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let to_boundary = SECTOR_BYTES - position % SECTOR_BYTES;
        let len = usize::try_from(to_boundary).map_or(rest.len(), |b| b.min(rest.len()));
        let (sector, tail) = rest.split_at(len);
        let item = (position, sector);
        position += len as u64;
        rest = tail;
        Some(item)
    })
}

fn apply_write(content: &mut Vec<u8>, offset: u64, bytes: &[u8]) {
    let start = usize::try_from(offset).expect("simulated files fit in memory");
    let end = start + bytes.len();
    if content.len() < end {
        content.resize(end, 0);
    }
    content[start..end].copy_from_slice(bytes);
}

/// Applies a random prefix of the write's sectors, then garbage over the sector at the cut.
fn apply_torn_write(content: &mut Vec<u8>, offset: u64, bytes: &[u8], rng: &mut fastrand::Rng) {
    let pieces: Vec<(u64, &[u8])> = sectors(offset, bytes).collect();
    let kept = rng.usize(0..=pieces.len());
    for &(sector_offset, sector) in &pieces[..kept] {
        apply_write(content, sector_offset, sector);
    }
    if let Some(&(sector_offset, sector)) = pieces.get(kept) {
        let garbage: Vec<u8> = sector.iter().map(|_| rng.u8(..)).collect();
        apply_write(content, sector_offset, &garbage);
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{} not found", path.display()))
}

/// A file opened on a [`SimIo`].
#[derive(Debug)]
pub struct SimFile {
    io: SimIo,
    id: u64,
    writable: bool,
}

/// A lock taken on a [`SimIo`], released on drop.
#[derive(Debug)]
pub struct SimLock {
    io: SimIo,
    path: PathBuf,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        self.io.lock_disk().locks.remove(&self.path);
    }
}

/// A copy of a file's bytes, taken when it was mapped (the engine maps only immutable files).
#[derive(Debug)]
pub struct SimMapping(Box<[u8]>);

impl Mapping for SimMapping {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl SimIo {
    fn open(&self, path: &Path, writable: bool) -> io::Result<Box<dyn IoFile>> {
        let disk = self.enter()?;
        let id = *disk.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(Box::new(SimFile { io: self.clone(), id, writable }))
    }
}

impl Io for SimIo {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut disk = self.enter()?;
        for ancestor in dir.ancestors() {
            disk.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let disk = self.enter()?;
        if !disk.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let names = disk.names.keys().filter(|path| path.parent() == Some(dir));
        Ok(names
            .filter_map(|path| Some(path.file_name()?.to_string_lossy().into_owned()))
            .collect())
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<IoLock>> {
        let mut disk = self.enter()?;
        if !disk.locks.insert(path.to_path_buf()) {
            return Ok(None);
        }
        Ok(Some(Box::new(SimLock { io: self.clone(), path: path.to_path_buf() })))
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        let mut disk = self.enter()?;
        let parent_exists = path.parent().is_some_and(|parent| disk.dirs.contains(parent));
        if !parent_exists {
            return Err(not_found(path));
        }
        if disk.names.contains_key(path) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, path.display().to_string()));
        }
        let id = disk.file_id_next;
        disk.file_id_next += 1;
        disk.files.insert(id, FileData::default());
        disk.names.insert(path.to_path_buf(), id);
        Ok(Box::new(SimFile { io: self.clone(), id, writable: true }))
    }

    fn open_read_write(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        self.open(path, true)
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        self.open(path, false)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.enter()?;
        disk.names.remove(path).map(drop).ok_or_else(|| not_found(path))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut disk = self.enter()?;
        let id = disk.names.remove(from).ok_or_else(|| not_found(from))?;
        disk.names.insert(to.to_path_buf(), id);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut disk = self.enter()?;
        let Disk { names, names_durable, .. } = &mut *disk;
        names_durable.retain(|path, _| path.parent() != Some(dir));
        for (path, id) in names.iter().filter(|(path, _)| path.parent() == Some(dir)) {
            names_durable.insert(path.clone(), *id);
        }
        Ok(())
    }
}

impl SimFile {
    fn with_data<R>(&self, write: bool, f: impl FnOnce(&mut FileData) -> R) -> io::Result<R> {
        if write && !self.writable {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "file opened read-only"));
        }
        let mut disk = self.io.enter()?;
        Ok(f(disk.files.get_mut(&self.id).expect("open files are never forgotten")))
    }
}

impl IoFile for SimFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.with_data(false, |data| {
            let start = usize::try_from(offset).ok()?;
            let bytes = data.current.get(start..start.checked_add(buf.len())?)?;
            buf.copy_from_slice(bytes);
            Some(())
        })?
        .ok_or_else(|| io::ErrorKind::UnexpectedEof.into())
    }

    fn write_all_at(&self, bytes: &[u8], offset: u64) -> io::Result<()> {
        self.with_data(true, |data| {
            apply_write(&mut data.current, offset, bytes);
            data.unsynced.push(Change::Write { offset, bytes: bytes.to_vec() });
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        self.with_data(false, |data| {
            data.durable.clone_from(&data.current);
            data.unsynced.clear();
        })
    }

    fn len_bytes(&self) -> io::Result<u64> {
        self.with_data(false, |data| data.current.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.with_data(true, |data| {
            data.current.resize(usize::try_from(len).expect("simulated files fit in memory"), 0);
            data.unsynced.push(Change::SetLen(len));
        })
    }

    fn map(&self) -> io::Result<Box<dyn Mapping>> {
        self.with_data(false, |data| -> Box<dyn Mapping> {
            Box::new(SimMapping(data.current.as_slice().into()))
        })
    }
}
