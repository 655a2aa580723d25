//! The zkey test suite: exhaustive small-domain checks and property tests against brute-force
//! oracles. Proptest case counts keep the whole suite within seconds in debug builds.

mod bigmin;
mod box_scan;
mod codec;
mod covering;
