//! The `election` workload: workers volunteer, wait to lead, resign, lose their sessions
//! (bound to their node, with a short lease, so pauses, kills and partitions expire
//! them), and observe who leads.
//!
//! **Epoch.** A leader's epoch is its fencing token: the czxid of its candidate node.
//! Each candidacy has exactly one, later candidacies have larger ones, and a candidate
//! keeps its epoch for as long as it leads. "At most one leader per epoch" thus says
//! that everybody who claims or sees epoch `T` names the same candidate (its session).
//!
//! Operations (`f`, and the completion's value):
//! - `volunteer` → `{"token": T, "session": S, "path": P}`.
//! - `lead` → `{"token": T, "session": S, "path": P}` once this candidate leads; `fail`
//!   when not a candidate, on a timeout (it stays a candidate), or when its node vanished.
//! - `resign` → `{"token": T}`.
//! - `observe` → `{"leader": {"token": T, "session": S, "path": P} | null}`, after a sync.

pub mod check;

use super::lock::session::{coord_outcome, outcome_of, LazySession, OpGuard};
use crate::client::{BoxClient, Client, Outcome};
use crate::coord::recipes::election::{Candidate, Election};
use crate::coord::recipes::ensure_path;
use crate::coord::workload::{ClientContext, CoordWorkload};
use crate::verdict::Verdict;
use checkers::history::{History, OpType, Value};
use checkers::rng::Rng;
use serde_json::json;
use std::time::Duration;
use tokio::time::Instant;

pub(crate) const ELECTION_DIR: &str = "/faultline/election";
/// Short, so that a pause of a candidate's server expires its session (see `lock`).
pub const SESSION_TIMEOUT_MS: u64 = 1_000;
/// One request's wait: a fraction of the operation's budget, so recipes can retry.
const REQUEST_SHARE: u64 = 4;

#[derive(Default)]
pub struct ElectionWorkload;

impl ElectionWorkload {
    pub const NAME: &'static str = "election";
}

impl CoordWorkload for ElectionWorkload {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn next_op(&self, rng: &mut Rng) -> (String, Value) {
        let f = match rng.below(10) {
            0 | 1 => "volunteer",
            2..=4 => "lead",
            5..=7 => "observe",
            _ => "resign",
        };
        (f.to_string(), Value::Null)
    }

    fn final_ops(&self) -> Vec<(String, Value)> {
        vec![("observe".to_string(), Value::Null)]
    }

    fn client(&self, ctx: ClientContext) -> BoxClient {
        BoxClient::new(ElectionClient::new(ctx))
    }

    fn check(&self, history: &History) -> Verdict {
        check::check(history)
    }
}

pub struct ElectionClient {
    worker: u32,
    session: LazySession,
    /// The current process's candidacy and the session it was made in.
    candidate: Option<(Candidate, u64)>,
    op_timeout_ms: u64,
    ops: OpGuard,
}

impl ElectionClient {
    pub fn new(ctx: ClientContext) -> ElectionClient {
        let request_ms = (ctx.op_timeout_ms / REQUEST_SHARE).max(1);
        ElectionClient {
            worker: ctx.worker,
            session: LazySession::new(vec![ctx.node], SESSION_TIMEOUT_MS, request_ms),
            candidate: None,
            op_timeout_ms: ctx.op_timeout_ms,
            ops: OpGuard::default(),
        }
    }

    /// Half the budget for waiting, leaving the rest to clean up.
    fn wait(&self) -> Duration {
        Duration::from_millis(self.op_timeout_ms / 2)
    }

    /// Forgets the retired process's candidacy: its session is dropped, its node goes.
    fn forget(&mut self) {
        self.candidate = None;
        self.session.forget();
    }

    async fn election(&mut self) -> Result<(Election, u64), Outcome> {
        let c = self
            .session
            .get()
            .await
            .map_err(|e| coord_outcome(Value::Null, &e))?;
        let deadline = Instant::now() + self.wait();
        ensure_path(&c, ELECTION_DIR, deadline)
            .await
            .map_err(|e| outcome_of(Value::Null, &e))?;
        let session = c.session_id();
        Ok((Election::new(c, ELECTION_DIR), session))
    }

    async fn volunteer(&mut self) -> Outcome {
        if let Some((c, _)) = &self.candidate {
            return Outcome::fail(Value::Null, format!("already candidate {}", c.path()));
        }
        let (election, session) = match self.election().await {
            Ok(e) => e,
            Err(outcome) => return outcome,
        };
        let me = format!("worker {}", self.worker);
        match election.volunteer(me.as_bytes(), self.wait()).await {
            Ok(c) => {
                let value = json!({ "token": c.token(), "session": session, "path": c.path() });
                self.candidate = Some((c, session));
                Outcome::ok(value)
            }
            Err(e) => outcome_of(Value::Null, &e),
        }
    }

    async fn lead(&mut self) -> Outcome {
        let Some((c, session)) = &self.candidate else {
            return Outcome::fail(Value::Null, "not a candidate");
        };
        let value = json!({ "token": c.token(), "path": c.path() });
        match c.lead(self.wait()).await {
            Ok(token) => {
                Outcome::ok(json!({ "token": token, "session": session, "path": c.path() }))
            }
            Err(e) => {
                let outcome = outcome_of(value, &e);
                if matches!(e, crate::coord::recipes::RecipeError::Lost { .. }) {
                    self.candidate = None;
                }
                outcome
            }
        }
    }

    async fn resign(&mut self) -> Outcome {
        let Some((c, _)) = self.candidate.take() else {
            return Outcome::fail(Value::Null, "not a candidate");
        };
        let value = json!({ "token": c.token() });
        match c.resign().await {
            Ok(()) => Outcome::ok(value),
            Err(e) => outcome_of(value, &e),
        }
    }

    async fn observe(&mut self) -> Outcome {
        let (election, _) = match self.election().await {
            Ok(e) => e,
            Err(outcome) => return outcome,
        };
        match election.leader(self.wait()).await {
            Ok(None) => Outcome::ok(json!({ "leader": null })),
            Ok(Some(l)) => Outcome::ok(json!({
                "leader": { "token": l.token, "session": l.session, "path": l.path }
            })),
            Err(e) => outcome_of(Value::Null, &e),
        }
    }
}

impl Client for ElectionClient {
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
