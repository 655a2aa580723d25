//! ZVerse's benchmarks. The criterion benches are in `benches/benches/`; run them with
//! `cargo bench -p zverse-benches`. This library holds what more than one bench uses. The
//! side-by-side peer comparison is `benches/peers/`, behind the `peers` feature: run it with
//! `benches/run-peers.sh` (see `benches/README.md`).

use std::time::{Duration, Instant};

pub mod temporal;
pub mod zipfian;

use zverse::Db;

/// Whether the bench binary runs under `cargo test --benches` (criterion's test mode: one pass
/// per benchmark, so the benches shrink their datasets) rather than `cargo bench`.
#[must_use]
pub fn is_test_mode() -> bool {
    !std::env::args().any(|arg| arg == "--bench")
}

/// `count` keys of `N` random bytes from `rng`: the same keys for the same seed, so every run
/// writes and reads the same data.
#[must_use]
pub fn random_keys<const N: usize>(rng: &mut fastrand::Rng, count: usize) -> Vec<[u8; N]> {
    (0..count)
        .map(|_| {
            let mut key = [0u8; N];
            rng.fill(&mut key);
            key
        })
        .collect()
}

/// Puts `value` under every key of `keys`, split over `thread_count` writers; returns the time
/// until the last put returned.
///
/// # Panics
///
/// If a put fails: a benchmark has nothing sensible to do with a failed write.
pub fn timed_fill<K: AsRef<[u8]> + Sync>(
    db: &Db,
    keys: &[K],
    value: &[u8],
    thread_count: usize,
) -> Duration {
    let chunk_len = keys.len().div_ceil(thread_count.max(1)).max(1);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for chunk in keys.chunks(chunk_len) {
            scope.spawn(move || {
                for key in chunk {
                    db.put(key.as_ref(), value).expect("put");
                }
            });
        }
    });
    start.elapsed()
}
