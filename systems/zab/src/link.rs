//! A FIFO link between a follower and its leader over a network that may lose, duplicate
//! and reorder messages.
//!
//! Zab assumes FIFO channels: ZooKeeper gets them from TCP, and treats a broken connection
//! as the end of the follower's session with the leader. A link does the same over the
//! machine contract's looser network: messages carry a sequence number, duplicates are
//! dropped, early arrivals wait in a bounded buffer, and a gap that does not close in time
//! breaks the link. There is no retransmission: a follower whose link broke reconnects and
//! is synchronized again, exactly as after a TCP reset.

use super::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Upper bound of out-of-order messages a link holds while waiting for a gap to close.
pub const MAX_EARLY_MESSAGES: usize = 1024;

/// Names one follower-leader connection. The follower picks `nonce` afresh per attempt, so
/// messages of an old connection are never mistaken for the new one's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LinkId {
    pub leader: NodeId,
    pub follower: NodeId,
    pub nonce: u64,
}

/// Why a link broke.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Broken {
    GapTimedOut { expected: u64 },
    TooManyEarly,
}

/// One side of a link: what it has sent and what it has delivered.
#[derive(Debug)]
pub struct Link<M> {
    pub id: LinkId,
    next_send: u64,
    next_recv: u64,
    early: BTreeMap<u64, M>,
    /// When the oldest gap opened, to break the link if it stays open.
    gap_since_ms: Option<u64>,
    pub last_heard_ms: u64,
}

impl<M> Link<M> {
    pub fn new(id: LinkId, now_ms: u64) -> Self {
        Link {
            id,
            next_send: 0,
            next_recv: 0,
            early: BTreeMap::new(),
            gap_since_ms: None,
            last_heard_ms: now_ms,
        }
    }

    /// The sequence number for the next message sent.
    pub fn next_seq(&mut self) -> u64 {
        let seq = self.next_send;
        self.next_send += 1;
        seq
    }

    /// Accepts message `seq`; returns the messages now deliverable, in order.
    pub fn receive(&mut self, now_ms: u64, seq: u64, msg: M) -> Result<Vec<M>, Broken> {
        self.last_heard_ms = now_ms;
        if seq < self.next_recv || self.early.contains_key(&seq) {
            return Ok(Vec::new()); // A duplicate.
        }
        if seq > self.next_recv {
            if self.early.len() >= MAX_EARLY_MESSAGES {
                return Err(Broken::TooManyEarly);
            }
            self.early.insert(seq, msg);
            self.gap_since_ms.get_or_insert(now_ms);
            return Ok(Vec::new());
        }
        let mut ready = vec![msg];
        self.next_recv += 1;
        while let Some(m) = self.early.remove(&self.next_recv) {
            ready.push(m);
            self.next_recv += 1;
        }
        self.gap_since_ms = if self.early.is_empty() {
            None
        } else {
            Some(now_ms)
        };
        Ok(ready)
    }

    /// Whether anything arrived in order yet.
    pub fn received_any(&self) -> bool {
        self.next_recv > 0
    }

    /// Breaks the link if a gap has stayed open longer than `gap_timeout_ms`.
    pub fn check_gap(&self, now_ms: u64, gap_timeout_ms: u64) -> Result<(), Broken> {
        match self.gap_since_ms {
            Some(since) if now_ms.saturating_sub(since) > gap_timeout_ms => {
                Err(Broken::GapTimedOut {
                    expected: self.next_recv,
                })
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> Link<u32> {
        Link::new(
            LinkId {
                leader: 1,
                follower: 2,
                nonce: 7,
            },
            0,
        )
    }

    #[test]
    fn reordered_messages_are_delivered_in_order_and_duplicates_dropped() {
        let mut l = link();
        assert_eq!(l.receive(1, 1, 11).unwrap(), Vec::<u32>::new());
        assert_eq!(l.receive(2, 2, 12).unwrap(), Vec::<u32>::new());
        assert_eq!(l.receive(3, 0, 10).unwrap(), vec![10, 11, 12]);
        assert_eq!(l.receive(4, 1, 11).unwrap(), Vec::<u32>::new());
        assert_eq!(l.receive(5, 3, 13).unwrap(), vec![13]);
        assert!(l.check_gap(1_000_000, 10).is_ok());
    }

    #[test]
    fn a_gap_that_stays_open_breaks_the_link() {
        let mut l = link();
        l.receive(100, 2, 12).unwrap();
        assert!(l.check_gap(150, 100).is_ok());
        assert_eq!(
            l.check_gap(201, 100),
            Err(Broken::GapTimedOut { expected: 0 })
        );
    }

    #[test]
    fn early_messages_are_bounded() {
        let mut l = link();
        for seq in 1..=MAX_EARLY_MESSAGES as u64 {
            l.receive(0, seq, 0).unwrap();
        }
        assert_eq!(
            l.receive(0, MAX_EARLY_MESSAGES as u64 + 1, 0),
            Err(Broken::TooManyEarly)
        );
    }
}
