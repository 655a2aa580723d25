//! [`StdIo`]: the [`Io`] backend on `std::fs`, with memmap2 for mappings.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::Path;

#[cfg(unix)]
use super::Advice;
use super::{Io, IoFile, IoLock, Mapping};

/// The portable backend: `std::fs` positional I/O, `fdatasync` through
/// [`File::sync_data`], `flock` through [`File::try_lock`], and memmap2.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdIo;

/// A file opened by [`StdIo`].
#[derive(Debug)]
pub struct StdFile(File);

/// A lock held through [`Io::try_lock`]: the locked file, unlocked when closed.
#[derive(Debug)]
struct StdLock(#[allow(dead_code, reason = "held for its Drop, which releases the lock")] File);

/// A read-only memory map of a whole file.
#[derive(Debug)]
pub struct StdMapping(memmap2::Mmap);

impl Io for StdIo {
    fn name(&self) -> &'static str {
        "std"
    }

    fn routing(&self) -> &'static str {
        "log writes: pwrite, syncs: fdatasync, segment writes: pwrite, reads: pread"
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::hard_link(from, to)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<IoLock>> {
        let file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Box::new(StdLock(file)))),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(error)) => Err(error),
        }
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(path)?;
        Ok(Box::new(StdFile(file)))
    }

    fn open_read_write(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        Ok(Box::new(StdFile(OpenOptions::new().read(true).write(true).open(path)?)))
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        Ok(Box::new(StdFile(File::open(path)?)))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    #[cfg(unix)]
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    /// Windows has no directory fsync; NTFS journals its metadata, and a rename is made
    /// durable by the file system itself.
    #[cfg(not(unix))]
    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
}

impl IoFile for StdFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        read_exact_at(&self.0, buf, offset)
    }

    fn write_all_at(&self, bytes: &[u8], offset: u64) -> io::Result<()> {
        write_all_at(&self.0, bytes, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn len_bytes(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn map(&self) -> io::Result<Box<dyn Mapping>> {
        // SAFETY: a mapping is undefined behaviour if the file changes under it. The engine
        // maps only segment files that are complete and synced, never writes to them or
        // truncates them afterwards (ARCHITECTURE.md), and the LOCK file keeps every other
        // ZVerse process out of the directory. Changes by foreign processes are outside the
        // contract, as for every memory-mapped store (LMDB, redb).
        Ok(Box::new(unsafe { StdMapping::map_file(&self.0)? }))
    }
}

impl StdMapping {
    /// Maps the whole of `file` read-only: the mapping every backend on real files shares
    /// (the io_uring backend's mappings are these too).
    ///
    /// # Safety
    ///
    /// The file must not be written, truncated or replaced in place while the mapping lives
    /// (reading a mapping whose file changes is undefined behaviour). The engine maps only
    /// complete, synced segment files and never writes them afterwards.
    pub unsafe fn map_file(file: &File) -> io::Result<StdMapping> {
        // SAFETY: the caller guarantees the file does not change while mapped (see above).
        let map = unsafe { memmap2::Mmap::map(file)? };
        Ok(StdMapping(map))
    }
}

impl Mapping for StdMapping {
    fn bytes(&self) -> &[u8] {
        &self.0
    }

    #[cfg(unix)]
    fn advise_range(&self, offset: usize, len: usize, advice: Advice) -> io::Result<()> {
        let in_range = offset.checked_add(len).is_some_and(|end| end <= self.0.len());
        if !in_range {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        if len == 0 {
            return Ok(());
        }
        let checked = match advice {
            Advice::Random => memmap2::Advice::Random,
            Advice::Sequential => memmap2::Advice::Sequential,
            Advice::WillNeed => memmap2::Advice::WillNeed,
            Advice::Normal => memmap2::Advice::Normal,
            Advice::Cold => return unix::advise_cold(&self.0, offset, len),
            Advice::DontNeed => return unix::advise_dont_need(&self.0, offset, len),
        };
        self.0.advise_range(checked, offset, len)
    }

    #[cfg(unix)]
    fn resident_pages(&self, offset: usize, len: usize) -> io::Result<usize> {
        unix::resident_pages(&self.0, offset, len)
    }

    #[cfg(unix)]
    fn page_bytes(&self) -> usize {
        unix::page_bytes()
    }
}

/// The madvise and mincore calls memmap2 does not wrap.
#[cfg(unix)]
mod unix {
    use std::io;
    use std::sync::OnceLock;

    /// Pages asked about per `mincore` call: the residency vector lives on the stack.
    const MINCORE_PAGES_MAX: usize = 256;

    /// The OS page size, asked once.
    pub(super) fn page_bytes() -> usize {
        static PAGE_BYTES: OnceLock<usize> = OnceLock::new();
        *PAGE_BYTES.get_or_init(|| {
            // SAFETY: sysconf reads a constant of the system; no memory is passed.
            let bytes = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            usize::try_from(bytes).ok().filter(|b| b.is_power_of_two()).unwrap_or(4096)
        })
    }

    /// `[offset, offset + len)` of `map` widened to whole pages: (page-aligned pointer, length).
    /// The caller checked that the range is inside the map and not empty.
    fn page_span(map: &memmap2::Mmap, offset: usize, len: usize) -> (*const u8, usize) {
        let page = page_bytes();
        assert!(len > 0 && offset + len <= map.len(), "the range is inside the mapping");
        // The map starts on a page boundary (mmap of a whole file, offset 0), so aligning the
        // offset aligns the address.
        let start = offset - offset % page;
        let end = (offset + len).next_multiple_of(page);
        (map.as_ptr().wrapping_add(start), end - start)
    }

    /// `MADV_COLD` where the kernel has it (Linux 5.4+), else `MADV_DONTNEED`.
    pub(super) fn advise_cold(map: &memmap2::Mmap, offset: usize, len: usize) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        {
            let (ptr, span) = page_span(map, offset, len);
            // SAFETY: [ptr, ptr + span) lies in pages of this live mapping (`page_span`), and
            // MADV_COLD only deactivates pages: it never changes what the mapping reads.
            let result = unsafe { libc::madvise(ptr.cast_mut().cast(), span, libc::MADV_COLD) };
            if result == 0 {
                return Ok(());
            }
            let error = io::Error::last_os_error();
            if error.raw_os_error() != Some(libc::EINVAL) {
                return Err(error);
            }
        }
        advise_dont_need(map, offset, len)
    }

    pub(super) fn advise_dont_need(
        map: &memmap2::Mmap,
        offset: usize,
        len: usize,
    ) -> io::Result<()> {
        // SAFETY: memmap2 marks DONTNEED unchecked because on a private writable mapping it
        // discards changes. This is a read-only shared mapping of a file that does not change
        // (the engine's contract for every mapping): dropping its page-table entries only makes
        // the next read fault the same bytes back in.
        unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len) }
    }

    /// How many of the pages holding `[offset, offset + len)` are resident (`mincore`).
    pub(super) fn resident_pages(
        map: &memmap2::Mmap,
        offset: usize,
        len: usize,
    ) -> io::Result<usize> {
        let in_range = offset.checked_add(len).is_some_and(|end| end <= map.len());
        if !in_range {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        if len == 0 {
            return Ok(0);
        }
        let page = page_bytes();
        let (ptr, span) = page_span(map, offset, len);
        let mut resident = 0;
        let mut vector = [0u8; MINCORE_PAGES_MAX];
        for chunk_start in (0..span).step_by(MINCORE_PAGES_MAX * page) {
            let chunk = (span - chunk_start).min(MINCORE_PAGES_MAX * page);
            let pages = chunk.div_ceil(page);
            // SAFETY: the address is page-aligned and [address, address + chunk) lies in this
            // live mapping (`page_span`); `vector` has room for the `pages <=
            // MINCORE_PAGES_MAX` bytes mincore writes, one per page.
            let result = unsafe {
                libc::mincore(
                    ptr.wrapping_add(chunk_start).cast_mut().cast(),
                    chunk,
                    vector.as_mut_ptr().cast(),
                )
            };
            if result != 0 {
                return Err(io::Error::last_os_error());
            }
            resident += vector[..pages].iter().filter(|&&byte| byte & 1 == 1).count();
        }
        Ok(resident)
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(unix)]
fn write_all_at(file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

#[cfg(windows)]
fn write_all_at(file: &File, mut bytes: &[u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !bytes.is_empty() {
        match file.seek_write(bytes, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                bytes = &bytes[n..];
                offset += n as u64;
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}
