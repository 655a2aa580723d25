//! ZVerse on Linux: the engine from `zverse` on io_uring where the kernel allows it.
//!
//! [`open`] returns the same [`zverse::Db`] as `zverse::Db::open`, running on [`UringIo`]
//! (Linux only) after a probe proves io_uring works, and on the portable std backend where
//! the kernel refuses it (`ENOSYS` on old kernels, `EPERM` under a seccomp filter or
//! `kernel.io_uring_disabled`). The fallback is said once per process on stderr, and
//! `stats().io_backend` names the backend in use ("io_uring" or "std"). [`open_with`] forces
//! a backend.
//!
//! Setting the environment variable `ZVERSE_IO_URING=off` makes the probe fail, as if the
//! kernel refused io_uring: [`Backend::Auto`] then runs on std, and [`Backend::Uring`] fails.
//!
//! On io_uring, each class of operation goes through the ring or by a plain system call, as
//! measured faster on the database's file system when it opens ([`route`]);
//! `stats().io_routing` says which. The measured matrix: `docs/io.md` in the repository.
//!
//! ```
//! # fn main() -> zverse::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let db = zverse_linux::open(dir.path(), zverse::Options::default())?;
//! db.put(b"k", b"v")?;
//! assert!(["io_uring", "std"].contains(&db.stats().io_backend));
//! # Ok(())
//! # }
//! ```
//!
//! The crate also carries the `zverse` command-line tool (`src/bin/zverse`).

#[cfg(target_os = "linux")]
pub mod route;
#[cfg(target_os = "linux")]
mod uring;

use std::io;
use std::path::Path;
use std::sync::{Arc, Once};

#[cfg(target_os = "linux")]
pub use uring::{UringFile, UringIo};
use zverse::io::{Io, StdIo};
use zverse::{Db, Error, Options, Result};

/// The environment variable that turns the io_uring probe off (`ZVERSE_IO_URING=off`).
pub const IO_URING_ENV: &str = "ZVERSE_IO_URING";

/// Which I/O backend a database runs on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// io_uring if the probe succeeds, else the portable std backend (said once on stderr).
    #[default]
    Auto,
    /// io_uring, or fail with [`Error::Io`] when the kernel refuses it.
    Uring,
    /// The portable std backend.
    Portable,
}

/// Opens the database in `path` as `zverse::Db::open` does, on io_uring where available.
pub fn open(path: impl AsRef<Path>, options: Options) -> Result<Db> {
    open_with(path, options, Backend::Auto)
}

/// [`open`] on a chosen backend.
pub fn open_with(path: impl AsRef<Path>, options: Options, backend: Backend) -> Result<Db> {
    Db::open_with_io(path, options, select_io(backend)?)
}

/// The I/O backend [`open_with`] would run on.
pub fn select_io(backend: Backend) -> Result<Arc<dyn Io>> {
    select_io_with(backend, probe)
}

/// [`select_io`] with the probe replaced, so that tests can make it fail.
#[doc(hidden)]
pub fn select_io_with(
    backend: Backend,
    probe: impl FnOnce() -> io::Result<Arc<dyn Io>>,
) -> Result<Arc<dyn Io>> {
    match backend {
        Backend::Portable => Ok(Arc::new(StdIo)),
        Backend::Uring => probe().map_err(|error| {
            Error::Io(io::Error::new(error.kind(), format!("io_uring is unavailable: {error}")))
        }),
        Backend::Auto => Ok(probe().unwrap_or_else(|error| {
            static FALLBACK_SAID: Once = Once::new();
            FALLBACK_SAID.call_once(|| {
                eprintln!("zverse: io_uring is unavailable ({error}); using the std backend");
            });
            Arc::new(StdIo)
        })),
    }
}

/// Creates an io_uring backend and proves it with a no-op, unless `ZVERSE_IO_URING=off`.
pub fn probe() -> io::Result<Arc<dyn Io>> {
    if std::env::var_os(IO_URING_ENV).is_some_and(|value| value == "off") {
        return Err(io::Error::new(io::ErrorKind::Unsupported, format!("{IO_URING_ENV}=off")));
    }
    probe_kernel()
}

#[cfg(target_os = "linux")]
fn probe_kernel() -> io::Result<Arc<dyn Io>> {
    Ok(Arc::new(UringIo::new()?))
}

#[cfg(not(target_os = "linux"))]
fn probe_kernel() -> io::Result<Arc<dyn Io>> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "io_uring exists on Linux only"))
}
