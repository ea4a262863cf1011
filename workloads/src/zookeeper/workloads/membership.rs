//! `membership` on Apache ZooKeeper: coord's membership client
//! ([`crate::coord::workloads::membership`]) on a ZooKeeper session, with the same member
//! names and operation values. A ghost is a second session that joins as `g-<session>`
//! and is dropped without a close, so that the servers must expire it. Values carry the
//! session timeout the server granted.
//!
//! The final listing probes every worker's live session. The coord workload shares its
//! registry of sessions through the workload object; ZooKeeper's clients are made one by
//! one ([`super::client`]), so the registry is process-wide, keyed by the ensemble's
//! addresses, and holds sessions weakly: a run's sessions leave it with its clients.

use super::session::{session_u64, NoSession};
use super::znodes::ZkSession;
use crate::client::Outcome;
use crate::coord::workloads::membership::client::{MemberSession, Registry};
use crate::coord::workloads::membership::{ghost_name, DIR, SESSION_TIMEOUT_MS};
use crate::zookeeper::{Client as Zk, Config, CreateMode, Error};
use checkers::history::Value;
use coord::api::child_path;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

/// Every worker's current session in one run, by worker.
type Sessions = BTreeMap<u32, Weak<Zk>>;

/// The registries of every run in this process, by the ensemble's sorted addresses.
fn registries() -> MutexGuard<'static, HashMap<Vec<SocketAddr>, Sessions>> {
    static ALL: OnceLock<Mutex<HashMap<Vec<SocketAddr>, Sessions>>> = OnceLock::new();
    let all = ALL.get_or_init(Mutex::default);
    all.lock().unwrap_or_else(|p| p.into_inner())
}

/// The registry of the run on an ensemble.
pub struct ZkRegistry {
    nodes: Vec<SocketAddr>,
}

impl ZkRegistry {
    pub fn new(nodes: &[SocketAddr]) -> ZkRegistry {
        let mut nodes = nodes.to_vec();
        nodes.sort();
        ZkRegistry { nodes }
    }

    /// Runs `f` on this run's sessions, first dropping the sessions no client holds any
    /// more (and the registries left empty).
    fn with<T>(&self, f: impl FnOnce(&mut Sessions) -> T) -> T {
        let mut all = registries();
        all.retain(|_, r| {
            r.retain(|_, s| s.strong_count() > 0);
            !r.is_empty()
        });
        f(all.entry(self.nodes.clone()).or_default())
    }
}

impl Registry<ZkSession> for ZkRegistry {
    fn register(&self, session: &ZkSession) {
        if let Some(c) = session.session.current() {
            let weak = Arc::downgrade(c);
            self.with(|r| r.insert(session.ctx.worker, weak));
        }
    }

    fn unregister(&self, worker: u32) {
        self.with(|r| r.remove(&worker));
    }

    async fn probe_all(&self) -> Vec<(u64, bool)> {
        let clients: Vec<Arc<Zk>> = self.with(|r| r.values().filter_map(Weak::upgrade).collect());
        let mut probes = Vec::new();
        for c in clients {
            if let Some(alive) = probe(&c).await {
                probes.push((session_u64(c.session_id()), alive));
            }
        }
        probes
    }
}

/// Whether `c`'s session is alive now: `None` if the answer is unknown.
async fn probe(c: &Zk) -> Option<bool> {
    match c.exists(DIR).await {
        Ok(_) => Some(true),
        Err(e) if e.is_terminal() => Some(false),
        Err(_) => None,
    }
}

impl MemberSession for ZkSession {
    async fn ghost(&self) -> Outcome {
        let timeout = Duration::from_millis(self.ctx.op_timeout_ms / 2);
        match join_and_vanish(self.ctx.node, timeout).await {
            Ok(g) => Outcome::ok(g),
            Err(GhostError::NoSession(e)) => Outcome::fail(Value::Null, e.to_string()),
            Err(GhostError::Create { ghost, error }) if error.is_definite() => {
                Outcome::fail(ghost, error.to_string())
            }
            Err(GhostError::Create { ghost, error }) => Outcome::info(ghost, error.to_string()),
        }
    }
}

/// The session timeout the server granted, which bounds when it expires.
fn granted_ms(c: &Zk) -> u64 {
    c.session_timeout().as_millis() as u64
}

/// How far a ghost got before it went silent.
enum GhostError {
    /// No session was granted: nothing will expire.
    NoSession(NoSession),
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
        .map_err(|e| GhostError::NoSession(NoSession(e)))?;
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
