//! The immutable segment format: a [`SegmentBuilder`] that writes entries given in Z order (or
//! in key order, [`Order::Key`], for current segments: no key index, block keys instead) to
//! a [`Sink`] (its metadata in `Vec`s with `alloc`, or in a caller-sized [`FixedStorage`]), and a zero-copy [`Segment`] reader over the file's
//! bytes with the queries the engine's read path and compaction need.
//!
//! A segment file, front to back (the byte-by-byte specification is in `docs/format.md`,
//! "Segment file format"):
//!
//! 1. data blocks, each followed by its XXH3-64 checksum: entries in Z order `(M, key)`, each
//!    stored with its full key and version (`block.rs`);
//! 2. the block index: per block its offset, length, first `M` and zone map (`block_index.rs`);
//! 3. the key index: per entry a `u32` offset, sorted by (key asc, version desc), and the
//!    fences over it (`key_index.rs`); in key order, no key index and the block keys in the
//!    fences' place (`block_keys.rs`, read by `key_blocks.rs`);
//! 4. the filter over the keys (`filter_section.rs`);
//! 5. the footer: magic, format version, counts, every section's offset, length and checksum,
//!    and the footer's own checksum (`footer.rs`).
//!
//! [`history`] is the other segment kind: superseded versions in rank-space Z order, with its
//! own magic and reader (not yet written by the engine).
//!
//! **Architecture Invariant:** `Segment::open` checks everything but the data blocks; every
//! data block is checked against its checksum each time a query reads it. No input makes the
//! reader panic or read outside the file.

mod block;
mod block_index;
mod block_keys;
mod builder;
mod bytes;
mod cursor;
mod fence_keys;
mod filter_section;
mod footer;
pub mod history;
mod key_blocks;
mod key_index;
mod key_order;
mod reader;
mod restarts;
mod storage;
mod zone;

pub use crate::bytes::{Sink, SliceFull, SliceSink};
pub use builder::{
    BLOCK_BYTES_TARGET_DEFAULT, BuildError, KEY_REF_BYTES, SegmentBuilder, SegmentOptions,
    SegmentSummary,
};
pub use cursor::{BlockStats, Changes, ChangesStats, Iter, ZOrderCursor};
#[cfg(feature = "alloc")]
pub use fence_keys::FenceKeys;
pub use fence_keys::FenceKeysRef;
pub use footer::{
    FOOTER_LEN, FORMAT_VERSION, FORMAT_VERSION_KEY_ORDER, FORMAT_VERSION_KEY_ORDER_RESTARTS, MAGIC,
    MAGIC_LEN, Order,
};
pub use key_order::{FailOnce, KeyOrderIter, KeyVersions, RangeAt};
pub use reader::Segment;
pub use restarts::{RESTART_BLOCK_BYTES_MIN, RESTART_INTERVAL_DEFAULT};
#[cfg(feature = "alloc")]
pub use storage::VecStorage;
pub use storage::{
    BuilderStorage, EncodedHandle, FilterBlock, FixedStorage, KeyRef, List, ListFull, StorageFull,
    filter_block_count,
};

/// The largest segment file, in bytes: entry offsets in the key index are `u32`.
pub const SEGMENT_LEN_MAX: u64 = u32::MAX as u64;

#[cfg(all(test, feature = "alloc", not(loom)))]
mod tests;
