//! The queue under the lock and the election, on ZooKeeper: protected ephemeral
//! sequential nodes under one directory, served in sequence order, each waiter watching
//! only the node just ahead of it (no herd effect). The coord recipes' `queue` and
//! `protected` on ZooKeeper's client; the ordering rules are theirs
//! ([`crate::coord::recipes::queue::entries`]).
//!
//! The wait is the notes' own: `exists` with a watch on the node ahead; if it is already
//! gone, list again. The connection breaking does not end the wait: the client keeps its
//! watches across connections of one session.

use super::session::{ensure_path, retrying, write_failed, zxid_u64};
use crate::client::Outcome;
use crate::coord::recipes::protected::sequence;
use crate::coord::recipes::queue::{self, Entry};
use crate::zookeeper::{Client, CreateMode, Error, ErrorCode, KeeperState, Stat, WatchError};
use checkers::history::Value;
use coord::api::child_path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Why a recipe did not complete.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RecipeError {
    #[error(transparent)]
    Zk(#[from] Error),
    #[error("{what} {path}: gave up after {waited_ms} ms")]
    Timeout {
        what: &'static str,
        path: String,
        waited_ms: u64,
    },
    /// The recipe's own node is gone: its session expired, or someone deleted it.
    #[error("{path} vanished: its session lost it (expired) or another client deleted it")]
    Lost { path: String },
}

pub(crate) type Result<T> = std::result::Result<T, RecipeError>;

/// The Jepsen outcome of a recipe error: `fail` only when the recipe certainly left no
/// trace (it timed out waiting and withdrew, or its node vanished), or the server refused.
pub(crate) fn outcome_of(value: Value, e: &RecipeError) -> Outcome {
    match e {
        RecipeError::Timeout { .. } | RecipeError::Lost { .. } => {
            Outcome::fail(value, e.to_string())
        }
        RecipeError::Zk(z) => write_failed(value, z),
    }
}

/// A node a protected create made.
#[derive(Clone, Debug)]
pub(crate) struct Created {
    pub path: String,
    /// `<prefix><guid>-<sequence>`.
    pub name: String,
    /// `<prefix><guid>-`: what every node of this create starts with.
    pub base: String,
    pub stat: Stat,
}

/// A GUID unique per create: the session (unique in the ensemble) and a process-wide
/// counter (unique within the session).
fn guid(session: i64) -> String {
    static NONCE: AtomicU64 = AtomicU64::new(0);
    let nonce = NONCE.fetch_add(1, Ordering::Relaxed);
    format!("{session:016x}{nonce:08x}")
}

/// Creates the ephemeral sequential `dir/<prefix><guid>-<sequence>`, finding it again
/// after a lost answer instead of making a second one (a second node would queue behind
/// the first, owned by nobody in the recipe's eyes).
async fn protected_create(
    client: &Client,
    dir: &str,
    prefix: &str,
    data: &[u8],
    deadline: Instant,
) -> Result<Created> {
    let base = format!("{prefix}{}-", guid(client.session_id()));
    let path = child_path(dir, &base);
    loop {
        match client
            .create(&path, data, CreateMode::EphemeralSequential)
            .await
        {
            Ok((path, stat)) => {
                let name = coord::api::node_name(&path).to_string();
                return Ok(Created {
                    path,
                    name,
                    base,
                    stat,
                });
            }
            Err(e) if e.is_transient() => {
                if let Some(found) = find(client, dir, &base, deadline).await? {
                    return Ok(found);
                }
                if Instant::now() >= deadline {
                    return Err(e.into());
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Finds the node of a protected create by its base name, deleting duplicates.
async fn find(
    client: &Client,
    dir: &str,
    base: &str,
    deadline: Instant,
) -> Result<Option<Created>> {
    // A sync first, so that a create applied through the lost connection is visible.
    retrying(deadline, || client.sync(dir)).await?;
    let (children, _) = retrying(deadline, || client.get_children(dir)).await?;
    let mut mine: Vec<&String> = children.iter().filter(|n| n.starts_with(base)).collect();
    mine.sort_by_key(|n| sequence(n));
    let Some(first) = mine.first() else {
        return Ok(None);
    };
    for extra in &mine[1..] {
        delete_own(client, &child_path(dir, extra), deadline).await?;
    }
    let path = child_path(dir, first);
    match retrying(deadline, || client.exists(&path)).await? {
        Some(stat) => Ok(Some(Created {
            path,
            name: first.to_string(),
            base: base.to_string(),
            stat,
        })),
        None => Ok(None),
    }
}

/// Deletes a node of one's own; `NoNode` (gone already, perhaps by an earlier attempt
/// whose answer was lost) counts as done.
async fn delete_own(client: &Client, path: &str, deadline: Instant) -> Result<()> {
    let deleted = retrying(deadline, || async {
        match client.delete(path, -1).await {
            Err(e) if e.code() == ErrorCode::NoNode => Ok(()),
            other => other,
        }
    });
    Ok(deleted.await?)
}

/// A place in a queue, held by one session.
pub(crate) struct Ticket {
    pub client: Arc<Client>,
    pub dir: String,
    pub node: Created,
    pub prefixes: &'static [&'static str],
}

impl Ticket {
    /// Joins the queue under `dir` (made if missing) with a protected ephemeral
    /// sequential node named `<prefix>...`.
    pub async fn take(
        client: Arc<Client>,
        dir: &str,
        prefix: &str,
        prefixes: &'static [&'static str],
        data: &[u8],
        deadline: Instant,
    ) -> Result<Ticket> {
        ensure_path(&client, dir, deadline).await?;
        let node = protected_create(&client, dir, prefix, data, deadline).await?;
        Ok(Ticket {
            client,
            dir: dir.to_string(),
            node,
            prefixes,
        })
    }

    /// The fencing token: the czxid of this ticket's node. Sequence numbers are given in
    /// zxid order, so each later ticket's token is larger.
    pub fn token(&self) -> std::result::Result<u64, Error> {
        zxid_u64(self.node.stat.czxid, self.client.server())
    }

    /// Waits until no node is ahead of this one, for `timeout` at most.
    pub async fn wait_turn(&self, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        let deadline = started + timeout;
        loop {
            let Some(ahead) = self.ahead(deadline).await? else {
                return Ok(());
            };
            let path = child_path(&self.dir, &ahead.name);
            let (stat, watch) = retrying(deadline, || self.client.exists_watch(&path)).await?;
            if stat.is_none() {
                continue; // Gone already: look again.
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            match watch.wait(remaining).await {
                Ok(event) if matches!(event.state, KeeperState::Expired | KeeperState::Closed) => {
                    return Err(Error::SessionExpired {
                        server: self.client.server().unwrap_or_default(),
                        session: self.client.session_id(),
                    }
                    .into());
                }
                Err(WatchError::Timeout { .. }) => {
                    return Err(RecipeError::Timeout {
                        what: "waiting in",
                        path: self.node.path.clone(),
                        waited_ms: started.elapsed().as_millis() as u64,
                    });
                }
                Ok(_) | Err(WatchError::Dropped { .. }) => {} // It changed: look again.
            }
        }
    }

    /// The entry just ahead of this ticket now, or `None` when it is its turn.
    async fn ahead(&self, deadline: Instant) -> Result<Option<Entry>> {
        let (children, _) = retrying(deadline, || self.client.get_children(&self.dir)).await?;
        let entries = queue::entries(children, self.prefixes);
        let Some(me) = entries.iter().position(|e| e.name == self.node.name) else {
            return Err(RecipeError::Lost {
                path: self.node.path.clone(),
            });
        };
        Ok(queue::predecessor(&entries, me).cloned())
    }

    /// Leaves the queue: deletes the node and any duplicate of it.
    pub async fn withdraw(&self, deadline: Instant) -> Result<()> {
        delete_own(&self.client, &self.node.path, deadline).await?;
        // A duplicate would sit in the queue until the session ends: sweep them.
        let (children, _) = retrying(deadline, || self.client.get_children(&self.dir)).await?;
        for extra in children.iter().filter(|n| n.starts_with(&self.node.base)) {
            delete_own(&self.client, &child_path(&self.dir, extra), deadline).await?;
        }
        Ok(())
    }
}
