//! `election` on Apache ZooKeeper: the coord workload's client
//! ([`crate::coord::workloads::election`]) on ZooKeeper's client, with the same nodes
//! and operation values. Candidates are protected ephemeral sequential `n-<guid>-<seq>`
//! under `ELECTION_DIR`; the lowest leads, each other watches the one just ahead; a
//! leader's epoch is its node's czxid. The session is short and bound to the worker's
//! server, so that pauses, kills and partitions of that server expire it.

use super::queue::{outcome_of, RecipeError, Ticket};
use super::session::{
    ensure_path, no_session, retrying, session_u64, write_failed, zxid_u64, LazySession,
};
use crate::client::{Client, Outcome};
use crate::coord::recipes::election::{CANDIDATE_PREFIX, CANDIDATE_PREFIXES};
use crate::coord::recipes::queue;
use crate::coord::workload::ClientContext;
use crate::coord::workloads::election::{ELECTION_DIR, SESSION_TIMEOUT_MS};
use crate::coord::workloads::lock::session::OpGuard;
use crate::coord::workloads::lock::REQUEST_SHARE;
use crate::zookeeper::{Client as Zk, Error, ErrorCode};
use checkers::history::{OpType, Value};
use coord::api::child_path;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The current process's candidacy: its place in the queue, token and session.
struct Candidacy {
    ticket: Ticket,
    token: u64,
    session: u64,
}

pub struct ZkElectionClient {
    worker: u32,
    session: LazySession,
    candidate: Option<Candidacy>,
    op_timeout_ms: u64,
    ops: OpGuard,
}

impl ZkElectionClient {
    pub fn new(ctx: ClientContext) -> ZkElectionClient {
        let request_ms = (ctx.op_timeout_ms / REQUEST_SHARE).max(1);
        ZkElectionClient {
            worker: ctx.worker,
            session: LazySession::new(&[ctx.node], SESSION_TIMEOUT_MS, request_ms, request_ms),
            candidate: None,
            op_timeout_ms: ctx.op_timeout_ms,
            ops: OpGuard::default(),
        }
    }

    /// Half the budget for waiting, leaving the rest to clean up.
    fn wait(&self) -> Duration {
        Duration::from_millis(self.op_timeout_ms / 2)
    }

    /// Forgets the retired process's candidacy: its session is closed (or left to
    /// expire), so its node goes. The ticket goes first: it shares the session.
    fn forget(&mut self) {
        self.candidate = None;
        self.session.forget();
    }

    /// The session, with the election's directory made sure of.
    async fn election(&mut self) -> Result<Arc<Zk>, Outcome> {
        let c = self
            .session
            .get()
            .await
            .map_err(|e| no_session(Value::Null, &e))?;
        ensure_path(&c, ELECTION_DIR, Instant::now() + self.wait())
            .await
            .map_err(|e| write_failed(Value::Null, &e))?;
        Ok(c)
    }

    async fn volunteer(&mut self) -> Outcome {
        if let Some(c) = &self.candidate {
            return Outcome::fail(
                Value::Null,
                format!("already candidate {}", c.ticket.node.path),
            );
        }
        let c = match self.election().await {
            Ok(c) => c,
            Err(outcome) => return outcome,
        };
        let session = session_u64(c.session_id());
        let me = format!("worker {}", self.worker);
        let deadline = Instant::now() + self.wait();
        let taken = Ticket::take(
            c,
            ELECTION_DIR,
            CANDIDATE_PREFIX,
            CANDIDATE_PREFIXES,
            me.as_bytes(),
            deadline,
        )
        .await;
        let ticket = match taken {
            Ok(t) => t,
            Err(e) => return outcome_of(Value::Null, &e),
        };
        let token = match ticket.token() {
            Ok(t) => t,
            Err(e) => return write_failed(Value::Null, &e),
        };
        let path = ticket.node.path.clone();
        self.candidate = Some(Candidacy {
            ticket,
            token,
            session,
        });
        Outcome::ok(json!({ "token": token, "session": session, "path": path }))
    }

    async fn lead(&mut self) -> Outcome {
        let Some(c) = &self.candidate else {
            return Outcome::fail(Value::Null, "not a candidate");
        };
        let path = c.ticket.node.path.clone();
        let value = json!({ "token": c.token, "path": path });
        match c.ticket.wait_turn(self.wait()).await {
            Ok(()) => Outcome::ok(json!({ "token": c.token, "session": c.session, "path": path })),
            Err(e) => {
                let outcome = outcome_of(value, &e);
                if matches!(e, RecipeError::Lost { .. }) {
                    self.candidate = None;
                }
                outcome
            }
        }
    }

    async fn resign(&mut self) -> Outcome {
        let Some(c) = self.candidate.take() else {
            return Outcome::fail(Value::Null, "not a candidate");
        };
        let value = json!({ "token": c.token });
        let deadline = Instant::now() + self.session.request_timeout();
        match c.ticket.withdraw(deadline).await {
            Ok(()) => Outcome::ok(value),
            Err(e) => outcome_of(value, &e),
        }
    }

    async fn observe(&mut self) -> Outcome {
        let c = match self.election().await {
            Ok(c) => c,
            Err(outcome) => return outcome,
        };
        match leader(&c, Instant::now() + self.wait()).await {
            Ok(None) => Outcome::ok(json!({ "leader": null })),
            Ok(Some(l)) => Outcome::ok(json!({ "leader": l })),
            Err(e) => write_failed(Value::Null, &e),
        }
    }
}

/// The current leader as `{token, session, path}`, `None` without candidates. Syncs
/// first, so that it reflects every change committed before the call.
async fn leader(c: &Zk, deadline: Instant) -> Result<Option<Value>, Error> {
    retrying(deadline, || c.sync(ELECTION_DIR)).await?;
    loop {
        let children = match retrying(deadline, || c.get_children(ELECTION_DIR)).await {
            Ok((children, _)) => children,
            Err(e) if e.code() == ErrorCode::NoNode => return Ok(None), // No election yet.
            Err(e) => return Err(e),
        };
        let Some(first) = queue::entries(children, CANDIDATE_PREFIXES)
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        let path = child_path(ELECTION_DIR, &first.name);
        match retrying(deadline, || c.get_data(&path)).await {
            Ok((_, stat)) => {
                let token = zxid_u64(stat.czxid, c.server())?;
                let session = session_u64(stat.ephemeral_owner);
                return Ok(Some(
                    json!({ "token": token, "session": session, "path": path }),
                ));
            }
            // It left between the two reads: look again.
            Err(e) if e.code() == ErrorCode::NoNode => continue,
            Err(e) => return Err(e),
        }
    }
}

impl Client for ZkElectionClient {
    async fn invoke(&mut self, f: &str, value: &Value) -> Outcome {
        if self.ops.begin() {
            self.forget();
        }
        let outcome = match f {
            "volunteer" => self.volunteer().await,
            "lead" => self.lead().await,
            "resign" => self.resign().await,
            "observe" => self.observe().await,
            other => Outcome::fail(
                value.clone(),
                format!("unknown election operation {other:?}"),
            ),
        };
        if outcome.op_type == OpType::Info {
            self.forget();
        }
        self.ops.end();
        outcome
    }
}
