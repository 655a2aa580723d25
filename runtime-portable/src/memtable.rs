//! The memtable: the newest writes, in an arena skiplist.
//!
//! Entries are ordered by key ascending, then version descending (the key order of a segment's
//! key index), so `get_at` is one O(log n) seek, and `history` and `range_at` are ordered
//! walks. Z order, which segments need, is produced when the memtable is flushed (a sort of
//! the flushed entries).
//!
//! The structure is the single-writer skiplist of LevelDB's `SkipList` and RocksDB's
//! `InlineSkipList` (Pugh's skiplist, branching factor 4): each node is one block of an arena
//! holding its header, its tower of links, its key and its value, so an insert allocates
//! nothing once the arena's chunk has room (chunks grow to [`CHUNK_BYTES_MAX`]), and nodes
//! never move or die before the memtable. One writer at a time inserts (the commit leader;
//! a mutex makes it so); readers take no lock and never see a half-inserted node (the
//! publication protocol is at [`Memtable::insert`]). Readers filter by version, so an entry
//! above the visibility watermark is invisible until the watermark passes it.
//!
//! A search starts on a guide ([`Guide`]) when one is near: per range of key prefixes, the
//! range's greatest node on two levels or more, from which the search walks those two levels
//! only, instead of descending every level from the head (a cache miss per level on a large
//! memtable).
//!
//! A commit group of many writes goes in through [`Memtable::insert_sorted`]: sorted, its
//! searches run sixteen at a time in lockstep with prefetches, so their cache misses (most of an
//! insert's time in a large memtable) overlap; the links are then published one node at a time
//! exactly as `insert` does.
//!
//! Measured against crossbeam-skiplist in `benches/benches/memtable.rs`
//! (`benches/results/memtable.md`): faster inserts and reads, less memory per entry.

use std::cmp::Ordering;
use std::fmt;
use std::ops::{Bound, Deref};
use std::ptr::{self, NonNull};
use std::sync::Arc;

use zverse_core::zkey::key_prefix;
use zverse_core::{Entry, Version};

use crate::sync::{AtomicPtr, AtomicU64, AtomicUsize, Mutex, Ordering as AtomicOrdering};

/// The tallest tower. With branching factor 4, twelve levels index 4^12 = 16M entries at the
/// expected O(log n) cost; past that, searches slow down gently.
const HEIGHT_MAX: usize = 12;
/// One in `BRANCHING` nodes of a level is also in the level above.
const BRANCHING: u64 = 4;
/// The first arena chunk's size; each next chunk doubles, up to [`CHUNK_BYTES_MAX`], so that
/// a small memtable stays small and a large one allocates rarely.
const CHUNK_BYTES_MIN: usize = 4 << 10;
/// The largest arena chunk. A node larger than a quarter of it gets a chunk of its own.
const CHUNK_BYTES_MAX: usize = 1 << 20;
/// Arena chunks are arrays of words, so that every node starts 8-byte aligned.
const WORD_BYTES: usize = size_of::<u64>();
/// `value_len` of a tombstone.
const TOMBSTONE_LEN: u32 = u32::MAX;

/// A node's fixed header. Its tower of `height` rungs follows, then the key, then the value.
#[repr(C)]
struct Node {
    /// The key's first 8 bytes, zero-padded, big-endian: most comparisons end here, on the
    /// header's cache line, without reading the key.
    key_prefix: u64,
    version: u64,
    /// The value's length, or [`TOMBSTONE_LEN`] for a delete.
    value_len: u32,
    key_len: u16,
    height: u8,
}

/// A link to the next node of a level (null at the end).
type Link = AtomicPtr<Node>;

/// One level of a node's tower: the link to the next node of the level, and that node's key
/// prefix. The writer alone reads and writes the prefix (readers never look at it), keeping
/// it equal to the linked node's whenever the link is not null: its searches decide most
/// steps from the node they stand on, and load only the nodes they move to (a cache miss
/// each on a large memtable), not the one they stop before on each level.
#[repr(C)]
struct Rung {
    link: Link,
    next_prefix: AtomicU64,
}

/// Where a node's tower starts, from the node's start.
const TOWER_OFFSET: usize = size_of::<Node>().next_multiple_of(align_of::<Rung>());

const _: () = assert!(align_of::<Node>() <= WORD_BYTES && align_of::<Rung>() <= WORD_BYTES);
const _: () = assert!(TOWER_OFFSET.is_multiple_of(align_of::<Rung>()));
const _: () = assert!(zverse_core::limits::VALUE_LEN_MAX < TOMBSTONE_LEN as usize);
const _: () = assert!(zverse_core::limits::KEY_LEN_MAX <= u16::MAX as usize);
const _: () = assert!(HEIGHT_MAX <= u8::MAX as usize);
const _: () = assert!(size_of::<Node>() == 24);

/// Bits of a key's prefix (its first ones) that pick its guide bucket, at most: 65,536 buckets,
/// 512 KiB of guide pointers and 8 KiB of dense bits for a memtable of 64 MiB or more (a
/// smaller one gets one bucket per KiB of its budget, [`guide_bits_for`]). Fewer in the tests
/// and the loom models, so that their keys spread over several buckets and few atomics are
/// modelled.
#[cfg(not(any(test, loom)))]
const GUIDE_BITS: u32 = 16;
#[cfg(all(test, not(loom)))]
const GUIDE_BITS: u32 = 8;
#[cfg(loom)]
const GUIDE_BITS: u32 = 2;
/// A guide is on at least this many levels, and a guided search walks these levels only: with
/// 16 bits, about as many nodes have two levels as there are buckets at 256k entries.
#[cfg(not(any(test, loom)))]
const GUIDE_LEVELS: usize = 2;
#[cfg(any(test, loom))]
const GUIDE_LEVELS: usize = 1;
/// Guide bits for a memtable of `budget_bytes`: about one bucket per KiB (a 1% overhead),
/// between [`GUIDE_BITS_MIN`] and [`GUIDE_BITS`].
fn guide_bits_for(budget_bytes: u64) -> u32 {
    let buckets = (budget_bytes / 1024).max(1);
    (u64::BITS - 1 - buckets.leading_zeros()).clamp(GUIDE_BITS_MIN, GUIDE_BITS)
}

/// The fewest guide bits: 16 buckets (fewer in the loom models).
const GUIDE_BITS_MIN: u32 = if GUIDE_BITS < 4 { GUIDE_BITS } else { 4 };

/// Buckets before the target's looked through for a guide (adjacent pointers: one cache line).
const GUIDE_LOOK_BACK: usize = 4;
/// Steps right on the guide's top level after which the target's bucket counts as dense: its
/// searches start from the head from then on.
const GUIDE_STEPS_MAX: usize = if cfg!(any(test, loom)) { 4 } else { 16 };

/// Where searches may start below the head. Each bucket (a range of key prefixes) holds the
/// greatest node of the bucket that is on at least [`GUIDE_LEVELS`] levels, or null: every
/// key of a later bucket is after it, so a search for such a key can start on it, on those
/// levels, instead of descending the towers from the head (whose upper levels cost a cache
/// miss each on a large memtable). Only the writer stores; readers load.
struct Guide {
    /// Bits of the key prefix that pick a bucket (at most [`GUIDE_BITS`]).
    bits: u32,
    nodes: Box<[Link]>,
    /// One bit per bucket: set (by the writer) when a guided search walked past
    /// [`GUIDE_STEPS_MAX`] nodes of the bucket, so that dense buckets search from the head.
    dense: Box<[AtomicU64]>,
}

impl Guide {
    fn new(bits: u32) -> Guide {
        let buckets = 1_usize << bits;
        Guide {
            bits,
            nodes: null_links(buckets),
            dense: (0..buckets.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn bucket(&self, key_prefix: u64) -> usize {
        // The shift leaves `bits` (<= 16) bits, so the cast keeps them all.
        (key_prefix >> (u64::BITS - self.bits)) as usize
    }

    /// A node before every key of `bucket` on levels `0..GUIDE_LEVELS`, unless the bucket is
    /// dense or no bucket shortly before it has a guide.
    fn before(&self, bucket: usize) -> Option<NodePtr> {
        // Relaxed: a hint; a search that misses a fresh bit walks a few nodes more.
        if self.dense[bucket / 64].load(AtomicOrdering::Relaxed) & (1 << (bucket % 64)) != 0 {
            return None;
        }
        (1..=GUIDE_LOOK_BACK.min(bucket)).find_map(|back| {
            // Acquire: pairs with `set`'s Release, so the node is seen whole and linked in.
            NonNull::new(self.nodes[bucket - back].load(AtomicOrdering::Acquire)).map(NodePtr)
        })
    }

    fn set(&self, bucket: usize, node: NodePtr) {
        self.nodes[bucket].store(node.0.as_ptr(), AtomicOrdering::Release);
    }

    fn mark_dense(&self, bucket: usize) {
        self.dense[bucket / 64].fetch_or(1 << (bucket % 64), AtomicOrdering::Relaxed);
    }
}

/// `count` null links, from zeroed memory: one `calloc`, not a loop over the table (the
/// tests open thousands of memtables, and an unoptimized loop over 65,536 links dominated
/// them).
#[cfg(not(loom))]
fn null_links(count: usize) -> Box<[Link]> {
    let layout = std::alloc::Layout::array::<Link>(count).expect("at most 2^16 links");
    assert!(layout.size() > 0, "a guide table has buckets");
    // SAFETY: `layout` has a non-zero size (asserted).
    #[expect(clippy::cast_ptr_alignment, reason = "allocated with `Link`'s own layout")]
    let raw = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<Link>();
    if raw.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    // SAFETY: `raw` is a fresh allocation of `layout`, the global allocator's layout of a
    // `[Link]` of `count`, so the box owns and will free it with that layout; its bytes are
    // zero, and `AtomicPtr<T>` has the same in-memory representation as `*mut T`, whose null
    // is all zero bits: `count` initialized null links.
    unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(raw, count)) }
}

/// `count` null links (loom's atomics are not plain memory).
#[cfg(loom)]
fn null_links(count: usize) -> Box<[Link]> {
    (0..count).map(|_| Link::new(ptr::null_mut())).collect()
}

/// A guided search walked past [`GUIDE_STEPS_MAX`] nodes.
struct TooFar;

/// One insert for [`Memtable::insert_sorted`]: key, version and value (`None`: a tombstone).
pub(crate) type Op<'a> = (&'a [u8], Version, Option<&'a [u8]>);

/// Searches [`Memtable::insert_sorted`] runs in lockstep: 16 measured 9-17% faster than 8 on
/// 1M-entry fills, and 32 about as fast as 16 (`benches/results/write-path.md`).
const LANES: usize = 16;

/// A group of at least this many ops is sorted and inserted with [`Memtable::insert_sorted`],
/// whose lockstep searches overlap their cache misses (`benches/results/memtable.md`); a
/// smaller one is inserted op by op ([`Memtable::insert_group`]).
pub(crate) const GROUP_OPS_MIN: usize = 16;

/// The memtable's order of ops: key ascending, version descending.
fn position_order(a: &Op<'_>, b: &Op<'_>) -> Ordering {
    a.0.cmp(b.0).then_with(|| b.1.cmp(&a.1))
}

fn same_position(a: &Op<'_>, b: &Op<'_>) -> bool {
    a.0 == b.0 && a.1 == b.1
}

/// One search of [`Memtable::insert_sorted`]: where it stands, the link it reads next (its
/// target prefetched), and the predecessors found so far.
#[derive(Clone, Copy)]
struct Lane {
    node: NodePtr,
    level: usize,
    next: Option<NodePtr>,
    preds: [NodePtr; HEIGHT_MAX],
    done: bool,
}

impl Lane {
    fn new(head: NodePtr, height: usize) -> Lane {
        let level = height - 1;
        let next = head.next(level);
        prefetch(next);
        Lane { node: head, level, next, preds: [head; HEIGHT_MAX], done: false }
    }

    /// One step of the search for `target` (as [`Memtable::seek`]'s): moves right past a
    /// node before it, or records the predecessor and steps down. Returns whether the search
    /// just ended. (It compares the prefetched next node itself, not its rung's copy of the
    /// prefix: that measured slower here, where the lanes overlap their cache misses.)
    fn step(&mut self, target: &Target<'_>) -> bool {
        if let Some(next) = self.next.filter(|n| n.cmp_to(target) == Ordering::Less) {
            self.node = next;
        } else {
            self.preds[self.level] = self.node;
            if self.level == 0 {
                self.done = true;
                return true;
            }
            self.level -= 1;
        }
        self.next = self.node.next(self.level);
        prefetch(self.next);
        false
    }
}

/// Starts loading `node`'s header into the cache (a hint; nothing is read).
fn prefetch(node: Option<NodePtr>) {
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    if let Some(node) = node {
        // SAFETY: a prefetch reads nothing architecturally and never faults, whatever the
        // address; SSE, which it needs, is in every x86_64 CPU.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                node.0.as_ptr().cast::<i8>().cast_const(),
            );
        }
    }
    #[cfg(not(all(target_arch = "x86_64", not(loom))))]
    let _ = node;
}

/// A (key, version) position to compare nodes with, its key prefix computed once.
#[derive(Clone, Copy)]
struct Target<'k> {
    key: &'k [u8],
    key_prefix: u64,
    version: Version,
}

impl Target<'_> {
    fn new(key: &[u8], version: Version) -> Target<'_> {
        Target { key, key_prefix: key_prefix(key), version }
    }
}

/// The bytes of a node of `height` links holding `key_len` and `value_len` bytes, rounded
/// up to whole words.
fn node_bytes(height: usize, key_len: usize, value_len: usize) -> usize {
    (TOWER_OFFSET + height * size_of::<Rung>() + key_len + value_len).next_multiple_of(WORD_BYTES)
}

/// A published node. Every function below takes a pointer to a node that [`Arena::node`]
/// initialized and that lives as long as its memtable.
#[derive(Clone, Copy, PartialEq, Eq)]
struct NodePtr(NonNull<Node>);

impl NodePtr {
    fn header(self) -> &'static Node {
        // SAFETY: nodes are initialized before they are published and never written again
        // (only their links change, and those are not in `Node`); the `'static` is narrowed by
        // every caller to the memtable's lifetime, which the node's chunk outlives.
        unsafe { self.0.as_ref() }
    }

    fn rung(self, level: usize) -> &'static Rung {
        assert!(level < self.header().height as usize, "a rung below the node's height");
        // SAFETY: the tower of `height` rungs starts at `TOWER_OFFSET` inside the node's
        // block (`node_bytes`), each rung initialized by `Arena::node`; see `header`.
        unsafe { &*self.0.as_ptr().byte_add(TOWER_OFFSET).cast::<Rung>().add(level) }
    }

    fn link(self, level: usize) -> &'static Link {
        &self.rung(level).link
    }

    /// The key prefix of the next node on `level` as the writer linked it. Writer only.
    fn next_prefix(self, level: usize) -> u64 {
        self.rung(level).next_prefix.load(AtomicOrdering::Relaxed)
    }

    /// Links `next` (of key prefix `next_prefix`) after this node on `level`: the writer's
    /// Release publication, its copy of the prefix first.
    fn link_to(self, level: usize, next: *mut Node, next_prefix: u64, order: AtomicOrdering) {
        let rung = self.rung(level);
        rung.next_prefix.store(next_prefix, AtomicOrdering::Relaxed);
        rung.link.store(next, order);
    }

    /// The writer's step: `next`, the node after this one on `level` as loaded, if it is
    /// before `target`, decided on the rung's copy of its key prefix (the node is loaded only
    /// when the prefixes tie).
    fn before_target(
        self,
        level: usize,
        next: Option<NodePtr>,
        target: &Target<'_>,
    ) -> Option<NodePtr> {
        let next = next?;
        let prefix = self.next_prefix(level);
        debug_assert_eq!(prefix, next.header().key_prefix, "a rung's prefix is its next's");
        match prefix.cmp(&target.key_prefix) {
            Ordering::Less => Some(next),
            Ordering::Greater => None,
            Ordering::Equal => (next.cmp_to(target) == Ordering::Less).then_some(next),
        }
    }

    fn next(self, level: usize) -> Option<NodePtr> {
        // Acquire: pairs with the writer's Release publication, so the node it points to is
        // seen fully initialized.
        NonNull::new(self.link(level).load(AtomicOrdering::Acquire)).map(NodePtr)
    }

    /// The key bytes and, after them, the value bytes.
    fn payload(self) -> &'static [u8] {
        let node = self.header();
        let value_len = if node.value_len == TOMBSTONE_LEN { 0 } else { node.value_len };
        let len = node.key_len as usize + value_len as usize;
        let offset = TOWER_OFFSET + node.height as usize * size_of::<Rung>();
        // SAFETY: `Arena::node` wrote `len` bytes of key and value right after the tower,
        // inside the node's block; see `header`.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast::<u8>().add(offset), len) }
    }

    fn key(self) -> &'static [u8] {
        self.payload().split_at(self.header().key_len as usize).0
    }

    fn value(self) -> Option<&'static [u8]> {
        (self.header().value_len != TOMBSTONE_LEN)
            .then(|| self.payload().split_at(self.header().key_len as usize).1)
    }

    fn version(self) -> Version {
        Version::new(self.header().version)
    }

    /// The node's place relative to `target` in (key ascending, version descending).
    fn cmp_to(self, target: &Target<'_>) -> Ordering {
        let header = self.header();
        header
            .key_prefix
            .cmp(&target.key_prefix)
            .then_with(|| self.key().cmp(target.key))
            .then_with(|| target.version.cmp(&self.version()))
    }
}

/// The chunks nodes are carved from. Only the writer (under `Memtable::writer`) touches it;
/// chunks are freed when the memtable drops.
struct Arena {
    /// Every chunk, as the raw pointer `Box::into_raw` gave: nodes are reached through
    /// pointers derived from it, never through a reference to a whole chunk.
    chunks: Vec<NonNull<[u64]>>,
    /// The chunk being filled and the words of it used.
    current: Option<(NonNull<[u64]>, usize)>,
    chunk_words_next: usize,
    /// xorshift64 state for tower heights.
    rng: u64,
}

impl Arena {
    fn new() -> Arena {
        Arena {
            chunks: Vec::new(),
            current: None,
            chunk_words_next: CHUNK_BYTES_MIN / WORD_BYTES,
            rng: 0x9E37_79B9_7F4A_7C15,
        }
    }

    /// A tower height: 1, then one more level with probability 1/`BRANCHING` each.
    fn random_height(&mut self) -> usize {
        let mut height = 1;
        while height < HEIGHT_MAX {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            if !self.rng.is_multiple_of(BRANCHING) {
                break;
            }
            height += 1;
        }
        height
    }

    /// `words` zeroed, word-aligned words that live as long as the arena.
    fn alloc(&mut self, words: usize) -> NonNull<u64> {
        if words > CHUNK_BYTES_MAX / WORD_BYTES / 4 {
            return self.new_chunk(words); // Large: its own chunk; the current one stays.
        }
        let fits = self.current.is_some_and(|(chunk, used)| chunk.len() - used >= words);
        if !fits {
            let chunk_words = self.chunk_words_next.max(words);
            self.chunk_words_next = (chunk_words * 2).min(CHUNK_BYTES_MAX / WORD_BYTES);
            let start = self.new_chunk(chunk_words);
            self.current = Some((NonNull::slice_from_raw_parts(start, chunk_words), 0));
        }
        let (chunk, used) = self.current.as_mut().expect("a current chunk with room");
        // SAFETY: `used + words <= chunk.len()`, so the result is inside the chunk.
        let start = unsafe { chunk.cast::<u64>().add(*used) };
        *used += words;
        start
    }

    fn new_chunk(&mut self, words: usize) -> NonNull<u64> {
        let chunk = NonNull::from(Box::leak(vec![0u64; words].into_boxed_slice()));
        self.chunks.push(chunk);
        chunk.cast()
    }

    /// Writes a node with null links and returns it, unpublished.
    fn node(
        &mut self,
        height: usize,
        key: &[u8],
        version: Version,
        value: Option<&[u8]>,
    ) -> NodePtr {
        let value_bytes = value.unwrap_or_default();
        let bytes = node_bytes(height, key.len(), value_bytes.len());
        let start = self.alloc(bytes / WORD_BYTES);
        let header = Node {
            key_prefix: key_prefix(key),
            version: version.get(),
            key_len: u16::try_from(key.len()).expect("keys are within KEY_LEN_MAX"),
            value_len: value.map_or(TOMBSTONE_LEN, |v| {
                u32::try_from(v.len()).expect("values are within VALUE_LEN_MAX")
            }),
            height: u8::try_from(height).expect("heights are within HEIGHT_MAX"),
        };
        // SAFETY: `start` is `bytes` fresh, word-aligned bytes nobody else can reach yet,
        // laid out as `node_bytes` describes: header, `height` rungs, key, value.
        unsafe {
            ptr::write(start.as_ptr().cast::<Node>(), header);
            let tower = start.as_ptr().byte_add(TOWER_OFFSET).cast::<Rung>();
            for level in 0..height {
                let rung =
                    Rung { link: Link::new(ptr::null_mut()), next_prefix: AtomicU64::new(0) };
                ptr::write(tower.add(level), rung);
            }
            let payload = tower.add(height).cast::<u8>();
            ptr::copy_nonoverlapping(key.as_ptr(), payload, key.len());
            let value_at = payload.add(key.len());
            ptr::copy_nonoverlapping(value_bytes.as_ptr(), value_at, value_bytes.len());
        }
        NodePtr(start.cast())
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        for chunk in self.chunks.drain(..) {
            // SAFETY: each chunk came from `Box::leak` in `new_chunk` and is freed once; the
            // memtable owning the arena is being dropped, so no reader holds a node.
            drop(unsafe { Box::from_raw(chunk.as_ptr()) });
        }
    }
}

/// The memtable. Shared by `Arc` between the writer, readers and the flush.
pub(crate) struct Memtable {
    /// The head of every level: a node with no key and a full tower.
    head: NodePtr,
    /// The tallest tower so far: searches start there. Relaxed: a reader that sees a new
    /// height before the head's new link just finds the link null and steps down.
    height: AtomicUsize,
    writer: Mutex<Arena>,
    guide: Guide,
    /// The first log file holding this memtable's records: once the memtable is in a segment,
    /// every log before the next memtable's first log can go.
    log_number_first: u64,
    entry_count: AtomicUsize,
    size_bytes: AtomicU64,
    payload_bytes: AtomicU64,
    /// The last version of a record applied to this memtable, whether or not it wrote an entry
    /// (an empty batch has a version too): the flush records it, so that no version is ever
    /// handed out twice.
    version_last: AtomicU64,
}

// SAFETY: the raw pointers are into chunks the memtable owns; nodes are immutable once
// published except their links, which are atomics; the arena is behind a mutex.
unsafe impl Send for Memtable {}
// SAFETY: as for `Send`.
unsafe impl Sync for Memtable {}

impl fmt::Debug for Memtable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memtable")
            .field("log_number_first", &self.log_number_first)
            .field("entry_count", &self.entry_count())
            .field("size_bytes", &self.size_bytes())
            .finish_non_exhaustive()
    }
}

/// Bytes of a memtable entry's key or value, shared with the memtable (which it keeps alive)
/// instead of copied out of it.
#[derive(Clone)]
pub(crate) struct MemBytes {
    #[expect(dead_code, reason = "held, never read: it keeps the bytes' arena alive")]
    memtable: Arc<Memtable>,
    bytes: NonNull<[u8]>,
}

// SAFETY: the bytes are immutable and live in `memtable`'s arena, which the `Arc` keeps.
unsafe impl Send for MemBytes {}
// SAFETY: as for `Send`.
unsafe impl Sync for MemBytes {}

impl MemBytes {
    /// `bytes` of a node of `memtable`.
    pub(crate) fn new(memtable: &Arc<Memtable>, bytes: &[u8]) -> MemBytes {
        MemBytes { memtable: Arc::clone(memtable), bytes: NonNull::from(bytes) }
    }
}

impl Deref for MemBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: the bytes are in a node of `self.memtable`, alive while the `Arc` is.
        unsafe { self.bytes.as_ref() }
    }
}

impl fmt::Debug for MemBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl PartialEq for MemBytes {
    fn eq(&self, other: &MemBytes) -> bool {
        **self == **other
    }
}

impl Eq for MemBytes {}

/// One version of one key, as the memtable returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MemEntry {
    pub key: MemBytes,
    pub version: Version,
    /// The value, or `None` for a tombstone.
    pub value: Option<MemBytes>,
}

impl MemEntry {
    fn of(memtable: &Arc<Memtable>, node: NodePtr) -> MemEntry {
        MemEntry {
            key: MemBytes::new(memtable, node.key()),
            version: node.version(),
            value: node.value().map(|value| MemBytes::new(memtable, value)),
        }
    }
}

impl Memtable {
    /// An empty memtable whose records go to log `log_number_first` onwards, with the largest
    /// guide table.
    pub(crate) fn new(log_number_first: u64) -> Memtable {
        Memtable::with_guide_bits(log_number_first, GUIDE_BITS)
    }

    /// An empty memtable for log `log_number_first` onwards that will hold about
    /// `budget_bytes` (`Options::memtable_bytes_max`): its guide table is sized to it.
    pub(crate) fn with_budget(log_number_first: u64, budget_bytes: u64) -> Memtable {
        Memtable::with_guide_bits(log_number_first, guide_bits_for(budget_bytes))
    }

    /// The empty memtable that follows this one, for log `log_number_first` onwards, with a
    /// guide table of the same size.
    pub(crate) fn successor(&self, log_number_first: u64) -> Memtable {
        Memtable::with_guide_bits(log_number_first, self.guide.bits)
    }

    fn with_guide_bits(log_number_first: u64, guide_bits: u32) -> Memtable {
        let mut arena = Arena::new();
        let head = arena.node(HEIGHT_MAX, &[], Version::MAX, None);
        Memtable {
            head,
            height: AtomicUsize::new(1),
            writer: Mutex::new(arena),
            guide: Guide::new(guide_bits),
            log_number_first,
            entry_count: AtomicUsize::new(0),
            size_bytes: AtomicU64::new(0),
            payload_bytes: AtomicU64::new(0),
            version_last: AtomicU64::new(0),
        }
    }

    pub(crate) fn log_number_first(&self) -> u64 {
        self.log_number_first
    }

    /// Inserts one version of one key; a second insert of the same key and version replaces
    /// the first (the later write of a batch wins). Only the commit leader calls this.
    ///
    /// The new node is written whole, its links pointing at its successors, before any
    /// other node links to it; then it is linked in bottom-up with Release stores, so a
    /// reader that loads a link to it (Acquire) sees it whole. A replaced node keeps its
    /// links, so a reader standing on it walks on unharmed.
    pub(crate) fn insert(&self, key: &[u8], version: Version, value: Option<&[u8]>) {
        // Held to the end: the lock is what keeps inserts to one writer at a time.
        let mut arena = self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut preds = [self.head; HEIGHT_MAX];
        let target = Target::new(key, version);
        let levels = self.seek_writer(&target, &mut preds);
        let (height, replaced) = Self::place(&mut arena, &preds, &target);
        if height > levels {
            // A guided search found the predecessors on its levels only.
            self.seek(&target, Some(&mut preds));
        }
        self.link_in(&mut arena, &preds, &target, value, (height, replaced));
    }

    /// The writer's search: as [`Memtable::seek`], marking the target's bucket dense when a
    /// guided search walks too far. Returns how many levels of `preds` it found.
    fn seek_writer(&self, target: &Target<'_>, preds: &mut [NodePtr; HEIGHT_MAX]) -> usize {
        let bucket = self.guide.bucket(target.key_prefix);
        if let Some(guide) = self.guide.before(bucket) {
            match self.walk(guide, GUIDE_LEVELS, target, Some(&mut *preds), GUIDE_STEPS_MAX) {
                Ok(_) => return GUIDE_LEVELS,
                Err(TooFar) => self.guide.mark_dense(bucket),
            }
        }
        self.seek(target, Some(preds));
        HEIGHT_MAX
    }

    /// The height of a new node for `target` after `preds` (the last nodes before it), and the
    /// node of the same key and version it replaces (whose height it takes).
    fn place(
        arena: &mut Arena,
        preds: &[NodePtr; HEIGHT_MAX],
        target: &Target<'_>,
    ) -> (usize, Option<NodePtr>) {
        let successor = preds[0].next(0);
        debug_assert!(successor.is_none_or(|n| n.cmp_to(target) != Ordering::Less));
        let replaced = successor.filter(|node| {
            preds[0].next_prefix(0) == target.key_prefix && node.cmp_to(target) == Ordering::Equal
        });
        let height = replaced.map_or_else(|| arena.random_height(), |n| n.header().height as usize);
        (height, replaced)
    }

    /// Links a new node for `target` (and `value`) in after `preds`, the last node before it
    /// on each of its `height` levels, replacing `replaced`, the node of the same key and
    /// version if any (`place` gives both). Returns the new node, its height and the node it
    /// replaced.
    fn link_in(
        &self,
        arena: &mut Arena,
        preds: &[NodePtr; HEIGHT_MAX],
        target: &Target<'_>,
        value: Option<&[u8]>,
        (height, replaced): (usize, Option<NodePtr>),
    ) -> (NodePtr, usize, Option<NodePtr>) {
        let (key, version) = (target.key, target.version);
        let node = arena.node(height, key, version, value);
        for (level, pred) in preds.iter().enumerate().take(height) {
            let before = replaced.unwrap_or(*pred);
            let next = before.link(level).load(AtomicOrdering::Relaxed);
            node.link_to(level, next, before.next_prefix(level), AtomicOrdering::Relaxed);
        }
        self.height.fetch_max(height, AtomicOrdering::Relaxed);
        let prefix = node.header().key_prefix;
        for (level, pred) in preds.iter().enumerate().take(height) {
            pred.link_to(level, node.0.as_ptr(), prefix, AtomicOrdering::Release);
        }
        self.guide_by(node, height);
        let payload = (key.len() + value.map_or(0, <[u8]>::len)) as u64;
        let replaced_payload = replaced.map_or(0, |old| old.payload().len() as u64);
        let bytes = node_bytes(height, key.len(), value.map_or(0, <[u8]>::len)) as u64;
        self.size_bytes.fetch_add(bytes, AtomicOrdering::Relaxed);
        self.payload_bytes.fetch_add(payload, AtomicOrdering::Relaxed);
        self.payload_bytes.fetch_sub(replaced_payload, AtomicOrdering::Relaxed);
        if replaced.is_none() {
            self.entry_count.fetch_add(1, AtomicOrdering::Relaxed);
        }
        (node, height, replaced)
    }

    /// Inserts `ops` as [`Memtable::insert`] would one by one in their order (of two ops at
    /// one key and version, the later wins), sorting them (stably) for
    /// [`Memtable::insert_sorted`] when there are at least [`GROUP_OPS_MIN`] of them and they
    /// are not in the memtable's order already (a sequential load's searches share a cached
    /// path, so it goes in op by op). `ops` is left in the order it was inserted in.
    pub(crate) fn insert_group(&self, ops: &mut [Op<'_>]) {
        if ops.len() < GROUP_OPS_MIN
            || ops.is_sorted_by(|a, b| position_order(a, b) != Ordering::Greater)
        {
            for &(key, version, value) in &*ops {
                self.insert(key, version, value);
            }
        } else {
            ops.sort_by(position_order);
            self.insert_sorted(ops);
        }
    }

    /// Inserts `ops`, sorted by key ascending and version descending (a later op with the
    /// same key and version replaces the earlier, as [`Memtable::insert`] does), as `insert`
    /// would one by one, but searching for up to [`LANES`] of them at a time in lockstep: each
    /// step of a search prefetches the node its next step reads, so the cache misses of the
    /// lanes overlap instead of following one another. The searches only read; the inserts
    /// then run in order, each moving the later lanes' predecessors onto the node it added.
    pub(crate) fn insert_sorted(&self, ops: &[Op<'_>]) {
        let mut arena = self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut start = 0;
        while start < ops.len() {
            let mut end = start + 1;
            while end < ops.len() && end - start < LANES && !same_position(&ops[end - 1], &ops[end])
            {
                end += 1;
            }
            self.insert_lanes(&mut arena, &ops[start..end]);
            start = end;
        }
    }

    /// [`Memtable::insert_sorted`] for at most [`LANES`] ops of distinct positions.
    fn insert_lanes(&self, arena: &mut Arena, ops: &[Op<'_>]) {
        assert!(ops.len() <= LANES, "one op per lane");
        let targets: [Option<Target<'_>>; LANES] =
            std::array::from_fn(|lane| ops.get(lane).map(|op| Target::new(op.0, op.1)));
        let mut lanes = [Lane::new(self.head, self.height.load(AtomicOrdering::Relaxed)); LANES];
        let mut running = ops.len();
        while running > 0 {
            for (lane, target) in lanes.iter_mut().zip(&targets).take(ops.len()) {
                if !lane.done && lane.step(target.as_ref().expect("a lane per op")) {
                    running -= 1;
                }
            }
        }
        for (index, op) in ops.iter().enumerate() {
            let target = targets[index].as_ref().expect("a lane per op");
            let preds = lanes[index].preds;
            let placed = Self::place(arena, &preds, target);
            let (node, height, replaced) = self.link_in(arena, &preds, target, op.2, placed);
            for later in lanes.iter_mut().take(ops.len()).skip(index + 1) {
                for (pred, &pred_here) in later.preds.iter_mut().zip(&preds).take(height) {
                    if *pred == pred_here || Some(*pred) == replaced {
                        *pred = node;
                    }
                }
            }
        }
    }

    /// Makes a freshly linked `node` of `height` levels its bucket's guide if it is on enough
    /// levels and now the bucket's greatest such node (its successor on the guide's top level
    /// is in a later bucket: a node the search just compared, so cached). A node that replaces
    /// its bucket's guide is the greatest in its turn, so no guide is ever a replaced node.
    fn guide_by(&self, node: NodePtr, height: usize) {
        if height < GUIDE_LEVELS {
            return;
        }
        let bucket = self.guide.bucket(node.header().key_prefix);
        let next = node.next(GUIDE_LEVELS - 1);
        let next_prefix = node.next_prefix(GUIDE_LEVELS - 1);
        if next.is_none() || self.guide.bucket(next_prefix) != bucket {
            self.guide.set(bucket, node);
        }
    }

    /// The first node at or after `(key, version)`; with `preds`, also the last node before
    /// it on every level. A reader's search starts on a guide when one is near.
    fn seek(
        &self,
        target: &Target<'_>,
        preds: Option<&mut [NodePtr; HEIGHT_MAX]>,
    ) -> Option<NodePtr> {
        if preds.is_none()
            && let Some(guide) = self.guide.before(self.guide.bucket(target.key_prefix))
            && let Ok(found) = self.walk(guide, GUIDE_LEVELS, target, None, GUIDE_STEPS_MAX)
        {
            return found;
        }
        let height = self.height.load(AtomicOrdering::Relaxed);
        let found = self.walk(self.head, height, target, preds, usize::MAX);
        found.unwrap_or_else(|TooFar| unreachable!("no step limit"))
    }

    /// The search for `target` from `node` (before it, and on levels `0..levels`), down from
    /// level `levels - 1`: the first node at or after it, and in `preds` the last node before
    /// it on each of those levels. [`TooFar`] once it has stepped right more than `steps_max`
    /// times on its top level.
    fn walk(
        &self,
        mut node: NodePtr,
        levels: usize,
        target: &Target<'_>,
        mut preds: Option<&mut [NodePtr; HEIGHT_MAX]>,
        steps_max: usize,
    ) -> Result<Option<NodePtr>, TooFar> {
        debug_assert!(node == self.head || node.cmp_to(target) == Ordering::Less);
        // The writer (it asks for `preds`) decides on the rungs' prefixes.
        let writer = preds.is_some();
        let mut level = levels;
        let mut steps = 0_usize;
        loop {
            level -= 1;
            let mut next = node.next(level);
            loop {
                let candidate = if writer {
                    node.before_target(level, next, target)
                } else {
                    next.filter(|n| n.cmp_to(target) == Ordering::Less)
                };
                let Some(candidate) = candidate else { break };
                if level + 1 == levels {
                    steps += 1;
                    if steps > steps_max {
                        return Err(TooFar);
                    }
                }
                node = candidate;
                next = node.next(level);
            }
            if let Some(preds) = preds.as_deref_mut() {
                preds[level] = node;
            }
            if level == 0 {
                return Ok(next);
            }
        }
    }

    /// Notes that every record up to `version` is applied to this memtable.
    pub(crate) fn cover(&self, version: Version) {
        self.version_last.fetch_max(version.get(), AtomicOrdering::Relaxed);
    }

    /// The last version of a record applied to this memtable (`ZERO` if none).
    pub(crate) fn version_last(&self) -> Version {
        Version::new(self.version_last.load(AtomicOrdering::Relaxed))
    }

    /// Bytes of the keys and values inserted so far (a replaced entry's no longer counted).
    pub(crate) fn payload_bytes(&self) -> u64 {
        self.payload_bytes.load(AtomicOrdering::Relaxed)
    }

    /// Bytes of the arena's nodes (keys, values, towers, headers) so far.
    pub(crate) fn size_bytes(&self) -> u64 {
        self.size_bytes.load(AtomicOrdering::Relaxed)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entry_count() == 0
    }

    pub(crate) fn entry_count(&self) -> usize {
        self.entry_count.load(AtomicOrdering::Relaxed)
    }

    /// The newest version of `key` at or below `version`, tombstones included.
    pub(crate) fn get_at(self: &Arc<Self>, key: &[u8], version: Version) -> Option<MemEntry> {
        let found = self.seek(&Target::new(key, version), None)?;
        (found.key() == key).then(|| MemEntry::of(self, found))
    }

    /// The first entry after `position` in key order (or the first entry at all), whose key
    /// is in bounds of `end`. Each call is one O(log n) seek; [`Memtable::cursor`] walks on
    /// without seeking again. The engine walks with cursors; the tests check them against it.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn next_after(
        self: &Arc<Self>,
        position: Bound<(&[u8], Version)>,
        end: Bound<&[u8]>,
    ) -> Option<MemEntry> {
        let found = self.first_from(position)?;
        key_in(found.key(), end).then(|| MemEntry::of(self, found))
    }

    /// A cursor over the entries from `position` on, in key order.
    pub(crate) fn cursor(self: &Arc<Self>, position: Bound<(&[u8], Version)>) -> Cursor {
        Cursor { node: self.first_from(position), memtable: Arc::clone(self) }
    }

    fn first_from(&self, position: Bound<(&[u8], Version)>) -> Option<NodePtr> {
        match position {
            Bound::Unbounded => self.head.next(0),
            Bound::Included((key, version)) => self.seek(&Target::new(key, version), None),
            Bound::Excluded((key, version)) => {
                let target = Target::new(key, version);
                let found = self.seek(&target, None)?;
                if found.cmp_to(&target) == Ordering::Equal { found.next(0) } else { Some(found) }
            }
        }
    }

    /// The last entry before `position` in key order (or the last entry at all), whose key
    /// is in bounds of `start`: [`Memtable::next_after`] walking backwards.
    pub(crate) fn prev_before(
        self: &Arc<Self>,
        position: Bound<(&[u8], Version)>,
        start: Bound<&[u8]>,
    ) -> Option<MemEntry> {
        let found = match position {
            Bound::Unbounded => self.last_where(|_| true),
            Bound::Included((key, version)) => {
                let target = Target::new(key, version);
                self.last_where(|node| node.cmp_to(&target) != Ordering::Greater)
            }
            Bound::Excluded((key, version)) => {
                let target = Target::new(key, version);
                self.last_where(|node| node.cmp_to(&target) == Ordering::Less)
            }
        }?;
        let in_range = match start {
            Bound::Unbounded => true,
            Bound::Included(start) => found.key() >= start,
            Bound::Excluded(start) => found.key() > start,
        };
        in_range.then(|| MemEntry::of(self, found))
    }

    /// The last node for which `before` holds, where `before` holds on a prefix of the key
    /// order: one O(log n) descent of the towers (the lists link forwards only).
    fn last_where(&self, before: impl Fn(NodePtr) -> bool) -> Option<NodePtr> {
        let mut node = self.head;
        let mut level = self.height.load(AtomicOrdering::Relaxed);
        loop {
            level -= 1;
            while let Some(next) = node.next(level).filter(|next| before(*next)) {
                node = next;
            }
            if level == 0 {
                return (node != self.head).then_some(node);
            }
        }
    }

    /// Every entry, in key order (for the flush, which writes them so).
    pub(crate) fn entries(&self) -> impl Iterator<Item = Entry<'_>> + '_ {
        std::iter::successors(self.head.next(0), |node| node.next(0)).map(|node| Entry {
            key: node.key(),
            version: node.version(),
            value: node.value(),
        })
    }
}

/// Whether `key` is within the end bound `end`.
#[cfg(all(test, not(loom)))]
fn key_in(key: &[u8], end: Bound<&[u8]>) -> bool {
    match end {
        Bound::Unbounded => true,
        Bound::Included(end) => key <= end,
        Bound::Excluded(end) => key < end,
    }
}

/// A position in a memtable that steps to the next entry in key order by following one link,
/// without searching again. Keeps the memtable alive.
pub(crate) struct Cursor {
    memtable: Arc<Memtable>,
    node: Option<NodePtr>,
}

// SAFETY: the node is in `memtable`'s arena, immutable but for its atomic links, and alive
// while the `Arc` is.
unsafe impl Send for Cursor {}
// SAFETY: as for `Send`.
unsafe impl Sync for Cursor {}

impl Cursor {
    /// The key and version of the entry the next `next` returns, without taking it (no
    /// reference to the memtable is handed out). The key lives as long as the cursor.
    pub(crate) fn peek(&self) -> Option<(&[u8], Version)> {
        self.node.map(|node| (node.key(), node.version()))
    }

    /// The entry the next `next` returns, borrowed from the memtable (no reference to it is
    /// handed out): its bytes live as long as the memtable.
    pub(crate) fn peek_entry(&self) -> Option<Entry<'_>> {
        self.node.map(|node| Entry {
            key: node.key(),
            version: node.version(),
            value: node.value(),
        })
    }

    /// Steps past the entry `peek` shows, following one link.
    pub(crate) fn advance(&mut self) {
        self.node = self.node.and_then(|node| node.next(0));
    }

    /// Moves to the first entry at or after `position`: one O(log n) seek from the top.
    pub(crate) fn seek(&mut self, position: Bound<(&[u8], Version)>) {
        self.node = self.memtable.first_from(position);
    }
}

impl Iterator for Cursor {
    type Item = MemEntry;

    fn next(&mut self) -> Option<MemEntry> {
        let node = self.node?;
        self.node = node.next(0);
        Some(MemEntry::of(&self.memtable, node))
    }
}

impl fmt::Debug for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cursor").field("at_end", &self.node.is_none()).finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests;

/// Loom models of the publication protocol of [`Memtable::insert`] (and of
/// [`Memtable::insert_sorted`], which publishes the same way): a reader walks and
/// seeks while the writer inserts before, after and over an entry. Loom runs every
/// interleaving of the links' atomics up to a preemption bound; the node bytes behind a link
/// are plain memory loom does not track (their visibility rests on the Release/Acquire pair
/// argued at `insert`). Checked by mutation: linking the node in before its own links are
/// set fails the model (an entry vanishes), and so does a Relaxed publication (loom reports
/// the causality violation).
///
/// Run with `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p zverse
/// --release --lib loom_`.
#[cfg(all(test, loom))]
mod loom_models {
    use super::*;

    fn v(raw: u64) -> Version {
        Version::new(raw)
    }

    /// The keys and values a reader's walk yields: each key once, in order, with a whole
    /// value (its key, in either case).
    fn check_walk(memtable: &Arc<Memtable>) -> Vec<Vec<u8>> {
        let walked: Vec<MemEntry> = memtable.cursor(Bound::Unbounded).collect();
        let keys: Vec<Vec<u8>> = walked.iter().map(|entry| entry.key.to_vec()).collect();
        assert!(keys.windows(2).all(|pair| pair[0] < pair[1]), "out of order: {keys:?}");
        for entry in &walked {
            let value = entry.value.as_deref().expect("only puts");
            assert!(value.eq_ignore_ascii_case(&entry.key), "{entry:?}");
        }
        keys
    }

    #[test]
    fn loom_readers_see_whole_entries_in_order_while_the_writer_inserts() {
        let mut builder = loom::model::Builder::new();
        if builder.preemption_bound.is_none() {
            builder.preemption_bound = Some(3);
        }
        let executions = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&executions);
        builder.check(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let memtable = Arc::new(Memtable::new(1));
            memtable.insert(b"b", v(1), Some(b"b"));
            let writer = {
                let memtable = Arc::clone(&memtable);
                loom::thread::spawn(move || {
                    memtable.insert(b"a", v(1), Some(b"a"));
                    memtable.insert(b"c", v(1), Some(b"c"));
                    memtable.insert(b"b", v(1), Some(b"B"));
                })
            };
            // Without a yield here loom runs the reader to its end before the writer starts
            // and explores that one execution only.
            loom::thread::yield_now();
            let keys = check_walk(&memtable);
            assert!(keys.contains(&b"b".to_vec()), "a published entry vanished: {keys:?}");
            let found = memtable.get_at(b"b", v(1)).expect("b is always there");
            assert!(found.value.as_deref().is_some_and(|value| value.eq_ignore_ascii_case(b"b")));
            writer.join().expect("the writer");
            let keys = check_walk(&memtable);
            assert_eq!(keys, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
            let found = memtable.get_at(b"b", v(1)).and_then(|entry| entry.value);
            assert_eq!(found.as_deref(), Some(&b"B"[..]));
        });
        let executions = executions.load(std::sync::atomic::Ordering::Relaxed);
        println!("{executions} interleavings, preemption bound {:?}", builder.preemption_bound);
    }

    /// A reader whose searches start on guides ([`Guide`]; two bits of prefix, so the keys
    /// below are in buckets 0, 1 and 2, and every node is a guide) while the writer inserts
    /// into the guide's bucket, before the read key and over the guide itself: the reader
    /// finds the read key, whole, at every step.
    #[test]
    fn loom_guided_reads_see_whole_entries_while_the_writer_moves_the_guides() {
        let mut builder = loom::model::Builder::new();
        if builder.preemption_bound.is_none() {
            builder.preemption_bound = Some(3);
        }
        builder.check(|| {
            let memtable = Arc::new(Memtable::new(1));
            memtable.insert(b"\x10", v(1), Some(b"\x10"));
            memtable.insert(b"\x90", v(1), Some(b"\x90"));
            let writer = {
                let memtable = Arc::clone(&memtable);
                loom::thread::spawn(move || {
                    memtable.insert(b"\x50", v(1), Some(b"\x50"));
                    memtable.insert(b"\x20", v(1), Some(b"\x20"));
                    memtable.insert(b"\x50", v(1), Some(b"\x50"));
                })
            };
            loom::thread::yield_now();
            let found = memtable.get_at(b"\x90", v(1)).and_then(|entry| entry.value);
            assert_eq!(found.as_deref(), Some(&b"\x90"[..]), "a published entry vanished");
            let keys = check_walk(&memtable);
            assert!(keys.contains(&b"\x10".to_vec()), "a published entry vanished: {keys:?}");
            writer.join().expect("the writer");
            for key in [&b"\x10"[..], b"\x20", b"\x50", b"\x90"] {
                let found = memtable.get_at(key, v(1)).and_then(|entry| entry.value);
                assert_eq!(found.as_deref(), Some(key), "{key:?}");
            }
        });
    }

    /// The same reader against [`Memtable::insert_sorted`]: one batch inserts before and after
    /// the entry, the next replaces it.
    #[test]
    fn loom_readers_see_whole_entries_in_order_while_the_writer_inserts_sorted_batches() {
        let mut builder = loom::model::Builder::new();
        if builder.preemption_bound.is_none() {
            builder.preemption_bound = Some(3);
        }
        builder.check(|| {
            let memtable = Arc::new(Memtable::new(1));
            memtable.insert(b"b", v(1), Some(b"b"));
            let writer = {
                let memtable = Arc::clone(&memtable);
                loom::thread::spawn(move || {
                    memtable.insert_sorted(&[(b"a", v(1), Some(b"a")), (b"c", v(1), Some(b"c"))]);
                    memtable.insert_sorted(&[(b"b", v(1), Some(b"B"))]);
                })
            };
            loom::thread::yield_now();
            let keys = check_walk(&memtable);
            assert!(keys.contains(&b"b".to_vec()), "a published entry vanished: {keys:?}");
            writer.join().expect("the writer");
            let keys = check_walk(&memtable);
            assert_eq!(keys, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
            let found = memtable.get_at(b"b", v(1)).and_then(|entry| entry.value);
            assert_eq!(found.as_deref(), Some(&b"B"[..]));
        });
    }
}
