//! Replays the committed fuzz corpora (`fuzz/corpus/TARGET/`) and the seed inputs through the
//! same checks the cargo-fuzz targets run (`zverse_tests::fuzz_checks`), as ordinary tests on
//! stable: every input libFuzzer kept, and every crash it found and we fixed or pinned, is
//! checked on every `cargo test`.
//!
//! `ZVERSE_WRITE_FUZZ_SEEDS=1 cargo test -p zverse-tests --test fuzz_corpus` (re)writes the
//! seed inputs into the corpus directories as `seed-N`, to start fuzzing from.

use std::path::PathBuf;

use zverse_tests::fuzz_checks::{
    check_db_open, check_manifest, check_record, check_segment, manifest_with_checksum_fixed,
    records_with_checksums_fixed, seeds_db_open, seeds_manifest, seeds_record, seeds_segment,
    segment_with_checksums_fixed,
};
use zverse_tests::fuzz_history::{check_history, history_with_checksums_fixed, seeds_history};
use zverse_tests::fuzz_model::{ModelSummary, check_db_model, run_db_model, seeds_db_model};
use zverse_tests::fuzz_scan::{check_scan, run_scan, seeds_scan};

/// The corpus directory of fuzz target `target`.
fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target)
}

/// Runs `check` on every seed and every corpus file of `target`; returns the file count.
fn replay(target: &str, seeds: &[Vec<u8>], check: fn(&[u8])) -> usize {
    let dir = corpus_dir(target);
    if std::env::var_os("ZVERSE_WRITE_FUZZ_SEEDS").is_some() {
        std::fs::create_dir_all(&dir).expect("create the corpus directory");
        for (index, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{index}")), seed).expect("write a seed");
        }
    }
    for seed in seeds {
        check(seed);
    }
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("read {}: {error}", dir.display()))
        .map(|entry| entry.expect("a corpus directory entry").path())
        .collect();
    paths.sort();
    for path in &paths {
        let input = std::fs::read(path).expect("read a corpus file");
        eprintln!("replaying {}", path.display());
        check(&input);
    }
    paths.len()
}

#[test]
fn record_decode_corpus() {
    let count = replay("record_decode", &seeds_record(), check_record);
    assert!(count >= seeds_record().len(), "the record corpus holds at least the seeds");
}

#[test]
fn segment_open_corpus() {
    let count = replay("segment_open", &seeds_segment(), check_segment);
    assert!(count >= seeds_segment().len(), "the segment corpus holds at least the seeds");
}

#[test]
fn history_open_corpus() {
    let count = replay("history_open", &seeds_history(), check_history);
    assert!(count >= seeds_history().len(), "the history corpus holds at least the seeds");
}

/// The seeds pass their checksums as built (fixing them changes nothing), and every seed
/// opens: the target's second pass starts from valid segments.
#[test]
fn history_seeds_open_and_their_checksums_are_already_right() {
    for seed in seeds_history() {
        assert_eq!(history_with_checksums_fixed(&seed), seed);
        zverse_core::segment::history::HistorySegment::open(&seed).expect("a seed opens");
    }
}

/// A stand-in for fuzzing on stable: the history seeds with 1 to 4 random bytes changed, each
/// run through the target's check (raw, then with its checksums fixed, so that the structural
/// checks behind the checksums see the damage). `ZVERSE_FUZZ_SEED` picks the run.
#[test]
fn history_seeds_mutated_never_panic() {
    let seed = std::env::var("ZVERSE_FUZZ_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("history_seeds_mutated_never_panic: ZVERSE_FUZZ_SEED={seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let seeds = seeds_history();
    for _ in 0..3_000 {
        let mut input = seeds[rng.usize(..seeds.len())].clone();
        for _ in 0..rng.usize(1..=4) {
            let at = rng.usize(..input.len());
            input[at] = rng.u8(..);
        }
        check_history(&input);
    }
}

/// The same stand-in for the segment target, on its seeds of both orders (the key-ordered
/// variant's block keys and order flag among the bytes changed).
#[test]
fn segment_seeds_mutated_never_panic() {
    let seed = std::env::var("ZVERSE_FUZZ_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("segment_seeds_mutated_never_panic: ZVERSE_FUZZ_SEED={seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let seeds = seeds_segment();
    for _ in 0..3_000 {
        let mut input = seeds[rng.usize(..seeds.len())].clone();
        for _ in 0..rng.usize(1..=4) {
            let at = rng.usize(..input.len());
            input[at] = rng.u8(..);
        }
        check_segment(&input);
    }
}

#[test]
fn db_open_corpus() {
    let count = replay("db_open", &seeds_db_open(), check_db_open);
    assert!(count >= seeds_db_open().len(), "the database corpus holds at least the seeds");
}

#[test]
fn manifest_decode_corpus() {
    let count = replay("manifest_decode", &seeds_manifest(), check_manifest);
    assert!(count >= seeds_manifest().len(), "the manifest corpus holds at least the seeds");
}

#[test]
fn db_model_corpus() {
    let count = replay("db_model", &seeds_db_model(), check_db_model);
    assert!(count >= seeds_db_model().len(), "the model corpus holds at least the seeds");
}

#[test]
fn scan_corpus() {
    let count = replay("scan", &seeds_scan(), check_scan);
    assert!(count >= seeds_scan().len(), "the scan corpus holds at least the seeds");
}

/// The scan seeds reach their scans: every seed checks steps from both ends.
#[test]
fn scan_seeds_check_steps() {
    let steps: Vec<usize> = seeds_scan().iter().map(|seed| run_scan(seed)).collect();
    assert!(steps.iter().all(|&count| count >= 30), "{steps:?}");
}

/// The seeds are valid inputs: each opens and decodes, so the checks above run past the
/// decoder on them (a seed that failed to decode would fuzz nothing but the first check).
#[test]
fn seeds_are_valid() {
    for seed in seeds_record() {
        assert!(zverse_core::record::decode_from(&seed).is_ok(), "{seed:?}");
        // The fixer agrees with the encoder; a zeroed header checksum is restored.
        assert_eq!(records_with_checksums_fixed(&seed), seed);
        let mut damaged = seed.clone();
        damaged[..8].fill(0);
        assert!(zverse_core::record::decode_from(&damaged).is_err(), "a damaged header");
        assert_eq!(records_with_checksums_fixed(&damaged), seed);
    }
    for seed in seeds_manifest() {
        assert!(zverse_core::manifest::Manifest::decode_from(&seed).is_ok(), "{seed:?}");
        // The fixer agrees with the encoder; a damaged length or checksum is restored.
        assert_eq!(manifest_with_checksum_fixed(&seed), seed);
        let mut damaged = seed.clone();
        damaged[12] ^= 1;
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert!(
            zverse_core::manifest::Manifest::decode_from(&damaged).is_err(),
            "a damaged manifest"
        );
        assert_eq!(manifest_with_checksum_fixed(&damaged), seed);
    }
    for seed in seeds_segment() {
        assert!(zverse_core::segment::Segment::open(&seed).is_ok(), "{seed:?}");
        // The checksum fixer agrees with the builder on where every checksum is.
        assert_eq!(segment_with_checksums_fixed(&seed), seed);
        // The footer checksum is the last 8 bytes: damaged, the segment does not open; fixed,
        // it is the seed again.
        let mut damaged = seed.clone();
        let footer_checksum_at = seed.len() - 8;
        damaged[footer_checksum_at..].fill(0);
        assert!(zverse_core::segment::Segment::open(&damaged).is_err(), "a damaged footer");
        assert_eq!(segment_with_checksums_fixed(&damaged), seed);
    }
}

/// The model target's seeds reach what it checks: commits, power failures and restarts, a
/// restart that recovered the commit in flight, and (without `Sync`) one that lost commits
/// acknowledged but not yet durable.
#[test]
fn db_model_seeds_reach_power_failures_and_restarts() {
    let summaries: Vec<ModelSummary> = seeds_db_model().iter().map(|s| run_db_model(s)).collect();
    eprintln!("{summaries:#?}");
    assert!(summaries.iter().all(|s| s.op_count > 0 && s.commit_count > 0), "{summaries:?}");
    assert!(summaries.iter().any(|s| s.restart_count > 0), "a power failure");
    assert!(summaries.iter().any(|s| s.in_flight_recovered_count > 0), "the commit in flight");
    assert!(summaries.iter().any(|s| s.acked_lost_count > 0), "unsynced commits lost");
}
