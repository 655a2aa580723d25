//! ZVerse's core: everything about the engine that needs no operating system.
//!
//! - [`zkey`]: the interleaving codec that orders (key, version) pairs along a Z-curve, and
//!   the Z-range math (BIGMIN / LITMAX) behind box queries.
//! - [`ring`]: bounded lock-free multi-producer rings that stage records for group commit.
//! - [`record`]: log record framing.
//! - [`log`]: log files: frames of records, and the rule for damage in them.
//! - [`manifest`] (with `alloc`): the codec of the database's list of segments and logs.
//! - [`bytes`]: the checked little-endian reader and writer every format uses.
//! - [`segment`]: the immutable segment format: builder, zero-copy reader, queries.
//! - [`merge`]: k-way merge of sorted sources and the retention (GC) decision.
//! - [`clock`]: the hybrid logical clock that hands out [`Version`]s.
//!
//! `#![no_std]`; nothing allocates unless the `alloc` feature is on; nothing does I/O.
#![no_std]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod bytes;
pub mod checksum;
// The clock is one 64-bit atomic: targets without 64-bit atomics (thumbv7em, most 32-bit
// microcontrollers) build the rest of the core without it.
#[cfg(target_has_atomic = "64")]
pub mod clock;
pub mod entry;
pub mod error;
pub mod filter;
pub mod limits;
pub mod log;
#[cfg(feature = "alloc")]
pub mod manifest;
pub mod merge;
pub mod record;
pub mod ring;
pub mod segment;
mod sync;
pub mod version;
pub mod zkey;

pub use entry::Entry;
pub use error::{Corruption, LimitError};
pub use version::Version;
