//! ZVerse, the engine on std. Being written: today this crate holds the [`io::Io`] trait the
//! engine will run on and its std backend; `Db` (open, reads, writes, snapshots, recovery,
//! compaction) is not written yet.

pub mod io;

pub use zverse_core::Version;
