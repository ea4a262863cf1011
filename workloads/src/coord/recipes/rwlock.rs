//! The shared lock of the notes: readers share, writers exclude everyone.
//!
//! ```text
//! read:  id = create(".../locks/s-", SEQUENCE|EPHEMERAL)
//!        getChildren(".../locks", false)
//!        if no child starting with x- is before id, the read lock is held
//!        watch the last x- before id; if it is gone, goto 2; wait for the event; goto 2
//! write: as the exclusive lock, with x-: held when first, else watch the node just before
//! ```
//!
//! A reader waits only on the last writer ahead of it and a writer only on its immediate
//! predecessor, so no departure wakes more than the waiters it unblocks. The `x-` writers
//! are the exclusive lock's holders: a [`Lock`](super::lock::Lock) on the same directory
//! is this lock's write side.

use super::lock::{acquire, LockGuard, READ_PREFIX, WRITE_PREFIX};
use super::queue::{self, Entry};
use super::Result;
use crate::coord::client::CoordClient;
use std::time::Duration;

/// A shared (read/write) lock on a directory.
#[derive(Clone, Debug)]
pub struct RwLock {
    client: CoordClient,
    dir: String,
}

impl RwLock {
    pub fn new(client: CoordClient, dir: &str) -> RwLock {
        RwLock {
            client,
            dir: dir.to_string(),
        }
    }

    /// Waits up to `timeout` for a read lock, shared with other readers.
    pub async fn read(&self, timeout: Duration) -> Result<LockGuard> {
        acquire(
            &self.client,
            &self.dir,
            READ_PREFIX,
            last_writer_before,
            timeout,
        )
        .await
    }

    /// Waits up to `timeout` for the write lock, exclusive of readers and writers.
    pub async fn write(&self, timeout: Duration) -> Result<LockGuard> {
        acquire(
            &self.client,
            &self.dir,
            WRITE_PREFIX,
            queue::predecessor,
            timeout,
        )
        .await
    }
}

/// What blocks a reader: the last writer ahead of it.
fn last_writer_before(queue: &[Entry], me: usize) -> Option<&Entry> {
    queue[..me]
        .iter()
        .rev()
        .find(|e| e.has_prefix(WRITE_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_waits_on_the_last_writer_ahead_only() {
        let e = |name: &str, seq| Entry {
            name: format!("{name}-g-{seq:010}"),
            seq,
        };
        let queue = vec![e("x", 1), e("s", 2), e("x", 3), e("s", 4), e("s", 5)];
        assert_eq!(last_writer_before(&queue, 4).unwrap().seq, 3);
        assert_eq!(last_writer_before(&queue, 1).unwrap().seq, 1);
        assert_eq!(
            last_writer_before(&queue[1..], 0),
            None,
            "a reader at the head"
        );
        assert_eq!(
            queue::predecessor(&queue, 3).unwrap().seq,
            3,
            "writers: the one ahead"
        );
    }
}
