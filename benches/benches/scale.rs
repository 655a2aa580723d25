//! The scale run: fill a database far past the old 4 GiB segment limit with
//! `Retention::All`, and report what stays bounded.
//!
//! One writer commits batches of 100 puts (16-byte keys: an 8-byte hash of the index then the
//! index, so the first bytes spread over the key space; 1,000-byte values), `Durability::None`
//! (the bench measures the storage structure, not fsync). It prints, per 10% of the fill: the
//! fill rate, segments, the largest segment, the open (below target) segments, memtables,
//! stalls; and throughout, sampled every 100 ms from `/proc/self/status`, the peak resident
//! memory (`VmRSS`, which counts mapped segment pages the kernel may reclaim, and `RssAnon`,
//! the engine's own heap). Then it waits for compaction to settle and times point reads of
//! random written keys and range scans of 0.1% of the key space, and prints the disk used.
//!
//! Run: `ZVERSE_SCALE_GIB=8 ZVERSE_SCALE_DIR=/path cargo bench -p zverse-benches --bench
//! scale` (the directory must not exist; it is removed at the end unless
//! `ZVERSE_SCALE_KEEP=1`). `ZVERSE_SCALE_MEMORY_MIB` sets `Options::memory_bytes_max`
//! (default 1024). Under `cargo test --benches` it fills 8 MiB once to check that it works.
#![allow(missing_docs, reason = "a bench binary")]
#![allow(clippy::cast_precision_loss, reason = "rates and sizes printed as floats")]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use zverse::{Db, Durability, Options, Retention};

const VALUE_BYTES: usize = 1_000;
const BATCH_PUTS: u64 = 100;
const READ_COUNT: u64 = 100_000;
const SCAN_COUNT: u64 = 100;

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn key(index: u64) -> [u8; 16] {
    let mut key = [0; 16];
    key[..8].copy_from_slice(&splitmix64(index).to_be_bytes());
    key[8..].copy_from_slice(&index.to_be_bytes());
    key
}

fn value(index: u64) -> [u8; VALUE_BYTES] {
    [(index % 251) as u8; VALUE_BYTES]
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `(VmRSS, RssAnon)` in bytes.
fn memory_now() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmRSS:"), field("RssAnon:"))
}

/// Samples memory every 100 ms; keeps the peaks.
struct Sampler {
    stop: Arc<AtomicBool>,
    rss_peak: Arc<AtomicU64>,
    anon_peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start() -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let rss_peak = Arc::new(AtomicU64::new(0));
        let anon_peak = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, rss_peak, anon_peak) =
                (Arc::clone(&stop), Arc::clone(&rss_peak), Arc::clone(&anon_peak));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let (rss, anon) = memory_now();
                    rss_peak.fetch_max(rss, Ordering::Relaxed);
                    anon_peak.fetch_max(anon, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        Sampler { stop, rss_peak, anon_peak, thread: Some(thread) }
    }

    /// Peaks since the last call, in MiB.
    fn take_peaks_mib(&self) -> (u64, u64) {
        let (rss, anon) = memory_now();
        let rss = self.rss_peak.swap(0, Ordering::Relaxed).max(rss);
        let anon = self.anon_peak.swap(0, Ordering::Relaxed).max(anon);
        (rss >> 20, anon >> 20)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum::<u64>()
    })
}

fn main() {
    let test_mode = zverse_benches::is_test_mode();
    let fill_bytes = if test_mode { 8 << 20 } else { env_u64("ZVERSE_SCALE_GIB", 8) << 30 };
    let memory_bytes = env_u64("ZVERSE_SCALE_MEMORY_MIB", 1024) << 20;
    let dir = std::env::var_os("ZVERSE_SCALE_DIR").map_or_else(
        || std::env::temp_dir().join(format!("zverse-scale-{}", std::process::id())),
        PathBuf::from,
    );
    assert!(!dir.exists(), "{} exists: the scale bench only fills a new directory", dir.display());
    let entry_bytes = (16 + VALUE_BYTES) as u64;
    let entry_count = fill_bytes / entry_bytes;
    let options = Options::default()
        .durability(Durability::None)
        .retention(Retention::All)
        .memory_bytes_max(memory_bytes);
    println!(
        "scale: {} MiB of keys+values ({entry_count} puts), memory_bytes_max {} MiB, in {}",
        fill_bytes >> 20,
        memory_bytes >> 20,
        dir.display()
    );
    let sampler = Sampler::start();
    let db = Db::open(&dir, options).expect("open");
    fill(&db, entry_count, &sampler);
    settle(&db, &sampler);
    read(&db, entry_count);
    let stats = db.stats();
    println!(
        "end: disk {} MiB (segments {} MiB, payload {} MiB), write amplification {:.2}",
        dir_bytes(&dir) >> 20,
        stats.segment_bytes >> 20,
        stats.payload_bytes >> 20,
        stats.write_amplification
    );
    db.close().expect("close");
    drop(db);
    if std::env::var_os("ZVERSE_SCALE_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn print_state(db: &Db, sampler: &Sampler, label: &str) {
    let stats = db.stats();
    let (rss_mib, anon_mib) = sampler.take_peaks_mib();
    println!(
        "{label} | segments {} (open {}), largest {} MiB | memtables {} | stalls {} ({} ms), \
         slowdowns {} | compactions {} | peak RSS {rss_mib} MiB, anon {anon_mib} MiB",
        stats.segment_count,
        stats.segment_count_open,
        stats.segment_bytes_max >> 20,
        stats.memtable_count,
        stats.write_stalls,
        stats.write_stall_micros / 1000,
        stats.write_slowdowns,
        stats.compactions,
    );
}

fn fill(db: &Db, entry_count: u64, sampler: &Sampler) {
    let slice_count = entry_count.div_ceil(10).max(1);
    let started = Instant::now();
    let mut slice_started = Instant::now();
    let mut index = 0;
    while index < entry_count {
        let mut batch = db.batch();
        let end = (index + BATCH_PUTS).min(entry_count);
        for i in index..end {
            batch.put(&key(i), &value(i));
        }
        batch.commit().expect("commit");
        let slice_before = index / slice_count;
        index = end;
        if index / slice_count != slice_before || index == entry_count {
            let seconds = slice_started.elapsed().as_secs_f64();
            let slice_entries = index - slice_before * slice_count;
            let mb = (slice_entries * (16 + VALUE_BYTES as u64)) as f64 / 1e6;
            let label = format!(
                "fill {:>3}% at {:>6.0} s: {:>6.1} MB/s {:>7.0} puts/s",
                index * 100 / entry_count,
                started.elapsed().as_secs_f64(),
                mb / seconds,
                slice_entries as f64 / seconds
            );
            print_state(db, sampler, &label);
            slice_started = Instant::now();
        }
    }
}

/// Flushes and waits until background compaction has nothing to do: fewer open segments than
/// the trigger (the default, 8), or no progress for a minute.
fn settle(db: &Db, sampler: &Sampler) {
    let started = Instant::now();
    db.flush().expect("flush");
    let mut progress = (db.stats().compactions, Instant::now());
    while db.stats().segment_count_open >= 8 && progress.1.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
        let compactions = db.stats().compactions;
        if compactions != progress.0 {
            progress = (compactions, Instant::now());
        }
    }
    let label = format!("settled in {:.0} s", started.elapsed().as_secs_f64());
    print_state(db, sampler, &label);
}

fn read(db: &Db, entry_count: u64) {
    let mut rng = fastrand::Rng::with_seed(7);
    let started = Instant::now();
    for _ in 0..READ_COUNT {
        let index = rng.u64(0..entry_count);
        let found = db.get(&key(index)).expect("get");
        assert_eq!(found.as_deref(), Some(&value(index)[..]), "key {index}");
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "point reads: {READ_COUNT} random written keys, {:.0} reads/s",
        READ_COUNT as f64 / seconds
    );
    let started = Instant::now();
    let mut items = 0u64;
    for _ in 0..SCAN_COUNT {
        // 0.1% of the key space: 1/1000 of the 8-byte hash prefix range.
        let width = u64::MAX / 1000;
        let low = rng.u64(0..u64::MAX - width);
        let (low, high) = (low.to_be_bytes(), (low + width).to_be_bytes());
        for item in db.range(low.as_slice()..high.as_slice()).expect("range") {
            item.expect("range item");
            items += 1;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "range scans: {SCAN_COUNT} x 0.1% of the keys, {items} items, {:.0} items/s, {:.1} ms/scan",
        items as f64 / seconds,
        seconds * 1000.0 / SCAN_COUNT as f64
    );
}
