//! The queue under the lock, the shared lock and the election: sequential ephemeral
//! nodes under one directory, served in sequence order.
//!
//! A waiter lists the directory, finds what blocks it (for an exclusive lock, the node
//! just ahead; for a reader, the last writer ahead), and watches that one node only, so
//! that a departure wakes exactly the waiter behind it: no herd effect. When the watch
//! fires, or the node is already gone, or the connection breaks, it lists again: a
//! departure ahead of the blocker changes nothing for it, so it simply watches anew.
//!
//! The watch is set with getData rather than the notes' exists: both fire on deletion,
//! but exists on a node that has just vanished would leave a watch on a name that will
//! never exist again, held by the server until the connection closes.

use super::protected::{self, sequence, Created};
use super::{retrying, Budget, RecipeError, Result};
use crate::coord::client::CoordClient;
use coord::api::{child_path, ErrorCode};
use tokio::time::Instant;

/// One node of the queue, by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub name: String,
    pub seq: u64,
}

impl Entry {
    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.name.starts_with(prefix)
    }
}

/// The queue's nodes in sequence order: children starting with one of `prefixes` and
/// ending in a sequence number. Other children (a barrier's `ready`) are not in it.
pub(crate) fn entries(children: Vec<String>, prefixes: &[&str]) -> Vec<Entry> {
    let mut queue: Vec<Entry> = children
        .into_iter()
        .filter(|n| prefixes.iter().any(|p| n.starts_with(p)))
        .filter_map(|name| sequence(&name).map(|seq| Entry { name, seq }))
        .collect();
    queue.sort_by_key(|e| e.seq);
    queue
}

/// Which entry, if any, keeps the entry at `me` waiting.
pub(crate) type Blocker = fn(&[Entry], usize) -> Option<&Entry>;

/// Blocks on the entry just ahead, whatever it is: exclusive locks, writers, candidates.
pub(crate) fn predecessor(queue: &[Entry], me: usize) -> Option<&Entry> {
    me.checked_sub(1).map(|i| &queue[i])
}

/// A place in a queue.
#[derive(Clone, Debug)]
pub(crate) struct Ticket {
    pub client: CoordClient,
    pub dir: String,
    pub node: Created,
    pub prefixes: &'static [&'static str],
}

impl Ticket {
    /// Joins the queue under `dir` with a protected ephemeral sequential node.
    pub async fn take(
        client: &CoordClient,
        dir: &str,
        prefix: &str,
        prefixes: &'static [&'static str],
        data: &[u8],
        deadline: Instant,
    ) -> Result<Ticket> {
        super::ensure_path(client, dir, deadline).await?;
        let node = protected::create(client, dir, prefix, data, true, deadline).await?;
        Ok(Ticket {
            client: client.clone(),
            dir: dir.to_string(),
            node,
            prefixes,
        })
    }

    /// Waits until nothing blocks this ticket.
    pub async fn wait_turn(&self, blocker: Blocker, budget: Budget) -> Result<()> {
        loop {
            let Some(ahead) = self.blocked_by(blocker, budget.deadline).await? else {
                return Ok(());
            };
            let path = child_path(&self.dir, &ahead.name);
            let watched = retrying(budget.deadline, || self.client.get_data_watch(&path)).await;
            let watch = match watched {
                Ok((_, _, watch)) => watch,
                Err(e) if e.code() == ErrorCode::NoNode => continue, // Gone already.
                Err(e) => return Err(e.into()),
            };
            match tokio::time::timeout(budget.remaining(), watch).await {
                Err(_) => return Err(budget.timeout("waiting in", &self.node.path)),
                Ok(Err(e)) if e.is_terminal() => return Err(e.into()),
                Ok(_) => {} // It changed, or the connection broke: look again.
            }
        }
    }

    /// The entry blocking this ticket now, or `None` when it is its turn.
    async fn blocked_by(&self, blocker: Blocker, deadline: Instant) -> Result<Option<Entry>> {
        let (children, _) = retrying(deadline, || self.client.get_children(&self.dir)).await?;
        let queue = entries(children, self.prefixes);
        let Some(me) = queue.iter().position(|e| e.name == self.node.name) else {
            return Err(RecipeError::Lost {
                path: self.node.path.clone(),
            });
        };
        Ok(blocker(&queue, me).cloned())
    }

    /// Leaves the queue: deletes the node (and any duplicate of it).
    pub async fn withdraw(&self, deadline: Instant) -> Result<()> {
        protected::withdraw(&self.client, &self.dir, &self.node, deadline).await
    }

    /// Whether the node is still there, owned by this session, as seen after a sync.
    pub async fn still_held(&self, deadline: Instant) -> Result<bool> {
        retrying(deadline, || self.client.sync(&self.node.path)).await?;
        let stat = retrying(deadline, || self.client.exists(&self.node.path)).await?;
        Ok(stat.is_some_and(|s| s.ephemeral_owner == self.client.session_id()))
    }
}

/// Withdraws a ticket in the background when its holder dropped it without releasing,
/// so that the queue behind it does not wait for the session to end.
pub(crate) fn withdraw_in_background(ticket: Ticket) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let deadline = Instant::now() + ticket.client.options().op_timeout();
        runtime.spawn(async move {
            let _ = ticket.withdraw(deadline).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_is_in_sequence_order_whatever_the_guids() {
        let children = vec![
            "x-bbbb-0000000003".to_string(),
            "s-ffff-0000000001".to_string(),
            "ready".to_string(),
            "x-aaaa-0000000002".to_string(),
        ];
        let queue = entries(children, &["x-", "s-"]);
        let seqs: Vec<u64> = queue.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3]);
        assert_eq!(predecessor(&queue, 0), None);
        assert_eq!(predecessor(&queue, 2).unwrap().name, "x-aaaa-0000000002");
    }
}
