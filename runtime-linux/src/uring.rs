//! [`UringIo`]: the engine's [`Io`] on io_uring. Only the data path (positional reads and
//! writes, `fdatasync`, and the group commit's linked write + `fdatasync`) can go through the
//! ring; metadata calls (open, create, rename, remove, list, lock, directory sync) and
//! mappings are the std backend's.
//!
//! # Routes
//!
//! Each class of data operation (small writes: log frames; `fdatasync`; large writes: segment
//! chunks; reads) goes through the ring or by a plain system call, as [`crate::route`]
//! measured faster on the database's file system when it opened; `stats().io_routing` says
//! which. On ext4 (docs/io.md) every class measured faster by system call, so a database there
//! runs on the ring for none of them: io_uring earns no place on a file system whose buffered
//! I/O it hands to worker threads. The figures: docs/io.md. The sections below describe the
//! ring paths, which [`UringIo::with_routes`] pins for tests and benches.
//!
//! # Writes
//!
//! A write and its sync go in windows of up to seven writes and the `fdatasync`, each window
//! one `io_uring_enter` ([`UringFile::write_windows`]). A log commit is one write linked
//! (`IO_LINK`) to the `fdatasync`. A segment (one buffer of up to 64 MiB by default) is cut
//! into seven whole-page chunks of at least 1 MiB, submitted together and in flight at once,
//! with an `fdatasync` flagged `IO_DRAIN` that starts when they all completed: one
//! `io_uring_enter` per segment. Short, interrupted (`EINTR`, `EAGAIN`) and cancelled
//! completions are settled per write: the rest is written and the sync redone ([`settle`]).
//!
//! # What it costs
//!
//! On ext4 io_uring hands every buffered write and every `fdatasync` to an `io-wq` worker
//! thread, so each ring path costs a thread hand-off that a system call does not, and
//! registered files and buffers did not pay: docs/io.md ("io_uring on ext4: what the ring
//! paths cost") has the measurements.
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
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use io_uring::{IoUring, opcode, squeue, types};
use zverse::io::{Io, IoFile, IoLock, Mapping, StdIo, StdMapping};

use crate::route::{self, LARGE_WRITE_BYTES_MIN, Method, ProbeFile, Routes};

/// Submission (and completion) queue slots: up to `RING_ENTRIES - 1` writes in flight, plus
/// the `fdatasync` that ends a synced write.
const RING_ENTRIES: usize = 8;

/// Writes submitted at once (a window); the last window also carries the `fdatasync`.
const WINDOW_WRITES_MAX: usize = RING_ENTRIES - 1;

/// A write longer than this goes as several chunks in flight together (a segment is one buffer
/// of up to tens of MiB): `WINDOW_WRITES_MAX` chunks of at least this size, so that a segment
/// of up to 7 GiB is one window, one `io_uring_enter` with its `fdatasync`.
const CHUNK_BYTES_MIN: usize = 1 << 20;

/// Chunks are whole pages, so that two writes in flight never share a page of the cache.
const CHUNK_ALIGN_BYTES: usize = 4096;

/// The largest single read submitted: a completion's result is an `i32`, and Linux caps one
/// transfer at `0x7fff_f000` bytes anyway. Longer buffers go in pieces.
const TRANSFER_BYTES_MAX: usize = 1 << 30;
const _: () = assert!(CHUNK_BYTES_MIN.is_multiple_of(CHUNK_ALIGN_BYTES));
const _: () = assert!(CHUNK_BYTES_MIN <= TRANSFER_BYTES_MAX && WINDOW_WRITES_MAX >= 2);

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
///
/// Each operation goes the way [`Routes`] says: through the ring, or by a plain system call
/// on the calling thread. [`UringIo::new`] starts with everything on the ring; a database's
/// open ([`Io::probe_dir`]) measures both ways on its file system and keeps the faster one per
/// class of operation (see [`crate::route`]), unless [`UringIo::with_routes`] pinned them.
#[derive(Clone, Debug)]
pub struct UringIo {
    faults: Arc<Faults>,
    routing: Arc<Routing>,
}

/// The routes a [`UringIo`] and its files follow: [`Routes`] as bits (`Routes::to_bits`),
/// read with `Relaxed` at each operation (any of the two methods is correct at any time;
/// the choice only changes which is faster), and whether a probe may change them.
#[derive(Debug)]
struct Routing {
    bits: AtomicU8,
    pinned: AtomicBool,
}

impl Routing {
    fn routes(&self) -> Routes {
        Routes::from_bits(self.bits.load(Ordering::Relaxed))
    }
}

/// A file opened by [`UringIo`]: its descriptor, used by the ring's entries, and its ring.
#[derive(Debug)]
pub struct UringFile {
    file: File,
    ring: Ring,
    faults: Arc<Faults>,
    routing: Arc<Routing>,
}

/// Faults a test injects into the completions of a [`UringIo`] and every file it opened.
#[derive(Debug, Default)]
struct Faults {
    /// An errno that replaces the result of `fdatasync` completions; zero for none.
    sync_errno: AtomicI32,
    /// Successful `fdatasync` completions still reported as they are before `sync_errno`
    /// replaces them.
    sync_ok_left: AtomicU64,
}

impl Faults {
    /// The result the engine sees for an `fdatasync` completion whose kernel result is
    /// `result`: a sync that succeeded fails with the injected errno, if there is one and no
    /// success is left to report first.
    fn sync_result(&self, result: i32) -> i32 {
        let errno = self.sync_errno.load(Ordering::Relaxed);
        if errno <= 0 || result < 0 {
            return result;
        }
        let decrement = |left: u64| left.checked_sub(1);
        match self.sync_ok_left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, decrement) {
            Ok(_) => result,
            Err(_) => -errno,
        }
    }
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
        let routing = Routing { bits: AtomicU8::new(Routes::RING.to_bits()), pinned: false.into() };
        Ok(UringIo { faults: Arc::default(), routing: Arc::new(routing) })
    }

    /// [`UringIo::new`] with `routes` pinned: no probe changes them (for tests of each path,
    /// and the benches' A/B runs).
    pub fn with_routes(routes: Routes) -> io::Result<UringIo> {
        let io = UringIo::new()?;
        io.routing.bits.store(routes.to_bits(), Ordering::Relaxed);
        io.routing.pinned.store(true, Ordering::Relaxed);
        Ok(io)
    }

    /// The routes in use now.
    #[must_use]
    pub fn routes(&self) -> Routes {
        self.routing.routes()
    }

    /// Measures each class of operation both ways on an anonymous file in `dir` (see
    /// [`crate::route`]), `fdatasync` too if `with_sync`; the figures of docs/io.md. Changes
    /// nothing.
    pub fn measure(&self, dir: &Path, with_sync: bool) -> io::Result<route::Probe> {
        route::measure(dir, |file| self.probe_file(file), with_sync)
    }

    fn probe_file(&self, file: File) -> Box<dyn ProbeFile> {
        Box::new(UringFile {
            file,
            ring: Ring::unstarted(),
            faults: Arc::default(),
            routing: Arc::clone(&self.routing),
        })
    }

    /// After the next `ok_count` successful `fdatasync` completions of this backend's files
    /// (opened before or after this call), every successful one reports `-errno` instead;
    /// `errno == 0` stops the faults. The sync itself still runs: the fault is in what the
    /// engine is told, as when the kernel reports a failed writeback. For tests of the
    /// engine's reaction to a failed sync; it costs one atomic load per sync otherwise.
    #[doc(hidden)]
    pub fn fail_syncs_after(&self, ok_count: u64, errno: i32) {
        self.faults.sync_ok_left.store(ok_count, Ordering::Relaxed);
        self.faults.sync_errno.store(errno, Ordering::Relaxed);
    }

    /// A file on io_uring; its ring comes with its first read, write or sync.
    fn file(&self, file: File) -> Box<dyn IoFile> {
        Box::new(UringFile {
            file,
            ring: Ring::unstarted(),
            faults: Arc::clone(&self.faults),
            routing: Arc::clone(&self.routing),
        })
    }
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

    fn routing(&self) -> &'static str {
        self.routing.routes().describe()
    }

    /// Measures the ring against system calls on `dir`'s file system, once per process and
    /// file system, and routes each class of operation the faster way; pinned routes stay.
    fn probe_dir(&self, dir: &Path) -> io::Result<()> {
        if self.routing.pinned.load(Ordering::Relaxed) {
            return Ok(());
        }
        let routes = route::routes_for_dir(dir, |file| self.probe_file(file))?;
        self.routing.bits.store(routes.to_bits(), Ordering::Relaxed);
        Ok(())
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        StdIo.create_dir_all(dir)
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        StdIo.hard_link(from, to)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        StdIo.list_dir(dir)
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<IoLock>> {
        StdIo.try_lock(path)
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        Ok(self.file(OpenOptions::new().read(true).write(true).create_new(true).open(path)?))
    }

    fn open_read_write(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        Ok(self.file(OpenOptions::new().read(true).write(true).open(path)?))
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        Ok(self.file(File::open(path)?))
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
    /// `EAGAIN` completion. `is_sync` says the entry is an `fdatasync` (for injected faults).
    ///
    /// # Safety
    ///
    /// As [`Ring::submit_and_reap`]: the buffers `entry` names stay valid until this returns.
    unsafe fn run_one(
        &self,
        entry: impl Fn() -> squeue::Entry,
        is_sync: bool,
    ) -> io::Result<usize> {
        let mut retries = 0;
        loop {
            let mut result = [0];
            // SAFETY: forwarded from this function's contract.
            unsafe { self.ring.submit_and_reap(&[entry()], &mut result) }?;
            if is_sync {
                result[0] = self.faults.sync_result(result[0]);
            }
            match completion(result[0]) {
                Err(error) if is_retryable(&error) && retries < RETRIES_MAX => retries += 1,
                outcome => return outcome,
            }
        }
    }

    fn fdatasync_entry(&self) -> squeue::Entry {
        opcode::Fsync::new(self.fd()).flags(types::FsyncFlags::DATASYNC).build()
    }

    /// Writes `parts` back to back from `offset` as pieces (each part, or chunks of it; see
    /// [`chunk_bytes`]), in windows of up to [`WINDOW_WRITES_MAX`] writes submitted in one
    /// `io_uring_enter` and in flight together; then, if `sync`, an `fdatasync` rides in the
    /// last window (see [`UringFile::write_window`]).
    fn write_windows(&self, parts: &[&[u8]], offset: u64, sync: bool) -> io::Result<()> {
        let total_bytes = parts.iter().map(|part| part.len()).sum();
        let mut pieces = pieces(parts, offset, chunk_bytes(total_bytes)).peekable();
        loop {
            let mut window = [Piece::EMPTY; WINDOW_WRITES_MAX];
            let mut count = 0;
            for (slot, piece) in window.iter_mut().zip(pieces.by_ref()) {
                *slot = piece;
                count += 1;
            }
            let last = pieces.peek().is_none();
            self.write_window(&window[..count], sync && last)?;
            if last {
                return Ok(());
            }
        }
    }

    /// Submits `window`'s writes (and an `fdatasync` after them if `sync`) in one
    /// `io_uring_enter`, reaps every completion, then finishes what the kernel left undone one
    /// call at a time: the rest of a short, interrupted or cancelled write, and the sync.
    ///
    /// The writes are independent: the kernel may run them in any order or at once (they never
    /// overlap). The `fdatasync` must start only after they all completed: after a single
    /// write (a log commit) it is linked to it (`IO_LINK`: a short or failed write cancels the
    /// sync with `ECANCELED`); after several (a segment's chunks, a commit of several parts)
    /// it drains them (`IO_DRAIN`: it starts once every entry submitted before it completed,
    /// and nothing else is in flight on this file's ring). Either way a sync after a write
    /// that was not whole counts for nothing and is redone after the rest is written.
    fn write_window(&self, window: &[Piece<'_>], sync: bool) -> io::Result<()> {
        assert!(window.len() <= WINDOW_WRITES_MAX && (sync || !window.is_empty()));
        let mut entries: [squeue::Entry; RING_ENTRIES] =
            std::array::from_fn(|_| opcode::Nop::new().build());
        let mut lengths = [0; WINDOW_WRITES_MAX];
        for ((entry, length), piece) in entries.iter_mut().zip(&mut lengths).zip(window) {
            *length = piece.bytes.len();
            let len =
                u32::try_from(piece.bytes.len()).expect("a piece is at most TRANSFER_BYTES_MAX");
            let write = opcode::Write::new(self.fd(), piece.bytes.as_ptr(), len)
                .offset(piece.offset)
                .build();
            *entry =
                if sync && window.len() == 1 { write.flags(squeue::Flags::IO_LINK) } else { write };
        }
        let count = window.len() + usize::from(sync);
        if sync {
            let fdatasync = self.fdatasync_entry();
            entries[window.len()] =
                if window.len() > 1 { fdatasync.flags(squeue::Flags::IO_DRAIN) } else { fdatasync };
        }
        let mut results = [0; RING_ENTRIES];
        // SAFETY: the buffer ownership contract (module docs). Each write names at most
        // `piece.bytes.len()` bytes of `piece.bytes`, which borrows from the caller's `parts`
        // for this whole call; `submit_and_reap` returns only after it reaped the completion
        // of every entry the kernel consumed (and never submits the others), so the kernel is
        // done reading every buffer before this call can return or unwind. The fdatasync
        // names no buffer.
        unsafe { self.ring.submit_and_reap(&entries[..count], &mut results[..count]) }?;
        if sync {
            results[window.len()] = self.faults.sync_result(results[window.len()]);
        }
        let settled = settle(&lengths[..window.len()], &results[..count])?;
        for (piece, &written) in window.iter().zip(&settled.written) {
            if written < piece.bytes.len() {
                self.write_by_ring(&piece.bytes[written..], piece.offset + written as u64)?;
            }
        }
        if sync && !settled.synced { self.sync_data() } else { Ok(()) }
    }
}

/// One write of a window: bytes, and the file offset they go to.
#[derive(Clone, Copy, Debug)]
struct Piece<'a> {
    bytes: &'a [u8],
    offset: u64,
}

impl Piece<'_> {
    const EMPTY: Piece<'static> = Piece { bytes: &[], offset: 0 };
}

/// The size of the chunks a write of `total_bytes` is cut into: one window's worth (a seventh,
/// in whole pages), at least [`CHUNK_BYTES_MIN`], at most [`TRANSFER_BYTES_MAX`].
fn chunk_bytes(total_bytes: usize) -> usize {
    let chunk = total_bytes.div_ceil(WINDOW_WRITES_MAX).next_multiple_of(CHUNK_ALIGN_BYTES);
    chunk.clamp(CHUNK_BYTES_MIN, TRANSFER_BYTES_MAX)
}

/// `parts`, written back to back from `offset`, cut into pieces of at most `chunk_bytes`, in
/// order; empty parts give none.
fn pieces<'a>(
    parts: &'a [&'a [u8]],
    offset: u64,
    chunk_bytes: usize,
) -> impl Iterator<Item = Piece<'a>> {
    let mut position = offset;
    parts.iter().flat_map(move |part| {
        let start = position;
        position += part.len() as u64;
        part.chunks(chunk_bytes)
            .zip((start..).step_by(chunk_bytes))
            .map(|(bytes, offset)| Piece { bytes, offset })
    })
}

impl UringFile {
    fn routes(&self) -> Routes {
        self.routing.routes()
    }

    /// The method for a write of `len` bytes.
    fn write_method(&self, len: usize) -> Method {
        let routes = self.routes();
        if len >= LARGE_WRITE_BYTES_MIN { routes.large_write } else { routes.small_write }
    }

    /// `fdatasync` on this thread, its result subject to the injected faults as the ring's.
    fn sync_by_syscall(&self) -> io::Result<()> {
        let result = match self.file.sync_data() {
            Ok(()) => 0,
            Err(error) => -error.raw_os_error().unwrap_or(libc::EIO),
        };
        completion(self.faults.sync_result(result)).map(drop)
    }

    fn read_by_ring(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            let len = buf.len().min(TRANSFER_BYTES_MAX);
            let target = buf.as_mut_ptr();
            let entry = || opcode::Read::new(self.fd(), target, len as u32).offset(offset).build();
            // SAFETY: the read writes at most `len` bytes into `buf`, which is exclusively
            // borrowed for this whole call; `run_one` returns only after the read's
            // completion is reaped, so the kernel is done writing before the borrow ends.
            let read = unsafe { self.run_one(entry, false) }?;
            if read == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            buf = &mut buf[read.min(len)..];
            offset += read as u64;
        }
        Ok(())
    }

    /// Up to [`CHUNK_BYTES_MIN`]: one write, resubmitted for the rest after a short one.
    /// Longer: chunks in flight together (see [`UringFile::write_windows`]).
    fn write_by_ring(&self, mut bytes: &[u8], mut offset: u64) -> io::Result<()> {
        if bytes.len() > CHUNK_BYTES_MIN {
            return self.write_windows(&[bytes], offset, false);
        }
        while !bytes.is_empty() {
            let len = u32::try_from(bytes.len()).expect("at most CHUNK_BYTES_MIN");
            let source = bytes.as_ptr();
            let entry = || opcode::Write::new(self.fd(), source, len).offset(offset).build();
            // SAFETY: the write reads at most `len` bytes of `bytes`, borrowed for this whole
            // call; `run_one` returns only after the write's completion is reaped.
            let written = unsafe { self.run_one(entry, false) }?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            // A short write: resubmit the remainder.
            bytes = &bytes[written.min(bytes.len())..];
            offset += written as u64;
        }
        Ok(())
    }

    fn sync_by_ring(&self) -> io::Result<()> {
        // SAFETY: an fdatasync names no buffer.
        unsafe { self.run_one(|| self.fdatasync_entry(), true) }.map(drop)
    }
}

impl ProbeFile for UringFile {
    fn file(&self) -> &File {
        &self.file
    }

    fn write_by(&self, method: Method, bytes: &[u8], offset: u64) -> io::Result<()> {
        match method {
            Method::Syscall => self.file.write_all_at(bytes, offset),
            Method::Ring => self.write_by_ring(bytes, offset),
        }
    }

    fn sync_by(&self, method: Method) -> io::Result<()> {
        match method {
            Method::Syscall => self.sync_by_syscall(),
            Method::Ring => self.sync_by_ring(),
        }
    }

    fn read_by(&self, method: Method, buf: &mut [u8], offset: u64) -> io::Result<()> {
        match method {
            Method::Syscall => self.file.read_exact_at(buf, offset),
            Method::Ring => self.read_by_ring(buf, offset),
        }
    }
}

impl IoFile for UringFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.read_by(self.routes().read, buf, offset)
    }

    fn write_all_at(&self, bytes: &[u8], offset: u64) -> io::Result<()> {
        self.write_by(self.write_method(bytes.len()), bytes, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync_by(self.routes().sync)
    }

    fn len_bytes(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    /// One group commit, or a whole segment: [`UringFile::write_windows`] with the sync. A log
    /// commit (one small part) is a single `io_uring_enter` of a write linked to an
    /// `fdatasync`; a segment of `n` MiB is `ceil(n / 7)` windows of 1 MiB writes in flight
    /// together, the last window's writes linked to the `fdatasync`.
    ///
    /// Where the routes put the writes or the sync on system calls, the writes go their way
    /// part by part and the sync its own.
    fn write_all_at_and_sync(&self, parts: &[&[u8]], offset: u64) -> io::Result<()> {
        let total_bytes = parts.iter().map(|part| part.len()).sum();
        if self.write_method(total_bytes) == Method::Ring && self.routes().sync == Method::Ring {
            return self.write_windows(parts, offset, true);
        }
        let mut position = offset;
        for part in parts {
            self.write_by(self.write_method(total_bytes), part, position)?;
            position += part.len() as u64;
        }
        self.sync_data()
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

/// What one window achieved: bytes written per write, and whether its `fdatasync` (if it had
/// one) covered all of them.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Settled {
    /// Bytes written of write `i`, at `written[i]`; zero past the window's writes.
    pub(crate) written: [usize; WINDOW_WRITES_MAX],
    pub(crate) synced: bool,
}

/// Reads the completions of a window: `results[i]` for the write of `lengths[i]` bytes, then,
/// if there is one more result, the `fdatasync`'s. A short write, or one cancelled
/// (`ECANCELED`) or interrupted (`EINTR`, `EAGAIN`), leaves a remainder to write; the sync
/// counts only if it succeeded after every write was whole. Any other error is returned, the
/// first in submission order: a failed `fdatasync` is the engine's cue to turn read-only.
pub(crate) fn settle(lengths: &[usize], results: &[i32]) -> io::Result<Settled> {
    assert!(lengths.len() <= WINDOW_WRITES_MAX, "a window's writes fit in the ring");
    assert!(
        results.len() == lengths.len() || results.len() == lengths.len() + 1,
        "one result per write, then the sync's if there is one"
    );
    let mut written = [0; WINDOW_WRITES_MAX];
    for ((&length, &result), bytes) in lengths.iter().zip(results).zip(&mut written) {
        *bytes = match completion(result) {
            Ok(count) => count.min(length),
            Err(error) if is_retryable(&error) || result == -libc::ECANCELED => 0,
            Err(error) => return Err(error),
        };
    }
    let whole = lengths.iter().zip(&written).all(|(&length, &bytes)| bytes == length);
    let synced =
        match results.get(lengths.len()).copied().map(|result| (result, completion(result))) {
            None => false,
            Some((_, Ok(_))) => whole,
            Some((result, Err(error))) if is_retryable(&error) || result == -libc::ECANCELED => {
                false
            }
            Some((_, Err(error))) => return Err(error),
        };
    Ok(Settled { written, synced })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANCELED: i32 = -libc::ECANCELED;

    fn check(results: &[i32], expect: Result<(&[usize], bool), i32>) {
        let lengths = [4, 5];
        let got = settle(&lengths, results).map_err(|error| error.raw_os_error().unwrap());
        let expect = expect.map(|(written_parts, synced)| {
            let mut written = [0; WINDOW_WRITES_MAX];
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
        // A window without a sync (chunks of a long unsynced write, never linked).
        check(&[4, 5], Ok((&[4, 5], false)));
        check(&[1, -libc::EAGAIN], Ok((&[1, 0], false)));
        check(&[-libc::EIO, 5], Err(libc::EIO));
    }

    #[test]
    fn a_write_is_cut_into_one_window_of_whole_page_chunks() {
        assert_eq!(chunk_bytes(0), CHUNK_BYTES_MIN);
        assert_eq!(chunk_bytes(3 << 20), CHUNK_BYTES_MIN);
        assert_eq!(chunk_bytes(7 << 20), CHUNK_BYTES_MIN);
        assert_eq!(chunk_bytes((7 << 20) + 1), CHUNK_BYTES_MIN + CHUNK_ALIGN_BYTES);
        let chunk = chunk_bytes(64 << 20);
        assert!(chunk.is_multiple_of(CHUNK_ALIGN_BYTES) && chunk * 7 >= 64 << 20);
        assert!(chunk * 6 < 64 << 20, "seven chunks, the last one short");
        assert_eq!(chunk_bytes(usize::MAX), TRANSFER_BYTES_MAX);
    }

    #[test]
    fn pieces_cut_parts_into_chunks_at_their_offsets() {
        let big = vec![7; CHUNK_BYTES_MIN * 2 + 3];
        let parts: [&[u8]; 4] = [b"ab", b"", &big, b"c"];
        let got: Vec<(usize, u64)> = pieces(&parts, 10, CHUNK_BYTES_MIN)
            .map(|piece| (piece.bytes.len(), piece.offset))
            .collect();
        let chunk = CHUNK_BYTES_MIN as u64;
        let chunk_len = CHUNK_BYTES_MIN;
        let expect = [(2, 10), (chunk_len, 12), (chunk_len, 12 + chunk), (3, 12 + 2 * chunk)];
        assert_eq!(got, [&expect[..], &[(1, 15 + 2 * chunk)]].concat());
    }
}
