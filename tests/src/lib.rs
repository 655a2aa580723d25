//! ZVerse's integration, model, crash and fault tests, and [`sim_io::SimIo`], the simulated
//! disk they run the engine on. The core's own tests live beside its code in `core/`.

pub mod backend;
pub mod sim_io;

pub mod crash_workload;
pub mod oracle;

#[doc(hidden)]
pub mod fuzz_checks;
#[doc(hidden)]
pub mod fuzz_history;
#[doc(hidden)]
pub mod fuzz_model;
#[doc(hidden)]
pub mod fuzz_scan;

/// Options that reach every tier with little data, for tests of levels and scans: no sync,
/// every version kept, 8 KiB memtables, 512-byte blocks, 4 KiB segments and level base, each
/// level twice the one above, compaction at two level-0 segments.
#[must_use]
pub fn tiny_tiers_options() -> zverse::Options {
    zverse::Options::default()
        .durability(zverse::Durability::None)
        .retention(zverse::Retention::All)
        .memtable_bytes_max(8 << 10)
        .segment_block_bytes(512)
        .segment_bytes_target(4 << 10)
        .level_base_bytes(4 << 10)
        .level_size_ratio(2)
        .compaction_trigger_segments(2)
}
