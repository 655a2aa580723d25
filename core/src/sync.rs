//! The atomics and cells the lock-free code uses: `core`'s normally, loom's under `--cfg loom`
//! so that the loom tests model-check the real code, not a copy of it.
//!
//! `UnsafeCell` follows loom's API (`with`, `with_mut`) in both builds, so that every access
//! to shared non-atomic memory is visible to loom.

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;
#[cfg(loom)]
#[allow(unused_imports, reason = "not every build uses every atomic")]
pub(crate) use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

#[cfg(all(not(loom), target_has_atomic = "64"))]
#[allow(unused_imports, reason = "not every build uses every atomic")]
pub(crate) use core::sync::atomic::AtomicU64;
#[cfg(not(loom))]
#[allow(unused_imports, reason = "not every build uses every atomic")]
pub(crate) use core::sync::atomic::{AtomicUsize, Ordering};

/// `core::cell::UnsafeCell` with loom's closure-based API.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

#[cfg(not(loom))]
#[allow(dead_code, reason = "the API mirrors loom's; not every user needs every method")]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> UnsafeCell<T> {
        UnsafeCell(core::cell::UnsafeCell::new(value))
    }

    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}
