//! The core alone, as a microcontroller would use it: no operating system, no allocator.
//!
//! A sensor log of a few readings is built into a segment in a caller's fixed buffer (the
//! builder's metadata in [`FixedStorage`], its capacities chosen here at compile time), then
//! queried zero-copy from those bytes: `get` (the latest value), `get_at` (the value as of a
//! version), `history` (every version of a key) and `changes` (a box of keys and versions).
//! Every answer borrows the buffer; every collection is a `heapless::Vec`.
//!
//! It is a library (`crate-type = ["rlib"]`): CI builds it for the host and for bare-metal
//! targets (`scripts/cross-check`), and its test runs it on the host, checks every answer and
//! counts the allocations it makes (none). Run with
//! `cargo test -p zverse-core --example embedded`.
#![no_std]

#[cfg(test)]
extern crate std;

use zverse_core::segment::{
    BuildError, FixedStorage, Segment, SegmentBuilder, SegmentOptions, SliceFull, SliceSink,
    filter_block_count,
};
use zverse_core::zkey::cmp_z;
use zverse_core::{Corruption, Entry, Version};

/// Readings in the log.
pub const READING_COUNT: usize = 8;

/// Room for the log: [`READING_COUNT`] entries, 256 bytes of keys, 128-byte blocks (the block
/// target below), 8 blocks, and the filter of up to [`READING_COUNT`] keys.
pub type LogStorage =
    FixedStorage<READING_COUNT, 256, 128, 8, { filter_block_count(READING_COUNT) }>;

/// Data blocks are packed up to this many bytes.
pub const BLOCK_BYTES_TARGET: usize = 128;

/// Bytes of a buffer that holds the whole segment (it needs 577).
pub const SEGMENT_BUFFER_BYTES: usize = 1024;

/// A reading: key, version, value (`None`: the key was deleted).
type Reading = (&'static [u8], u64, Option<&'static [u8]>);

/// The log, in any order: [`build_log`] sorts it.
const READINGS: [Reading; READING_COUNT] = [
    (b"sensor/temp", 10, Some(b"21.5")),
    (b"sensor/temp", 20, Some(b"22.0")),
    (b"sensor/temp", 30, Some(b"22.5")),
    (b"sensor/hum", 10, Some(b"40")),
    (b"sensor/hum", 25, Some(b"45")),
    (b"sensor/volt", 15, Some(b"3.30")),
    (b"sensor/volt", 35, None),
    (b"door/open", 12, Some(b"1")),
];

/// What went wrong.
#[derive(Debug, PartialEq, Eq)]
pub enum ExampleError {
    /// The segment did not build (buffer or storage too small).
    Build(BuildError<SliceFull>),
    /// The segment's bytes failed a check.
    Corrupt(Corruption),
    /// More answers than the fixed answer lists hold.
    TooManyAnswers,
}

impl From<BuildError<SliceFull>> for ExampleError {
    fn from(error: BuildError<SliceFull>) -> Self {
        ExampleError::Build(error)
    }
}

impl From<Corruption> for ExampleError {
    fn from(error: Corruption) -> Self {
        ExampleError::Corrupt(error)
    }
}

/// Builds the log into `buffer`; returns the segment's bytes (the start of `buffer`).
pub fn build_log(buffer: &mut [u8]) -> Result<&[u8], ExampleError> {
    let mut readings = READINGS;
    // The builder takes entries in Z order; the core sorts in place, without allocating.
    readings.sort_unstable_by(|a, b| cmp_z(a.0, Version::new(a.1), b.0, Version::new(b.1)));
    let options = SegmentOptions::default().with_block_bytes_target(BLOCK_BYTES_TARGET);
    let sink = SliceSink::new(buffer);
    let mut builder = SegmentBuilder::<_, LogStorage>::with_storage(sink, options);
    for (key, version, value) in readings {
        builder.add(key, Version::new(version), value)?;
    }
    let (sink, _summary) = builder.finish()?;
    Ok(sink.into_written())
}

/// Answers the queries, each borrowing `segment`'s bytes.
#[derive(Debug)]
pub struct Answers<'a> {
    /// `get("sensor/temp")`: the latest temperature.
    pub temp_latest: Option<Entry<'a>>,
    /// `get_at("sensor/temp", 25)`: the temperature as of version 25.
    pub temp_at_25: Option<Entry<'a>>,
    /// `get("sensor/volt")`: deleted at 35, so a tombstone.
    pub volt_latest: Option<Entry<'a>>,
    /// `history("sensor/temp")`: its versions, newest first.
    pub temp_history: heapless::Vec<u64, READING_COUNT>,
    /// `changes("sensor/" ..= "sensor/z", 12 ..= 30)`: (key, version), in Z order.
    pub sensor_changes: heapless::Vec<(&'a [u8], u64), READING_COUNT>,
}

/// The latest entry of `key`: `get_at` at the newest version.
pub fn get<'a>(segment: &Segment<'a>, key: &[u8]) -> Result<Option<Entry<'a>>, Corruption> {
    segment.get_at(key, Version::MAX)
}

/// Opens `bytes` as a segment and answers the example's queries.
pub fn query_log(bytes: &[u8]) -> Result<Answers<'_>, ExampleError> {
    let segment = Segment::open(bytes)?;
    let mut temp_history = heapless::Vec::new();
    for entry in segment.history(b"sensor/temp") {
        let version = entry?.version.get();
        temp_history.push(version).map_err(|_| ExampleError::TooManyAnswers)?;
    }
    let mut sensor_changes = heapless::Vec::new();
    let keys = &b"sensor/"[..]..=&b"sensor/z"[..];
    for entry in segment.changes(keys, Version::new(12)..=Version::new(30)) {
        let entry = entry?;
        let change = (entry.key, entry.version.get());
        sensor_changes.push(change).map_err(|_| ExampleError::TooManyAnswers)?;
    }
    Ok(Answers {
        temp_latest: get(&segment, b"sensor/temp")?,
        temp_at_25: segment.get_at(b"sensor/temp", Version::new(25))?,
        volt_latest: get(&segment, b"sensor/volt")?,
        temp_history,
        sensor_changes,
    })
}

#[cfg(test)]
mod tests {
    use core::cell::Cell;
    use std::alloc::{GlobalAlloc, Layout, System};

    use super::*;

    std::thread_local! {
        /// Allocations made by this thread.
        static ALLOCATION_COUNT: Cell<u64> = const { Cell::new(0) };
    }

    /// The system allocator, counting each thread's allocations.
    struct CountingAllocator;

    // SAFETY: every call is forwarded unchanged to `System`, which upholds the contract; the
    // counter is a thread-local `Cell` with a const initializer, which does not allocate.
    unsafe impl GlobalAlloc for CountingAllocator {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            ALLOCATION_COUNT.with(|count| count.set(count.get() + 1));
            // SAFETY: the caller's `layout` contract is passed on unchanged.
            unsafe { System.alloc(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: `ptr` was allocated by `System` through `alloc` above, with `layout`.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static ALLOCATOR: CountingAllocator = CountingAllocator;

    fn allocations() -> u64 {
        ALLOCATION_COUNT.with(Cell::get)
    }

    /// An answer's version and value.
    fn value(entry: Option<Entry<'_>>) -> Option<(u64, Option<&[u8]>)> {
        entry.map(|e| (e.version.get(), e.value))
    }

    #[test]
    fn builds_into_a_fixed_buffer_and_answers_without_allocating() {
        let counted = allocations();
        drop(std::boxed::Box::new(1u8));
        assert_eq!(allocations(), counted + 1, "the allocator counts this thread's allocations");
        let mut buffer = [0u8; SEGMENT_BUFFER_BYTES];
        let before = allocations();
        let bytes = build_log(&mut buffer).expect("the log fits its buffer and storage");
        let answers = query_log(bytes).expect("a built segment answers");
        let allocated = allocations() - before;
        std::println!("segment: {} bytes", bytes.len());
        assert_eq!(allocated, 0, "building and querying allocate nothing");
        assert_eq!(bytes.len(), 577, "SEGMENT_BUFFER_BYTES's comment says how much it needs");

        assert_eq!(value(answers.temp_latest), Some((30, Some(&b"22.5"[..]))));
        assert_eq!(value(answers.temp_at_25), Some((20, Some(&b"22.0"[..]))));
        assert_eq!(value(answers.volt_latest), Some((35, None)), "deleted: a tombstone");
        assert_eq!(answers.temp_history.as_slice(), [30, 20, 10]);
        let mut changes = answers.sensor_changes.clone();
        changes.sort_unstable();
        let expected: [(&[u8], u64); 4] =
            [(b"sensor/hum", 25), (b"sensor/temp", 20), (b"sensor/temp", 30), (b"sensor/volt", 15)];
        assert_eq!(changes.as_slice(), expected);
    }

    #[test]
    fn a_buffer_too_small_is_a_typed_error() {
        let mut buffer = [0u8; 512];
        let error = build_log(&mut buffer).expect_err("577 bytes do not fit in 512");
        assert!(matches!(error, ExampleError::Build(BuildError::Sink(SliceFull { .. }))));
    }
}
