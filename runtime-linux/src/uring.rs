//! [`UringIo`]: the engine's [`Io`] on io_uring. Only the data path (positional reads and
//! writes, `fdatasync`, and the group commit's linked write + `fdatasync`) goes through the
//! ring; metadata calls (open, create, rename, remove, list, lock, directory sync) and
//! mappings are the std backend's.
//!
//! # Buffer ownership
//!
//! A buffer named by a submitted entry belongs to the kernel until that entry's completion is
//! reaped. Every operation here borrows its buffers from the caller (`&[u8]` / `&mut [u8]`)
//! and goes through [`Ring::submit_and_reap`], which returns only after it has reaped the
//! completion of every entry the kernel consumed; entries the kernel did not consume are
//! never submitted later (the ring is then marked broken and never entered again). So no
//! borrow ends while the kernel may still touch its memory. Where waiting is impossible
//! (`io_uring_enter` failing while entries are in flight, which the kernel's contract rules
//! out), the process aborts rather than unwind and free memory the kernel may still write.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use io_uring::{IoUring, opcode, squeue, types};
use zverse::io::{Io, IoFile, IoLock, Mapping, StdIo, StdMapping};

/// Submission (and completion) queue slots: a group commit takes one per part plus the
/// `fdatasync`; anything larger falls back to one write at a time.
const RING_ENTRIES: usize = 8;

/// The largest single read or write submitted: a completion's result is an `i32`, and Linux
/// caps one transfer at `0x7fff_f000` bytes anyway. Longer buffers go in pieces.
const TRANSFER_BYTES_MAX: usize = 1 << 30;

/// Consecutive `EINTR` / `EAGAIN` completions of one operation before the error is returned.
const RETRIES_MAX: u32 = 64;

/// Consecutive interrupted waits for completions before giving up (by aborting, see
/// [`abort_with_entries_in_flight`]). Each one is a signal delivered during a wait.
const WAIT_RETRIES_MAX: u32 = 100_000;

/// The io_uring backend; made only by [`UringIo::new`], which proves io_uring works here.
///
/// Each file gets its own small ring, created by its first read, write or sync (files the
/// engine only maps cost none), behind a mutex: one operation at a time per file, as the
/// engine has one writer per file, while a segment being written never waits behind a log
/// commit or the reverse.
#[derive(Clone, Copy, Debug)]
pub struct UringIo {
    _probed: (),
}

/// A file opened by [`UringIo`]: its descriptor, used by the ring's entries, and its ring.
#[derive(Debug)]
pub struct UringFile {
    file: File,
    ring: Ring,
}

/// A ring, created on first use, and whether it may still be entered.
struct Ring {
    state: Mutex<Option<RingState>>,
}

struct RingState {
    ring: IoUring,
    /// Set when entries were left in the submission queue unconsumed: entering the ring again
    /// would submit them after their buffers are gone, so it is never entered again.
    broken: bool,
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring").field("entries", &RING_ENTRIES).finish_non_exhaustive()
    }
}

impl UringIo {
    /// Creates a ring and proves it works by submitting a no-op and reaping its completion.
    /// Fails where the kernel refuses io_uring (`ENOSYS` on old kernels, `EPERM` under a
    /// seccomp filter or `kernel.io_uring_disabled`).
    pub fn new() -> io::Result<UringIo> {
        let ring = Ring::unstarted();
        let mut result = [0];
        // SAFETY: a no-op names no buffer, so nothing must outlive the call.
        unsafe { ring.submit_and_reap(&[opcode::Nop::new().build()], &mut result) }?;
        completion(result[0])?;
        Ok(UringIo { _probed: () })
    }
}

/// A file on io_uring; its ring comes with its first read, write or sync.
fn uring_file(file: File) -> Box<dyn IoFile> {
    Box::new(UringFile { file, ring: Ring::unstarted() })
}

impl Ring {
    fn unstarted() -> Ring {
        Ring { state: Mutex::new(None) }
    }

    /// Submits `entries` in one `io_uring_enter` and waits for all their completions, writing
    /// entry `i`'s result (bytes, or a negated errno) to `results[i]`. Returns an error only if
    /// the kernel consumed none of the entries, which then are never submitted.
    ///
    /// # Safety
    ///
    /// Every buffer an entry names must stay valid for the kernel's access (reads for a write,
    /// exclusive writes for a read) until this function returns. Borrowed buffers satisfy
    /// that: this function returns only after the completion of every consumed entry is
    /// reaped, so the kernel is done with each buffer before its borrow can end.
    unsafe fn submit_and_reap(
        &self,
        entries: &[squeue::Entry],
        results: &mut [i32],
    ) -> io::Result<()> {
        assert!(entries.len() == results.len() && entries.len() <= RING_ENTRIES);
        let mut slot = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            let ring = IoUring::new(RING_ENTRIES as u32)?;
            *slot = Some(RingState { ring, broken: false });
        }
        let Some(state) = slot.as_mut() else { unreachable!("the ring was created above") };
        if state.broken {
            return Err(io::Error::other(
                "the io_uring ring is broken by an earlier failed submission",
            ));
        }
        let ring = &mut state.ring;
        assert!(
            ring.submission().is_empty() && ring.completion().is_empty(),
            "every operation reaps all of its completions before it returns"
        );
        {
            let mut queue = ring.submission();
            for (index, entry) in entries.iter().enumerate() {
                let entry = entry.clone().user_data(index as u64);
                // SAFETY: the buffers `entry` names are valid until this function returns
                // (this function's contract), and it returns only after reaping the entry's
                // completion, or after making sure the entry is never submitted.
                let pushed = unsafe { queue.push(&entry) };
                assert!(pushed.is_ok(), "the queue was empty and holds RING_ENTRIES entries");
            }
        }
        let in_flight = match submit(ring, entries.len()) {
            Ok(()) => entries.len() - ring.submission().len(),
            Err(error) => {
                // io_uring_enter fails only when it consumed no entry: they all still sit in
                // the submission queue, pointing at buffers about to be released. Never enter
                // this ring again.
                if ring.submission().len() != entries.len() {
                    abort_with_entries_in_flight(&error);
                }
                state.broken = true;
                return Err(error);
            }
        };
        if in_flight != entries.len() {
            state.broken = true;
        }
        reap(&mut state.ring, in_flight, results);
        if state.broken {
            return Err(io::Error::other("io_uring consumed only part of a submission"));
        }
        Ok(())
    }
}

/// Submits the queued entries and waits for `want` completions; retries a refused enter
/// (`EINTR`, `EAGAIN`, `EBUSY`) a bounded number of times.
fn submit(ring: &IoUring, want: usize) -> io::Result<()> {
    let mut attempts = 0;
    loop {
        match ring.submit_and_wait(want) {
            Ok(_) => return Ok(()),
            Err(error) if is_retryable_enter(&error) && attempts < RETRIES_MAX => attempts += 1,
            Err(error) => return Err(error),
        }
    }
}

/// Reaps `in_flight` completions into `results` (indexed by user data). Waits with a bare
/// `io_uring_enter` that submits nothing: the submission queue may hold the unconsumed
/// entries of a broken ring, which must never be submitted.
fn reap(ring: &mut IoUring, in_flight: usize, results: &mut [i32]) {
    let mut reaped = 0;
    let mut wait_failures = 0;
    while reaped < in_flight {
        for entry in ring.completion() {
            let index = usize::try_from(entry.user_data()).unwrap_or(usize::MAX);
            assert!(index < results.len(), "a completion of an entry this call submitted");
            results[index] = entry.result();
            reaped += 1;
        }
        if reaped == in_flight {
            break;
        }
        let flags = io_uring::EnterFlags::GETEVENTS.bits();
        // SAFETY: a wait for one completion: nothing to submit, no argument pointer.
        match unsafe { ring.submitter().enter::<libc::sigset_t>(0, 1, flags, None) } {
            Ok(_) => wait_failures = 0,
            Err(error) if is_retryable_enter(&error) && wait_failures < WAIT_RETRIES_MAX => {
                wait_failures += 1;
            }
            Err(error) => abort_with_entries_in_flight(&error),
        }
    }
}

/// The kernel may still read or write buffers whose borrows would end on return or unwind;
/// the only sound way out is to stop the process. `io_uring_enter` with nothing to submit
/// fails only on a broken ring (`EBADF`, `EFAULT`), so this is an internal invariant broken.
fn abort_with_entries_in_flight(error: &io::Error) -> ! {
    eprintln!("zverse: io_uring entries in flight and the ring cannot be waited on: {error}");
    std::process::abort()
}

fn is_retryable_enter(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EINTR | libc::EAGAIN | libc::EBUSY))
}

/// A completion's result as bytes transferred, or the error it carries.
fn completion(result: i32) -> io::Result<usize> {
    usize::try_from(result).map_err(|_| io::Error::from_raw_os_error(-result))
}

/// An `EINTR` or `EAGAIN` completion: the operation did nothing and may be submitted again.
fn is_retryable(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EINTR | libc::EAGAIN))
}

impl Io for UringIo {
    fn name(&self) -> &'static str {
        "io_uring"
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        StdIo.create_dir_all(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        StdIo.list_dir(dir)
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<IoLock>> {
        StdIo.try_lock(path)
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        Ok(uring_file(OpenOptions::new().read(true).write(true).create_new(true).open(path)?))
    }

    fn open_read_write(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        Ok(uring_file(OpenOptions::new().read(true).write(true).open(path)?))
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        Ok(uring_file(File::open(path)?))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        StdIo.remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        StdIo.rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        StdIo.sync_dir(dir)
    }
}

impl UringFile {
    fn fd(&self) -> types::Fd {
        types::Fd(self.file.as_raw_fd())
    }

    /// Runs one entry to completion, resubmitting it (rebuilt by `entry`) after an `EINTR` or
    /// `EAGAIN` completion.
    ///
    /// # Safety
    ///
    /// As [`Ring::submit_and_reap`]: the buffers `entry` names stay valid until this returns.
    unsafe fn run_one(&self, entry: impl Fn() -> squeue::Entry) -> io::Result<usize> {
        let mut retries = 0;
        loop {
            let mut result = [0];
            // SAFETY: forwarded from this function's contract.
            unsafe { self.ring.submit_and_reap(&[entry()], &mut result) }?;
            match completion(result[0]) {
                Err(error) if is_retryable(&error) && retries < RETRIES_MAX => retries += 1,
                outcome => return outcome,
            }
        }
    }

    fn fdatasync_entry(&self) -> squeue::Entry {
        opcode::Fsync::new(self.fd()).flags(types::FsyncFlags::DATASYNC).build()
    }
}

impl IoFile for UringFile {
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            let len = buf.len().min(TRANSFER_BYTES_MAX);
            let target = buf.as_mut_ptr();
            let entry = || opcode::Read::new(self.fd(), target, len as u32).offset(offset).build();
            // SAFETY: the read writes at most `len` bytes into `buf`, which is exclusively
            // borrowed for this whole call; `run_one` returns only after the read's
            // completion is reaped, so the kernel is done writing before the borrow ends.
            let read = unsafe { self.run_one(entry) }?;
            if read == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            buf = &mut buf[read.min(len)..];
            offset += read as u64;
        }
        Ok(())
    }

    fn write_all_at(&self, mut bytes: &[u8], mut offset: u64) -> io::Result<()> {
        while !bytes.is_empty() {
            let len = bytes.len().min(TRANSFER_BYTES_MAX);
            let source = bytes.as_ptr();
            let entry = || opcode::Write::new(self.fd(), source, len as u32).offset(offset).build();
            // SAFETY: the write reads at most `len` bytes of `bytes`, borrowed for this whole
            // call; `run_one` returns only after the write's completion is reaped.
            let written = unsafe { self.run_one(entry) }?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            // A short write: resubmit the remainder.
            bytes = &bytes[written.min(len)..];
            offset += written as u64;
        }
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        // SAFETY: an fdatasync names no buffer.
        unsafe { self.run_one(|| self.fdatasync_entry()) }.map(drop)
    }

    fn len_bytes(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    /// One group commit: each part's write linked (`IO_LINK`) to the next entry and the last
    /// to an `fdatasync`, all submitted in one `io_uring_enter`. A short write breaks the
    /// link (the kernel cancels the rest with `ECANCELED`): the remainders are then written
    /// and synced one call at a time.
    fn write_all_at_and_sync(&self, parts: &[&[u8]], offset: u64) -> io::Result<()> {
        if parts.len() >= RING_ENTRIES {
            return write_parts_then_sync(self, parts, offset);
        }
        let mut entries: [squeue::Entry; RING_ENTRIES] =
            std::array::from_fn(|_| opcode::Nop::new().build());
        let mut position = offset;
        for (entry, part) in entries.iter_mut().zip(parts) {
            let len = part.len().min(TRANSFER_BYTES_MAX) as u32;
            *entry = opcode::Write::new(self.fd(), part.as_ptr(), len)
                .offset(position)
                .build()
                .flags(squeue::Flags::IO_LINK);
            position += part.len() as u64;
        }
        entries[parts.len()] = self.fdatasync_entry();
        let count = parts.len() + 1;
        let mut results = [0; RING_ENTRIES];
        // SAFETY: each write reads at most its part's length from `parts`, borrowed for this
        // whole call, and `submit_and_reap` returns only after reaping every completion.
        unsafe { self.ring.submit_and_reap(&entries[..count], &mut results[..count]) }?;
        let settled = settle(parts, &results[..count])?;
        let mut position = offset;
        for (part, &written) in parts.iter().zip(&settled.written) {
            if written < part.len() {
                self.write_all_at(&part[written..], position + written as u64)?;
            }
            position += part.len() as u64;
        }
        if settled.synced { Ok(()) } else { self.sync_data() }
    }

    /// The mapping, its advice and its residency queries are the std backend's own.
    fn map(&self) -> io::Result<Box<dyn Mapping>> {
        // SAFETY: a mapping is undefined behaviour if the file changes under it. As for the
        // std backend: the engine maps only segment files that are complete and synced, never
        // writes to them or truncates them afterwards (ARCHITECTURE.md), and the LOCK file
        // keeps every other ZVerse process out of the directory.
        Ok(Box::new(unsafe { StdMapping::map_file(&self.file)? }))
    }
}

/// The default group commit, for more parts than the ring holds at once.
fn write_parts_then_sync(file: &UringFile, parts: &[&[u8]], offset: u64) -> io::Result<()> {
    let mut position = offset;
    for part in parts {
        file.write_all_at(part, position)?;
        position += part.len() as u64;
    }
    file.sync_data()
}

/// What a linked group commit achieved: bytes written per part, and whether its
/// `fdatasync` covered all of them.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Settled {
    /// Bytes written of `parts[i]`, at `written[i]`; zero past the parts.
    pub(crate) written: [usize; RING_ENTRIES],
    pub(crate) synced: bool,
}

/// Reads the completions of a linked group commit (`results[i]` for `parts[i]`, the last for
/// the `fdatasync`): a short write, or one cancelled (`ECANCELED`) or interrupted (`EINTR`,
/// `EAGAIN`), leaves a remainder to write; the sync counts only if it succeeded after every
/// write was whole. Any other error is returned, the first in submission order: a failed
/// `fdatasync` is the engine's cue to turn read-only.
pub(crate) fn settle(parts: &[&[u8]], results: &[i32]) -> io::Result<Settled> {
    assert_eq!(results.len(), parts.len() + 1, "one result per part, then the sync's");
    assert!(parts.len() < RING_ENTRIES, "the group commit fits in the ring");
    let mut written = [0; RING_ENTRIES];
    for ((part, &result), bytes) in parts.iter().zip(results).zip(&mut written) {
        *bytes = match completion(result) {
            Ok(count) => count.min(part.len()),
            Err(error) if is_retryable(&error) || result == -libc::ECANCELED => 0,
            Err(error) => return Err(error),
        };
    }
    let whole = parts.iter().zip(&written).all(|(part, &bytes)| bytes == part.len());
    let synced = match completion(results[parts.len()]) {
        Ok(_) => whole,
        Err(error) if is_retryable(&error) || results[parts.len()] == -libc::ECANCELED => false,
        Err(error) => return Err(error),
    };
    Ok(Settled { written, synced })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANCELED: i32 = -libc::ECANCELED;

    fn check(results: &[i32], expect: Result<(&[usize], bool), i32>) {
        let parts: [&[u8]; 2] = [b"head", b"body!"];
        let got = settle(&parts, results).map_err(|error| error.raw_os_error().unwrap());
        let expect = expect.map(|(written_parts, synced)| {
            let mut written = [0; RING_ENTRIES];
            written[..written_parts.len()].copy_from_slice(written_parts);
            Settled { written, synced }
        });
        assert_eq!(got, expect, "results {results:?}");
    }

    #[test]
    fn settle_reads_every_completion_pattern() {
        check(&[4, 5, 0], Ok((&[4, 5], true)));
        // A short write breaks the link: the rest is cancelled, the sync too.
        check(&[2, CANCELED, CANCELED], Ok((&[2, 0], false)));
        check(&[4, 3, CANCELED], Ok((&[4, 3], false)));
        // Interrupted or would-block completions did nothing: resubmit.
        check(&[-libc::EINTR, CANCELED, CANCELED], Ok((&[0, 0], false)));
        check(&[4, -libc::EAGAIN, CANCELED], Ok((&[4, 0], false)));
        check(&[4, 5, -libc::EINTR], Ok((&[4, 5], false)));
        // Real errors are returned; a failed fdatasync above all.
        check(&[4, 5, -libc::EIO], Err(libc::EIO));
        check(&[-libc::ENOSPC, CANCELED, CANCELED], Err(libc::ENOSPC));
        check(&[4, -libc::EBADF, CANCELED], Err(libc::EBADF));
    }
}
