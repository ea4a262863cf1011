//! The event queue: a min-heap on (time, sequence number). The sequence number is the order
//! events were scheduled in, so two events due at the same millisecond always come out in the
//! same order, whatever the heap's internal layout does with ties.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

struct Entry<E> {
    time_ms: u64,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.time_ms, self.seq) == (other.time_ms, other.seq)
    }
}

impl<E> Eq for Entry<E> {}

impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Entry<E> {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest event first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time_ms, other.seq).cmp(&(self.time_ms, self.seq))
    }
}

/// Events in delivery order. Refuses to grow past `limit`, so a message storm ends the run with
/// an error instead of exhausting memory.
pub(crate) struct EventQueue<E> {
    heap: BinaryHeap<Entry<E>>,
    next_seq: u64,
    limit: usize,
}

/// The queue is at its limit; the event was not scheduled.
#[derive(Debug)]
pub(crate) struct QueueFull;

impl<E> EventQueue<E> {
    pub fn new(limit: usize) -> EventQueue<E> {
        assert!(
            limit > 0,
            "an event queue needs room for at least one event"
        );
        EventQueue {
            heap: BinaryHeap::with_capacity(limit.min(1 << 12)),
            next_seq: 0,
            limit,
        }
    }

    pub fn push(&mut self, time_ms: u64, event: E) -> Result<(), QueueFull> {
        if self.heap.len() >= self.limit {
            return Err(QueueFull);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Entry {
            time_ms,
            seq,
            event,
        });
        Ok(())
    }

    pub fn pop(&mut self) -> Option<(u64, E)> {
        self.heap.pop().map(|e| (e.time_ms, e.event))
    }

    pub fn peek_time_ms(&self) -> Option<u64> {
        self.heap.peek().map(|e| e.time_ms)
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_break_by_scheduling_order() {
        let mut q = EventQueue::new(10);
        q.push(5, 'c').unwrap();
        q.push(3, 'a').unwrap();
        q.push(5, 'd').unwrap();
        q.push(3, 'b').unwrap();
        let order: Vec<char> = std::iter::from_fn(|| q.pop().map(|(_, e)| e)).collect();
        assert_eq!(order, vec!['a', 'b', 'c', 'd']);
    }

    #[test]
    fn refuses_to_grow_past_its_limit() {
        let mut q = EventQueue::new(2);
        q.push(1, ()).unwrap();
        q.push(1, ()).unwrap();
        assert!(q.push(1, ()).is_err());
        q.pop();
        assert!(q.push(1, ()).is_ok());
    }
}
