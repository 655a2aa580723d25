//! Fuzz target `scan`: writes, flushes and compactions on the engine over the simulated disk,
//! and `Scan`s stepped from both ends against a `BTreeMap` model; see
//! `zverse_tests::fuzz_scan::check_scan`, which the corpus replay test
//! (`tests/tests/fuzz_corpus.rs`) runs too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zverse_tests::fuzz_scan::check_scan(data));
