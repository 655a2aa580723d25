//! ZVerse's benchmarks. The criterion benches are in `benches/benches/`; run them with
//! `cargo bench -p zverse-benches`. The side-by-side peer comparison arrives with the engine.
