//! The `lock` and `lock-unfenced` workloads: the lock recipe guards a shared resource, a
//! fenced store kept on the coordination service itself.
//!
//! Each worker acquires the lock ([`Lock::acquire`], token = the czxid of its node), uses
//! the resource while it believes it holds the lock, and releases it. It believes it
//! holds the lock until its own client tells it the session is over: like a holder
//! stalled by a GC pause, it does not ask the server before each use. That belief is
//! wrong when its session expired behind its back (its server paused or cut off), which
//! is exactly what fencing tokens are for.
//!
//! The resource is a log: each write it accepts is a persistent sequential node
//! `LOG_DIR/w-<token hex>-<write id>-<seq>`, so its order of acceptance is the sequence
//! order and the final `read` lists every write it ever accepted, including those whose
//! answer was lost. It is reached through a second session with a long timeout (the
//! store is another service: it outlives the lock session's short lease).
//!
//! - `lock` writes *fenced*: it reads the store's highest token (`HEAD`), refuses its
//!   write if its own token is older, and otherwise raises `HEAD` and appends in one
//!   multi conditional on `HEAD`'s version, so the refusal cannot be raced.
//! - `lock-unfenced` appends without looking: the known-unsafe pattern. Under pauses
//!   longer than the lock session's timeout its checker finds the stale writes.
//!
//! Operations (`f`, and the completion's value):
//! - `acquire` → `{"token": T}`; `fail` when it timed out waiting (its node withdrawn).
//! - `write` → `{"token": T, "id": "w<worker>n<k>", "seq": S}`; `fail` when not holding
//!   or refused by the fence (`{"token": T, "highest": H}`).
//! - `release` → `{"token": T}`.
//! - `read` (final) → `{"log": [[T, id, S], ...]}` in acceptance order.

pub mod check;
pub(crate) mod session;
#[cfg(test)]
pub(crate) mod test_history;

use crate::client::{BoxClient, Client, Outcome};
use crate::coord::recipes::lock::{Lock, LockGuard};
use crate::coord::recipes::{ensure_path, protected};
use crate::coord::workload::{ClientContext, CoordWorkload};
use crate::coord::{CoordClient, CoordError, ErrorKind};
use crate::verdict::Verdict;
use checkers::history::{History, Value};
use checkers::rng::Rng;
use coord::api::{
    Acl, CreateFlags, CreateRequest, ErrorCode, MultiOp, OpResult, SetDataRequest, Zxid,
};
use serde_json::json;
use session::{coord_outcome, outcome_of, LazySession, OpGuard};
use std::time::Duration;
use tokio::time::Instant;

/// The lock's directory.
pub(crate) const LOCK_DIR: &str = "/faultline/lock/holders";
/// The fenced store's highest accepted token, as decimal text.
pub(crate) const HEAD: &str = "/faultline/lock/resource";
/// The store's log of accepted writes.
pub(crate) const LOG_DIR: &str = "/faultline/lock/resource/log";

/// The lock session's lease: short, so that a pause of the holder's server (the
/// nemesis's `pause`, 0.5–1.5 times its interval) outlasts it and the lock moves on.
pub const LOCK_SESSION_TIMEOUT_MS: u64 = 1_000;
/// The store's session outlives any pause, so a write stalled in a paused server is
/// still applied when it wakes, as a delayed packet to a real store would be.
pub const STORE_SESSION_TIMEOUT_MS: u64 = 30_000;
/// One request's wait: a fraction of the operation's budget, so recipes can retry.
pub(crate) const REQUEST_SHARE: u64 = 4;

/// The lock workload, fenced or not.
pub struct LockWorkload {
    fenced: bool,
}

impl LockWorkload {
    pub const NAME: &'static str = "lock";
    pub const UNFENCED_NAME: &'static str = "lock-unfenced";

    pub fn fenced() -> LockWorkload {
        LockWorkload { fenced: true }
    }

    pub fn unfenced() -> LockWorkload {
        LockWorkload { fenced: false }
    }
}

impl CoordWorkload for LockWorkload {
    fn name(&self) -> &'static str {
        if self.fenced {
            Self::NAME
        } else {
            Self::UNFENCED_NAME
        }
    }

    /// Mostly writes, so a holder uses the resource many times before releasing: a holder
    /// whose lease ran out behind its back keeps writing into the next holder's turn (with
    /// a release one op in six, it mostly let go first).
    fn next_op(&self, rng: &mut Rng) -> (String, Value) {
        let f = match rng.below(20) {
            0..=2 => "acquire",
            3..=18 => "write",
            _ => "release",
        };
        (f.to_string(), Value::Null)
    }

    fn final_ops(&self) -> Vec<(String, Value)> {
        vec![("read".to_string(), Value::Null)]
    }

    fn client(&self, ctx: ClientContext) -> BoxClient {
        BoxClient::new(LockClient::new(ctx, self.fenced))
    }

    fn check(&self, history: &History) -> Verdict {
        check::check(history, self.fenced)
    }
}

/// Where a worker's store session goes, in order. The store is another service, which a
/// pause of the lock's server does not stall: it starts on the next node and falls back on
/// the worker's own last. (Starting on the worker's node, a paused holder's writes stalled
/// with its lease, and unfenced locks never showed their stale writes.)
pub(crate) fn store_servers(ctx: &ClientContext) -> Vec<std::net::SocketAddr> {
    let at = ctx.nodes.iter().position(|n| *n == ctx.node).unwrap_or(0);
    let mut servers: Vec<_> = (1..=ctx.nodes.len())
        .map(|i| ctx.nodes[(at + i) % ctx.nodes.len()])
        .collect();
    if servers.is_empty() {
        servers.push(ctx.node);
    }
    servers
}

/// The lock held by the current process.
struct Held {
    guard: LockGuard,
    token: Zxid,
}

pub struct LockClient {
    fenced: bool,
    worker: u32,
    /// The worker's node, where its lock session lives.
    node: std::net::SocketAddr,
    focus: crate::focus::Focus,
    /// Bound to the worker's node only: its server's pause is the holder's stall.
    lock: LazySession,
    store: LazySession,
    held: Option<Held>,
    writes: u64,
    op_timeout_ms: u64,
    ops: OpGuard,
}

impl LockClient {
    pub fn new(ctx: ClientContext, fenced: bool) -> LockClient {
        let request_ms = (ctx.op_timeout_ms / REQUEST_SHARE).max(1);
        let store_servers = store_servers(&ctx);
        LockClient {
            fenced,
            worker: ctx.worker,
            node: ctx.node,
            focus: ctx.focus.clone(),
            lock: LazySession::new(vec![ctx.node], LOCK_SESSION_TIMEOUT_MS, request_ms),
            store: LazySession::new(store_servers, STORE_SESSION_TIMEOUT_MS, request_ms),
            held: None,
            writes: 0,
            op_timeout_ms: ctx.op_timeout_ms,
            ops: OpGuard::default(),
        }
    }

    /// Forgets the retired process's lock: its session is dropped, so its node goes.
    fn forget(&mut self) {
        self.held = None;
        self.lock.forget();
    }

    /// How long `acquire` waits: half the budget, leaving the rest to withdraw.
    fn wait(&self) -> Duration {
        Duration::from_millis(self.op_timeout_ms / 2)
    }

    async fn acquire(&mut self) -> Outcome {
        if let Some(h) = &self.held {
            return Outcome::fail(Value::Null, format!("already holding token {}", h.token));
        }
        let c = match self.lock.get().await {
            Ok(c) => c,
            Err(e) => return coord_outcome(Value::Null, &e),
        };
        let deadline = Instant::now() + self.wait();
        if let Err(e) = ensure_path(&c, LOCK_DIR, deadline).await {
            return outcome_of(Value::Null, &e);
        }
        match Lock::new(c, LOCK_DIR).acquire(self.wait()).await {
            Ok(guard) => {
                let token = guard.token();
                self.held = Some(Held { guard, token });
                Outcome::ok(json!({ "token": token }))
            }
            Err(e) => outcome_of(Value::Null, &e),
        }
    }

    async fn write(&mut self) -> Outcome {
        let Some(token) = self.held.as_ref().map(|h| h.token) else {
            return Outcome::fail(Value::Null, "not holding the lock");
        };
        if self.lock.known_lost() {
            self.held = None;
            return Outcome::fail(json!({ "token": token }), "lock session over: not holding");
        }
        self.writes += 1;
        let id = format!("w{}n{}", self.worker, self.writes);
        let store = match self.store.get().await {
            Ok(c) => c,
            Err(e) => return coord_outcome(json!({ "token": token, "id": id }), &e),
        };
        let written = if self.fenced {
            fenced_write(&store, token, &id, Instant::now() + self.wait()).await
        } else {
            append(&store, token, &id).await
        };
        match written {
            Ok(seq) => Outcome::ok(json!({ "token": token, "id": id, "seq": seq })),
            Err(WriteError::Fenced { highest }) => Outcome::fail(
                json!({ "token": token, "id": id, "highest": highest }),
                format!("fenced: token {token} is older than {highest}"),
            ),
            Err(WriteError::Coord(e)) => coord_outcome(json!({ "token": token, "id": id }), &e),
        }
    }

    async fn release(&mut self) -> Outcome {
        let Some(held) = self.held.take() else {
            return Outcome::fail(Value::Null, "not holding the lock");
        };
        let value = json!({ "token": held.token });
        match held.guard.release().await {
            Ok(()) => Outcome::ok(value),
            Err(e) => outcome_of(value, &e),
        }
    }

    /// The store's whole log, in acceptance order.
    async fn read(&mut self) -> Outcome {
        let store = match self.store.get().await {
            Ok(c) => c,
            Err(e) => return coord_outcome(Value::Null, &e),
        };
        match read_log(&store).await {
            Ok(log) => Outcome::ok(json!({ "log": log })),
            Err(e) => coord_outcome(Value::Null, &e),
        }
    }
}

impl Client for LockClient {
    async fn invoke(&mut self, f: &str, value: &Value) -> Outcome {
        if self.ops.begin() {
            self.forget();
        }
        let outcome = match f {
            "acquire" => self.acquire().await,
            "write" => self.write().await,
            "release" => self.release().await,
            "read" => self.read().await,
            other => Outcome::fail(value.clone(), format!("unknown lock operation {other:?}")),
        };
        if outcome.op_type == checkers::history::OpType::Info {
            self.forget();
        }
        self.ops.end();
        let holds = self.held.as_ref().map(|_| self.node);
        self.focus.believes(self.worker, holds);
        outcome
    }
}

#[derive(Debug)]
enum WriteError {
    Fenced { highest: Zxid },
    Coord(CoordError),
}

impl From<CoordError> for WriteError {
    fn from(e: CoordError) -> Self {
        WriteError::Coord(e)
    }
}

/// The log entry's name prefix: the sequence number the server appends is its place.
pub(crate) fn entry_prefix(token: Zxid, id: &str) -> String {
    format!("{LOG_DIR}/w-{token:016x}-{id}-")
}

/// Creates the store's nodes if missing (`HEAD` at token 0).
async fn ensure_store(store: &CoordClient) -> Result<(), CoordError> {
    for (path, data) in [(HEAD, &b"0"[..]), (LOG_DIR, &b""[..])] {
        if store.exists(path).await?.is_some() {
            continue;
        }
        if let Err(e) = create_parents_and(store, path, data).await {
            if e.code() != ErrorCode::NodeExists {
                return Err(e);
            }
        }
    }
    Ok(())
}

async fn create_parents_and(
    store: &CoordClient,
    path: &str,
    data: &[u8],
) -> Result<(), CoordError> {
    let parent = &path[..path.rfind('/').unwrap_or(0)];
    let deadline = Instant::now() + store.options().op_timeout();
    if let Err(e) = ensure_path(store, parent, deadline).await {
        let kind = ErrorKind::Unexpected(e.to_string());
        return Err(match e {
            crate::coord::recipes::RecipeError::Coord(c) => c,
            _ => CoordError::new("ensure_path", None, kind),
        });
    }
    store
        .create(path, data, &Acl::open(), CreateFlags::PERSISTENT)
        .await
        .map(|_| ())
}

/// Appends without looking at the token: what `lock-unfenced` does.
async fn append(store: &CoordClient, token: Zxid, id: &str) -> Result<u64, WriteError> {
    ensure_store(store).await?;
    let (path, _) = store
        .create(
            &entry_prefix(token, id),
            b"",
            &Acl::open(),
            CreateFlags::new(false, true),
        )
        .await?;
    Ok(sequence_of(&path))
}

/// Accepts the write only if `token` is at least the highest the store has seen: raises
/// `HEAD` and appends in one multi conditional on the version of `HEAD` that was read.
async fn fenced_write(
    store: &CoordClient,
    token: Zxid,
    id: &str,
    deadline: Instant,
) -> Result<u64, WriteError> {
    ensure_store(store).await?;
    loop {
        let (data, stat) = store.get_data(HEAD).await?;
        let highest = parse_token(&data);
        if token < highest {
            return Err(WriteError::Fenced { highest });
        }
        let ops = vec![
            MultiOp::SetData(SetDataRequest {
                path: HEAD.to_string(),
                data: token.to_string().into_bytes(),
                version: stat.version,
            }),
            MultiOp::Create(CreateRequest {
                path: entry_prefix(token, id),
                data: Vec::new(),
                acl: Acl::open(),
                flags: CreateFlags::new(false, true),
            }),
        ];
        match store.multi(ops).await {
            Ok(results) => return Ok(created_sequence(&results)),
            // Another write got in between: look at the head again.
            Err(e) if e.code() == ErrorCode::BadVersion && Instant::now() < deadline => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

pub(crate) fn parse_token(data: &[u8]) -> Zxid {
    std::str::from_utf8(data)
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}

fn created_sequence(results: &[OpResult]) -> u64 {
    results
        .iter()
        .find_map(|r| match r {
            OpResult::Create { path, .. } => Some(sequence_of(path)),
            _ => None,
        })
        .unwrap_or(u64::MAX)
}

pub(crate) fn sequence_of(path: &str) -> u64 {
    protected::sequence(coord::api::node_name(path)).unwrap_or(u64::MAX)
}

/// Every accepted write as `[token, id, seq]`, in sequence order.
async fn read_log(store: &CoordClient) -> Result<Vec<Value>, CoordError> {
    ensure_store(store).await?;
    store.sync(LOG_DIR).await?;
    let (children, _) = store.get_children(LOG_DIR).await?;
    let mut entries: Vec<(u64, Zxid, String)> =
        children.iter().filter_map(|n| parse_entry(n)).collect();
    entries.sort();
    Ok(entries
        .into_iter()
        .map(|(seq, token, id)| json!([token, id, seq]))
        .collect())
}

/// `w-<token hex>-<id>-<seq>` → `(seq, token, id)`.
pub(crate) fn parse_entry(name: &str) -> Option<(u64, Zxid, String)> {
    let mut parts = name.strip_prefix("w-")?.splitn(3, '-');
    let token = Zxid::from_str_radix(parts.next()?, 16).ok()?;
    let id = parts.next()?.to_string();
    let seq = parts.next()?.parse().ok()?;
    Some((seq, token, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_entry_names_round_trip() {
        let name = coord::api::node_name(&entry_prefix(0x1_0000_002a, "w3n7")).to_string();
        let name = format!("{name}0000000042");
        assert_eq!(
            parse_entry(&name),
            Some((42, 0x1_0000_002a, "w3n7".to_string()))
        );
        assert_eq!(parse_entry("x-1-2"), None);
        assert_eq!(parse_token(b"17"), 17);
    }
}
