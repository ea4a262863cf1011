//! Simulated time for the history generators: an event queue and a latency model.
//!
//! Events fire in (time, order scheduled) order, so two events at the same instant keep the
//! order they were scheduled in and a seed replays the same history on every machine.

use crate::rng::Rng;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// Pending actions of a simulation, earliest first.
pub struct EventQueue<A> {
    heap: BinaryHeap<Reverse<Entry<A>>>,
    next_seq: u64,
}

struct Entry<A> {
    time_ns: u64,
    seq: u64,
    action: A,
}

impl<A> PartialEq for Entry<A> {
    fn eq(&self, other: &Self) -> bool {
        (self.time_ns, self.seq) == (other.time_ns, other.seq)
    }
}

impl<A> Eq for Entry<A> {}

impl<A> PartialOrd for Entry<A> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<A> Ord for Entry<A> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.time_ns, self.seq).cmp(&(other.time_ns, other.seq))
    }
}

impl<A> Default for EventQueue<A> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            next_seq: 0,
        }
    }
}

impl<A> EventQueue<A> {
    pub fn schedule(&mut self, time_ns: u64, action: A) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Reverse(Entry {
            time_ns,
            seq,
            action,
        }));
    }

    /// The earliest pending action and its time.
    pub fn pop(&mut self) -> Option<(u64, A)> {
        self.heap.pop().map(|Reverse(e)| (e.time_ns, e.action))
    }
}

/// A mostly fast store with a slow tail, so that short operations nest inside long ones.
pub fn draw_latency_ns(rng: &mut Rng) -> u64 {
    match rng.below(100) {
        0..=69 => rng.between(100_000, 1_000_000),
        70..=94 => rng.between(1_000_000, 10_000_000),
        _ => rng.between(10_000_000, 50_000_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_and_ties_in_scheduling_order() {
        let mut q = EventQueue::default();
        q.schedule(5, "b");
        q.schedule(1, "a");
        q.schedule(5, "c");
        assert_eq!(q.pop(), Some((1, "a")));
        assert_eq!(q.pop(), Some((5, "b")));
        assert_eq!(q.pop(), Some((5, "c")));
        assert_eq!(q.pop(), None);
    }
}
