use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::vec::Vec;

use super::*;

/// Counts its drops in a shared cell; `id` tells records apart.
struct Tracked {
    id: u32,
    drop_count: Rc<Cell<usize>>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drop_count.set(self.drop_count.get() + 1);
    }
}

fn tracked(id: u32, drop_count: &Rc<Cell<usize>>) -> Tracked {
    Tracked { id, drop_count: Rc::clone(drop_count) }
}

#[test]
fn single_thread_fifo() {
    let ring: Ring<u32, 8> = Ring::new();
    assert!(ring.is_empty());
    assert_eq!(ring.pop(), None);
    for record in 0..5 {
        ring.push(record).unwrap();
    }
    assert_eq!(ring.len(), 5);
    for record in 0..5 {
        assert_eq!(ring.pop(), Some(record));
    }
    assert_eq!(ring.pop(), None);
    assert!(ring.is_empty());
}

#[test]
fn full_ring_gives_the_record_back() {
    let ring: Ring<u32, 4> = Ring::new();
    for record in 0..4 {
        ring.push(record).unwrap();
    }
    assert_eq!(ring.len(), 4);
    let error = ring.push(4).unwrap_err();
    assert!(error.is_full() && !error.is_closed());
    assert_eq!(error.into_inner(), 4);
    assert_eq!(ring.pop(), Some(0));
    ring.push(4).unwrap();
    assert_eq!(ring.push(5), Err(PushError::Full(5)));
    let mut records = Vec::new();
    assert_eq!(ring.drain_into(&mut records, usize::MAX), 4);
    assert_eq!(records, [1, 2, 3, 4]);
}

#[test]
fn close_refuses_pushes_and_keeps_what_was_pushed() {
    let ring: Ring<u32, 4> = Ring::new();
    ring.push(1).unwrap();
    ring.push(2).unwrap();
    assert!(!ring.is_closed() && !ring.is_drained());
    assert!(ring.close());
    assert!(!ring.close(), "the second close reports it was already closed");
    assert!(ring.is_closed());
    let error = ring.push(3).unwrap_err();
    assert!(error.is_closed() && !error.is_full());
    assert_eq!(error, PushError::Closed(3));
    assert_eq!(ring.len(), 2);
    assert!(!ring.is_drained());
    assert_eq!(ring.pop(), Some(1));
    assert!(!ring.is_drained());
    assert_eq!(ring.pop(), Some(2));
    assert!(ring.is_drained());
    assert_eq!(ring.pop(), None);
    assert_eq!(ring.push(4), Err(PushError::Closed(4)));
}

#[test]
fn closed_full_ring_says_closed() {
    let ring: Ring<u8, 2> = Ring::new();
    ring.push(0).unwrap();
    ring.push(1).unwrap();
    ring.close();
    assert_eq!(ring.push(2), Err(PushError::Closed(2)));
}

#[test]
fn closing_an_empty_ring_drains_it() {
    let ring: Ring<u8, 2> = Ring::new();
    ring.close();
    assert!(ring.is_drained() && ring.is_empty());
}

/// Varying push and pop counts per round so the head and tail cross slot 0 at every offset.
#[test]
fn wraparound_over_many_laps() {
    let ring: Ring<u64, 4> = Ring::new();
    let mut next_pushed = 0_u64;
    let mut next_popped = 0_u64;
    for round in 0..4_000_usize {
        let push_count = round % 5;
        for _ in 0..push_count {
            match ring.push(next_pushed) {
                Ok(()) => next_pushed += 1,
                Err(error) => {
                    assert!(error.is_full());
                    assert_eq!(ring.len(), 4);
                }
            }
        }
        let count = ring.pop_batch(round % 3 + 1, |record| {
            assert_eq!(record, next_popped);
            next_popped += 1;
        });
        assert!(count <= round % 3 + 1);
        assert_eq!(ring.len() as u64, next_pushed - next_popped);
    }
    while let Some(record) = ring.pop() {
        assert_eq!(record, next_popped);
        next_popped += 1;
    }
    assert_eq!(next_popped, next_pushed);
    assert!(next_pushed > 1_000 * 4, "the test must go around the ring many times");
}

#[test]
fn pop_batch_takes_at_most_count_max_and_at_most_n() {
    let ring: Ring<u16, 8> = Ring::new();
    for record in 0..8 {
        ring.push(record).unwrap();
    }
    let mut records = Vec::new();
    assert_eq!(ring.pop_batch(0, |record| records.push(record)), 0);
    assert_eq!(ring.pop_batch(3, |record| records.push(record)), 3);
    assert_eq!(records, [0, 1, 2]);
    for record in 8..11 {
        ring.push(record).unwrap();
    }
    assert_eq!(ring.drain_into(&mut records, usize::MAX), 8, "one batch takes at most N");
    assert_eq!(records, (0..11).collect::<Vec<_>>());
    assert_eq!(ring.drain_into(&mut records, 5), 0);
}

#[test]
fn zero_sized_records() {
    let ring: Ring<(), 2> = Ring::new();
    ring.push(()).unwrap();
    ring.push(()).unwrap();
    assert_eq!(ring.push(()), Err(PushError::Full(())));
    assert_eq!(ring.pop(), Some(()));
    ring.push(()).unwrap();
    assert_eq!(ring.pop_batch(4, |()| ()), 2);
    assert_eq!(ring.pop(), None);
}

#[test]
fn every_record_is_dropped_exactly_once() {
    let drop_count = Rc::new(Cell::new(0));
    let ring: Ring<Tracked, 4> = Ring::new();
    for id in 0..4 {
        ring.push(tracked(id, &drop_count)).unwrap();
    }
    // A refused record comes back and is dropped by its owner, not by the ring.
    let refused = ring.push(tracked(4, &drop_count)).unwrap_err().into_inner();
    assert_eq!(refused.id, 4);
    drop(refused);
    assert_eq!(drop_count.get(), 1);
    let popped = ring.pop().unwrap();
    assert_eq!(popped.id, 0);
    drop(popped);
    assert_eq!(drop_count.get(), 2);
    // Go around once so the records left in the ring straddle slot 0.
    ring.push(tracked(5, &drop_count)).unwrap();
    assert_eq!(ring.pop().map(|record| record.id), Some(1));
    assert_eq!(drop_count.get(), 3);
    drop(ring);
    assert_eq!(drop_count.get(), 6, "records 2, 3 and 5 are dropped with the ring");
}

#[test]
fn panicking_consumer_drops_the_rest_of_its_batch() {
    let drop_count = Rc::new(Cell::new(0));
    let ring: Ring<Tracked, 4> = Ring::new();
    for id in 0..4 {
        ring.push(tracked(id, &drop_count)).unwrap();
    }
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        ring.pop_batch(3, |record| assert!(record.id < 1, "consumer fails on record {}", record.id))
    }));
    assert!(result.is_err());
    assert_eq!(drop_count.get(), 3, "records 0 and 1 went to the consumer, 2 was dropped");
    // The slots were vacated: the ring is still usable and FIFO.
    for id in 4..7 {
        ring.push(tracked(id, &drop_count)).unwrap();
    }
    let ids: Vec<u32> = core::iter::from_fn(|| ring.pop()).map(|record| record.id).collect();
    assert_eq!(ids, [3, 4, 5, 6]);
    assert_eq!(drop_count.get(), 7);
}

/// `Sync` needs `T: Send` only (records move between threads, never shared); `Send` too.
#[test]
fn send_and_sync_need_only_send_records() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Ring<u64, 2>>();
    assert_send_sync::<Ring<std::cell::Cell<u8>, 2>>(); // Send, not Sync
}

#[test]
fn lives_in_a_static() {
    static RING: Ring<u64, 16> = Ring::new();
    RING.push(7).unwrap();
    assert_eq!(RING.pop(), Some(7));
}

#[cfg(feature = "alloc")]
#[test]
fn boxed_ring_is_built_in_place() {
    let ring = Ring::<[u8; 64], { 1 << 12 }>::new_boxed();
    assert_eq!(ring.capacity(), 1 << 12);
    assert!(ring.is_empty());
    for byte in 0..=u8::MAX {
        ring.push([byte; 64]).unwrap();
    }
    assert_eq!(ring.len(), 256);
    assert_eq!(ring.pop(), Some([0; 64]));
}

#[test]
fn capacity_and_debug() {
    let ring: Ring<u8, 32> = Ring::default();
    assert_eq!(ring.capacity(), 32);
    assert_eq!(Ring::<u8, 32>::CAPACITY, 32);
    ring.push(1).unwrap();
    ring.close();
    assert_eq!(std::format!("{ring:?}"), "Ring { capacity: 32, len: 1, closed: true, .. }");
    assert_eq!(std::format!("{:?}", PushError::Full(1)), "Full(..)");
    assert_eq!(std::format!("{}", PushError::Closed(1)), "pushing into a closed ring");
}

/// A ring whose head and tail start at `position_word`, as if that many pushes and pops had
/// gone through it: lets the tests cross the wrap of the position counter itself.
fn ring_starting_at<T, const N: usize>(position_word: usize) -> Ring<T, N> {
    assert_eq!(position_word & CLOSED, 0);
    let ring = Ring::new();
    ring.head.store(position_word, Ordering::Relaxed);
    ring.tail.store(position_word, Ordering::Relaxed);
    for offset in 0..N {
        let word = position_word.wrapping_add(offset * STEP);
        ring.slot(word).stamp.store(word, Ordering::Relaxed);
    }
    ring
}

#[test]
fn position_counter_wraps() {
    let ring: Ring<u32, 4> = ring_starting_at(0_usize.wrapping_sub(3 * STEP));
    let mut next_popped = 0;
    for record in 0..40 {
        ring.push(record).unwrap();
        if record % 3 == 2 {
            assert_eq!(ring.len(), 3);
            assert_eq!(
                ring.pop_batch(3, |popped| {
                    assert_eq!(popped, next_popped);
                    next_popped += 1;
                }),
                3
            );
        }
    }
    assert_eq!(ring.len(), 1);
    assert_eq!(ring.pop(), Some(39));
    ring.close();
    assert!(ring.is_drained());
}

#[test]
fn drop_counts_records_across_the_wrap() {
    let drop_count = Rc::new(Cell::new(0));
    let ring: Ring<Tracked, 4> = ring_starting_at(0_usize.wrapping_sub(2 * STEP));
    for id in 0..4 {
        ring.push(tracked(id, &drop_count)).unwrap();
    }
    drop(ring);
    assert_eq!(drop_count.get(), 4);
}
