//! The one checksum used on disk: XXH3-64 (from `xxhash-rust`), stored as a little-endian `u64`.
//!
//! XXH3 is RocksDB's default block checksum since 8.x: faster than CRC32C without the SSE4.2
//! runtime dispatch a no_std crate cannot do, and 64 bits leave no practical chance of a
//! corrupted block passing.

/// Bytes a checksum takes on disk.
pub const CHECKSUM_LEN: usize = 8;

/// The checksum of `bytes`.
#[must_use]
pub fn checksum(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// The checksum of `bytes` under `seed`: for checksums that must not match bytes produced
/// without the seed (log frames are seeded with their log's random nonce, so that no value a
/// user stores can pass for a frame).
#[must_use]
pub fn checksum_with_seed(bytes: &[u8], seed: u64) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(bytes, seed)
}

/// The checksum of the concatenation of `parts`, without concatenating them.
#[must_use]
pub fn checksum_parts(parts: &[&[u8]]) -> u64 {
    let mut stream = ChecksumStream::new();
    for part in parts {
        stream.update(part);
    }
    stream.finish()
}

/// The checksum of bytes given in pieces, as they are written: [`ChecksumStream::finish`]
/// equals [`checksum`] of their concatenation.
#[derive(Clone, Default)]
pub struct ChecksumStream(xxhash_rust::xxh3::Xxh3Default);

impl ChecksumStream {
    /// A stream over no bytes yet.
    #[must_use]
    pub fn new() -> ChecksumStream {
        ChecksumStream(xxhash_rust::xxh3::Xxh3Default::new())
    }

    /// Adds `bytes` after those added so far.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The checksum of every byte added.
    #[must_use]
    pub fn finish(&self) -> u64 {
        self.0.digest()
    }
}

impl core::fmt::Debug for ChecksumStream {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("ChecksumStream").field(&self.finish()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_equal_whole() {
        let whole = b"hello, segment block";
        for split in 0..=whole.len() {
            let (a, b) = whole.split_at(split);
            assert_eq!(checksum_parts(&[a, b]), checksum(whole), "split at {split}");
        }
    }
}
