//! [`Pins`]: the versions live snapshots pin, which compaction keeps. Striped by thread, so
//! that threads taking and dropping snapshots (every transaction does) rarely share a lock,
//! and kept in vectors, which keep their memory when the last pin goes.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use zverse_core::Version;

use crate::sync::lock;

/// Stripes: more than the threads that usually share a database's cores.
const SHARD_COUNT: usize = 8;

/// The next thread's stripe, handed out round robin.
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

std::thread_local! {
    static THREAD_SHARD: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARD_COUNT;
}

/// Versions pinned by live snapshots, with their counts.
#[derive(Debug, Default)]
pub(crate) struct Pins {
    /// Each sorted by version, no duplicates, counts above zero.
    shards: [Mutex<Vec<(Version, usize)>>; SHARD_COUNT],
}

/// Where a pin is, to unpin it from any thread.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pin {
    pub version: Version,
    shard: usize,
}

impl Pins {
    /// Pins the version `choose` returns, called under the stripe's lock: a reader of the
    /// pins ([`Pins::versions`]) either sees the pin or ran before the version was chosen.
    pub(crate) fn pin(&self, choose: impl FnOnce() -> Version) -> Pin {
        let shard = THREAD_SHARD.with(|shard| *shard);
        let mut pins = lock(&self.shards[shard]);
        let version = choose();
        match pins.binary_search_by_key(&version, |&(pinned, _)| pinned) {
            Ok(index) => pins[index].1 += 1,
            Err(index) => pins.insert(index, (version, 1)),
        }
        Pin { version, shard }
    }

    /// Releases `pin`; returns whether that was its stripe's last pin of its version (another
    /// stripe may still pin it).
    pub(crate) fn unpin(&self, pin: Pin) -> bool {
        let mut pins = lock(&self.shards[pin.shard]);
        let Ok(index) = pins.binary_search_by_key(&pin.version, |&(pinned, _)| pinned) else {
            return false;
        };
        pins[index].1 -= 1;
        let released = pins[index].1 == 0;
        if released {
            pins.remove(index);
        }
        released
    }

    /// Whether a live snapshot pins `version`.
    pub(crate) fn contains(&self, version: Version) -> bool {
        self.shards
            .iter()
            .any(|shard| lock(shard).binary_search_by_key(&version, |&(pinned, _)| pinned).is_ok())
    }

    /// Every pinned version, sorted, no duplicates.
    pub(crate) fn versions(&self) -> Vec<Version> {
        let mut versions: Vec<Version> = Vec::new();
        for shard in &self.shards {
            versions.extend(lock(shard).iter().map(|&(version, _)| version));
        }
        versions.sort_unstable();
        versions.dedup();
        versions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_count_across_threads_and_unpin_from_any() {
        let pins = Pins::default();
        let v = Version::new;
        let here = pins.pin(|| v(5));
        let again = pins.pin(|| v(5));
        let shared = &pins;
        let there = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..SHARD_COUNT as u64)
                .map(|i| scope.spawn(move || shared.pin(|| v(3 + i % 2))))
                .collect();
            threads.into_iter().map(|thread| thread.join().unwrap()).collect::<Vec<_>>()
        });
        assert_eq!(pins.versions(), vec![v(3), v(4), v(5)]);
        for pin in there {
            pins.unpin(pin);
        }
        assert_eq!(pins.versions(), vec![v(5)]);
        pins.unpin(here);
        assert!(pins.contains(v(5)), "a second snapshot still pins it");
        pins.unpin(again);
        assert!(!pins.contains(v(5)));
        assert!(pins.versions().is_empty());
    }
}
