//! Fuzz target `manifest_decode`: see `zverse_tests::fuzz_checks::check_manifest`, which the corpus
//! replay test (`tests/tests/fuzz_corpus.rs`) runs too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zverse_tests::fuzz_checks::check_manifest(data));
