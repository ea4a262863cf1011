//! The membership worker: one session (see [`super::session`]) that joins, leaves, lists,
//! closes, and spawns ghosts; and the registry through which the final listing asks every
//! worker's session whether it is still alive.

use super::ghost::{self, GhostError};
use super::session::{write_failed, Session};
use super::{member_name, DIR, SESSION_TIMEOUT_MS};
use crate::client::{Client, Outcome};
use crate::coord::client::{CoordClient, CoordError};
use crate::coord::workload::ClientContext;
use checkers::history::Value;
use coord::api::{child_path, Acl, CreateFlags, ErrorCode};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Every worker's current client, so that the final listing can probe their sessions.
pub type Registry = Arc<Mutex<BTreeMap<u32, CoordClient>>>;

pub struct MemberClient {
    session: Session,
    registry: Registry,
}

impl Client for MemberClient {
    async fn invoke(&mut self, f: &str, value: &Value) -> Outcome {
        match f {
            "join" => self.join().await,
            "leave" => self.leave().await,
            "members" => self.members().await,
            "final-members" => self.final_members().await,
            "ghost" => self.ghost().await,
            "close" => self.close().await,
            "settle" => settle(value).await,
            other => Outcome::fail(value.clone(), format!("unknown op {other:?}")),
        }
    }
}

impl MemberClient {
    pub fn new(ctx: ClientContext, registry: Registry) -> MemberClient {
        MemberClient {
            session: Session::new(ctx, SESSION_TIMEOUT_MS),
            registry,
        }
    }

    /// The session's client, with the group's directory made sure of; registered.
    async fn ready(&mut self) -> Result<CoordClient, String> {
        let c = self.session.client().await.map_err(|e| e.to_string())?;
        self.session.ensure(DIR).await?;
        let worker = self.session.ctx().worker;
        lock(&self.registry).insert(worker, c.clone());
        Ok(c)
    }

    /// Records `e` in `value`, replacing the session if `e` ended it.
    fn after_error(&mut self, mut value: Value, e: &CoordError) -> Value {
        if self.session.ended_by(e) {
            value["ended"] = json!(true);
            lock(&self.registry).remove(&self.session.ctx().worker);
        }
        value
    }

    async fn join(&mut self) -> Outcome {
        let c = match self.ready().await {
            Ok(c) => c,
            Err(e) => return Outcome::fail(Value::Null, e),
        };
        let session = c.session_id();
        let member = member_name(session);
        let path = child_path(DIR, &member);
        let value = json!({"session": session, "member": member, "timeout_ms": SESSION_TIMEOUT_MS});
        match c
            .create(&path, b"", &Acl::open(), CreateFlags::EPHEMERAL)
            .await
        {
            Ok(_) => Outcome::ok(value),
            // The name is this session's: only a join of ours (earlier, or lost) made it.
            Err(e) if e.code() == ErrorCode::NodeExists => Outcome::ok(value),
            Err(e) => write_failed(self.after_error(value, &e), &e),
        }
    }

    async fn leave(&mut self) -> Outcome {
        let c = match self.ready().await {
            Ok(c) => c,
            Err(e) => return Outcome::fail(Value::Null, e),
        };
        let member = member_name(c.session_id());
        let value = json!({"session": c.session_id(), "member": member});
        match c.delete(&child_path(DIR, &member), -1).await {
            Ok(()) => Outcome::ok(value),
            Err(e) => write_failed(self.after_error(value, &e), &e),
        }
    }

    /// A synced listing: reads are local, and without the sync a lagging server would show
    /// members already gone.
    async fn list(&mut self) -> Result<Vec<String>, Outcome> {
        let c = self
            .ready()
            .await
            .map_err(|e| Outcome::fail(Value::Null, e))?;
        let listed = async {
            c.sync(DIR).await?;
            c.get_children(DIR).await
        };
        match listed.await {
            Ok((members, _)) => Ok(members),
            Err(e) => {
                let value = self.after_error(json!({"session": c.session_id()}), &e);
                Err(Outcome::fail(value, e.to_string()))
            }
        }
    }

    async fn members(&mut self) -> Outcome {
        match self.list().await {
            Ok(members) => Outcome::ok(json!({ "members": members })),
            Err(failed) => failed,
        }
    }

    async fn final_members(&mut self) -> Outcome {
        let members = match self.list().await {
            Ok(members) => members,
            Err(failed) => return failed,
        };
        let clients: Vec<CoordClient> = lock(&self.registry).values().cloned().collect();
        let mut probes = Vec::new();
        for c in clients {
            if let Some(alive) = probe(&c).await {
                probes.push(json!({"session": c.session_id(), "alive": alive}));
            }
        }
        Outcome::ok(json!({ "members": members, "probes": probes }))
    }

    async fn ghost(&mut self) -> Outcome {
        if let Err(e) = self.ready().await {
            return Outcome::fail(Value::Null, e);
        }
        let ctx = self.session.ctx();
        let timeout = Duration::from_millis(ctx.op_timeout_ms / 2);
        match ghost::join_and_vanish(ctx.node, SESSION_TIMEOUT_MS, timeout).await {
            Ok(g) => Outcome::ok(ghost_value(&g)),
            Err((None, e)) => Outcome::fail(Value::Null, e.to_string()),
            Err((Some(g), e @ GhostError::Refused { .. })) => {
                Outcome::fail(ghost_value(&g), e.to_string())
            }
            Err((Some(g), e)) => Outcome::info(ghost_value(&g), e.to_string()),
        }
    }

    /// Ends the worker's session on purpose; the next op opens a new one.
    async fn close(&mut self) -> Outcome {
        let c = match self.session.client().await {
            Ok(c) => c,
            Err(e) => return Outcome::fail(Value::Null, e.to_string()),
        };
        lock(&self.registry).remove(&self.session.ctx().worker);
        self.session.drop_client();
        let value = json!({"session": c.session_id(), "timeout_ms": SESSION_TIMEOUT_MS});
        match c.close().await {
            Ok(()) => Outcome::ok(value),
            // Dropped unclosed, the session expires: dead either way, and the check
            // allows for the timeout.
            Err(e) => Outcome::info(value, e.to_string()),
        }
    }
}

/// Whether `c`'s session is alive now: `None` if the answer is unknown.
async fn probe(c: &CoordClient) -> Option<bool> {
    match c.exists(DIR).await {
        Ok(_) => Some(true),
        Err(e) if e.is_terminal() => Some(false),
        Err(_) => None,
    }
}

fn ghost_value(g: &ghost::Ghost) -> Value {
    json!({"session": g.session, "member": g.member, "timeout_ms": g.timeout_ms})
}

async fn settle(value: &Value) -> Outcome {
    let ms = value["ms"].as_u64().unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Outcome::ok(value.clone())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
