//! The watch workload on Apache ZooKeeper: coord's watch client
//! ([`crate::coord::workloads::watch`]) over a ZooKeeper session, judged by the same
//! check. ZooKeeper 3.8 sends notifications with zxid -1, so they are recorded with a
//! null zxid and the check holds them to every rule but zxid order.

use super::session::{session_u64, LazySession, NoSession};
use crate::coord::workload::ClientContext;
use crate::coord::workloads::watch::client::{Resolution, WatchClient, WatchStore};
use crate::coord::workloads::watch::SESSION_TIMEOUT_MS;
use crate::zookeeper::{EventType, Watch};
use std::time::Duration;

/// The watch client for one worker, on a session opened at its server first.
pub fn client(ctx: &ClientContext) -> WatchClient<ZkWatchStore> {
    WatchClient::new(ZkWatchStore {
        worker: ctx.worker,
        session: LazySession::for_worker(ctx, SESSION_TIMEOUT_MS),
        ensure_timeout: Duration::from_millis(ctx.op_timeout_ms),
    })
}

/// A worker's ZooKeeper session as the watch client's store.
pub struct ZkWatchStore {
    worker: u32,
    session: LazySession,
    ensure_timeout: Duration,
}

/// Why a read or write failed: no session (nothing was sent), or ZooKeeper's error.
#[derive(Debug, thiserror::Error)]
pub enum ZkWatchError {
    #[error(transparent)]
    NoSession(#[from] NoSession),
    #[error(transparent)]
    Zk(#[from] crate::zookeeper::Error),
}

impl WatchStore for ZkWatchStore {
    type Watch = Watch;
    type Error = ZkWatchError;

    fn worker(&self) -> u32 {
        self.worker
    }

    fn session_id(&self) -> Option<u64> {
        self.session.current().map(|c| session_u64(c.session_id()))
    }

    async fn ensure(&mut self, path: &str) -> Result<(), String> {
        self.session.ensure(path, self.ensure_timeout).await
    }

    async fn read(
        &mut self,
        path: &str,
        watch: bool,
    ) -> Result<(u64, Option<Watch>), ZkWatchError> {
        let c = self.session.get().await?;
        let (stat, watch) = if watch {
            let (_, stat, w) = c.get_data_watch(path).await?;
            (stat, Some(w))
        } else {
            (c.get_data(path).await?.1, None)
        };
        Ok((mzxid(stat.mzxid, &c)?, watch))
    }

    async fn write(&mut self, path: &str, data: &[u8]) -> Result<u64, ZkWatchError> {
        let c = self.session.get().await?;
        let stat = c.set_data(path, data, -1).await?;
        mzxid(stat.mzxid, &c)
    }

    fn ended_by(&mut self, e: &ZkWatchError) {
        if let ZkWatchError::Zk(e) = e {
            self.session.ended_by(e);
        }
    }

    fn is_definite(e: &ZkWatchError) -> bool {
        match e {
            ZkWatchError::NoSession(_) => true,
            ZkWatchError::Zk(e) => e.is_definite(),
        }
    }

    /// A session event (expired, closed) ends a data watch without a change; so does a
    /// client dropped with the watch pending.
    fn resolved(watch: &mut Watch) -> Option<Resolution> {
        Some(match watch.try_resolved()? {
            Ok(event) if event.kind != EventType::None => Resolution::Fired {
                zxid: u64::try_from(event.zxid).ok(),
            },
            _ => Resolution::Lost,
        })
    }
}

fn mzxid(zxid: i64, c: &crate::zookeeper::Client) -> Result<u64, ZkWatchError> {
    Ok(super::session::zxid_u64(zxid, c.server())?)
}
