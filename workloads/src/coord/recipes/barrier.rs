//! The double barrier: `size` participants enter together and leave together (ZooKeeper's
//! recipe). Each participant is an ephemeral node named after it under the barrier's
//! directory; a `ready` node opens the entrance.
//!
//! ```text
//! enter: exists("b/ready", watch); create("b/<name>", EPHEMERAL)
//!        L = getChildren(b) without ready; if |L| < size wait for the watch,
//!        else create("b/ready")
//! leave: L = getChildren(b) without ready; if L is empty, done
//!        if L is [me], delete me, done
//!        if I am the lowest, wait for the highest to go; else delete me (if there) and
//!        wait for the lowest to go; repeat
//! ```
//!
//! Leaving wakes at most two waiters per departure (those watching the lowest and the
//! highest), and nobody returns from `leave` before every participant has called it: the
//! lowest returns last, once alone, and the others wait for it. The last to leave deletes
//! `ready`, so the directory can hold the next round.
//!
//! Participant nodes are plain (not sequential) ephemerals, so a lost create is settled
//! by the node's owner: if it is this session's, it is ours.

use super::{ensure_path, protected, retrying, Budget, RecipeError, Result};
use crate::coord::client::{CoordClient, Watch};
use coord::api::{child_path, Acl, CreateFlags, ErrorCode};
use std::time::Duration;

const READY: &str = "ready";

/// One participant of a double barrier.
#[derive(Clone, Debug)]
pub struct DoubleBarrier {
    client: CoordClient,
    dir: String,
    name: String,
    size: usize,
}

impl DoubleBarrier {
    /// `name` is this participant's, unique among them; `size` how many there are.
    pub fn new(client: CoordClient, dir: &str, name: &str, size: usize) -> DoubleBarrier {
        DoubleBarrier {
            client,
            dir: dir.to_string(),
            name: name.to_string(),
            size,
        }
    }

    fn me(&self) -> String {
        child_path(&self.dir, &self.name)
    }

    /// Registers and waits up to `timeout` until `size` participants have.
    pub async fn enter(&self, timeout: Duration) -> Result<()> {
        let budget = Budget::new(timeout);
        let ready = child_path(&self.dir, READY);
        ensure_path(&self.client, &self.dir, budget.deadline).await?;
        loop {
            let (open, watch) =
                retrying(budget.deadline, || self.client.exists_watch(&ready)).await?;
            self.register(budget).await?;
            if open.is_some() || self.count(budget).await? >= self.size {
                return self.open(&ready, budget).await;
            }
            self.wait(watch, budget, "entering").await?;
        }
    }

    async fn register(&self, budget: Budget) -> Result<()> {
        let me = self.me();
        let acl = Acl::open();
        let created = retrying(budget.deadline, || {
            self.client.create(&me, b"", &acl, CreateFlags::EPHEMERAL)
        });
        match created.await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == ErrorCode::NodeExists => {
                let stat = retrying(budget.deadline, || self.client.exists(&me)).await?;
                match stat {
                    Some(s) if s.ephemeral_owner == self.client.session_id() => Ok(()),
                    Some(s) => Err(RecipeError::Taken {
                        path: me,
                        owner: s.ephemeral_owner,
                    }),
                    None => Err(RecipeError::Lost { path: me }),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn count(&self, budget: Budget) -> Result<usize> {
        Ok(self.participants(budget).await?.len())
    }

    async fn open(&self, ready: &str, budget: Budget) -> Result<()> {
        let acl = Acl::open();
        let created = retrying(budget.deadline, || {
            self.client
                .create(ready, b"", &acl, CreateFlags::PERSISTENT)
        });
        match created.await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == ErrorCode::NodeExists => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The participants' names, sorted.
    async fn participants(&self, budget: Budget) -> Result<Vec<String>> {
        let (mut names, _) =
            retrying(budget.deadline, || self.client.get_children(&self.dir)).await?;
        names.retain(|n| n != READY);
        Ok(names)
    }

    /// Waits up to `timeout` until every participant has left.
    pub async fn leave(&self, timeout: Duration) -> Result<()> {
        let budget = Budget::new(timeout);
        loop {
            let names = self.participants(budget).await?;
            let (Some(lowest), Some(highest)) = (names.first(), names.last()) else {
                return self.close(budget).await;
            };
            if names.len() == 1 && *lowest == self.name {
                protected::delete_own(&self.client, &self.me(), budget.deadline).await?;
                return self.close(budget).await;
            }
            let awaited = if *lowest == self.name {
                highest.clone()
            } else {
                protected::delete_own(&self.client, &self.me(), budget.deadline).await?;
                lowest.clone()
            };
            let path = child_path(&self.dir, &awaited);
            match retrying(budget.deadline, || self.client.exists_watch(&path)).await? {
                (None, _) => continue,
                (Some(_), watch) => self.wait(watch, budget, "leaving").await?,
            }
        }
    }

    /// Removes `ready` after the last participant left (best effort: another round may
    /// have started, in which case its `ready` is not ours to remove... but a round
    /// starts only once everyone has left this one).
    async fn close(&self, budget: Budget) -> Result<()> {
        let ready = child_path(&self.dir, READY);
        protected::delete_own(&self.client, &ready, budget.deadline).await
    }

    async fn wait(&self, watch: Watch, budget: Budget, what: &'static str) -> Result<()> {
        match tokio::time::timeout(budget.remaining(), watch).await {
            Err(_) => Err(budget.timeout(what, &self.dir)),
            Ok(Err(e)) if e.is_terminal() => Err(e.into()),
            Ok(_) => Ok(()),
        }
    }
}
