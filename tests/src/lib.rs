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
