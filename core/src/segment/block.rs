//! The entries of a data block.
//!
//! A data block is a run of entries in Z order `(M, key)`, packed up to the builder's target
//! size (an entry is never split, so a large value makes one large block), followed on disk by
//! the XXH3-64 checksum of the block's bytes. One entry:
//!
//! | bytes | field |
//! |-------|-------|
//! | 8 | version, `u64` LE |
//! | 2 | key length, `u16` LE |
//! | 4 | value length, `u32` LE; [`TOMBSTONE`] (`u32::MAX`) for a tombstone |
//! | key length | key |
//! | value length (0 for a tombstone) | value |
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use super::storage::{List, ListFull};
use crate::{Corruption, Entry, Version};

const VERSION_AT: usize = 0;
const KEY_LEN_AT: usize = VERSION_AT + size_of::<u64>();
const VALUE_LEN_AT: usize = KEY_LEN_AT + size_of::<u16>();
/// Bytes of an entry before its key: version, key length, value length.
pub(super) const ENTRY_HEADER_LEN: usize = VALUE_LEN_AT + size_of::<u32>();
const _: () = assert!(ENTRY_HEADER_LEN == 14);

/// The value length that marks a tombstone. Far above [`crate::limits::VALUE_LEN_MAX`].
pub(super) const TOMBSTONE: u32 = u32::MAX;
const _: () = assert!(crate::limits::VALUE_LEN_MAX < TOMBSTONE as usize);

/// Bytes `key` and `value` take as an entry.
pub(super) fn entry_len(key: &[u8], value: Option<&[u8]>) -> usize {
    ENTRY_HEADER_LEN + key.len() + value.map_or(0, <[u8]>::len)
}

/// Appends the entry to `block`, or refuses with nothing appended when it does not fit. The
/// caller has checked the key and value limits.
pub(super) fn encode_entry_into<L: List<u8>>(
    block: &mut L,
    key: &[u8],
    version: Version,
    value: Option<&[u8]>,
) -> Result<(), ListFull> {
    assert!(key.len() <= crate::limits::KEY_LEN_MAX, "key limit is checked by the caller");
    assert!(value.is_none_or(|v| v.len() <= crate::limits::VALUE_LEN_MAX), "value limit");
    if !block.has_room_for(entry_len(key, value)) {
        return Err(ListFull);
    }
    let value_len = value.map_or(TOMBSTONE, |v| v.len() as u32);
    let mut header = [0u8; ENTRY_HEADER_LEN];
    header[VERSION_AT..KEY_LEN_AT].copy_from_slice(&version.get().to_le_bytes());
    header[KEY_LEN_AT..VALUE_LEN_AT].copy_from_slice(&(key.len() as u16).to_le_bytes());
    header[VALUE_LEN_AT..].copy_from_slice(&value_len.to_le_bytes());
    block.try_extend_from_slice(&header)?;
    block.try_extend_from_slice(key)?;
    block.try_extend_from_slice(value.unwrap_or_default())
}

/// Decodes the entry at `position` in `block` and returns it with its length in bytes.
/// `block_offset` is the block's offset in the file, for the error. Every length is checked
/// against the bytes left in the block, once: the header as one 14-byte array, then the key
/// and the value each as one split of what follows.
pub(super) fn decode_entry_at(
    block: &[u8],
    position: usize,
    block_offset: u64,
) -> Result<(Entry<'_>, usize), Corruption> {
    let corrupt = |what| Corruption::new(block_offset + position as u64, what);
    let header_past_end = || corrupt("entry header runs past the block end");
    let rest = block.get(position..).ok_or_else(header_past_end)?;
    let (header, rest) =
        rest.split_first_chunk::<ENTRY_HEADER_LEN>().ok_or_else(header_past_end)?;
    // The fields at VERSION_AT, KEY_LEN_AT and VALUE_LEN_AT: 8, 2 and 4 bytes.
    let [v0, v1, v2, v3, v4, v5, v6, v7, k0, k1, l0, l1, l2, l3] = *header;
    let version = u64::from_le_bytes([v0, v1, v2, v3, v4, v5, v6, v7]);
    let key_len = u16::from_le_bytes([k0, k1]);
    let value_len = u32::from_le_bytes([l0, l1, l2, l3]);
    let (key, rest) = rest
        .split_at_checked(usize::from(key_len))
        .ok_or_else(|| corrupt("entry key runs past the block end"))?;
    let value = if value_len == TOMBSTONE {
        None
    } else {
        if value_len as usize > crate::limits::VALUE_LEN_MAX {
            return Err(corrupt("entry value length over the limit"));
        }
        Some(
            rest.get(..value_len as usize)
                .ok_or_else(|| corrupt("entry value runs past the block end"))?,
        )
    };
    let len = ENTRY_HEADER_LEN + key.len() + value.map_or(0, <[u8]>::len);
    Ok((Entry { key, version: Version::new(version), value }, len))
}

#[cfg(all(test, feature = "alloc", not(loom)))]
#[expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "a test: a panic fails it")]
mod tests {
    use alloc::vec::Vec;

    use super::*;

    fn encoded(key: &[u8], value: Option<&[u8]>) -> Vec<u8> {
        let mut block = Vec::new();
        encode_entry_into(&mut block, key, Version::new(0x0102_0304_0506_0708), value).unwrap();
        block
    }

    /// Every entry decodes to what was encoded, at any position; every cut of it, and every
    /// value length past the block or the limit, is a `Corruption` at the entry's offset.
    #[test]
    fn entries_decode_whole_and_every_cut_is_corruption() {
        for (key, value) in [(&b""[..], None), (b"k", Some(&b""[..])), (b"key", Some(b"value"))] {
            let bytes = encoded(key, value);
            for position in [0, 3] {
                let mut block = alloc::vec![0xEE; position];
                block.extend_from_slice(&bytes);
                let (entry, len) = decode_entry_at(&block, position, 100).unwrap();
                assert_eq!((entry.key, entry.value, len), (key, value, bytes.len()));
                assert_eq!(entry.version.get(), 0x0102_0304_0506_0708);
                for cut in position..block.len() {
                    let error = decode_entry_at(&block[..cut], position, 100).unwrap_err();
                    assert_eq!(error.offset, 100 + position as u64, "cut at {cut}");
                }
            }
            assert!(decode_entry_at(&bytes, bytes.len() + 1, 0).is_err(), "past the block");
        }
        let mut over = encoded(b"k", Some(b"v"));
        over[VALUE_LEN_AT..ENTRY_HEADER_LEN]
            .copy_from_slice(&(crate::limits::VALUE_LEN_MAX as u32 + 1).to_le_bytes());
        assert!(decode_entry_at(&over, 0, 0).is_err(), "a value length over the limit");
    }
}
