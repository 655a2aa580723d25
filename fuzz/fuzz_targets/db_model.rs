//! Fuzz target `db_model`: operations and power failures on the engine over the simulated disk,
//! against a model; see `zverse_tests::fuzz_model::check_db_model`, which the corpus replay test
//! (`tests/tests/fuzz_corpus.rs`) runs too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zverse_tests::fuzz_model::check_db_model(data));
