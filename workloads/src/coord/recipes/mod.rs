//! The coordination recipes of the ZooKeeper notes, built on [`CoordClient`]: each is a
//! few reads, writes and watches, and each copes with the two things that make them hard.
//!
//! - **Connection loss.** A write in flight when a connection breaks may or may not have
//!   been applied. Sequential creates are made *protected* (as ZooKeeper's and Curator's
//!   are): the name carries the session id and a per-create nonce, so that after a loss
//!   the recipe lists the directory and finds its own node instead of creating a second
//!   one ([`protected`]). Reads are simply repeated; deletes of one's own nodes treat
//!   `NoNode` as done.
//! - **The herd effect.** Waiters watch only the node just ahead of them (the lock, the
//!   election) or the node that blocks them (the shared lock), so one departure wakes one
//!   waiter, not all of them ([`queue`]).
//!
//! Every wait takes a timeout; a recipe that gives up withdraws its node.
//!
//! - [`config`]: watch a configuration znode and get each new value.
//! - [`membership`]: ephemeral member nodes, listed with a watch.
//! - [`election`]: ephemeral sequential candidates; the lowest leads, with its node's
//!   czxid as fencing token.
//! - [`lock`]: an exclusive lock without the herd effect, with a fencing token.
//! - [`rwlock`]: the shared lock of the notes: `s-` readers, `x-` writers.
//! - [`barrier`]: the double barrier (enter when N have arrived, leave when all have).

pub mod barrier;
pub mod config;
pub mod election;
pub mod lock;
pub mod membership;
pub mod protected;
pub(crate) mod queue;
pub mod rwlock;

use super::client::{CoordClient, CoordError};
use coord::api::{Acl, CreateFlags, ErrorCode};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// Why a recipe did not complete.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error(transparent)]
    Coord(#[from] CoordError),
    #[error("{what} {path}: gave up after {waited_ms} ms")]
    Timeout {
        what: &'static str,
        path: String,
        waited_ms: u64,
    },
    /// The recipe's own node is gone: its session expired, or someone deleted it. A lock
    /// or leadership held through it is lost.
    #[error("{path} vanished: its session lost it (expired) or another client deleted it")]
    Lost { path: String },
    /// A node of this name exists and belongs to another session.
    #[error("{path} is taken by session {owner:#x}")]
    Taken { path: String, owner: u64 },
    /// The recipe gave up (`gave_up`: waiting, or a create whose answer was lost), and
    /// withdrawing or finding its node failed: the node may still be in the queue, where it
    /// blocks everyone behind it for as long as its session lives. Its outcome is unknown,
    /// and the caller must end the session.
    #[error("{gave_up}; withdrawing or finding {path} failed too ({why}), so it may remain")]
    Stranded {
        gave_up: String,
        path: String,
        why: String,
    },
}

pub type Result<T> = std::result::Result<T, RecipeError>;

/// Pause between retries of an operation that failed transiently, doubling up to the max.
const RETRY_MIN_MS: u64 = 10;
const RETRY_MAX_MS: u64 = 200;

/// Repeats `op` while it fails transiently (connection loss, timeout, busy) and the
/// deadline allows. Only for operations that are safe to repeat: reads, and writes whose
/// repetition the caller makes harmless.
pub(crate) async fn retrying<T, F, Fut>(
    deadline: Instant,
    mut op: F,
) -> std::result::Result<T, CoordError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, CoordError>>,
{
    let mut pause = Duration::from_millis(RETRY_MIN_MS);
    loop {
        match op().await {
            Err(e) if e.is_transient() && Instant::now() + pause < deadline => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(RETRY_MAX_MS));
            }
            result => return result,
        }
    }
}

/// Creates `path` and its missing ancestors as empty persistent nodes.
pub async fn ensure_path(client: &CoordClient, path: &str, deadline: Instant) -> Result<()> {
    if path == "/" || retrying(deadline, || client.exists(path)).await?.is_some() {
        return Ok(());
    }
    let ends = path.match_indices('/').skip(1).map(|(i, _)| i);
    for end in ends.chain(std::iter::once(path.len())) {
        let prefix = &path[..end];
        let created = retrying(deadline, || async {
            match client
                .create(prefix, b"", &Acl::open(), CreateFlags::PERSISTENT)
                .await
            {
                Err(e) if e.code() == ErrorCode::NodeExists => Ok(()),
                other => other.map(|_| ()),
            }
        });
        created.await?;
    }
    Ok(())
}

/// The deadline `timeout` from now, and a way to report missing it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Budget {
    pub started: Instant,
    pub deadline: Instant,
}

impl Budget {
    pub fn new(timeout: Duration) -> Budget {
        let started = Instant::now();
        Budget {
            started,
            deadline: started + timeout,
        }
    }

    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    pub fn timeout(&self, what: &'static str, path: &str) -> RecipeError {
        RecipeError::Timeout {
            what,
            path: path.to_string(),
            waited_ms: self.started.elapsed().as_millis() as u64,
        }
    }
}
