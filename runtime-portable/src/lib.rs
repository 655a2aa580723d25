//! ZVerse, the engine on std. Not written yet: this crate will hold `Db` (open, reads, writes,
//! snapshots, recovery, compaction) generic over an `Io` backend. Today it only re-exports the
//! core types that are already real.

pub use zverse_core::Version;
