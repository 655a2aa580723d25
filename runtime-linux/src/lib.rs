//! ZVerse on Linux. Today this crate carries the `zverse` command-line tool
//! (`src/bin/zverse`), which runs the engine from `zverse` on its std I/O backend. It will
//! supply an io_uring `Io` backend and a madvise locality advisor; the tool will use them.
