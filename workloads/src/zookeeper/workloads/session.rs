//! What the ZooKeeper workload clients share: a session opened on first use and replaced
//! once it is over, the persistent paths it made sure of, and how errors become Jepsen
//! outcomes. The ZooKeeper twin of the coord clients' `LazySession` and `Session`.

use crate::client::Outcome;
use crate::coord::workload::ClientContext;
use crate::zookeeper::{Client, Config, CreateMode, Error, ErrorCode};
use checkers::history::Value;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Longest a close of a forgotten session may take in the background; past it the
/// session is left to expire, as a dropped client's would be.
const CLOSE_TIMEOUT_MS: u64 = 2_000;

/// Longest a worker waits for a session before the operation fails: a client must not
/// outlive the runner's op timeout, and connecting never applies anything.
const MAX_CONNECT_MS: u64 = 3_000;

/// No session could be opened. Connecting applies nothing, so the operation that needed
/// the session certainly did not happen.
#[derive(Debug, thiserror::Error)]
#[error("no session: {0}")]
pub(crate) struct NoSession(pub Error);

/// A session on `servers` (tried in the order given), opened on first use and forgotten
/// when it ends, so that the next operation opens another.
pub(crate) struct LazySession {
    config: Config,
    client: Option<Arc<Client>>,
    /// Paths this session made sure exist (persistent, never deleted).
    ensured: Vec<String>,
}

impl LazySession {
    /// `connect_timeout_ms` bounds the whole connection attempt over all servers; each
    /// request waits at most `request_timeout_ms`.
    pub fn new(
        servers: &[SocketAddr],
        session_timeout_ms: u64,
        connect_timeout_ms: u64,
        request_timeout_ms: u64,
    ) -> LazySession {
        let servers: Vec<String> = servers.iter().map(SocketAddr::to_string).collect();
        // The client's connect timeout is per server; the budget is for all of them.
        let per_server_ms = (connect_timeout_ms / servers.len().max(1) as u64).max(1);
        let mut config = Config::new(&servers);
        config.session_timeout = Duration::from_millis(session_timeout_ms);
        config.connect_timeout = Duration::from_millis(per_server_ms);
        config.request_timeout = Duration::from_millis(request_timeout_ms.max(1));
        LazySession {
            config,
            client: None,
            ensured: Vec::new(),
        }
    }

    /// A worker's session as the coord `membership`, `sequential` and `watch` clients open
    /// theirs: on the worker's server first, then the others; requests wait the whole op
    /// timeout, connecting at most [`MAX_CONNECT_MS`] of it.
    pub fn for_worker(ctx: &ClientContext, session_timeout_ms: u64) -> LazySession {
        let mut servers = vec![ctx.node];
        servers.extend(ctx.nodes.iter().filter(|a| **a != ctx.node));
        let connect_ms = ctx.op_timeout_ms.min(MAX_CONNECT_MS);
        LazySession::new(&servers, session_timeout_ms, connect_ms, ctx.op_timeout_ms)
    }

    /// The current session's client, if one is open; connects nothing.
    pub fn current(&self) -> Option<&Arc<Client>> {
        self.client.as_ref()
    }

    pub fn request_timeout(&self) -> Duration {
        self.config.request_timeout
    }

    /// The current session's client, opening a session if there is none or it is over.
    pub async fn get(&mut self) -> Result<Arc<Client>, NoSession> {
        if let Some(c) = &self.client {
            if !c.is_ended() {
                return Ok(c.clone());
            }
            self.forget();
        }
        let c = Arc::new(
            Client::connect(self.config.clone())
                .await
                .map_err(NoSession)?,
        );
        self.client = Some(c.clone());
        Ok(c)
    }

    /// Whether the session is known to be over: what a client learns without asking.
    pub fn known_lost(&self) -> bool {
        self.client.as_ref().is_some_and(|c| c.is_ended())
    }

    /// Forgets the session if `e` says it is over; true if it did.
    pub fn ended_by(&mut self, e: &Error) -> bool {
        if e.is_terminal() {
            self.forget();
            return true;
        }
        false
    }

    /// Drops the session: closed in the background if nothing else holds it (so that its
    /// ephemerals go at once, as the coord client's close on drop does), otherwise left to
    /// expire when the last holder lets go.
    pub fn forget(&mut self) {
        self.ensured.clear();
        let Some(c) = self.client.take() else { return };
        let Ok(client) = Arc::try_unwrap(c) else {
            return;
        };
        if client.is_ended() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let limit = Duration::from_millis(CLOSE_TIMEOUT_MS);
                let _ = tokio::time::timeout(limit, client.close()).await;
            });
        }
    }

    /// Hands the session over to the caller (to close it itself); the next operation
    /// opens another.
    pub fn take(&mut self) -> Option<Arc<Client>> {
        self.ensured.clear();
        self.client.take()
    }

    /// Makes sure the persistent node `path` exists, once per session.
    pub async fn ensure(&mut self, path: &str, timeout: Duration) -> Result<(), String> {
        if self.ensured.iter().any(|p| p == path) {
            return Ok(());
        }
        let c = self.get().await.map_err(|e| e.to_string())?;
        ensure_path(&c, path, Instant::now() + timeout)
            .await
            .map_err(|e| e.to_string())?;
        self.ensured.push(path.to_string());
        Ok(())
    }
}

/// The outcome of a write that failed with `e`: `fail` only if it certainly did not
/// happen, `info` otherwise.
pub(crate) fn write_failed(value: Value, e: &Error) -> Outcome {
    if e.is_definite() {
        Outcome::fail(value, e.to_string())
    } else {
        Outcome::info(value, e.to_string())
    }
}

/// Connecting applies nothing: an operation without a session certainly did not happen.
pub(crate) fn no_session(value: Value, e: &NoSession) -> Outcome {
    Outcome::fail(value, e.to_string())
}

/// Pause between retries of an operation that failed transiently, doubling up to the max.
const RETRY_MIN_MS: u64 = 10;
const RETRY_MAX_MS: u64 = 200;

/// Repeats `op` while it fails transiently and the deadline allows. Only for operations
/// that are safe to repeat: reads, and writes whose repetition the caller makes harmless.
pub(crate) async fn retrying<T, F, Fut>(deadline: Instant, mut op: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
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
pub(crate) async fn ensure_path(
    client: &Client,
    path: &str,
    deadline: Instant,
) -> Result<(), Error> {
    if path == "/" || retrying(deadline, || client.exists(path)).await?.is_some() {
        return Ok(());
    }
    let ends = path.match_indices('/').skip(1).map(|(i, _)| i);
    for end in ends.chain(std::iter::once(path.len())) {
        let prefix = &path[..end];
        retrying(deadline, || async {
            match client.create(prefix, b"", CreateMode::Persistent).await {
                Err(e) if e.code() == ErrorCode::NodeExists => Ok(()),
                other => other.map(|_| ()),
            }
        })
        .await?;
    }
    Ok(())
}

/// A zxid as a fencing token or a history's number. ZooKeeper's zxids are
/// `epoch << 32 | counter` with both parts counting up from 0, so never negative; a
/// negative one is a server speaking something else than ZooKeeper's protocol.
pub(crate) fn zxid_u64(zxid: i64, server: Option<String>) -> Result<u64, Error> {
    u64::try_from(zxid).map_err(|_| Error::Protocol {
        server: server.unwrap_or_default(),
        why: format!("negative zxid {zxid}"),
    })
}

/// A session id as histories record it: its 64 bits read unsigned, as coord's are. The
/// same number names the session everywhere (its nodes' `ephemeralOwner` included), and
/// ZooKeeper's ids, whose top byte is the server's id, stay what they are.
pub(crate) fn session_u64(session: i64) -> u64 {
    session as u64
}
