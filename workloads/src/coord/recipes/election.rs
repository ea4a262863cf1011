//! Leader election with ephemeral sequential candidates, without the herd effect.
//!
//! The notes' election (create one `leader` node; whoever fails watches it) wakes every
//! follower when the leader goes. Here each candidate creates `n-<guid>-<seq>` under the
//! election directory; the lowest leads, and each other candidate watches only the one
//! just ahead of it, so a departure wakes one successor. The leader's fencing token is
//! the czxid of its candidate node: later leaders have larger tokens.
//!
//! Leadership lasts as long as the leader's session. A leader that must not act on a
//! stale belief fences its actions with its token, or checks
//! [`Candidate::still_candidate`].

use super::queue::{self, Entry, Ticket};
use super::{retrying, Budget, Result};
use crate::coord::client::CoordClient;
use coord::api::{child_path, ErrorCode, Zxid};
use std::time::Duration;
use tokio::time::Instant;

pub(crate) const CANDIDATE_PREFIX: &str = "n-";
pub(crate) const CANDIDATE_PREFIXES: &[&str] = &[CANDIDATE_PREFIX];

/// An election held in a directory.
#[derive(Clone, Debug)]
pub struct Election {
    client: CoordClient,
    dir: String,
}

/// Who leads, as an observer sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leader {
    /// The leader's candidate node.
    pub path: String,
    /// What the leader put in its node (its address, its name).
    pub data: Vec<u8>,
    /// Its fencing token.
    pub token: Zxid,
    /// Its session.
    pub session: u64,
}

impl Election {
    pub fn new(client: CoordClient, dir: &str) -> Election {
        Election {
            client,
            dir: dir.to_string(),
        }
    }

    /// Enters the election with `data` (who this candidate is).
    pub async fn volunteer(&self, data: &[u8], timeout: Duration) -> Result<Candidate> {
        let deadline = Instant::now() + timeout;
        let ticket = Ticket::take(
            &self.client,
            &self.dir,
            CANDIDATE_PREFIX,
            CANDIDATE_PREFIXES,
            data,
            deadline,
        )
        .await?;
        Ok(Candidate {
            ticket: Some(ticket),
        })
    }

    /// The current leader, `None` if there are no candidates. Syncs first, so that it
    /// reflects every change committed before the call.
    pub async fn leader(&self, timeout: Duration) -> Result<Option<Leader>> {
        let deadline = Instant::now() + timeout;
        retrying(deadline, || self.client.sync(&self.dir)).await?;
        loop {
            let children = match retrying(deadline, || self.client.get_children(&self.dir)).await {
                Ok((children, _)) => children,
                Err(e) if e.code() == ErrorCode::NoNode => return Ok(None), // No election yet.
                Err(e) => return Err(e.into()),
            };
            let Some(first) = queue::entries(children, CANDIDATE_PREFIXES)
                .into_iter()
                .next()
            else {
                return Ok(None);
            };
            match self.describe(&first, deadline).await? {
                Some(leader) => return Ok(Some(leader)),
                None => continue, // It left between the two reads: look again.
            }
        }
    }

    async fn describe(&self, entry: &Entry, deadline: Instant) -> Result<Option<Leader>> {
        let path = child_path(&self.dir, &entry.name);
        match retrying(deadline, || self.client.get_data(&path)).await {
            Ok((data, stat)) => Ok(Some(Leader {
                path,
                data,
                token: stat.czxid,
                session: stat.ephemeral_owner,
            })),
            Err(e) if e.code() == ErrorCode::NoNode => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// A candidate in an election. Dropping it resigns in the background.
#[derive(Debug)]
pub struct Candidate {
    ticket: Option<Ticket>,
}

impl Candidate {
    fn ticket(&self) -> &Ticket {
        self.ticket.as_ref().expect("a candidate until it resigns")
    }

    /// Waits up to `timeout` until this candidate leads; returns its fencing token.
    /// On a timeout it stays a candidate and may wait again.
    pub async fn lead(&self, timeout: Duration) -> Result<Zxid> {
        self.ticket()
            .wait_turn(queue::predecessor, Budget::new(timeout))
            .await?;
        Ok(self.token())
    }

    /// The fencing token this candidate leads with: its node's czxid.
    pub fn token(&self) -> Zxid {
        self.ticket().node.stat.czxid
    }

    pub fn path(&self) -> &str {
        &self.ticket().node.path
    }

    /// Whether this candidate's node still exists, owned by its session (after a sync).
    pub async fn still_candidate(&self, timeout: Duration) -> Result<bool> {
        self.ticket().still_held(Instant::now() + timeout).await
    }

    /// Leaves the election; the next candidate takes over if this one led.
    pub async fn resign(mut self) -> Result<()> {
        let ticket = self.ticket.take().expect("a candidate until it resigns");
        let deadline = Instant::now() + ticket.client.options().op_timeout();
        ticket.withdraw(deadline).await
    }
}

impl Drop for Candidate {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            queue::withdraw_in_background(ticket);
        }
    }
}
