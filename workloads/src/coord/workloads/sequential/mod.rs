//! `sequential`: clients create sequential nodes under a few parents; sequence numbers must
//! be unique per parent and increase in creation (real-time) order.
//!
//! Ops (`f`, value on completion):
//! - `create` `{parent}` → `{parent, token, seq}`: creates `PARENT/<parent>/n-<token>-`
//!   with the SEQUENCE flag; the token (worker and counter) names the op in the node's name,
//!   so the final listing resolves `info` creates and exposes failed ones that took effect.
//! - `list` `{parent}` (final) → `{parent, children}`: sync + the parent's children.
//!
//! The client runs on coord and on Apache ZooKeeper alike ([`super::znodes::Znodes`]).

pub(crate) mod check;

use super::membership::session::Session;
use super::znodes::Znodes;
use crate::client::{BoxClient, Client, Outcome};
use crate::coord::workload::{ClientContext, CoordWorkload};
use crate::verdict::Verdict;
use crate::zookeeper::CreateMode;
use checkers::history::{History, Value};
use checkers::rng::Rng;
use coord::api::child_path;
use serde_json::json;

/// Where the parents live.
pub const ROOT: &str = "/faultline-seq";
/// How many parents: few, so that creates contend on each.
pub const PARENTS: u64 = 3;
pub(crate) const SESSION_TIMEOUT_MS: u64 = 10_000;

pub struct Sequential;

impl CoordWorkload for Sequential {
    fn name(&self) -> &'static str {
        "sequential"
    }

    fn next_op(&self, rng: &mut Rng) -> (String, Value) {
        let parent = format!("p{}", rng.below(PARENTS));
        ("create".into(), json!({ "parent": parent }))
    }

    fn final_ops(&self) -> Vec<(String, Value)> {
        (0..PARENTS)
            .map(|p| ("list".into(), json!({ "parent": format!("p{p}") })))
            .collect()
    }

    fn client(&self, ctx: ClientContext) -> BoxClient {
        BoxClient::new(SeqClient::new(Session::new(ctx, SESSION_TIMEOUT_MS)))
    }

    fn check(&self, history: &History) -> Verdict {
        check::check(history)
    }
}

/// The sequential client on any session on znodes.
pub(crate) struct SeqClient<S: Znodes> {
    session: S,
    /// Creates this worker attempted: with the worker id, a unique token per create.
    created: u64,
}

impl<S: Znodes> SeqClient<S> {
    pub fn new(session: S) -> SeqClient<S> {
        SeqClient {
            session,
            created: 0,
        }
    }
}

impl<S: Znodes> Client for SeqClient<S> {
    async fn invoke(&mut self, f: &str, value: &Value) -> Outcome {
        let Some(parent) = value["parent"].as_str().filter(|p| valid_parent(p)) else {
            return Outcome::fail(value.clone(), "no valid parent");
        };
        let dir = child_path(ROOT, parent);
        if let Err(e) = self.session.ensure(&dir).await {
            return Outcome::fail(value.clone(), e);
        }
        match f {
            "create" => self.create(parent, &dir).await,
            "list" => self.list(parent, &dir).await,
            other => Outcome::fail(value.clone(), format!("unknown op {other:?}")),
        }
    }
}

pub(crate) fn valid_parent(p: &str) -> bool {
    p.strip_prefix('p')
        .and_then(|n| n.parse::<u64>().ok())
        .is_some_and(|n| n < PARENTS)
}

impl<S: Znodes> SeqClient<S> {
    async fn create(&mut self, parent: &str, dir: &str) -> Outcome {
        self.created += 1;
        let token = format!("w{}.{}", self.session.worker(), self.created);
        let mut value = json!({ "parent": parent, "token": token });
        let prefix = child_path(dir, &format!("n-{token}-"));
        match self
            .session
            .create(&prefix, b"", CreateMode::PersistentSequential)
            .await
        {
            Ok(path) => match check::sequence_of(&path) {
                Some((_, seq)) => {
                    value["seq"] = json!(seq);
                    Outcome::ok(value)
                }
                None => Outcome::info(value, format!("created {path:?}: no sequence suffix")),
            },
            Err(e) => {
                self.session.ended_by(&e);
                if S::is_definite(&e) {
                    Outcome::fail(value, e.to_string())
                } else {
                    Outcome::info(value, e.to_string())
                }
            }
        }
    }

    async fn list(&mut self, parent: &str, dir: &str) -> Outcome {
        match self.session.synced_children(dir).await {
            Ok(children) => Outcome::ok(json!({ "parent": parent, "children": children })),
            Err(e) => {
                self.session.ended_by(&e);
                Outcome::fail(json!({ "parent": parent }), e.to_string())
            }
        }
    }
}
