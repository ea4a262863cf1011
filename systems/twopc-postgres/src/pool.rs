//! A bounded set of sessions with the shard's database. A step takes one for its duration
//! ([`Lease`]); a session the server closed (a crash, a kill) is dropped rather than
//! returned, and the next step opens a fresh one.

use crate::shard::{self, ShardConfig, ShardError};
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::Client;

pub struct Pool {
    cfg: ShardConfig,
    idle: Arc<Mutex<Vec<Client>>>,
    permits: Arc<Semaphore>,
    /// How long a step waits for a free session before giving up (a prepare then votes no).
    wait: Duration,
}

/// A session, returned to the pool when dropped.
pub struct Lease {
    client: Option<Client>,
    idle: Arc<Mutex<Vec<Client>>>,
    _permit: OwnedSemaphorePermit,
}

impl Deref for Lease {
    type Target = Client;

    fn deref(&self) -> &Client {
        self.client.as_ref().expect("held until dropped")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(c) = self.client.take().filter(|c| !c.is_closed()) {
            self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(c);
        }
    }
}

impl Pool {
    /// At most `max_sessions` sessions at once.
    pub fn new(cfg: ShardConfig, max_sessions: usize, wait: Duration) -> Pool {
        assert!(max_sessions > 0, "a pool needs a session");
        Pool {
            cfg,
            idle: Arc::new(Mutex::new(Vec::new())),
            permits: Arc::new(Semaphore::new(max_sessions)),
            wait,
        }
    }

    pub async fn get(&self) -> Result<Lease, ShardError> {
        let permit = tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| {
                ShardError::Sql(format!(
                    "busy: no database session free within {} ms",
                    self.wait.as_millis()
                ))
            })?
            .expect("the semaphore is never closed");
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            idle.retain(|c| !c.is_closed());
            idle.pop()
        };
        let client = match reused {
            Some(c) => c,
            None => shard::connect(&self.cfg).await?,
        };
        Ok(Lease {
            client: Some(client),
            idle: self.idle.clone(),
            _permit: permit,
        })
    }
}
