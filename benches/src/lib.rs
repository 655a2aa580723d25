//! ZVerse's benchmarks. The criterion benches are in `benches/benches/`; run them with
//! `cargo bench -p zverse-benches`. This library holds what more than one bench uses. The
//! side-by-side peer comparison is `benches/peers/`, behind the `peers` feature: run it with
//! `benches/run-peers.sh` (see `benches/README.md`).

use std::time::{Duration, Instant};

pub mod temporal;
pub mod zipfian;

use zverse::Db;

pub mod sync_audit;

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

/// Nanoseconds this thread has run on a CPU (Linux's `/proc/thread-self/schedstat`), so that
/// a loaded machine's time slicing does not count against a profile bench; `None` elsewhere.
#[must_use]
pub fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// Prints a profile bench's rates: ops and items per second of wall time and, where
/// [`thread_cpu_ns`] reads, per CPU second of this thread since `cpu_start_ns`.
pub fn print_rates(
    requested: &str,
    ops: u64,
    items: u64,
    elapsed_s: f64,
    cpu_start_ns: Option<u64>,
) {
    #[allow(clippy::cast_precision_loss, reason = "a rate")]
    let (op_rate, item_rate) = (ops as f64 / elapsed_s, items as f64 / elapsed_s);
    println!(
        "{requested}: {op_rate:.0} ops/s, {item_rate:.0} items/s ({ops} ops, {elapsed_s:.1} s)"
    );
    if let (Some(end_ns), Some(start_ns)) = (thread_cpu_ns(), cpu_start_ns) {
        #[allow(clippy::cast_precision_loss, reason = "a rate")]
        let cpu_s = end_ns.saturating_sub(start_ns) as f64 / 1e9;
        #[allow(clippy::cast_precision_loss, reason = "a rate")]
        let (op_rate, item_rate) = (ops as f64 / cpu_s, items as f64 / cpu_s);
        println!("{requested} per thread CPU s: {op_rate:.0} ops, {item_rate:.0} items");
    }
}
