//! ZVerse, the engine on std. Being written: today this crate holds the [`io::Io`] trait the
//! engine runs on with its std backend, the [`Error`] and [`Options`] types, and the manifest;
//! `Db` (open, reads, writes, snapshots, recovery, compaction) is not written yet.

mod error;
mod manifest;
pub mod io;
mod options;

pub use error::{Error, Result};
pub use options::{Durability, Options, Retention};
pub use zverse_core::Version;
