//! ZVerse: an embedded, versioned key-value store.
//!
//! Every write gets a [`Version`] (a hybrid-logical-clock timestamp in microseconds), and
//! every version stays readable until retention drops it: read the latest value, a value as
//! of any version, a key's whole history, a key range as of a version, or every change to a
//! key range within a time window.
//!
//! ```
//! # fn main() -> zverse::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! use zverse::{Db, Options};
//!
//! let db = Db::open(dir.path(), Options::default())?;
//! let v1 = db.put(b"user:1", b"alice")?;
//! let v2 = db.put(b"user:1", b"alicia")?;
//! assert_eq!(db.get(b"user:1")?.as_deref(), Some(&b"alicia"[..]));
//! assert_eq!(db.get_at(b"user:1", v1)?.as_deref(), Some(&b"alice"[..]));
//! let changed: Vec<_> = db.changes(.., v1..=v2)?.collect::<Result<_, _>>()?;
//! assert_eq!(changed.len(), 2);
//! # Ok(())
//! # }
//! ```
//!
//! The engine runs on any [`io::Io`] backend: std files here, io_uring in `zverse-linux`,
//! a simulated disk in the crash tests.

mod batch;
mod check;
mod commit;
mod compaction;
mod db;
mod error;
#[doc(hidden)]
pub mod fuzz_hooks;
pub mod io;
mod key_range;
mod locality;
mod log;
mod manifest;
mod memtable;
mod options;
mod read;
mod segment_file;
mod snapshot;
mod stats;
mod sync;
mod tiers;
mod value;

pub use batch::Batch;
pub use check::CheckReport;
pub use db::Db;
pub use error::{Error, Result};
pub use key_range::{KeyRange, prefix_bounds};
pub use locality::LocalityStats;
pub use options::{Durability, Options, Retention};
pub use read::{Change, Changes, History, Range};
pub use snapshot::{KeyValue, Snapshot};
pub use stats::{SegmentResidency, Stats};
pub use value::Value;
pub use zverse_core::Version;
