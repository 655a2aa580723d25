use std::cell::Cell;
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
    assert!(error.is_full());
    assert_eq!(error.into_inner(), 4);
    assert_eq!(ring.pop(), Some(0));
    ring.push(4).unwrap();
    assert_eq!(ring.push(5), Err(PushError::Full(5)));
    let records: Vec<u32> = core::iter::from_fn(|| ring.pop()).collect();
    assert_eq!(records, [1, 2, 3, 4]);
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
        for _ in 0..=(round % 3) {
            let Some(record) = ring.pop() else { break };
            assert_eq!(record, next_popped);
            next_popped += 1;
        }
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
fn zero_sized_records() {
    let ring: Ring<(), 2> = Ring::new();
    ring.push(()).unwrap();
    ring.push(()).unwrap();
    assert_eq!(ring.push(()), Err(PushError::Full(())));
    assert_eq!(ring.pop(), Some(()));
    ring.push(()).unwrap();
    assert_eq!((ring.pop(), ring.pop(), ring.pop()), (Some(()), Some(()), None));
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
    assert_eq!(std::format!("{ring:?}"), "Ring { capacity: 32, len: 1, .. }");
    assert_eq!(std::format!("{:?}", PushError::Full(1)), "Full(..)");
    assert_eq!(std::format!("{}", PushError::Full(1)), "pushing into a full ring");
}

/// A ring whose head and tail start at `position_word`, as if that many pushes and pops had
/// gone through it: lets the tests cross the wrap of the position counter itself.
fn ring_starting_at<T, const N: usize>(position_word: usize) -> Ring<T, N> {
    assert_eq!(position_word % STEP, 0);
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
            for _ in 0..3 {
                assert_eq!(ring.pop(), Some(next_popped));
                next_popped += 1;
            }
        }
    }
    assert_eq!(ring.len(), 1);
    assert_eq!(ring.pop(), Some(39));
    assert!(ring.is_empty());
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
