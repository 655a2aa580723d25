//! [`SimIo`]: an in-memory disk for crash tests. It keeps what was synced and, when the power
//! fails, drops, keeps or tears what was not, in the ways real disks do.
//!
//! A test runs a workload on a `SimIo` with [`SimIo::crash_at`] set to the k-th I/O call; at
//! that call the power fails and every later call errors. [`SimIo::after_crash`] then gives
//! the disk as a restarted machine would find it, under a [`CrashVariant`]:
//! - file bytes written since the file's last `sync_data` are lost, kept, kept sector by
//!   sector at random, or kept up to a torn last write;
//! - directory entries created, renamed or removed since the directory's last `sync_dir` are
//!   lost, kept, or each kept or lost on its own (a rename whole: both names or neither).
//!
//! Directories themselves are durable when created (the engine creates its one directory once,
//! before anything is written into it), and a rename stays inside one directory. A directory
//! (without subdirectories) can be renamed too: like its creation, the rename is durable at
//! once, and the entries inside move with it (a checkpoint renames its finished copy).
//!
//! [`SimIo::inject`] makes chosen I/O calls fail instead, the way a sick or full disk does
//! ([`Fault`]): once or persistently, with an error, a partial write, or a failed sync whose
//! unsynced bytes never reach the disk (Linux drops dirty pages whose writeback failed).

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
    /// Every unsynced write survives; each unsynced directory change (create, rename, remove)
    /// survives with probability 1/2, independently of the others, a rename whole (the new
    /// name and the old one's removal, or neither).
    RandomDirOps {
        /// Seed of the coin flips, printed by tests on failure.
        seed: u64,
    },
}

/// A failure [`SimIo::inject`] makes an I/O call return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Any call fails with `EIO`, without effect.
    Eio,
    /// A call that needs space (a write, a length change, a new file) fails with `ENOSPC`,
    /// without effect.
    NoSpace,
    /// A write stores only a prefix of its bytes (about half, never all), then fails with
    /// `EIO`.
    ShortWrite,
    /// A `sync_data` or `sync_dir` fails with `EIO`. The file's unsynced bytes (or the
    /// directory's unsynced changes) are dropped from the disk's future: the running program
    /// still reads them, but no later sync makes them durable, and a restart never finds them.
    SyncFailure,
}

impl Fault {
    /// Every fault, for sweeps.
    pub const ALL: [Fault; 4] = [Fault::Eio, Fault::NoSpace, Fault::ShortWrite, Fault::SyncFailure];

    fn applies_to(self, call: Call) -> bool {
        match self {
            Fault::Eio => true,
            Fault::NoSpace => matches!(call, Call::Write | Call::SetLen | Call::Create),
            Fault::ShortWrite => call == Call::Write,
            Fault::SyncFailure => matches!(call, Call::SyncData | Call::SyncDir),
        }
    }

    fn error(self) -> io::Error {
        match self {
            Fault::NoSpace => io::Error::from_raw_os_error(28), // ENOSPC
            Fault::Eio | Fault::ShortWrite | Fault::SyncFailure => io::Error::from_raw_os_error(5),
        }
    }
}

/// The kinds of I/O call, as far as faults tell them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    Write,
    SetLen,
    Create,
    SyncData,
    SyncDir,
    Other,
}

/// A scheduled fault: the first call it applies to at or after call number `from` fails; with
/// `persistent`, every such call after it too.
#[derive(Clone, Copy, Debug)]
struct Injection {
    fault: Fault,
    from: u64,
    persistent: bool,
    /// The number of the first call it failed.
    fired_at: Option<u64>,
}

/// What [`SimIo::enter`] lets a call do.
enum Entry<'a> {
    /// Proceed normally.
    Run(MutexGuard<'a, Disk>),
    /// Fail with this fault (the call applies its partial effect, if the fault has one).
    Fail(MutexGuard<'a, Disk>, Fault),
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
    /// Directory changes since their directory's last sync, oldest first: `names` is
    /// `names_durable` with all of them applied.
    dir_ops: Vec<DirOp>,
    dirs: BTreeSet<PathBuf>,
    locks: BTreeSet<PathBuf>,
    call_count: u64,
    crash_at_call: Option<u64>,
    crashed: bool,
    injection: Option<Injection>,
}

/// A directory change, on the file (inode) it names.
#[derive(Clone, Debug)]
enum DirOp {
    Create { path: PathBuf, id: u64 },
    Rename { from: PathBuf, to: PathBuf, id: u64 },
    Remove { path: PathBuf, id: u64 },
}

impl DirOp {
    fn dir(&self) -> Option<&Path> {
        match self {
            DirOp::Create { path, .. } | DirOp::Remove { path, .. } => path.parent(),
            DirOp::Rename { to, .. } => to.parent(),
        }
    }

    fn apply(&self, names: &mut BTreeMap<PathBuf, u64>) {
        match self {
            DirOp::Create { path, id } => {
                names.insert(path.clone(), *id);
            }
            DirOp::Rename { from, to, id } => {
                if names.get(from) == Some(id) {
                    names.remove(from);
                }
                names.insert(to.clone(), *id);
            }
            DirOp::Remove { path, id } => {
                if names.get(path) == Some(id) {
                    names.remove(path);
                }
            }
        }
    }
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

    /// Schedules `fault` for the first call it applies to at or after call number `call`
    /// (counting from 0 on this disk), and with `persistent` for every such call after it too.
    /// Replaces an earlier schedule.
    pub fn inject(&self, fault: Fault, call: u64, persistent: bool) {
        self.lock_disk().injection =
            Some(Injection { fault, from: call, persistent, fired_at: None });
    }

    /// The number of the first call the injected fault failed, if it has fired.
    #[must_use]
    pub fn fault_fired_at(&self) -> Option<u64> {
        self.lock_disk().injection.and_then(|injection| injection.fired_at)
    }

    /// The disk as a restarted machine finds it, under `variant`: a fresh `SimIo` with no
    /// locks, no open files, and no crash or fault scheduled.
    #[must_use]
    pub fn after_crash(&self, variant: CrashVariant) -> SimIo {
        let disk = self.lock_disk();
        let mut rng = fastrand::Rng::with_seed(match variant {
            CrashVariant::RandomSectors { seed }
            | CrashVariant::TornLastWrite { seed }
            | CrashVariant::RandomDirOps { seed } => seed,
            CrashVariant::LoseUnsynced | CrashVariant::KeepUnsynced => 0,
        });
        let mut names = disk.names_durable.clone();
        for op in &disk.dir_ops {
            let keep = match variant {
                CrashVariant::KeepUnsynced | CrashVariant::TornLastWrite { .. } => true,
                CrashVariant::LoseUnsynced | CrashVariant::RandomSectors { .. } => false,
                CrashVariant::RandomDirOps { .. } => rng.bool(),
            };
            if keep {
                op.apply(&mut names);
            }
        }
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
            names_durable: names,
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

    /// The paths of every file, sorted (not an I/O call).
    #[must_use]
    pub fn file_paths(&self) -> Vec<PathBuf> {
        self.lock_disk().names.keys().cloned().collect()
    }

    /// Replaces the bytes of the existing file at `path`, durably, as if the disk itself
    /// changed them (not an I/O call): how tests damage files. Returns whether `path` exists.
    #[must_use = "false means there is no such file"]
    pub fn replace_file(&self, path: &Path, bytes: &[u8]) -> bool {
        let mut disk = self.lock_disk();
        let Some(&id) = disk.names.get(path) else { return false };
        let file = disk.files.get_mut(&id).expect("named files exist");
        file.durable = bytes.to_vec();
        file.current = bytes.to_vec();
        file.unsynced.clear();
        true
    }

    fn lock_disk(&self) -> MutexGuard<'_, Disk> {
        // A panicking test thread poisons the lock; the disk itself is still consistent
        // (every change is applied under the lock in one step), so keep going.
        self.disk.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts an I/O call of kind `call`; fails it if the power has failed, and tells the
    /// caller to fail it if a scheduled fault applies.
    fn enter(&self, call: Call) -> io::Result<Entry<'_>> {
        let mut disk = self.lock_disk();
        let number = disk.call_count;
        if disk.crash_at_call == Some(number) {
            disk.crashed = true;
        }
        disk.call_count += 1;
        if disk.crashed {
            return Err(io::Error::other("simulated power failure"));
        }
        if let Some(injection) = &mut disk.injection {
            let due = number >= injection.from
                && (injection.fired_at.is_none() || injection.persistent)
                && injection.fault.applies_to(call);
            if due {
                injection.fired_at.get_or_insert(number);
                let fault = injection.fault;
                return Ok(Entry::Fail(disk, fault));
            }
        }
        Ok(Entry::Run(disk))
    }

    /// [`SimIo::enter`] for a call that a fault fails without effect.
    fn enter_plain(&self, call: Call) -> io::Result<MutexGuard<'_, Disk>> {
        match self.enter(call)? {
            Entry::Run(disk) => Ok(disk),
            Entry::Fail(_, fault) => Err(fault.error()),
        }
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
                (
                    CrashVariant::KeepUnsynced | CrashVariant::RandomDirOps { .. },
                    Change::Write { offset, bytes },
                ) => {
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

    /// Makes the unsynced changes durable. Not a copy of `current`: changes a failed sync
    /// dropped stay out of the durable bytes for good.
    fn sync(&mut self) {
        let mut rng = fastrand::Rng::with_seed(0);
        self.durable = self.content_after_crash(CrashVariant::KeepUnsynced, &mut rng);
        self.unsynced.clear();
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

/// Renames the directory `from` (which has no subdirectories) to the new name `to`, durably,
/// with every entry in it.
fn rename_dir(disk: &mut Disk, from: &Path, to: &Path) -> io::Result<()> {
    if disk.dirs.contains(to) || disk.names.contains_key(to) {
        return Err(io::Error::new(io::ErrorKind::AlreadyExists, to.display().to_string()));
    }
    if disk.dirs.iter().any(|dir| dir.parent() == Some(from)) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the simulated disk renames only directories without subdirectories",
        ));
    }
    let moved = |path: &Path| -> PathBuf {
        match path.strip_prefix(from) {
            Ok(rest) if path.parent() == Some(from) => to.join(rest),
            _ => path.to_path_buf(),
        }
    };
    for names in [&mut disk.names, &mut disk.names_durable] {
        *names = names.iter().map(|(path, id)| (moved(path), *id)).collect();
    }
    for op in &mut disk.dir_ops {
        match op {
            DirOp::Create { path, .. } | DirOp::Remove { path, .. } => *path = moved(path),
            DirOp::Rename { from: source, to: target, .. } => {
                *source = moved(source);
                *target = moved(target);
            }
        }
    }
    disk.dirs.remove(from);
    disk.dirs.insert(to.to_path_buf());
    Ok(())
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
        let disk = self.enter_plain(Call::Other)?;
        let id = *disk.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(Box::new(SimFile { io: self.clone(), id, writable }))
    }
}

impl Io for SimIo {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut disk = self.enter_plain(Call::Other)?;
        for ancestor in dir.ancestors() {
            disk.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let disk = self.enter_plain(Call::Other)?;
        if !disk.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let names = disk.names.keys().filter(|path| path.parent() == Some(dir));
        Ok(names
            .filter_map(|path| Some(path.file_name()?.to_string_lossy().into_owned()))
            .collect())
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<IoLock>> {
        let mut disk = self.enter_plain(Call::Other)?;
        if !disk.locks.insert(path.to_path_buf()) {
            return Ok(None);
        }
        Ok(Some(Box::new(SimLock { io: self.clone(), path: path.to_path_buf() })))
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        let mut disk = self.enter_plain(Call::Create)?;
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
        disk.dir_ops.push(DirOp::Create { path: path.to_path_buf(), id });
        Ok(Box::new(SimFile { io: self.clone(), id, writable: true }))
    }

    fn open_read_write(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        self.open(path, true)
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        self.open(path, false)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.enter_plain(Call::Other)?;
        let id = disk.names.remove(path).ok_or_else(|| not_found(path))?;
        disk.dir_ops.push(DirOp::Remove { path: path.to_path_buf(), id });
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut disk = self.enter_plain(Call::Other)?;
        if from.parent() != to.parent() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the simulated disk renames only inside one directory",
            ));
        }
        if disk.dirs.contains(from) {
            return rename_dir(&mut disk, from, to);
        }
        let id = disk.names.remove(from).ok_or_else(|| not_found(from))?;
        disk.names.insert(to.to_path_buf(), id);
        disk.dir_ops.push(DirOp::Rename { from: from.to_path_buf(), to: to.to_path_buf(), id });
        Ok(())
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut disk = self.enter_plain(Call::Other)?;
        let id = *disk.names.get(from).ok_or_else(|| not_found(from))?;
        if !to.parent().is_some_and(|parent| disk.dirs.contains(parent)) {
            return Err(not_found(to));
        }
        if disk.names.contains_key(to) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        disk.names.insert(to.to_path_buf(), id);
        disk.dir_ops.push(DirOp::Create { path: to.to_path_buf(), id });
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let (mut disk, failed) = match self.enter(Call::SyncDir)? {
            Entry::Run(disk) => (disk, None),
            Entry::Fail(disk, fault) => (disk, Some(fault)),
        };
        let Disk { names, names_durable, dir_ops, .. } = &mut *disk;
        if let Some(fault) = failed {
            // The directory's unsynced changes never reach the disk.
            dir_ops.retain(|op| op.dir() != Some(dir));
            return Err(fault.error());
        }
        names_durable.retain(|path, _| path.parent() != Some(dir));
        for (path, id) in names.iter().filter(|(path, _)| path.parent() == Some(dir)) {
            names_durable.insert(path.clone(), *id);
        }
        dir_ops.retain(|op| op.dir() != Some(dir));
        Ok(())
    }
}

impl SimFile {
    /// Runs `f` on the file's data unless the call fails; `f` learns the fault, if one was
    /// injected, and applies its partial effect.
    fn with_data<R>(
        &self,
        call: Call,
        f: impl FnOnce(&mut FileData, Option<Fault>) -> io::Result<R>,
    ) -> io::Result<R> {
        let writes = matches!(call, Call::Write | Call::SetLen);
        if writes && !self.writable {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "file opened read-only"));
        }
        let (mut disk, fault) = match self.io.enter(call)? {
            Entry::Run(disk) => (disk, None),
            Entry::Fail(disk, fault) => (disk, Some(fault)),
        };
        f(disk.files.get_mut(&self.id).expect("open files are never forgotten"), fault)
    }
}

/// Fails with `fault` if there is one.
fn fail_with(fault: Option<Fault>) -> io::Result<()> {
    fault.map_or(Ok(()), |fault| Err(fault.error()))
}

impl IoFile for SimFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.with_data(Call::Other, |data, fault| {
            fail_with(fault)?;
            let bytes = usize::try_from(offset)
                .ok()
                .and_then(|start| data.current.get(start..start.checked_add(buf.len())?));
            buf.copy_from_slice(bytes.ok_or(io::ErrorKind::UnexpectedEof)?);
            Ok(())
        })
    }

    fn write_all_at(&self, bytes: &[u8], offset: u64) -> io::Result<()> {
        self.with_data(Call::Write, |data, fault| {
            let stored = match fault {
                None => bytes,
                Some(Fault::ShortWrite) => &bytes[..bytes.len() / 2],
                Some(_) => &[],
            };
            if !stored.is_empty() {
                apply_write(&mut data.current, offset, stored);
                data.unsynced.push(Change::Write { offset, bytes: stored.to_vec() });
            }
            fail_with(fault)
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        self.with_data(Call::SyncData, |data, fault| {
            if fault.is_some() {
                // Writeback failed: the dirty bytes are dropped, never durable.
                data.unsynced.clear();
            } else {
                data.sync();
            }
            fail_with(fault)
        })
    }

    fn len_bytes(&self) -> io::Result<u64> {
        self.with_data(Call::Other, |data, fault| {
            fail_with(fault)?;
            Ok(data.current.len() as u64)
        })
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.with_data(Call::SetLen, |data, fault| {
            fail_with(fault)?;
            data.current.resize(usize::try_from(len).expect("simulated files fit in memory"), 0);
            data.unsynced.push(Change::SetLen(len));
            Ok(())
        })
    }

    fn map(&self) -> io::Result<Box<dyn Mapping>> {
        self.with_data(Call::Other, |data, fault| -> io::Result<Box<dyn Mapping>> {
            fail_with(fault)?;
            Ok(Box::new(SimMapping(data.current.as_slice().into())))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> &'static Path {
        Path::new("/db")
    }

    /// A disk with a synced `MANIFEST` ("old"), then, unsynced in the directory: `a` created,
    /// `MANIFEST.tmp` ("new") created and renamed over `MANIFEST`, `old.log` removed.
    fn disk_with_unsynced_dir_ops() -> SimIo {
        let io = SimIo::new();
        io.create_dir_all(dir()).unwrap();
        io.create_new(&dir().join("MANIFEST"))
            .unwrap()
            .write_all_at_and_sync(&[b"old"], 0)
            .unwrap();
        io.create_new(&dir().join("old.log")).unwrap();
        io.sync_dir(dir()).unwrap();
        io.create_new(&dir().join("a")).unwrap();
        let tmp = io.create_new(&dir().join("MANIFEST.tmp")).unwrap();
        tmp.write_all_at_and_sync(&[b"new"], 0).unwrap();
        io.rename(&dir().join("MANIFEST.tmp"), &dir().join("MANIFEST")).unwrap();
        io.remove_file(&dir().join("old.log")).unwrap();
        io
    }

    #[test]
    fn random_dir_ops_keep_each_change_on_its_own_and_a_rename_whole() {
        let io = disk_with_unsynced_dir_ops();
        let mut outcomes = BTreeSet::new();
        for seed in 0..64 {
            let disk = io.after_crash(CrashVariant::RandomDirOps { seed });
            let manifest = disk.read_file(&dir().join("MANIFEST")).unwrap();
            let tmp = disk.read_file(&dir().join("MANIFEST.tmp"));
            // Atomic rename: MANIFEST is old or new; the temporary name never holds `new`
            // next to a new MANIFEST.
            assert!(manifest == b"old" || manifest == b"new", "seed {seed}");
            if manifest == b"new" {
                assert!(tmp.is_none(), "seed {seed}: both names after a rename");
            }
            outcomes.insert((
                manifest,
                tmp.is_some(),
                disk.read_file(&dir().join("a")).is_some(),
                disk.read_file(&dir().join("old.log")).is_some(),
            ));
        }
        // Four changes kept or lost on their own: 64 seeds give at least 8 distinct disks.
        assert!(outcomes.len() >= 8, "{outcomes:?}");
        let synced = disk_with_unsynced_dir_ops();
        synced.sync_dir(dir()).unwrap();
        let disk = synced.after_crash(CrashVariant::RandomDirOps { seed: 1 });
        assert_eq!(disk.file_paths(), [dir().join("MANIFEST"), dir().join("a")]);
    }

    #[test]
    fn a_fault_fails_the_first_call_it_applies_to_once_or_persistently() {
        for persistent in [false, true] {
            let io = SimIo::new();
            io.create_dir_all(dir()).unwrap();
            let file = io.create_new(&dir().join("f")).unwrap();
            io.inject(Fault::NoSpace, io.call_count(), persistent);
            file.read_exact_at(&mut [], 0).unwrap(); // Needs no space.
            let first = io.call_count();
            assert_eq!(file.write_all_at(b"x", 0).unwrap_err().raw_os_error(), Some(28));
            assert_eq!(io.fault_fired_at(), Some(first));
            assert_eq!(file.write_all_at(b"y", 0).is_err(), persistent);
            assert_eq!(file.len_bytes().unwrap(), u64::from(!persistent));
        }
    }

    #[test]
    fn a_short_write_stores_half_and_a_failed_sync_drops_the_unsynced_bytes_for_good() {
        let io = SimIo::new();
        io.create_dir_all(dir()).unwrap();
        let path = dir().join("f");
        let file = io.create_new(&path).unwrap();
        io.sync_dir(dir()).unwrap();
        io.inject(Fault::ShortWrite, 0, false);
        assert!(file.write_all_at(b"abcd", 0).is_err());
        assert_eq!(io.read_file(&path).unwrap(), b"ab");
        io.inject(Fault::SyncFailure, 0, false);
        assert!(file.sync_data().is_err());
        file.write_all_at(b"ef", 2).unwrap();
        file.sync_data().unwrap();
        assert_eq!(io.read_file(&path).unwrap(), b"abef", "the program still reads them");
        // "ab" was dropped by the failed sync: only the later write is durable, over zeros.
        let restarted = io.after_crash(CrashVariant::KeepUnsynced);
        assert_eq!(restarted.read_file(&path).unwrap(), b"\0\0ef");
    }
}
