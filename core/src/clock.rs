//! The hybrid logical clock that hands out [`Version`]s.
//!
//! A version is `max(now_micros, last + 1)`: it tracks wall-clock time while the clock moves
//! forward, and stays strictly increasing when the wall clock stalls, steps back, or many
//! writes land in one microsecond. The runtime supplies `now` (core has no clock) and seeds
//! the clock on recovery with the largest version it found on disk.

use crate::Version;
use crate::sync::{AtomicU64, Ordering};

/// A strictly increasing version source, shared by every writer of a database.
///
/// Lock-free: [`HybridClock::tick`] is one `fetch_update` loop; every failed CAS means another
/// thread's tick succeeded, so the system as a whole always makes progress.
#[derive(Debug)]
pub struct HybridClock {
    /// The last version handed out (or observed). Only ever increases.
    last: AtomicU64,
}

impl HybridClock {
    /// A clock whose first version will be greater than `last`.
    #[must_use]
    pub fn new(last: Version) -> HybridClock {
        HybridClock { last: AtomicU64::new(last.get()) }
    }

    /// The next version: `max(now, last + 1)`, strictly greater than every version this clock
    /// returned or observed before. `None` once `u64::MAX` has been handed out (after which
    /// no version can be strictly greater).
    #[must_use]
    pub fn tick(&self, now: Version) -> Option<Version> {
        // Relaxed suffices: the clock orders versions, not memory. Callers publish what they
        // wrote under a version through their own synchronization (the log and watermark).
        let previous = self
            .last
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
                Some(last.checked_add(1)?.max(now.get()))
            })
            .ok()?;
        let next = previous.checked_add(1)?.max(now.get());
        debug_assert!(next > previous, "versions must strictly increase");
        Some(Version::new(next))
    }

    /// Moves the clock past `version` (a version found on recovery or received from a peer),
    /// so that every later tick is greater than it.
    pub fn observe(&self, version: Version) {
        self.last.fetch_max(version.get(), Ordering::Relaxed);
    }

    /// The last version handed out or observed.
    #[must_use]
    pub fn last(&self) -> Version {
        Version::new(self.last.load(Ordering::Relaxed))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn v(raw: u64) -> Version {
        Version::new(raw)
    }

    #[test]
    fn follows_the_wall_clock_when_it_moves_forward() {
        let clock = HybridClock::new(v(0));
        assert_eq!(clock.tick(v(100)), Some(v(100)));
        assert_eq!(clock.tick(v(250)), Some(v(250)));
    }

    #[test]
    fn strictly_increases_when_the_wall_clock_stalls_or_steps_back() {
        let clock = HybridClock::new(v(0));
        assert_eq!(clock.tick(v(100)), Some(v(100)));
        assert_eq!(clock.tick(v(100)), Some(v(101)));
        assert_eq!(clock.tick(v(50)), Some(v(102)));
    }

    #[test]
    fn seeded_and_observed_versions_are_never_reissued() {
        let clock = HybridClock::new(v(1_000));
        assert_eq!(clock.tick(v(10)), Some(v(1_001)));
        clock.observe(v(5_000));
        clock.observe(v(20)); // Observing the past changes nothing.
        assert_eq!(clock.tick(v(10)), Some(v(5_001)));
        assert_eq!(clock.last(), v(5_001));
    }

    #[test]
    fn exhaustion_is_reported_not_wrapped() {
        let clock = HybridClock::new(v(u64::MAX - 1));
        assert_eq!(clock.tick(v(0)), Some(Version::MAX));
        assert_eq!(clock.tick(v(0)), None);
        assert_eq!(clock.tick(Version::MAX), None);
        assert_eq!(clock.last(), Version::MAX);
    }

    #[test]
    fn concurrent_ticks_are_unique_and_increasing_per_thread() {
        extern crate alloc;
        use alloc::vec::Vec;
        let clock = HybridClock::new(v(0));
        let per_thread: Vec<Vec<u64>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        (0..10_000).map(|_| clock.tick(v(7)).unwrap().get()).collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for versions in &per_thread {
            assert!(versions.windows(2).all(|w| w[0] < w[1]));
        }
        let mut all: Vec<u64> = per_thread.concat();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 40_000, "every version handed out exactly once");
    }
}
