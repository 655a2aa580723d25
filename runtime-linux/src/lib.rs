//! ZVerse on Linux. Not written yet: this crate will supply an io_uring `Io` backend and a
//! madvise locality advisor for the engine in `zverse`, and the `zverse` command-line tool.
