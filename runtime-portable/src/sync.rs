//! The atomics, locks and thread primitives of the engine's lock-free protocols (the commit
//! leader hand-off in `commit.rs`, segment retirement in `segment_file.rs`): std's normally,
//! loom's under `--cfg loom`, so that the loom models check the real code, not a copy of it.
//! (The same switch as `zverse_core`'s `sync` module.)

#[cfg(loom)]
pub(crate) use loom::sync::Mutex;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Ordering, fence,
};
#[cfg(loom)]
pub(crate) mod thread {
    pub(crate) use loom::thread::{Thread, current, park, yield_now};
}

#[cfg(not(loom))]
pub(crate) use std::sync::Mutex;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Ordering, fence,
};
#[cfg(not(loom))]
pub(crate) use std::thread;

/// Locks a std mutex (not loom's: the engine's other locks are not modelled). Every critical
/// section leaves its state consistent before anything can panic, so a poisoned lock still
/// guards consistent state.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
