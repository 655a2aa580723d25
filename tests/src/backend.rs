//! The I/O backend the real-file tests run on: every test that opens a database in a real
//! directory opens it through [`open`], so that the same suite runs on both backends.
//!
//! [`BACKEND_ENV`] (`ZVERSE_TEST_BACKEND`) names it: `std` (the default) for the portable
//! backend, `io_uring` for `zverse_linux::UringIo`. Asking for io_uring where the kernel
//! refuses it, or for a backend that does not exist, panics: a run that asked for io_uring
//! never passes on std. `scripts/test` runs the suite once per backend.
//!
//! The simulated-disk tests (`SimIo`: the crash sweep, the fault tests, the model's simulated
//! runs) do not go through here: the simulation is itself the backend they test against.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use zverse::io::Io;
use zverse::{Db, Options, Result};
use zverse_linux::Backend;

/// The environment variable naming the backend: `std` (default) or `io_uring`.
pub const BACKEND_ENV: &str = "ZVERSE_TEST_BACKEND";

/// The backend's name, as `Db::stats().io_backend` reports it: "std" or `io_uring`.
///
/// # Panics
///
/// If [`BACKEND_ENV`] names no backend.
#[must_use]
pub fn name() -> &'static str {
    match std::env::var(BACKEND_ENV) {
        Err(std::env::VarError::NotPresent) => "std",
        Ok(value) if value == "std" || value.is_empty() => "std",
        Ok(value) if value == "io_uring" => "io_uring",
        Ok(value) => panic!("{BACKEND_ENV}={value}: expected `std` or `io_uring`"),
        Err(error) => panic!("{BACKEND_ENV}: {error}"),
    }
}

/// The backend, created once per process.
///
/// # Panics
///
/// If [`BACKEND_ENV`] names no backend, or asks for io_uring and the kernel refuses it.
#[must_use]
pub fn io() -> Arc<dyn Io> {
    static IO: OnceLock<Arc<dyn Io>> = OnceLock::new();
    Arc::clone(IO.get_or_init(|| {
        let backend = if name() == "io_uring" { Backend::Uring } else { Backend::Portable };
        zverse_linux::select_io(backend).unwrap_or_else(|error| {
            panic!("{BACKEND_ENV}={}, but it cannot run here: {error}", name())
        })
    }))
}

/// `Db::open` on the backend [`BACKEND_ENV`] names.
///
/// # Errors
///
/// As `Db::open`.
///
/// # Panics
///
/// As [`io`], and if the database reports another backend than the one asked for.
pub fn open(path: impl AsRef<Path>, options: Options) -> Result<Db> {
    let db = Db::open_with_io(path, options, io())?;
    assert_eq!(db.stats().io_backend, name(), "the database runs on the backend asked for");
    Ok(db)
}
