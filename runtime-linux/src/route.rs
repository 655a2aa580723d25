//! Which way [`UringIo`](crate::UringIo) does each class of operation: through the ring or by
//! a plain system call, decided by measuring both on the database's file system when a
//! database opens ([`probe`]), once per process and file system.
//!
//! Why measure rather than decide by file system type: whether the ring wins depends on
//! whether the kernel can complete the operation without handing it to an `io-wq` worker
//! thread, which changes with the file system, its mount options and the kernel version
//! (ext4 on Linux 6.18 punts every buffered write; XFS and btrfs have non-blocking buffered
//! writes). A table would go stale with the next kernel; a probe of a few milliseconds on an
//! anonymous `O_TMPFILE` (no name, gone when closed, never left behind by a crash) measures
//! the machine the database runs on. Figures: docs/io.md.
//!
//! `fdatasync` is the exception, not measured at open: io_uring has no non-blocking fsync on
//! any file system and always hands it to a worker thread, so the ring can only add a
//! hand-off to it; and a sync takes milliseconds under load, so a handful of them would decide
//! by noise. It is always a system call (the probe's figures for it are in docs/io.md).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// One way to do an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Method {
    /// `pwrite`, `pread` or `fdatasync` on the calling thread.
    Syscall,
    /// A submission to the file's io_uring ring.
    Ring,
}

/// The method of each class of operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Routes {
    /// Writes up to [`LARGE_WRITE_BYTES_MIN`] (log frames, manifest, headers).
    pub small_write: Method,
    /// `fdatasync`.
    pub sync: Method,
    /// Longer writes (segments), cut into chunks in flight together on the ring.
    pub large_write: Method,
    /// Positional reads (log replay, the manifest).
    pub read: Method,
}

/// Writes longer than this are "large" (segment chunks); shorter ones are "small".
pub const LARGE_WRITE_BYTES_MIN: usize = 64 << 10;

/// The ring must take less than this fraction of a system call's median time to be chosen: a
/// wrong choice of the ring costs a worker thread hand-off per call, a wrong choice of the
/// system call at most the margin.
const RING_WINS_BELOW: f64 = 0.8;

impl Routes {
    /// Everything through the ring (what `UringIo::new` does until a probe decides).
    pub const RING: Routes = Routes {
        small_write: Method::Ring,
        sync: Method::Ring,
        large_write: Method::Ring,
        read: Method::Ring,
    };

    /// Everything by system call.
    pub const SYSCALLS: Routes = Routes {
        small_write: Method::Syscall,
        sync: Method::Syscall,
        large_write: Method::Syscall,
        read: Method::Syscall,
    };

    pub(crate) fn to_bits(self) -> u8 {
        let bit = |method: Method, shift: u8| u8::from(method == Method::Ring) << shift;
        bit(self.small_write, 0) | bit(self.sync, 1) | bit(self.large_write, 2) | bit(self.read, 3)
    }

    pub(crate) fn from_bits(bits: u8) -> Routes {
        let method =
            |shift: u8| if bits >> shift & 1 == 1 { Method::Ring } else { Method::Syscall };
        Routes { small_write: method(0), sync: method(1), large_write: method(2), read: method(3) }
    }

    /// What `stats().io_routing` says, e.g. "log writes: pwrite, syncs: fdatasync, segment
    /// writes: ring, reads: ring".
    #[must_use]
    pub fn describe(self) -> &'static str {
        static NAMES: [OnceLock<String>; 16] = [const { OnceLock::new() }; 16];
        let name = |method: Method, syscall: &'static str| match method {
            Method::Syscall => syscall,
            Method::Ring => "ring",
        };
        NAMES[usize::from(self.to_bits())].get_or_init(|| {
            format!(
                "log writes: {}, syncs: {}, segment writes: {}, reads: {}",
                name(self.small_write, "pwrite"),
                name(self.sync, "fdatasync"),
                name(self.large_write, "pwrite"),
                name(self.read, "pread"),
            )
        })
    }
}

/// Median times of each class of operation both ways, from one [`measure`] run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Probe {
    /// A [`SMALL_WRITE_BYTES`]-byte write into the page cache: (system call, ring).
    pub small_write: (Duration, Duration),
    /// `fdatasync` after a 100-byte write into an already written region: (system call,
    /// ring); measured only when asked for (never at a database's open).
    pub sync: Option<(Duration, Duration)>,
    /// A [`LARGE_WRITE_BYTES`]-byte write: (`pwrite`, chunks in flight on the ring).
    pub large_write: (Duration, Duration),
    /// A [`READ_BYTES`]-byte read of cached bytes: (system call, ring).
    pub read: (Duration, Duration),
}

/// Bytes of the probe's small write (a typical log frame of one small record).
pub const SMALL_WRITE_BYTES: usize = 150;
/// Bytes of the probe's large write (a segment's worth of chunks).
pub const LARGE_WRITE_BYTES: usize = 2 << 20;
/// Bytes of the probe's read.
pub const READ_BYTES: usize = 64 << 10;

impl Probe {
    /// The routes these figures call for: the ring where it is clearly faster.
    #[must_use]
    pub fn routes(&self) -> Routes {
        let pick = |(syscall, ring): (Duration, Duration)| {
            if ring.as_secs_f64() < syscall.as_secs_f64() * RING_WINS_BELOW {
                Method::Ring
            } else {
                Method::Syscall
            }
        };
        Routes {
            small_write: pick(self.small_write),
            sync: Method::Syscall,
            large_write: pick(self.large_write),
            read: pick(self.read),
        }
    }
}

/// The operations a probe times, done one way or the other on one file.
pub(crate) trait ProbeFile {
    fn file(&self) -> &File;
    fn write_by(&self, method: Method, bytes: &[u8], offset: u64) -> io::Result<()>;
    fn sync_by(&self, method: Method) -> io::Result<()>;
    fn read_by(&self, method: Method, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

/// The routes for the file system holding `dir`: measured by [`measure`] the first time this
/// process asks about that file system, remembered after.
pub(crate) fn routes_for_dir(
    dir: &Path,
    open: impl FnOnce(File) -> Box<dyn ProbeFile>,
) -> io::Result<Routes> {
    static KNOWN: Mutex<Vec<(u64, Routes)>> = Mutex::new(Vec::new());
    let device = std::fs::metadata(dir)?.dev();
    let mut known = KNOWN.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(&(_, routes)) = known.iter().find(|(dev, _)| *dev == device) {
        return Ok(routes);
    }
    // Measured under the lock, so that databases opening at once measure once, not together.
    let routes = measure(dir, open, false)?.routes();
    known.push((device, routes));
    Ok(routes)
}

/// Times each class of operation both ways, alternating, on an anonymous file in `dir`, and
/// returns the medians; `fdatasync` too if `with_sync`.
pub(crate) fn measure(
    dir: &Path,
    open: impl FnOnce(File) -> Box<dyn ProbeFile>,
    with_sync: bool,
) -> io::Result<Probe> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o600)
        .open(dir)?;
    let file = open(file);
    let region = vec![0x5A_u8; LARGE_WRITE_BYTES];
    file.file().write_all_at(&region, 0)?;
    file.file().sync_data()?;
    let small = &region[..SMALL_WRITE_BYTES];
    let small_write = time_both(64, |method, i| {
        file.write_by(method, small, (i * SMALL_WRITE_BYTES) as u64 % (1 << 20))
    })?;
    let sync = with_sync.then(|| {
        time_both(16, |method, i| {
            file.file().write_all_at(&region[..100], (i * 4096) as u64)?;
            file.sync_by(method)
        })
    });
    let sync = sync.transpose()?;
    let large_write = time_both(4, |method, _| file.write_by(method, &region, 0))?;
    let mut buf = vec![0; READ_BYTES];
    let read = time_both(16, |method, i| file.read_by(method, &mut buf, (i * 4096) as u64))?;
    Ok(Probe { small_write, sync, large_write, read })
}

/// Runs `op` `count` times each way, alternating (so that drift in the machine's load hits
/// both), and returns the median times (system call, ring).
fn time_both(
    count: usize,
    mut op: impl FnMut(Method, usize) -> io::Result<()>,
) -> io::Result<(Duration, Duration)> {
    let mut syscall = Vec::with_capacity(count);
    let mut ring = Vec::with_capacity(count);
    for i in 0..count {
        for (method, times) in [(Method::Syscall, &mut syscall), (Method::Ring, &mut ring)] {
            let start = Instant::now();
            op(method, i)?;
            times.push(start.elapsed());
        }
    }
    Ok((median(&mut syscall), median(&mut ring)))
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort_unstable();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_round_trip_through_bits_and_describe_themselves() {
        for bits in 0..16 {
            assert_eq!(Routes::from_bits(bits).to_bits(), bits);
        }
        assert_eq!(
            Routes::SYSCALLS.describe(),
            "log writes: pwrite, syncs: fdatasync, segment writes: pwrite, reads: pread"
        );
        assert_eq!(
            Routes::RING.describe(),
            "log writes: ring, syncs: ring, segment writes: ring, reads: ring"
        );
    }

    #[test]
    fn the_ring_is_chosen_only_where_it_is_clearly_faster() {
        let us = Duration::from_micros;
        let probe = Probe {
            small_write: (us(2), us(10)),
            sync: Some((us(130), us(20))),
            large_write: (us(500), us(300)),
            read: (us(10), us(7)),
        };
        let routes = probe.routes();
        assert_eq!(routes.small_write, Method::Syscall, "slower on the ring");
        assert_eq!(routes.sync, Method::Syscall, "always: the ring hands every sync to a worker");
        let close = Probe { read: (us(10), us(9)), ..probe };
        assert_eq!(close.routes().read, Method::Syscall, "faster by less than the margin");
        assert_eq!(routes.large_write, Method::Ring);
        assert_eq!(routes.read, Method::Ring);
    }
}
