//! Group membership: each member registers an ephemeral node named after itself under
//! the group's directory (it vanishes when the member's session ends), and anyone lists
//! the directory with a watch to follow the group.

use super::{ensure_path, retrying, Budget, RecipeError, Result};
use crate::coord::client::{CoordClient, Watch};
use coord::api::{child_path, Acl, CreateFlags, ErrorCode};
use std::time::Duration;
use tokio::time::Instant;

/// A group of members under a directory.
#[derive(Clone, Debug)]
pub struct Group {
    client: CoordClient,
    dir: String,
}

/// This session's membership of a group.
#[derive(Debug)]
pub struct Member {
    client: CoordClient,
    path: String,
}

impl Group {
    pub fn new(client: CoordClient, dir: &str) -> Group {
        Group {
            client,
            dir: dir.to_string(),
        }
    }

    /// Joins as `name` with `data` (host info). After a lost answer the node may exist
    /// already: it is this member's if this session owns it, else the name is taken.
    pub async fn join(&self, name: &str, data: &[u8], timeout: Duration) -> Result<Member> {
        let deadline = Instant::now() + timeout;
        ensure_path(&self.client, &self.dir, deadline).await?;
        let path = child_path(&self.dir, name);
        let acl = Acl::open();
        let created = retrying(deadline, || {
            self.client
                .create(&path, data, &acl, CreateFlags::EPHEMERAL)
        });
        match created.await {
            Ok(_) => {}
            Err(e) if e.code() == ErrorCode::NodeExists => {
                self.check_owner(&path, deadline).await?
            }
            Err(e) => return Err(e.into()),
        }
        Ok(Member {
            client: self.client.clone(),
            path,
        })
    }

    async fn check_owner(&self, path: &str, deadline: Instant) -> Result<()> {
        let session = self.client.session_id();
        match retrying(deadline, || self.client.exists(path)).await? {
            Some(stat) if stat.ephemeral_owner == session => Ok(()),
            Some(stat) => Err(RecipeError::Taken {
                path: path.to_string(),
                owner: stat.ephemeral_owner,
            }),
            // It was ours and vanished, or another's that left: let the caller retry.
            None => Err(RecipeError::Lost {
                path: path.to_string(),
            }),
        }
    }

    /// The members' names, sorted, as this client's server sees them.
    pub async fn members(&self, timeout: Duration) -> Result<Vec<String>> {
        let deadline = Instant::now() + timeout;
        Ok(retrying(deadline, || self.client.get_children(&self.dir))
            .await?
            .0)
    }

    /// Follows the membership: see [`MembersWatch::next`].
    pub fn watch(&self) -> MembersWatch {
        MembersWatch {
            group: self.clone(),
            seen: None,
            watch: None,
        }
    }
}

impl Member {
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Leaves the group.
    pub async fn leave(self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        super::protected::delete_own(&self.client, &self.path, deadline).await
    }
}

/// Follows a group's members.
#[derive(Debug)]
pub struct MembersWatch {
    group: Group,
    /// The pzxid of the list last returned: it changes with every child added or removed.
    seen: Option<u64>,
    watch: Option<Watch>,
}

impl MembersWatch {
    /// The first call returns the current members; each later call waits up to `timeout`
    /// for the membership to change and returns the new list.
    pub async fn next(&mut self, timeout: Duration) -> Result<Vec<String>> {
        let budget = Budget::new(timeout);
        let client = &self.group.client;
        let dir = &self.group.dir;
        loop {
            let Some(watch) = self.watch.take() else {
                let read = retrying(budget.deadline, || client.get_children_watch(dir)).await;
                let (members, stat, watch) = read?;
                self.watch = Some(watch);
                if self.seen != Some(stat.pzxid) {
                    self.seen = Some(stat.pzxid);
                    return Ok(members);
                }
                continue;
            };
            match tokio::time::timeout(budget.remaining(), watch).await {
                Err(_) => return Err(budget.timeout("waiting for a change of", dir)),
                Ok(Err(e)) if e.is_terminal() => return Err(e.into()),
                Ok(_) => {} // A change, or a lost connection: list again.
            }
        }
    }
}
