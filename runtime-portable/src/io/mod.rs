//! The engine's only door to the file system: the [`Io`] trait.
//!
//! The engine is generic over it, so that the same engine runs on std files ([`StdIo`]), on
//! io_uring (`zverse-linux`), and on the simulated disks of the crash and fault tests, which
//! keep what was synced and drop or tear what was not.
//!
//! The contract is the POSIX one, stated so that a simulation can hold a backend to it:
//! - bytes written to a file are durable only after [`IoFile::sync_data`] on that file returns;
//! - a created, renamed or removed directory entry is durable only after [`Io::sync_dir`] on
//!   the directory returns;
//! - [`Io::rename`] replaces the target atomically: after a crash either name resolves to the
//!   old or the new file, never to a mix;
//! - an error from `sync_data` means the written bytes may or may not be durable, and a retry
//!   proves nothing (the kernel may have dropped the dirty pages): the engine stops writing.

mod std_io;

pub use std_io::{StdFile, StdIo, StdMapping};

use std::fmt;
use std::io;
use std::path::Path;

/// A file system the engine can run on. Object-safe: the engine holds an `Arc<dyn Io>`, so that
/// one `Db` type runs on every backend (a virtual call costs nothing next to a system call).
pub trait Io: fmt::Debug + Send + Sync + 'static {
    /// The backend's name, as `stats()` reports it ("std", "io_uring", ...).
    fn name(&self) -> &'static str;

    /// Creates `dir` and its missing parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;

    /// The names of the entries of `dir`, in no particular order.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;

    /// Takes an exclusive lock on `path` (created if missing), or returns `None` when another
    /// holder (another process, or another open database in this one) has it. The lock is
    /// released when the returned guard is dropped.
    fn try_lock(&self, path: &Path) -> io::Result<Option<IoLock>>;

    /// Creates a new file for reading and writing; fails if `path` exists.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn IoFile>>;

    /// Opens an existing file for reading and writing.
    fn open_read_write(&self, path: &Path) -> io::Result<Box<dyn IoFile>>;

    /// Opens an existing file for reading.
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn IoFile>>;

    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Renames `from` to `to`, atomically replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    /// How each class of operation is done (log writes, syncs, segment writes, reads), as
    /// `stats()` reports it; empty where the backend has one way only.
    fn routing(&self) -> &'static str {
        ""
    }

    /// Called by `Db::open` once `dir` exists and is locked, before any file of it is opened,
    /// and only where the database may write: a backend that routes operations by measurement
    /// measures the directory's file system here (without leaving a file behind). An error
    /// leaves the backend's default routing; the open goes on.
    fn probe_dir(&self, dir: &Path) -> io::Result<()> {
        let _ = dir;
        Ok(())
    }

    /// Creates `to` as a second name of the file `from` (a hard link; durable after
    /// [`Io::sync_dir`] on `to`'s directory). Fails with [`io::ErrorKind::CrossesDevices`]
    /// across file systems and [`io::ErrorKind::Unsupported`] where the backend has no links
    /// (the default): callers then copy.
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        let _ = (from, to);
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// A held lock from [`Io::try_lock`]; dropping it releases the lock.
pub type IoLock = Box<dyn fmt::Debug + Send + Sync>;

/// An open file: positional reads and writes, sync, length, mapping.
pub trait IoFile: fmt::Debug + Send + Sync + 'static {
    /// Fills `buf` from `offset`; an end of file before `buf` is full is an
    /// [`io::ErrorKind::UnexpectedEof`] error.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;

    /// Writes all of `bytes` at `offset` (short writes are retried inside).
    fn write_all_at(&self, bytes: &[u8], offset: u64) -> io::Result<()>;

    /// Makes every byte written so far, and the file's length, durable (fdatasync).
    fn sync_data(&self) -> io::Result<()>;

    /// The file's length in bytes.
    fn len_bytes(&self) -> io::Result<u64>;

    /// Truncates or extends the file to `len` bytes (not durable until `sync_data`).
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// Writes `parts` back to back from `offset`, then syncs: one group commit. Backends that
    /// can submit both at once (io_uring's linked write + fdatasync) override this.
    fn write_all_at_and_sync(&self, parts: &[&[u8]], offset: u64) -> io::Result<()> {
        let mut position = offset;
        for part in parts {
            self.write_all_at(part, position)?;
            position += part.len() as u64;
        }
        self.sync_data()
    }

    /// Maps the whole file read-only.
    ///
    /// The engine maps only files that are complete and synced, and never writes to or
    /// truncates a file while a mapping of it exists.
    fn map(&self) -> io::Result<Box<dyn Mapping>>;
}

/// A read-only view of a whole file's bytes: a memory map, or a copy in a simulation.
pub trait Mapping: fmt::Debug + Send + Sync + 'static {
    /// The file's bytes.
    fn bytes(&self) -> &[u8];

    /// Tells the kernel how the bytes `[offset, offset + len)` will be read (the range is
    /// widened to whole pages; the whole mapping is `0, bytes().len()`). A hint: backends
    /// without it ignore it, and errors are only worth counting. A range reaching past the
    /// end is an [`io::ErrorKind::InvalidInput`] error.
    fn advise_range(&self, offset: usize, len: usize, advice: Advice) -> io::Result<()> {
        let _ = (offset, len, advice);
        Ok(())
    }

    /// How many of the pages holding `[offset, offset + len)` are in memory now (`mincore`
    /// on a memory map), or an [`io::ErrorKind::Unsupported`] error where the backend cannot
    /// tell. One system call per call on a memory map: not for a hot path.
    fn resident_pages(&self, offset: usize, len: usize) -> io::Result<usize> {
        let _ = (offset, len);
        Err(io::ErrorKind::Unsupported.into())
    }

    /// The size of the pages [`Mapping::resident_pages`] counts and advice is rounded to.
    fn page_bytes(&self) -> usize {
        PAGE_BYTES_DEFAULT
    }
}

/// The page size assumed where a backend does not say (the common one on x86-64 and arm64).
pub const PAGE_BYTES_DEFAULT: usize = 4096;

/// Access-pattern hints for a [`Mapping`] (madvise where the OS has it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Advice {
    /// Point reads at random places (`MADV_RANDOM`).
    Random,
    /// A scan from start to end (`MADV_SEQUENTIAL`).
    Sequential,
    /// Read soon: start reading it in now (`MADV_WILLNEED`).
    WillNeed,
    /// No particular pattern: the kernel's default read-ahead (`MADV_NORMAL`).
    Normal,
    /// Not needed for a while: reclaim these pages first (`MADV_COLD`, Linux 5.4+; backends
    /// without it fall back to `DontNeed`).
    Cold,
    /// Not needed now: drop this mapping's page-table entries (`MADV_DONTNEED`). On a
    /// read-only shared file mapping the bytes are unchanged: the next read faults them back
    /// in from the page cache or the file.
    DontNeed,
}
