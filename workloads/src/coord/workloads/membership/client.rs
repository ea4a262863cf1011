//! The membership worker, on any session on znodes ([`Znodes`]): one session that joins,
//! leaves, lists, closes, and spawns ghosts; and the registry through which the final
//! listing asks every worker's session whether it is still alive. Coord's and Apache
//! ZooKeeper's sessions each say how they make a ghost ([`MemberSession`]) and keep their
//! registry ([`Registry`]).

use super::ghost::{self, GhostError};
use super::session::Session;
use super::{member_name, DIR, SESSION_TIMEOUT_MS};
use crate::client::{Client, Outcome};
use crate::coord::client::CoordClient;
use crate::coord::workloads::znodes::Znodes;
use crate::zookeeper::CreateMode;
use checkers::history::Value;
use coord::api::child_path;
use serde_json::json;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What membership needs of a session beyond [`Znodes`].
pub(crate) trait MemberSession: Znodes {
    /// A second session, on the worker's own server, that joins as `g-<session>` and goes
    /// silent, so that the servers must expire it; the op's outcome, valued
    /// `{session, member, timeout_ms}` once a session was granted. Connecting and the
    /// create each wait half the op timeout at most.
    fn ghost(&self) -> impl Future<Output = Outcome> + Send;
}

/// Every worker's current session in one run, as the final listing probes them.
pub(crate) trait Registry<S>: Send + 'static {
    fn register(&self, session: &S);
    fn unregister(&self, worker: u32);
    /// Each registered session's id and whether it is alive now; unknown ones left out.
    fn probe_all(&self) -> impl Future<Output = Vec<(u64, bool)>> + Send;
}

pub(crate) struct MemberClient<S, R> {
    session: S,
    registry: R,
}

impl<S: MemberSession, R: Registry<S>> Client for MemberClient<S, R> {
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

impl<S: MemberSession, R: Registry<S>> MemberClient<S, R> {
    pub fn new(session: S, registry: R) -> MemberClient<S, R> {
        MemberClient { session, registry }
    }

    /// The session's id, with the group's directory made sure of; registered.
    async fn ready(&mut self) -> Result<u64, String> {
        let id = self.session.connect().await?;
        self.session.ensure(DIR).await?;
        self.registry.register(&self.session);
        Ok(id)
    }

    /// Records `e` in `value`, replacing the session if `e` ended it.
    fn after_error(&mut self, mut value: Value, e: &S::Error) -> Value {
        if self.session.ended_by(e) {
            value["ended"] = json!(true);
            self.registry.unregister(self.session.worker());
        }
        value
    }

    /// A write's outcome after `e`: `fail` if it certainly did not happen, `info` otherwise.
    fn write_failed(&mut self, value: Value, e: &S::Error) -> Outcome {
        let value = self.after_error(value, e);
        if S::is_definite(e) {
            Outcome::fail(value, e.to_string())
        } else {
            Outcome::info(value, e.to_string())
        }
    }

    async fn join(&mut self) -> Outcome {
        let session = match self.ready().await {
            Ok(id) => id,
            Err(e) => return Outcome::fail(Value::Null, e),
        };
        let member = member_name(session);
        let path = child_path(DIR, &member);
        let timeout_ms = self.session.session_timeout_ms();
        let value = json!({"session": session, "member": member, "timeout_ms": timeout_ms});
        match self.session.create(&path, b"", CreateMode::Ephemeral).await {
            Ok(_) => Outcome::ok(value),
            // The name is this session's: only a join of ours (earlier, or lost) made it.
            Err(e) if S::node_exists(&e) => Outcome::ok(value),
            Err(e) => self.write_failed(value, &e),
        }
    }

    async fn leave(&mut self) -> Outcome {
        let session = match self.ready().await {
            Ok(id) => id,
            Err(e) => return Outcome::fail(Value::Null, e),
        };
        let member = member_name(session);
        let value = json!({"session": session, "member": member});
        match self.session.delete(&child_path(DIR, &member)).await {
            Ok(()) => Outcome::ok(value),
            Err(e) => self.write_failed(value, &e),
        }
    }

    /// A synced listing: reads are local, and without the sync a lagging server would show
    /// members already gone.
    async fn list(&mut self) -> Result<Vec<String>, Outcome> {
        let session = self
            .ready()
            .await
            .map_err(|e| Outcome::fail(Value::Null, e))?;
        match self.session.synced_children(DIR).await {
            Ok(members) => Ok(members),
            Err(e) => {
                let value = self.after_error(json!({ "session": session }), &e);
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
        let probes: Vec<Value> = self
            .registry
            .probe_all()
            .await
            .into_iter()
            .map(|(session, alive)| json!({"session": session, "alive": alive}))
            .collect();
        Outcome::ok(json!({ "members": members, "probes": probes }))
    }

    async fn ghost(&mut self) -> Outcome {
        if let Err(e) = self.ready().await {
            return Outcome::fail(Value::Null, e);
        }
        self.session.ghost().await
    }

    /// Ends the worker's session on purpose; the next op opens a new one.
    async fn close(&mut self) -> Outcome {
        let session = match self.session.connect().await {
            Ok(id) => id,
            Err(e) => return Outcome::fail(Value::Null, e),
        };
        self.registry.unregister(self.session.worker());
        let timeout_ms = self.session.session_timeout_ms();
        let value = json!({"session": session, "timeout_ms": timeout_ms});
        match self.session.close().await {
            Ok(()) => Outcome::ok(value),
            // Dropped unclosed, the session expires: dead either way, and the check
            // allows for the timeout.
            Err(e) => Outcome::info(value, e),
        }
    }
}

async fn settle(value: &Value) -> Outcome {
    let ms = value["ms"].as_u64().unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Outcome::ok(value.clone())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Coord's registry: the membership workload object holds it, shared by its clients.
pub type CoordRegistry = Arc<Mutex<BTreeMap<u32, CoordClient>>>;

impl Registry<Session> for CoordRegistry {
    fn register(&self, session: &Session) {
        if let Some(c) = session.current() {
            lock(self).insert(session.ctx().worker, c);
        }
    }

    fn unregister(&self, worker: u32) {
        lock(self).remove(&worker);
    }

    async fn probe_all(&self) -> Vec<(u64, bool)> {
        let clients: Vec<CoordClient> = lock(self).values().cloned().collect();
        let mut probes = Vec::new();
        for c in clients {
            if let Some(alive) = probe(&c).await {
                probes.push((c.session_id(), alive));
            }
        }
        probes
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

/// Coord's ghost: a raw session that `CoordClient` could not be (it pings, and closes on
/// drop).
impl MemberSession for Session {
    async fn ghost(&self) -> Outcome {
        let ctx = self.ctx();
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
}

fn ghost_value(g: &ghost::Ghost) -> Value {
    json!({"session": g.session, "member": g.member, "timeout_ms": g.timeout_ms})
}
