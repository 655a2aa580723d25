//! Where a [`super::SegmentBuilder`] keeps its metadata while it builds: growable `Vec`s
//! ([`VecStorage`], with `alloc`) or fixed-capacity `heapless::Vec`s ([`FixedStorage`], its
//! capacities const generics chosen by the caller). The builder is written once against
//! [`BuilderStorage`], so both produce the same bytes for the same input.

use core::fmt;

use super::block_index::BLOCK_HANDLE_LEN;
use crate::filter::BLOCK_WORD_COUNT;

/// One entry as the key index needs it: where its key is in the key arena, its version, and
/// where the entry is in the file. Opaque: only the builder makes and reads them.
#[derive(Clone, Copy, Debug)]
pub struct KeyRef {
    pub(super) key_start: usize,
    pub(super) key_len: u16,
    pub(super) version: u64,
    pub(super) entry_offset: u32,
}

/// An encoded block handle, as the block index keeps it.
pub type EncodedHandle = [u8; BLOCK_HANDLE_LEN];
/// One 256-bit block of the key filter, as eight words.
pub type FilterBlock = [u32; BLOCK_WORD_COUNT];

/// A [`List`] refused items that do not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListFull;

/// A list the builder appends to: a `Vec` (never full) or a `heapless::Vec` (full at `N`).
pub trait List<T: Copy>: Default {
    /// The most items the list can ever hold (`usize::MAX` for a growable list).
    const CAPACITY_MAX: usize;

    /// Appends `items`, or refuses with nothing appended when they do not fit.
    fn try_extend_from_slice(&mut self, items: &[T]) -> Result<(), ListFull>;
    /// The items.
    fn as_slice(&self) -> &[T];
    /// The items, mutably.
    fn as_mut_slice(&mut self) -> &mut [T];
    /// Removes every item, keeping the capacity.
    fn clear(&mut self);
    /// Items the list holds memory for now.
    fn capacity(&self) -> usize;

    /// Items in the list.
    fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether the list has no items.
    fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// Whether `additional` more items fit.
    fn has_room_for(&self, additional: usize) -> bool {
        Self::CAPACITY_MAX.saturating_sub(self.len()) >= additional
    }
}

#[cfg(feature = "alloc")]
impl<T: Copy> List<T> for alloc::vec::Vec<T> {
    const CAPACITY_MAX: usize = usize::MAX;

    fn try_extend_from_slice(&mut self, items: &[T]) -> Result<(), ListFull> {
        self.extend_from_slice(items);
        Ok(())
    }

    fn as_slice(&self) -> &[T] {
        self
    }

    fn as_mut_slice(&mut self) -> &mut [T] {
        self
    }

    fn clear(&mut self) {
        alloc::vec::Vec::clear(self);
    }

    fn capacity(&self) -> usize {
        alloc::vec::Vec::capacity(self)
    }
}

impl<T: Copy, const N: usize> List<T> for heapless::Vec<T, N> {
    const CAPACITY_MAX: usize = N;

    fn try_extend_from_slice(&mut self, items: &[T]) -> Result<(), ListFull> {
        self.extend_from_slice(items).map_err(|_| ListFull)
    }

    fn as_slice(&self) -> &[T] {
        self
    }

    fn as_mut_slice(&mut self) -> &mut [T] {
        self
    }

    fn clear(&mut self) {
        heapless::Vec::clear(self);
    }

    fn capacity(&self) -> usize {
        N
    }
}

/// The lists a builder keeps, one type per kind of metadata.
pub trait BuilderStorage {
    /// The data block being filled (bytes).
    type Block: List<u8>;
    /// The encoded handles of the blocks written (one per block).
    type BlockIndex: List<EncodedHandle>;
    /// Every entry's key, concatenated (bytes).
    type Keys: List<u8>;
    /// One reference per entry.
    type Refs: List<KeyRef>;
    /// The key filter while `finish` builds it (one per 256-bit filter block).
    type FilterBlocks: List<FilterBlock>;
}

/// Growable storage: the builder's memory grows with the segment, and the caller bounds it by
/// splitting its output ([`super::SegmentBuilder::memory_bytes`]).
#[cfg(feature = "alloc")]
#[derive(Clone, Copy, Debug, Default)]
pub struct VecStorage;

#[cfg(feature = "alloc")]
impl BuilderStorage for VecStorage {
    type Block = alloc::vec::Vec<u8>;
    type BlockIndex = alloc::vec::Vec<EncodedHandle>;
    type Keys = alloc::vec::Vec<u8>;
    type Refs = alloc::vec::Vec<KeyRef>;
    type FilterBlocks = alloc::vec::Vec<FilterBlock>;
}

/// Fixed storage held inside the builder, no allocation: at most `ENTRY_COUNT` entries whose
/// keys total at most `KEY_BYTES`, data blocks of at most `BLOCK_BYTES` (the block target, or
/// one entry if larger), at most `BLOCK_COUNT` blocks, and a key filter of at most
/// `FILTER_BLOCK_COUNT` blocks ([`filter_block_count`] of the distinct key count). Past any
/// of them the builder refuses with [`StorageFull`].
#[derive(Clone, Copy, Debug, Default)]
pub struct FixedStorage<
    const ENTRY_COUNT: usize,
    const KEY_BYTES: usize,
    const BLOCK_BYTES: usize,
    const BLOCK_COUNT: usize,
    const FILTER_BLOCK_COUNT: usize,
>;

impl<
    const ENTRY_COUNT: usize,
    const KEY_BYTES: usize,
    const BLOCK_BYTES: usize,
    const BLOCK_COUNT: usize,
    const FILTER_BLOCK_COUNT: usize,
> BuilderStorage
    for FixedStorage<ENTRY_COUNT, KEY_BYTES, BLOCK_BYTES, BLOCK_COUNT, FILTER_BLOCK_COUNT>
{
    type Block = heapless::Vec<u8, BLOCK_BYTES>;
    type BlockIndex = heapless::Vec<EncodedHandle, BLOCK_COUNT>;
    type Keys = heapless::Vec<u8, KEY_BYTES>;
    type Refs = heapless::Vec<KeyRef, ENTRY_COUNT>;
    type FilterBlocks = heapless::Vec<FilterBlock, FILTER_BLOCK_COUNT>;
}

/// The filter blocks a segment of `key_count` distinct keys needs: the `FILTER_BLOCK_COUNT`
/// of a [`FixedStorage`] for that many keys.
#[must_use]
pub const fn filter_block_count(key_count: usize) -> usize {
    crate::filter::block_count_for(key_count, crate::filter::BITS_PER_KEY_DEFAULT) as usize
}

/// A fixed [`BuilderStorage`] list is full; nothing of the refused entry was kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageFull {
    /// Which list: "entries", "key bytes", "block bytes", "blocks" or "filter blocks".
    pub what: &'static str,
    /// Its capacity, in the list's items.
    pub capacity: usize,
}

impl fmt::Display for StorageFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "segment builder storage full: {} (capacity {})", self.what, self.capacity)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for StorageFull {}

/// `list` has room for `additional` more items, or the error naming it.
pub(super) fn room<T: Copy, L: List<T>>(
    list: &L,
    additional: usize,
    what: &'static str,
) -> Result<(), StorageFull> {
    if list.has_room_for(additional) {
        Ok(())
    } else {
        Err(StorageFull { what, capacity: L::CAPACITY_MAX })
    }
}
