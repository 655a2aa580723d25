//! The scale run: fill a database far past the old 4 GiB segment limit with
//! `Retention::All`, and report what stays bounded.
//!
//! One writer commits batches of 100 puts: 16-byte keys (an 8-byte hash of the index then the
//! index, so the first bytes spread over the key space) and 1,000-byte values of pseudo-random
//! bytes drawn from the index, so they are **incompressible**: a comparison of disk use is not
//! decided by one engine's compression. `Durability::None` (the bench measures the storage
//! structure, not fsync: ZVerse writes its log without syncing it). With
//! `ZVERSE_SCALE_OVERWRITE_PERCENT=p`, each put rewrites a random earlier key with probability
//! p% (the same value again), so compaction demotes the old versions into history.
//!
//! It prints, per 10% of the fill: the fill rate, level 0's segments, each level's segments
//! and bytes, history segments and bytes, the largest segment, memtables, stalls; and
//! throughout, sampled every 100 ms from `/proc/self/status`, the peak resident memory
//! (`VmRSS`, which counts mapped segment pages the kernel may reclaim, and `RssAnon`, the
//! engine's own heap). Then it flushes, waits for compaction to settle, times point reads of
//! random written keys and range scans of 0.1% of the key space (for ZVerse also `history` of
//! random written keys and `get_at` each at its oldest version), prints the disk used, and
//! checks that no segment passed `segment_bytes_target` plus its metadata.
//!
//! Run: `ZVERSE_SCALE_GIB=8 ZVERSE_SCALE_DIR=/path cargo bench -p zverse-benches --bench
//! scale` (the directory must not exist; it is removed at the end unless
//! `ZVERSE_SCALE_KEEP=1`). `ZVERSE_SCALE_MEMORY_MIB` sets `Options::memory_bytes_max`
//! (default 1024), `ZVERSE_SCALE_FAN_IN` sets `Options::compaction_fan_in` (default the
//! option's). For a scaled-down run, `ZVERSE_SCALE_MEMTABLE_MIB`, `ZVERSE_SCALE_SEGMENT_MIB`
//! (default 256) and `ZVERSE_SCALE_LEVEL_BASE_MIB` set `memtable_bytes_max`,
//! `segment_bytes_target` and `level_base_bytes`. Under `cargo test --benches` it fills 8 MiB
//! once to check that it works.
//!
//! `ZVERSE_SCALE_ENGINE=rocksdb` (with `--features peers`, built with
//! `ROCKSDB_LIB_DIR=/usr/lib/x86_64-linux-gnu`) runs the same keys, values and batches on
//! RocksDB: a `WriteBatch` per 100 puts, its WAL written and not synced (as `Durability::None`
//! writes ZVerse's log unsynced), default options (leveled compaction, its default compression,
//! Snappy, which cannot shrink these values); after the fill, `flush` and a wait until no
//! compaction is pending or running, then the same reads, scans and disk count.
#![allow(missing_docs, reason = "a bench binary")]
#![allow(clippy::cast_precision_loss, reason = "rates and sizes printed as floats")]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use zverse::{Db, Durability, Options, Retention};

const VALUE_BYTES: usize = 1_000;
const BATCH_PUTS: u64 = 100;
const READ_COUNT: u64 = 100_000;
const SCAN_COUNT: u64 = 100;
const TEMPORAL_READ_COUNT: u64 = 10_000;
/// What a segment may hold past `segment_bytes_target`: the writer splits once its data
/// reaches the target, so one more entry plus the segment's metadata (key index, filter,
/// fences, footer), which this bench's entries keep well under 1/16 of the data.
const METADATA_ALLOWANCE_DIVISOR: u64 = 16;

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

/// Pseudo-random bytes drawn from `index`: incompressible, and the same on every call.
fn value(index: u64) -> [u8; VALUE_BYTES] {
    let mut value = [0; VALUE_BYTES];
    let mut state = index ^ 0x5eed_5eed_5eed_5eed;
    for chunk in value.chunks_mut(8) {
        state = splitmix64(state);
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    value
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

/// Samples memory every 100 ms; keeps the peaks since the last report and over the run.
struct Sampler {
    stop: Arc<AtomicBool>,
    rss_peak: Arc<AtomicU64>,
    anon_peak: Arc<AtomicU64>,
    rss_peak_run: AtomicU64,
    anon_peak_run: AtomicU64,
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
        Sampler {
            stop,
            rss_peak,
            anon_peak,
            rss_peak_run: AtomicU64::new(0),
            anon_peak_run: AtomicU64::new(0),
            thread: Some(thread),
        }
    }

    /// Peaks since the last call, in MiB.
    fn take_peaks_mib(&self) -> (u64, u64) {
        let (rss, anon) = memory_now();
        let rss = self.rss_peak.swap(0, Ordering::Relaxed).max(rss);
        let anon = self.anon_peak.swap(0, Ordering::Relaxed).max(anon);
        self.rss_peak_run.fetch_max(rss, Ordering::Relaxed);
        self.anon_peak_run.fetch_max(anon, Ordering::Relaxed);
        (rss >> 20, anon >> 20)
    }

    /// Peaks over the whole run (up to the last `take_peaks_mib`), in MiB.
    fn run_peaks_mib(&self) -> (u64, u64) {
        (
            self.rss_peak_run.load(Ordering::Relaxed) >> 20,
            self.anon_peak_run.load(Ordering::Relaxed) >> 20,
        )
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

/// Bytes of the regular files under `dir`, recursively.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .map(|entry| match entry.file_type() {
                Ok(kind) if kind.is_dir() => dir_bytes(&entry.path()),
                _ => entry.metadata().map_or(0, |m| m.len()),
            })
            .sum()
    })
}

/// What the fill, the reads and the scans need of an engine.
trait Store {
    fn put_batch(&self, pairs: &[([u8; 16], [u8; VALUE_BYTES])]);
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
    /// Items in `[low, high)`, each read whole.
    fn scan_count(&self, low: &[u8], high: &[u8]) -> u64;
    /// Flushes and waits until background compaction has nothing to do.
    fn settle(&self);
    /// The engine's part of a progress line.
    fn state(&self) -> String;
    /// The end-of-run summary; checks the segment size bound, returning whether it held
    /// (`None`: the engine has none to check).
    fn finish(&self) -> Option<bool>;
    /// Times the temporal reads of `written` keys, if the engine has them.
    fn temporal_reads(&self, _written: u64) {}
}

struct Zverse {
    db: Db,
    segment_bytes_target: u64,
}

impl Store for Zverse {
    fn put_batch(&self, pairs: &[([u8; 16], [u8; VALUE_BYTES])]) {
        let mut batch = self.db.batch();
        for (key, value) in pairs {
            batch.put(key, value);
        }
        batch.commit().expect("commit");
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.db.get(key).expect("get").map(|value| value.to_vec())
    }

    fn scan_count(&self, low: &[u8], high: &[u8]) -> u64 {
        let mut items = 0;
        for item in self.db.range(low..high).expect("range") {
            item.expect("range item");
            items += 1;
        }
        items
    }

    /// Flushes, then waits until no compaction step is due (fewer level-0 segments than the
    /// default trigger, 8, and every level within its default target, 512 MiB times 10 per
    /// level down), or no step ended for a minute: the disk is then counted without the
    /// outputs of a step in progress, as RocksDB's is after its compactions.
    fn settle(&self) {
        self.db.flush().expect("flush");
        // One compaction round runs steps until none is due.
        self.db.wait_for_compact().expect("compaction");
    }

    /// `history` of random written keys, then `get_at` each key's oldest version (in a
    /// history segment when the key was overwritten since), checking every value.
    fn temporal_reads(&self, written: u64) {
        let mut rng = fastrand::Rng::with_seed(5);
        let indexes: Vec<u64> = (0..TEMPORAL_READ_COUNT).map(|_| rng.u64(0..written)).collect();
        let started = Instant::now();
        let (mut versions, mut overwritten) = (0u64, 0u64);
        let mut oldest = Vec::with_capacity(indexes.len());
        for &index in &indexes {
            let mut count = 0u64;
            let mut last = None;
            for entry in self.db.history(&key(index)).expect("history") {
                last = Some(entry.expect("history entry").0);
                count += 1;
            }
            versions += count;
            overwritten += u64::from(count > 1);
            oldest.push(last.expect("a written key has a version"));
        }
        let seconds = secs(started);
        println!(
            "history: {TEMPORAL_READ_COUNT} random written keys ({overwritten} overwritten), \
             {versions} versions, {:.0} keys/s",
            TEMPORAL_READ_COUNT as f64 / seconds
        );
        let started = Instant::now();
        for (&index, &version) in indexes.iter().zip(&oldest) {
            let found = self.db.get_at(&key(index), version).expect("get_at");
            assert_eq!(found.as_deref(), Some(&value(index)[..]), "key {index} at {version:?}");
        }
        println!(
            "get_at: the same keys at their oldest version, {:.0} reads/s",
            TEMPORAL_READ_COUNT as f64 / secs(started)
        );
    }

    fn state(&self) -> String {
        let stats = self.db.stats();
        let levels: Vec<String> = stats
            .level_segment_counts
            .iter()
            .zip(&stats.level_segment_bytes)
            .map(|(count, bytes)| format!("{count}/{}M", bytes >> 20))
            .collect();
        format!(
            "levels {} | history {}/{}M | largest {} MiB | memtables {} | stalls {} ({} ms), \
             slowdowns {} | compactions {}",
            levels.join(" "),
            stats.history_segment_count,
            stats.history_bytes >> 20,
            stats.segment_bytes_max >> 20,
            stats.memtable_count,
            stats.write_stalls,
            stats.write_stall_micros / 1000,
            stats.write_slowdowns,
            stats.compactions,
        )
    }

    fn finish(&self) -> Option<bool> {
        let stats = self.db.stats();
        let allowance = self.segment_bytes_target / METADATA_ALLOWANCE_DIVISOR;
        let within = stats.segment_bytes_max <= self.segment_bytes_target + allowance;
        println!(
            "zverse: segments {} MiB (history {} MiB), payload {} MiB, write amplification \
             {:.2}, compaction failures {}",
            stats.segment_bytes >> 20,
            stats.history_bytes >> 20,
            stats.payload_bytes >> 20,
            stats.write_amplification,
            stats.compaction_failures,
        );
        println!(
            "segment size: largest {} bytes, target {} + allowance {allowance}: {}",
            stats.segment_bytes_max,
            self.segment_bytes_target,
            if within { "no segment above target (met)" } else { "ABOVE TARGET (not met)" }
        );
        Some(within)
    }
}

fn main() {
    let test_mode = zverse_benches::is_test_mode();
    let fill_bytes = if test_mode { 8 << 20 } else { env_u64("ZVERSE_SCALE_GIB", 8) << 30 };
    let memory_bytes = env_u64("ZVERSE_SCALE_MEMORY_MIB", 1024) << 20;
    let overwrite_percent = env_u64("ZVERSE_SCALE_OVERWRITE_PERCENT", 0).min(99);
    let engine = engine_name();
    let dir = std::env::var_os("ZVERSE_SCALE_DIR").map_or_else(
        || std::env::temp_dir().join(format!("zverse-scale-{}", std::process::id())),
        PathBuf::from,
    );
    assert!(!dir.exists(), "{} exists: the scale bench only fills a new directory", dir.display());
    let entry_count = fill_bytes / (16 + VALUE_BYTES) as u64;
    println!(
        "scale: {engine}, {} MiB of keys+values ({entry_count} puts, {overwrite_percent}% \
         overwrites), memory_bytes_max {} MiB, in {}",
        fill_bytes >> 20,
        memory_bytes >> 20,
        dir.display()
    );
    let sampler = Sampler::start();
    let store = open_store(&engine, &dir, memory_bytes);
    let written = fill(store.as_ref(), entry_count, overwrite_percent, &sampler);
    let started = Instant::now();
    store.settle();
    print_state(store.as_ref(), &sampler, &format!("settled in {:.0} s", secs(started)));
    read(store.as_ref(), written);
    store.temporal_reads(written);
    print_state(store.as_ref(), &sampler, "after reads");
    let (rss_mib, anon_mib) = sampler.run_peaks_mib();
    let within = store.finish();
    let memory_ok = rss_mib <= (memory_bytes >> 20) + 512;
    println!(
        "end: disk {} MiB; peak RSS {rss_mib} MiB, anon {anon_mib} MiB over the run: {}; \
         segment target {}",
        dir_bytes(&dir) >> 20,
        if memory_ok { "within the knob + 512 MiB (met)" } else { "ABOVE the knob + 512 MiB" },
        match within {
            Some(true) => "met",
            Some(false) => "not met",
            None => "n/a",
        },
    );
    drop(store);
    if std::env::var_os("ZVERSE_SCALE_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// `ZVERSE_SCALE_ENGINE`, or the argument after `--engine`; `zverse` by default.
fn engine_name() -> String {
    let mut args = std::env::args().skip_while(|arg| arg != "--engine").skip(1);
    args.next()
        .or_else(|| std::env::var("ZVERSE_SCALE_ENGINE").ok())
        .unwrap_or_else(|| "zverse".to_owned())
}

fn open_store(engine: &str, dir: &Path, memory_bytes: u64) -> Box<dyn Store> {
    match engine {
        "zverse" => {
            let options = Options::default()
                .durability(Durability::None)
                .retention(Retention::All)
                .memory_bytes_max(memory_bytes);
            let segment_bytes_target = env_u64("ZVERSE_SCALE_SEGMENT_MIB", 256) << 20;
            let mut options = options.segment_bytes_target(segment_bytes_target);
            if let Ok(mib) = std::env::var("ZVERSE_SCALE_MEMTABLE_MIB") {
                options = options.memtable_bytes_max(mib.parse::<u64>().expect("MiB") << 20);
            }
            if let Ok(mib) = std::env::var("ZVERSE_SCALE_LEVEL_BASE_MIB") {
                options = options.level_base_bytes(mib.parse::<u64>().expect("MiB") << 20);
            }
            if let Some(fan_in) =
                std::env::var("ZVERSE_SCALE_FAN_IN").ok().and_then(|v| v.parse().ok())
            {
                options = options.compaction_fan_in(fan_in);
            }
            let db = Db::open(dir, options).expect("open");
            Box::new(Zverse { db, segment_bytes_target })
        }
        #[cfg(feature = "peers")]
        "rocksdb" => Box::new(rocks::Rocks::open(dir)),
        other => panic!("unknown engine {other}: zverse, or rocksdb with --features peers"),
    }
}

fn secs(started: Instant) -> f64 {
    started.elapsed().as_secs_f64()
}

fn print_state(store: &dyn Store, sampler: &Sampler, label: &str) {
    let (rss_mib, anon_mib) = sampler.take_peaks_mib();
    println!("{label} | {} | peak RSS {rss_mib} MiB, anon {anon_mib} MiB", store.state());
}

/// Fills `entry_count` puts; returns how many distinct keys were written (keys `0..n`).
fn fill(store: &dyn Store, entry_count: u64, overwrite_percent: u64, sampler: &Sampler) -> u64 {
    let mut rng = fastrand::Rng::with_seed(11);
    let slice_count = entry_count.div_ceil(10).max(1);
    let started = Instant::now();
    let mut slice_started = Instant::now();
    let (mut done, mut written) = (0, 0u64);
    let mut pairs = Vec::with_capacity(BATCH_PUTS as usize);
    let mut rates = Vec::new();
    while done < entry_count {
        let end = (done + BATCH_PUTS).min(entry_count);
        pairs.clear();
        for _ in done..end {
            let index = if written > 0 && rng.u64(0..100) < overwrite_percent {
                rng.u64(0..written)
            } else {
                written += 1;
                written - 1
            };
            pairs.push((key(index), value(index)));
        }
        store.put_batch(&pairs);
        let slice_before = done / slice_count;
        done = end;
        if done / slice_count != slice_before || done == entry_count {
            let seconds = slice_started.elapsed().as_secs_f64();
            let slice_entries = done - slice_before * slice_count;
            let mb = (slice_entries * (16 + VALUE_BYTES as u64)) as f64 / 1e6;
            rates.push(slice_entries as f64 / seconds);
            let label = format!(
                "fill {:>3}% at {:>6.0} s: {:>6.1} MB/s {:>7.0} puts/s",
                done * 100 / entry_count,
                secs(started),
                mb / seconds,
                slice_entries as f64 / seconds
            );
            print_state(store, sampler, &label);
            slice_started = Instant::now();
        }
    }
    if let (Some(first), Some(last)) = (rates.first(), rates.last()) {
        let ratio = last / first;
        let verdict = if ratio >= 0.6 { "met" } else { "not met" };
        println!("fill: last 10% at {ratio:.2}x the first 10%'s rate (goal 0.6x: {verdict})");
    }
    written
}

fn read(store: &dyn Store, written: u64) {
    let mut rng = fastrand::Rng::with_seed(7);
    let started = Instant::now();
    for _ in 0..READ_COUNT {
        let index = rng.u64(0..written);
        let found = store.get(&key(index));
        assert_eq!(found.as_deref(), Some(&value(index)[..]), "key {index}");
    }
    println!(
        "point reads: {READ_COUNT} random written keys, {:.0} reads/s",
        READ_COUNT as f64 / secs(started)
    );
    let started = Instant::now();
    let mut items = 0u64;
    for _ in 0..SCAN_COUNT {
        // 0.1% of the key space: 1/1000 of the 8-byte hash prefix range.
        let width = u64::MAX / 1000;
        let low = rng.u64(0..u64::MAX - width);
        items += store.scan_count(&low.to_be_bytes(), &(low + width).to_be_bytes());
    }
    let seconds = secs(started);
    println!(
        "range scans: {SCAN_COUNT} x 0.1% of the keys, {items} items, {:.0} items/s, {:.1} ms/scan",
        items as f64 / seconds,
        seconds * 1000.0 / SCAN_COUNT as f64
    );
}

#[cfg(feature = "peers")]
mod rocks {
    use std::path::Path;
    use std::time::Duration;

    use rocksdb::{DB, IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions};

    use super::{Store, VALUE_BYTES};

    pub(super) struct Rocks {
        db: DB,
        write_options: WriteOptions,
    }

    impl Rocks {
        pub(super) fn open(dir: &Path) -> Rocks {
            let mut options = Options::default();
            options.create_if_missing(true);
            let db = DB::open(&options, dir).expect("open RocksDB");
            let mut write_options = WriteOptions::default();
            write_options.set_sync(false);
            Rocks { db, write_options }
        }

        fn property(&self, name: &str) -> u64 {
            self.db.property_int_value(name).ok().flatten().unwrap_or(0)
        }
    }

    impl Store for Rocks {
        fn put_batch(&self, pairs: &[([u8; 16], [u8; VALUE_BYTES])]) {
            let mut batch = WriteBatch::default();
            for (key, value) in pairs {
                batch.put(key, value);
            }
            self.db.write_opt(batch, &self.write_options).expect("write");
        }

        fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
            self.db.get(key).expect("get")
        }

        fn scan_count(&self, low: &[u8], high: &[u8]) -> u64 {
            let mut read_options = ReadOptions::default();
            read_options.set_iterate_upper_bound(high.to_vec());
            let mode = IteratorMode::From(low, rocksdb::Direction::Forward);
            let mut items = 0;
            for item in self.db.iterator_opt(mode, read_options) {
                item.expect("range item");
                items += 1;
            }
            items
        }

        fn settle(&self) {
            self.db.flush().expect("flush");
            while self.property("rocksdb.compaction-pending") != 0
                || self.property("rocksdb.num-running-compactions") != 0
                || self.property("rocksdb.num-running-flushes") != 0
            {
                std::thread::sleep(Duration::from_millis(100));
            }
        }

        fn state(&self) -> String {
            let levels: Vec<String> = (0..7)
                .map(|level| {
                    let files = self.property(&format!("rocksdb.num-files-at-level{level}"));
                    format!("{files}")
                })
                .collect();
            format!(
                "files per level {} | live SST {} MiB | pending compaction {} MiB | \
                 stopped writes {}",
                levels.join(" "),
                self.property("rocksdb.live-sst-files-size") >> 20,
                self.property("rocksdb.estimate-pending-compaction-bytes") >> 20,
                self.property("rocksdb.is-write-stopped"),
            )
        }

        fn finish(&self) -> Option<bool> {
            println!(
                "rocksdb: default options (leveled compaction, compression {}), WAL written \
                 unsynced; live SST {} MiB",
                "Snappy (the default; the values are incompressible)",
                self.property("rocksdb.live-sst-files-size") >> 20
            );
            None
        }
    }
}
