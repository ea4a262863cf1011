//! `sequential` on Apache ZooKeeper: the coord workload's client
//! ([`crate::coord::workloads::sequential`]) on ZooKeeper's client. Each `create` makes
//! the persistent sequential `ROOT/<parent>/n-<token>-<seq>`, the token naming the op, so
//! that the final `list` (sync, then the parent's children) resolves `info` creates.

use super::session::{write_failed, LazySession};
use crate::client::{Client, Outcome};
use crate::coord::workload::ClientContext;
use crate::coord::workloads::sequential::check::sequence_of;
use crate::coord::workloads::sequential::{valid_parent, ROOT};
use crate::zookeeper::CreateMode;
use checkers::history::Value;
use coord::api::child_path;
use serde_json::json;
use std::time::Duration;

/// The session timeout the coord client asks for too (ZooKeeper may clamp it).
const SESSION_TIMEOUT_MS: u64 = 10_000;

pub struct ZkSeqClient {
    session: LazySession,
    worker: u32,
    op_timeout_ms: u64,
    /// Creates this worker attempted: with the worker id, a unique token per create.
    created: u64,
}

impl ZkSeqClient {
    pub fn new(ctx: ClientContext) -> ZkSeqClient {
        ZkSeqClient {
            session: LazySession::for_worker(&ctx, SESSION_TIMEOUT_MS),
            worker: ctx.worker,
            op_timeout_ms: ctx.op_timeout_ms,
            created: 0,
        }
    }
}

impl Client for ZkSeqClient {
    async fn invoke(&mut self, f: &str, value: &Value) -> Outcome {
        let Some(parent) = value["parent"].as_str().filter(|p| valid_parent(p)) else {
            return Outcome::fail(value.clone(), "no valid parent");
        };
        let dir = child_path(ROOT, parent);
        let timeout = Duration::from_millis(self.op_timeout_ms);
        if let Err(e) = self.session.ensure(&dir, timeout).await {
            return Outcome::fail(value.clone(), e);
        }
        match f {
            "create" => self.create(parent, &dir).await,
            "list" => self.list(parent, &dir).await,
            other => Outcome::fail(value.clone(), format!("unknown op {other:?}")),
        }
    }
}

impl ZkSeqClient {
    async fn create(&mut self, parent: &str, dir: &str) -> Outcome {
        self.created += 1;
        let token = format!("w{}.{}", self.worker, self.created);
        let mut value = json!({ "parent": parent, "token": token });
        let c = match self.session.get().await {
            Ok(c) => c,
            Err(e) => return Outcome::fail(value, e.to_string()),
        };
        let prefix = child_path(dir, &format!("n-{token}-"));
        match c
            .create(&prefix, b"", CreateMode::PersistentSequential)
            .await
        {
            Ok((path, _)) => match sequence_of(&path) {
                Some((_, seq)) => {
                    value["seq"] = json!(seq);
                    Outcome::ok(value)
                }
                None => Outcome::info(value, format!("created {path:?}: no sequence suffix")),
            },
            Err(e) => {
                self.session.ended_by(&e);
                write_failed(value, &e)
            }
        }
    }

    async fn list(&mut self, parent: &str, dir: &str) -> Outcome {
        let value = json!({ "parent": parent });
        let c = match self.session.get().await {
            Ok(c) => c,
            Err(e) => return Outcome::fail(value, e.to_string()),
        };
        let listed = async {
            c.sync(dir).await?;
            c.get_children(dir).await
        };
        match listed.await {
            Ok((children, _)) => Outcome::ok(json!({ "parent": parent, "children": children })),
            Err(e) => {
                self.session.ended_by(&e);
                Outcome::fail(value, e.to_string())
            }
        }
    }
}
