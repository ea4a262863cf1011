//! A worker's session on a tree of znodes, as the coordination workloads' clients use it:
//! coord's own client and Apache ZooKeeper's both implement [`Znodes`], so that one client
//! per workload records the same ops on either system and one checker judges them.
//!
//! Every operation connects first if the session is gone; a workload makes sure of its
//! persistent nodes with [`Znodes::ensure`] before anything else, so that a failure to
//! connect surfaces there, where it certainly applied nothing.

use super::membership::session::Session;
use crate::coord::client::{CoordError, Watch};
use crate::zookeeper::CreateMode;
use coord::api::{Acl, CreateFlags, ErrorCode};
use std::future::Future;

/// How a watch ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resolution {
    /// A notification of a change, with its zxid when the store says it (ZooKeeper 3.8
    /// sends -1, recorded as unknown).
    Fired { zxid: Option<u64> },
    /// Gone with its connection or session, without a notification.
    Lost,
}

/// What a read of a node's data gave (the data itself: no client has needed it yet).
pub(crate) struct Read<W> {
    pub mzxid: u64,
    /// The data watch the read set, if asked to.
    pub watch: Option<W>,
}

/// A worker's session on a store of znodes.
pub(crate) trait Znodes: Send + 'static {
    type Watch: Send + 'static;
    type Error: std::fmt::Display + Send + Sync;

    fn worker(&self) -> u32;
    /// The session's id, once connected, as histories record it.
    fn session_id(&self) -> Option<u64>;
    /// Connects if no live session is open; the session's id.
    fn connect(&mut self) -> impl Future<Output = Result<u64, String>> + Send;
    /// The session timeout in force: as the store granted it where it says, else as asked.
    fn session_timeout_ms(&self) -> u64;
    /// Ends the session on purpose; the next op opens another. An error leaves the session
    /// to expire.
    fn close(&mut self) -> impl Future<Output = Result<(), String>> + Send;
    /// Connects if needed and makes sure the persistent node `path` (and its ancestors)
    /// exists, once per session.
    fn ensure(&mut self, path: &str) -> impl Future<Output = Result<(), String>> + Send;
    /// Creates `path` (a prefix, for sequential modes); the path created.
    fn create(
        &mut self,
        path: &str,
        data: &[u8],
        mode: CreateMode,
    ) -> impl Future<Output = Result<String, Self::Error>> + Send;
    /// Deletes `path` at any version.
    fn delete(&mut self, path: &str) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// `path`'s mzxid, and a data watch on it if `watch`.
    fn get_data(
        &mut self,
        path: &str,
        watch: bool,
    ) -> impl Future<Output = Result<Read<Self::Watch>, Self::Error>> + Send;
    /// Sets `path`'s data at any version; the mzxid it got.
    fn set_data(
        &mut self,
        path: &str,
        data: &[u8],
    ) -> impl Future<Output = Result<u64, Self::Error>> + Send;
    /// `sync` on `path`, then its children, sorted as the store lists them.
    fn synced_children(
        &mut self,
        path: &str,
    ) -> impl Future<Output = Result<Vec<String>, Self::Error>> + Send;
    /// Forgets the session if `e` says it is over, so that the next op opens another;
    /// whether it did.
    fn ended_by(&mut self, e: &Self::Error) -> bool;
    /// Whether the write that failed with `e` certainly did not happen.
    fn is_definite(e: &Self::Error) -> bool;
    /// Whether `e` says the node to create is there already.
    fn node_exists(e: &Self::Error) -> bool;
    /// How `watch` ended, if it has.
    fn resolved(watch: &mut Self::Watch) -> Option<Resolution>;
}

fn coord_flags(mode: CreateMode) -> CreateFlags {
    match mode {
        CreateMode::Persistent => CreateFlags::PERSISTENT,
        CreateMode::Ephemeral => CreateFlags::EPHEMERAL,
        CreateMode::PersistentSequential => CreateFlags::SEQUENCE,
        CreateMode::EphemeralSequential => CreateFlags::EPHEMERAL_SEQUENCE,
    }
}

/// Coord's session.
impl Znodes for Session {
    type Watch = Watch;
    type Error = CoordError;

    fn worker(&self) -> u32 {
        self.ctx().worker
    }

    fn session_id(&self) -> Option<u64> {
        self.id()
    }

    async fn connect(&mut self) -> Result<u64, String> {
        let c = self.client().await.map_err(|e| e.to_string())?;
        Ok(c.session_id())
    }

    fn session_timeout_ms(&self) -> u64 {
        Session::session_timeout_ms(self)
    }

    async fn close(&mut self) -> Result<(), String> {
        let Some(c) = self.current() else {
            return Ok(());
        };
        self.drop_client();
        c.close().await.map_err(|e| e.to_string())
    }

    async fn ensure(&mut self, path: &str) -> Result<(), String> {
        Session::ensure(self, path).await
    }

    async fn create(
        &mut self,
        path: &str,
        data: &[u8],
        mode: CreateMode,
    ) -> Result<String, CoordError> {
        let c = self.client().await?;
        let (created, _) = c
            .create(path, data, &Acl::open(), coord_flags(mode))
            .await?;
        Ok(created)
    }

    async fn delete(&mut self, path: &str) -> Result<(), CoordError> {
        self.client().await?.delete(path, -1).await
    }

    async fn get_data(&mut self, path: &str, watch: bool) -> Result<Read<Watch>, CoordError> {
        let c = self.client().await?;
        let (stat, watch) = if watch {
            let (_, stat, w) = c.get_data_watch(path).await?;
            (stat, Some(w))
        } else {
            let (_, stat) = c.get_data(path).await?;
            (stat, None)
        };
        Ok(Read {
            mzxid: stat.mzxid,
            watch,
        })
    }

    async fn set_data(&mut self, path: &str, data: &[u8]) -> Result<u64, CoordError> {
        let c = self.client().await?;
        Ok(c.set_data(path, data, -1).await?.mzxid)
    }

    async fn synced_children(&mut self, path: &str) -> Result<Vec<String>, CoordError> {
        let c = self.client().await?;
        c.sync(path).await?;
        Ok(c.get_children(path).await?.0)
    }

    fn ended_by(&mut self, e: &CoordError) -> bool {
        Session::ended_by(self, e)
    }

    fn is_definite(e: &CoordError) -> bool {
        e.is_definite()
    }

    fn node_exists(e: &CoordError) -> bool {
        e.code() == ErrorCode::NodeExists
    }

    fn resolved(watch: &mut Watch) -> Option<Resolution> {
        Some(match watch.try_fired()? {
            Ok(event) => Resolution::Fired {
                zxid: Some(event.zxid),
            },
            Err(_) => Resolution::Lost,
        })
    }
}
