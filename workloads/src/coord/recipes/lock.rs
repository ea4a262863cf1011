//! The exclusive lock of the notes, without the herd effect, with a fencing token.
//!
//! ```text
//! 1. id = create(".../locks/x-", SEQUENCE|EPHEMERAL)        (protected: see `protected`)
//! 2. getChildren(".../locks", false)
//! 3. if id is the first child, the lock is held
//! 4. watch the child just before id; if it is gone, goto 2
//! 5. wait for the event; goto 2
//! ```
//!
//! The fencing token is the czxid of the holder's node. Holders acquire in sequence
//! order, and sequence numbers are given in zxid order, so each holder's token is larger
//! than every earlier holder's: a resource that refuses tokens older than the newest it
//! has seen refuses a paused ex-holder whose session expired while it slept.
//!
//! The lock is held only as long as the session: if it expires, the node vanishes and
//! the next waiter acquires. [`LockGuard::still_held`] checks; the token is what makes
//! acting on a stale belief safe.

use super::queue::{self, Ticket};
use super::{Budget, Result};
use crate::coord::client::CoordClient;
use coord::api::Zxid;
use std::time::Duration;

/// The prefix of exclusive holders; the shared lock's writers use it too, so an
/// exclusive lock and a shared lock's write side on one directory exclude each other.
pub(crate) const WRITE_PREFIX: &str = "x-";
pub(crate) const READ_PREFIX: &str = "s-";
pub(crate) const LOCK_PREFIXES: &[&str] = &[WRITE_PREFIX, READ_PREFIX];

/// An exclusive lock on a directory.
#[derive(Clone, Debug)]
pub struct Lock {
    client: CoordClient,
    dir: String,
}

impl Lock {
    pub fn new(client: CoordClient, dir: &str) -> Lock {
        Lock {
            client,
            dir: dir.to_string(),
        }
    }

    /// Waits up to `timeout` for the lock. On failure the node is withdrawn.
    pub async fn acquire(&self, timeout: Duration) -> Result<LockGuard> {
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

/// Queues under `dir` with `prefix` and waits until `blocker` finds nothing ahead.
pub(crate) async fn acquire(
    client: &CoordClient,
    dir: &str,
    prefix: &str,
    blocker: queue::Blocker,
    timeout: Duration,
) -> Result<LockGuard> {
    let budget = Budget::new(timeout);
    let ticket = Ticket::take(client, dir, prefix, LOCK_PREFIXES, b"", budget.deadline).await?;
    match ticket.wait_turn(blocker, budget).await {
        Ok(()) => Ok(LockGuard {
            ticket: Some(ticket),
        }),
        Err(e) => {
            // Out of the queue, so as not to block those behind. A node that may have
            // stayed would block them for as long as this session lives (a live session
            // never lets its ephemerals go): say so, so that the caller ends the session.
            let cleanup = tokio::time::Instant::now() + client.options().op_timeout();
            match ticket.withdraw(cleanup).await {
                Ok(()) => Err(e),
                Err(w) => Err(super::RecipeError::Stranded {
                    gave_up: e.to_string(),
                    path: ticket.node.path.clone(),
                    why: w.to_string(),
                }),
            }
        }
    }
}

/// A held lock. Release it with [`LockGuard::release`]; dropping it releases in the
/// background.
#[derive(Debug)]
pub struct LockGuard {
    ticket: Option<Ticket>,
}

impl LockGuard {
    fn ticket(&self) -> &Ticket {
        self.ticket.as_ref().expect("held until release")
    }

    /// The fencing token: the czxid of the holder's node, larger than any earlier
    /// holder's.
    pub fn token(&self) -> Zxid {
        self.ticket().node.stat.czxid
    }

    /// The holder's node.
    pub fn path(&self) -> &str {
        &self.ticket().node.path
    }

    /// Whether the lock is still held (the node exists, owned by this session), as of a
    /// sync. The answer can be stale by the time it arrives; fence with the token.
    pub async fn still_held(&self, timeout: Duration) -> Result<bool> {
        let budget = Budget::new(timeout);
        self.ticket().still_held(budget.deadline).await
    }

    /// Releases the lock, waiting up to the client's op timeout (through retries).
    pub async fn release(mut self) -> Result<()> {
        let ticket = self.ticket.take().expect("held until release");
        let deadline = tokio::time::Instant::now() + ticket.client.options().op_timeout();
        ticket.withdraw(deadline).await
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            queue::withdraw_in_background(ticket);
        }
    }
}
