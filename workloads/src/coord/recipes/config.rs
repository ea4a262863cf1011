//! Configuration: workers read a configuration znode with a watch and read it again
//! each time the watch fires, as on the notes' slide; administrators publish with
//! setData.
//!
//! Watches are one-shot and name no value, so changes made between a notification and
//! the re-read are seen together, as their latest value: a watcher sees every *new*
//! value, in order, and never misses that one happened. Each value comes with its Stat,
//! whose mzxid increases with every change.

use super::{retrying, Budget, RecipeError, Result};
use crate::coord::client::{CoordClient, Watch};
use coord::api::{Acl, CreateFlags, ErrorCode, Stat};
use std::time::Duration;
use tokio::time::Instant;

/// A configuration value: the data and Stat, or `None` while the node does not exist.
pub type Value = Option<(Vec<u8>, Stat)>;

/// Publishes `data` at `path`, creating the node (not its parents) if it is missing.
/// Retries after a lost answer: writing the same value twice is harmless.
pub async fn publish(
    client: &CoordClient,
    path: &str,
    data: &[u8],
    timeout: Duration,
) -> Result<Stat> {
    let deadline = Instant::now() + timeout;
    loop {
        match retrying(deadline, || client.set_data(path, data, -1)).await {
            Err(e) if e.code() == ErrorCode::NoNode => {}
            other => return other.map_err(RecipeError::from),
        }
        let acl = Acl::open();
        let created = retrying(deadline, || {
            client.create(path, data, &acl, CreateFlags::PERSISTENT)
        });
        match created.await {
            Ok((_, stat)) => return Ok(stat),
            Err(e) if e.code() == ErrorCode::NodeExists => {} // Created meanwhile: set it.
            Err(e) => return Err(e.into()),
        }
    }
}

/// Follows a configuration znode.
#[derive(Debug)]
pub struct ConfigWatch {
    client: CoordClient,
    path: String,
    /// The version last returned: `None` before the first, then the mzxid or absence.
    seen: Option<Option<u64>>,
    watch: Option<Watch>,
}

impl ConfigWatch {
    pub fn new(client: CoordClient, path: &str) -> ConfigWatch {
        ConfigWatch {
            client,
            path: path.to_string(),
            seen: None,
            watch: None,
        }
    }

    /// The first call returns the current value; each later call waits up to `timeout`
    /// for a newer one.
    pub async fn next(&mut self, timeout: Duration) -> Result<Value> {
        let budget = Budget::new(timeout);
        loop {
            let Some(watch) = self.watch.take() else {
                let (value, watch) = self.read(budget.deadline).await?;
                self.watch = Some(watch);
                let version = value.as_ref().map(|(_, stat)| stat.mzxid);
                if self.seen != Some(version) {
                    self.seen = Some(version);
                    return Ok(value);
                }
                continue;
            };
            match tokio::time::timeout(budget.remaining(), watch).await {
                Err(_) => return Err(budget.timeout("waiting for a change of", &self.path)),
                Ok(Err(e)) if e.is_terminal() => return Err(e.into()),
                Ok(_) => {} // A change, or a lost connection: read again.
            }
        }
    }

    /// Reads the value and leaves a watch for its next change (or its creation).
    async fn read(&self, deadline: Instant) -> Result<(Value, Watch)> {
        loop {
            match retrying(deadline, || self.client.get_data_watch(&self.path)).await {
                Ok((data, stat, watch)) => return Ok((Some((data, stat)), watch)),
                Err(e) if e.code() == ErrorCode::NoNode => {}
                Err(e) => return Err(e.into()),
            }
            // Missing: watch for its creation (exists sets a watch on a missing node).
            match retrying(deadline, || self.client.exists_watch(&self.path)).await? {
                (None, watch) => return Ok((None, watch)),
                (Some(_), _) => continue, // Created meanwhile: read it.
            }
        }
    }
}
