//! History segments: a key's superseded versions, ordered along a Z-curve in *rank space*.
//!
//! The engine's compaction demotes superseded versions into these (ARCHITECTURE.md, "Current
//! and history"); this module is the format, its builder and its reader.
//!
//! A history segment sorts its entries by the Morton code of (key ordinal, version ordinal):
//! each key's rank among the segment's distinct keys and each version's rank among its
//! distinct versions, both stretched to 32 bits ([`format`]'s `coordinate`). Whatever the keys
//! look like (random, or sharing a 24-byte prefix as SurrealDB's `/*ns*db*tb*` keys do) and
//! however the versions are spread in time, the points then fill the square evenly, so a block
//! covers about as large a share of the keys as of the versions and a box `keys x versions`
//! prunes in both dimensions. A key is stored once (key table) and a version once (version
//! table); an entry holds the two ordinals and its value.
//!
//! A file, front to back (byte by byte in `docs/format.md`, "History segment format"):
//!
//! 1. data blocks, each followed by its XXH3-64 checksum: entries in Z order of their ordinals;
//! 2. the block index: per block its offset, length, first code and zone map (min/max key and
//!    version ordinal);
//! 3. the key table: per key its start in the key bytes and the start of its run in the
//!    key-order index, a sentinel row, then the keys back to back;
//! 4. the version table: the distinct versions, ascending;
//! 5. the key-order index: per entry (version ordinal, entry offset), keys ascending and each
//!    key's versions descending, so `get_at` and `history` binary-search and read one entry;
//! 6. the footer: magic `ZVHISTRY`, format version, counts, each section's offset, length and
//!    checksum, and its own checksum.
//!
//! **Invariant:** `HistorySegment::open` checks everything but the data blocks; each block is
//! checksummed, and each entry checked against the counts, its zone map and the Z order, every
//! time a query reads it. No input makes the reader panic or read outside the file.

#[cfg(feature = "alloc")]
mod builder;
mod changes;
mod format;
mod reader;

#[cfg(feature = "alloc")]
pub use builder::{HistoryBuilder, HistoryOptions, HistorySummary};
pub use changes::{HistoryChanges, HistoryChangesStats};
pub use format::{FOOTER_LEN, FORMAT_VERSION, MAGIC, ORDINAL_COUNT_MAX};
pub use reader::{HistoryIter, HistoryKeyOrder, HistoryRangeAt, HistorySegment};

#[cfg(all(test, feature = "alloc", not(loom)))]
mod tests;
