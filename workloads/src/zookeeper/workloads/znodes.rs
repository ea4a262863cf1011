//! A worker's ZooKeeper session as the shared workload clients' [`Znodes`]: the coord
//! workloads' clients run on it unchanged, and record what they record on coord.
//! ZooKeeper 3.8 sends notifications with zxid -1, so they resolve with no zxid.

use super::session::{session_u64, zxid_u64, LazySession, NoSession};
use crate::coord::workload::ClientContext;
use crate::coord::workloads::znodes::{Read, Resolution, Znodes};
use crate::zookeeper::{Client, CreateMode, Error, EventType, Watch};
use std::time::Duration;

/// A worker's session, opened at its own server first, and its op timeout.
pub struct ZkSession {
    worker: u32,
    session: LazySession,
    ensure_timeout: Duration,
}

impl ZkSession {
    pub fn for_worker(ctx: &ClientContext, session_timeout_ms: u64) -> ZkSession {
        ZkSession {
            worker: ctx.worker,
            session: LazySession::for_worker(ctx, session_timeout_ms),
            ensure_timeout: Duration::from_millis(ctx.op_timeout_ms),
        }
    }
}

/// Why an op failed: no session (nothing was sent), or ZooKeeper's error.
#[derive(Debug, thiserror::Error)]
pub enum ZkSessionError {
    #[error(transparent)]
    NoSession(#[from] NoSession),
    #[error(transparent)]
    Zk(#[from] Error),
}

impl Znodes for ZkSession {
    type Watch = Watch;
    type Error = ZkSessionError;

    fn worker(&self) -> u32 {
        self.worker
    }

    fn session_id(&self) -> Option<u64> {
        self.session.current().map(|c| session_u64(c.session_id()))
    }

    async fn ensure(&mut self, path: &str) -> Result<(), String> {
        self.session.ensure(path, self.ensure_timeout).await
    }

    async fn create(
        &mut self,
        path: &str,
        data: &[u8],
        mode: CreateMode,
    ) -> Result<String, ZkSessionError> {
        let c = self.session.get().await?;
        Ok(c.create(path, data, mode).await?.0)
    }

    async fn get_data(&mut self, path: &str, watch: bool) -> Result<Read<Watch>, ZkSessionError> {
        let c = self.session.get().await?;
        let (stat, watch) = if watch {
            let (_, stat, w) = c.get_data_watch(path).await?;
            (stat, Some(w))
        } else {
            let (_, stat) = c.get_data(path).await?;
            (stat, None)
        };
        Ok(Read {
            mzxid: mzxid(stat.mzxid, &c)?,
            watch,
        })
    }

    async fn set_data(&mut self, path: &str, data: &[u8]) -> Result<u64, ZkSessionError> {
        let c = self.session.get().await?;
        let stat = c.set_data(path, data, -1).await?;
        mzxid(stat.mzxid, &c)
    }

    async fn synced_children(&mut self, path: &str) -> Result<Vec<String>, ZkSessionError> {
        let c = self.session.get().await?;
        c.sync(path).await?;
        Ok(c.get_children(path).await?.0)
    }

    fn ended_by(&mut self, e: &ZkSessionError) {
        if let ZkSessionError::Zk(e) = e {
            self.session.ended_by(e);
        }
    }

    fn is_definite(e: &ZkSessionError) -> bool {
        match e {
            ZkSessionError::NoSession(_) => true,
            ZkSessionError::Zk(e) => e.is_definite(),
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

fn mzxid(zxid: i64, c: &Client) -> Result<u64, ZkSessionError> {
    Ok(zxid_u64(zxid, c.server())?)
}
