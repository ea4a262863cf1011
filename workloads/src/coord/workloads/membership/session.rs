//! One coord session per worker, opened on first use and replaced after it ends: what the
//! `membership`, `sequential` and `watch` clients run on ([`super::super::znodes`]).

use crate::coord::client::{ConnectOptions, CoordClient, CoordError};
use crate::coord::recipes::ensure_path;
use crate::coord::workload::ClientContext;
use coord::api::SessionId;
use std::time::Duration;
use tokio::time::Instant;

/// Longest a worker waits for a session before the operation fails: a client must not
/// outlive the runner's op timeout, and connecting never applies anything.
const MAX_CONNECT_MS: u64 = 3_000;

/// A worker's session: `None` until connected, dropped once the server says it ended.
pub(in crate::coord::workloads) struct Session {
    ctx: ClientContext,
    session_timeout_ms: u64,
    client: Option<CoordClient>,
    /// Paths this session's client made sure exist (persistent, never deleted).
    ensured: Vec<String>,
}

impl Session {
    pub fn new(ctx: ClientContext, session_timeout_ms: u64) -> Session {
        Session {
            ctx,
            session_timeout_ms,
            client: None,
            ensured: Vec::new(),
        }
    }

    pub fn ctx(&self) -> &ClientContext {
        &self.ctx
    }

    /// The current client, connecting to the worker's node first (then the others).
    pub async fn client(&mut self) -> Result<CoordClient, CoordError> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let mut servers = vec![self.ctx.node];
        servers.extend(self.ctx.nodes.iter().filter(|a| **a != self.ctx.node));
        let opts = ConnectOptions {
            session_timeout_ms: self.session_timeout_ms,
            connect_timeout_ms: self.ctx.op_timeout_ms.min(MAX_CONNECT_MS),
            op_timeout_ms: self.ctx.op_timeout_ms,
            ..ConnectOptions::default()
        };
        let c = CoordClient::connect(servers, opts).await?;
        self.client = Some(c.clone());
        Ok(c)
    }

    /// The current client, if connected; connects nothing.
    pub fn current(&self) -> Option<CoordClient> {
        self.client.clone()
    }

    /// The session timeout this session asks for.
    pub fn session_timeout_ms(&self) -> u64 {
        self.session_timeout_ms
    }

    /// The session id, if connected.
    pub fn id(&self) -> Option<SessionId> {
        self.client.as_ref().map(CoordClient::session_id)
    }

    /// Makes sure the persistent node `path` exists, once per session.
    pub async fn ensure(&mut self, path: &str) -> Result<(), String> {
        if self.ensured.iter().any(|p| p == path) {
            return Ok(());
        }
        let c = self.client().await.map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_millis(self.ctx.op_timeout_ms);
        ensure_path(&c, path, deadline)
            .await
            .map_err(|e| e.to_string())?;
        self.ensured.push(path.to_string());
        Ok(())
    }

    /// Forgets the client if `e` says its session is over, so that the next op opens a
    /// new one; true if it did.
    pub fn ended_by(&mut self, e: &CoordError) -> bool {
        if e.is_terminal() {
            self.drop_client();
            return true;
        }
        false
    }

    /// Drops the client: a connected one closes its session, others leave it to expire.
    pub fn drop_client(&mut self) {
        self.client = None;
        self.ensured.clear();
    }
}

/// Hand-written histories for the checkers' tests.
#[cfg(test)]
pub(in crate::coord::workloads) mod test_history {
    use checkers::history::{detect::Format, History, Op, OpType, Process, Value};

    /// One event: type, process (`None`: the nemesis), f, value, time in ms.
    pub type Event = (OpType, Option<u64>, &'static str, Value, u64);

    pub fn history(events: Vec<Event>) -> History {
        let ops: Vec<Op> = events
            .into_iter()
            .enumerate()
            .map(|(i, (t, p, f, value, ms))| {
                let process = p.map_or_else(Process::nemesis, Process::Client);
                let mut op = Op::new(i as u64, t, process, f, value);
                op.time = Some(ms * 1_000_000);
                op
            })
            .collect();
        let lines = (1..=ops.len()).collect();
        History::new("test", Format::JsonLines, ops, lines).expect("a well-formed history")
    }
}
