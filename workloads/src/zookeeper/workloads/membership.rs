//! `membership` on Apache ZooKeeper: the coord workload's client
//! ([`crate::coord::workloads::membership`]) on ZooKeeper's client, with the same member
//! names and operation values. Each worker's session joins as the ephemeral
//! `DIR/m-<session>`; a ghost is a second session that joins as `g-<session>` and is
//! dropped without a close, so that the servers must expire it; `close` ends the worker's
//! session on purpose. Values carry the session timeout the server granted.
//!
//! The final listing probes every worker's live session. The coord workload shares its
//! registry of sessions through the workload object; ZooKeeper's clients are made one by
//! one ([`super::client`]), so the registry is process-wide, keyed by the ensemble's
//! addresses, and holds sessions weakly: a run's sessions leave it with its clients.

use super::session::{no_session, session_u64, write_failed, LazySession};
use crate::client::{Client, Outcome};
use crate::coord::workload::ClientContext;
use crate::coord::workloads::membership::{ghost_name, member_name, DIR, SESSION_TIMEOUT_MS};
use crate::zookeeper::{Client as Zk, Config, CreateMode, Error, ErrorCode};
use checkers::history::Value;
use coord::api::child_path;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

/// Every worker's current session in one run, by worker.
type Registry = BTreeMap<u32, Weak<Zk>>;

/// The registries of every run in this process, by the ensemble's sorted addresses.
fn registries() -> MutexGuard<'static, HashMap<Vec<SocketAddr>, Registry>> {
    static ALL: OnceLock<Mutex<HashMap<Vec<SocketAddr>, Registry>>> = OnceLock::new();
    let all = ALL.get_or_init(Mutex::default);
    all.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `f` on the registry of the run on `nodes`, first dropping the sessions no
/// client holds any more (and the registries left empty).
fn with_registry<T>(nodes: &[SocketAddr], f: impl FnOnce(&mut Registry) -> T) -> T {
    let mut key = nodes.to_vec();
    key.sort();
    let mut all = registries();
    all.retain(|_, r| {
        r.retain(|_, s| s.strong_count() > 0);
        !r.is_empty()
    });
    f(all.entry(key).or_default())
}

pub struct ZkMemberClient {
    ctx: ClientContext,
    session: LazySession,
}

impl ZkMemberClient {
    pub fn new(ctx: ClientContext) -> ZkMemberClient {
        ZkMemberClient {
            session: LazySession::for_worker(&ctx, SESSION_TIMEOUT_MS),
            ctx,
        }
    }

    fn unregister(&self) {
        with_registry(&self.ctx.nodes, |r| r.remove(&self.ctx.worker));
    }

    /// The session's client, with the group's directory made sure of; registered.
    async fn ready(&mut self) -> Result<Arc<Zk>, String> {
        let c = self.session.get().await.map_err(|e| e.to_string())?;
        let timeout = Duration::from_millis(self.ctx.op_timeout_ms);
        self.session.ensure(DIR, timeout).await?;
        with_registry(&self.ctx.nodes, |r| {
            r.insert(self.ctx.worker, Arc::downgrade(&c))
        });
        Ok(c)
    }

    /// Records `e` in `value`, replacing the session if `e` ended it.
    fn after_error(&mut self, mut value: Value, e: &Error) -> Value {
        if self.session.ended_by(e) {
            value["ended"] = json!(true);
            self.unregister();
        }
        value
    }

    async fn join(&mut self) -> Outcome {
        let c = match self.ready().await {
            Ok(c) => c,
            Err(e) => return Outcome::fail(Value::Null, e),
        };
        let session = session_u64(c.session_id());
        let member = member_name(session);
        let path = child_path(DIR, &member);
        let value = json!({"session": session, "member": member, "timeout_ms": granted_ms(&c)});
        match c.create(&path, b"", CreateMode::Ephemeral).await {
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
        let session = session_u64(c.session_id());
        let member = member_name(session);
        let value = json!({"session": session, "member": member});
        match c.delete(&child_path(DIR, &member), -1).await {
            Ok(()) => Outcome::ok(value),
            Err(e) => write_failed(self.after_error(value, &e), &e),
        }
    }

    /// A synced listing: reads are local, and without the sync a lagging server would
    /// show members already gone.
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
                let session = json!({"session": session_u64(c.session_id())});
                let value = self.after_error(session, &e);
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
        let clients: Vec<Arc<Zk>> = with_registry(&self.ctx.nodes, |r| {
            r.values().filter_map(Weak::upgrade).collect()
        });
        let mut probes = Vec::new();
        for c in clients {
            if let Some(alive) = probe(&c).await {
                probes.push(json!({"session": session_u64(c.session_id()), "alive": alive}));
            }
        }
        Outcome::ok(json!({ "members": members, "probes": probes }))
    }

    async fn ghost(&mut self) -> Outcome {
        if let Err(e) = self.ready().await {
            return Outcome::fail(Value::Null, e);
        }
        let timeout = Duration::from_millis(self.ctx.op_timeout_ms / 2);
        match join_and_vanish(self.ctx.node, timeout).await {
            Ok(g) => Outcome::ok(g),
            Err(GhostError::NoSession(e)) => no_session(Value::Null, &e),
            Err(GhostError::Create { ghost, error }) => write_failed(ghost, &error),
        }
    }

    /// Ends the worker's session on purpose; the next op opens a new one.
    async fn close(&mut self) -> Outcome {
        let c = match self.session.get().await {
            Ok(c) => c,
            Err(e) => return no_session(Value::Null, &e),
        };
        self.unregister();
        let value = json!({"session": session_u64(c.session_id()), "timeout_ms": granted_ms(&c)});
        // Ours is then the last handle: the registry holds sessions weakly.
        drop(self.session.take());
        let Ok(c) = Arc::try_unwrap(c) else {
            return Outcome::info(value, "the session is still shared: left to expire");
        };
        match c.close().await {
            Ok(()) => Outcome::ok(value),
            // Dropped unclosed, the session expires: dead either way, and the check
            // allows for the timeout.
            Err(e) => Outcome::info(value, e.to_string()),
        }
    }
}

impl Client for ZkMemberClient {
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

/// The session timeout the server granted, which bounds when it expires.
fn granted_ms(c: &Zk) -> u64 {
    c.session_timeout().as_millis() as u64
}

/// Whether `c`'s session is alive now: `None` if the answer is unknown.
async fn probe(c: &Zk) -> Option<bool> {
    match c.exists(DIR).await {
        Ok(_) => Some(true),
        Err(e) if e.is_terminal() => Some(false),
        Err(_) => None,
    }
}

/// How far a ghost got before it went silent.
enum GhostError {
    /// No session was granted: nothing will expire.
    NoSession(super::session::NoSession),
    /// The session exists (and will expire); its create failed, certainly or not.
    Create { ghost: Value, error: Error },
}

/// Opens a session on `node`, joins as `g-<session>` and goes silent: the client is
/// dropped without closing, so the connection ends and the session stays until the
/// servers expire it. Connecting and the create each wait `timeout` at most.
async fn join_and_vanish(node: SocketAddr, timeout: Duration) -> Result<Value, GhostError> {
    let mut config = Config::new(&[node.to_string()]);
    config.session_timeout = Duration::from_millis(SESSION_TIMEOUT_MS);
    config.connect_timeout = timeout;
    config.request_timeout = timeout;
    let c = Zk::connect(config)
        .await
        .map_err(|e| GhostError::NoSession(super::session::NoSession(e)))?;
    let session = session_u64(c.session_id());
    let member = ghost_name(session);
    let ghost = json!({"session": session, "member": member, "timeout_ms": granted_ms(&c)});
    let created = c
        .create(&child_path(DIR, &member), b"", CreateMode::Ephemeral)
        .await;
    // Dropping the client here, without a close, is the silence.
    drop(c);
    match created {
        Ok(_) => Ok(ghost),
        Err(error) => Err(GhostError::Create { ghost, error }),
    }
}

async fn settle(value: &Value) -> Outcome {
    let ms = value["ms"].as_u64().unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Outcome::ok(value.clone())
}
