//! Fuzz target `history_open`: see `zverse_tests::fuzz_history::check_history`, which the corpus
//! replay test (`tests/tests/fuzz_corpus.rs`) runs too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zverse_tests::fuzz_history::check_history(data));
