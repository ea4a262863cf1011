//! A worker's ZooKeeper session as the shared workload clients' [`Znodes`]: the coord
//! workloads' clients run on it unchanged, and record what they record on coord.
//! ZooKeeper 3.8 sends notifications with zxid -1, so they resolve with no zxid.

use super::session::{session_u64, zxid_u64, LazySession, NoSession};
use crate::coord::workload::ClientContext;
use crate::coord::workloads::znodes::{Read, Resolution, Znodes};
use crate::zookeeper::{Client, CreateMode, Error, ErrorCode, EventType, Watch};
use std::sync::Arc;
use std::time::Duration;

/// A worker's session, opened at its own server first; its context names the worker, its
/// server and its op timeout.
pub struct ZkSession {
    pub(super) ctx: ClientContext,
    pub(super) session: LazySession,
    session_timeout_ms: u64,
}

impl ZkSession {
    pub fn for_worker(ctx: &ClientContext, session_timeout_ms: u64) -> ZkSession {
        ZkSession {
            ctx: ctx.clone(),
            session: LazySession::for_worker(ctx, session_timeout_ms),
            session_timeout_ms,
        }
    }

    /// The session ops run on: the current one even if it has ended, so that an op never
    /// runs on another session than the one its caller named (a member's name, a watch's
    /// session); the op then fails and `ended_by` forgets it. Only `connect` and `ensure`
    /// open a new session.
    async fn client(&mut self) -> Result<Arc<Client>, ZkSessionError> {
        match self.session.current() {
            Some(c) if c.is_ended() => Err(ZkSessionError::Ended(session_u64(c.session_id()))),
            Some(c) => Ok(c.clone()),
            None => Ok(self.session.get().await?),
        }
    }
}

/// Why an op failed: no session or an ended one (nothing was sent), or ZooKeeper's error.
#[derive(Debug, thiserror::Error)]
pub enum ZkSessionError {
    #[error(transparent)]
    NoSession(#[from] NoSession),
    #[error(transparent)]
    Zk(#[from] Error),
    /// The session the op was for had ended before it was sent.
    #[error("session {0:#x} has ended")]
    Ended(u64),
}

impl Znodes for ZkSession {
    type Watch = Watch;
    type Error = ZkSessionError;

    fn worker(&self) -> u32 {
        self.ctx.worker
    }

    fn session_id(&self) -> Option<u64> {
        self.session.current().map(|c| session_u64(c.session_id()))
    }

    async fn connect(&mut self) -> Result<u64, String> {
        let c = self.session.get().await.map_err(|e| e.to_string())?;
        Ok(session_u64(c.session_id()))
    }

    /// As granted: ZooKeeper clamps what a client asks for to its tick's bounds.
    fn session_timeout_ms(&self) -> u64 {
        self.session.current().map_or(self.session_timeout_ms, |c| {
            c.session_timeout().as_millis() as u64
        })
    }

    async fn close(&mut self) -> Result<(), String> {
        let Some(c) = self.session.take() else {
            return Ok(());
        };
        // Ours must be the last handle: the membership registry holds sessions weakly.
        let c = Arc::try_unwrap(c).map_err(|_| "the session is still shared: left to expire")?;
        c.close().await.map_err(|e| e.to_string())
    }

    async fn ensure(&mut self, path: &str) -> Result<(), String> {
        let timeout = Duration::from_millis(self.ctx.op_timeout_ms);
        self.session.ensure(path, timeout).await
    }

    async fn create(
        &mut self,
        path: &str,
        data: &[u8],
        mode: CreateMode,
    ) -> Result<String, ZkSessionError> {
        let c = self.client().await?;
        Ok(c.create(path, data, mode).await?.0)
    }

    async fn delete(&mut self, path: &str) -> Result<(), ZkSessionError> {
        let c = self.client().await?;
        Ok(c.delete(path, -1).await?)
    }

    async fn get_data(&mut self, path: &str, watch: bool) -> Result<Read<Watch>, ZkSessionError> {
        let c = self.client().await?;
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
        let c = self.client().await?;
        let stat = c.set_data(path, data, -1).await?;
        mzxid(stat.mzxid, &c)
    }

    async fn synced_children(&mut self, path: &str) -> Result<Vec<String>, ZkSessionError> {
        let c = self.client().await?;
        c.sync(path).await?;
        Ok(c.get_children(path).await?.0)
    }

    fn ended_by(&mut self, e: &ZkSessionError) -> bool {
        match e {
            ZkSessionError::Zk(e) => self.session.ended_by(e),
            ZkSessionError::Ended(_) => {
                self.session.forget();
                true
            }
            ZkSessionError::NoSession(_) => false,
        }
    }

    fn is_definite(e: &ZkSessionError) -> bool {
        match e {
            ZkSessionError::NoSession(_) | ZkSessionError::Ended(_) => true,
            ZkSessionError::Zk(e) => e.is_definite(),
        }
    }

    fn node_exists(e: &ZkSessionError) -> bool {
        matches!(e, ZkSessionError::Zk(e) if e.code() == ErrorCode::NodeExists)
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
