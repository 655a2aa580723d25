//! Bounded lock-free multi-producer rings that stage records for group commit.
//!
//! The engine keeps one [`Ring`] per shard: writer threads [`push`](Ring::push) the records
//! they staged, and the commit leader of the moment [`pop`](Ring::pop)s them into its group.
//! Nothing here blocks or allocates: a full ring hands the record back ([`PushError::Full`])
//! and the caller decides how to wait.
//!
//! # Algorithm
//!
//! Dmitry Vyukov's bounded MPMC queue
//! (<https://www.1024cores.net/home/lock-free-algorithms/queues/bounded-mpmc-queue>), in the
//! shape crossbeam's `ArrayQueue` gave it in Rust: every slot carries a sequence *stamp* that
//! says which position the slot is ready for, and which side (push or pop) may take it
//! next. Producers claim positions by a compare-and-swap on `tail`, consumers by one on
//! `head`; the record itself is handed over through the slot's stamp (release on publish,
//! acquire on claim).
//!
//! Where this differs from crossbeam: verdicts are Vyukov's, non-blocking (a pop that meets
//! a claimed but unpublished slot returns `None` instead of spinning, a push that meets a
//! slot not yet vacated returns `Full` instead of re-checking `head`); and positions are
//! plain doubled counters rather than `lap | index` words.
//!
//! # Encoding
//!
//! A *position* counts pushes (or pops) since the ring was made; position `p` lives in slot
//! `p % N`. Positions are stored doubled, as *position words* `p << 1`, so that bit 0 of a
//! stamp is free for its flag, and all arithmetic on words wraps modulo 2^`usize::BITS`
//! (positions wrap modulo 2^(`usize::BITS` - 1), a multiple of `N`, so the slot of a word is
//! unaffected):
//!
//! - `tail`: the next position a push claims, `p << 1` (bit 0 always clear).
//! - `head`: the next position a pop claims, `p << 1` (bit 0 always clear).
//! - a slot's `stamp`, for the word `w` of the position it is ready for:
//!   `w` = vacant, a push at `w` may fill it; `w | 1` (`FULL`) = holds the record pushed at
//!   `w`, a pop at `w` may take it. Popping the record at `w` stores `w + 2N`: vacant for the
//!   same slot's position one lap later. Slot `i` starts at `i << 1`.
//!
//! A stamp compared with the word a thread expects gives a signed difference
//! (`stamp - expected`, wrapping, read as `isize`): zero means "yours", negative means the
//! slot is still a lap behind (not yet vacated for a push; not yet filled for a pop), positive
//! means the thread's copy of `tail` or `head` is stale. A slot is at most one lap behind
//! (`2N + 1` in words, far inside `isize` given [`CAPACITY_MAX`]), so the sign is exact unless
//! a thread's copy is stale by 2^(`usize::BITS` - 2) positions. That is the wrap-around limit
//! every queue of this family has (a compare-and-swap could also succeed on a word that came
//! round again): on 64-bit targets, a thread would have to stall through 4.6e18 pushes; on
//! 32-bit ones, through 2^30.
//!
//! # Memory orderings
//!
//! - Stamps carry the records: a push writes the record, then stores the `FULL` stamp with
//!   `Release`; a pop loads the stamp with `Acquire` before reading the record, then stores
//!   the next lap's vacant stamp with `Release`; a push loads that with `Acquire` before
//!   overwriting the slot. So every access to a slot's record happens-after the previous one.
//! - `head` and `tail` only arbitrate *which* thread owns a position: compare-and-swap is
//!   atomic at any ordering, and ownership of the record's memory comes from the stamp just
//!   loaded with `Acquire`, not from the index. They are `Relaxed` throughout. A stale
//!   `Relaxed` read is harmless: a compare-and-swap with a stale word fails, and a stamp
//!   loaded with `Acquire` that is ahead of a stale word synchronizes with the thread that
//!   moved the index, so the reload sees the newer value.
//!
//! # Progress
//!
//! Lock-free, not wait-free. [`Ring::push`] and [`Ring::pop`] never wait for another
//! thread: they return [`PushError::Full`] or `None` instead. Their retry loops are
//! unbounded by nature but each retry is caused by another thread's success (a failed
//! compare-and-swap means another thread claimed the position; a stale
//! index means another thread moved it), so the system as a whole always makes progress.
//! (`compare_exchange_weak` may also fail spuriously on LL/SC machines; as everywhere, that
//! is taken to be rare, not adversarial.) Every other loop is bounded by `N`.
//!
//! **A producer preempted between claiming a position and publishing its record blocks the
//! consumers at that position**: pops return `None` there although records pushed after it
//! may already be published, until that producer runs again. Likewise a consumer preempted
//! between claiming and vacating a slot makes pushes that reach the slot one lap later
//! report `Full`. The window is a few instructions (a `memcpy` of `T` and one store), but a
//! consumer must treat `None` as "nothing ready yet", not "nothing pushed" (the engine's
//! writers wait for their own record to be committed, never for a ring to look empty).

#[cfg(all(test, not(loom)))]
mod tests;

use core::fmt;
use core::mem::MaybeUninit;

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicUsize, Ordering, UnsafeCell};

/// The largest capacity a [`Ring`] accepts: keeps every stamp difference far inside `isize`.
pub const CAPACITY_MAX: usize = 1 << (usize::BITS - 4);

/// Bit 0 of a stamp: the slot holds the record pushed at the stamp's position.
const FULL: usize = 1;
/// One position, as a position word (positions are stored doubled; bit 0 is a flag).
const STEP: usize = 2;

/// A bounded lock-free multi-producer multi-consumer FIFO of `N` records, stored inline.
///
/// `N` must be a power of two in `2..=`[`CAPACITY_MAX`]; anything else fails the build. The
/// ring neither allocates nor blocks; [`Ring::new`] is `const`, so a ring can live in a
/// `static`, on the stack, or in a `Box` (`Ring::new_boxed`, with the `alloc` feature).
/// See the [module docs](self) for the algorithm, the encoding and the progress guarantee.
///
/// FIFO holds per producer: records one thread pushed are popped in the order it pushed
/// them. Records of different producers interleave in the order their pushes claimed
/// positions.
///
/// ```
/// use zverse_core::ring::{PushError, Ring};
///
/// let ring: Ring<u32, 2> = Ring::new();
/// assert_eq!(ring.push(1), Ok(()));
/// assert_eq!(ring.push(2), Ok(()));
/// assert_eq!(ring.push(3), Err(PushError::Full(3)));
/// assert_eq!((ring.pop(), ring.pop(), ring.pop()), (Some(1), Some(2), None));
/// ```
///
/// A capacity that is not a power of two does not compile:
///
/// ```compile_fail
/// let ring = zverse_core::ring::Ring::<u32, 3>::new();
/// ```
pub struct Ring<T, const N: usize> {
    /// The next position word a pop claims (`p << 1`). Written only by consumers' CAS.
    head: CachePadded<AtomicUsize>,
    /// The next position word a push claims (`p << 1`). Written only by producers' CAS.
    tail: CachePadded<AtomicUsize>,
    /// The records. Slot `i` serves positions `i`, `i + N`, `i + 2N`, ...
    slots: [Slot<T>; N],
}

/// One cell of the ring: a record and the stamp that says who may touch it.
struct Slot<T> {
    /// `w` (vacant for the push at position word `w`) or `w | FULL` (holds the record pushed at
    /// `w`). See the module docs.
    stamp: AtomicUsize,
    /// Initialized exactly when `stamp` has `FULL` set, or while the owner of the position
    /// (between claiming it and storing the next stamp) is writing or reading it.
    record: UnsafeCell<MaybeUninit<T>>,
}

impl<T> Slot<T> {
    #[cfg(not(loom))]
    const fn vacant(stamp: usize) -> Slot<T> {
        Slot { stamp: AtomicUsize::new(stamp), record: UnsafeCell::new(MaybeUninit::uninit()) }
    }

    #[cfg(loom)]
    fn vacant(stamp: usize) -> Slot<T> {
        Slot { stamp: AtomicUsize::new(stamp), record: UnsafeCell::new(MaybeUninit::uninit()) }
    }
}

/// Why [`Ring::push`] refused a record; it hands the record back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum PushError<T> {
    /// The slot the push needs has not been vacated yet: the ring holds `N` records, or a
    /// consumer is taking the oldest one at this instant. Retry after the consumer drained.
    Full(T),
}

impl<T> PushError<T> {
    /// The record that was not pushed.
    #[must_use]
    pub fn into_inner(self) -> T {
        match self {
            PushError::Full(record) => record,
        }
    }

    /// Whether the push failed because the ring was full.
    #[must_use]
    pub const fn is_full(&self) -> bool {
        matches!(self, PushError::Full(_))
    }
}

impl<T> fmt::Debug for PushError<T> {
    /// Does not print the record (`T` need not be `Debug`), like crossbeam's `TrySendError`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Full(_) => f.write_str("Full(..)"),
        }
    }
}

impl<T> fmt::Display for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Full(_) => f.write_str("pushing into a full ring"),
        }
    }
}

impl<T> core::error::Error for PushError<T> {}

impl<T, const N: usize> Ring<T, N> {
    /// The number of records the ring holds when full.
    pub const CAPACITY: usize = N;

    /// The distance, in position words, between a slot's positions on consecutive laps.
    const LAP: usize = N * STEP;

    /// Fails the build unless `N` is a power of two in `2..=CAPACITY_MAX`: the slot of a
    /// position is `p % N` computed as a mask, and it must stay consistent when positions wrap
    /// modulo 2^(`usize::BITS` - 1).
    const fn assert_capacity() {
        const {
            assert!(N >= 2 && N.is_power_of_two(), "ring capacity must be a power of two >= 2");
            assert!(N <= CAPACITY_MAX, "ring capacity exceeds CAPACITY_MAX");
        }
    }

    /// An empty ring.
    #[cfg(not(loom))]
    #[must_use]
    pub const fn new() -> Ring<T, N> {
        Self::assert_capacity();
        let mut slots = [const { Slot::vacant(0) }; N];
        let mut index = 0;
        while index < N {
            slots[index].stamp = AtomicUsize::new(index * STEP);
            index += 1;
        }
        Ring {
            head: CachePadded::new(AtomicUsize::new(0)),
            tail: CachePadded::new(AtomicUsize::new(0)),
            slots,
        }
    }

    /// An empty ring. (Not `const` under loom, whose atomics are not.)
    #[cfg(loom)]
    #[must_use]
    pub fn new() -> Ring<T, N> {
        Self::assert_capacity();
        Ring {
            head: CachePadded::new(AtomicUsize::new(0)),
            tail: CachePadded::new(AtomicUsize::new(0)),
            slots: core::array::from_fn(|index| Slot::vacant(index * STEP)),
        }
    }

    /// An empty ring on the heap, built in place: a large ring never passes through
    /// the stack.
    #[cfg(feature = "alloc")]
    #[must_use]
    pub fn new_boxed() -> alloc::boxed::Box<Ring<T, N>> {
        Self::assert_capacity();
        let mut ring = alloc::boxed::Box::<Ring<T, N>>::new_uninit();
        let ring_ptr = ring.as_mut_ptr();
        // SAFETY: `ring_ptr` points to an allocation for one `Ring<T, N>`, valid for writes
        // and suitably aligned; every field is written exactly once below (slots one by
        // one, through a pointer to the array's first element, which has the array's
        // address), so the value is fully initialized before `assume_init`.
        unsafe {
            (&raw mut (*ring_ptr).head).write(CachePadded::new(AtomicUsize::new(0)));
            (&raw mut (*ring_ptr).tail).write(CachePadded::new(AtomicUsize::new(0)));
            let slots_ptr = (&raw mut (*ring_ptr).slots).cast::<Slot<T>>();
            for index in 0..N {
                slots_ptr.add(index).write(Slot::vacant(index * STEP));
            }
            ring.assume_init()
        }
    }

    /// The number of records the ring holds when full: `N`.
    #[must_use]
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Pushes `record` at the tail without waiting.
    ///
    /// Fails with [`PushError::Full`] when the slot the push needs has not been vacated yet;
    /// the record comes back inside the error.
    pub fn push(&self, record: T) -> Result<(), PushError<T>> {
        let mut tail = self.tail.load(Ordering::Relaxed);
        loop {
            let slot = self.slot(tail);
            // Acquire: if the slot is vacant, the consumer that vacated it read its previous
            // record before this load; our write below must not race with that read.
            let stamp = slot.stamp.load(Ordering::Acquire);
            let lag = stamp.wrapping_sub(tail).cast_signed();
            if lag < 0 {
                // Still holding the record pushed one lap earlier (word `tail - 2N`), or a
                // consumer is vacating it right now.
                return Err(PushError::Full(record));
            }
            if lag > 0 {
                // Another push already claimed `tail`: our copy is stale. The Acquire load
                // above saw its stamp, so this reload sees its newer `tail`.
                tail = self.tail.load(Ordering::Relaxed);
                continue;
            }
            // The slot is vacant for `tail`: claim the position. Fails if another push
            // claimed it first.
            // Relaxed: the CAS only decides ownership; the slot's memory is ordered by stamps.
            let tail_next = tail.wrapping_add(STEP);
            match self.tail.compare_exchange_weak(
                tail,
                tail_next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    // SAFETY: the CAS made this thread the only owner of position `tail`, and
                    // the stamp loaded above (Acquire) says the slot is vacant for it.
                    unsafe { Self::publish(slot, tail, record) };
                    return Ok(());
                }
                Err(current) => tail = current,
            }
        }
    }

    /// Pops the oldest published record without waiting; `None` if there is none *ready*:
    /// the ring is empty, or the push at the head has claimed its position but not yet
    /// published its record (see the module docs on progress).
    pub fn pop(&self) -> Option<T> {
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // Acquire: pairs with the publishing push's Release, so reading its record is
            // ordered after its write.
            let stamp = self.slot(head).stamp.load(Ordering::Acquire);
            let lag = stamp.wrapping_sub(head | FULL).cast_signed();
            if lag < 0 {
                return None;
            }
            if lag > 0 {
                // Another pop took `head` (the slot is already vacant for a later lap): our
                // copy is stale, and the Acquire load above makes the reload see the newer one.
                head = self.head.load(Ordering::Relaxed);
                continue;
            }
            let head_next = head.wrapping_add(STEP);
            // Relaxed, as in `push`: the CAS decides ownership, the stamps order the memory.
            match self.head.compare_exchange_weak(
                head,
                head_next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                // SAFETY: the CAS made this thread the only owner of position `head`, and the
                // stamp loaded above (Acquire) says the slot holds its published record.
                Ok(_) => return Some(unsafe { self.take(head) }),
                Err(current) => head = current,
            }
        }
    }

    /// An approximation of the number of records in the ring: positions claimed by pushes
    /// minus positions claimed by pops, in `0..=N`. It counts records still being written
    /// and not those being read, and concurrent pushes and pops make it stale at once; it is
    /// exact only while no push or pop runs.
    #[must_use]
    pub fn len(&self) -> usize {
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Relaxed);
        // Negative when `head` moved past a stale `tail`: nothing to count.
        let distance = tail.wrapping_sub(head).cast_signed() / STEP.cast_signed();
        usize::try_from(distance).map_or(0, |distance| distance.min(N))
    }

    /// Whether [`Ring::len`] is zero; the same approximation.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The slot that serves the position word `word` .
    fn slot(&self, word: usize) -> &Slot<T> {
        &self.slots[(word / STEP) & (N - 1)]
    }

    /// Writes `record` into `slot` and publishes it for the pop at `tail`.
    ///
    /// # Safety
    ///
    /// The caller owns position word `tail` (its CAS moved `tail` past it), `slot` is the
    /// slot of `tail`, and the caller loaded the slot's stamp `tail` (vacant) with `Acquire`.
    unsafe fn publish(slot: &Slot<T>, tail: usize, record: T) {
        slot.record.with_mut(|record_ptr| {
            // SAFETY: by the contract, no other thread accesses the slot's record until the
            // stamp below is stored, and the previous reader's accesses happen-before ours.
            unsafe { record_ptr.write(MaybeUninit::new(record)) };
        });
        // Release: the record written above is visible to the pop that loads this stamp.
        slot.stamp.store(tail | FULL, Ordering::Release);
    }

    /// Reads the record at position word `head` and vacates its slot for the next lap.
    ///
    /// # Safety
    ///
    /// The caller owns position word `head` (its CAS moved `head` past it) and loaded the
    /// slot's stamp `head | FULL` (published) with `Acquire`; it calls this once per position.
    unsafe fn take(&self, head: usize) -> T {
        let slot = self.slot(head);
        let record = slot.record.with(|record_ptr| {
            // SAFETY: by the contract, the record was initialized by the push at `head`, whose
            // write happens-before this read, and no other thread touches it until the stamp
            // below is stored; reading it once moves it out.
            unsafe { record_ptr.read().assume_init() }
        });
        // Release: our read above happens-before the next lap's push overwrites the slot.
        slot.stamp.store(head.wrapping_add(Self::LAP), Ordering::Release);
        record
    }
}

impl<T, const N: usize> Default for Ring<T, N> {
    fn default() -> Ring<T, N> {
        Ring::new()
    }
}

impl<T, const N: usize> Drop for Ring<T, N> {
    /// Drops the records still in the ring. `&mut self` means no push or pop is running, and
    /// none can have stopped between claim and publish (neither step can panic), so every
    /// position in `head..tail` holds a published record.
    fn drop(&mut self) {
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Relaxed);
        let mut word = head;
        while word != tail {
            let slot = self.slot(word);
            assert_eq!(slot.stamp.load(Ordering::Relaxed), word | FULL, "unpublished record");
            slot.record.with_mut(|record_ptr| {
                // SAFETY: the stamp says the slot holds the record pushed at `word`, not yet
                // popped, and `&mut self` excludes every other access; each position in
                // `head..tail` is visited once, so each record is dropped once.
                unsafe { (*record_ptr).assume_init_drop() };
            });
            word = word.wrapping_add(STEP);
        }
    }
}

// SAFETY: sharing a `Ring` lets other threads push and pop, which moves `T` values between
// threads: hence `T: Send`. No `&T` is ever handed out, so `T: Sync` is not needed. Every
// access to a slot's record is made by the one thread that owns its position (claimed by a
// CAS on `head` or `tail`) and is ordered after the previous owner's by the stamp's
// Release/Acquire pair, so there are no data races on the `UnsafeCell`s.
unsafe impl<T: Send, const N: usize> Sync for Ring<T, N> {}
// `Send` is derived: a `Ring` owns its records, and moving it moves them (`T: Send`).

impl<T, const N: usize> fmt::Debug for Ring<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("capacity", &N)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}
