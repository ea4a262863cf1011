//! What the lock and election clients share: a lazily opened session, the mapping of
//! recipe errors to Jepsen outcomes, and the bookkeeping that notices an operation the
//! runner abandoned (its future dropped at the runner's timeout, recorded `info`).

use crate::client::Outcome;
use crate::coord::recipes::RecipeError;
use crate::coord::{ClientState, ConnectOptions, CoordClient, CoordError};
use checkers::history::Value;
use std::net::SocketAddr;

/// A session opened on first use and forgotten when it ends, so the next operation opens
/// another.
pub(crate) struct LazySession {
    servers: Vec<SocketAddr>,
    options: ConnectOptions,
    session: Option<CoordClient>,
}

impl LazySession {
    /// A session on `servers` (tried in the order given), expiring `session_timeout_ms`
    /// after its last sign of life, each request waiting at most `request_timeout_ms`.
    pub fn new(servers: Vec<SocketAddr>, session_timeout_ms: u64, request_timeout_ms: u64) -> Self {
        let options = ConnectOptions {
            session_timeout_ms,
            connect_timeout_ms: request_timeout_ms,
            op_timeout_ms: request_timeout_ms,
            ..ConnectOptions::default()
        };
        LazySession {
            servers,
            options,
            session: None,
        }
    }

    pub async fn get(&mut self) -> Result<CoordClient, CoordError> {
        if let Some(s) = &self.session {
            if !matches!(s.state(), ClientState::Expired | ClientState::Closed) {
                return Ok(s.clone());
            }
        }
        let s = CoordClient::connect(self.servers.clone(), self.options.clone()).await?;
        self.session = Some(s.clone());
        Ok(s)
    }

    /// Whether the session is known to be over (expired or closed): what a client learns
    /// without asking the server.
    pub fn known_lost(&self) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| matches!(s.state(), ClientState::Expired | ClientState::Closed))
    }

    /// Drops the session: closed if connected, otherwise left to expire, and with it the
    /// ephemeral nodes an abandoned operation may have left behind.
    pub fn forget(&mut self) {
        self.session = None;
    }
}

/// The Jepsen outcome of a recipe error: `fail` only when the recipe certainly left no
/// trace (it timed out waiting and withdrew, its node vanished, or the server refused).
pub(crate) fn outcome_of(value: Value, e: &RecipeError) -> Outcome {
    match e {
        RecipeError::Timeout { .. } | RecipeError::Lost { .. } | RecipeError::Taken { .. } => {
            Outcome::fail(value, e.to_string())
        }
        RecipeError::Coord(c) => coord_outcome(value, c),
        // Its node may remain: `info`, so the process retires and its session ends.
        RecipeError::Stranded { .. } => Outcome::info(value, e.to_string()),
    }
}

pub(crate) fn coord_outcome(value: Value, e: &CoordError) -> Outcome {
    if e.is_definite() {
        Outcome::fail(value, e.to_string())
    } else {
        Outcome::info(value, e.to_string())
    }
}

/// Notices operations the runner abandoned: [`OpGuard::begin`] finds the previous one
/// still marked as running when its future was dropped. The runner recorded it `info` and
/// retired its process, so the client must not carry that process's state (a held lock,
/// a candidacy) into the next one.
#[derive(Default)]
pub(crate) struct OpGuard {
    running: bool,
}

impl OpGuard {
    /// Marks an operation as started; true if the previous one was abandoned.
    pub fn begin(&mut self) -> bool {
        std::mem::replace(&mut self.running, true)
    }

    pub fn end(&mut self) {
        self.running = false;
    }
}
